package notify_test

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
)

// jiraServer is a real HTTP server answering the parts of Jira's REST API
// v2 the notifier uses, with the documented request and answer shapes. It
// checks the bearer token and the create-issue body, and keeps issues,
// labels, comments and transitions in memory.
type jiraServer struct {
	*httptest.Server
	token string

	mu        sync.Mutex
	issues    []*jiraIssue
	creates   []map[string]any // "fields" of every create request, in order
	fieldGets int
	calls     []string // "METHOD /path"
	// failCreates makes that many create requests store the issue and
	// then answer 502, as when the answer is lost.
	failCreates int
	// retiredSearch answers 410 on /rest/api/2/search, as Jira Cloud does.
	retiredSearch bool
}

type jiraIssue struct {
	Key      string
	Labels   []string
	Fields   map[string]any
	Comments []string
	Done     bool
}

var jiraFields = `[
 {"id":"summary","name":"Summary","custom":false,"orderable":true,"navigable":true,"searchable":true,"clauseNames":["summary"],"schema":{"type":"string","system":"summary"}},
 {"id":"labels","name":"Labels","custom":false,"schema":{"type":"array","items":"string","system":"labels"}},
 {"id":"priority","name":"Priority","custom":false,"schema":{"type":"priority","system":"priority"}},
 {"id":"customfield_10010","name":"Datacenter","custom":true,"clauseNames":["cf[10010]","Datacenter"],"schema":{"type":"option","custom":"com.atlassian.jira.plugin.system.customfieldtypes:select","customId":10010}},
 {"id":"customfield_10011","name":"Deployer Host","custom":true,"schema":{"type":"string","custom":"com.atlassian.jira.plugin.system.customfieldtypes:textfield","customId":10011}},
 {"id":"customfield_10012","name":"Affected Repos","custom":true,"schema":{"type":"array","items":"string","custom":"com.atlassian.jira.plugin.system.customfieldtypes:labels","customId":10012}},
 {"id":"customfield_10013","name":"Impact Score","custom":true,"schema":{"type":"number","custom":"com.atlassian.jira.plugin.system.customfieldtypes:float","customId":10013}},
 {"id":"customfield_10020","name":"Team","custom":true,"schema":{"type":"string","customId":10020}},
 {"id":"customfield_10021","name":"Team","custom":true,"schema":{"type":"option","customId":10021}}
]`

func newJiraServer(tb testing.TB, token string) *jiraServer {
	tb.Helper()
	js := &jiraServer{token: token}
	js.Server = httptest.NewServer(http.HandlerFunc(js.serve))
	tb.Cleanup(js.Close)
	return js
}

var (
	issuePath = regexp.MustCompile(`^/rest/api/2/issue/([A-Z]+-[0-9]+)/(comment|transitions)$`)
	labelTerm = regexp.MustCompile(`labels = "([^"]+)"`)
)

func (js *jiraServer) serve(w http.ResponseWriter, r *http.Request) {
	js.mu.Lock()
	defer js.mu.Unlock()
	js.calls = append(js.calls, r.Method+" "+r.URL.Path)
	if r.Header.Get("Authorization") != js.token {
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
	switch p := r.URL.Path; {
	case r.Method == http.MethodGet && p == "/rest/api/2/field":
		js.fieldGets++
		fmt.Fprint(w, jiraFields)
	case r.Method == http.MethodGet && p == "/rest/api/2/search" && js.retiredSearch:
		jiraError(w, http.StatusGone, "The requested API has been removed. Please migrate to /rest/api/3/search/jql")
	case r.Method == http.MethodGet && (p == "/rest/api/2/search" || p == "/rest/api/2/search/jql"):
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
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errorMessages": []string{msg}, "errors": map[string]string{}})
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
			hits = append(hits, map[string]any{"id": "1" + is.Key[4:], "key": is.Key, "self": "x", "fields": map[string]any{}})
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
	if proj["key"] != "SRE" || typ["name"] != "Incident" || summary == "" || len(summary) > 255 {
		writeJSON(w, 400, map[string]any{"errorMessages": []string{}, "errors": map[string]string{"project": "bad project, type or summary"}})
		return
	}
	for id := range f {
		if strings.HasPrefix(id, "customfield_") && !strings.Contains(jiraFields, `"`+id+`"`) {
			writeJSON(w, 400, map[string]any{"errorMessages": []string{}, "errors": map[string]string{id: "Field '" + id + "' cannot be set."}})
			return
		}
	}
	var labels []string
	raw, _ := f["labels"].([]any)
	for _, l := range raw {
		labels = append(labels, l.(string))
	}
	js.creates = append(js.creates, f)
	is := &jiraIssue{Key: fmt.Sprintf("SRE-%d", len(js.issues)+1), Labels: labels, Fields: f}
	js.issues = append(js.issues, is)
	if js.failCreates > 0 {
		js.failCreates--
		jiraError(w, http.StatusBadGateway, "proxy error")
		return
	}
	writeJSON(w, 201, map[string]string{"id": "1" + is.Key[4:], "key": is.Key, "self": js.URL + "/rest/api/2/issue/" + is.Key})
}

func (js *jiraServer) issue(key string) *jiraIssue {
	for _, is := range js.issues {
		if is.Key == key {
			return is
		}
	}
	return nil
}

func (js *jiraServer) onIssue(w http.ResponseWriter, method, key, what string, body map[string]any) {
	is := js.issue(key)
	if is == nil {
		jiraError(w, 404, "Issue does not exist or you do not have permission to see it.")
		return
	}
	switch {
	case what == "comment" && method == http.MethodPost:
		text, _ := body["body"].(string)
		is.Comments = append(is.Comments, text)
		writeJSON(w, 201, map[string]any{"id": fmt.Sprint(len(is.Comments)), "body": text})
	case what == "comment":
		var cs []map[string]string
		for i := len(is.Comments) - 1; i >= 0; i-- { // orderBy=-created
			cs = append(cs, map[string]string{"id": fmt.Sprint(i + 1), "body": is.Comments[i]})
		}
		writeJSON(w, 200, map[string]any{"startAt": 0, "maxResults": 50, "total": len(cs), "comments": cs})
	case what == "transitions" && method == http.MethodGet:
		ts := []map[string]any{{"id": "11", "name": "Start Progress", "to": map[string]any{"name": "In Progress", "statusCategory": map[string]string{"key": "indeterminate"}}}}
		if !is.Done {
			ts = append(ts, map[string]any{"id": "31", "name": "Mark fixed", "to": map[string]any{"name": "Done", "statusCategory": map[string]string{"key": "done"}}})
		}
		writeJSON(w, 200, map[string]any{"expand": "transitions", "transitions": ts})
	default:
		tr, _ := body["transition"].(map[string]any)
		if tr["id"] != "31" {
			jiraError(w, 400, "It seems that you have tried to perform a workflow operation that is not valid")
			return
		}
		is.Done = true
		w.WriteHeader(http.StatusNoContent)
	}
}

func (js *jiraServer) snapshot() (issues []jiraIssue, fieldGets int, calls []string) {
	js.mu.Lock()
	defer js.mu.Unlock()
	for _, is := range js.issues {
		issues = append(issues, *is)
	}
	return issues, js.fieldGets, append([]string(nil), js.calls...)
}
