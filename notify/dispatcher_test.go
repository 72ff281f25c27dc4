package notify_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sre-tools/deployer/notify"
)

// clock is an injected clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func newDispatcher(tb testing.TB, out notify.Outbox, clk *clock, log zerolog.Logger, chans ...notify.ChannelConfig) *notify.Dispatcher {
	tb.Helper()
	d, err := notify.NewDispatcher(out, chans, notify.Options{Now: clk.Now, Logger: log, Backoff: time.Minute, MaxBackoff: time.Hour, RejectedBackoff: 30 * time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func drain(tb testing.TB, d *notify.Dispatcher) notify.Result {
	tb.Helper()
	r, err := d.Drain(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func within(tb testing.TB, what string, got, lo, hi time.Time) {
	tb.Helper()
	if got.Before(lo) || got.After(hi) {
		tb.Fatalf("%s: got %v, want between %v and %v", what, got, lo, hi)
	}
}

func TestDispatcherBacksOffOn500ThenDelivers(t *testing.T) {
	status := 500
	srv := newRecorder(t, func(w http.ResponseWriter, r recorded) { w.WriteHeader(status) })
	clk := &clock{t: t0}
	out := &memOutbox{now: clk.Now}
	out.add(notify.Message{DeliveryID: "p-1", Channel: "webhook", Event: sampleEvent(notify.EventNew)})
	d := newDispatcher(t, out, clk, zerolog.Nop(), notify.ChannelConfig{Kind: notify.KindWebhook, URL: srv.URL})

	if r := drain(t, d); r.Failed != 1 {
		t.Fatalf("first pass %+v, want one failure", r)
	}
	e := out.get("p-1")
	within(t, "first retry", e.next, t0.Add(30*time.Second), t0.Add(time.Minute))
	if e.Attempts != 1 || !strings.Contains(e.reason, "500") {
		t.Fatalf("attempts %d reason %q, want 1 and a 500", e.Attempts, e.reason)
	}
	if r := drain(t, d); r != (notify.Result{}) {
		t.Fatalf("pass before the retry time did %+v, want nothing", r)
	}
	clk.Set(e.next)
	drain(t, d)
	e2 := out.get("p-1")
	within(t, "second retry", e2.next, e.next.Add(time.Minute), e.next.Add(2*time.Minute))

	status = 200
	clk.Set(e2.next)
	if r := drain(t, d); r.Sent != 1 || !out.get("p-1").sent {
		t.Fatalf("third pass %+v, want sent", r)
	}
	if n := len(srv.requests()); n != 3 {
		t.Fatalf("server saw %d requests, want 3", n)
	}
	for _, r := range srv.requests() {
		if r.Header.Get("X-Deployer-Delivery") != "p-1" {
			t.Fatalf("retry changed the delivery id to %q", r.Header.Get("X-Deployer-Delivery"))
		}
	}
}

func TestDispatcherHonoursRetryAfter(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r recorded) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	clk := &clock{t: t0}
	out := &memOutbox{now: clk.Now}
	out.add(notify.Message{DeliveryID: "p-1", Channel: "slack", Event: sampleEvent(notify.EventNew), Attempts: 5})
	d := newDispatcher(t, out, clk, zerolog.Nop(), notify.ChannelConfig{Kind: notify.KindSlack, URL: srv.URL})
	drain(t, d)
	if got := out.get("p-1").next; !got.Equal(t0.Add(120 * time.Second)) {
		t.Fatalf("next attempt %v, want %v (Retry-After)", got, t0.Add(120*time.Second))
	}
}

func TestDispatcherRejectionBacksOffLongerAndSaysWhy(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r recorded) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("channel_not_found"))
	})
	var logs bytes.Buffer
	clk := &clock{t: t0}
	out := &memOutbox{now: clk.Now}
	out.add(notify.Message{DeliveryID: "p-1", Channel: "slack", Event: sampleEvent(notify.EventNew)})
	d := newDispatcher(t, out, clk, zerolog.New(&logs), notify.ChannelConfig{Kind: notify.KindSlack, URL: srv.URL + "/services/T/B/C"})
	drain(t, d)
	e := out.get("p-1")
	within(t, "retry after a rejection", e.next, t0.Add(15*time.Minute), t0.Add(30*time.Minute))
	if !strings.Contains(e.reason, "404") || !strings.Contains(e.reason, "channel_not_found") {
		t.Fatalf("reason %q, want the status and the service's answer", e.reason)
	}
	if !strings.Contains(logs.String(), `"level":"error"`) || !strings.Contains(logs.String(), "check this channel's config") {
		t.Fatalf("log %s lacks an error with a hint", logs.String())
	}
}

func TestDispatcherDefersChannelDuringOutage(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r recorded) { w.WriteHeader(http.StatusServiceUnavailable) })
	ok := newRecorder(t, nil)
	clk := &clock{t: t0}
	out := &memOutbox{now: clk.Now}
	for _, id := range []string{"p-1", "p-2", "p-3"} {
		out.add(notify.Message{DeliveryID: id, Channel: "slack", Event: sampleEvent(notify.EventNew)})
	}
	out.add(notify.Message{DeliveryID: "p-4", Channel: "webhook", Event: sampleEvent(notify.EventNew)})
	d := newDispatcher(t, out, clk, zerolog.Nop(),
		notify.ChannelConfig{Kind: notify.KindSlack, URL: srv.URL}, notify.ChannelConfig{Kind: notify.KindWebhook, URL: ok.URL})
	r := drain(t, d)
	if r != (notify.Result{Sent: 1, Failed: 1, Deferred: 2}) {
		t.Fatalf("got %+v, want 1 sent (webhook), 1 failed and 2 deferred (slack)", r)
	}
	if n := len(srv.requests()); n != 1 {
		t.Fatalf("the down service got %d requests, want 1", n)
	}
	if e := out.get("p-2"); e.Attempts != 0 {
		t.Fatalf("deferred message counted %d attempts", e.Attempts)
	}
}

func TestDispatcherUnknownChannel(t *testing.T) {
	clk := &clock{t: t0}
	out := &memOutbox{now: clk.Now}
	out.add(notify.Message{DeliveryID: "p-1", Channel: "pagerduty", Event: sampleEvent(notify.EventNew)})
	d := newDispatcher(t, out, clk, zerolog.Nop())
	drain(t, d)
	if e := out.get("p-1"); !strings.Contains(e.reason, "unknown channel") || e.next.Before(t0.Add(15*time.Minute)) {
		t.Fatalf("got reason %q next %v, want unknown channel and a long backoff", e.reason, e.next)
	}
}

func TestNewDispatcherRejectsDuplicateNames(t *testing.T) {
	_, err := notify.NewDispatcher(&memOutbox{now: time.Now}, []notify.ChannelConfig{
		{Kind: notify.KindSlack, URL: "https://a"}, {Kind: notify.KindSlack, URL: "https://b"},
	}, notify.Options{})
	if !errors.Is(err, notify.ErrDuplicateChannel) {
		t.Fatalf("got %v, want ErrDuplicateChannel", err)
	}
}

func TestDispatcherHonoursContext(t *testing.T) {
	arrived := make(chan struct{})
	srv := newRecorder(t, nil)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client leaving
		close(arrived)
		<-r.Context().Done()
	})
	clk := &clock{t: t0}
	out := &memOutbox{now: clk.Now}
	out.add(notify.Message{DeliveryID: "p-1", Channel: "webhook", Event: sampleEvent(notify.EventNew)})
	d := newDispatcher(t, out, clk, zerolog.Nop(), notify.ChannelConfig{Kind: notify.KindWebhook, URL: srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	if _, err := d.Drain(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if e := out.get("p-1"); e.Attempts != 0 || e.sent {
		t.Fatalf("a cancelled delivery was recorded: %+v", e)
	}
}

func TestDispatcherRequestTimeout(t *testing.T) {
	srv := newRecorder(t, nil)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	})
	clk := &clock{t: t0}
	out := &memOutbox{now: clk.Now}
	out.add(notify.Message{DeliveryID: "p-1", Channel: "webhook", Event: sampleEvent(notify.EventNew)})
	d, err := notify.NewDispatcher(out, []notify.ChannelConfig{{Kind: notify.KindWebhook, URL: srv.URL}},
		notify.Options{Now: clk.Now, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r := drain(t, d); r.Failed != 1 || !strings.Contains(out.get("p-1").reason, "timed out") {
		t.Fatalf("got %+v reason %q, want a timeout failure", r, out.get("p-1").reason)
	}
}

func TestRunDeliversOnKick(t *testing.T) {
	got := make(chan string, 10)
	srv := newRecorder(t, func(w http.ResponseWriter, r recorded) { got <- r.Header.Get("X-Deployer-Delivery") })
	clk := &clock{t: t0}
	out := &memOutbox{now: clk.Now}
	d, err := notify.NewDispatcher(out, []notify.ChannelConfig{{Kind: notify.KindWebhook, URL: srv.URL}},
		notify.Options{Now: clk.Now, Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	for _, id := range []string{"k-1", "k-2"} {
		out.add(notify.Message{DeliveryID: id, Channel: "webhook", Event: sampleEvent(notify.EventNew)})
		d.Kick()
		select {
		case g := <-got:
			if g != id {
				t.Fatalf("delivered %q, want %q", g, id)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s not delivered after Kick", id)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	for attempt, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute} {
		for range 20 {
			if got := notify.Backoff(time.Minute, 5*time.Minute, attempt); got < min(want, 5*time.Minute)/2 || got > min(want, 5*time.Minute) {
				t.Fatalf("attempt %d: got %v, want in [%v, %v]", attempt, got, min(want, 5*time.Minute)/2, min(want, 5*time.Minute))
			}
		}
	}
}
