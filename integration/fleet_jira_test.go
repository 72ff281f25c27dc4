package integration_test

import (
	"fmt"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sre-tools/deployer/notify/jiratest"
)

// fleetCmds are the commands of the fleet-jira-* scenarios.
func fleetCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"jiraserver": cmdJiraServer,
		"jiraissues": cmdJiraIssues,
	}
}

// jiraServers are the Jira doubles of the running scripts.
var jiraServers sync.Map // *testscript.TestScript -> *jiratest.Server

// cmdJiraServer starts the Jira double of package jiratest on 127.0.0.1
// (project SRE, issue type Task, a custom field Outcome) accepting the
// bearer token in TOKENFILE, and sets JIRA_URL.
//
//	jiraserver TOKENFILE
func cmdJiraServer(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: jiraserver TOKENFILE")
	}
	js := jiratest.Start("Bearer " + strings.TrimSpace(ts.ReadFile(args[0])))
	js.SetIssueType("Task")
	jiraServers.Store(ts, js)
	ts.Defer(func() {
		jiraServers.Delete(ts)
		js.Stop()
	})
	ts.Setenv("JIRA_URL", js.URL)
}

// cmdJiraIssues prints the Jira double's issues, one line each: key,
// last label, done, the Outcome field and the number of comments; then the
// first line of each comment, indented.
//
//	jiraissues
func cmdJiraIssues(ts *testscript.TestScript, neg bool, args []string) {
	v, ok := jiraServers.Load(ts)
	if !ok {
		ts.Fatalf("jiraissues: no jiraserver")
	}
	for _, is := range v.(*jiratest.Server).Issues() {
		outcome, _ := is.Fields["customfield_10015"].(string)
		fmt.Fprintf(ts.Stdout(), "%s %s done=%v outcome=%s comments=%d\n", is.Key, is.Labels[len(is.Labels)-1], is.Done, outcome, len(is.Comments))
		for _, c := range is.Comments {
			first, _, _ := strings.Cut(c, "\n")
			fmt.Fprintf(ts.Stdout(), "  > %s\n", first)
		}
	}
}
