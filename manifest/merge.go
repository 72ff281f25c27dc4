package manifest

import (
	"fmt"
	"sort"
	"strings"
)

// ConflictKind says what both sides changed incompatibly.
type ConflictKind string

// The conflict kinds.
const (
	// ConflictAttr: the same attribute was set (or removed) differently.
	ConflictAttr ConflictKind = "attr"
	// ConflictText: the same element's text was set differently.
	ConflictText ConflictKind = "text"
	// ConflictRemoved: one side removed an element the other side changed.
	ConflictRemoved ConflictKind = "removed"
	// ConflictInserted: both sides inserted an element with the same
	// identity but different content.
	ConflictInserted ConflictKind = "inserted"
	// ConflictAmbiguous: one side changed an element that cannot be found
	// uniquely on the other side (identical or equally similar siblings
	// were added, removed or changed there); Candidates lists the elements
	// it could be. Merge keeps theirs rather than guess.
	ConflictAmbiguous ConflictKind = "ambiguous"
)

// Conflict is one incompatible change found by Merge. Values are attribute
// values, texts or (for element conflicts) the element's XML; Absent lists
// the sides ("base", "ours", "theirs") where the attribute or element does
// not exist.
type Conflict struct {
	Kind   ConflictKind `json:"kind"`
	Path   string       `json:"path"`
	Attr   string       `json:"attr,omitempty"`
	Base   string       `json:"base"`
	Ours   string       `json:"ours"`
	Theirs string       `json:"theirs"`
	Absent []string     `json:"absent,omitempty"`
	// Candidates are, for an ambiguous conflict, the paths (in theirs) of
	// the elements the changed one could be.
	Candidates []string `json:"candidates,omitempty"`
}

// String renders the conflict on one line.
func (c Conflict) String() string {
	show := func(side, v string) string {
		for _, a := range c.Absent {
			if a == side {
				return "(absent)"
			}
		}
		return showValue(strings.Join(strings.Fields(v), " "))
	}
	target := c.Path
	if c.Attr != "" {
		target += "@" + c.Attr
	}
	out := fmt.Sprintf("%s conflict at %s: base %s, ours %s, theirs %s", c.Kind, target,
		show("base", c.Base), show("ours", c.Ours), show("theirs", c.Theirs))
	if len(c.Candidates) > 0 {
		out += "; candidates " + strings.Join(c.Candidates, ", ")
	}
	return out
}

// Merge merges base→ours into theirs at element granularity and returns
// theirs' bytes with our non-conflicting changes spliced in. Changes that
// touch different elements or attributes merge; the same attribute or text
// changed to different values, an element changed on one side and removed on
// the other, or the same element inserted on both sides with different
// content are conflicts, and there theirs is kept. The result is nil only
// when err is not.
func Merge(base, ours, theirs []byte, opts DiffOptions) ([]byte, []Conflict, error) {
	return merge(base, ours, theirs, opts, false)
}

// MergeTakeOurs is Merge where ours wins every attribute or text that both
// sides changed differently: what an operator's "take ours" means. Elements
// are matched as in Merge, so ours lands on the element it was made on
// wherever theirs moved it. The conflicts it still returns are those no
// value can settle: an element one side removed and the other changed, an
// insert both sides made differently, an element that cannot be placed
// uniquely (ambiguous, with candidates).
func MergeTakeOurs(base, ours, theirs []byte, opts DiffOptions) ([]byte, []Conflict, error) {
	return merge(base, ours, theirs, opts, true)
}

func merge(base, ours, theirs []byte, opts DiffOptions, preferOurs bool) ([]byte, []Conflict, error) {
	var trees [3]*elem
	for i, src := range [][]byte{base, ours, theirs} {
		d, err := ParseDocumentLimits(src, opts.Limits)
		if err != nil {
			return nil, nil, fmt.Errorf("merge: %s: %w", [3]string{"base", "ours", "theirs"}[i], err)
		}
		trees[i] = buildElem(d, d.elem, nil)
	}
	b, o, t := trees[0], trees[1], trees[2]
	if b.name != o.name || b.name != t.name {
		return nil, nil, fmt.Errorf("merge: %w: root elements <%s>, <%s>, <%s>", ErrUnsupportedChange, b.name, o.name, t.name)
	}
	mg := &merger{keys: opts.keys(), preferOurs: preferOurs}
	m := mg.elem(b, o, t, nil)
	edits := diffTrees(t, m, mg.keys, matchFrom, false)
	out, err := ApplyLimits(theirs, edits, opts.Limits)
	if err != nil {
		return nil, nil, fmt.Errorf("merge: %w", err)
	}
	return out, mg.conflicts, nil
}

// matchFrom pairs the merged tree's children with theirs by origin.
func matchFrom(olds, news []*elem) []int {
	index := make(map[*elem]int, len(olds))
	for i, o := range olds {
		index[o.from] = i
	}
	m := make([]int, len(news))
	for i, n := range news {
		j, ok := index[n.from]
		if n.from == nil || !ok {
			j = -1
		}
		m[i] = j
	}
	return m
}

type merger struct {
	keys       []string
	conflicts  []Conflict
	preferOurs bool // a value both sides changed differently is ours, not a conflict
}

func (mg *merger) conflict(c Conflict) { mg.conflicts = append(mg.conflicts, c) }

// val is a value that may be absent.
type val struct {
	v  string
	ok bool
}

// merge3 merges one value; conflict is set when both sides changed it differently.
func merge3(b, o, t val) (val, bool) {
	switch {
	case o == b || o == t:
		return t, false
	case t == b:
		return o, false
	}
	return t, true
}

func absent(b, o, t val) []string {
	var out []string
	for i, v := range []val{b, o, t} {
		if !v.ok {
			out = append(out, [3]string{"base", "ours", "theirs"}[i])
		}
	}
	return out
}

// elem merges three matched elements into a new element derived from t.
func (mg *merger) elem(b, o, t, parent *elem) *elem {
	m := &elem{name: t.name, parent: parent, from: t, raw: t.raw, leaf: true}
	mg.mergeAttrs(b, o, t, m)
	bt, ot, tt := textVal(b), textVal(o), textVal(t)
	text, clash := merge3(bt, ot, tt)
	if clash && mg.preferOurs {
		text, clash = ot, false
	}
	if clash {
		mg.conflict(Conflict{Kind: ConflictText, Path: pathOf(t, mg.keys), Base: bt.v, Ours: ot.v, Theirs: tt.v})
	}
	m.text = text.v
	m.kids = mg.kids(b, o, t, m)
	m.leaf = len(m.kids) == 0
	if !m.leaf && !t.leaf {
		m.text = t.text // mixed text of theirs is kept as is
	}
	return m
}

// textVal is the text of a leaf; elements with children have none.
func textVal(e *elem) val {
	if !e.leaf {
		return val{}
	}
	if isBlank(e.text) {
		return val{"", true}
	}
	return val{e.text, true}
}

func (mg *merger) mergeAttrs(b, o, t, m *elem) {
	var names []string
	seen := map[string]bool{}
	for _, e := range []*elem{t, o, b} {
		for _, a := range e.attrs {
			if !seen[a.name] {
				seen[a.name] = true
				names = append(names, a.name)
			}
		}
	}
	for _, name := range names {
		bv, bok := b.attr(name)
		ov, ook := o.attr(name)
		tv, tok := t.attr(name)
		r, clash := merge3(val{bv, bok}, val{ov, ook}, val{tv, tok})
		if clash && mg.preferOurs {
			r, clash = val{ov, ook}, false
		}
		if clash {
			mg.conflict(Conflict{Kind: ConflictAttr, Path: pathOf(t, mg.keys), Attr: name, Base: bv, Ours: ov, Theirs: tv,
				Absent: absent(val{bv, bok}, val{ov, ook}, val{tv, tok})})
		}
		if r.ok {
			m.attrs = append(m.attrs, kv{name, r.v})
		}
	}
}

// kids merges the children of three matched elements.
func (mg *merger) kids(b, o, t, m *elem) []*elem {
	obo, oAmb := matchKidsAmb(b.kids, o.kids, mg.keys)
	tbo, tAmb := matchKidsAmb(b.kids, t.kids, mg.keys)
	bo, boAmb := inverseAmb(obo, oAmb, len(b.kids)) // base index -> ours index
	bt, btAmb := inverseAmb(tbo, tAmb, len(b.kids)) // base index -> theirs index
	fromBase := map[*elem]*elem{}                   // theirs child -> merged child
	inOurs := map[*elem]*elem{}                     // ours child -> merged child
	dropped := map[*elem]bool{}                     // theirs children left out
	for i, bk := range b.kids {
		oi, ti := bo[i], bt[i]
		var ok, tk *elem
		if oi >= 0 {
			ok = o.kids[oi]
		}
		if ti >= 0 {
			tk = t.kids[ti]
		}
		// Which element of the other side is this one? When that is
		// ambiguous and this side changed it, say so instead of guessing.
		oursChanged := ok == nil || ok.sig != bk.sig
		theirsChanged := tk == nil || tk.sig != bk.sig
		if tk != nil && (btAmb[i] && oursChanged || boAmb[i] && theirsChanged) {
			mg.ambiguous(bk, ok, tk, t, tbo)
			mk := adopt(tk, m)
			fromBase[tk] = mk
			if ok != nil {
				inOurs[ok] = mk
			}
			continue
		}
		switch {
		case ok != nil && tk != nil:
			mk := mg.elem(bk, ok, tk, m)
			fromBase[tk] = mk
			inOurs[ok] = mk
		case ok == nil && tk != nil:
			if !adds(bk, tk, mg.keys) {
				dropped[tk] = true
			} else {
				mg.conflict(Conflict{Kind: ConflictRemoved, Path: pathOf(tk, mg.keys), Base: bk.raw, Theirs: tk.raw, Absent: []string{"ours"}})
			}
		case ok != nil && tk == nil:
			if adds(bk, ok, mg.keys) {
				mg.conflict(Conflict{Kind: ConflictRemoved, Path: pathOf(bk, mg.keys), Base: bk.raw, Ours: ok.raw, Absent: []string{"theirs"}})
			}
		}
	}
	for _, oi := range bo {
		if oi >= 0 && inOurs[o.kids[oi]] == nil {
			inOurs[o.kids[oi]] = gone // matched to base, but not in the result
		}
	}
	oursNew := mg.oursInserts(b, o, t, obo, tbo)
	var out []*elem
	for _, tk := range t.kids {
		switch {
		case fromBase[tk] != nil:
			out = append(out, fromBase[tk])
		case dropped[tk]:
		default:
			out = append(out, adopt(tk, m))
			if ok := oursNew[tk]; ok != nil {
				inOurs[ok] = out[len(out)-1]
			}
		}
	}
	return mg.placeInserts(o, m, out, inOurs)
}

// ambiguous reports that base child bk cannot be told apart in theirs (or
// ours): the candidates are theirs' same-tag children that are identical to
// its match or new in theirs.
func (mg *merger) ambiguous(bk, ok, tk, t *elem, tbo []int) {
	var cands []string
	steps := kidSteps(t, mg.keys)
	prefix := pathOf(t, mg.keys)
	for i, c := range t.kids {
		if c.name == tk.name && (c.sig == tk.sig || tbo[i] < 0 || c == tk) {
			cands = append(cands, prefix+"/"+steps[i])
		}
	}
	c := Conflict{Kind: ConflictAmbiguous, Path: pathOf(tk, mg.keys), Base: bk.raw, Theirs: tk.raw, Candidates: cands}
	if ok != nil {
		c.Ours = ok.raw
	} else {
		c.Absent = []string{"ours"}
	}
	mg.conflict(c)
}

// oursInserts maps theirs' new children to ours' new children with the same
// identity (the same key, or for unkeyed children the same content),
// reporting a conflict when keyed ones differ in content.
func (mg *merger) oursInserts(b, o, t *elem, obo, tbo []int) map[*elem]*elem {
	out := map[*elem]*elem{}
	var oNew, tNew []*elem
	for i, j := range obo {
		if j < 0 {
			oNew = append(oNew, o.kids[i])
		}
	}
	for i, j := range tbo {
		if j < 0 {
			tNew = append(tNew, t.kids[i])
		}
	}
	if len(oNew) == 0 || len(tNew) == 0 {
		return out
	}
	byID := map[string]*elem{}
	bySig := map[uint64][]*elem{}
	for _, tk := range tNew {
		if _, v, ok := keyOf(tk, mg.keys); ok {
			k, _, _ := keyOf(tk, mg.keys)
			id := tk.name + "\x00" + k + "=" + v
			if byID[id] == nil {
				byID[id] = tk
			}
		} else {
			bySig[tk.sig] = append(bySig[tk.sig], tk)
		}
	}
	taken := map[*elem]bool{}
	for _, ok := range oNew {
		if k, v, keyed := keyOf(ok, mg.keys); keyed {
			tk := byID[ok.name+"\x00"+k+"="+v]
			if tk == nil || taken[tk] {
				continue
			}
			taken[tk] = true
			out[tk] = ok
			if !same(ok, tk) {
				mg.conflict(Conflict{Kind: ConflictInserted, Path: pathOf(tk, mg.keys), Ours: ok.raw, Theirs: tk.raw, Absent: []string{"base"}})
			}
			continue
		}
		for _, tk := range bySig[ok.sig] {
			if !taken[tk] {
				taken[tk] = true
				out[tk] = ok // both inserted the same element: once
				break
			}
		}
	}
	return out
}

// gone marks a child of ours that matched base but is not in the result.
var gone = &elem{}

// placeInserts adds ours' new children to out, each after the merged
// counterpart of its nearest preceding sibling in ours (else first).
func (mg *merger) placeInserts(o, m *elem, out []*elem, inOurs map[*elem]*elem) []*elem {
	var prev *elem
	for _, ok := range o.kids {
		if mk := inOurs[ok]; mk == gone {
			continue
		} else if mk != nil {
			prev = mk
			continue
		}
		ins := adopt(ok, m)
		ins.from = nil
		ins.raw = ok.raw
		at := 0
		if prev != nil {
			for i, x := range out {
				if x == prev {
					at = i + 1
				}
			}
		}
		out = append(out[:at], append([]*elem{ins}, out[at:]...)...)
		inOurs[ok] = ins
		prev = ins
	}
	return out
}

// adopt copies a subtree of theirs (or ours) into the merged tree, keeping
// the origin of every element.
func adopt(e, parent *elem) *elem {
	c := &elem{name: e.name, attrs: e.attrs, text: e.text, leaf: e.leaf, parent: parent, raw: e.raw, from: e}
	for _, k := range e.kids {
		c.kids = append(c.kids, adopt(k, c))
	}
	return c
}

// inverseAmb turns a news->olds match and its ambiguity into olds->news.
func inverseAmb(m []int, amb []bool, n int) ([]int, []bool) {
	out := make([]int, n)
	outAmb := make([]bool, n)
	for i := range out {
		out[i] = -1
	}
	for i, j := range m {
		if j >= 0 {
			out[j] = i
			outAmb[j] = amb[i]
		}
	}
	return out, outAmb
}

// adds reports whether e holds anything base does not: a new or changed
// attribute or text, or a new element. Removing an element conflicts only
// with such changes on the other side; removals inside it agree with it.
func adds(base, e *elem, keys []string) bool {
	for _, a := range e.attrs {
		if v, ok := base.attr(a.name); !ok || v != a.value {
			return true
		}
	}
	if e.leaf && !isBlank(e.text) && (!base.leaf || e.text != base.text) {
		return true
	}
	for i, j := range matchKids(base.kids, e.kids, keys) {
		if j < 0 || adds(base.kids[j], e.kids[i], keys) {
			return true
		}
	}
	return false
}

// same reports semantic equality of two subtrees (attribute order ignored).
func same(a, b *elem) bool {
	if a.name != b.name || a.leaf != b.leaf || !sameText(a.text, b.text) || len(a.attrs) != len(b.attrs) || len(a.kids) != len(b.kids) {
		return false
	}
	as, bs := sortedAttrs(a), sortedAttrs(b)
	for i := range as {
		if as[i] != bs[i] {
			return false
		}
	}
	for i := range a.kids {
		if !same(a.kids[i], b.kids[i]) {
			return false
		}
	}
	return true
}

func sortedAttrs(e *elem) []kv {
	s := append([]kv(nil), e.attrs...)
	sort.Slice(s, func(i, j int) bool { return s[i].name < s[j].name })
	return s
}
