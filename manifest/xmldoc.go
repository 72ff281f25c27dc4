package manifest

import (
	"bytes"
	"fmt"
	"sync"
	"unicode/utf8"
)

// nodeKind says what a node of the lossless tree is.
type nodeKind uint8

const (
	kindDocument nodeKind = iota
	kindElement
	kindText
	kindCData
	kindComment
	kindPI
	kindDoctype
)

// node is one token of the lossless tree with its byte span [start, end).
type node struct {
	kind       nodeKind
	start, end int
	parent     *node

	// Elements only.
	name        string
	attrs       []attr
	startTagEnd int  // offset just after the '>' of the start tag
	selfClosing bool // <a/>: startTagEnd == end
	endTagStart int  // offset of "</" (== end when self-closing)
	children    []*node
}

// attr is one attribute of a start tag.
type attr struct {
	name       string
	start      int // first byte of the name
	valueStart int // first byte inside the quotes
	valueEnd   int // the closing quote
	quote      byte
	value      string // normalized value, entity references kept
}

// end returns the offset just after the closing quote.
func (a attr) end() int { return a.valueEnd + 1 }

// Document is a parsed XML document that remembers every byte of its source.
type Document struct {
	src      []byte
	root     *node // the document node; its element child is the root element
	elem     *node // the root element
	entities map[string]bool
	newline  string // the document's dominant line ending
	lim      Limits // the limits it was parsed with

	mirOnce sync.Once
	mir     *mirror
	indOnce sync.Once
	indent  string // one level of indentation, see indentUnit
}

// ParseDocument parses data losslessly with the default Limits. It returns a
// *SyntaxError when data is not well-formed XML or exceeds a limit.
func ParseDocument(data []byte) (*Document, error) {
	return ParseDocumentLimits(data, Limits{})
}

// ParseDocumentLimits parses data losslessly, refusing documents larger than
// lim.InstanceFileBytes or nested deeper than lim.XMLDepth (zero fields take
// the defaults) with a *SyntaxError that wraps ErrLimit and names the host
// config key that raises the cap.
func ParseDocumentLimits(data []byte, lim Limits) (*Document, error) {
	lim = lim.withDefaults()
	if int64(len(data)) > lim.InstanceFileBytes {
		return nil, &SyntaxError{Offset: 0, Line: 1, Col: 1, Limit: true,
			Msg: fmt.Sprintf("document is %d bytes, over the cap of %d bytes (raise limits.instance_file_bytes in the host config)", len(data), lim.InstanceFileBytes)}
	}
	p := &parser{src: data, entities: map[string]bool{}, maxDepth: lim.XMLDepth}
	doc, err := p.parse()
	if err != nil {
		return nil, err
	}
	doc.lim = lim
	return doc, nil
}

// Bytes returns the document's source bytes; the caller must not modify them.
func (d *Document) Bytes() []byte { return d.src }

// RootName returns the qualified name of the root element.
func (d *Document) RootName() string { return d.elem.name }

// Position returns the 1-based line and column (in characters) of offset.
func (d *Document) Position(offset int) (line, col int) { return position(d.src, offset) }

// position converts a byte offset to a 1-based line and character column.
// CRLF and lone CR count as one line break.
func position(src []byte, offset int) (line, col int) {
	if offset > len(src) {
		offset = len(src)
	}
	line, lineStart := 1, 0
	for i := 0; i < offset; i++ {
		switch src[i] {
		case '\n':
			line++
			lineStart = i + 1
		case '\r':
			if i+1 < len(src) && src[i+1] == '\n' {
				continue
			}
			line++
			lineStart = i + 1
		}
	}
	return line, utf8.RuneCount(src[lineStart:offset]) + 1
}

type parser struct {
	src      []byte
	pos      int
	entities map[string]bool
	stack    []*node
	maxDepth int
}

func (p *parser) errorf(at int, format string, args ...any) error {
	line, col := position(p.src, at)
	return &SyntaxError{Offset: at, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) parse() (*Document, error) {
	doc := &node{kind: kindDocument, end: len(p.src)}
	p.stack = []*node{doc}
	if bytes.HasPrefix(p.src, []byte("\xef\xbb\xbf")) {
		p.pos = 3
	} else if len(p.src) >= 2 && (p.src[0] == 0xfe && p.src[1] == 0xff || p.src[0] == 0xff && p.src[1] == 0xfe) {
		return nil, p.errorf(0, "UTF-16 documents are not supported; convert the file to UTF-8")
	}
	var root *node
	for p.pos < len(p.src) {
		n, closed, err := p.next()
		if err != nil {
			return nil, err
		}
		if closed {
			continue
		}
		parent := p.stack[len(p.stack)-1]
		if parent == doc {
			if err := p.checkTopLevel(n, root); err != nil {
				return nil, err
			}
			if n.kind == kindElement {
				root = n
			}
		}
		n.parent = parent
		parent.children = append(parent.children, n)
		if n.kind == kindElement && len(p.stack) > p.maxDepth {
			line, col := position(p.src, n.start)
			return nil, &SyntaxError{Offset: n.start, Line: line, Col: col, Limit: true,
				Msg: fmt.Sprintf("element <%s> is nested deeper than the cap of %d levels (raise limits.xml_depth in the host config)", n.name, p.maxDepth)}
		}
		if n.kind == kindElement && !n.selfClosing {
			p.stack = append(p.stack, n)
		}
	}
	if len(p.stack) > 1 {
		open := p.stack[len(p.stack)-1]
		return nil, p.errorf(len(p.src), "element <%s> (opened at line %d) is not closed", open.name, lineOf(p.src, open.start))
	}
	if root == nil {
		return nil, p.errorf(len(p.src), "no root element")
	}
	return &Document{src: p.src, root: doc, elem: root, entities: p.entities, newline: detectNewline(p.src)}, nil
}

func lineOf(src []byte, offset int) int {
	l, _ := position(src, offset)
	return l
}

// checkTopLevel enforces what may appear outside the root element.
func (p *parser) checkTopLevel(n, root *node) error {
	switch n.kind {
	case kindElement:
		if root != nil {
			return p.errorf(n.start, "second root element <%s>", n.name)
		}
	case kindText:
		if !isSpace(p.src[n.start:n.end]) {
			return p.errorf(n.start, "text outside the root element")
		}
	case kindCData:
		return p.errorf(n.start, "CDATA outside the root element")
	case kindDoctype:
		if root != nil {
			return p.errorf(n.start, "DOCTYPE after the root element")
		}
	}
	return nil
}

// next reads one token at p.pos. closed reports an end tag, which pops the stack.
func (p *parser) next() (n *node, closed bool, err error) {
	s := p.src[p.pos:]
	switch {
	case s[0] != '<':
		return p.text()
	case bytes.HasPrefix(s, []byte("<!--")):
		return p.delimited(kindComment, "-->")
	case bytes.HasPrefix(s, []byte("<![CDATA[")):
		if len(p.stack) == 1 {
			return nil, false, p.errorf(p.pos, "CDATA outside the root element")
		}
		return p.delimited(kindCData, "]]>")
	case bytes.HasPrefix(s, []byte("<!DOCTYPE")):
		n, err := p.doctype()
		return n, false, err
	case bytes.HasPrefix(s, []byte("<?")):
		return p.pi()
	case bytes.HasPrefix(s, []byte("</")):
		return nil, true, p.endTag()
	default:
		n, err := p.startTag()
		return n, false, err
	}
}

func (p *parser) text() (*node, bool, error) {
	start := p.pos
	i := bytes.IndexByte(p.src[start:], '<')
	end := len(p.src)
	if i >= 0 {
		end = start + i
	}
	if err := p.checkRefs(start, end); err != nil {
		return nil, false, err
	}
	if len(p.stack) == 1 && !isSpace(p.src[start:end]) {
		return nil, false, p.errorf(start, "text outside the root element")
	}
	p.pos = end
	return &node{kind: kindText, start: start, end: end}, false, nil
}

func (p *parser) delimited(kind nodeKind, term string) (*node, bool, error) {
	start := p.pos
	i := bytes.Index(p.src[start+2:], []byte(term))
	if i < 0 {
		return nil, false, p.errorf(start, "unterminated %s (missing %q)", kindName(kind), term)
	}
	p.pos = start + 2 + i + len(term)
	return &node{kind: kind, start: start, end: p.pos}, false, nil
}

func kindName(k nodeKind) string {
	switch k {
	case kindComment:
		return "comment"
	case kindCData:
		return "CDATA section"
	case kindPI:
		return "processing instruction"
	}
	return "markup"
}

func (p *parser) pi() (*node, bool, error) {
	start := p.pos
	nameEnd := p.scanName(start + 2)
	if nameEnd == start+2 {
		return nil, false, p.errorf(start, "processing instruction without a target")
	}
	n, _, err := p.delimited(kindPI, "?>")
	if err != nil {
		return nil, false, err
	}
	if string(p.src[start+2:nameEnd]) == "xml" && start != 0 && !(start == 3 && bytes.HasPrefix(p.src, []byte("\xef\xbb\xbf"))) {
		return nil, false, p.errorf(start, "XML declaration not at the start of the document")
	}
	return n, false, nil
}

// doctype skips <!DOCTYPE ...> including an internal subset, recording the
// general entities it declares.
func (p *parser) doctype() (*node, error) {
	start := p.pos
	i := start + len("<!DOCTYPE")
	depth := 0
	for i < len(p.src) {
		c := p.src[i]
		switch {
		case c == '"' || c == '\'':
			j := bytes.IndexByte(p.src[i+1:], c)
			if j < 0 {
				return nil, p.errorf(i, "unterminated quoted string in DOCTYPE")
			}
			i += j + 2
			continue
		case bytes.HasPrefix(p.src[i:], []byte("<!--")):
			j := bytes.Index(p.src[i+4:], []byte("-->"))
			if j < 0 {
				return nil, p.errorf(i, "unterminated comment in DOCTYPE")
			}
			i += 4 + j + 3
			continue
		case bytes.HasPrefix(p.src[i:], []byte("<!ENTITY")):
			p.entityDecl(i + len("<!ENTITY"))
		case c == '[':
			depth++
		case c == ']':
			depth--
		case c == '>' && depth <= 0:
			p.pos = i + 1
			return &node{kind: kindDoctype, start: start, end: p.pos}, nil
		}
		i++
	}
	return nil, p.errorf(start, "unterminated DOCTYPE")
}

// entityDecl records the name of a general entity declaration.
func (p *parser) entityDecl(i int) {
	for i < len(p.src) && isSpaceByte(p.src[i]) {
		i++
	}
	if i < len(p.src) && p.src[i] == '%' {
		return // parameter entity
	}
	if e := p.scanName(i); e > i {
		p.entities[string(p.src[i:e])] = true
	}
}

func (p *parser) endTag() error {
	start := p.pos
	nameEnd := p.scanName(start + 2)
	name := string(p.src[start+2 : nameEnd])
	i := p.skipSpace(nameEnd)
	if i >= len(p.src) || p.src[i] != '>' {
		return p.errorf(start, "malformed end tag </%s", name)
	}
	if len(p.stack) == 1 {
		return p.errorf(start, "end tag </%s> without a start tag", name)
	}
	open := p.stack[len(p.stack)-1]
	if open.name != name {
		l, c := position(p.src, open.start)
		return p.errorf(start, "end tag </%s> does not match <%s> opened at line %d, column %d", name, open.name, l, c)
	}
	open.endTagStart = start
	open.end = i + 1
	p.stack = p.stack[:len(p.stack)-1]
	p.pos = i + 1
	return nil
}

func (p *parser) startTag() (*node, error) {
	start := p.pos
	nameEnd := p.scanName(start + 1)
	if nameEnd == start+1 {
		return nil, p.errorf(start, "'<' not followed by a name (escape it as &lt;)")
	}
	n := &node{kind: kindElement, start: start, name: string(p.src[start+1 : nameEnd])}
	i := nameEnd
	for {
		j := p.skipSpace(i)
		if j >= len(p.src) {
			return nil, p.errorf(start, "unterminated start tag <%s", n.name)
		}
		switch {
		case p.src[j] == '>':
			n.startTagEnd = j + 1
			p.pos = j + 1
			return n, nil
		case p.src[j] == '/' && j+1 < len(p.src) && p.src[j+1] == '>':
			n.startTagEnd, n.end, n.endTagStart, n.selfClosing = j+2, j+2, j+2, true
			p.pos = j + 2
			return n, nil
		}
		if j == i {
			return nil, p.errorf(j, "expected whitespace, '>' or '/>' in start tag <%s", n.name)
		}
		if len(n.attrs) >= MaxAttributes {
			line, col := position(p.src, j)
			return nil, &SyntaxError{Offset: j, Line: line, Col: col, Limit: true,
				Msg: fmt.Sprintf("element <%s> has more than %d attributes, the cap of the XML engine", n.name, MaxAttributes)}
		}
		a, err := p.attribute(j, n)
		if err != nil {
			return nil, err
		}
		n.attrs = append(n.attrs, a)
		i = a.end()
	}
}

func (p *parser) attribute(i int, n *node) (attr, error) {
	e := p.scanName(i)
	if e == i {
		return attr{}, p.errorf(i, "unexpected %q in start tag <%s>", p.src[i], n.name)
	}
	a := attr{name: string(p.src[i:e]), start: i}
	for _, o := range n.attrs {
		if o.name == a.name {
			return attr{}, p.errorf(i, "duplicate attribute %q in <%s>", a.name, n.name)
		}
	}
	j := p.skipSpace(e)
	if j >= len(p.src) || p.src[j] != '=' {
		return attr{}, p.errorf(i, "attribute %q has no value", a.name)
	}
	j = p.skipSpace(j + 1)
	if j >= len(p.src) || (p.src[j] != '"' && p.src[j] != '\'') {
		return attr{}, p.errorf(j, "value of attribute %q is not quoted", a.name)
	}
	a.quote = p.src[j]
	a.valueStart = j + 1
	k := bytes.IndexByte(p.src[a.valueStart:], a.quote)
	if k < 0 {
		return attr{}, p.errorf(j, "unterminated value of attribute %q", a.name)
	}
	a.valueEnd = a.valueStart + k
	if lt := bytes.IndexByte(p.src[a.valueStart:a.valueEnd], '<'); lt >= 0 {
		return attr{}, p.errorf(a.valueStart+lt, "'<' in the value of attribute %q (escape it as &lt;)", a.name)
	}
	if err := p.checkRefs(a.valueStart, a.valueEnd); err != nil {
		return attr{}, err
	}
	a.value = decodeString(p.src[a.valueStart:a.valueEnd], true)
	return a, nil
}

// checkRefs verifies that every '&' in src[start:end] starts a well-formed
// character or entity reference.
func (p *parser) checkRefs(start, end int) error {
	for i := start; i < end; {
		k := bytes.IndexByte(p.src[i:end], '&')
		if k < 0 {
			return nil
		}
		i += k
		_, n, ok := parseRef(p.src[i:end])
		if !ok {
			return p.errorf(i, "malformed reference (write a literal '&' as &amp;)")
		}
		i += n
	}
	return nil
}

func (p *parser) skipSpace(i int) int {
	for i < len(p.src) && isSpaceByte(p.src[i]) {
		i++
	}
	return i
}

// scanName returns the end of the XML name starting at i (i itself when none).
func (p *parser) scanName(i int) int {
	j := i
	for j < len(p.src) {
		c := p.src[j]
		if c >= 0x80 || c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
			j > i && (c == '-' || c == '.' || c >= '0' && c <= '9') {
			j++
			continue
		}
		break
	}
	return j
}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isSpace(b []byte) bool {
	for _, c := range b {
		if !isSpaceByte(c) {
			return false
		}
	}
	return true
}

// detectNewline returns the first line ending in src, "\n" when there is none.
func detectNewline(src []byte) string {
	i := bytes.IndexAny(src, "\r\n")
	switch {
	case i < 0:
		return "\n"
	case src[i] == '\n':
		return "\n"
	case i+1 < len(src) && src[i+1] == '\n':
		return "\r\n"
	}
	return "\r"
}
