package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/store"
)

// newFilledDaemon is a daemon (not serving) whose state holds 10,000 runs and
// 500 open interventions, as on a host after months of work.
func newFilledDaemon(tb testing.TB) *Daemon {
	tb.Helper()
	d, err := New(Options{Host: "bench", StateDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	now := time.Now()
	for i := 0; i < 10000; i++ {
		r := store.Run{Repo: fmt.Sprintf("cc-%d", i%10), Commit: fmt.Sprintf("%040d", i), Status: store.RunSucceeded, Started: now, Ended: now,
			Triggers:  []store.Trigger{{Kind: "poll", At: now}},
			Instances: []store.InstanceOutcome{{Name: "viatris", File: "instances/viatris.xml", Status: "succeeded"}}}
		if i%20 == 0 {
			r.Status, r.Error = store.RunFailed, "instance-configure: exit status 3"
		}
		if _, err := d.store.CreateRun(r); err != nil {
			tb.Fatal(err)
		}
	}
	for i := 0; i < 500; i++ {
		iv := store.Intervention{Kind: string(deployer.InterventionKinds[i%len(deployer.InterventionKinds)]), Repo: fmt.Sprintf("cc-%d", i%10), Instance: fmt.Sprintf("i%03d", i),
			Summary: "instance-configure failed", NextAction: "deployer interventions resolve {id} --retry",
			Evidence: store.Evidence{Output: string(make([]byte, 2048)), File: "instances/x.xml"}}
		if _, _, err := d.store.Raise(iv); err != nil {
			tb.Fatal(err)
		}
	}
	return d
}

// BenchmarkInterventionsJSON is `deployer interventions -o json`'s daemon
// side: list, order, convert, encode (target: under 50 ms).
func BenchmarkInterventionsJSON(b *testing.B) {
	d := newFilledDaemon(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		ivs, err := d.Interventions(ctx, false)
		if err != nil || len(ivs) != 500 {
			b.Fatalf("got %d, %v", len(ivs), err)
		}
		if err := json.NewEncoder(io.Discard).Encode(map[string]any{"interventions": ivs}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStatusPage is GET /: the report rendered as HTML (target: under 50 ms).
func BenchmarkStatusPage(b *testing.B) {
	d := newFilledDaemon(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		rep, err := api.ServiceBackend(d).Report(ctx)
		if err != nil || len(rep.Interventions) != 500 {
			b.Fatalf("got %d, %v", len(rep.Interventions), err)
		}
		if err := api.WriteReportHTML(io.Discard, rep); err != nil {
			b.Fatal(err)
		}
	}
}
