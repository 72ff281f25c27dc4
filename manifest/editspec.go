package manifest

import (
	"fmt"
	"path"
	"strings"

	"github.com/beevik/etree"
)

// EditSpec is the edits an operator typed as flags: `deploy --set/--text`,
// `fleet deploy` and `xml edit` all read them with ParseEdits, in this
// order: every Set, every Text, every Remove, every Insert.
type EditSpec struct {
	Set    []string // PATH@ATTR=VALUE
	Text   []string // PATH=VALUE
	Remove []string // PATH or PATH@ATTR
	Insert []string // PATH=XML
}

// ParseEdits turns an EditSpec into edits. A path may hold predicates with
// '@', '=' and quotes (/instance/app[@name='worker']@version=1.10.0): the
// separators are found outside [predicates] and quotes only. Every path is
// checked to be an etree path; an error names the flag and its value and
// shows the form wanted.
func ParseEdits(spec EditSpec) ([]Edit, error) {
	var edits []Edit
	for _, s := range spec.Set {
		p, rest, ok := CutPath(s, '@')
		attr, value, ok2 := strings.Cut(rest, "=")
		if !ok || !ok2 || p == "" || attr == "" || !validAttrName(attr) {
			return nil, fmt.Errorf("--set %q: want PATH@ATTR=VALUE, e.g. /instance/app[@name='web']@version=4.3.0", s)
		}
		if err := CheckPath(p); err != nil {
			return nil, fmt.Errorf("--set %q: %w", s, err)
		}
		edits = append(edits, Edit{Op: OpSetAttr, Path: p, Attr: attr, Value: value})
	}
	for _, s := range spec.Text {
		p, value, ok := CutPath(s, '=')
		if !ok || p == "" {
			return nil, fmt.Errorf("--text %q: want PATH=VALUE, e.g. /instance/owner=team-a", s)
		}
		if err := CheckPath(p); err != nil {
			return nil, fmt.Errorf("--text %q: %w", s, err)
		}
		edits = append(edits, Edit{Op: OpSetText, Path: p, Value: value})
	}
	for _, s := range spec.Remove {
		if p, attr, ok := CutPath(s, '@'); ok {
			if p == "" || attr == "" || !validAttrName(attr) {
				return nil, fmt.Errorf("--remove %q: want PATH or PATH@ATTR", s)
			}
			if err := CheckPath(p); err != nil {
				return nil, fmt.Errorf("--remove %q: %w", s, err)
			}
			edits = append(edits, Edit{Op: OpRemoveAttr, Path: p, Attr: attr})
			continue
		}
		if err := CheckPath(s); err != nil {
			return nil, fmt.Errorf("--remove %q: %w", s, err)
		}
		edits = append(edits, Edit{Op: OpRemove, Path: s})
	}
	for _, s := range spec.Insert {
		p, xml, ok := CutPath(s, '=')
		if !ok || p == "" || xml == "" {
			return nil, fmt.Errorf("--insert %q: want PATH=XML", s)
		}
		if err := CheckPath(p); err != nil {
			return nil, fmt.Errorf("--insert %q: %w", s, err)
		}
		edits = append(edits, Edit{Op: OpInsert, Path: p, XML: xml})
	}
	return edits, nil
}

// CheckPath reports whether p is an absolute etree path an edit or a
// selection (--where) can use.
func CheckPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("path %q must start with / (e.g. /instance/app)", p)
	}
	if _, err := etree.CompilePath(p); err != nil {
		return fmt.Errorf("path %q: %v", p, err)
	}
	if strings.Count(p, "[") != strings.Count(p, "]") {
		return fmt.Errorf("path %q: unbalanced [ ]", p)
	}
	return nil
}

// CheckGlob reports whether g is a usable instance file glob (--select).
func CheckGlob(g string) error {
	if g == "" {
		return fmt.Errorf("--select is required (e.g. 'instances/*.xml')")
	}
	if _, err := path.Match(g, ""); err != nil {
		return fmt.Errorf("--select %q: %v", g, err)
	}
	return nil
}

// CutPath splits s at the first sep outside [predicates] and quotes.
func CutPath(s string, sep byte) (before, after string, found bool) {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			if depth > 0 {
				quote = c
			}
		case c == '[':
			depth++
		case c == ']':
			depth--
		case c == sep && depth == 0:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// validAttrName reports whether a is a plain XML attribute name (no path,
// predicate or space left in it).
func validAttrName(a string) bool {
	return a != "" && !strings.ContainsAny(a, "/[]'\" =@\t\n")
}
