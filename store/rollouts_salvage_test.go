package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/store"
)

// A damaged state file's rollouts are salvaged: read through the bucket
// tree when their pages are sound, carved by the raw scan (recognised by
// their fields) when the page holding them lost its header.
func TestOpenSalvagesRollouts(t *testing.T) {
	for _, damageRollouts := range []bool{false, true} {
		t.Run(fmt.Sprintf("rollout-page-damaged=%v", damageRollouts), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			populate(t, path, 300)
			s, err := store.Open(path, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			for i := range 4 {
				id := fmt.Sprintf("r-salvage-%d", i)
				spec := fmt.Sprintf(`{"id":%q,"pad":%q}`, id, strings.Repeat("w", 1500))
				if _, _, err := s.CreateRollout(store.Rollout{ID: id, State: "running", Spec: []byte(spec)}); err != nil {
					t.Fatal(err)
				}
				want[id] = "running"
			}
			if _, err := s.UpdateRollout("r-salvage-1", func(r *store.Rollout) error { r.State = "succeeded"; return nil }); err != nil {
				t.Fatal(err)
			}
			want["r-salvage-1"] = "succeeded"
			s.Close()

			data, _ := os.ReadFile(path)
			runPages, pageSize := reachablePages(t, path, `"repo":"fra","commit"`)
			damage := []int{runPages[len(runPages)/2]}
			if damageRollouts {
				rp, _ := reachablePages(t, path, `"id":"r-salvage-2"`)
				if len(rp) == 0 {
					t.Fatal("no page holds rollout r-salvage-2")
				}
				damage = append(damage, rp[0])
			}
			for _, pg := range damage {
				for i := range 16 {
					data[pg*pageSize+i] ^= 0xFF
				}
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			s2, rep := checkSalvage(t, path, data)
			if rep.Recovered["rollouts"] != len(want) {
				t.Errorf("recovered %d rollouts, want %d (report %+v)", rep.Recovered["rollouts"], len(want), rep.Recovered)
			}
			got, err := s2.Rollouts(0)
			if err != nil {
				t.Fatal(err)
			}
			have := map[string]string{}
			for _, r := range got {
				have[r.ID] = r.State
				if !strings.Contains(string(r.Spec), `"pad":"www`) {
					t.Errorf("rollout %s: spec %.60s", r.ID, r.Spec)
				}
			}
			for id, st := range want {
				if have[id] != st {
					t.Errorf("rollout %s: %q after the salvage, want %q", id, have[id], st)
				}
			}
		})
	}
}
