package store_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sre-tools/deployer/store"
)

// TestCreateDeploymentUnderChosenID: a deployment created under an id the
// caller chose is created once; created again with the same request it is
// answered as stored (its progress kept, nothing written), with another
// request it is refused with ErrExists.
func TestCreateDeploymentUnderChosenID(t *testing.T) {
	clk := newClock()
	s := mustOpenStore(t, store.Options{Now: clk.Now})
	spec := json.RawMessage(`{"request":{"select":"instances/*.xml"}}`)
	sameAs := func(d store.Deployment) func(store.Deployment) bool {
		return func(old store.Deployment) bool { return old.Repo == d.Repo && string(old.Spec) == string(d.Spec) }
	}
	d := store.Deployment{ID: "r1.fra-dep01", Repo: "cc", State: "queued", Spec: spec,
		Instances: map[string]string{"alpha": "pending"}, Details: map[string]json.RawMessage{"alpha": json.RawMessage(`{"file":"instances/alpha.xml"}`)}}
	got, existed, err := s.CreateDeployment(d, sameAs(d))
	if err != nil || existed || got.ID != d.ID || !got.Created.Equal(clk.Now()) {
		t.Fatalf("first create: got %+v existed %v err %v, want %s created now", got, existed, err, d.ID)
	}
	if _, err := s.UpdateDeployment(d.ID, func(d *store.Deployment) error {
		d.State, d.Instances["alpha"] = "running", "running"
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Minute)
	again, existed, err := s.CreateDeployment(d, sameAs(d))
	if err != nil || !existed {
		t.Fatalf("second create: existed %v err %v, want the existing one", existed, err)
	}
	if again.State != "running" || again.Instances["alpha"] != "running" || !again.Created.Equal(got.Created) {
		t.Fatalf("second create answered %+v, want the stored deployment (running, created at %v)", again, got.Created)
	}

	other := d
	other.Spec = json.RawMessage(`{"request":{"select":"instances/beta.xml"}}`)
	if _, _, err := s.CreateDeployment(other, sameAs(other)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create with another request: got %v, want ErrExists", err)
	}
	stored, err := s.Deployment(d.ID)
	if err != nil || stored.State != "running" || string(stored.Spec) != string(spec) {
		t.Fatalf("after the refused create: got %+v (%v), want the first request, running", stored, err)
	}
	if all, _ := s.Deployments("", 0); len(all) != 1 {
		t.Fatalf("got %d deployments, want 1", len(all))
	}
	if _, _, err := s.CreateDeployment(store.Deployment{Repo: "cc"}, sameAs(d)); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("create without an id: got %v, want ErrInvalid", err)
	}
}

// TestDeploymentsOrderMixedIDs: the daemon's numbered ids and chosen ids
// are listed newest first by creation, not by id (a chosen id sorts
// anywhere among d000…), and retention keeps the newest finished ones.
func TestDeploymentsOrderMixedIDs(t *testing.T) {
	clk := newClock()
	s := mustOpenStore(t, store.Options{Now: clk.Now})
	anyOld := func(store.Deployment) bool { return true }
	var want []string // oldest first
	create := func(id string) {
		t.Helper()
		clk.Advance(time.Minute)
		d := store.Deployment{ID: id, Repo: "cc", State: "succeeded", Finished: clk.Now()}
		var err error
		if id == "" {
			d, err = s.PutDeployment(d)
		} else {
			d, _, err = s.CreateDeployment(d, anyOld)
		}
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, d.ID)
	}
	create("zz.last-by-id")
	create("")
	create("aa.first-by-id")
	create("")
	create("m.middle")
	slices.Reverse(want)
	all, err := s.Deployments("", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range all {
		got = append(got, d.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v, want newest first by creation %v", got, want)
	}
	if top, _ := s.Deployments("cc", 2); len(top) != 2 || top[0].ID != want[0] || top[1].ID != want[1] {
		t.Fatalf("limit 2: got %v, want %v", top, want[:2])
	}
	if _, err := s.Prune(store.Retention{Deployments: store.Limit{MaxCount: 3}}); err != nil {
		t.Fatal(err)
	}
	all, _ = s.Deployments("", 0)
	got = got[:0]
	for _, d := range all {
		got = append(got, d.ID)
	}
	if !slices.Equal(got, want[:3]) {
		t.Fatalf("after pruning to 3: kept %v, want the newest 3 %v", got, want[:3])
	}
}
