package manifest

import (
	"strconv"
	"strings"
)

// pstep is one step of a simple absolute path: a tag with optional
// [@attr='value'] and [n] filters, applied in order as etree applies them.
type pstep struct {
	tag     string
	filters []pfilter
}

type pfilter struct {
	attr, value string
	pos         int // > 0: keep the pos-th candidate
}

// parseSimplePath parses paths like /a/b[@name='x']/c[2]. ok is false for
// anything else, which is then left to etree.
func parseSimplePath(path string) ([]pstep, bool) {
	if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") {
		return nil, false
	}
	var steps []pstep
	rest := path[1:]
	for rest != "" {
		st, n, ok := parseStep(rest)
		if !ok {
			return nil, false
		}
		steps = append(steps, st)
		rest = rest[n:]
		if rest == "" {
			break
		}
		if rest[0] != '/' || len(rest) == 1 {
			return nil, false
		}
		rest = rest[1:]
	}
	return steps, len(steps) > 0
}

// parseStep parses one step at the start of s and returns its length.
func parseStep(s string) (pstep, int, bool) {
	i := 0
	for i < len(s) && s[i] != '[' && s[i] != '/' {
		i++
	}
	st := pstep{tag: s[:i]}
	if !isXMLName(st.tag) {
		return pstep{}, 0, false
	}
	for i < len(s) && s[i] == '[' {
		f, n, ok := parseFilter(s[i:])
		if !ok {
			return pstep{}, 0, false
		}
		st.filters = append(st.filters, f)
		i += n
	}
	return st, i, true
}

// parseFilter parses [@attr='v'], [@attr="v"] or [n] at the start of s.
func parseFilter(s string) (pfilter, int, bool) {
	if strings.HasPrefix(s, "[@") {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || (s[eq+1] != '\'' && s[eq+1] != '"') || !isXMLName(s[2:eq]) {
			return pfilter{}, 0, false
		}
		q := s[eq+1]
		end := strings.IndexByte(s[eq+2:], q)
		if end < 0 {
			return pfilter{}, 0, false
		}
		close := eq + 2 + end + 1
		if close >= len(s) || s[close] != ']' {
			return pfilter{}, 0, false
		}
		v := s[eq+2 : eq+2+end]
		if strings.ContainsAny(v, "[") {
			return pfilter{}, 0, false
		}
		return pfilter{attr: s[2:eq], value: v}, close + 1, true
	}
	end := strings.IndexByte(s, ']')
	if end < 2 {
		return pfilter{}, 0, false
	}
	n, err := strconv.Atoi(s[1:end])
	if err != nil || n < 1 || s[1] == '+' {
		return pfilter{}, 0, false
	}
	return pfilter{pos: n}, end + 1, true
}

// findSimple evaluates a simple path on the lossless tree with etree's
// semantics (tag and attribute names without a prefix match any prefix).
func (d *Document) findSimple(steps []pstep) []*node {
	cands := []*node{d.root}
	for _, st := range steps {
		var next []*node
		for _, c := range cands {
			// Filters apply among the children of each parent, as in etree.
			kids := filterTag(c.children, st.tag)
			for _, f := range st.filters {
				kids = applyFilter(kids, f)
			}
			next = append(next, kids...)
		}
		cands = next
		if len(cands) == 0 {
			return nil
		}
	}
	return cands
}

func filterTag(ns []*node, tag string) []*node {
	var out []*node
	for _, n := range ns {
		if n.kind == kindElement && tagMatches(tag, n.name) {
			out = append(out, n)
		}
	}
	return out
}

func applyFilter(ns []*node, f pfilter) []*node {
	if f.pos > 0 {
		if f.pos <= len(ns) {
			return ns[f.pos-1 : f.pos]
		}
		return nil
	}
	ks, kl := splitName(f.attr)
	var out []*node
	for _, n := range ns {
		for _, a := range n.attrs {
			as, al := splitName(a.name)
			if al == kl && (ks == "" || ks == as) && a.value == f.value {
				out = append(out, n)
				break
			}
		}
	}
	return out
}
