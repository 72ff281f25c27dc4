package manifest

import (
	"bytes"
	"regexp"
)

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
	var walk func(e *elem, n *node, path, parent string, index int)
	walk = func(e *elem, n *node, path, parent string, index int) {
		out = append(out, ElemInfo{Path: path, Parent: parent, XML: e.raw, Start: n.start, End: n.end, Index: index})
		steps := kidSteps(e, opts.keys())
		kids := n.elements()
		for i, k := range e.kids {
			walk(k, kids[i], path+"/"+steps[i], path, i+1)
		}
	}
	walk(buildElem(d, d.elem, nil), d.elem, "/"+d.elem.name, "", 0)
	return out
}

// Variants returns formatting variants of data, generated on the lossless
// tree: the names are crlf, cr, tabs, squote, splitattrs, spaceslash,
// noslashspace, bom, nodecl. Variants that would not change data are left out.
func Variants(data []byte) map[string][]byte {
	d, err := ParseDocument(data)
	if err != nil {
		return nil
	}
	lf := []byte(normalizeNewlines(data))
	out := map[string][]byte{
		"crlf": bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n")),
		"cr":   bytes.ReplaceAll(lf, []byte("\n"), []byte("\r")),
		"tabs": regexp.MustCompile(`(?m)^(  )+`).ReplaceAllFunc(lf, func(b []byte) []byte { return bytes.Repeat([]byte("\t"), len(b)/2) }),
	}
	var quotes, split, spaceSlash, noSpace []splice
	var walk func(n *node)
	walk = func(n *node) {
		for i, a := range n.attrs {
			if a.quote == '"' && !bytes.ContainsRune(d.src[a.valueStart:a.valueEnd], '\'') {
				quotes = append(quotes, splice{a.valueStart - 1, a.valueStart, "'"}, splice{a.valueEnd, a.valueEnd + 1, "'"})
			}
			if i > 0 {
				split = append(split, splice{n.attrs[i-1].end(), a.start, d.newline + "    "})
			}
		}
		if n.selfClosing {
			j := n.end - 2
			for j > 0 && isSpaceByte(d.src[j-1]) {
				j--
			}
			spaceSlash = append(spaceSlash, splice{j, n.end, " />"})
			noSpace = append(noSpace, splice{j, n.end, "/>"})
		}
		for _, c := range n.children {
			if c.kind == kindElement {
				walk(c)
			}
		}
	}
	walk(d.elem)
	out["squote"] = d.splice(quotes...)
	if crlf := bytes.Count(data, []byte("\r\n")); crlf == 0 || crlf == bytes.Count(data, []byte("\n")) {
		out["splitattrs"] = d.splice(split...) // mixed line endings would make the variant itself inconsistent
	}
	out["spaceslash"] = d.splice(spaceSlash...)
	out["noslashspace"] = d.splice(noSpace...)
	if !bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		out["bom"] = append([]byte("\xef\xbb\xbf"), data...)
	}
	for _, c := range d.root.children {
		if c.kind == kindPI && bytes.HasPrefix(d.src[c.start:], []byte("<?xml ")) {
			out["nodecl"] = d.splice(splice{c.start, c.end, ""})
		}
	}
	for k, v := range out {
		if bytes.Equal(v, data) {
			delete(out, k)
		}
	}
	return out
}
