package manifest_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/manifest"
)

// TestMergeNeverPairsUnrelatedSiblings: a sibling the other side removed is
// never paired with a different one it added because they share a tag or
// one attribute. Ours' edit of the removed element is a conflict, never an
// edit of the new one (found by an attacker pass: the drain landed on the
// new backend).
func TestMergeNeverPairsUnrelatedSiblings(t *testing.T) {
	cases := []struct{ name, base, ours, theirs, wrong string }{
		{"one attribute",
			`<i><b name="m"><server host="old"/><server host="two"/></b></i>`,
			`<i><b name="m"><server host="old" drain="true"/><server host="two"/></b></i>`,
			`<i><b name="m"><server host="two"/><server host="new"/></b></i>`,
			`<server host="new" drain="true"/>`},
		{"two attributes, one shared",
			`<i><server host="a" port="80"/><server host="b" port="81"/></i>`,
			`<i><server host="a" port="8443"/><server host="b" port="81"/></i>`,
			`<i><server host="b" port="81"/><server host="c" port="80"/></i>`,
			`<server host="c" port="8443"/>`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, conflicts, err := manifest.Merge([]byte(c.base), []byte(c.ours), []byte(c.theirs), manifest.DiffOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(out), c.wrong) {
				t.Fatalf("our edit landed on the element theirs added:\n%s", out)
			}
			if len(conflicts) == 0 {
				t.Fatalf("want a conflict (theirs removed the element ours changed), got a clean merge:\n%s", out)
			}
		})
	}
}

// TestMergeLongListNeverGuessesByPosition: past the bound where every pair
// of changed siblings is compared, pairs made in order are ambiguous, so an
// edit through them is a conflict, never an edit of a neighbour.
func TestMergeLongListNeverGuessesByPosition(t *testing.T) {
	for _, n := range []int{64, 300} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var base, ours, theirs strings.Builder
			base.WriteString("<i>\n")
			ours.WriteString("<i>\n")
			theirs.WriteString("<i>\n")
			for k := 0; k < n; k++ {
				fmt.Fprintf(&base, "  <server host=\"h%03d\" port=\"80\"/>\n", k)
				port := "80"
				if k == 0 {
					port = "9999"
				}
				fmt.Fprintf(&ours, "  <server host=\"h%03d\" port=\"%s\"/>\n", k, port)
				if k > 0 {
					fmt.Fprintf(&theirs, "  <server host=\"h%03d\" port=\"80\" zone=\"a\"/>\n", k)
				}
			}
			fmt.Fprintf(&theirs, "  <server host=\"h%03d\" port=\"80\" zone=\"a\"/>\n", n)
			for _, b := range []*strings.Builder{&base, &ours, &theirs} {
				b.WriteString("</i>\n")
			}
			out, conflicts, err := manifest.Merge([]byte(base.String()), []byte(ours.String()), []byte(theirs.String()), manifest.DiffOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(out), `port="9999"`) {
				t.Fatalf("h000 was removed by theirs, yet its port landed elsewhere:\n%s", out)
			}
			if len(conflicts) == 0 {
				t.Fatal("want a conflict for the edit of the removed h000")
			}
		})
	}
}

// TestAttributeCap: more attributes than the cap is a limit error, at once.
func TestAttributeCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("<instance")
	for k := 0; k <= manifest.MaxAttributes; k++ {
		fmt.Fprintf(&b, " a%d=\"1\"", k)
	}
	b.WriteString("/>")
	_, err := manifest.ParseDocument([]byte(b.String()))
	if !errors.Is(err, manifest.ErrLimit) || !strings.Contains(err.Error(), "attributes") {
		t.Fatalf("want a limit error naming attributes, got %v", err)
	}
}

// TestAmbiguousCandidatesCapped: a conflict among thousands of identical
// siblings lists a bounded number of candidates.
func TestAmbiguousCandidatesCapped(t *testing.T) {
	n := 2000
	mk := func(mid string, count int) string {
		var b strings.Builder
		b.WriteString("<i>\n")
		for k := 0; k < count; k++ {
			if k == count/2 && mid != "" {
				b.WriteString(mid + "\n")
				continue
			}
			b.WriteString("  <s/>\n")
		}
		b.WriteString("</i>\n")
		return b.String()
	}
	base, ours, theirs := mk("", n), mk(`  <s x="1"/>`, n), mk("", n-1)
	_, conflicts, err := manifest.Merge([]byte(base), []byte(ours), []byte(theirs), manifest.DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(conflicts) == 0 {
		t.Fatal("want an ambiguous conflict")
	}
	for _, c := range conflicts {
		if len(c.Candidates) > 11 {
			t.Fatalf("%d candidates listed", len(c.Candidates))
		}
	}
}
