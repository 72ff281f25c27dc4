package main

import (
	"strings"
	"testing"
)

// FuzzParseConfig feeds the strict host config decoder arbitrary YAML: it
// must never panic, and every problem it reports must name the file (and a
// line where there is one).
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		"host: fra1\nstate_dir: /var/lib/deployer\nrepos:\n  - name: cc\n    url: ssh://git@h/cc.git\n    poll: 1m\n",
		"state_dir: /x\nlisten: {socket: /run/d.sock, http: 127.0.0.1:8080, token_file: /t}\nrepos:\n  - {name: a, url: u, on_dirty: rescue}\n",
		"state_dir: /x\nrepos:\n  - name: a\n    url: u\n    colour: red\n",
		"state_dir: /x\nrepos:\n  - name: a\n    url: u\n    poll: soon\n",
		"notify:\n  - {kind: jira, url: https://j, token_file: /t, project: SRE, issue_type: Incident, fields: {a: '{dc}'}}\n",
		"repos: [1, 2, {name: [x]}]\n",
		"\t- :\n",
		"&a [*a, *a]\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		c, err := parseConfig("deployer.yaml", []byte(data))
		if err == nil {
			if c.StateDir == "" || len(c.Repos) == 0 {
				t.Fatalf("accepted a config without state_dir or repos: %q", data)
			}
			return
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(line, "deployer.yaml") {
				t.Fatalf("problem %q does not name the file", line)
			}
		}
	})
}
