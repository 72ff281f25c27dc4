package manifest_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/manifest"
)

// corpusFiles returns the corpus files, skipping (or failing under
// CI_REQUIRE_CORPUS=1) when the corpus is missing.
func corpusFiles(tb testing.TB) map[string][]byte {
	tb.Helper()
	dir := os.Getenv("DEPLOYER_XML_CORPUS")
	if dir == "" {
		dir = filepath.Join(repoRoot(tb), "..", "shared", "corpus", "xml")
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		if os.Getenv("CI_REQUIRE_CORPUS") == "1" {
			tb.Fatalf("XML corpus %s missing (CI_REQUIRE_CORPUS=1): %v", dir, err)
		}
		tb.Skipf("SKIPPED: XML corpus %s missing (%v); set DEPLOYER_XML_CORPUS", dir, err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".xml") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		files[e.Name()] = data
	}
	return files
}

func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found")
		}
		dir = parent
	}
}

func sortedNames(m map[string][]byte) []string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// gnode is an element as encoding/xml (an independent parser) sees it.
type gnode struct {
	name  string
	attrs []xml.Attr
	text  string
	kids  []*gnode
}

var entRef = regexp.MustCompile(`&([A-Za-z_:][-A-Za-z0-9_.:]*);`)
var xml11 = regexp.MustCompile(`^<\?xml version=["']1\.1["']`)

// goTree parses data with encoding/xml. XML 1.1 declarations are read as 1.0
// and entity references other than the predefined ones stay as written.
func goTree(data []byte) (*gnode, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if m := xml11.FindIndex(data); m != nil {
		data = append([]byte(nil), data...)
		copy(data[m[1]-2:], "0")
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Entity = map[string]string{}
	for _, m := range entRef.FindAllSubmatch(data, -1) {
		d.Entity[string(m[1])] = "&" + string(m[1]) + ";"
	}
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	root := &gnode{}
	stack := []*gnode{root}
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		top := stack[len(stack)-1]
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &gnode{name: qname(tok.Name), attrs: append([]xml.Attr(nil), tok.Attr...)}
			top.kids = append(top.kids, n)
			stack = append(stack, n)
		case xml.EndElement:
			if len(stack) == 1 || qname(tok.Name) != top.name {
				return nil, fmt.Errorf("mismatched end tag %s", qname(tok.Name))
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 1 {
				top.text += string(tok)
			}
		}
	}
	if len(stack) != 1 || len(root.kids) != 1 {
		return nil, fmt.Errorf("unbalanced document")
	}
	return root.kids[0], nil
}

func qname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

func (g *gnode) equal(o *gnode) bool {
	if g.name != o.name || g.text != o.text || len(g.attrs) != len(o.attrs) || len(g.kids) != len(o.kids) {
		return false
	}
	for i := range g.attrs {
		if qname(g.attrs[i].Name) != qname(o.attrs[i].Name) || g.attrs[i].Value != o.attrs[i].Value {
			return false
		}
	}
	for i := range g.kids {
		if !g.kids[i].equal(o.kids[i]) {
			return false
		}
	}
	return true
}

// walk visits g's elements in document order until f returns true.
func (g *gnode) walk(f func(*gnode) bool) bool {
	if f(g) {
		return true
	}
	for _, k := range g.kids {
		if k.walk(f) {
			return true
		}
	}
	return false
}

// splitLines splits on LF, CRLF and CR, keeping the terminators.
func splitLines(b []byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\n':
			out = append(out, string(b[start:i+1]))
			start = i + 1
		case '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
			out = append(out, string(b[start:i+1]))
			start = i + 1
		}
	}
	if start < len(b) {
		out = append(out, string(b[start:]))
	}
	return out
}

// changedLines returns how many lines differ between a and b, or -1 when the
// line count differs.
func changedLines(a, b []byte) int {
	la, lb := splitLines(a), splitLines(b)
	if len(la) != len(lb) {
		return -1
	}
	n := 0
	for i := range la {
		if la[i] != lb[i] {
			n++
		}
	}
	return n
}

const suffix = "-edited"

// checkOneEdit applies the corpus edit to data and checks the acceptance
// properties. It returns "" on success.
func checkOneEdit(data []byte) string {
	doc, err := manifest.ParseDocument(data)
	if err != nil {
		return "parse: " + err.Error()
	}
	if !bytes.Equal(doc.Bytes(), data) {
		return "round trip differs"
	}
	orig, err := goTree(data)
	if err != nil {
		return "encoding/xml cannot read the original: " + err.Error()
	}
	e, target := corpusEdit(doc, orig)
	out, err := manifest.Apply(data, []manifest.Edit{e})
	if err != nil {
		return "apply " + e.String() + ": " + err.Error()
	}
	if n := changedLines(data, out); n != 1 {
		return fmt.Sprintf("%s changed %d lines, want 1", e, n)
	}
	got, err := goTree(out)
	if err != nil {
		return "encoding/xml cannot read the result: " + err.Error()
	}
	target()
	if !got.equal(orig) {
		return e.String() + ": result differs from the original tree beyond the edited value"
	}
	return ""
}

// corpusEdit picks the acceptance edit: the first attribute of the first
// element that has one, else the text of the first text-only leaf. target
// applies the same change to the encoding/xml tree.
func corpusEdit(doc *manifest.Document, g *gnode) (manifest.Edit, func()) {
	var e manifest.Edit
	var target func()
	var paths []string
	for _, e := range manifest.Elements(doc, manifest.DiffOptions{}) {
		paths = append(paths, e.Path)
	}
	i := 0
	g.walk(func(n *gnode) bool {
		defer func() { i++ }()
		if len(n.attrs) > 0 {
			name := qname(n.attrs[0].Name)
			v, _, _ := doc.Attr(paths[i], name)
			e = manifest.Edit{Op: manifest.OpSetAttr, Path: paths[i], Attr: name, Value: v + suffix}
			target = func() { n.attrs[0].Value += suffix }
			return true
		}
		return false
	})
	if target != nil {
		return e, target
	}
	i = 0
	g.walk(func(n *gnode) bool {
		defer func() { i++ }()
		if len(n.kids) == 0 {
			v, _ := doc.Text(paths[i])
			e = manifest.Edit{Op: manifest.OpSetText, Path: paths[i], Value: v + suffix}
			target = func() { n.text += suffix }
			return true
		}
		return false
	})
	return e, target
}

// checkReinsert removes the first child element of the root that stands
// alone on its lines and inserts it again at the same index, twice: with the
// inferred layout (as Diff's inserts do) and with the inverse of the remove
// (manifest.Invert). regular reports whether the element sits between two
// elements (or the parent's start tag and an element) with the same
// whitespace on both sides: only then are the bytes fully determined by the
// remaining siblings, and only then is a difference with the inferred layout
// a failure. exact is "" when the inverse gave back identical bytes, which
// must hold for every file.
func checkReinsert(data []byte) (msg string, regular, found bool, exact string) {
	doc, err := manifest.ParseDocument(data)
	if err != nil {
		return "parse: " + err.Error(), true, true, "parse: " + err.Error()
	}
	elems := manifest.Elements(doc, manifest.DiffOptions{})
	for i, e := range elems {
		if e.Parent == "" || !aloneOnLine(data, e.Start, e.End) {
			continue
		}
		regular = isRegular(data, elems, i)
		exact = checkInverse(data, e.Path)
		out, err := manifest.Apply(data, []manifest.Edit{{Op: manifest.OpRemove, Path: e.Path}, {Op: manifest.OpInsert, Path: e.Parent, XML: e.XML, Index: e.Index}})
		if err != nil {
			return "remove+insert: " + err.Error(), regular, true, exact
		}
		if !bytes.Equal(out, data) {
			return fmt.Sprintf("remove+insert of %s is not identical (%d lines differ)", e.Path, changedLines(out, data)), regular, true, exact
		}
		return "", regular, true, exact
	}
	return "", false, false, ""
}

// checkInverse removes the element at path and applies the inverse of the
// remove, which must give back data; the inverse must survive a JSON round
// trip (the journal stores edits as JSON). It returns "" on success.
func checkInverse(data []byte, path string) string {
	rm := manifest.Edit{Op: manifest.OpRemove, Path: path}
	inv, err := manifest.Invert(data, rm)
	if err != nil {
		return "invert " + path + ": " + err.Error()
	}
	js, err := json.Marshal(inv)
	if err != nil {
		return "marshal: " + err.Error()
	}
	var back manifest.Edit
	if err := json.Unmarshal(js, &back); err != nil || back != inv {
		return fmt.Sprintf("JSON round trip of the inverse: %v, %+v", err, back)
	}
	out, err := manifest.Apply(data, []manifest.Edit{rm, back})
	if err != nil {
		return "remove+inverse of " + path + ": " + err.Error()
	}
	if !bytes.Equal(out, data) {
		return fmt.Sprintf("remove+inverse of %s is not identical (%d lines differ)", path, changedLines(out, data))
	}
	return ""
}

// checkAllInverses checks remove+inverse on the first limit non-root
// elements of data. Invert may refuse only with ErrBadEdit when the remove
// joins two words of text; such refusals are counted in mixed.
func checkAllInverses(data []byte, limit int) (ok, mixed int, fails []string) {
	doc, err := manifest.ParseDocument(data)
	if err != nil {
		return 0, 0, []string{"parse: " + err.Error()}
	}
	for _, e := range manifest.Elements(doc, manifest.DiffOptions{}) {
		if e.Parent == "" {
			continue
		}
		if limit--; limit < 0 {
			break
		}
		if _, err := manifest.Invert(data, manifest.Edit{Op: manifest.OpRemove, Path: e.Path}); errors.Is(err, manifest.ErrBadEdit) && strings.Contains(err.Error(), "joins the text") {
			mixed++
			continue
		}
		if msg := checkInverse(data, e.Path); msg != "" {
			fails = append(fails, msg)
			continue
		}
		ok++
	}
	return ok, mixed, fails
}

// isRegular reports whether elems[i] is preceded by whitespace that follows
// an element end or its parent's start tag, and followed by the same
// whitespace and then a sibling element.
func isRegular(data []byte, elems []manifest.ElemInfo, i int) bool {
	e := elems[i]
	var next *manifest.ElemInfo
	for j := i + 1; j < len(elems); j++ {
		if elems[j].Parent == e.Parent && elems[j].Index == e.Index+1 {
			next = &elems[j]
			break
		}
	}
	if next == nil {
		return false
	}
	w2 := data[e.End:next.Start]
	s := e.Start - len(w2)
	if s < 1 || !bytes.Equal(data[s:e.Start], w2) || len(bytes.TrimSpace(w2)) != 0 {
		return false
	}
	return data[s-1] == '>' && !bytes.HasSuffix(data[:s], []byte("-->")) && !bytes.HasSuffix(data[:s], []byte("?>")) && !bytes.HasSuffix(data[:s], []byte("]]>"))
}

func aloneOnLine(data []byte, start, end int) bool {
	i := start
	for i > 0 && (data[i-1] == ' ' || data[i-1] == '\t') {
		i--
	}
	j := end
	for j < len(data) && (data[j] == ' ' || data[j] == '\t') {
		j++
	}
	return (i == 0 || data[i-1] == '\n' || data[i-1] == '\r') && (j == len(data) || data[j] == '\n' || data[j] == '\r')
}

func TestCorpus(t *testing.T) {
	t.Parallel()
	files := corpusFiles(t)
	var identical, oneLine, reinserted, noLoneChild, inverted, invAll, invMixed int
	var irregular []string
	var failures []string
	for _, name := range sortedNames(files) {
		data := files[name]
		if doc, err := manifest.ParseDocument(data); err == nil && bytes.Equal(doc.Bytes(), data) {
			identical++
		}
		if msg := checkOneEdit(data); msg != "" {
			failures = append(failures, name+": "+msg)
		} else {
			oneLine++
		}
		msg, regular, found, exact := checkReinsert(data)
		switch {
		case !found:
			noLoneChild++
		case msg == "":
			reinserted++
		case regular:
			failures = append(failures, name+": "+msg)
		default:
			irregular = append(irregular, name+": "+msg)
		}
		switch {
		case !found:
		case exact == "":
			inverted++
		default:
			failures = append(failures, name+": "+exact)
		}
		ok, mixed, fails := checkAllInverses(data, 40)
		invAll += ok
		invMixed += mixed
		for _, f := range fails {
			failures = append(failures, name+": "+f)
		}
	}
	t.Logf("corpus: files %d, identical %d, one-line edits %d, remove+reinsert identical %d (%d differ where the layout around the element is irregular, %d have no element alone on its line), remove+inverse identical %d, failures %d",
		len(files), identical, oneLine, reinserted, len(irregular), noLoneChild, inverted, len(failures))
	t.Logf("corpus: remove+inverse over every element (first 40 of each file): identical %d, refused (text joined by the remove) %d", invAll, invMixed)
	if inverted != len(files)-noLoneChild {
		t.Errorf("remove+inverse identical for %d files, want %d", inverted, len(files)-noLoneChild)
	}
	if testing.Verbose() {
		for _, f := range irregular {
			t.Log("irregular layout: " + f)
		}
	}
	for _, f := range failures {
		t.Error(f)
	}
}

// TestCorpusVariants checks the same properties on formatting variants of
// every corpus file: CRLF and CR line endings, tabs, single quotes,
// attributes split over lines, <a /> and <a/>, a BOM, no declaration.
func TestCorpusVariants(t *testing.T) {
	t.Parallel()
	files := corpusFiles(t)
	type tally struct{ docs, oneLine, reinserted, irregular, lone, inverted int }
	counts := map[string]*tally{}
	var failures []string
	for _, name := range sortedNames(files) {
		for kind, data := range manifest.Variants(files[name]) {
			c := counts[kind]
			if c == nil {
				c = &tally{}
				counts[kind] = c
			}
			c.docs++
			if msg := checkOneEdit(data); msg != "" {
				failures = append(failures, kind+" "+name+": "+msg)
			} else {
				c.oneLine++
			}
			msg, regular, found, exact := checkReinsert(data)
			switch {
			case !found:
			case msg == "":
				c.reinserted++
			case regular:
				failures = append(failures, kind+" "+name+": "+msg)
			default:
				c.irregular++
			}
			switch {
			case !found:
			case exact == "":
				c.inverted++
			default:
				failures = append(failures, kind+" "+name+": "+exact)
			}
			if found {
				c.lone++
			}
		}
	}
	var kinds []string
	for k := range counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		c := counts[k]
		t.Logf("variant %-12s files %d, one-line edits %d, remove+reinsert identical %d (irregular layout %d), remove+inverse identical %d of %d", k, c.docs, c.oneLine, c.reinserted, c.irregular, c.inverted, c.lone)
		if c.inverted != c.lone {
			t.Errorf("variant %s: remove+inverse identical for %d files, want %d", k, c.inverted, c.lone)
		}
	}
	if len(kinds) < 9 {
		t.Errorf("got %d variant kinds, want 9", len(kinds))
	}
	for _, f := range failures {
		t.Error(f)
	}
}
