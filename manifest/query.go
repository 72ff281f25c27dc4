package manifest

import (
	"fmt"

	"github.com/beevik/etree"
)

// mirror is an etree copy of a Document, used to evaluate etree paths.
type mirror struct {
	doc   *etree.Document
	nodes map[*etree.Element]*node
}

// mirror returns the etree copy of d, building it on first use.
func (d *Document) mirror() *mirror {
	d.mirOnce.Do(func() {
		m := &mirror{doc: etree.NewDocument(), nodes: map[*etree.Element]*node{}}
		d.buildMirror(&m.doc.Element, d.elem, m.nodes)
		d.mir = m
	})
	return d.mir
}

func (d *Document) buildMirror(parent *etree.Element, n *node, nodes map[*etree.Element]*node) {
	e := parent.CreateElement(n.name)
	nodes[e] = n
	for _, a := range n.attrs {
		e.CreateAttr(a.name, a.value)
	}
	leaf := true
	for _, c := range n.children {
		if c.kind == kindElement {
			leaf = false
			d.buildMirror(e, c, nodes)
		}
	}
	if leaf {
		if t := d.text(n); t != "" {
			e.SetText(t)
		}
	}
}

// find returns the elements matched by an etree path.
func (d *Document) find(path string) ([]*node, error) {
	if steps, ok := parseSimplePath(path); ok {
		return d.findSimple(steps), nil
	}
	p, err := etree.CompilePath(path)
	if err != nil {
		return nil, fmt.Errorf("%w: path %q: %v", ErrBadEdit, path, err)
	}
	m := d.mirror()
	var out []*node
	for _, e := range m.doc.FindElementsPath(p) {
		if n, ok := m.nodes[e]; ok {
			out = append(out, n)
		}
	}
	return out, nil
}

// findOne returns the single element matched by path, else a *TargetError.
func (d *Document) findOne(path string) (*node, error) {
	ns, err := d.find(path)
	if err != nil {
		return nil, err
	}
	if len(ns) != 1 {
		return nil, &TargetError{Path: path, Matched: len(ns)}
	}
	return ns[0], nil
}

// Count returns how many elements an etree path matches, for selectors such
// as a schedule's where.
func (d *Document) Count(path string) (int, error) {
	ns, err := d.find(path)
	return len(ns), err
}

// Attr returns the value of attribute name on the one element path matches.
func (d *Document) Attr(path, name string) (string, bool, error) {
	n, err := d.findOne(path)
	if err != nil {
		return "", false, err
	}
	a, _, ok := n.attr(name)
	return a.value, ok, nil
}

// Text returns the text of the one element path matches.
func (d *Document) Text(path string) (string, error) {
	n, err := d.findOne(path)
	if err != nil {
		return "", err
	}
	return d.text(n), nil
}
