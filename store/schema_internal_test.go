package store

import "testing"

// Migrations must run in order, one version at a time, up to SchemaVersion.
func TestMigrationsAreOrderedAndComplete(t *testing.T) {
	for i, m := range migrations {
		if m.to != uint64(i+2) {
			t.Fatalf("migration %d goes to %d, want %d", i, m.to, i+2)
		}
	}
	if got := uint64(len(migrations) + 1); got != SchemaVersion {
		t.Fatalf("migrations reach schema %d, SchemaVersion is %d", got, SchemaVersion)
	}
}
