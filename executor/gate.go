package executor

import (
	"path"
	"slices"
	"sync"
)

// gate attributes writes between the attempts that run at once in one
// checkout. inotify and lstat data say which files changed, never which
// process changed them, so an attempt that saw a change it may not make is
// only blamed when it was alone in the checkout for its whole window;
// otherwise its result is inconclusive and the attempt runs again with the
// checkout to itself (the exclusive side of mu), where what changes is its
// own doing. Steps that behave pay nothing: attempts share mu.
//
// A step that may write its instance file claims that file for its window:
// a change to a claimed file seen by another attempt whose window overlaps
// the claim is the claimer's, not a forbidden write of the other.
type gate struct {
	mu sync.RWMutex // attempts hold it shared; a redo alone holds it exclusively

	state  sync.Mutex
	clock  uint64             // ticks at every enter and leave
	open   map[*window]bool   // attempts in flight
	claims map[*window]string // instance file claimed by a window, while it matters
}

// window is one attempt's stay in the checkout.
type window struct {
	start, end uint64 // end is 0 while in flight
	overlapped bool   // another attempt was in flight at some point
	// tainted are files an overlapping inconclusive attempt saw changed and
	// rolled back during this window: they count as changed here too, so
	// that the rollback does not hide a write from the attempt that made it.
	tainted []string
}

func newGate() *gate {
	return &gate{open: map[*window]bool{}, claims: map[*window]string{}}
}

// enter starts an attempt's window; claim is the instance file it may
// write ("" when none). alone takes the checkout exclusively.
func (g *gate) enter(claim string, alone bool) *window {
	if alone {
		g.mu.Lock()
	} else {
		g.mu.RLock()
	}
	g.state.Lock()
	defer g.state.Unlock()
	g.clock++
	w := &window{start: g.clock}
	for o := range g.open {
		o.overlapped = true
		w.overlapped = true
	}
	g.open[w] = true
	if claim != "" {
		g.claims[w] = path.Clean(claim)
	}
	return w
}

// leave ends w's window; call it after the attempt's writes check.
func (g *gate) leave(w *window, alone bool) {
	g.state.Lock()
	g.clock++
	w.end = g.clock
	delete(g.open, w)
	g.prune()
	g.state.Unlock()
	if alone {
		g.mu.Unlock()
	} else {
		g.mu.RUnlock()
	}
}

// prune drops the claims no attempt in flight can overlap any more.
func (g *gate) prune() {
	oldest := g.clock + 1
	for o := range g.open {
		oldest = min(oldest, o.start)
	}
	for c := range g.claims {
		if c.end != 0 && c.end < oldest {
			delete(g.claims, c)
		}
	}
}

// claimed returns the files other windows claimed while w was open; call
// it before leave.
func (g *gate) claimed(w *window) map[string]bool {
	g.state.Lock()
	defer g.state.Unlock()
	out := map[string]bool{}
	for c, f := range g.claims {
		if c != w && (c.end == 0 || c.end > w.start) {
			out[f] = true
		}
	}
	return out
}

// taint adds files to the changes of every other window in flight.
func (g *gate) taint(w *window, files []string) {
	g.state.Lock()
	defer g.state.Unlock()
	for o := range g.open {
		if o != w {
			o.tainted = append(o.tainted, files...)
		}
	}
}

// taintedIn returns the files tainted in w.
func (g *gate) taintedIn(w *window) []string {
	g.state.Lock()
	defer g.state.Unlock()
	return slices.Clone(w.tainted)
}

// wasAlone reports whether no other attempt was in flight during w.
func (g *gate) wasAlone(w *window) bool {
	g.state.Lock()
	defer g.state.Unlock()
	return !w.overlapped
}

// gates holds one gate per repository root of a RunJobs call.
type gates map[string]*gate

func gatesFor(jobs []Job) gates {
	gs := gates{}
	for _, j := range jobs {
		if gs[j.RepoRoot] == nil {
			gs[j.RepoRoot] = newGate()
		}
	}
	return gs
}
