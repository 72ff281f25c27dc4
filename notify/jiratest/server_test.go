package jiratest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/notify/jiratest"
)

const auth = "Bearer pat-1"

// call sends one request to s and returns the status and body.
func call(t *testing.T, s *jiratest.Server, method, path, authorization, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", authorization)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func create(issueType, extra string) string {
	return `{"fields": {"project": {"key": "SRE"}, "issuetype": {"name": "` + issueType + `"}, "summary": "s", "labels": ["a", "b"]` + extra + `}}`
}

func TestCreateChecksShapeAndAuth(t *testing.T) {
	s := jiratest.NewServer(t, auth)
	for _, tc := range []struct {
		name, authorization, body string
		want                      int
	}{
		{"wrong token", "Bearer other", create("Incident", ""), http.StatusUnauthorized},
		{"not JSON", auth, "{", http.StatusUnsupportedMediaType},
		{"wrong issue type", auth, create("Task", ""), http.StatusBadRequest},
		{"unknown custom field", auth, create("Incident", `, "customfield_99999": "x"`), http.StatusBadRequest},
		{"good", auth, create("Incident", `, "customfield_10014": "x"`), http.StatusCreated},
	} {
		if got, body := call(t, s, http.MethodPost, "/rest/api/2/issue", tc.authorization, tc.body); got != tc.want {
			t.Errorf("%s: got %d %s, want %d", tc.name, got, body, tc.want)
		}
	}
	issues := s.Issues()
	if len(issues) != 1 || issues[0].Key != "SRE-1" || !slices.Equal(issues[0].Labels, []string{"a", "b"}) || issues[0].Fields["customfield_10014"] != "x" {
		t.Fatalf("got issues %+v, want SRE-1 labelled a, b with customfield_10014", issues)
	}
	if calls := s.Calls(); len(calls) != 5 || calls[0] != "POST /rest/api/2/issue" {
		t.Errorf("got calls %v, want the 5 creates, refused ones included", calls)
	}
	s.SetIssueType("Task")
	if got, body := call(t, s, http.MethodPost, "/rest/api/2/issue", auth, create("Task", "")); got != http.StatusCreated {
		t.Errorf("after SetIssueType: got %d %s, want 201", got, body)
	}
}

func TestSearchCommentsAndTransitions(t *testing.T) {
	s := jiratest.NewServer(t, auth)
	key := s.Seed("x")
	s.Seed("y")
	search := "/rest/api/2/search?jql=" + strings.ReplaceAll(`project+=+"SRE"+AND+labels+=+"y"+AND+resolution+=+Unresolved`, `"`, "%22")
	if got, body := call(t, s, http.MethodGet, search, auth, ""); got != http.StatusOK || !strings.Contains(body, `"key":"SRE-2"`) {
		t.Fatalf("search: got %d %s, want SRE-2", got, body)
	}
	if got, _ := call(t, s, http.MethodPost, "/rest/api/2/issue/"+key+"/comment", auth, `{"body": "hello"}`); got != http.StatusCreated {
		t.Fatalf("comment: got %d, want 201", got)
	}
	if got, _ := call(t, s, http.MethodPost, "/rest/api/2/issue/"+key+"/transitions", auth, `{"transition": {"id": "11"}}`); got != http.StatusBadRequest {
		t.Errorf("transition 11: got %d, want 400", got)
	}
	if got, _ := call(t, s, http.MethodPost, "/rest/api/2/issue/"+key+"/transitions", auth, `{"transition": {"id": "31"}}`); got != http.StatusNoContent {
		t.Errorf("transition 31: got %d, want 204", got)
	}
	is, ok := s.Issue(key)
	if !ok || !slices.Equal(is.Comments, []string{"hello"}) || !is.Done {
		t.Fatalf("got %+v, %v; want %s done with one comment", is, ok, key)
	}
	if _, ok := s.Issue("SRE-3"); ok {
		t.Errorf("SRE-3 found, want none")
	}
	if got, _ := call(t, s, http.MethodPost, "/rest/api/2/issue/SRE-3/comment", auth, `{"body": "x"}`); got != http.StatusNotFound {
		t.Errorf("comment on a missing issue: got %d, want 404", got)
	}
	s.RetireSearch()
	if got, _ := call(t, s, http.MethodGet, search, auth, ""); got != http.StatusGone {
		t.Errorf("retired search: got %d, want 410", got)
	}
}

func TestFailCreatesStoresTheIssue(t *testing.T) {
	s := jiratest.NewServer(t, auth)
	s.FailCreates(1)
	if got, _ := call(t, s, http.MethodPost, "/rest/api/2/issue", auth, create("Incident", "")); got != http.StatusBadGateway {
		t.Fatalf("got %d, want 502", got)
	}
	if got, _ := call(t, s, http.MethodPost, "/rest/api/2/issue", auth, create("Incident", "")); got != http.StatusCreated {
		t.Fatalf("second create: got %d, want 201", got)
	}
	if n := len(s.Issues()); n != 2 {
		t.Fatalf("got %d issues, want 2: the lost answer's issue is kept", n)
	}
}

func TestStatusAndHang(t *testing.T) {
	s := jiratest.NewServer(t, auth)
	s.SetStatus(http.StatusServiceUnavailable)
	got, body := call(t, s, http.MethodGet, "/rest/api/2/field", "no auth", "")
	var e struct{ ErrorMessages []string }
	if got != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &e) != nil || len(e.ErrorMessages) != 1 {
		t.Fatalf("got %d %s, want 503 with one error message", got, body)
	}
	s.SetStatus(0)
	if got, _ := call(t, s, http.MethodGet, "/rest/api/2/field", auth, ""); got != http.StatusOK || s.FieldGets() != 1 {
		t.Fatalf("got %d and %d field fetches, want 200 and 1", got, s.FieldGets())
	}
	s.Hang()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/rest/api/2/field", nil)
		resp, err := s.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	s.WaitCalls(t, 3)
	select {
	case err := <-errc:
		t.Fatalf("a hung request returned: %v", err)
	default:
	}
	cancel()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("a hung request got an answer")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a hung request outlived its client")
	}
}
