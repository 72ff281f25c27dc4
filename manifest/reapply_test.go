package manifest_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/manifest"
)

// TestReapply is the case: the step set port="9" on the second of
// two unkeyed servers while a human added a server at the top.
func TestReapply(t *testing.T) {
	base := "<instance name=\"acme\" version=\"2\">\n  <server host=\"a\" port=\"1\"/>\n  <server host=\"b\" port=\"1\"/>\n</instance>\n"
	now := strings.Replace(base, `host="b" port="1"`, `host="b" port="9"`, 1)
	edits, err := manifest.Diff([]byte(base), []byte(now), manifest.DiffOptions{})
	if err != nil || len(edits) != 1 || edits[0].Sig == "" || edits[0].BasePath != "/instance/server[2]" {
		t.Fatalf("Diff: %+v, %v", edits, err)
	}
	// The journal stores edits as JSON.
	js, _ := json.Marshal(edits)
	if !strings.Contains(string(js), `"sig":"`) || !strings.Contains(string(js), `"base_path":"/instance/server[2]"`) {
		t.Errorf("journal JSON: %s", js)
	}
	var back []manifest.Edit
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, upstream, want string }{
		{"insert above", strings.Replace(base, "  <server host=\"a\"", "  <server host=\"z\" port=\"1\"/>\n  <server host=\"a\"", 1),
			"<instance name=\"acme\" version=\"2\">\n  <server host=\"z\" port=\"1\"/>\n  <server host=\"a\" port=\"1\"/>\n  <server host=\"b\" port=\"9\"/>\n</instance>\n"},
		{"delete above", strings.Replace(base, "  <server host=\"a\" port=\"1\"/>\n", "", 1),
			"<instance name=\"acme\" version=\"2\">\n  <server host=\"b\" port=\"9\"/>\n</instance>\n"},
		{"reorder", "<instance name=\"acme\" version=\"2\">\n  <server host=\"b\" port=\"1\"/>\n  <server host=\"a\" port=\"1\"/>\n</instance>\n",
			"<instance name=\"acme\" version=\"2\">\n  <server host=\"b\" port=\"9\"/>\n  <server host=\"a\" port=\"1\"/>\n</instance>\n"},
	}
	for _, tc := range cases {
		got, conflicts, err := manifest.Reapply([]byte(base), []byte(tc.upstream), back, manifest.DiffOptions{})
		if err != nil || len(conflicts) > 0 || string(got) != tc.want {
			t.Errorf("%s: got %v %v\n%s\nwant\n%s", tc.name, conflicts, err, got, tc.want)
		}
		// Today's daemon path, Apply then Merge, agrees.
		ours, _ := manifest.Apply([]byte(base), back)
		merged, conflicts, err := manifest.Merge([]byte(base), ours, []byte(tc.upstream), manifest.DiffOptions{})
		if err != nil || len(conflicts) > 0 || string(merged) != tc.want {
			t.Errorf("%s: Merge: got %v %v\n%s", tc.name, conflicts, err, merged)
		}
		// A journal entry of the previous format (no identity) is refused
		// when upstream changed the servers.
		legacy := []manifest.Edit{{Op: back[0].Op, Path: back[0].Path, Attr: back[0].Attr, Value: back[0].Value}}
		got, conflicts, err = manifest.Reapply([]byte(base), []byte(tc.upstream), legacy, manifest.DiffOptions{})
		if err != nil || len(conflicts) != 1 || conflicts[0].Kind != manifest.ConflictAmbiguous || string(got) != tc.upstream {
			t.Errorf("%s: legacy: got %v %v", tc.name, conflicts, err)
		}
	}
	// A legacy edit whose parent's children upstream did not change is
	// re-applied by position.
	upstream := strings.Replace(base, `version="2"`, `version="3"`, 1)
	legacy := []manifest.Edit{{Op: manifest.OpSetAttr, Path: "/instance/server[2]", Attr: "port", Value: "9"}}
	got, conflicts, err := manifest.Reapply([]byte(base), []byte(upstream), legacy, manifest.DiffOptions{})
	if err != nil || len(conflicts) > 0 || string(got) != strings.Replace(now, `version="2"`, `version="3"`, 1) {
		t.Errorf("legacy, children unchanged: %v %v\n%s", conflicts, err, got)
	}
}

// TestReapplyAmbiguous: identical siblings, one edited by the step, and
// upstream added another identical copy: which one the edit meant cannot
// be told, so it is a conflict with the candidates, never a guess.
func TestReapplyAmbiguous(t *testing.T) {
	base := "<i>\n  <s p=\"1\"/>\n  <s p=\"1\"/>\n</i>\n"
	now := "<i>\n  <s p=\"1\"/>\n  <s p=\"9\"/>\n</i>\n"
	upstream := "<i>\n  <s p=\"1\"/>\n  <s p=\"1\"/>\n  <s p=\"1\"/>\n</i>\n"
	edits, err := manifest.Diff([]byte(base), []byte(now), manifest.DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, conflicts, err := manifest.Reapply([]byte(base), []byte(upstream), edits, manifest.DiffOptions{})
	if err != nil || len(conflicts) != 1 || conflicts[0].Kind != manifest.ConflictAmbiguous || len(conflicts[0].Candidates) != 3 || string(got) != upstream {
		t.Fatalf("got %v %v\n%s", conflicts, err, got)
	}
	if s := conflicts[0].String(); !strings.Contains(s, "candidates /i/s[1], /i/s[2], /i/s[3]") {
		t.Errorf("conflict: %s", s)
	}
}
