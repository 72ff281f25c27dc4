package notify_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sre-tools/deployer/notify"
)

// recorded is one request a test server received.
type recorded struct {
	Method, Path string
	Query        map[string][]string
	Header       http.Header
	Body         []byte
}

// recorder is a real HTTP server on 127.0.0.1 that records every request
// and answers with handle (200 "ok" when nil).
type recorder struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []recorded
	handle func(w http.ResponseWriter, r recorded)
}

func newRecorder(tb testing.TB, handle func(w http.ResponseWriter, r recorded)) *recorder {
	tb.Helper()
	rec := &recorder{handle: handle}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rr := recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, rr)
		h := rec.handle
		rec.mu.Unlock()
		if h == nil {
			_, _ = io.WriteString(w, "ok")
			return
		}
		h(w, rr)
	}))
	tb.Cleanup(rec.Close)
	return rec
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func sampleEvent(kind notify.EventKind) notify.Event {
	return notify.Event{
		Kind: kind, ID: 7, InterventionKind: "push-conflict",
		Host: "fra1-prod-dep01", Datacenter: "fra1", Repo: "clusterconfig-fra1", Instance: "viatris",
		Summary:    "push of instances/viatris.xml conflicts with a human change to @memory",
		NextAction: "deployer interventions resolve 7 --take ours|theirs",
		Evidence:   "base 4G, ours 8G, theirs 6G <by alice>",
		Count:      50, FirstSeen: t0, LastSeen: t0.Add(49 * time.Minute),
	}
}

// memOutbox is an in-memory Outbox with the store's semantics: pending
// messages are due when NextAttempt is not after Now.
type memOutbox struct {
	mu   sync.Mutex
	now  func() time.Time
	msgs []*outboxEntry
}

type outboxEntry struct {
	notify.Message
	next   time.Time
	sent   bool
	reason string
}

func (o *memOutbox) add(m notify.Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.msgs = append(o.msgs, &outboxEntry{Message: m})
}

func (o *memOutbox) Pending(limit int) ([]notify.Message, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []notify.Message
	for _, e := range o.msgs {
		if !e.sent && !e.next.After(o.now()) && (limit <= 0 || len(out) < limit) {
			out = append(out, e.Message)
		}
	}
	return out, nil
}

func (o *memOutbox) entry(id string) *outboxEntry {
	for _, e := range o.msgs {
		if e.DeliveryID == id {
			return e
		}
	}
	panic("no message " + id)
}

func (o *memOutbox) MarkSent(id string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	e := o.entry(id)
	e.sent = true
	e.Attempts++
	return nil
}

func (o *memOutbox) MarkFailed(id, reason string, next time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	e := o.entry(id)
	e.Attempts++
	e.reason, e.next = reason, next
	return nil
}

func (o *memOutbox) get(id string) outboxEntry {
	o.mu.Lock()
	defer o.mu.Unlock()
	return *o.entry(id)
}

func containsAny(b []byte, secrets ...string) string {
	for _, s := range secrets {
		if bytes.Contains(b, []byte(s)) {
			return s
		}
	}
	return ""
}
