package manifest

import "strings"

// elements returns n's child elements.
func (n *node) elements() []*node {
	var out []*node
	for _, c := range n.children {
		if c.kind == kindElement {
			out = append(out, c)
		}
	}
	return out
}

// attr returns n's attribute called name.
func (n *node) attr(name string) (attr, int, bool) {
	for i, a := range n.attrs {
		if a.name == name {
			return a, i, true
		}
	}
	return attr{}, -1, false
}

// cdataInner returns the span of a CDATA node's content.
func cdataInner(c *node) (int, int) { return c.start + len("<![CDATA["), c.end - len("]]>") }

// text returns the decoded text of n: its direct text and CDATA children
// concatenated (comments and child elements skipped).
func (d *Document) text(n *node) string {
	var sb strings.Builder
	for _, c := range n.children {
		switch c.kind {
		case kindText:
			sb.WriteString(decodeString(d.src[c.start:c.end], false))
		case kindCData:
			s, e := cdataInner(c)
			sb.WriteString(normalizeNewlines(d.src[s:e]))
		}
	}
	return sb.String()
}

// normalizeNewlines turns CRLF and CR into LF, as an XML parser does.
func normalizeNewlines(b []byte) string {
	s := string(b)
	if !strings.Contains(s, "\r") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}
