package manifest_test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/sre-tools/deployer/manifest"
)

// The merge corpus test: for every corpus file with two or more same-tag
// siblings without a key attribute, each on its own lines, concurrent edits
// of the shapes below are merged by Merge and by git merge-file (a line
// merge, as "other people" would), and each result is judged against an
// expected tree built independently, on encoding/xml's view of the base.

// cnode is a canonical tree for semantic comparison: attribute order and
// whitespace between elements do not count.
func canon(g *gnode) string {
	var sb strings.Builder
	var walk func(g *gnode)
	walk = func(g *gnode) {
		sb.WriteString("<" + g.name)
		var as []string
		for _, a := range g.attrs {
			as = append(as, qname(a.Name)+"="+a.Value)
		}
		sort.Strings(as)
		for _, a := range as {
			sb.WriteString(" " + a)
		}
		sb.WriteString(">" + strings.Join(strings.Fields(g.text), " "))
		for _, k := range g.kids {
			walk(k)
		}
		sb.WriteString("</>")
	}
	walk(g)
	return sb.String()
}

func (g *gnode) clone() *gnode {
	c := &gnode{name: g.name, text: g.text, attrs: append(g.attrs[:0:0], g.attrs...)}
	for _, k := range g.kids {
		c.kids = append(c.kids, k.clone())
	}
	return c
}

// preorder returns g's elements in document order.
func (g *gnode) preorder() []*gnode {
	var out []*gnode
	g.walk(func(n *gnode) bool { out = append(out, n); return false })
	return out
}

// setAttr sets attribute name on g (adding it when absent).
func (g *gnode) setAttr(name, v string) {
	for i := range g.attrs {
		if qname(g.attrs[i].Name) == name {
			g.attrs[i].Value = v
			return
		}
	}
	g.attrs = append(g.attrs, xmlAttr(name, v))
}

// lineSpan returns the lines [start, end) holding data[s:e], with the line
// break after it.
func lineSpan(data []byte, s, e int) (int, int) {
	for s > 0 && data[s-1] != '\n' && data[s-1] != '\r' {
		s--
	}
	for e < len(data) && data[e] != '\n' && data[e] != '\r' {
		e++
	}
	if e < len(data) && data[e] == '\r' {
		e++
	}
	if e < len(data) && data[e] == '\n' {
		e++
	}
	return s, e
}

// mergeCase is one generated case.
type mergeCase struct {
	base, ours, theirs []byte
	want               string // canonical expected tree
	lines              int    // lines of theirs the merge must change
}

// attrEdit returns the attribute an edit of element e changes and its new value.
func attrEdit(g *gnode, tag string) (string, string) {
	for _, a := range g.attrs {
		name := qname(a.Name)
		if !strings.HasPrefix(name, "xmlns") {
			return name, a.Value + "-" + tag
		}
	}
	return "deployer-" + tag, "1"
}

var shapes = []string{"inserted above", "deleted above", "reordered", "different siblings", "same attribute same way", "edit inside moved sibling"}

// mergeCases generates the cases of every shape for one file.
func mergeCases(tb testing.TB, data []byte) map[string]mergeCase {
	doc, err := manifest.ParseDocument(data)
	if err != nil {
		return nil
	}
	g, err := goTree(data)
	if err != nil {
		return nil
	}
	elems := manifest.Elements(doc, manifest.DiffOptions{})
	gs := g.preorder()
	if len(gs) != len(elems) {
		return nil
	}
	// The first parent with two or more same-tag unkeyed children alone on their lines.
	var group []int // indexes into elems
	for pi := range elems {
		byTag := map[string][]int{}
		var order []string
		for ci := pi + 1; ci < len(elems); ci++ {
			if elems[ci].Parent != elems[pi].Path {
				continue
			}
			keyed := false
			for _, a := range gs[ci].attrs {
				if n := qname(a.Name); n == "name" || n == "id" || n == "key" {
					keyed = true
				}
			}
			if keyed || !aloneOnLine(data, elems[ci].Start, elems[ci].End) {
				continue
			}
			tag := gs[ci].name
			if byTag[tag] == nil {
				order = append(order, tag)
			}
			byTag[tag] = append(byTag[tag], ci)
		}
		for _, tag := range order {
			if len(byTag[tag]) >= 2 {
				group = byTag[tag]
				break
			}
		}
		if group != nil {
			break
		}
	}
	if group == nil {
		return nil
	}
	first, last := group[0], group[len(group)-1]
	fs, fe := lineSpan(data, elems[first].Start, elems[first].End)
	ls, le := lineSpan(data, elems[last].Start, elems[last].End)
	if fe > ls {
		return nil
	}
	// find the gnode parent and child indexes
	parentOf := func(root *gnode, idx int) (*gnode, int) {
		all := root.preorder()
		target := all[idx]
		for _, p := range all {
			for i, k := range p.kids {
				if k == target {
					return p, i
				}
			}
		}
		return nil, -1
	}
	apply := func(src []byte, path, attr, v string) []byte {
		out, err := manifest.Apply(src, []manifest.Edit{{Op: manifest.OpSetAttr, Path: path, Attr: attr, Value: v}})
		if err != nil {
			tb.Fatalf("generate: %v", err)
		}
		return out
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	oa, ov := attrEdit(gs[last], "ours")
	ours := apply(data, elems[last].Path, oa, ov)
	expect := func(f func(root *gnode)) string {
		root := g.clone()
		f(root)
		return canon(root)
	}
	out := map[string]mergeCase{}
	// A copy of the first inserted above the last.
	out["inserted above"] = mergeCase{data, ours, cat(data[:ls], data[fs:fe], data[ls:]), expect(func(root *gnode) {
		all := root.preorder()
		all[last].setAttr(oa, ov)
		p, i := parentOf(root, last)
		cp := g.preorder()[first].clone()
		p.kids = append(p.kids[:i], append([]*gnode{cp}, p.kids[i:]...)...)
	}), 1}
	out["deleted above"] = mergeCase{data, ours, cat(data[:fs], data[fe:]), expect(func(root *gnode) {
		all := root.preorder()
		all[last].setAttr(oa, ov)
		p, i := parentOf(root, first)
		p.kids = append(p.kids[:i], p.kids[i+1:]...)
	}), 1}
	out["reordered"] = mergeCase{data, ours, cat(data[:fs], data[ls:le], data[fe:ls], data[fs:fe], data[le:]), expect(func(root *gnode) {
		all := root.preorder()
		all[last].setAttr(oa, ov)
		p, i := parentOf(root, first)
		_, j := parentOf(root, last)
		p.kids[i], p.kids[j] = p.kids[j], p.kids[i]
	}), 1}
	ta, tv := attrEdit(gs[first], "theirs")
	out["different siblings"] = mergeCase{data, ours, apply(data, elems[first].Path, ta, tv), expect(func(root *gnode) {
		all := root.preorder()
		all[last].setAttr(oa, ov)
		all[first].setAttr(ta, tv)
	}), 1}
	out["same attribute same way"] = mergeCase{data, ours, ours, expect(func(root *gnode) {
		root.preorder()[last].setAttr(oa, ov)
	}), 0}
	// An edit inside the last sibling (its first child element, else
	// itself); theirs moves it above the first.
	inner := last
	for ci := last + 1; ci < len(elems); ci++ {
		if elems[ci].Parent == elems[last].Path {
			inner = ci
			break
		}
	}
	ia, iv := attrEdit(gs[inner], "ours")
	out["edit inside moved sibling"] = mergeCase{data, apply(data, elems[inner].Path, ia, iv), cat(data[:fs], data[ls:le], data[fs:ls], data[le:]), expect(func(root *gnode) {
		all := root.preorder()
		all[inner].setAttr(ia, iv)
		p, i := parentOf(root, first)
		_, j := parentOf(root, last)
		k := p.kids[j]
		p.kids = append(p.kids[:j], p.kids[j+1:]...)
		p.kids = append(p.kids[:i], append([]*gnode{k}, p.kids[i:]...)...)
	}), 1}
	return out
}

// judge classifies a merge result: "right", "conflict" or "wrong".
func judge(c mergeCase, merged []byte, conflicts bool) string {
	if conflicts {
		return "conflict"
	}
	g, err := goTree(merged)
	if err != nil || canon(g) != c.want {
		return "wrong"
	}
	if n := changedLines(c.theirs, merged); n != c.lines {
		return "wrong" // untouched bytes must stay as they were
	}
	return "right"
}

// gitMergeFile merges with git merge-file; conflicts reports conflict markers.
func gitMergeFile(dir string, c mergeCase) ([]byte, bool, error) {
	paths := make([]string, 3)
	for i, data := range [][]byte{c.ours, c.base, c.theirs} {
		paths[i] = filepath.Join(dir, []string{"ours", "base", "theirs"}[i])
		if err := os.WriteFile(paths[i], data, 0o644); err != nil {
			return nil, false, err
		}
	}
	out, err := exec.Command("git", "merge-file", "-p", paths[0], paths[1], paths[2]).Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() > 0 && ee.ExitCode() < 128 {
		return out, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("git merge-file: %v", err)
	}
	return out, false, nil
}

type tally struct{ cases, right, conflicts, wrong int }

func (t *tally) add(verdict string) {
	t.cases++
	switch verdict {
	case "right":
		t.right++
	case "conflict":
		t.conflicts++
	default:
		t.wrong++
	}
}

func TestMergeCorpus(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("SKIPPED: git not installed")
	}
	files := corpusFiles(t)
	dir := t.TempDir()
	ours, git := map[string]*tally{}, map[string]*tally{}
	for _, s := range shapes {
		ours[s], git[s] = &tally{}, &tally{}
	}
	type job struct {
		name, shape string
		c           mergeCase
	}
	var jobs []job
	for _, name := range sortedNames(files) {
		for shape, c := range mergeCases(t, files[name]) {
			jobs = append(jobs, job{name, shape, c})
		}
	}
	// The cases run on 8 goroutines: most of the time is spent waiting for
	// git merge-file processes, not computing.
	var (
		mu     sync.Mutex
		wrongs []string
		errs   []error
		wg     sync.WaitGroup
		next   = make(chan job)
	)
	for w := 0; w < 8; w++ {
		wdir := filepath.Join(dir, fmt.Sprint(w))
		if err := os.Mkdir(wdir, 0o755); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				merged, conflicts, err := manifest.Merge(j.c.base, j.c.ours, j.c.theirs, manifest.DiffOptions{})
				v := "wrong"
				if err == nil {
					v = judge(j.c, merged, len(conflicts) > 0)
				}
				gm, gc, gerr := gitMergeFile(wdir, j.c)
				mu.Lock()
				ours[j.shape].add(v)
				if v == "wrong" {
					wrongs = append(wrongs, fmt.Sprintf("%s: %s: err %v", j.shape, j.name, err))
				}
				if gerr != nil {
					errs = append(errs, gerr)
				} else {
					git[j.shape].add(judge(j.c, gm, gc))
				}
				mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d git merge-file runs failed, the first: %v", len(errs), errs[0])
	}
	sort.Strings(wrongs)
	t.Logf("%-26s %28s   %28s", "shape", "deployer xml merge", "git merge-file")
	t.Logf("%-26s %6s %6s %9s %5s   %6s %6s %9s %5s", "", "cases", "right", "conflicts", "wrong", "cases", "right", "conflicts", "wrong")
	for _, s := range shapes {
		o, g := ours[s], git[s]
		t.Logf("%-26s %6d %6d %9d %5d   %6d %6d %9d %5d", s, o.cases, o.right, o.conflicts, o.wrong, g.cases, g.right, g.conflicts, g.wrong)
		if o.cases == 0 {
			t.Errorf("%s: no cases generated", s)
		}
		if o.wrong > 0 {
			t.Errorf("%s: %d wrong merges, want 0", s, o.wrong)
		}
		if o.right < g.right {
			t.Errorf("%s: %d right, fewer than git merge-file's %d", s, o.right, g.right)
		}
		switch s {
		case "inserted above", "deleted above", "different siblings":
			if o.right*100 < 95*o.cases {
				t.Errorf("%s: %d of %d right, want at least 95%%", s, o.right, o.cases)
			}
		}
	}
	for _, w := range wrongs {
		t.Log("wrong: " + w)
	}
}

func xmlAttr(name, v string) xml.Attr {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		return xml.Attr{Name: xml.Name{Space: name[:i], Local: name[i+1:]}, Value: v}
	}
	return xml.Attr{Name: xml.Name{Local: name}, Value: v}
}
