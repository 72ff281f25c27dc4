package jiratest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

var (
	issuePath = regexp.MustCompile(`^/rest/api/2/issue/([A-Z]+-[0-9]+)/(comment|transitions)$`)
	labelTerm = regexp.MustCompile(`labels = "([^"]+)"`)
	editPath  = regexp.MustCompile(`^/rest/api/2/issue/([A-Z]+-[0-9]+)$`)
)

// serve records the call, then answers it as the knobs and Jira say.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls = append(s.calls, r.Method+" "+r.URL.Path)
	close(s.called)
	s.called = make(chan struct{})
	status, hang := s.status, s.hang
	s.mu.Unlock()
	if hang {
		select {
		case <-s.release:
		case <-r.Context().Done():
		}
		return
	}
	if status != 0 {
		writeError(w, status, "Jira is having a bad day")
		return
	}
	if r.Header.Get("Authorization") != s.auth {
		writeError(w, http.StatusUnauthorized, "You are not authenticated")
		return
	}
	var body map[string]any
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&body) != nil {
			writeError(w, http.StatusUnsupportedMediaType, "body must be JSON")
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch p := r.URL.Path; {
	case r.Method == http.MethodGet && p == "/rest/api/2/field":
		s.fieldGets++
		fmt.Fprint(w, fieldList)
	case r.Method == http.MethodGet && p == "/rest/api/2/search" && s.retiredSearch:
		writeError(w, http.StatusGone, "The requested API has been removed. Please migrate to /rest/api/3/search/jql")
	case r.Method == http.MethodGet && (p == "/rest/api/2/search" || p == "/rest/api/2/search/jql"):
		s.search(w, r.URL.Query().Get("jql"))
	case r.Method == http.MethodPost && p == "/rest/api/2/issue":
		s.create(w, body)
	case r.Method == http.MethodPut && editPath.MatchString(p):
		s.edit(w, editPath.FindStringSubmatch(p)[1], body)
	case issuePath.MatchString(p):
		m := issuePath.FindStringSubmatch(p)
		s.onIssue(w, r.Method, m[1], m[2], body)
	default:
		writeError(w, http.StatusNotFound, "no such resource")
	}
}

// writeError answers status with Jira's error body.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"errorMessages": []string{msg}, "errors": map[string]string{}})
}

// writeFieldError answers 400 with Jira's error body for one field.
func writeFieldError(w http.ResponseWriter, field, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{}, "errors": map[string]string{field: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// search answers the first issue matching jql's labels and resolution.
func (s *Server) search(w http.ResponseWriter, jql string) {
	if !strings.HasPrefix(jql, `project = "`+Project+`" AND `) {
		writeError(w, http.StatusBadRequest, "search outside the project: "+jql)
		return
	}
	var hits []map[string]any
	for _, is := range s.issues {
		if s.blindSearch {
			break
		}
		ok := !(strings.Contains(jql, "resolution = Unresolved") && is.Done)
		for _, m := range labelTerm.FindAllStringSubmatch(jql, -1) {
			ok = ok && slices.Contains(is.Labels, m[1])
		}
		if ok {
			hits = append(hits, map[string]any{"id": issueID(is.Key), "key": is.Key, "self": s.URL + "/rest/api/2/issue/" + is.Key, "fields": map[string]any{}})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"startAt": 0, "maxResults": 1, "total": len(hits), "issues": hits[:min(1, len(hits))]})
}

// create checks the documented create-issue shape and files the issue.
func (s *Server) create(w http.ResponseWriter, body map[string]any) {
	f, _ := body["fields"].(map[string]any)
	proj, _ := f["project"].(map[string]any)
	typ, _ := f["issuetype"].(map[string]any)
	summary, _ := f["summary"].(string)
	if proj["key"] != Project || typ["name"] != s.issueType || summary == "" || len(summary) > 255 {
		writeFieldError(w, "project", "bad project, type or summary")
		return
	}
	for id := range f {
		if strings.HasPrefix(id, "customfield_") && !strings.Contains(fieldList, `"`+id+`"`) {
			writeFieldError(w, id, "Field '"+id+"' cannot be set.")
			return
		}
	}
	var labels []string
	raw, _ := f["labels"].([]any)
	for _, l := range raw {
		label, ok := l.(string)
		if !ok {
			writeFieldError(w, "labels", "labels must be strings")
			return
		}
		labels = append(labels, label)
	}
	key := s.add(&Issue{Labels: labels, Fields: f})
	if s.failCreates > 0 {
		s.failCreates--
		writeError(w, http.StatusBadGateway, "proxy error")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": issueID(key), "key": key, "self": s.URL + "/rest/api/2/issue/" + key})
}

// edit sets the fields of issue key, as PUT /rest/api/2/issue/KEY does.
func (s *Server) edit(w http.ResponseWriter, key string, body map[string]any) {
	is := s.find(key)
	if is == nil {
		writeError(w, http.StatusNotFound, "Issue does not exist or you do not have permission to see it.")
		return
	}
	f, _ := body["fields"].(map[string]any)
	for id := range f {
		if strings.HasPrefix(id, "customfield_") && !strings.Contains(fieldList, `"`+id+`"`) {
			writeFieldError(w, id, "Field '"+id+"' cannot be set.")
			return
		}
	}
	if is.Fields == nil {
		is.Fields = map[string]any{}
	}
	for id, v := range f {
		is.Fields[id] = v
	}
	w.WriteHeader(http.StatusNoContent)
}

// onIssue answers the comment and transitions resources of issue key.
func (s *Server) onIssue(w http.ResponseWriter, method, key, what string, body map[string]any) {
	is := s.find(key)
	if is == nil {
		writeError(w, http.StatusNotFound, "Issue does not exist or you do not have permission to see it.")
		return
	}
	switch {
	case what == "comment" && method == http.MethodPost:
		text, _ := body["body"].(string)
		is.Comments = append(is.Comments, text)
		writeJSON(w, http.StatusCreated, map[string]any{"id": fmt.Sprint(len(is.Comments)), "body": text})
	case what == "comment" && method == http.MethodGet:
		var cs []map[string]string
		for i := len(is.Comments) - 1; i >= 0; i-- { // orderBy=-created
			cs = append(cs, map[string]string{"id": fmt.Sprint(i + 1), "body": is.Comments[i]})
		}
		writeJSON(w, http.StatusOK, map[string]any{"startAt": 0, "maxResults": 50, "total": len(cs), "comments": cs})
	case what == "transitions" && method == http.MethodGet:
		ts := []map[string]any{{"id": "11", "name": "Start Progress", "to": map[string]any{"name": "In Progress", "statusCategory": map[string]string{"key": "indeterminate"}}}}
		if !is.Done {
			ts = append(ts, map[string]any{"id": "31", "name": "Mark fixed", "to": map[string]any{"name": "Done", "statusCategory": map[string]string{"key": "done"}}})
		}
		writeJSON(w, http.StatusOK, map[string]any{"expand": "transitions", "transitions": ts})
	case what == "transitions" && method == http.MethodPost:
		tr, _ := body["transition"].(map[string]any)
		if tr["id"] != "31" {
			writeError(w, http.StatusBadRequest, "It seems that you have tried to perform a workflow operation that is not valid")
			return
		}
		is.Done = true
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

// issueID is the numeric id Jira gives the issue with key.
func issueID(key string) string {
	return "1" + strings.TrimPrefix(key, Project+"-")
}
