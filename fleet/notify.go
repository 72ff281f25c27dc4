package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sre-tools/deployer/notify"
)

// NotifierOptions configure a Notifier.
type NotifierOptions struct {
	// Channels are the Slack and webhook channels, by name.
	Channels map[string]notify.Channel
	// StateFile keeps the messages already sent for the fleet id (see
	// StateFile); "" keeps none, so a rerun sends everything again.
	StateFile string
	// Follow is the command that shows the fleet deployment, in every
	// message.
	Follow string
	// Attempts is how many times a message is tried on a channel that
	// is unavailable; 0 means 3. Backoff is the wait after the first
	// failure, doubled after each; 0 means 1s.
	Attempts int
	Backoff  time.Duration
	// Warnings gets one line for the first failure of each channel; nil
	// discards. Lines never hold the channels' URLs or secrets.
	Warnings io.Writer
}

// NotifyReport says what a Notifier did.
type NotifyReport struct {
	Sent        int `json:"sent"`         // messages delivered (one per channel)
	AlreadySent int `json:"already_sent"` // left out: sent by an earlier run under the same fleet id
	Failed      int `json:"failed"`       // not delivered; a rerun tries them again
	Dropped     int `json:"dropped"`      // never tried: the wait at the end ran out
}

// Notifier sends a fleet deployment's start, the end of each wave and its
// final outcome to Slack and webhook channels: one message per channel
// each. What was sent is kept in StateFile, by fleet id, event, wave and
// outcome, so a rerun under the same fleet id sends what is new (a wave or
// outcome that differs) and nothing twice. The delivery id of a message is
// the same on every try and every rerun (fleet-ID-KEY), for receivers that
// dedupe too. Channels are called in a goroutine of their own, in order:
// a slow or unavailable channel never holds up the deployment.
type Notifier struct {
	opts   NotifierOptions
	ctx    context.Context
	cancel context.CancelFunc
	q      *jobQueue

	// Set by Wire.
	on     bool
	id     string
	event  notify.FleetEvent // the request part, copied into every event
	hosts  int
	waves  int
	sentMu sync.Mutex
	sent   map[string]time.Time // "channel key" -> when; loaded from StateFile

	mu     sync.Mutex
	rep    NotifyReport
	warned map[string]bool
}

// NewNotifier returns a Notifier; with no channel it sends nothing.
func NewNotifier(opts NotifierOptions) *Notifier {
	if opts.Attempts <= 0 {
		opts.Attempts = 3
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.Warnings == nil {
		opts.Warnings = io.Discard
	}
	n := &Notifier{opts: opts, warned: map[string]bool{}, sent: map[string]time.Time{}}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.q = newJobQueue(n.ctx, 1)
	return n
}

// StateFile is where the messages sent for fleet id are kept, under dir
// (os.UserCacheDir()/deployer when dir is ""): DIR/fleet-notify/fleet-ID.json.
func StateFile(dir, id string) (string, error) {
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("no place for the fleet notification state: %w", err)
		}
		dir = filepath.Join(cache, "deployer")
	}
	return filepath.Join(dir, "fleet-notify", "fleet-"+id+".json"), nil
}

// notifyState is the JSON of a StateFile.
type notifyState struct {
	Fleet string               `json:"fleet"`
	Sent  map[string]time.Time `json:"sent"` // "channel key" -> when
}

// Wire returns opts with Progress also feeding n (opts' own callback runs
// first) and with the fleet id set. A dry run is not wired: it notifies
// no one.
func (n *Notifier) Wire(hosts []Host, opts Options) (Options, error) {
	if opts.ID == "" {
		now := opts.Now
		if now == nil {
			now = time.Now
		}
		opts.ID = NewID(now())
	}
	if len(n.opts.Channels) == 0 || opts.Request.DryRun {
		return opts, nil
	}
	if err := n.load(opts.ID); err != nil {
		return opts, err
	}
	q := opts.Request
	waves, _ := Plan(hosts, opts.PlanOptions) // on an error Deploy fails the same way and calls nothing
	n.on, n.id, n.hosts, n.waves = true, opts.ID, len(hosts), len(waves)
	n.event = notify.FleetEvent{ID: opts.ID, Repo: opts.Repo, Waves: len(waves), HostCount: len(hosts),
		Select: q.Select, Where: q.Where, Reason: q.Reason, Ticket: q.Ticket, Who: q.Who, Follow: n.opts.Follow,
		DryRun: q.DryRun} // a dry run is not wired (above); should it be, its titles say "(dry run)" as a rollout's
	progress := opts.Progress
	opts.Progress = func(p Progress) {
		if progress != nil {
			progress(p)
		}
		n.progress(p)
	}
	return opts, nil
}

func (n *Notifier) load(id string) error {
	if n.opts.StateFile == "" {
		return nil
	}
	data, err := os.ReadFile(n.opts.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fleet notification state: %w", err)
	}
	var st notifyState
	if err := json.Unmarshal(data, &st); err != nil || st.Fleet != id {
		return fmt.Errorf("fleet notification state %s: not the state of fleet %s; remove it to send every message again", n.opts.StateFile, id)
	}
	maps.Copy(n.sent, st.Sent)
	return nil
}

// save writes the sent keys next to the state file and renames it over.
func (n *Notifier) save() error {
	if n.opts.StateFile == "" {
		return nil
	}
	data, err := json.MarshalIndent(notifyState{Fleet: n.id, Sent: n.sent}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(n.opts.StateFile), 0o700); err != nil {
		return err
	}
	tmp := n.opts.StateFile + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, n.opts.StateFile)
}

func (n *Notifier) progress(p Progress) {
	e := n.event
	if !p.Done {
		if p.Wave.Index == 1 {
			e.State = OutcomeRunning
			n.send(notify.EventFleetStarted, "fleet-started", e)
		}
		return
	}
	s := Summarize(p.ID, p.Hosts)
	e.State, e.Wave, e.Canary = OutcomeRunning, p.Wave.Index, p.Wave.Canary
	e.Hosts, e.Counts = hostCounts(s.HostCounts), s.Counts
	for _, h := range p.Hosts {
		e.Lines = append(e.Lines, hostLine(h))
	}
	n.send(notify.EventFleetWave, fmt.Sprintf("fleet-wave-%d-%s", p.Wave.Index, Outcome(p.Hosts)), e)
}

// Finish queues the final outcome (interrupted when deployErr is set),
// waits until every message is sent or ctx is done, and says what was
// sent. A fleet that never started sends nothing.
func (n *Notifier) Finish(ctx context.Context, res Result, deployErr error) NotifyReport {
	if n.on && res.ID != "" {
		e := n.event
		e.State = Outcome(res.Hosts)
		if deployErr != nil {
			e.State = OutcomeInterrupted
		}
		s := Summarize(res.ID, res.Hosts)
		e.Hosts, e.Counts, e.Stopped = hostCounts(s.HostCounts), s.Counts, res.Stopped
		const maxLines = 20
		for _, h := range res.Hosts {
			if h.State == HostSucceeded || h.State == HostNoMatch {
				continue
			}
			if len(e.Lines) == maxLines {
				e.Lines = append(e.Lines, "… more: see the follow command")
				break
			}
			e.Lines = append(e.Lines, hostLine(h))
		}
		n.send(notify.EventFleetEnded, "fleet-ended-"+e.State, e)
	}
	n.q.close()
	done := make(chan struct{})
	go func() { n.q.wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		n.cancel()
		<-done
	}
	n.cancel()
	n.mu.Lock()
	defer n.mu.Unlock()
	rep := n.rep
	rep.Dropped = n.q.dropped() * len(n.opts.Channels)
	return rep
}

// send queues the event for every channel that has not had key yet.
func (n *Notifier) send(kind notify.EventKind, key string, e notify.FleetEvent) {
	m := notify.Message{DeliveryID: "fleet-" + n.id + "-" + key, Event: notify.Event{Kind: kind, Fleet: &e}}
	n.q.add(func(ctx context.Context) {
		for _, name := range slices.Sorted(maps.Keys(n.opts.Channels)) {
			sentKey := name + " " + key
			n.sentMu.Lock()
			_, done := n.sent[sentKey]
			n.sentMu.Unlock()
			if done {
				n.count(func(r *NotifyReport) { r.AlreadySent++ })
				continue
			}
			m.Channel = name
			if err := n.deliver(ctx, n.opts.Channels[name], m); err != nil {
				n.count(func(r *NotifyReport) { r.Failed++ })
				n.warn(name, fmt.Sprintf("notify: %s: %s: %v (the deployment goes on; a rerun under the same --id tries it again)", name, kind, err))
				continue
			}
			n.count(func(r *NotifyReport) { r.Sent++ })
			n.sentMu.Lock()
			n.sent[sentKey] = time.Now().UTC()
			err := n.save()
			n.sentMu.Unlock()
			if err != nil {
				n.warn("state", fmt.Sprintf("notify: could not keep what was sent (%v): a rerun under the same --id sends it again", err))
			}
		}
	})
}

// deliver tries m on ch, again after a backoff while the channel is
// unavailable.
func (n *Notifier) deliver(ctx context.Context, ch notify.Channel, m notify.Message) error {
	wait := n.opts.Backoff
	for attempt := 0; ; attempt++ {
		m.Attempts = attempt
		_, err := ch.Deliver(ctx, m)
		if err == nil || !errors.Is(err, notify.ErrUnavailable) || attempt+1 >= n.opts.Attempts {
			return err
		}
		if serr := sleep(ctx, wait); serr != nil {
			return err
		}
		wait *= 2
	}
}

func (n *Notifier) count(f func(*NotifyReport)) {
	n.mu.Lock()
	f(&n.rep)
	n.mu.Unlock()
}

func (n *Notifier) warn(class, line string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.warned[class] {
		n.warned[class] = true
		fmt.Fprintln(n.opts.Warnings, line)
	}
}

func hostCounts(c map[HostState]int) map[string]int {
	out := make(map[string]int, len(c))
	for st, k := range c {
		if k > 0 {
			out[string(st)] = k
		}
	}
	return out
}

// hostLine is "fra-dep01 [fra] failed: deployment d…2 failed (1 failed); error".
func hostLine(h HostResult) string {
	var parts []string
	if h.Deployment != "" {
		parts = append(parts, fmt.Sprintf("deployment %s %s (%s)", h.Deployment, h.DeploymentState, countsText(h.Counts)))
	}
	if h.Error != "" {
		parts = append(parts, firstLine(h.Error))
	}
	line := fmt.Sprintf("%s [%s] %s", h.Host.Name, h.Host.Datacenter, h.State)
	if len(parts) > 0 {
		line += ": " + strings.Join(parts, "; ")
	}
	return line
}
