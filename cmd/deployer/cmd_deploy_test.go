package main

import (
	"testing"
	"time"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
)

// Before the worker made the selection, --wait says "queued", not
// "0/0 queued (no instance)".
func TestProgressLineBeforeSelection(t *testing.T) {
	d := api.Deployment{ID: "d1", State: string(deployer.DeploymentQueued), Counts: map[string]int{}}
	if got := progressLine(d); got != "d1 queued" {
		t.Errorf("progress before the selection: %q, want %q", got, "d1 queued")
	}
	d.Request.DryRun = true
	if got := progressLine(d); got != "d1 queued (dry run)" {
		t.Errorf("dry run: %q", got)
	}
	now := time.Now()
	d = api.Deployment{ID: "d1", State: "succeeded", Finished: &now, Counts: map[string]int{}}
	if got := progressLine(d); got != "d1 [..............................] 0/0 succeeded (no instance)" {
		t.Errorf("ended with no instance: %q", got)
	}
}

func TestCancelAnswer(t *testing.T) {
	d := api.Deployment{ID: "d1", State: "running", Counts: map[string]int{"running": 2, "pending": 3}}
	want := "deployment d1: cancel requested: no new instance starts; 2 running will finish"
	if got := actionAnswer("cancel", d); got != want {
		t.Errorf("cancel of a running deployment: %q, want %q", got, want)
	}
	now := time.Now()
	d = api.Deployment{ID: "d1", State: "cancelled", Finished: &now}
	if got := actionAnswer("cancel", d); got != "deployment d1: cancelled" {
		t.Errorf("cancel of a queued deployment: %q", got)
	}
}

func TestCountSummaryInterrupted(t *testing.T) {
	if got := countSummary(map[string]int{"interrupted": 2, "timed-out": 1}); got != "1 timed-out, 2 interrupted" {
		t.Errorf("countSummary: %q", got)
	}
}
