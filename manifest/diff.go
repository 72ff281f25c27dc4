package manifest

import (
	"fmt"
	"strings"
)

// DefaultKeyAttrs are the attributes that identify an element among its
// same-tag siblings when DiffOptions.KeyAttrs is empty.
var DefaultKeyAttrs = []string{"name", "id", "key"}

// DiffOptions tunes how elements are matched between versions. The zero
// value matches by tag plus the first of DefaultKeyAttrs an element has, and
// siblings without a key by content (see match.go).
type DiffOptions struct {
	KeyAttrs []string
	// Limits caps the documents' size and depth; zero fields take the
	// defaults (see Limits).
	Limits Limits
}

func (o DiffOptions) keys() []string {
	if len(o.KeyAttrs) == 0 {
		return DefaultKeyAttrs
	}
	return o.KeyAttrs
}

// kv is one attribute of an elem.
type kv struct{ name, value string }

// elem is the semantic view of an element: what Diff and Merge compare.
// Comments, processing instructions and whitespace between elements are not
// part of it.
type elem struct {
	name    string
	attrs   []kv
	text    string // leaf: the decoded text; otherwise the trimmed text runs
	leaf    bool   // no child elements
	kids    []*elem
	parent  *elem
	raw     string // the element's source bytes
	from    *elem  // merge: the element of theirs this one continues
	sig     uint64 // signature of the element as parsed (see computeSig)
	shallow uint64 // signature of its tag and attributes only
}

func (e *elem) attr(name string) (string, bool) {
	for _, a := range e.attrs {
		if a.name == name {
			return a.value, true
		}
	}
	return "", false
}

// buildElem converts the lossless element n of d into an elem tree. Every
// element's raw bytes share one copy of the source, so the tree's memory is
// linear in the document whatever its depth.
func buildElem(d *Document, n *node, parent *elem) *elem {
	return buildElemSrc(d, string(d.src), n, parent)
}

func buildElemSrc(d *Document, src string, n *node, parent *elem) *elem {
	e := &elem{name: n.name, parent: parent, raw: src[n.start:n.end], leaf: true}
	e.attrs = make([]kv, len(n.attrs))
	for i, a := range n.attrs {
		e.attrs[i] = kv{a.name, a.value}
	}
	var runs []string
	for _, c := range n.children {
		switch c.kind {
		case kindElement:
			e.leaf = false
			e.kids = append(e.kids, buildElemSrc(d, src, c, e))
		case kindText, kindCData:
			runs = append(runs, c.textOf(d))
		}
	}
	if e.leaf {
		e.text = strings.Join(runs, "")
	} else {
		var sb strings.Builder
		for _, r := range runs {
			sb.WriteString(strings.TrimSpace(r))
		}
		e.text = sb.String()
	}
	e.computeSig()
	return e
}

// textOf returns the decoded text of a text or CDATA node.
func (c *node) textOf(d *Document) string {
	if c.kind == kindCData {
		s, e := cdataInner(c)
		return normalizeNewlines(d.src[s:e])
	}
	return decodeString(d.src[c.start:c.end], false)
}

// keyOf returns the first key attribute e has.
func keyOf(e *elem, keys []string) (string, string, bool) {
	for _, k := range keys {
		if v, ok := e.attr(k); ok {
			return k, v, true
		}
	}
	return "", "", false
}

// splitName splits a qualified name as etree does (at the first colon).
func splitName(s string) (string, string) {
	if i := strings.IndexByte(s, ':'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return "", s
}

// tagMatches reports whether the path step tag selects an element named name.
func tagMatches(tag, name string) bool {
	ts, tl := splitName(tag)
	ns, nl := splitName(name)
	return tl == nl && (ts == "" || ts == ns)
}

// attrMatches reports whether the predicate [@key='v'] selects e.
func attrMatches(e *elem, key, v string) bool {
	ks, kl := splitName(key)
	for _, a := range e.attrs {
		as, al := splitName(a.name)
		if al == kl && (ks == "" || ks == as) && a.value == v {
			return true
		}
	}
	return false
}

// pathOf returns an etree path that selects exactly e in its tree.
func pathOf(e *elem, keys []string) string {
	var steps []string
	for ; e != nil; e = e.parent {
		steps = append(steps, step(e, keys))
	}
	var sb strings.Builder
	for i := len(steps) - 1; i >= 0; i-- {
		sb.WriteByte('/')
		sb.WriteString(steps[i])
	}
	return sb.String()
}

// step returns the path step that selects e among its siblings.
func step(e *elem, keys []string) string {
	if e.parent == nil {
		return e.name
	}
	var same []*elem
	pos := 0
	for _, s := range e.parent.kids {
		if tagMatches(e.name, s.name) {
			same = append(same, s)
			if s == e {
				pos = len(same)
			}
		}
	}
	if len(same) == 1 {
		return e.name
	}
	if k, v, ok := keyOf(e, keys); ok && quotable(v) {
		n := 0
		for _, s := range same {
			if attrMatches(s, k, v) {
				n++
			}
		}
		if n == 1 {
			return keyStep(e.name, k, v)
		}
	}
	return fmt.Sprintf("%s[%d]", e.name, pos)
}

// quotable reports whether v can stand in an etree path predicate.
func quotable(v string) bool {
	return !strings.Contains(v, "[") && !(strings.Contains(v, "'") && strings.Contains(v, `"`))
}

func keyStep(tag, key, v string) string {
	q := "'"
	if strings.Contains(v, "'") {
		q = `"`
	}
	return tag + "[@" + key + "=" + q + v + q + "]"
}

// Diff returns the edits that turn old into new, matching elements by tag
// plus key attribute, else by content. Each edit records the identity of its
// element in old (Sig, BasePath). Applying the
// edits to old changes only the bytes of what differs semantically. Moves of
// keyed siblings are not edits: order among matched siblings is kept from old.
func Diff(old, new []byte, opts DiffOptions) ([]Edit, error) {
	od, err := ParseDocumentLimits(old, opts.Limits)
	if err != nil {
		return nil, fmt.Errorf("diff: old: %w", err)
	}
	nd, err := ParseDocumentLimits(new, opts.Limits)
	if err != nil {
		return nil, fmt.Errorf("diff: new: %w", err)
	}
	o, n := buildElem(od, od.elem, nil), buildElem(nd, nd.elem, nil)
	if o.name != n.name {
		return nil, fmt.Errorf("diff: %w: root element <%s> became <%s>", ErrUnsupportedChange, o.name, n.name)
	}
	keys := opts.keys()
	d := &differ{keys: keys, match: func(olds, news []*elem) []int { return matchKids(olds, news, keys) }, identity: true}
	d.elem(clone(o, nil), n)
	if len(d.mixed) > 0 {
		// No edit can carry it, and dropping it would lose the change silently.
		return nil, fmt.Errorf("diff: %w: the text between the child elements of %s changed; only attributes, the text of elements without children and whole elements are edits", ErrUnsupportedChange, strings.Join(d.mixed, ", "))
	}
	return d.edits, nil
}

// sameText compares leaf texts; whitespace-only texts are all equal, since
// formatters add and drop them freely (<a>\n</a> and <a/>).
func sameText(a, b string) bool {
	return a == b || isBlank(a) && isBlank(b)
}

func isBlank(s string) bool { return strings.TrimSpace(s) == "" }

// differ accumulates edits while keeping a working copy of the old tree in
// step with them, so that every path is computed against the document the
// edit will be applied to.
type differ struct {
	keys     []string
	match    func(olds, news []*elem) []int
	edits    []Edit
	identity bool     // record Sig and BasePath on edits
	mixed    []string // paths of elements whose text between children changed
}

func diffTrees(old, new *elem, keys []string, match func(olds, news []*elem) []int, identity bool) []Edit {
	d := &differ{keys: keys, match: match, identity: identity}
	d.elem(clone(old, nil), new)
	return d.edits
}

// clone deep-copies e, remembering e as the copy's origin; the working tree
// is mutated as edits are emitted.
func clone(e *elem, parent *elem) *elem {
	c := *e
	c.parent = parent
	c.from = e
	c.attrs = append([]kv(nil), e.attrs...)
	c.kids = make([]*elem, len(e.kids))
	for i, k := range e.kids {
		c.kids[i] = clone(k, &c)
	}
	return &c
}

// add records an edit of the working element w, with w's identity in the
// old version (its signature and path there) when it has one.
func (d *differ) add(w *elem, e Edit) {
	if o := w.from; o != nil && d.identity {
		e.Sig = sigString(o.sig)
		e.BasePath = pathOf(o, d.keys)
	}
	d.edits = append(d.edits, e)
}

// elem emits the edits that turn the working element w into n.
func (d *differ) elem(w, n *elem) {
	d.attrs(w, n)
	if w.leaf && n.leaf && !sameText(w.text, n.text) {
		d.add(w, Edit{Op: OpSetText, Path: pathOf(w, d.keys), Value: n.text})
		w.text = n.text
	}
	if w.leaf && !n.leaf && strings.TrimSpace(w.text) != "" {
		d.add(w, Edit{Op: OpSetText, Path: pathOf(w, d.keys), Value: ""})
		w.text = ""
	}
	// Text between child elements is never a reason to replace an element
	// whose children match. Whitespace there is formatting; other text
	// there has no edit, so Diff refuses it rather than drop it.
	if !w.leaf && !n.leaf && w.text != n.text {
		d.mixed = append(d.mixed, pathOf(w, d.keys))
	}
	m := d.match(w.kids, n.kids)
	matched := make([]bool, len(w.kids))
	for _, j := range m {
		if j >= 0 {
			matched[j] = true
		}
	}
	pairs := make(map[*elem]*elem)
	for i, j := range m {
		if j >= 0 {
			pairs[n.kids[i]] = w.kids[j]
		}
	}
	for j := len(w.kids) - 1; j >= 0; j-- {
		if !matched[j] {
			d.add(w.kids[j], Edit{Op: OpRemove, Path: pathOf(w.kids[j], d.keys)})
			w.kids = append(w.kids[:j], w.kids[j+1:]...)
		}
	}
	for _, nk := range n.kids {
		if wk, ok := pairs[nk]; ok {
			d.elem(wk, nk)
		}
	}
	if len(w.kids) == 0 && !w.leaf && n.leaf {
		w.leaf = true
		if strings.TrimSpace(n.text) != "" || w.text != "" {
			d.add(w, Edit{Op: OpSetText, Path: pathOf(w, d.keys), Value: n.text})
		}
		w.text = n.text
	}
	d.inserts(w, n, pairs)
}

// attrs emits attribute edits: changed and new ones in n's order, then removals.
func (d *differ) attrs(w, n *elem) {
	for _, a := range n.attrs {
		if v, ok := w.attr(a.name); !ok || v != a.value {
			d.add(w, Edit{Op: OpSetAttr, Path: pathOf(w, d.keys), Attr: a.name, Value: a.value})
			setKV(w, a.name, a.value)
		}
	}
	for i := 0; i < len(w.attrs); i++ {
		if _, ok := n.attr(w.attrs[i].name); !ok {
			d.add(w, Edit{Op: OpRemoveAttr, Path: pathOf(w, d.keys), Attr: w.attrs[i].name})
			w.attrs = append(w.attrs[:i], w.attrs[i+1:]...)
			i--
		}
	}
}

func setKV(e *elem, name, value string) {
	for i := range e.attrs {
		if e.attrs[i].name == name {
			e.attrs[i].value = value
			return
		}
	}
	e.attrs = append(e.attrs, kv{name, value})
}

// inserts emits the insertion of n's unmatched children, in n's order.
func (d *differ) inserts(w, n *elem, pairs map[*elem]*elem) {
	for i, nk := range n.kids {
		if _, ok := pairs[nk]; ok {
			continue
		}
		at := i
		if at > len(w.kids) {
			at = len(w.kids)
		}
		index := at + 1
		if at == len(w.kids) {
			index = 0
		}
		ins := clone(nk, w)
		ins.from = nil
		w.kids = append(w.kids[:at], append([]*elem{ins}, w.kids[at:]...)...)
		w.leaf = false
		d.add(w, Edit{Op: OpInsert, Path: pathOf(w, d.keys), XML: nk.raw, Index: index})
	}
}

// kidSteps returns the path step of every child of p, the same as step
// would, in time linear in the number of children.
func kidSteps(p *elem, keys []string) []string {
	groups := map[string][]*elem{} // by step tag: local name, and prefix:local
	for _, k := range p.kids {
		s, l := splitName(k.name)
		groups[l] = append(groups[l], k)
		if s != "" {
			groups[k.name] = append(groups[k.name], k)
		}
	}
	type stat struct {
		pos   map[*elem]int
		count map[string]int // key attr name + "\x00" + value -> elements matching [@name='value']
	}
	stats := map[string]*stat{}
	statOf := func(tag string) *stat {
		if st := stats[tag]; st != nil {
			return st
		}
		st := &stat{pos: map[*elem]int{}, count: map[string]int{}}
		for i, g := range groups[tag] {
			st.pos[g] = i + 1
			for _, key := range keys {
				seen := map[string]bool{}
				for _, a := range g.attrs {
					if _, al := splitName(a.name); al == key && !seen[a.value] {
						seen[a.value] = true
						st.count[key+"\x00"+a.value]++
					}
				}
			}
		}
		stats[tag] = st
		return st
	}
	out := make([]string, len(p.kids))
	for i, k := range p.kids {
		tag := k.name
		if s, l := splitName(k.name); s == "" {
			tag = l
		}
		if len(groups[tag]) == 1 {
			out[i] = k.name
			continue
		}
		st := statOf(tag)
		if key, v, ok := keyOf(k, keys); ok && !strings.Contains(key, ":") && quotable(v) && st.count[key+"\x00"+v] == 1 {
			out[i] = keyStep(k.name, key, v)
			continue
		}
		out[i] = fmt.Sprintf("%s[%d]", k.name, st.pos[k])
	}
	return out
}
