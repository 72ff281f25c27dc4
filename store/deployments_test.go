package store_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sre-tools/deployer/store"
)

func TestDeployments(t *testing.T) {
	clk := newClock()
	s := mustOpenStore(t, store.Options{Now: clk.Now})
	d1, err := s.PutDeployment(store.Deployment{Repo: "fra", State: "running", Instances: map[string]string{"a": "pending", "b": "pending"}, Spec: json.RawMessage(`{"select":"instances/*.xml"}`)})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	d2, _ := s.PutDeployment(store.Deployment{Repo: "ams", State: "running"})
	d1.Instances["a"] = "succeeded"
	d1.State = "done"
	d1.Finished = clk.Now()
	d1, _ = s.PutDeployment(d1)
	got, _ := s.Deployment(d1.ID)
	if !reflect.DeepEqual(got, d1) || !got.Created.Equal(clk.Now().Add(-time.Minute)) {
		t.Fatalf("got %+v, want %+v", got, d1)
	}
	all, _ := s.Deployments("", 0)
	if len(all) != 2 || all[0].ID != d2.ID || all[1].ID != d1.ID {
		t.Fatalf("got %+v, want newest first", all)
	}
	if fra, _ := s.Deployments("fra", 0); len(fra) != 1 || fra[0].ID != d1.ID {
		t.Fatalf("fra got %+v", fra)
	}
	if _, err := s.Deployment("nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}
