package daemon

import (
	"encoding/json"
	"testing"

	"github.com/sre-tools/deployer/notify"
	"github.com/sre-tools/deployer/store"
)

// lost-jira-key: the Jira key a notifier recorded on a step-failed
// intervention survives the failure repeating (the repeat's new evidence
// replaced the whole evidence and dropped it), and the next message of
// the intervention carries it, so Jira updates the same issue.
func TestJiraKeySurvivesRepeat(t *testing.T) {
	w, _, _ := newUnitWorker(t)
	run := store.Run{ID: 7, Commit: fakeHead}
	o := store.InstanceOutcome{Name: "alpha", File: "instances/alpha.xml", Reason: "instance-configure: exit status 3"}
	iv := w.raiseStepFailedOnce(run, o, "first output")
	if _, err := w.d.store.SetEvidenceExtra(iv.ID, store.IssueRefKey("jira"), "OPS-7"); err != nil {
		t.Fatal(err)
	}
	again := w.raiseStepFailedOnce(store.Run{ID: 8, Commit: fakeHead}, o, "second output")
	if again.ID != iv.ID || again.Count != 2 {
		t.Fatalf("repeat: id %d count %d, want %d and 2", again.ID, again.Count, iv.ID)
	}
	if again.Evidence.Output != "second output" || again.Evidence.Extra["run"] != "8" {
		t.Fatalf("the repeat's evidence was not taken: %+v", again.Evidence)
	}
	if got := again.Evidence.Extra[store.IssueRefKey("jira")]; got != "OPS-7" {
		t.Fatalf("jira key after the repeat %q, want OPS-7 (evidence %+v)", got, again.Evidence)
	}
	payload, _ := json.Marshal(notify.Event{Kind: notify.EventReminder, ID: iv.ID})
	if _, err := w.d.store.Enqueue(store.Message{Channel: "jira", Kind: string(notify.EventReminder), InterventionID: iv.ID, Payload: payload}); err != nil {
		t.Fatal(err)
	}
	msgs, err := outbox{w.d.store}.Pending(0)
	if err != nil || len(msgs) != 1 || msgs[0].IssueKey != "OPS-7" {
		t.Fatalf("pending messages %+v %v, want one carrying OPS-7", msgs, err)
	}
}

// raiseStepFailedOnce raises step-failed for o and returns it as stored.
func (w *worker) raiseStepFailedOnce(run store.Run, o store.InstanceOutcome, output string) store.Intervention {
	w.raiseStepFailed(run, o, output)
	ivs, _ := w.d.store.Interventions(store.InterventionFilter{})
	for _, iv := range ivs {
		if iv.Instance == o.Name {
			return iv
		}
	}
	return store.Intervention{}
}
