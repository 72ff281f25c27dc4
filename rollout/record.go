package rollout

import (
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/store"
)

// A rollout is one record in the store (store.Rollout, its spec the JSON
// of api.Rollout). Two things keep a large rollout's record from costing
// a decode or a rewrite per host and poll:
//
//   - the coordinator keeps each unfinished rollout's record decoded, as
//     last read or written (records), and decodes it again only when the
//     store says it was written since (store.RolloutVersion): the
//     driver's and the hosts' reads between two writes decode nothing;
//   - the hosts' progress is written in batches (setHost): while one
//     write of a rollout's hosts is under way, the changes of the other
//     hosts gather and go in the next write, one rewrite of the record for
//     all of them; a host's writer returns once its change is stored. An
//     operator's pause or cancel waits behind one such write at most.

// records caches unfinished rollouts' decoded records with the store
// version they were read or written as.
type records struct {
	mu sync.Mutex
	m  map[string]cachedRecord
}

type cachedRecord struct {
	ver uint64
	r   api.Rollout
}

// put caches r as of store version ver; a finished rollout is dropped
// (read from the store when asked).
func (rs *records) put(ver uint64, r api.Rollout) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if cur, ok := rs.m[r.ID]; ok && cur.ver > ver {
		return
	}
	if r.Finished != nil {
		delete(rs.m, r.ID)
		return
	}
	rs.m[r.ID] = cachedRecord{ver: ver, r: r}
}

// Get returns one rollout. The answer may be shared: callers must not
// change its slices and maps.
func (c *Coordinator) Get(id string) (api.Rollout, error) {
	ver := c.opts.Store.RolloutVersion(id)
	c.records.mu.Lock()
	cr, ok := c.records.m[id]
	c.records.mu.Unlock()
	if ok && cr.ver == ver {
		return cr.r, nil
	}
	rec, err := c.opts.Store.Rollout(id)
	if errors.Is(err, store.ErrNotFound) {
		return api.Rollout{}, deployer.Errorf(deployer.ENOTFOUND, "rollout %s not found on this coordinator", shownID(id))
	}
	if err != nil {
		return api.Rollout{}, err
	}
	r, err := decodeRecord(rec)
	if err != nil {
		return api.Rollout{}, err
	}
	c.records.put(rec.Version, r)
	return r, nil
}

// update changes rollout id in one store transaction: fn gets the decoded
// record, and what it leaves is written back (state and finish time
// mirrored in the store record). An error from fn writes nothing.
func (c *Coordinator) update(id string, fn func(*api.Rollout) error) (api.Rollout, error) {
	var out api.Rollout
	rec, err := c.opts.Store.UpdateRollout(id, func(rec *store.Rollout) error {
		r, err := decodeRecord(*rec)
		if err != nil {
			return err
		}
		if err := fn(&r); err != nil {
			return err
		}
		spec, err := json.Marshal(r)
		if err != nil {
			return err
		}
		rec.Spec, rec.State = spec, r.State
		rec.Finished = time.Time{}
		if r.Finished != nil {
			rec.Finished = *r.Finished
		}
		out = r
		return nil
	})
	var de *deployer.Error
	if errors.As(err, &de) {
		return out, de
	}
	if errors.Is(err, store.ErrNotFound) {
		return out, deployer.Errorf(deployer.ENOTFOUND, "rollout %s not found on this coordinator", shownID(id))
	}
	if err != nil {
		return out, err
	}
	out.Updated = rec.Updated
	c.records.put(rec.Version, out)
	return out, nil
}

// hostBatch gathers the host writes of one rollout while one is stored.
type hostBatch struct {
	mu      sync.Mutex
	writing bool
	pending []hostChange
}

type hostChange struct {
	hi   int
	fn   func(*api.RolloutHostState)
	done chan hostWritten
}

type hostWritten struct {
	r   api.Rollout
	err error
}

// setHost records host hi's state: fn changes it in the rollout's next
// host write, which setHost waits for.
func (c *Coordinator) setHost(id string, hi int, fn func(h *api.RolloutHostState)) (api.Rollout, error) {
	v, _ := c.hostBatches.LoadOrStore(id, &hostBatch{})
	b := v.(*hostBatch)
	ch := hostChange{hi: hi, fn: fn, done: make(chan hostWritten, 1)}
	b.mu.Lock()
	b.pending = append(b.pending, ch)
	if b.writing {
		b.mu.Unlock()
		w := <-ch.done
		return w.r, w.err
	}
	b.writing = true
	for len(b.pending) > 0 {
		batch := b.pending
		b.pending = nil
		b.mu.Unlock()
		r, err := c.update(id, func(r *api.Rollout) error {
			for _, hc := range batch {
				c.applyHost(r, hc.hi, hc.fn)
			}
			return nil
		})
		for _, hc := range batch {
			hc.done <- hostWritten{r: r, err: err}
		}
		b.mu.Lock()
	}
	b.writing = false
	b.mu.Unlock()
	w := <-ch.done
	return w.r, w.err
}

// applyHost changes host hi of r by fn, logging its end.
func (c *Coordinator) applyHost(r *api.Rollout, hi int, fn func(*api.RolloutHostState)) {
	if hi < 0 || hi >= len(r.Hosts) {
		return
	}
	before := r.Hosts[hi]
	fn(&r.Hosts[hi])
	r.Hosts[hi].Error = cleanText(r.Hosts[hi].Error, maxEvidence) // a host's answer, shown as it is stored
	h := r.Hosts[hi]
	if hostFinal(h.State) && (!hostFinal(before.State) || before.State != h.State) {
		detail := h.DeploymentState
		switch {
		case h.Error != "" && detail != "":
			detail += "; " + firstLine(h.Error)
		case h.Error != "":
			detail = firstLine(h.Error)
		}
		if h.Deployment == "" {
			// no deployment on the host: the why alone
			c.event(r, "host %s %s: %s", h.Host.Name, h.State, detail)
		} else {
			c.event(r, "host %s %s: deployment %s %s", h.Host.Name, h.State, h.Deployment, detail)
		}
	}
}
