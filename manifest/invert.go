package manifest

import (
	"bytes"
	"fmt"
	"strings"
)

// Invert returns the edit that undoes e when e is applied to data: for a
// remove, an exact insert (Path of the parent, Index, Node, Lead, XML the
// element's original bytes, Trail) that restores data byte for byte when
// applied to the result of the remove, whatever whitespace the remove took
// with it. Only removes can be inverted, and only when the result can be
// checked to restore data (it cannot when the remove glues two words of
// text together, as in "a<b/>c"); otherwise Invert fails with ErrBadEdit.
func Invert(data []byte, e Edit) (Edit, error) {
	if e.Op != OpRemove {
		return Edit{}, fmt.Errorf("invert: %w: only remove edits can be inverted, not %q", ErrBadEdit, e.Op)
	}
	doc, err := ParseDocument(data)
	if err != nil {
		return Edit{}, fmt.Errorf("invert: %w", err)
	}
	n, err := doc.findOne(e.Path)
	if err != nil {
		return Edit{}, fmt.Errorf("invert: %w", err)
	}
	if n == doc.elem {
		return Edit{}, fmt.Errorf("invert: %w: cannot remove the root element", ErrBadEdit)
	}
	parent := n.parent
	inv := Edit{Op: OpInsert, XML: string(doc.src[n.start:n.end]), Index: 1}
	its := doc.items(parent)
	for i, it := range its {
		if it.start == n.start {
			inv.Node = i + 1
			break
		}
		if it.elem {
			inv.Index++
		}
	}
	start, _ := doc.gap(parent, its, inv.Node) // the whitespace before n
	_, end := doc.gap(parent, its, inv.Node+1) // and after it
	inv.Lead = string(doc.src[start:n.start])
	inv.Trail = string(doc.src[n.end:end])
	inv.Path = doc.pathTo(parent)
	if m, err := doc.findOne(inv.Path); err != nil || m != parent {
		return Edit{}, fmt.Errorf("invert: %w: no unique path to the parent of %s", ErrBadEdit, e.Path)
	}
	removed, err := doc.Apply(e)
	if err != nil {
		return Edit{}, fmt.Errorf("invert: %w", err)
	}
	if back, err := Apply(removed, []Edit{inv}); err != nil || !bytes.Equal(back, data) {
		return Edit{}, fmt.Errorf("invert: %w: removing %s joins the text around it, so its place cannot be told", ErrBadEdit, e.Path)
	}
	return inv, nil
}

// item is a child of an element as exact inserts count them: a node that is
// not text, or a word (a run of bytes that are not whitespace) of text.
type item struct {
	start, end int
	elem       bool
}

// items returns n's items in order: only whitespace lies between two items.
func (d *Document) items(n *node) []item {
	var out []item
	for _, c := range n.children {
		if c.kind != kindText {
			out = append(out, item{c.start, c.end, c.kind == kindElement})
			continue
		}
		for i := c.start; i < c.end; {
			if isSpaceByte(d.src[i]) {
				i++
				continue
			}
			j := i
			for j < c.end && !isSpaceByte(d.src[j]) {
				j++
			}
			out = append(out, item{i, j, false})
			i = j
		}
	}
	return out
}

// gap returns the whitespace span (empty or not) where an exact insert at
// the 1-based item position pos of n goes: between items pos-1 and pos.
func (d *Document) gap(n *node, its []item, pos int) (int, int) {
	start, end := n.startTagEnd, n.endTagStart
	if pos > 1 {
		start = its[pos-2].end
	}
	if pos <= len(its) {
		end = its[pos-1].start
	}
	return start, end
}

// pathTo returns the path Diff would use for the element target.
func (d *Document) pathTo(target *node) string {
	var chain []*node
	for n := target; n != nil && n.kind == kindElement; n = n.parent {
		chain = append(chain, n)
	}
	keys := DiffOptions{}.keys()
	e := buildElem(d, d.elem, nil)
	var sb strings.Builder
	sb.WriteString("/" + d.elem.name)
	for k := len(chain) - 2; k >= 0; k-- {
		steps := kidSteps(e, keys)
		for j, c := range chain[k+1].elements() {
			if c == chain[k] {
				sb.WriteString("/" + steps[j])
				e = e.kids[j]
				break
			}
		}
	}
	return sb.String()
}

// checkExact validates the fields of an exact insert: they belong to inserts
// only, Lead and Trail need Node, and Lead and Trail are XML whitespace, so a
// journaled edit cannot inject markup through them.
func checkExact(e Edit) error {
	if e.Node == 0 && e.Lead == "" && e.Trail == "" {
		return nil
	}
	switch {
	case e.Op != OpInsert:
		return fmt.Errorf("%w: node, lead and trail apply to insert only", ErrBadEdit)
	case e.Node < 0:
		return fmt.Errorf("%w: insert node %d out of range", ErrBadEdit, e.Node)
	case e.Node == 0:
		return fmt.Errorf("%w: lead and trail need node (an exact insert)", ErrBadEdit)
	case !isSpace([]byte(e.Lead)):
		return fmt.Errorf("%w: lead %q is not XML whitespace", ErrBadEdit, e.Lead)
	case !isSpace([]byte(e.Trail)):
		return fmt.Errorf("%w: trail %q is not XML whitespace", ErrBadEdit, e.Trail)
	}
	return nil
}

// insertExact applies an insert with Node set: Lead, the XML verbatim and
// Trail replace the whitespace between the items that will surround it.
func (d *Document) insertExact(n *node, e Edit) ([]byte, error) {
	fd, err := ParseDocumentLimits([]byte(e.XML), d.lim)
	if err != nil {
		return nil, fmt.Errorf("%w: insert: %v", ErrBadEdit, err)
	}
	if fd.elem.start != 0 || fd.elem.end != len(e.XML) {
		return nil, fmt.Errorf("%w: exact insert: the XML must be exactly one element, without surrounding space", ErrBadEdit)
	}
	its := d.items(n)
	if e.Node > len(its)+1 {
		return nil, fmt.Errorf("%w: insert node %d out of range (<%s> has %d child nodes and words of text)", ErrBadEdit, e.Node, n.name, len(its))
	}
	before, after := 0, 0 // elements before and after the insertion point
	for i, it := range its {
		if it.elem {
			if i < e.Node-1 {
				before++
			} else {
				after++
			}
		}
	}
	if e.Index > 0 && e.Index != before+1 || e.Index == 0 && after > 0 {
		return nil, fmt.Errorf("%w: insert node %d is not at index %d of <%s>", ErrBadEdit, e.Node, e.Index, n.name)
	}
	content := e.Lead + e.XML + e.Trail
	if n.selfClosing {
		return d.splice(d.openElement(n, content)), nil
	}
	start, end := d.gap(n, its, e.Node)
	return d.splice(splice{start, end, content}), nil
}
