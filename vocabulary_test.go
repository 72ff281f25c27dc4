package deployer_test

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/sre-tools/deployer"
)

// TestEveryKindHasARunbookEntry: docs/operations.md's runbook has a
// heading "### <kind>" for every intervention kind, and no heading for a
// kind that does not exist.
func TestEveryKindHasARunbookEntry(t *testing.T) {
	doc, err := os.ReadFile("docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	runbook := regexp.MustCompile(`(?s)\n## Runbook: interventions\n(.*?)(\n## |\z)`).FindSubmatch(doc)
	if runbook == nil {
		t.Fatal(`docs/operations.md has no "## Runbook: interventions" section`)
	}
	var headings []string
	for _, m := range regexp.MustCompile(`(?m)^### ([a-z-]+)`).FindAllSubmatch(runbook[1], -1) {
		headings = append(headings, string(m[1]))
	}
	for _, k := range deployer.InterventionKinds {
		if !slices.Contains(headings, string(k)) {
			t.Errorf("intervention kind %s has no runbook entry (### %s) in docs/operations.md", k, k)
		}
	}
	for _, h := range headings {
		if deployer.Severity(deployer.InterventionKind(h)) == len(deployer.InterventionKinds) {
			t.Errorf("docs/operations.md has a runbook entry for %s, which is not an intervention kind", h)
		}
	}
}

// TestVocabularyIsDistinct: no word is defined twice within a list.
func TestVocabularyIsDistinct(t *testing.T) {
	seen := map[deployer.InterventionKind]bool{}
	for _, k := range deployer.InterventionKinds {
		if seen[k] {
			t.Errorf("kind %s listed twice", k)
		}
		seen[k] = true
	}
	trig := map[deployer.TriggerKind]bool{}
	for _, k := range deployer.TriggerKinds {
		if trig[k] {
			t.Errorf("trigger %s listed twice", k)
		}
		trig[k] = true
	}
}

func TestErrorCode(t *testing.T) {
	err := deployer.Errorf(deployer.ENOTFOUND, "run %d not found", 7)
	if deployer.ErrorCode(err) != deployer.ENOTFOUND || err.Error() != "run 7 not found" {
		t.Fatal(err)
	}
	if c := deployer.ErrorCode(os.ErrNotExist); c != deployer.EINTERNAL {
		t.Fatal(c)
	}
	if c := deployer.ErrorCode(nil); c != "" {
		t.Fatal(c)
	}
}
