package store

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A deployment's instances are records of their own: a patch writes the
// instances it holds and leaves the others, an update deletes the ones it
// dropped, and a record of the old layout (instances in the summary) is
// read as it is and moved to the new one at its first write.
func TestDeploymentInstanceRecords(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw := func(v string) json.RawMessage { return json.RawMessage(v) }
	d, err := s.PutDeployment(Deployment{Repo: "fra", State: "running",
		Instances: map[string]string{"a": "pending", "b": "pending", "c": "pending"},
		Details:   map[string]json.RawMessage{"a": raw(`{"n":"a"}`), "b": raw(`{"n":"b"}`), "c": raw(`{"n":"c"}`)}})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := s.DeploymentSummary(d.ID)
	if err != nil || sum.Instances != nil || sum.Details != nil || sum.State != "running" {
		t.Fatalf("summary %+v, %v: want no instances", sum, err)
	}
	_, err = s.PatchDeployment(d.ID, func(p *Deployment) error {
		if p.Instances != nil || p.Details != nil {
			t.Errorf("patch got instances %v %v", p.Instances, p.Details)
		}
		p.State = "running2"
		p.Instances = map[string]string{"b": "succeeded"}
		p.Details = map[string]json.RawMessage{"b": raw(`{"n":"b2"}`), "c": raw(`{"n":"c2"}`)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Deployment(d.ID)
	wantSt := map[string]string{"a": "pending", "b": "succeeded", "c": "pending"}
	wantDe := map[string]json.RawMessage{"a": raw(`{"n":"a"}`), "b": raw(`{"n":"b2"}`), "c": raw(`{"n":"c2"}`)}
	if got.State != "running2" || !reflect.DeepEqual(got.Instances, wantSt) || !reflect.DeepEqual(got.Details, wantDe) {
		t.Fatalf("after patch: %s %v %s", got.State, got.Instances, got.Details)
	}
	_, err = s.UpdateDeployment(d.ID, func(u *Deployment) error {
		delete(u.Instances, "a")
		delete(u.Details, "a")
		u.Instances["c"] = "failed"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = s.Deployment(d.ID)
	if want := map[string]string{"b": "succeeded", "c": "failed"}; !reflect.DeepEqual(got.Instances, want) || len(got.Details) != 2 {
		t.Fatalf("after update: %v %s", got.Instances, got.Details)
	}

	// The old layout: every instance in the summary.
	old := []byte(`{"id":"d9","repo":"fra","state":"running","instances":{"x":"pending","y":"succeeded"},"spec":{"k":1},"created":"2026-03-01T03:00:00Z","updated":"2026-03-01T03:00:00Z"}`)
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketDeployments).Put([]byte("d9"), old) }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Deployment("d9"); !reflect.DeepEqual(got.Instances, map[string]string{"x": "pending", "y": "succeeded"}) {
		t.Fatalf("old layout read %v", got.Instances)
	}
	if _, err := s.PatchDeployment("d9", func(p *Deployment) error {
		p.Instances = map[string]string{"x": "succeeded"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Deployment("d9")
	if !reflect.DeepEqual(got.Instances, map[string]string{"x": "succeeded", "y": "succeeded"}) || string(got.Spec) != `{"k":1}` {
		t.Fatalf("old layout after a patch: %v %s", got.Instances, got.Spec)
	}
	var n int
	_ = s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketDeploymentInstances).Stats().KeyN; return nil })
	if n != 4 {
		t.Fatalf("%d instance records, want 4 (b, c, x, y)", n)
	}

	// Pruning a finished deployment removes its instance records too.
	if _, err := s.UpdateDeployment(d.ID, func(u *Deployment) error { u.Finished = u.Updated; return nil }); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Prune(Retention{Deployments: Limit{MaxAge: time.Nanosecond}}); err != nil || st.Deployments != 1 {
		t.Fatalf("prune: %+v %v, want 1 deployment", st, err)
	}
	_ = s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketDeploymentInstances).Stats().KeyN; return nil })
	if got, err := s.Deployment(d.ID); n != 2 || err == nil {
		t.Fatalf("after prune: %d instance records (want 2: x, y), %s still there (%v)", n, got.ID, err)
	}
}
