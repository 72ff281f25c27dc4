package jiratest

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// Project is the key of the one project the server holds; searches and
// creates outside it are rejected.
const Project = "SRE"

// DefaultIssueType is the issue type creates must name unless
// [Server.SetIssueType] says otherwise.
const DefaultIssueType = "Incident"

// Issue is one issue as the server holds it.
type Issue struct {
	Key    string
	Labels []string
	// Fields are the "fields" of the create request, as decoded JSON,
	// with those of later edits (PUT) set over them; empty for a seeded
	// issue.
	Fields   map[string]any
	Comments []string // in the order they were posted
	Done     bool     // set by the "Mark fixed" transition
}

// Server is a Jira double listening on 127.0.0.1. The embedded
// httptest.Server gives its URL, Client and Close. Its methods are safe
// for concurrent use.
type Server struct {
	*httptest.Server
	auth    string
	release chan struct{} // closed at the test's cleanup, ending hung requests

	mu            sync.Mutex
	issueType     string
	issues        []*Issue
	calls         []string      // "METHOD /path", in order
	called        chan struct{} // closed and replaced on every call
	fieldGets     int
	failCreates   int
	retiredSearch bool
	blindSearch   bool
	status        int
	hang          bool
}

// NewServer starts a Jira double that accepts requests whose
// Authorization header is exactly authorization (for example
// "Bearer pat-123", or "Basic ..." for Jira Cloud) and answers others 401.
// It is closed when the test ends.
func NewServer(tb testing.TB, authorization string) *Server {
	tb.Helper()
	s := Start(authorization)
	tb.Cleanup(s.Stop)
	return s
}

// Start starts a Jira double as NewServer does, for a caller without a
// testing.TB (a testscript command), which ends it with Stop.
func Start(authorization string) *Server {
	s := &Server{auth: authorization, release: make(chan struct{}), issueType: DefaultIssueType, called: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Stop ends the requests left hanging and closes the server.
func (s *Server) Stop() {
	close(s.release)
	s.Close()
}

// SetIssueType sets the issue type a create must name.
func (s *Server) SetIssueType(name string) { s.locked(func() { s.issueType = name }) }

// FailCreates makes the next n create requests store their issue and then
// answer 502, as when the answer is lost on its way back.
func (s *Server) FailCreates(n int) { s.locked(func() { s.failCreates = n }) }

// RetireSearch makes GET /rest/api/2/search answer 410, as Jira Cloud
// does; /rest/api/2/search/jql keeps working.
func (s *Server) RetireSearch() { s.locked(func() { s.retiredSearch = true }) }

// BlindSearch makes every search from now on find no issue, as Jira's
// search does for an issue filed moments ago (its index lags).
func (s *Server) BlindSearch() { s.locked(func() { s.blindSearch = true }) }

// SetStatus makes every request from now on answer status with a Jira
// error body saying "Jira is having a bad day", before any other check;
// 0 restores normal service.
func (s *Server) SetStatus(status int) { s.locked(func() { s.status = status }) }

// Hang makes every request from now on wait without an answer until its
// client gives up or the test ends. The request is still recorded.
func (s *Server) Hang() { s.locked(func() { s.hang = true }) }

// locked runs f with s.mu held.
func (s *Server) locked(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// Seed files an issue with labels and no fields, as a human would have,
// and returns its key.
func (s *Server) Seed(labels ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.add(&Issue{Labels: labels, Fields: map[string]any{}})
}

// Issues returns copies of every issue, in the order they were filed.
func (s *Server) Issues() []Issue {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Issue, 0, len(s.issues))
	for _, is := range s.issues {
		out = append(out, is.clone())
	}
	return out
}

// Issue returns a copy of the issue with the given key, and whether there
// is one.
func (s *Server) Issue(key string) (Issue, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if is := s.find(key); is != nil {
		return is.clone(), true
	}
	return Issue{}, false
}

// Calls returns every request received so far as "METHOD /path" (no
// query), in order, including those refused or left hanging.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// FieldGets returns how many times the field list was fetched.
func (s *Server) FieldGets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fieldGets
}

// WaitCalls waits until the server has received at least n requests, and
// fails tb if that takes more than 30 s.
func (s *Server) WaitCalls(tb testing.TB, n int) {
	tb.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, called := len(s.calls), s.called
		s.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-called:
		case <-deadline.C:
			tb.Fatalf("Jira had %d calls after 30 s, want at least %d", got, n)
		}
	}
}

func (is *Issue) clone() Issue {
	c := *is
	c.Labels = slices.Clone(is.Labels)
	c.Fields = maps.Clone(is.Fields)
	c.Comments = slices.Clone(is.Comments)
	return c
}

// add keys is and stores it; s.mu is held.
func (s *Server) add(is *Issue) string {
	is.Key = fmt.Sprintf("%s-%d", Project, len(s.issues)+1)
	s.issues = append(s.issues, is)
	return is.Key
}

// find returns the issue with key, or nil; s.mu is held.
func (s *Server) find(key string) *Issue {
	for _, is := range s.issues {
		if is.Key == key {
			return is
		}
	}
	return nil
}
