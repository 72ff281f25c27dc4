package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	deployer "github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
)

// benchDir is where benchmark state files go: tmpfs when there is one, so
// that building 100,000 runs measures bbolt and not the disk's fsync.
func benchDir(b *testing.B) string {
	b.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "store-bench-")
		if err == nil {
			b.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return b.TempDir()
}

// realisticRun adds one run the size a daemon records: three planned
// instances and two step records with bounded output.
func realisticRun(tb testing.TB, s *store.Store, repo string, i int) store.RunID {
	id, err := s.CreateRun(store.Run{Repo: repo, Commit: fmt.Sprintf("%040x", i), Base: fmt.Sprintf("%040x", i-1),
		Triggers: []store.Trigger{{Kind: store.TriggerPush, Detail: "refs/heads/main", At: time.Now()}},
		Instances: []store.InstanceOutcome{
			{Name: "viatris", File: "instances/viatris.xml", Status: "not-started"},
			{Name: "acme", File: "instances/acme.xml", Status: "not-started"},
			{Name: "globex", File: "instances/globex.xml", Status: "not-started"},
		}})
	if err != nil {
		tb.Fatal(err)
	}
	for _, step := range []string{"instance-configure", "instance-redeploy"} {
		err := s.AddStep(store.StepRecord{Run: id, StepResult: deployer.StepResult{Instance: "viatris", Step: step, Attempt: 1, Status: "succeeded",
			Argv: []string{"scripts/" + step + ".sh", "--instance", "viatris"}, Dir: "/var/lib/deployer/checkouts/" + repo,
			Env:        map[string]string{"DEPLOYER_HOST": "fra1-prod-dep01", "DEPLOYER_REPO": repo, "DEPLOYER_RUN": fmt.Sprint(id), "DEPLOYER_STEP": step},
			OutputHead: strings.Repeat("h", 256), OutputTail: strings.Repeat("t", 1024), OutputBytes: 50000,
			Outputs: map[string]string{"VERSION": "4.3.0"}, Commit: fmt.Sprintf("%040x", i)}})
		if err != nil {
			tb.Fatal(err)
		}
	}
	r, _ := s.Run(id)
	r.Status, r.Ended = store.RunSucceeded, time.Now()
	for j := range r.Instances {
		r.Instances[j].Status = store.InstanceSucceeded
	}
	if err := s.UpdateRun(r); err != nil {
		tb.Fatal(err)
	}
	return id
}

var (
	listOnce sync.Once
	listFile []byte
)

// listFixture is a state file with 10,000 runs over 10 repos, 500 open
// interventions (half instance scope, some acknowledged) and 1,000
// resolved ones.
func listFixture(b *testing.B) *store.Store {
	b.Helper()
	dir := benchDir(b)
	listOnce.Do(func() {
		path := filepath.Join(dir, "fixture.db")
		s, err := store.Open(path, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 10000; i++ {
			realisticRun(b, s, fmt.Sprintf("clusterconfig-%d", i%10), i)
		}
		for i := 0; i < 1500; i++ {
			iv, _, err := s.Raise(store.Intervention{Kind: "step-failed", Repo: fmt.Sprintf("clusterconfig-%d", i%10),
				Instance: fmt.Sprintf("inst%04d", i), Summary: "instance-configure failed: exit 3",
				NextAction: fmt.Sprintf("deployer runs show %d", i), Evidence: store.Evidence{Output: strings.Repeat("o", 2048), File: "instances/x.xml"}})
			if err != nil {
				b.Fatal(err)
			}
			switch {
			case i >= 500:
				s.Resolve(iv.ID, "alice", "fixed")
			case i%5 == 0:
				s.Acknowledge(iv.ID, "bob", "looking")
			}
		}
		s.Close()
		listFile, _ = os.ReadFile(path)
	})
	path := filepath.Join(dir, "state.db")
	os.WriteFile(path, listFile, 0o600)
	s, err := store.Open(path, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkListOpenInterventions is the store's part of `deployer
// interventions -o json` and of the status page: target well under 50 ms.
func BenchmarkListOpenInterventions(b *testing.B) {
	s := listFixture(b)
	for b.Loop() {
		ivs, err := s.Interventions(store.InterventionFilter{})
		if err != nil || len(ivs) != 500 {
			b.Fatalf("got %d, %v; want 500", len(ivs), err)
		}
	}
}

// BenchmarkListAfterEachWrite is the uncached case: every listing follows
// a write (a failing poll's repeat), so it re-reads all 500 from bbolt.
func BenchmarkListAfterEachWrite(b *testing.B) {
	s := listFixture(b)
	iv := store.Intervention{Kind: "step-failed", Repo: "clusterconfig-3", Instance: "inst0003"}
	for b.Loop() {
		if _, _, err := s.Raise(iv); err != nil {
			b.Fatal(err)
		}
		ivs, err := s.Interventions(store.InterventionFilter{})
		if err != nil || len(ivs) != 500 {
			b.Fatalf("got %d, %v; want 500", len(ivs), err)
		}
	}
}

// BenchmarkStatusPageReads is what a status page reads: open
// interventions, every repo, and the 50 newest runs.
func BenchmarkStatusPageReads(b *testing.B) {
	s := listFixture(b)
	for b.Loop() {
		ivs, _ := s.Interventions(store.InterventionFilter{})
		repos, _ := s.Repos()
		runs, err := s.Runs("", 50)
		if err != nil || len(ivs) != 500 || len(runs) != 50 {
			b.Fatalf("got %d interventions, %d repos, %d runs, %v", len(ivs), len(repos), len(runs), err)
		}
	}
}

func BenchmarkRunsOfOneRepo(b *testing.B) {
	s := listFixture(b)
	for b.Loop() {
		runs, err := s.Runs("clusterconfig-3", 50)
		if err != nil || len(runs) != 50 {
			b.Fatalf("got %d, %v", len(runs), err)
		}
	}
}

// BenchmarkRaiseRepeat is the cost of a failing poll: a repeat of an
// open intervention.
func BenchmarkRaiseRepeat(b *testing.B) {
	s := listFixture(b)
	iv := store.Intervention{Kind: "step-failed", Repo: "clusterconfig-3", Instance: "inst0003"}
	for b.Loop() {
		if _, isNew, err := s.Raise(iv); err != nil || isNew {
			b.Fatalf("isNew %v, %v", isNew, err)
		}
	}
}

// BenchmarkFileSizeWith100kRuns records 100,000 realistic runs over two
// repos, pruning with DefaultRetention every 500 runs as the daemon would,
// and reports the file size at the end (peak) and after Compact. Run with
// -benchtime=1x.
func BenchmarkFileSizeWith100kRuns(b *testing.B) {
	for b.Loop() {
		path := filepath.Join(benchDir(b), "state.db")
		s, err := store.Open(path, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		var peak int64
		for i := 0; i < 100000; i++ {
			realisticRun(b, s, fmt.Sprintf("clusterconfig-%d", i%2), i)
			if i%500 == 499 {
				if _, err := s.Prune(store.DefaultRetention()); err != nil {
					b.Fatal(err)
				}
				if fi, _ := os.Stat(path); fi.Size() > peak {
					peak = fi.Size()
				}
			}
		}
		runs, _ := s.Runs("", 0)
		st, err := s.Compact()
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
		b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
		b.ReportMetric(float64(st.After)/(1<<20), "compacted-MiB")
		b.ReportMetric(float64(len(runs)), "runs-kept")
	}
}

// BenchmarkInstanceLastStep is the record of an instance's last step
// alone (plain) and with the instance's state in its transaction (final,
// AddFinalStep, as a commit run records it): the durable per-instance
// outcome should cost little over the record itself.
func BenchmarkInstanceLastStep(b *testing.B) {
	for _, final := range []bool{false, true} {
		name := "plain"
		if final {
			name = "final"
		}
		b.Run(name, func(b *testing.B) {
			s, err := store.Open(filepath.Join(benchDir(b), "state.db"), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			run, err := s.CreateRun(store.Run{Repo: "fra", Commit: strings.Repeat("c", 40)})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				inst := fmt.Sprintf("cust%05d", i)
				rec := store.StepRecord{Run: run, StepResult: deployer.StepResult{Instance: inst, Step: "instance-redeploy", Attempt: 1,
					Status: deployer.StepSucceeded, Argv: []string{"scripts/redeploy.sh", inst}, Dir: "/srv/checkout", ExitCode: 0,
					Started: time.Now(), Ended: time.Now(), OutputHead: "redeploy " + inst}}
				if final {
					err = s.AddFinalStep(rec, store.InstanceState{Repo: "fra", Name: inst, File: "instances/" + inst + ".xml",
						Deployed: strings.Repeat("c", 40), LastStatus: store.InstanceSucceeded, LastRun: run})
				} else {
					err = s.AddStep(rec)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
