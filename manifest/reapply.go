package manifest

import (
	"bytes"
	"fmt"
)

// Reapply re-applies journaled edits, made against base, onto upstream (the
// file as the remote has it now) and returns the result. It is what the
// write-back does when the remote moved.
//
// Edits that carry identity (Sig, BasePath: every edit Diff makes) are
// checked against base, found there by their signature when the path hint
// no longer names the same element, and carried onto upstream by Merge,
// which finds each element by content: an element upstream moved, or that
// has new or removed siblings above it, still gets the edit; one that
// cannot be found uniquely is a ConflictAmbiguous with the candidates.
// Edits without identity (journal entries written before it existed) are
// re-applied by position, so they are refused with a ConflictAmbiguous when
// upstream changed the children of the element that holds their target.
// When there are conflicts the returned bytes are upstream's.
func Reapply(base, upstream []byte, edits []Edit, opts DiffOptions) ([]byte, []Conflict, error) {
	ours, err := ApplyLimits(base, edits, opts.Limits)
	if err != nil {
		return nil, nil, fmt.Errorf("reapply: apply to base: %w", err)
	}
	if bytes.Equal(base, upstream) {
		return ours, nil, nil
	}
	bd, err := ParseDocumentLimits(base, opts.Limits)
	if err != nil {
		return nil, nil, fmt.Errorf("reapply: base: %w", err)
	}
	ud, err := ParseDocumentLimits(upstream, opts.Limits)
	if err != nil {
		return nil, nil, fmt.Errorf("reapply: upstream: %w", err)
	}
	keys := opts.keys()
	bt := buildElem(bd, bd.elem, nil)
	ut := buildElem(ud, ud.elem, nil)
	var conflicts []Conflict
	for _, e := range edits {
		if e.Sig == "" {
			if c, ok := legacyMoved(bd, ud, bt, ut, e); ok {
				conflicts = append(conflicts, c)
			}
			continue
		}
		if c, ok := identityCheck(bd, bt, e, keys); ok {
			conflicts = append(conflicts, c)
		}
	}
	if len(conflicts) > 0 {
		return upstream, conflicts, nil
	}
	return Merge(base, ours, upstream, opts)
}

// identityCheck finds the element an identity edit was made on in base: at
// BasePath when its signature agrees, else the one element of base with
// that signature. ok reports a conflict.
func identityCheck(bd *Document, bt *elem, e Edit, keys []string) (Conflict, bool) {
	if at := findElem(bd, bt, e.BasePath); at != nil && sigString(at.sig) == e.Sig {
		return Conflict{}, false
	}
	var found []*elem
	walkElems(bt, func(x *elem) {
		if sigString(x.sig) == e.Sig {
			found = append(found, x)
		}
	})
	if len(found) == 1 {
		return Conflict{}, false
	}
	c := Conflict{Kind: ConflictAmbiguous, Path: e.BasePath, Attr: e.Attr, Ours: e.String(), Absent: []string{"base"},
		Theirs: fmt.Sprintf("%d elements of the base carry the edit's identity %s", len(found), e.Sig)}
	for _, x := range found {
		c.Candidates = append(c.Candidates, pathOf(x, keys))
	}
	c.Candidates = capCandidates(c.Candidates)
	return c, true
}

// legacyMoved reports a conflict when a positional edit's parent has
// different children in upstream than in base.
func legacyMoved(bd, ud *Document, bt, ut *elem, e Edit) (Conflict, bool) {
	parentPath := e.Path
	if e.Op != OpInsert {
		if i := lastStep(e.Path); i > 0 {
			parentPath = e.Path[:i]
		} else {
			return Conflict{}, false // the root: no siblings
		}
	}
	bp, up := findElem(bd, bt, parentPath), findElem(ud, ut, parentPath)
	if bp != nil && up != nil && sameKids(bp, up) {
		return Conflict{}, false
	}
	c := Conflict{Kind: ConflictAmbiguous, Path: e.Path, Attr: e.Attr, Ours: e.String(),
		Theirs: "upstream changed the children of " + parentPath + "; this journal entry has no element identity, so its position cannot be trusted"}
	if bp != nil {
		c.Base = bp.raw
	}
	return c, true
}

// sameKids reports whether two elements have the same child elements in
// the same order (by signature).
func sameKids(a, b *elem) bool {
	if len(a.kids) != len(b.kids) {
		return false
	}
	for i := range a.kids {
		if a.kids[i].sig != b.kids[i].sig {
			return false
		}
	}
	return true
}

// lastStep returns the index of the '/' that starts the last step of a
// path, skipping slashes inside predicates.
func lastStep(p string) int {
	depth, last := 0, -1
	var quote byte
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '[':
			depth++
		case c == ']':
			depth--
		case c == '/' && depth == 0:
			last = i
		}
	}
	return last
}

// findElem returns the element of root (built from d) that path selects
// in d, or nil when it does not select exactly one: d's path evaluation,
// then the same position in document order in the elem tree.
func findElem(d *Document, root *elem, path string) *elem {
	if path == "" {
		return nil
	}
	target, err := d.findOne(path)
	if err != nil {
		return nil
	}
	n, idx := 0, -1
	nstack := []*node{d.elem}
	for len(nstack) > 0 && idx < 0 {
		x := nstack[len(nstack)-1]
		nstack = nstack[:len(nstack)-1]
		if x == target {
			idx = n
		}
		n++
		for i := len(x.children) - 1; i >= 0; i-- {
			if x.children[i].kind == kindElement {
				nstack = append(nstack, x.children[i])
			}
		}
	}
	var found *elem
	k := 0
	walkElems(root, func(x *elem) {
		if k == idx {
			found = x
		}
		k++
	})
	return found
}

// walkElems visits every element of the tree in document order.
func walkElems(root *elem, f func(*elem)) {
	stack := []*elem{root}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		f(x)
		for i := len(x.kids) - 1; i >= 0; i-- {
			stack = append(stack, x.kids[i])
		}
	}
}
