// Package jiratest provides a Jira REST API v2 double for tests of code
// that uses notify.Jira, in the manner of net/http/httptest: a real HTTP
// server on 127.0.0.1 answering the calls notify.Jira makes (field list,
// search, create issue, comments, transitions) with the documented
// request and answer shapes. It checks the Authorization header and the
// create-issue body, keeps issues, labels, fields, comments and
// transitions in memory, and records every call.
//
// It is for tests only: product code never imports it.
//
// # The server's Jira
//
// Issues live in project [Project] and are keyed SRE-1, SRE-2, ... in
// the order they are created or seeded. A create must name the project,
// the issue type set with [Server.SetIssueType] ("Incident" unless set),
// a summary of 1 to 255 characters, and only custom fields the field list
// holds. The field list has the system fields Summary, Labels and
// Priority and these custom fields:
//
//	customfield_10010  Datacenter      option
//	customfield_10011  Deployer Host   string
//	customfield_10012  Affected Repos  array of string (labels)
//	customfield_10013  Impact Score    number
//	customfield_10014  Change          string
//	customfield_10020  Team            string
//	customfield_10021  Team            option (the name is ambiguous)
//
// Search understands `project = "SRE" AND ...` with `labels = "x"` terms
// and `resolution = Unresolved`, and answers at most one issue. Each
// issue offers the transition "Start Progress" (id 11) and, while open,
// "Mark fixed" (id 31) to Done; only 31 may be performed.
//
// # Caveats
//
// After [Server.Hang], httptest's Close blocks until the hanging requests
// end: when the clients give up, or at the test's cleanup, which releases
// them before closing the server.
package jiratest
