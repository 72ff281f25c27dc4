package store

import (
	"bytes"
	"testing"
)

// The salvage layout names every primary bucket, in the same (priority)
// order, so that a new bucket is not forgotten by the salvage.
func TestSalvageLayoutFollowsPrimaryBuckets(t *testing.T) {
	if len(salvageLayout.Buckets) != len(primaryBuckets) {
		t.Fatalf("salvage layout has %d buckets, schema %d", len(salvageLayout.Buckets), len(primaryBuckets))
	}
	for i, b := range salvageLayout.Buckets {
		if !bytes.Equal(b.Name, primaryBuckets[i]) {
			t.Errorf("salvage bucket %d is %s, schema's is %s", i, b.Name, primaryBuckets[i])
		}
	}
}
