package fleet_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// jiraServer is a real HTTP server on 127.0.0.1 answering the parts of
// Jira's REST API v2 that notify.Jira uses (search, field list, create,
// comment, transitions), with the documented shapes; adapted from
// notify's test double. It checks the bearer token and keeps issues,
// labels, fields, comments and transitions in memory, and records every
// call.
type jiraServer struct {
	*httptest.Server
	token string

	mu     sync.Mutex
	issues []*jiraIssue
	calls  []string // "METHOD /path"
	// status, when set, answers every request with it (Jira in trouble).
	status int
	// hang makes every request wait until the test ends.
	hang chan struct{}
}

type jiraIssue struct {
	Key      string
	Labels   []string
	Fields   map[string]any
	Comments []string
	Done     bool
}

const jiraFields = `[
 {"id":"summary","name":"Summary","custom":false,"schema":{"type":"string","system":"summary"}},
 {"id":"labels","name":"Labels","custom":false,"schema":{"type":"array","items":"string","system":"labels"}},
 {"id":"customfield_10010","name":"Datacenter","custom":true,"schema":{"type":"option","customId":10010}},
 {"id":"customfield_10011","name":"Deployer Host","custom":true,"schema":{"type":"string","customId":10011}},
 {"id":"customfield_10012","name":"Affected Repos","custom":true,"schema":{"type":"array","items":"string","customId":10012}},
 {"id":"customfield_10014","name":"Change","custom":true,"schema":{"type":"string","customId":10014}}
]`

func newJiraServer(tb testing.TB, token string) *jiraServer {
	tb.Helper()
	js := &jiraServer{token: token, hang: make(chan struct{})}
	js.Server = httptest.NewServer(http.HandlerFunc(js.serve))
	tb.Cleanup(func() {
		close(js.hang)
		js.Close()
	})
	return js
}

var (
	issuePath = regexp.MustCompile(`^/rest/api/2/issue/([A-Z]+-[0-9]+)/(comment|transitions)$`)
	labelTerm = regexp.MustCompile(`labels = "([^"]+)"`)
)

func (js *jiraServer) serve(w http.ResponseWriter, r *http.Request) {
	js.mu.Lock()
	js.calls = append(js.calls, r.Method+" "+r.URL.Path)
	status, hang := js.status, js.hang
	js.mu.Unlock()
	if status == -1 {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		return
	}
	if status != 0 {
		jiraError(w, status, "Jira is having a bad day")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+js.token {
		jiraError(w, http.StatusUnauthorized, "You are not authenticated")
		return
	}
	var body map[string]any
	if r.Method == http.MethodPost {
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&body) != nil {
			jiraError(w, http.StatusUnsupportedMediaType, "body must be JSON")
			return
		}
	}
	js.mu.Lock()
	defer js.mu.Unlock()
	switch p := r.URL.Path; {
	case r.Method == http.MethodGet && p == "/rest/api/2/field":
		fmt.Fprint(w, jiraFields)
	case r.Method == http.MethodGet && p == "/rest/api/2/search":
		js.search(w, r.URL.Query().Get("jql"))
	case r.Method == http.MethodPost && p == "/rest/api/2/issue":
		js.create(w, body)
	case issuePath.MatchString(p):
		m := issuePath.FindStringSubmatch(p)
		js.onIssue(w, r.Method, m[1], m[2], body)
	default:
		jiraError(w, http.StatusNotFound, "no such resource")
	}
}

func jiraError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"errorMessages": []string{msg}, "errors": map[string]string{}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (js *jiraServer) search(w http.ResponseWriter, jql string) {
	if !strings.HasPrefix(jql, `project = "SRE" AND `) {
		jiraError(w, http.StatusBadRequest, "search outside the project: "+jql)
		return
	}
	var hits []map[string]any
	for _, is := range js.issues {
		ok := !(strings.Contains(jql, "resolution = Unresolved") && is.Done)
		for _, m := range labelTerm.FindAllStringSubmatch(jql, -1) {
			ok = ok && slices.Contains(is.Labels, m[1])
		}
		if ok {
			hits = append(hits, map[string]any{"key": is.Key, "fields": map[string]any{}})
		}
	}
	writeJSON(w, 200, map[string]any{"startAt": 0, "maxResults": 1, "total": len(hits), "issues": hits[:min(1, len(hits))]})
}

// create checks the documented create-issue shape.
func (js *jiraServer) create(w http.ResponseWriter, body map[string]any) {
	f, _ := body["fields"].(map[string]any)
	proj, _ := f["project"].(map[string]any)
	typ, _ := f["issuetype"].(map[string]any)
	summary, _ := f["summary"].(string)
	if proj["key"] != "SRE" || typ["name"] != "Task" || summary == "" || len(summary) > 255 {
		writeJSON(w, 400, map[string]any{"errorMessages": []string{}, "errors": map[string]string{"project": "bad project, type or summary"}})
		return
	}
	for id := range f {
		if strings.HasPrefix(id, "customfield_") && !strings.Contains(jiraFields, `"`+id+`"`) {
			writeJSON(w, 400, map[string]any{"errors": map[string]string{id: "Field '" + id + "' cannot be set."}})
			return
		}
	}
	var labels []string
	raw, _ := f["labels"].([]any)
	for _, l := range raw {
		labels = append(labels, l.(string))
	}
	js.addIssue(&jiraIssue{Labels: labels, Fields: f})
	writeJSON(w, 201, map[string]string{"key": js.issues[len(js.issues)-1].Key})
}

func (js *jiraServer) addIssue(is *jiraIssue) string {
	is.Key = fmt.Sprintf("SRE-%d", len(js.issues)+1)
	js.issues = append(js.issues, is)
	return is.Key
}

func (js *jiraServer) onIssue(w http.ResponseWriter, method, key, what string, body map[string]any) {
	var is *jiraIssue
	for _, x := range js.issues {
		if x.Key == key {
			is = x
		}
	}
	if is == nil {
		jiraError(w, 404, "Issue does not exist or you do not have permission to see it.")
		return
	}
	switch {
	case what == "comment" && method == http.MethodPost:
		text, _ := body["body"].(string)
		is.Comments = append(is.Comments, text)
		writeJSON(w, 201, map[string]any{"id": fmt.Sprint(len(is.Comments)), "body": text})
	case what == "transitions" && method == http.MethodGet:
		ts := []map[string]any{{"id": "11", "name": "Start Progress", "to": map[string]any{"name": "In Progress", "statusCategory": map[string]string{"key": "indeterminate"}}}}
		if !is.Done {
			ts = append(ts, map[string]any{"id": "31", "name": "Mark fixed", "to": map[string]any{"name": "Done", "statusCategory": map[string]string{"key": "done"}}})
		}
		writeJSON(w, 200, map[string]any{"transitions": ts})
	case what == "transitions" && method == http.MethodPost:
		tr, _ := body["transition"].(map[string]any)
		if tr["id"] != "31" {
			jiraError(w, 400, "It seems that you have tried to perform a workflow operation that is not valid")
			return
		}
		is.Done = true
		w.WriteHeader(http.StatusNoContent)
	default:
		jiraError(w, http.StatusMethodNotAllowed, "no")
	}
}

// seed files an issue as a human would have, and returns its key.
func (js *jiraServer) seed(labels ...string) string {
	js.mu.Lock()
	defer js.mu.Unlock()
	return js.addIssue(&jiraIssue{Labels: labels, Fields: map[string]any{}})
}

func (js *jiraServer) setStatus(status int) {
	js.mu.Lock()
	js.status = status
	js.mu.Unlock()
}

func (js *jiraServer) snapshot() (issues []jiraIssue, calls []string) {
	js.mu.Lock()
	defer js.mu.Unlock()
	for _, is := range js.issues {
		c := *is
		c.Comments = slices.Clone(is.Comments)
		issues = append(issues, c)
	}
	return issues, slices.Clone(js.calls)
}

// waitCalls waits until the server has had n calls, for at most 30 s.
func (js *jiraServer) waitCalls(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, calls := js.snapshot(); len(calls) >= n {
			return
		}
	}
	t.Fatalf("Jira had fewer than %d calls after 30 s", n)
}
