package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// etreeFind evaluates path with etree on the mirror, bypassing the fast path.
func etreeFind(t *testing.T, d *Document, path string) []*node {
	t.Helper()
	p, err := etree.CompilePath(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	m := d.mirror()
	var out []*node
	for _, e := range m.doc.FindElementsPath(p) {
		out = append(out, m.nodes[e])
	}
	return out
}

func samePaths(a, b []*node) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFastPathMatchesEtree checks the simple-path evaluator against etree on
// hand-written cases and on every element path of the corpus (plus variants
// without predicates and with out-of-range positions).
func TestFastPathMatchesEtree(t *testing.T) {
	doc, err := ParseDocument([]byte(`<r xmlns:x="u"><a name="1"/><x:a name="2"/><a x:name="1"/><b><a/><a name="1"/></b><b><a name="1"/></b></r>`))
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{"/r", "/q", "/r/a", "/r/x:a", "/r/a[@name='1']", "/r/a[@x:name='1']", "/r/a[2]", "/r/a[4]",
		"/r/b/a", "/r/b/a[1]", "/r/b[2]/a[@name=\"1\"]", "/r/b/a[@name='1'][1]", "/r/a[1][@name='2']", "/r/y:a"}
	checked := 0
	for _, p := range paths {
		steps, ok := parseSimplePath(p)
		if !ok {
			t.Fatalf("%s: not simple", p)
		}
		if got, want := doc.findSimple(steps), etreeFind(t, doc, p); !samePaths(got, want) {
			t.Errorf("%s: got %d elements, etree %d", p, len(got), len(want))
		}
		checked++
	}
	for _, p := range []string{"//a", "/r/*", "/r/a[@name]", "/r/a[-1]", "/r/a[text()='x']", "r/a", "/r/a[@name = '1']", "/r/"} {
		if _, ok := parseSimplePath(p); ok {
			t.Errorf("%s: parsed as simple, want etree", p)
		}
	}
	dir := os.Getenv("DEPLOYER_XML_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "corpus", "xml")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Logf("corpus part skipped: %v", err)
		return
	}
	for i, e := range entries {
		if i%4 != 0 {
			continue // a quarter of the corpus keeps this test quick
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasSuffix(e.Name(), ".xml") {
			continue
		}
		d, err := ParseDocument(data)
		if err != nil {
			t.Fatal(err)
		}
		var walk func(el *elem, path string)
		walk = func(el *elem, path string) {
			for _, p := range []string{path, stripPredicates(path), path + "[99]"} {
				steps, ok := parseSimplePath(p)
				if !ok {
					continue
				}
				checked++
				if got, want := d.findSimple(steps), etreeFind(t, d, p); !samePaths(got, want) {
					t.Fatalf("%s %s: got %d elements, etree %d", e.Name(), p, len(got), len(want))
				}
			}
			for i, s := range kidSteps(el, DefaultKeyAttrs) {
				walk(el.kids[i], path+"/"+s)
			}
		}
		walk(buildElem(d, d.elem, nil), "/"+d.elem.name)
	}
	t.Logf("%d paths agree with etree", checked)
}

func stripPredicates(p string) string {
	var sb strings.Builder
	depth := 0
	for _, r := range p {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			sb.WriteRune(r)
		}
	}
	return sb.String()
}
