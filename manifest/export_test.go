package manifest

// ElemInfo describes one element for tests.
type ElemInfo struct {
	Path, Parent string
	XML          string
	Start, End   int
	Index        int // 1-based among the parent's child elements
}

// Elements returns every element of d in document order.
func Elements(d *Document, opts DiffOptions) []ElemInfo {
	var out []ElemInfo
	var walk func(e *elem, n *node, index int)
	walk = func(e *elem, n *node, index int) {
		info := ElemInfo{Path: pathOf(e, opts.keys()), XML: e.raw, Start: n.start, End: n.end, Index: index}
		if e.parent != nil {
			info.Parent = pathOf(e.parent, opts.keys())
		}
		out = append(out, info)
		for i, k := range e.kids {
			walk(k, n.elements()[i], i+1)
		}
	}
	walk(buildElem(d, d.elem, nil), d.elem, 0)
	return out
}
