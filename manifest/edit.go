package manifest

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// EditOp is the kind of an Edit.
type EditOp string

// The edit operations.
const (
	OpSetAttr    EditOp = "set-attr"    // set Attr to Value, adding the attribute when absent
	OpRemoveAttr EditOp = "remove-attr" // remove Attr; a no-op when it is already absent
	OpSetText    EditOp = "set-text"    // set the text of a leaf element to Value
	OpInsert     EditOp = "insert"      // insert the element XML as a child at Index
	OpRemove     EditOp = "remove"      // remove the element
)

// Edit is one change to an XML document, addressed by an etree path that must
// match exactly one element. Edits are plain data: the write-back journal
// stores them as JSON.
type Edit struct {
	Op    EditOp `json:"op"`
	Path  string `json:"path"`
	Attr  string `json:"attr,omitempty"`
	Value string `json:"value,omitempty"`
	XML   string `json:"xml,omitempty"`
	// Index is, for insert, the 1-based position the new element takes among
	// the child elements of Path; 0 appends it after the last one.
	Index int `json:"index,omitempty"`
	// Node, when not 0, makes an insert exact (Invert produces such inserts
	// to undo a remove byte for byte). It is the 1-based position the new
	// element takes among the items of Path: its child nodes that are not
	// text (elements, comments, processing instructions, CDATA sections) and
	// the words (runs of bytes other than whitespace) of its text. It must
	// agree with Index when Index is set. The whitespace between the items
	// that will surround the element is replaced by Lead, XML written
	// verbatim (it must be exactly one element) and Trail; no indentation or
	// line ending is inferred, and no text other than whitespace is touched.
	Node int `json:"node,omitempty"`
	// Lead is, for an exact insert, the exact whitespace to put before the
	// element, replacing the inferred indentation. It may contain only XML
	// whitespace (space, tab, CR, LF).
	Lead string `json:"lead,omitempty"`
	// Trail is, for an exact insert, the exact whitespace to put after the
	// element. It may contain only XML whitespace.
	Trail string `json:"trail,omitempty"`
	// Sig is the identity Diff records: the signature (tag, attributes,
	// text and descendants) of the edited element (for an insert, of the
	// parent) as it was in the old version. Reapply finds the element by it
	// when the file moved; edits without it (older journal entries) are
	// re-applied by position only.
	Sig string `json:"sig,omitempty"`
	// BasePath is the element's path in the old version, before the edits
	// before this one: a hint next to Sig (Path is where Apply finds it
	// after them).
	BasePath string `json:"base_path,omitempty"`
}

// String renders the edit for commit messages, for example
// "set /instance/app[@name='web']@version 4.3.0".
func (e Edit) String() string {
	switch e.Op {
	case OpSetAttr:
		return fmt.Sprintf("set %s@%s %s", e.Path, e.Attr, showValue(e.Value))
	case OpRemoveAttr:
		return fmt.Sprintf("remove %s@%s", e.Path, e.Attr)
	case OpSetText:
		return fmt.Sprintf("set %s text %s", e.Path, showValue(e.Value))
	case OpInsert:
		frag := strings.Join(strings.Fields(e.XML), " ")
		if len(frag) > 60 {
			frag = frag[:57] + "..."
		}
		if e.Index > 0 {
			return fmt.Sprintf("insert %s[%d] %s", e.Path, e.Index, frag)
		}
		return fmt.Sprintf("insert %s %s", e.Path, frag)
	case OpRemove:
		return fmt.Sprintf("remove %s", e.Path)
	}
	return fmt.Sprintf("%s %s", e.Op, e.Path)
}

func showValue(v string) string {
	if v == "" || strings.ContainsAny(v, " \t\r\n\"'") || !strconv.IsPrint(firstRune(v)) {
		return strconv.Quote(v)
	}
	return v
}

func firstRune(s string) rune {
	for _, r := range s {
		return r
	}
	return ' '
}

// Apply applies edits in order to data by splicing bytes: only the edited
// attribute, text or element changes. An edit whose path does not match
// exactly one element fails with a *TargetError (wrapped) naming the path.
// The document is parsed with the default Limits.
func Apply(data []byte, edits []Edit) ([]byte, error) {
	return ApplyLimits(data, edits, Limits{})
}

// ApplyLimits is Apply with the given Limits.
func ApplyLimits(data []byte, edits []Edit, lim Limits) ([]byte, error) {
	for i, e := range edits {
		doc, err := ParseDocumentLimits(data, lim)
		if err != nil {
			return nil, fmt.Errorf("apply: %w", err)
		}
		data, err = doc.Apply(e)
		if err != nil {
			return nil, fmt.Errorf("apply edit %d (%s): %w", i+1, e, err)
		}
	}
	return data, nil
}

// Apply returns the document's bytes with e applied. The document itself is
// not changed.
func (d *Document) Apply(e Edit) ([]byte, error) {
	if e.Op == OpSetAttr || e.Op == OpRemoveAttr {
		if !isXMLName(e.Attr) {
			return nil, fmt.Errorf("%w: invalid attribute name %q", ErrBadEdit, e.Attr)
		}
	}
	switch e.Op {
	case OpSetAttr, OpRemoveAttr, OpSetText, OpInsert, OpRemove:
	default:
		return nil, fmt.Errorf("%w: unknown operation %q", ErrBadEdit, e.Op)
	}
	if err := checkExact(e); err != nil {
		return nil, err
	}
	n, err := d.findOne(e.Path)
	if err != nil {
		return nil, err
	}
	switch e.Op {
	case OpSetAttr:
		return d.setAttr(n, e.Attr, e.Value), nil
	case OpRemoveAttr:
		return d.removeAttr(n, e.Attr), nil
	case OpSetText:
		return d.setText(n, e.Value)
	case OpInsert:
		if e.Node > 0 {
			return d.insertExact(n, e)
		}
		return d.insert(n, e.Index, e.XML)
	default:
		return d.remove(n)
	}
}

// splice is a replacement of src[start:end] by text.
type splice struct {
	start, end int
	text       string
}

// splice returns a copy of the source with non-overlapping splices applied.
func (d *Document) splice(ss ...splice) []byte {
	sort.Slice(ss, func(i, j int) bool { return ss[i].start < ss[j].start })
	size := len(d.src)
	for _, s := range ss {
		size += len(s.text) - (s.end - s.start)
	}
	out := make([]byte, 0, size)
	at := 0
	for _, s := range ss {
		out = append(out, d.src[at:s.start]...)
		out = append(out, s.text...)
		at = s.end
	}
	return append(out, d.src[at:]...)
}

// unchanged returns a copy of the source.
func (d *Document) unchanged() []byte { return append([]byte(nil), d.src...) }

// minimalSplice replaces only the raw bytes of the units that differ between
// the old decoded value and value. rawEnd is where the value ends.
func minimalSplice(us []unit, rawEnd int, value string, escape func(mid, prev string) string) splice {
	ui, pos := 0, 0
	for ui < len(us) && strings.HasPrefix(value[pos:], us[ui].dec) {
		pos += len(us[ui].dec)
		ui++
	}
	uj, epos := len(us), len(value)
	for uj > ui && strings.HasSuffix(value[pos:epos], us[uj-1].dec) {
		epos -= len(us[uj-1].dec)
		uj--
	}
	rs := rawEnd
	if ui < len(us) {
		rs = us[ui].rs
	}
	re := rs
	if uj > ui {
		re = us[uj-1].re
	}
	return splice{rs, re, escape(value[pos:epos], value[:pos])}
}

func nameEnd(n *node) int { return n.start + 1 + len(n.name) }

func (d *Document) setAttr(n *node, name, value string) []byte {
	if a, _, ok := n.attr(name); ok {
		if a.value == value {
			return d.unchanged()
		}
		us := decodeUnits(d.src[a.valueStart:a.valueEnd], a.valueStart, true)
		return d.splice(minimalSplice(us, a.valueEnd, value, func(mid, _ string) string { return escapeAttr(mid, a.quote) }))
	}
	q := d.quoteFor(n)
	at, sep := nameEnd(n), " "
	if k := len(n.attrs); k > 0 {
		last := n.attrs[k-1]
		prev := nameEnd(n)
		if k > 1 {
			prev = n.attrs[k-2].end()
		}
		if ws := d.src[prev:last.start]; strings.ContainsAny(string(ws), "\r\n") {
			sep = string(ws)
		}
		at = last.end()
	}
	text := sep + name + "=" + string(q) + escapeAttr(value, q) + string(q)
	return d.splice(splice{at, at, text})
}

// quoteFor returns the quote character new attributes of n use: that of n's
// attributes, else the document's first attribute, else '"'.
func (d *Document) quoteFor(n *node) byte {
	if len(n.attrs) > 0 {
		return n.attrs[0].quote
	}
	var q byte = '"'
	var walk func(m *node) bool
	walk = func(m *node) bool {
		if len(m.attrs) > 0 {
			q = m.attrs[0].quote
			return true
		}
		for _, c := range m.children {
			if c.kind == kindElement && walk(c) {
				return true
			}
		}
		return false
	}
	walk(d.elem)
	return q
}

func (d *Document) removeAttr(n *node, name string) []byte {
	a, i, ok := n.attr(name)
	if !ok {
		return d.unchanged()
	}
	prev := nameEnd(n)
	if i > 0 {
		prev = n.attrs[i-1].end()
	}
	return d.splice(splice{prev, a.end(), ""})
}

func (d *Document) setText(n *node, value string) ([]byte, error) {
	for _, c := range n.children {
		if c.kind == kindElement {
			return nil, fmt.Errorf("%w: <%s> has child elements; set text on a leaf element", ErrBadEdit, n.name)
		}
	}
	if d.text(n) == value {
		return d.unchanged(), nil
	}
	var textish []*node
	for _, c := range n.children {
		if c.kind == kindText || c.kind == kindCData {
			textish = append(textish, c)
		}
	}
	if len(textish) == 0 {
		return d.splice(d.openElement(n, escapeText(value, "", d.newline))), nil
	}
	if sp, ok := d.spliceTextRuns(textish, value); ok {
		return d.splice(sp), nil
	}
	// The value goes into one run (the first CDATA section, so that CDATA
	// stays CDATA, else the first text run) and the other runs go.
	receiver := textish[0]
	for _, c := range textish {
		if c.kind == kindCData {
			receiver = c
			break
		}
	}
	ss := []splice{d.replaceText(receiver, value, true)}
	for _, c := range textish {
		if c != receiver {
			ss = append(ss, splice{c.start, c.end, ""})
		}
	}
	return d.splice(ss...), nil
}

// replaceText rewrites the content of a text or CDATA node, touching only the
// bytes that change when minimal is set and no "]]>" is involved.
func (d *Document) replaceText(c *node, value string, minimal bool) splice {
	minimal = minimal && !strings.Contains(value, "]]>")
	if c.kind == kindCData {
		s, e := cdataInner(c)
		if !minimal {
			return splice{s, e, escapeCData(value, d.newline)}
		}
		return minimalSplice(cdataUnits(d.src[s:e], s), e, value, func(mid, _ string) string { return escapeCData(mid, d.newline) })
	}
	if !minimal {
		return splice{c.start, c.end, escapeText(value, "", d.newline)}
	}
	us := decodeUnits(d.src[c.start:c.end], c.start, false)
	return minimalSplice(us, c.end, value, func(mid, prev string) string { return escapeText(mid, prev, d.newline) })
}

// spliceTextRuns handles text split into several runs (text and CDATA
// separated by comments or processing instructions, or adjacent): when only
// one run's bytes change, only they are rewritten, escaped for that run.
// ok is false when the change spans runs.
func (d *Document) spliceTextRuns(runs []*node, value string) (splice, bool) {
	if len(runs) < 2 || strings.Contains(value, "]]>") {
		return splice{}, false
	}
	var us []unit
	for _, c := range runs {
		if c.kind == kindCData {
			s, e := cdataInner(c)
			us = append(us, cdataUnits(d.src[s:e], s)...)
			continue
		}
		us = append(us, decodeUnits(d.src[c.start:c.end], c.start, false)...)
	}
	var mid, prev string
	sp := minimalSplice(us, runs[len(runs)-1].end, value, func(m, p string) string { mid, prev = m, p; return m })
	for _, c := range runs {
		s, e := c.start, c.end
		if c.kind == kindCData {
			s, e = cdataInner(c)
		}
		if s <= sp.start && sp.end <= e {
			if c.kind == kindCData {
				sp.text = escapeCData(mid, d.newline)
			} else {
				sp.text = escapeText(mid, prev, d.newline)
			}
			return sp, true
		}
	}
	return splice{}, false
}

// cdataUnits splits CDATA content into units (line breaks normalized).
func cdataUnits(raw []byte, base int) []unit {
	us := make([]unit, 0, len(raw))
	for i := 0; i < len(raw); {
		if raw[i] == '\r' {
			n := 1
			if i+1 < len(raw) && raw[i+1] == '\n' {
				n = 2
			}
			us = append(us, unit{"\n", base + i, base + i + n})
			i += n
			continue
		}
		us = append(us, unit{string(raw[i : i+1]), base + i, base + i + 1})
		i++
	}
	return us
}

// openElement returns the splice that puts content inside n, turning
// <a/> into <a>content</a>; n must have no text.
func (d *Document) openElement(n *node, content string) splice {
	if !n.selfClosing {
		return splice{n.startTagEnd, n.startTagEnd, content}
	}
	cut := nameEnd(n)
	if k := len(n.attrs); k > 0 {
		cut = n.attrs[k-1].end()
	}
	return splice{cut, n.end, ">" + content + "</" + n.name + ">"}
}

// lineBreakBefore returns the line break and indentation before offset when
// only spaces and tabs stand between the start of the line and offset.
func (d *Document) lineBreakBefore(offset int) (string, bool) {
	j := offset
	for j > 0 && (d.src[j-1] == ' ' || d.src[j-1] == '\t') {
		j--
	}
	switch {
	case j >= 2 && d.src[j-2] == '\r' && d.src[j-1] == '\n':
		return string(d.src[j-2 : offset]), true
	case j >= 1 && (d.src[j-1] == '\n' || d.src[j-1] == '\r'):
		return string(d.src[j-1 : offset]), true
	}
	return "", false
}

// indentOf returns the indentation of the line offset starts when only
// spaces and tabs precede it.
func (d *Document) indentOf(offset int) (string, bool) {
	brk, ok := d.lineBreakBefore(offset)
	return strings.TrimLeft(brk, "\r\n"), ok
}

// indentUnit returns one level of indentation as the document uses it.
func (d *Document) indentUnit() string {
	d.indOnce.Do(func() {
		d.indent = "  "
		var walk func(p *node) bool
		walk = func(p *node) bool {
			pi, pok := d.indentOf(p.start)
			if p == d.elem {
				pi, pok = "", true
			}
			for _, c := range p.children {
				if c.kind != kindElement {
					continue
				}
				if ci, ok := d.indentOf(c.start); ok && pok && len(ci) > len(pi) && strings.HasPrefix(ci, pi) {
					d.indent = ci[len(pi):]
					return true
				}
				if walk(c) {
					return true
				}
			}
			return false
		}
		walk(d.elem)
	})
	return d.indent
}

func (d *Document) insert(n *node, index int, xml string) ([]byte, error) {
	frag, err := fragment(xml, d.lim)
	if err != nil {
		return nil, err
	}
	kids := n.elements()
	if index < 0 || index > len(kids)+1 {
		return nil, fmt.Errorf("%w: insert index %d out of range (<%s> has %d child elements)", ErrBadEdit, index, n.name, len(kids))
	}
	if index > 0 && index <= len(kids) {
		at := d.leadingComments(n, kids[index-1])
		ws := d.spaceBefore(at)
		return d.splice(splice{at.start, at.start, withNewline(frag, ws, d.newline) + ws}), nil
	}
	var anchor *node
	for _, c := range n.children {
		if c.kind == kindElement || anchor == nil && c.kind != kindText {
			anchor = c
		}
	}
	if anchor != nil {
		ws := d.spaceBefore(anchor)
		return d.splice(splice{anchor.end, anchor.end, ws + withNewline(frag, ws, d.newline)}), nil
	}
	content := withNewline(frag, "", d.newline)
	if brk, ok := d.lineBreakBefore(n.start); ok || n == d.elem {
		if !ok {
			brk = d.newline
		}
		content = brk + d.indentUnit() + withNewline(frag, brk, d.newline) + brk
	}
	if n.selfClosing {
		return d.splice(d.openElement(n, content)), nil
	}
	return d.splice(splice{n.startTagEnd, n.endTagStart, content}), nil
}

// spaceBefore returns the whitespace that separates c from the node before
// it when that whitespace ends a line, else "".
func (d *Document) spaceBefore(c *node) string {
	brk, ok := d.lineBreakBefore(c.start)
	if !ok {
		return ""
	}
	p := c.parent
	for i := 1; i < len(p.children); i++ {
		if w := p.children[i-1]; p.children[i] == c && w.kind == kindText && isSpace(d.src[w.start:w.end]) {
			return string(d.src[w.start:w.end])
		}
	}
	return brk
}

// leadingComments returns the first node of the block of comments that
// directly precedes sib (each on its own line, no blank line between), or
// sib itself: a comment is taken to describe the element below it.
func (d *Document) leadingComments(parent, sib *node) *node {
	i := 0
	for parent.children[i] != sib {
		i++
	}
	first := sib
	for j := i - 1; j >= 1; j -= 2 {
		ws, c := parent.children[j], parent.children[j-1]
		if ws.kind != kindText || c.kind != kindComment || !isSpace(d.src[ws.start:ws.end]) || lineBreaks(d.src[ws.start:ws.end]) != 1 {
			break
		}
		if _, ok := d.lineBreakBefore(c.start); !ok {
			break
		}
		first = c
	}
	return first
}

// lineBreaks counts line breaks (CRLF counts once).
func lineBreaks(b []byte) int {
	return bytes.Count(b, []byte("\n")) + bytes.Count(b, []byte("\r")) - bytes.Count(b, []byte("\r\n"))
}

// fragment checks that xml is exactly one element and normalizes its line
// endings to LF.
func fragment(xml string, lim Limits) (string, error) {
	trimmed := strings.TrimSpace(xml)
	fd, err := ParseDocumentLimits([]byte(trimmed), lim)
	if err != nil {
		return "", fmt.Errorf("%w: insert: %v", ErrBadEdit, err)
	}
	if fd.elem.start != 0 || fd.elem.end != len(trimmed) {
		return "", fmt.Errorf("%w: insert: the XML must be exactly one element", ErrBadEdit)
	}
	return normalizeNewlines([]byte(trimmed)), nil
}

// withNewline converts the LF line endings of frag to the line ending used
// in the whitespace ws next to the insertion point, else to fallback.
func withNewline(frag, ws, fallback string) string {
	nl := fallback
	if i := strings.IndexAny(ws, "\r\n"); i >= 0 {
		nl = detectNewline([]byte(ws[i:]))
	}
	if nl == "\n" {
		return frag
	}
	return strings.ReplaceAll(frag, "\n", nl)
}

func (d *Document) remove(n *node) ([]byte, error) {
	if n == d.elem {
		return nil, fmt.Errorf("%w: cannot remove the root element", ErrBadEdit)
	}
	j := n.start
	for j > 0 && (d.src[j-1] == ' ' || d.src[j-1] == '\t') {
		j--
	}
	k := n.end
	for k < len(d.src) && (d.src[k] == ' ' || d.src[k] == '\t') {
		k++
	}
	atStart := j == 0 || d.src[j-1] == '\n' || d.src[j-1] == '\r'
	atEnd := k == len(d.src) || d.src[k] == '\n' || d.src[k] == '\r'
	if !atStart || !atEnd {
		if atStart {
			return d.splice(splice{n.start, k, ""}), nil // keep the indentation for what follows
		}
		return d.splice(splice{j, n.end, ""}), nil
	}
	// Alone on its line: take the whitespace up to the next node, or for the
	// last node the whitespace since the previous one, so that the siblings
	// keep their layout.
	parent := n.parent
	i := 0
	for parent.children[i] != n {
		i++
	}
	if i+2 < len(parent.children) && parent.children[i+1].kind == kindText && isSpace(d.src[parent.children[i+1].start:parent.children[i+1].end]) {
		return d.splice(splice{n.start, parent.children[i+1].end, ""}), nil
	}
	if i >= 1 && parent.children[i-1].kind == kindText && isSpace(d.src[parent.children[i-1].start:parent.children[i-1].end]) {
		return d.splice(splice{parent.children[i-1].start, n.end, ""}), nil
	}
	return d.splice(splice{n.start, n.end, ""}), nil
}
