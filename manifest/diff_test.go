package manifest_test

import (
	"bytes"
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/beevik/etree"
	"github.com/sre-tools/deployer/manifest"
)

func editStrings(edits []manifest.Edit) string {
	var s []string
	for _, e := range edits {
		s = append(s, e.String())
	}
	return strings.Join(s, "\n")
}

func TestDiff(t *testing.T) {
	const base = "<instance name=\"viatris\">\n  <!-- apps -->\n  <app name=\"web\" version=\"4.2.1\"/>\n  <app name=\"db\" version=\"13\"/>\n  <owner>ops</owner>\n  <port>80</port>\n  <port>443</port>\n</instance>\n"
	cases := []struct {
		name string
		new  string
		want string // edit strings, one per line
		out  string // expected Apply(base, edits); "" means new itself
	}{
		{"nothing", base, "", ""},
		{"reformatted only", "<instance name='viatris'><app version='4.2.1' name='web' /><app name='db' version='13' />\n<owner>ops</owner><port>80</port><port>443</port></instance>", "", base},
		{"attribute by key", strings.Replace(base, "4.2.1", "4.3.0", 1), "set /instance/app[@name='web']@version 4.3.0", ""},
		{"attribute added and removed", strings.Replace(base, `name="db" version="13"`, `name="db" tier="gold"`, 1),
			"set /instance/app[@name='db']@tier gold\nremove /instance/app[@name='db']@version", ""},
		{"text", strings.Replace(base, ">ops<", ">sre<", 1), "set /instance/owner text sre", ""},
		{"positional", strings.Replace(base, ">443<", ">8443<", 1), "set /instance/port[2] text 8443", ""},
		{"keyed siblings reordered", "<instance name=\"viatris\">\n  <app name=\"db\" version=\"13\"/>\n  <app name=\"web\" version=\"4.2.1\"/>\n  <owner>ops</owner>\n  <port>80</port>\n  <port>443</port>\n</instance>\n", "", base},
		{"insert", strings.Replace(base, "  <owner>", "  <app name=\"cache\"/>\n  <owner>", 1), `insert /instance[3] <app name="cache"/>`, ""},
		{"remove", strings.Replace(base, "  <app name=\"db\" version=\"13\"/>\n", "", 1), "remove /instance/app[@name='db']", ""},
		{"remove and insert same tag", strings.Replace(strings.Replace(base, "  <app name=\"db\" version=\"13\"/>\n", "", 1), "  <owner>", "  <app name=\"mq\"/>\n  <owner>", 1),
			"remove /instance/app[@name='db']\ninsert /instance[2] <app name=\"mq\"/>", ""},
		{"leaf gains children", strings.Replace(base, "<owner>ops</owner>", "<owner>\n    <team>ops</team>\n  </owner>", 1),
			"set /instance/owner text \"\"\ninsert /instance/owner <team>ops</team>", "<instance name=\"viatris\">\n  <!-- apps -->\n  <app name=\"web\" version=\"4.2.1\"/>\n  <app name=\"db\" version=\"13\"/>\n  <owner>\n    <team>ops</team>\n  </owner>\n  <port>80</port>\n  <port>443</port>\n</instance>\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			edits, err := manifest.Diff([]byte(base), []byte(tc.new), manifest.DiffOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := editStrings(edits); got != tc.want {
				t.Errorf("edits: got\n%s\nwant\n%s", got, tc.want)
			}
			out, err := manifest.Apply([]byte(base), edits)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			want := tc.out
			if want == "" {
				want = tc.new
			}
			if string(out) != want {
				t.Errorf("Apply: got\n%q\nwant\n%q", out, want)
			}
		})
	}
	if _, err := manifest.Diff([]byte("<a/>"), []byte("<b/>"), manifest.DiffOptions{}); !errors.Is(err, manifest.ErrUnsupportedChange) {
		t.Errorf("root change: got %v, want ErrUnsupportedChange", err)
	}
}

func TestDiffKeyAttrs(t *testing.T) {
	old := `<r><s code="a" v="1"/><s code="b" v="2"/></r>`
	new := `<r><s code="b" v="2"/><s code="a" v="3"/></r>`
	edits, err := manifest.Diff([]byte(old), []byte(new), manifest.DiffOptions{KeyAttrs: []string{"code"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := editStrings(edits), "set /r/s[@code='a']@v 3"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	edits, _ = manifest.Diff([]byte(old), []byte(new), manifest.DiffOptions{})
	// Without the key, the siblings are matched by content: s code=b moved
	// (not an edit), s code=a changed v.
	if got, want := editStrings(edits), "set /r/s[1]@v 3"; got != want {
		t.Errorf("by content: got %q, want %q", got, want)
	}
	if edits[0].Sig == "" || edits[0].BasePath != "/r/s[1]" {
		t.Errorf("identity: %+v", edits[0])
	}
}

// TestDiffMixedTextOnly: only the text between children changed; the
// element is not replaced.
func TestDiffMixedTextOnly(t *testing.T) {
	// Whitespace between children is formatting: the element is edited in
	// place, not replaced.
	old := "<r>\n  <p>\n    <b>x</b>\n  </p>\n</r>"
	new := "<r><p>  <b x=\"1\">x</b></p></r>"
	edits, err := manifest.Diff([]byte(old), []byte(new), manifest.DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := editStrings(edits), "set /r/p/b@x 1"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Other text between children has no edit: refused, never dropped.
	old = "<r><p>one <b>x</b> two</p></r>"
	new = "<r><p>uno <b x=\"1\">x</b> dos</p></r>"
	_, err = manifest.Diff([]byte(old), []byte(new), manifest.DiffOptions{})
	if !errors.Is(err, manifest.ErrUnsupportedChange) || !strings.Contains(err.Error(), "/r/p") {
		t.Errorf("want ErrUnsupportedChange naming /r/p, got %v", err)
	}
}

// semTree is the semantic view used to compare results: whitespace between
// elements and attribute order do not count.
func semTree(tb testing.TB, data []byte) string {
	tb.Helper()
	g, err := goTree(data)
	if err != nil {
		tb.Fatalf("encoding/xml: %v", err)
	}
	var sb strings.Builder
	var walk func(n *gnode)
	walk = func(n *gnode) {
		sb.WriteString("<" + n.name)
		attrs := append([]string(nil), "")
		for _, a := range n.attrs {
			// encoding/xml does not normalize attribute values; do it here
			// so that a raw line break and a space compare equal.
			attrs = append(attrs, qname(a.Name)+"="+strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(a.Value))
		}
		sort.Strings(attrs)
		sb.WriteString(strings.Join(attrs, " ") + ">")
		if len(n.kids) == 0 && strings.TrimSpace(n.text) != "" {
			sb.WriteString(n.text)
		} else {
			sb.WriteString(strings.Join(strings.Fields(n.text), ""))
		}
		for _, k := range n.kids {
			walk(k)
		}
		sb.WriteString("</>")
	}
	walk(g)
	return sb.String()
}

// TestDiffReformattedCorpus reformats every corpus file with etree, as a
// careless step would, diffs it against the original and applies the edits
// to the original: nothing semantic changed means identical bytes; otherwise
// the result means what etree's output means and only changed lines differ.
func TestDiffReformattedCorpus(t *testing.T) {
	files := corpusFiles(t)
	var unreadable, noEdits, withEdits, edits, lines int
	for _, name := range sortedNames(files) {
		data := files[name]
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(data); err != nil {
			unreadable++
			continue
		}
		doc.Indent(2)
		reformatted, err := doc.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := manifest.ParseDocument(reformatted); err != nil {
			unreadable++ // etree wrote something that is not well-formed
			continue
		}
		es, err := manifest.Diff(data, reformatted, manifest.DiffOptions{})
		if err != nil {
			t.Errorf("%s: Diff: %v", name, err)
			continue
		}
		out, err := manifest.Apply(data, es)
		if err != nil {
			t.Errorf("%s: Apply: %v\n%s", name, err, editStrings(es))
			continue
		}
		if len(es) == 0 {
			noEdits++
			if !bytes.Equal(out, data) {
				t.Errorf("%s: no edits but bytes changed", name)
			}
			continue
		}
		withEdits++
		edits += len(es)
		if got, want := semTree(t, out), semTree(t, reformatted); got != want {
			t.Errorf("%s: result does not mean what etree's output means\n%s", name, editStrings(es))
		}
		n := lineDiff(data, out)
		lines += n
		if budget := editLineBudget(data, es); n > budget {
			t.Errorf("%s: %d lines changed for %d edits (budget %d)\n%s", name, n, len(es), budget, editStrings(es))
		}
	}
	t.Logf("etree reformat: files %d, unreadable by etree %d, identical after diff+apply %d, with semantic changes %d (%d edits, %d changed lines)",
		len(files), unreadable, noEdits, withEdits, edits, lines)
}

// editLineBudget is how many lines edits may change: for each edit the
// lines of the old and the new value (or element), plus one.
func editLineBudget(data []byte, es []manifest.Edit) int {
	doc, err := manifest.ParseDocument(data)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range es {
		old := ""
		switch e.Op {
		case manifest.OpSetText:
			old, _ = doc.Text(e.Path)
		case manifest.OpSetAttr:
			old, _, _ = doc.Attr(e.Path, e.Attr)
		}
		n += 2 + strings.Count(old, "\n") + strings.Count(e.Value, "\n") + strings.Count(e.XML, "\n")
	}
	return n
}

// lineDiff counts lines only in a or only in b (a longest-common-subsequence
// diff of the lines after the common prefix and suffix).
func lineDiff(a, b []byte) int {
	la, lb := splitLines(a), splitLines(b)
	for len(la) > 0 && len(lb) > 0 && la[0] == lb[0] {
		la, lb = la[1:], lb[1:]
	}
	for len(la) > 0 && len(lb) > 0 && la[len(la)-1] == lb[len(lb)-1] {
		la, lb = la[:len(la)-1], lb[:len(lb)-1]
	}
	if len(la)*len(lb) > 1e8 {
		return len(la) + len(lb)
	}
	prev := make([]int, len(lb)+1)
	cur := make([]int, len(lb)+1)
	for i := range la {
		for j := range lb {
			switch {
			case la[i] == lb[j]:
				cur[j+1] = prev[j] + 1
			case prev[j+1] > cur[j]:
				cur[j+1] = prev[j+1]
			default:
				cur[j+1] = cur[j]
			}
		}
		prev, cur = cur, prev
	}
	return len(la) + len(lb) - 2*prev[len(lb)]
}
