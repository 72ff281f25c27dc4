package manifest_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/manifest"
)

func TestMerge(t *testing.T) {
	const base = "<instance name=\"viatris\">\n  <app name=\"web\" version=\"4.2.1\" replicas=\"2\"/>\n  <app name=\"db\" version=\"13\"/>\n  <owner>ops</owner>\n</instance>\n"
	rep := func(s string, pairs ...string) string { return strings.NewReplacer(pairs...).Replace(s) }
	cases := []struct {
		name         string
		ours, theirs string
		want         string   // merged bytes
		conflicts    []string // Conflict.String() of each
	}{
		{"disjoint attributes",
			rep(base, `version="4.2.1"`, `version="4.3.0"`),
			rep(base, `replicas="2"`, `replicas="3"`),
			rep(base, `version="4.2.1" replicas="2"`, `version="4.3.0" replicas="3"`), nil},
		{"same attribute same value",
			rep(base, `version="4.2.1"`, `version="4.3.0"`),
			rep(base, `version="4.2.1"`, `version="4.3.0"`),
			rep(base, `version="4.2.1"`, `version="4.3.0"`), nil},
		{"same attribute different values",
			rep(base, `version="4.2.1"`, `version="4.3.0"`),
			rep(base, `version="4.2.1"`, `version="5.0.0"`),
			rep(base, `version="4.2.1"`, `version="5.0.0"`),
			[]string{"attr conflict at /instance/app[@name='web']@version: base 4.2.1, ours 4.3.0, theirs 5.0.0"}},
		{"attribute removed on one side, changed on the other",
			rep(base, ` replicas="2"`, ``),
			rep(base, `replicas="2"`, `replicas="3"`),
			rep(base, `replicas="2"`, `replicas="3"`),
			[]string{"attr conflict at /instance/app[@name='web']@replicas: base 2, ours (absent), theirs 3"}},
		{"text conflict",
			rep(base, ">ops<", ">sre<"),
			rep(base, ">ops<", ">dba<"),
			rep(base, ">ops<", ">dba<"),
			[]string{"text conflict at /instance/owner: base ops, ours sre, theirs dba"}},
		{"edit versus delete",
			rep(base, `version="13"`, `version="14"`),
			rep(base, "  <app name=\"db\" version=\"13\"/>\n", ""),
			rep(base, "  <app name=\"db\" version=\"13\"/>\n", ""),
			[]string{`removed conflict at /instance/app[@name='db']: base "<app name=\"db\" version=\"13\"/>", ours "<app name=\"db\" version=\"14\"/>", theirs (absent)`}},
		{"delete versus edit",
			rep(base, "  <app name=\"db\" version=\"13\"/>\n", ""),
			rep(base, `version="13"`, `version="14"`),
			rep(base, `version="13"`, `version="14"`),
			[]string{`removed conflict at /instance/app[@name='db']: base "<app name=\"db\" version=\"13\"/>", ours (absent), theirs "<app name=\"db\" version=\"14\"/>"`}},
		{"delete of an unchanged element",
			rep(base, "  <app name=\"db\" version=\"13\"/>\n", ""),
			rep(base, ">ops<", ">sre<"),
			rep(base, "  <app name=\"db\" version=\"13\"/>\n", "", ">ops<", ">sre<"), nil},
		{"reordered siblings with keys",
			rep(base, `version="4.2.1"`, `version="4.3.0"`),
			"<instance name=\"viatris\">\n  <app name=\"db\" version=\"13\"/>\n  <app name=\"web\" version=\"4.2.1\" replicas=\"2\"/>\n  <owner>ops</owner>\n</instance>\n",
			"<instance name=\"viatris\">\n  <app name=\"db\" version=\"13\"/>\n  <app name=\"web\" version=\"4.3.0\" replicas=\"2\"/>\n  <owner>ops</owner>\n</instance>\n", nil},
		{"insert on both sides, different keys",
			rep(base, "  <owner>", "  <app name=\"cache\"/>\n  <owner>"),
			rep(base, "  <owner>", "  <app name=\"mq\"/>\n  <owner>"),
			rep(base, "  <owner>", "  <app name=\"cache\"/>\n  <app name=\"mq\"/>\n  <owner>"), nil},
		{"insert on both sides, same element",
			rep(base, "  <owner>", "  <app name=\"cache\"/>\n  <owner>"),
			rep(base, "  <owner>", "  <app name=\"cache\"/>\n  <owner>"),
			rep(base, "  <owner>", "  <app name=\"cache\"/>\n  <owner>"), nil},
		{"insert on both sides, same key, different content",
			rep(base, "  <owner>", "  <app name=\"cache\" size=\"1\"/>\n  <owner>"),
			rep(base, "  <owner>", "  <app name=\"cache\" size=\"2\"/>\n  <owner>"),
			rep(base, "  <owner>", "  <app name=\"cache\" size=\"2\"/>\n  <owner>"),
			[]string{`inserted conflict at /instance/app[@name='cache']: base (absent), ours "<app name=\"cache\" size=\"1\"/>", theirs "<app name=\"cache\" size=\"2\"/>"`}},
		{"ours inserts after an element theirs removed",
			rep(base, "  <app name=\"db\" version=\"13\"/>\n", "  <app name=\"db\" version=\"13\"/>\n  <app name=\"cache\"/>\n"),
			rep(base, "  <app name=\"web\" version=\"4.2.1\" replicas=\"2\"/>\n", ""),
			"<instance name=\"viatris\">\n  <app name=\"db\" version=\"13\"/>\n  <app name=\"cache\"/>\n  <owner>ops</owner>\n</instance>\n", nil},
		{"theirs reformatted, ours edits",
			rep(base, `version="4.2.1"`, `version="4.3.0"`),
			"<instance name='viatris'>\n\t<app name='web' version='4.2.1' replicas='2' />\n\t<app name='db' version='13' />\n\t<owner>ops</owner>\n</instance>",
			"<instance name='viatris'>\n\t<app name='web' version='4.3.0' replicas='2' />\n\t<app name='db' version='13' />\n\t<owner>ops</owner>\n</instance>", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, conflicts, err := manifest.Merge([]byte(base), []byte(tc.ours), []byte(tc.theirs), manifest.DiffOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("merged: got\n%q\nwant\n%q", got, tc.want)
			}
			var cs []string
			for _, c := range conflicts {
				cs = append(cs, c.String())
			}
			if strings.Join(cs, "\n") != strings.Join(tc.conflicts, "\n") {
				t.Errorf("conflicts: got\n%s\nwant\n%s", strings.Join(cs, "\n"), strings.Join(tc.conflicts, "\n"))
			}
		})
	}
}

// rnode is a random test tree. Tags a and b are keyed containers, d keyed
// leaves with text, c unkeyed leaves: they have no key attribute, only a
// distinguishing attribute u among others, and are inserted, removed and
// moved among their siblings; Merge must find them by content.
type rnode struct {
	tag, key string
	attrs    map[string]string
	text     string
	kids     []*rnode
}

func (n *rnode) copy() *rnode {
	c := &rnode{tag: n.tag, key: n.key, text: n.text, attrs: map[string]string{}}
	for k, v := range n.attrs {
		c.attrs[k] = v
	}
	for _, k := range n.kids {
		c.kids = append(c.kids, k.copy())
	}
	return c
}

func (n *rnode) xml(sb *strings.Builder, indent string) {
	sb.WriteString(indent + "<" + n.tag)
	if n.key != "" {
		sb.WriteString(` name="` + n.key + `"`)
	}
	var names []string
	for k := range n.attrs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		sb.WriteString(" " + k + `="` + n.attrs[k] + `"`)
	}
	switch {
	case len(n.kids) > 0:
		sb.WriteString(">\n")
		for _, k := range n.kids {
			k.xml(sb, indent+"  ")
		}
		sb.WriteString(indent + "</" + n.tag + ">\n")
	case n.text != "":
		sb.WriteString(">" + n.text + "</" + n.tag + ">\n")
	default:
		sb.WriteString("/>\n")
	}
}

func (n *rnode) String() string {
	var sb strings.Builder
	n.xml(&sb, "")
	return sb.String()
}

func (n *rnode) container() bool { return n.tag == "r" || n.tag == "a" || n.tag == "b" }

var keySeq int

func randNode(r *rand.Rand, depth int) *rnode {
	tags := []string{"a", "b", "c", "d"}
	if depth >= 2 {
		tags = []string{"c", "d"}
	}
	n := &rnode{tag: tags[r.IntN(len(tags))], attrs: map[string]string{}}
	keySeq++
	if n.tag != "c" {
		n.key = fmt.Sprintf("k%d", keySeq)
	} else {
		n.attrs["u"] = fmt.Sprintf("u%d", keySeq)
	}
	for _, a := range []string{"x", "y"} {
		if r.IntN(2) == 0 {
			n.attrs[a] = fmt.Sprint(r.IntN(3))
		}
	}
	if n.container() {
		for i := r.IntN(4); i > 0; i-- {
			n.kids = append(n.kids, randNode(r, depth+1))
		}
	} else if r.IntN(2) == 0 {
		n.text = fmt.Sprintf("t%d", r.IntN(3))
	}
	return n
}

// all returns the elements of the tree with their parents.
func (n *rnode) all(parent *rnode, f func(n, parent *rnode)) {
	f(n, parent)
	for _, k := range n.kids {
		k.all(n, f)
	}
}

func mutate(r *rand.Rand, root *rnode) {
	var nodes, parents []*rnode
	root.all(nil, func(n, p *rnode) { nodes = append(nodes, n); parents = append(parents, p) })
	i := r.IntN(len(nodes))
	n, p := nodes[i], parents[i]
	switch op := r.IntN(6); {
	case op == 0:
		n.attrs[[]string{"x", "y"}[r.IntN(2)]] = fmt.Sprint(r.IntN(3))
	case op == 1:
		delete(n.attrs, []string{"x", "y"}[r.IntN(2)])
	case op == 2 && !n.container():
		n.text = []string{"", "t0", "t1", "t2"}[r.IntN(4)]
	case op == 5 && p != nil && len(p.kids) > 1: // move n among its siblings
		for j, k := range p.kids {
			if k == n {
				p.kids = append(p.kids[:j], p.kids[j+1:]...)
				break
			}
		}
		at := r.IntN(len(p.kids) + 1)
		p.kids = append(p.kids[:at], append([]*rnode{n}, p.kids[at:]...)...)
	case op == 3 && p != nil:
		for j, k := range p.kids {
			if k == n {
				p.kids = append(p.kids[:j], p.kids[j+1:]...)
				break
			}
		}
	case op == 4 && n.container():
		k := randNode(r, 2)
		if r.IntN(3) == 0 && k.tag != "c" { // sometimes the same key on both sides
			k.key = fmt.Sprintf("shared%d", r.IntN(2))
			k.attrs = map[string]string{"x": fmt.Sprint(r.IntN(2))}
			k.text = ""
			for _, s := range n.kids {
				if s.key == k.key {
					return
				}
			}
		}
		at := r.IntN(len(n.kids) + 1)
		n.kids = append(n.kids[:at], append([]*rnode{k}, n.kids[at:]...)...)
	}
}

// flatten is the brute-force reference view: one entry per element
// existence, attribute and text, keyed by the element's identity path.
func flatten(n *rnode, id string, out map[string]string) {
	out[id+"!"] = "1"
	for k, v := range n.attrs {
		out[id+"@"+k] = v
	}
	if n.text != "" {
		out[id+"#"] = n.text
	}
	for _, k := range n.kids {
		kid := id + "/" + k.tag
		if k.key != "" {
			kid += "[" + k.key + "]"
		} else {
			kid += "(" + k.attrs["u"] + ")" // the identity the test knows; Merge does not
		}
		flatten(k, kid, out)
	}
}

// referenceMerge merges flat maps entry by entry; a conflict is an entry
// changed differently on both sides, or an entry whose element is gone.
func referenceMerge(b, o, t map[string]string) (map[string]string, bool) {
	keys := map[string]bool{}
	for _, m := range []map[string]string{b, o, t} {
		for k := range m {
			keys[k] = true
		}
	}
	out := map[string]string{}
	conflict := false
	for k := range keys {
		bv, bok := b[k]
		ov, ook := o[k]
		tv, tok := t[k]
		switch {
		case ov == bv && ook == bok || ov == tv && ook == tok:
			if tok {
				out[k] = tv
			}
		case tv == bv && tok == bok:
			if ook {
				out[k] = ov
			}
		default:
			conflict = true
		}
	}
	for k := range out {
		id := k[:strings.LastIndexAny(k, "!@#")]
		for p := id; p != ""; p = p[:strings.LastIndex(p, "/")] {
			if _, ok := out[p+"!"]; !ok {
				conflict = true
			}
		}
	}
	return out, conflict
}

// parseFlat reads merged XML back into the reference view.
func parseFlat(tb testing.TB, data []byte) map[string]string {
	tb.Helper()
	g, err := goTree(data)
	if err != nil {
		tb.Fatalf("merged result: %v\n%s", err, data)
	}
	var conv func(g *gnode) *rnode
	conv = func(g *gnode) *rnode {
		n := &rnode{tag: g.name, attrs: map[string]string{}}
		for _, a := range g.attrs {
			if a.Name.Local == "name" {
				n.key = a.Value
			} else {
				n.attrs[a.Name.Local] = a.Value
			}
		}
		if len(g.kids) == 0 && strings.TrimSpace(g.text) != "" {
			n.text = g.text
		}
		for _, k := range g.kids {
			n.kids = append(n.kids, conv(k))
		}
		return n
	}
	out := map[string]string{}
	flatten(conv(g), "/r", out)
	return out
}

// TestMergeProperty checks Merge against the brute-force reference on small
// random trees.
func TestMergeProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var merged, conflicted, ambiguous int
	for iter := 0; iter < 5000; iter++ {
		base := &rnode{tag: "r", attrs: map[string]string{}}
		for i := r.IntN(4) + 1; i > 0; i-- {
			base.kids = append(base.kids, randNode(r, 1))
		}
		ours, theirs := base.copy(), base.copy()
		for i := r.IntN(3) + 1; i > 0; i-- {
			mutate(r, ours)
		}
		for i := r.IntN(3) + 1; i > 0; i-- {
			mutate(r, theirs)
		}
		fb, fo, ft := map[string]string{}, map[string]string{}, map[string]string{}
		flatten(base, "/r", fb)
		flatten(ours, "/r", fo)
		flatten(theirs, "/r", ft)
		want, wantConflict := referenceMerge(fb, fo, ft)
		out, conflicts, err := manifest.Merge([]byte(base.String()), []byte(ours.String()), []byte(theirs.String()), manifest.DiffOptions{})
		if err != nil {
			t.Fatalf("iteration %d: %v", iter, err)
		}
		report := func(msg string) {
			t.Fatalf("iteration %d: %s\nbase:\n%s\nours:\n%s\ntheirs:\n%s\nmerged:\n%s\nconflicts: %v", iter, msg, base, ours, theirs, out, conflicts)
		}
		// Refusals: Merge would not guess between equally good candidates
		// (ambiguous), nor combine both sides' changes on an unkeyed
		// element that kept too little of itself (changed), where the
		// reference, which knows every element's identity, can.
		onlyRefusals := len(conflicts) > 0
		for _, c := range conflicts {
			onlyRefusals = onlyRefusals && (c.Kind == manifest.ConflictAmbiguous || c.Kind == manifest.ConflictChanged)
		}
		if onlyRefusals && !wantConflict {
			ambiguous++
			continue
		}
		if (len(conflicts) > 0) != wantConflict {
			report(fmt.Sprintf("got %d conflicts, reference conflict %v", len(conflicts), wantConflict))
		}
		if wantConflict {
			conflicted++
			continue
		}
		merged++
		got := parseFlat(t, out)
		if fmt.Sprint(sortedEntries(got)) != fmt.Sprint(sortedEntries(want)) {
			report(fmt.Sprintf("got  %v\nwant %v", sortedEntries(got), sortedEntries(want)))
		}
	}
	t.Logf("merge property: %d clean merges and %d conflicting cases agree with the reference; %d refusals (ambiguous or changed) where the reference merges", merged, conflicted, ambiguous)
	if ambiguous*50 > merged+conflicted+ambiguous {
		t.Errorf("%d refusals in %d cases, want at most 2%%", ambiguous, merged+conflicted+ambiguous)
	}
}

func sortedEntries(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
