package notify

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Outbox is the durable queue the daemon keeps (store.Store satisfies it
// through a small adapter in the daemon that decodes the Event payload
// and fills Message.IssueKey).
type Outbox interface {
	// Pending returns up to limit messages due now, oldest first.
	Pending(limit int) ([]Message, error)
	MarkSent(deliveryID string) error
	MarkFailed(deliveryID, reason string, next time.Time) error
}

// Options tune a Dispatcher. The zero value means defaults.
type Options struct {
	// Logger receives delivery lines; the zero value discards.
	Logger zerolog.Logger
	// Now is the clock for retry times; nil means time.Now.
	Now func() time.Time
	// Client sends the requests; nil means a client of the dispatcher's own.
	Client *http.Client
	// Timeout bounds each HTTP request; 0 means DefaultTimeout.
	Timeout time.Duration
	// Batch is how many messages one pass reads; 0 means 100.
	Batch int
	// Poll is how often Run looks at the outbox without a Kick; 0 means 30 s.
	Poll time.Duration
	// Backoff is the delay after a first failure, doubled per attempt up
	// to MaxBackoff; 0 means 30 s and 1 h. A rejection (4xx other than
	// 429) waits at least RejectedBackoff (0 means 15 min), doubled per
	// attempt up to 6 × MaxBackoff.
	Backoff, MaxBackoff, RejectedBackoff time.Duration
	// OnDelivered is called after a successful delivery and before
	// MarkSent, to store the receipt (a Jira issue key). An error counts
	// as a failed delivery, retried later; Jira deduplicates the retry.
	OnDelivered func(Message, Receipt) error
}

// Dispatcher delivers the outbox's messages to their channels, at least
// once each. Its methods are safe for concurrent use; Drain calls are
// serialized.
type Dispatcher struct {
	out      Outbox
	channels map[string]Channel
	opts     Options
	log      zerolog.Logger
	kick     chan struct{}
	mu       sync.Mutex // one Drain at a time; guards down
	// down holds, per channel, when it may be tried again after an outage.
	down map[string]time.Time
}

// NewDispatcher builds the channels and returns a dispatcher for out.
func NewDispatcher(out Outbox, channels []ChannelConfig, opts Options) (*Dispatcher, error) {
	opts = opts.withDefaults()
	d := &Dispatcher{out: out, channels: map[string]Channel{}, opts: opts, log: opts.Logger,
		kick: make(chan struct{}, 1), down: map[string]time.Time{}}
	copts := ChannelOptions{Client: opts.Client, Timeout: opts.Timeout, Logger: opts.Logger}
	for _, cfg := range channels {
		if _, dup := d.channels[cfg.name()]; dup {
			return nil, fmt.Errorf("channel %s: %w", cfg.name(), ErrDuplicateChannel)
		}
		ch, err := NewChannel(cfg, copts)
		if err != nil {
			return nil, err
		}
		d.channels[cfg.name()] = ch
	}
	return d, nil
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	o.Timeout = orDefault(o.Timeout, DefaultTimeout)
	o.Poll = orDefault(o.Poll, 30*time.Second)
	o.Backoff = orDefault(o.Backoff, 30*time.Second)
	o.MaxBackoff = orDefault(o.MaxBackoff, time.Hour)
	o.RejectedBackoff = orDefault(o.RejectedBackoff, 15*time.Minute)
	if o.Batch <= 0 {
		o.Batch = 100
	}
	return o
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Kick asks Run to look at the outbox now (after an Enqueue). It never
// blocks.
func (d *Dispatcher) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run drains the outbox on every Kick and every Poll interval until ctx
// ends, and returns ctx's error.
func (d *Dispatcher) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.kick:
		case <-t.C:
		}
		if _, err := d.Drain(ctx); err != nil && ctx.Err() == nil {
			d.log.Error().Err(err).Msg("notify: read outbox")
		}
		t.Reset(d.opts.Poll)
	}
}

// Result counts what one Drain did.
type Result struct{ Sent, Failed, Deferred int }

// Drain makes one pass over the due messages: each is delivered and
// marked sent, or marked failed with its next attempt time. Messages for
// a channel that is down (an earlier message failed with ErrUnavailable
// or 401/403 in this or an earlier pass) wait until its retry time
// without being tried, so an outage costs one request per backoff.
func (d *Dispatcher) Drain(ctx context.Context) (Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var r Result
	msgs, err := d.out.Pending(d.opts.Batch)
	if err != nil {
		return r, fmt.Errorf("pending messages: %w", err)
	}
	for _, m := range msgs {
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		if until, ok := d.down[m.Channel]; ok && d.opts.Now().Before(until) {
			r.Deferred++
			continue
		}
		if err := d.deliver(ctx, m); err != nil {
			r.Failed++
			continue
		}
		r.Sent++
	}
	return r, ctx.Err()
}

// deliver sends m and records the outcome in the outbox.
func (d *Dispatcher) deliver(ctx context.Context, m Message) error {
	log := d.log.With().Str("channel", m.Channel).Str("delivery", m.DeliveryID).
		Str("event", string(m.Event.Kind)).Uint64("intervention", m.Event.ID).Int("attempt", m.Attempts+1).Logger()
	err := d.send(ctx, m)
	if err == nil {
		if err = d.out.MarkSent(m.DeliveryID); err == nil {
			delete(d.down, m.Channel)
			log.Debug().Msg("notification delivered")
			return nil
		}
		log.Error().Err(err).Msg("notification delivered but not marked sent; it will be sent again")
		return err
	}
	if ctx.Err() != nil {
		return err // shutting down: the message stays due, no attempt is counted
	}
	next := d.nextAttempt(m, err)
	if blocksChannel(err) {
		d.down[m.Channel] = next
	}
	ev := log.Warn()
	if errors.Is(err, ErrRejected) || errors.Is(err, ErrUnknownChannel) {
		ev = log.Error().Str("hint", "the service refused the message: check this channel's config (url, token, project, fields)")
	}
	ev.Err(err).Time("next", next).Msg("notification failed")
	if merr := d.out.MarkFailed(m.DeliveryID, err.Error(), next); merr != nil {
		log.Error().Err(merr).Msg("notification failure not recorded")
	}
	return err
}

func (d *Dispatcher) send(ctx context.Context, m Message) error {
	ch, ok := d.channels[m.Channel]
	if !ok {
		return fmt.Errorf("deliver %s to %q: %w", m.DeliveryID, m.Channel, ErrUnknownChannel)
	}
	rec, err := ch.Deliver(ctx, m)
	if err != nil {
		return err
	}
	if d.opts.OnDelivered != nil {
		if err := d.opts.OnDelivered(m, rec); err != nil {
			return fmt.Errorf("record receipt of %s: %w", m.DeliveryID, err)
		}
	}
	return nil
}

// nextAttempt is when to try m again: the server's Retry-After when it
// gave one, else exponential backoff with jitter, longer for rejections.
func (d *Dispatcher) nextAttempt(m Message, err error) time.Time {
	now := d.opts.Now()
	var se *StatusError
	if errors.As(err, &se) && se.RetryAfter > 0 {
		return now.Add(min(se.RetryAfter, 24*time.Hour))
	}
	base, limit := d.opts.Backoff, d.opts.MaxBackoff
	if errors.Is(err, ErrRejected) || errors.Is(err, ErrUnknownChannel) {
		base, limit = max(d.opts.RejectedBackoff, base), 6*limit
	}
	return now.Add(Backoff(base, limit, m.Attempts))
}

// Backoff is the delay before retry number attempt+1: base doubled per
// earlier attempt, capped at limit, then jittered down by up to half.
func Backoff(base, limit time.Duration, attempt int) time.Duration {
	d := base
	for i := 0; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d - time.Duration(rand.Int64N(int64(d/2)+1))
}

// blocksChannel reports whether err says the whole channel is unusable
// for now, rather than this one message.
func blocksChannel(err error) bool {
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	var se *StatusError
	return errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden)
}
