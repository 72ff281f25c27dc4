package store

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	deployer "github.com/sre-tools/deployer"
)

// The salvage layout names every primary bucket, in the same (priority)
// order, so that a new bucket is not forgotten by the salvage; then the
// buckets made on demand (rollouts).
func TestSalvageLayoutFollowsPrimaryBuckets(t *testing.T) {
	if len(salvageLayout.Buckets) != len(primaryBuckets)+1 || !bytes.Equal(salvageLayout.Buckets[len(primaryBuckets)].Name, bucketRollouts) {
		t.Fatalf("salvage layout has %d buckets, schema %d and rollouts", len(salvageLayout.Buckets), len(primaryBuckets))
	}
	for i, b := range salvageLayout.Buckets[:len(primaryBuckets)] {
		if !bytes.Equal(b.Name, primaryBuckets[i]) {
			t.Errorf("salvage bucket %d is %s, schema's is %s", i, b.Name, primaryBuckets[i])
		}
	}
}

// Every record type, as stored, is recognised by the raw scan as itself,
// under its own key: no shape takes another type's records.
func TestSalvageShapesRecogniseEveryRecord(t *testing.T) {
	at := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	cases := []struct {
		rec    any
		bucket []byte
		key    []byte
	}{
		{Intervention{ID: 3, Kind: "step-failed", Repo: "fra", Instance: "viatris", State: StateOpen, FirstSeen: at}, bucketInterventions, u64key(3)},
		{StepRecord{Run: 4, Seq: 2, StepResult: deployer.StepResult{Step: "instance-configure", Instance: "viatris"}}, bucketSteps, stepKey(4, 2)},
		{JournalEntry{ID: "j1", Repo: "fra", File: "instances/a.xml", State: JournalPending, Created: at}, bucketJournal, []byte("j1")},
		{Run{ID: 5, Repo: "fra", Status: RunSucceeded, Started: at}, bucketRuns, u64key(5)},
		{Message{Seq: 6, DeliveryID: "x-6", Channel: "slack"}, bucketOutbox, u64key(6)},
		{Deployment{ID: "d1", Repo: "fra", State: "running", Created: at, Updated: at}, bucketDeployments, []byte("d1")},
		{InstanceState{Repo: "fra", Name: "viatris", Updated: at}, bucketInstances, instanceKey("fra", "viatris")},
		{ScheduleState{Repo: "fra", Schedule: "nightly", LastFired: at, Updated: at}, bucketSchedules, scheduleKey("fra", "nightly")},
		{RepoState{Name: "fra", Head: "c1"}, bucketRepos, []byte("fra")},
		{Rollout{ID: "r-1", State: "running", Spec: []byte(`{"id":"r-1","request":{"repo":"cc"}}`), Created: at, Updated: at}, bucketRollouts, []byte("r-1")},
	}
	for _, c := range cases {
		v, err := json.Marshal(c.rec)
		if err != nil {
			t.Fatal(err)
		}
		b, k, ok := salvageLayout.Recognise(v)
		if !ok || !bytes.Equal(b, c.bucket) || !bytes.Equal(k, c.key) {
			t.Errorf("%T %s: recognised as %s %q (%v), want %s %q", c.rec, v, b, k, ok, c.bucket, c.key)
		}
	}
}
