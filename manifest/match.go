package manifest

import (
	"encoding/binary"
	"hash/fnv"
	"sort"
	"strconv"
)

// Matching siblings between two versions of an element.
//
// Children with a key attribute (DiffOptions.KeyAttrs) are matched by tag
// plus key. The others are matched by content, as XML three-way merges do
// (Lindholm's 3DM, the fast-match of Chawathe et al.): first the longest
// common subsequence of their signatures (a hash of tag, attributes, text
// and every descendant), which pairs the unchanged children whatever was
// inserted, removed or moved around them; then, inside each gap between two
// such anchors, the changed children are paired by similarity (the share of
// attributes, text and child signatures they have in common). A pair whose
// partner could equally have been another sibling is marked ambiguous, so
// that Merge reports a conflict instead of guessing which one an edit meant.

// computeSig sets e.sig from its tag, attributes (in name order), leaf text
// and the signatures of its children: a Merkle hash, linear in the tree.
func (e *elem) computeSig() {
	h := fnv.New64a()
	h.Write([]byte(e.name))
	h.Write([]byte{0})
	as := e.attrs
	if !sort.SliceIsSorted(as, func(i, j int) bool { return as[i].name < as[j].name }) {
		as = sortedAttrs(e)
	}
	for _, a := range as {
		h.Write([]byte(a.name))
		h.Write([]byte{'='})
		h.Write([]byte(a.value))
		h.Write([]byte{0})
	}
	e.shallow = h.Sum64()
	if e.leaf && !isBlank(e.text) {
		h.Write([]byte{1})
		h.Write([]byte(e.text))
	}
	var b [8]byte
	for _, k := range e.kids {
		binary.LittleEndian.PutUint64(b[:], k.sig)
		h.Write(b[:])
	}
	e.sig = h.Sum64()
}

// sigString renders a signature for Edit.Sig.
func sigString(s uint64) string { return strconv.FormatUint(s, 16) }

// Bounds that keep alignment near-linear on long sibling lists.
const (
	maxLCSCells = 1 << 20 // a DP table larger than this falls back to a greedy alignment
	maxGapCells = 1 << 16 // a similarity matrix larger than this pairs in order, ambiguously
	minSimilar  = 0.5     // pairs less similar than this are a removal plus an insert
	fallbackWin = 8       // past maxGapCells, how far ahead in order a partner is looked for
)

// matchKids pairs old and new children: m[i] is the index in olds of
// news[i]'s match, or -1.
func matchKids(olds, news []*elem, keys []string) []int {
	m, _ := matchKidsAmb(olds, news, keys)
	return m
}

// matchKidsAmb is matchKids that also says, for each new child, whether its
// match was ambiguous: another old child would have done as well.
func matchKidsAmb(olds, news []*elem, keys []string) ([]int, []bool) {
	km := &kidMatch{olds: olds, news: news, m: make([]int, len(news)), amb: make([]bool, len(news))}
	for i := range km.m {
		km.m[i] = -1
	}
	km.keyed(keys)
	if len(km.ou) == 0 || len(km.nu) == 0 {
		return km.m, km.amb
	}
	km.unchanged()
	km.moved()
	km.changed()
	return km.m, km.amb
}

// kidMatch is the state of matching one element's children: m[i] is the old
// child matched to new child i (-1 for none), amb[i] whether that pairing is
// a guess between identical copies or between similar candidates.
type kidMatch struct {
	olds, news []*elem
	m          []int
	amb        []bool
	ou, nu     []int    // the unkeyed children, old and new
	a, b       []uint64 // their signatures
	countA     map[uint64]int
	countB     map[uint64]int
	pairs      [][2]int // the longest common subsequence of a and b
	usedO      []bool   // old children matched so far
}

// keyed matches keyed children by tag plus key value plus occurrence and
// collects the unkeyed ones.
func (km *kidMatch) keyed(keys []string) {
	index := map[string]int{}
	seen := map[string]int{}
	for i, k := range km.olds {
		if id, ok := keyedID(k, keys, seen); ok {
			index[id] = i
		} else {
			km.ou = append(km.ou, i)
		}
	}
	seen = map[string]int{}
	for i, k := range km.news {
		if id, ok := keyedID(k, keys, seen); ok {
			if j, found := index[id]; found {
				km.m[i] = j
			}
		} else {
			km.nu = append(km.nu, i)
		}
	}
}

// unchanged pairs the unkeyed children that kept their content and their
// order (the anchors).
func (km *kidMatch) unchanged() {
	km.a, km.b = make([]uint64, len(km.ou)), make([]uint64, len(km.nu))
	km.countA, km.countB = map[uint64]int{}, map[uint64]int{}
	for i, j := range km.ou {
		km.a[i] = km.olds[j].sig
		km.countA[km.a[i]]++
	}
	for i, j := range km.nu {
		km.b[i] = km.news[j].sig
		km.countB[km.b[i]]++
	}
	km.pairs = lcs(km.a, km.b)
	for _, p := range km.pairs {
		ni := km.nu[p[1]]
		km.m[ni] = km.ou[p[0]]
		// Identical copies were added or removed: which copy is which
		// cannot be told.
		if s := km.a[p[0]]; km.countA[s] != km.countB[s] {
			km.amb[ni] = true
		}
	}
	km.usedO = make([]bool, len(km.olds))
	for _, j := range km.m {
		if j >= 0 {
			km.usedO[j] = true
		}
	}
}

// moved pairs unchanged children that moved across an anchor, by identical
// content, before any pairing by similarity.
func (km *kidMatch) moved() {
	free := map[uint64][]int{}
	for _, i := range km.ou {
		if !km.usedO[i] {
			free[km.olds[i].sig] = append(free[km.olds[i].sig], i)
		}
	}
	for _, j := range km.nu {
		if km.m[j] >= 0 {
			continue
		}
		sig := km.news[j].sig
		if l := free[sig]; len(l) > 0 {
			km.m[j], km.usedO[l[0]] = l[0], true
			free[sig] = l[1:]
			km.amb[j] = km.countA[sig] != km.countB[sig]
		}
	}
}

// changed pairs the changed children: by similarity inside each gap between
// consecutive anchors, then (moved and changed) across gaps.
func (km *kidMatch) changed() {
	pa, pb := -1, -1
	for k := 0; k <= len(km.pairs); k++ {
		ea, eb := len(km.a), len(km.b)
		if k < len(km.pairs) {
			ea, eb = km.pairs[k][0], km.pairs[k][1]
		}
		km.pairFree(km.ou[pa+1:ea], km.nu[pb+1:eb])
		if k < len(km.pairs) {
			pa, pb = km.pairs[k][0], km.pairs[k][1]
		}
	}
	km.pairFree(km.ou, km.nu)
}

// pairFree pairs by similarity the children of olds and news not matched yet.
func (km *kidMatch) pairFree(olds, news []int) {
	var og, ng []int
	for _, i := range olds {
		if !km.usedO[i] {
			og = append(og, i)
		}
	}
	for _, j := range news {
		if km.m[j] < 0 {
			ng = append(ng, j)
		}
	}
	if len(og) == 0 || len(ng) == 0 {
		return
	}
	pairGap(km.olds, km.news, og, ng, km.m, km.amb)
	for _, j := range ng {
		if km.m[j] >= 0 {
			km.usedO[km.m[j]] = true
		}
	}
}

// keyedID returns the identity of a keyed child: tag, key and occurrence.
func keyedID(k *elem, keys []string, seen map[string]int) (string, bool) {
	name, v, ok := keyOf(k, keys)
	if !ok {
		return "", false
	}
	id := k.name + "\x00@" + name + "=" + v
	seen[id]++
	return id + "#" + strconv.Itoa(seen[id]), true
}

// lcs aligns two signature sequences: the index pairs of a longest common
// subsequence (an exact one when the table is small, else a greedy
// order-preserving one), in increasing order.
func lcs(a, b []uint64) [][2]int {
	var out [][2]int
	p := 0
	for p < len(a) && p < len(b) && a[p] == b[p] {
		out = append(out, [2]int{p, p})
		p++
	}
	s := 0
	for s < len(a)-p && s < len(b)-p && a[len(a)-1-s] == b[len(b)-1-s] {
		s++
	}
	A, B := a[p:len(a)-s], b[p:len(b)-s]
	n, mm := len(A), len(B)
	switch {
	case n == 0 || mm == 0:
	case n*mm <= maxLCSCells:
		w := mm + 1
		L := make([]int32, (n+1)*w)
		for i := n - 1; i >= 0; i-- {
			for j := mm - 1; j >= 0; j-- {
				if A[i] == B[j] {
					L[i*w+j] = L[(i+1)*w+j+1] + 1
				} else if x, y := L[(i+1)*w+j], L[i*w+j+1]; x >= y {
					L[i*w+j] = x
				} else {
					L[i*w+j] = y
				}
			}
		}
		for i, j := 0, 0; i < n && j < mm; {
			switch {
			case A[i] == B[j]:
				out = append(out, [2]int{p + i, p + j})
				i++
				j++
			case L[(i+1)*w+j] >= L[i*w+j+1]:
				i++
			default:
				j++
			}
		}
	default:
		// Greedy: each new signature takes the first unused old one after
		// the last match.
		pos := map[uint64][]int{}
		for i, x := range A {
			pos[x] = append(pos[x], i)
		}
		last := -1
		for j, x := range B {
			l := pos[x]
			for len(l) > 0 && l[0] <= last {
				l = l[1:]
			}
			pos[x] = l
			if len(l) > 0 {
				out = append(out, [2]int{p + l[0], p + j})
				last = l[0]
				pos[x] = l[1:]
			}
		}
	}
	for k := s; k > 0; k-- {
		out = append(out, [2]int{len(a) - k, len(b) - k})
	}
	return out
}

// pairGap pairs the changed children between two anchors by similarity.
func pairGap(olds, news []*elem, og, ng []int, m []int, amb []bool) {
	if len(og)*len(ng) > maxGapCells {
		// Too many to compare every pair: pair same-tag children in order
		// when they are similar enough, and mark every such pair
		// ambiguous. Diff still gets small edits; a merge that would
		// carry an edit through one of them reports a conflict instead
		// of trusting a position.
		used := make([]bool, len(og))
		next := 0
		for _, j := range ng {
			for x := next; x < len(og) && x < next+fallbackWin; x++ {
				if used[x] || olds[og[x]].name != news[j].name || !kept(olds[og[x]], news[j]) {
					continue
				}
				m[j], amb[j], used[x] = og[x], true, true
				next = x + 1
				break
			}
		}
		return
	}
	type cand struct {
		o, n  int // indexes into og, ng
		score float64
	}
	var cs []cand
	for x, i := range og {
		for y, j := range ng {
			o, n := olds[i], news[j]
			if o.name != n.name {
				continue
			}
			s := similarity(o, n)
			if s >= minSimilar {
				cs = append(cs, cand{x, y, s})
			}
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].score > cs[j].score })
	usedO := make([]bool, len(og))
	usedN := make([]bool, len(ng))
	for i, c := range cs {
		if usedO[c.o] || usedN[c.n] {
			continue
		}
		tie := false
		for _, d := range cs[i+1:] {
			if d.score != c.score {
				break
			}
			if (d.o == c.o && !usedN[d.n]) || (d.n == c.n && !usedO[d.o]) {
				tie = true
			}
		}
		usedO[c.o], usedN[c.n] = true, true
		m[ng[c.n]] = og[c.o]
		amb[ng[c.n]] = tie
	}
}

// similarity is the share of what two same-tag elements have in common:
// the tag, attributes, leaf text and children (by tag and attributes), over
// the larger of the two. It pairs siblings; whether an element both sides
// changed may be merged as one is decided by kept.
func similarity(a, b *elem) float64 {
	return shared(a, b, 1)
}

// kept reports whether b keeps more than half of what a has (attributes,
// leaf text, children), the tag not counted: how sure a pairing made past
// maxGapCells must be. <server host="a"/> and <server host="c"/> keep
// nothing of each other, and two servers that share only a port keep half.
func kept(a, b *elem) bool {
	return shared(a, b, 0) > 0.5
}

// shared is the share of items a and b have in common, counting the tag as
// tag items (0 or 1).
func shared(a, b *elem, tag int) float64 {
	items := func(e *elem) int {
		n := len(e.attrs) + len(e.kids)
		if e.leaf && !isBlank(e.text) {
			n++
		}
		return n
	}
	total := max(items(a), items(b)) + tag
	if total == 0 {
		return 0
	}
	common := tag
	for _, x := range a.attrs {
		if v, ok := b.attr(x.name); ok && v == x.value {
			common++
		}
	}
	if a.leaf && b.leaf && !isBlank(a.text) && a.text == b.text {
		common++
	}
	if len(a.kids) > 0 && len(b.kids) > 0 {
		// Children count by tag and attributes: a child whose text or
		// descendants changed still makes its parent similar.
		ks := make(map[uint64]int, len(a.kids))
		for _, k := range a.kids {
			ks[k.shallow]++
		}
		for _, k := range b.kids {
			if ks[k.shallow] > 0 {
				ks[k.shallow]--
				common++
			}
		}
	}
	return float64(common) / float64(total)
}
