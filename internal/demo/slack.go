package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// slackChannel stands in for the release team's Slack channel in the fleet
// demo: a local HTTP server taking the coordinator's incoming-webhook posts
// and keeping the text of each message (its header and its body).
type slackChannel struct {
	srv  *http.Server
	addr string
	mu   sync.Mutex
	msgs []slackSeen
}

type slackSeen struct{ head, body string }

func newSlackChannel() (*slackChannel, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("slack stand-in: %w", err)
	}
	s := &slackChannel{addr: ln.Addr().String()}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.post), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *slackChannel) url() string { return "http://" + s.addr + "/services/demo" }

func (s *slackChannel) close() { _ = s.srv.Close() }

func (s *slackChannel) post(w http.ResponseWriter, r *http.Request) {
	var p struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text *struct {
				Text string `json:"text"`
			} `json:"text"`
		} `json:"blocks"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p); err != nil {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	m := slackSeen{head: html.UnescapeString(p.Text)}
	for _, b := range p.Blocks {
		if b.Type == "section" && b.Text != nil {
			m.body = html.UnescapeString(b.Text.Text)
		}
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	s.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

// about returns the messages about rollout id (its header names it).
func (s *slackChannel) about(id string) []slackSeen {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []slackSeen
	for _, m := range s.msgs {
		for _, f := range strings.Fields(m.head) {
			if strings.TrimSuffix(f, ":") == id {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// showSlack waits until the coordinator's channel has each rollout's last
// message (the one that says how it ended) and prints what the channel
// heard about them.
func (fd *fleetDemo) showSlack(ctx context.Context, ids ...string) error {
	if fd.slack == nil {
		return nil
	}
	ended := func(id string) bool {
		for _, m := range fd.slack.about(id) {
			if strings.HasPrefix(m.head, "Fleet deployment "+id+" ") {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids {
		for !ended(id) {
			if time.Now().After(deadline) {
				return fmt.Errorf("the release channel never heard how rollout %s ended (%d message(s) about it)", id, len(fd.slack.about(id)))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	fd.say("\n== What the release team's Slack channel heard from the coordinator (notify: kind slack in %s's config) ==", fd.clusters[0].host.Name)
	for _, id := range ids {
		for _, m := range fd.slack.about(id) {
			fd.say("* %s", m.head)
			ok := 0
			for _, l := range strings.Split(strings.TrimSpace(m.body), "\n") {
				l = strings.TrimSpace(l)
				switch {
				case l == "" || strings.HasPrefix(l, "*"+m.head):
				case strings.Contains(l, "] succeeded: deployment "):
					ok++ // one line per host: the demo counts them
				default:
					fd.say("    %s", l)
				}
			}
			if ok > 0 {
				fd.say("    (and %d line(s) of hosts that succeeded)", ok)
			}
		}
	}
	return nil
}
