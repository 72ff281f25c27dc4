package localruns_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sre-tools/deployer/store/localruns"
)

func TestRecordAndFind(t *testing.T) {
	s := localruns.New(filepath.Join(t.TempDir(), "deployer", localruns.FileName))
	if as, err := s.List(localruns.Filter{}); err != nil || len(as) != 0 {
		t.Fatalf("missing file: got %v, %v", as, err)
	}
	add := func(remote, commit, inst, step, status string) {
		t.Helper()
		if _, err := s.Record(localruns.Attempt{Remote: remote, Commit: commit, Instance: inst, Step: step, Status: status,
			Outputs: map[string]string{"n": status + inst}, Started: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	add("ssh://git/cc", "c1", "acme", "instance-configure", "succeeded")
	add("ssh://git/cc", "c1", "acme", "instance-configure", "failed")
	add("ssh://git/cc", "c2", "acme", "instance-configure", "succeeded")
	add("ssh://git/other", "c1", "acme", "instance-configure", "succeeded")
	add("ssh://git/cc", "c1", "beta", "instance-configure", "succeeded")

	a, ok, _, err := s.LastCounted("ssh://git/cc", "c1", "acme", "instance-configure")
	if err != nil || !ok || a.Seq != 2 || a.Succeeded() {
		t.Errorf("last counted: got %+v %v %v, want seq 2, failed (a newer failure beats an older success; 3 is another commit, 4 another remote)", a, ok, err)
	}
	if _, ok, _, _ := s.LastCounted("ssh://git/cc", "c3", "acme", "instance-configure"); ok {
		t.Errorf("another commit: found an attempt")
	}
	all, err := s.List(localruns.Filter{Remote: "ssh://git/cc"})
	if err != nil || len(all) != 4 || all[0].Seq != 5 {
		t.Errorf("list: got %d attempts (%v), want 4 newest first", len(all), err)
	}
}

// TestLastCountedSkipsScenariosAndEditedFiles: an attempt that ran a
// scenario, or the step on an edited instance file, is not a dependency's
// attempt; the newest one that is decides.
func TestLastCountedSkipsScenariosAndEditedFiles(t *testing.T) {
	s := localruns.New(filepath.Join(t.TempDir(), localruns.FileName))
	for _, a := range []localruns.Attempt{
		{Status: "succeeded"},
		{Status: "succeeded", FromScenario: true},
		{Status: "succeeded", InstanceEdited: true},
		{Status: "succeeded", Scenario: "/tmp/s.json"},
	} {
		a.Remote, a.Commit, a.Instance, a.Step = "r", "c", "acme", "instance-configure"
		if _, err := s.Record(a); err != nil {
			t.Fatal(err)
		}
	}
	a, ok, ignored, err := s.LastCounted("r", "c", "acme", "instance-configure")
	if err != nil || !ok || a.Seq != 1 || ignored != 3 {
		t.Errorf("got %+v ok=%v ignored=%d %v; want seq 1 and 3 ignored", a, ok, ignored, err)
	}
}

// The oldest attempts go beyond Max.
func TestPrune(t *testing.T) {
	s := localruns.New(filepath.Join(t.TempDir(), localruns.FileName))
	s.Max = 3
	for i := 0; i < 5; i++ {
		if _, err := s.Record(localruns.Attempt{Remote: "r", Commit: "c", Instance: "i", Step: "s", Status: "succeeded"}); err != nil {
			t.Fatal(err)
		}
	}
	as, err := s.List(localruns.Filter{})
	if err != nil || len(as) != 3 || as[0].Seq != 5 || as[2].Seq != 3 {
		t.Fatalf("got %d attempts (%v): %+v, want seq 5, 4, 3", len(as), err, as)
	}
}
