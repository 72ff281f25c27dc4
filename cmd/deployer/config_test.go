package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfigProblems(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key names its line", "state_dir: /x\nrepos:\n  - name: a\n    url: git://h/a\n    colour: red\n",
			[]string{"deployer.yaml:5: field colour not found"}},
		{"bad duration", "state_dir: /x\nrepos:\n  - name: a\n    url: git://h/a\n    poll: soon\n",
			[]string{"deployer.yaml:5:", `"soon" is not a duration`}},
		{"tcp without token", "state_dir: /x\nlisten:\n  http: 127.0.0.1:8080\nrepos:\n  - name: a\n    url: git://h/a\n",
			[]string{"deployer.yaml:3: listen.http needs listen.token_file"}},
		{"duplicate repo and bad policy", "state_dir: /x\nrepos:\n  - name: a\n    url: u\n  - name: a\n    url: u\n    on_dirty: ignore\n",
			[]string{"deployer.yaml:5: repo name \"a\" is used twice", "deployer.yaml:7: repo \"a\": on_dirty must be intervene or rescue"}},
		{"missing state dir and repos", "host: h\n", []string{"state_dir is required", "no repos configured"}},
		{"limits out of bounds", "state_dir: /x\nlimits:\n  instance_file_bytes: 10\n  xml_depth: 1000000\nrepos:\n  - name: a\n    url: u\n",
			[]string{"deployer.yaml:3: limits.instance_file_bytes 10: want between 4096 and 1073741824 (default 8388608)", "deployer.yaml:4: limits.xml_depth 1000000: want between 16 and 100000 (default 256)"}},
		{"bad log and notify", "state_dir: /x\nlog: {level: loud, format: xml}\nrepos:\n  - name: a\n    url: u\nnotify:\n  - kind: pager\n  - kind: jira\n    url: https://j\n",
			[]string{"deployer.yaml:2: log.level \"loud\"", "log.format \"xml\"", "deployer.yaml:7: notify[0]: kind \"pager\"", "notify[1] (jira): url, token_file, project and issue_type are required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig("deployer.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("got no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := parseConfig("deployer.yaml", []byte("host: fra1\nstate_dir: /var/lib/deployer\nrepos:\n  - name: cc\n    url: ssh://git@h/cc.git\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Repos[0]
	if r.Branch != "main" || time.Duration(r.Poll) != time.Minute || r.PushAttempts != 5 || r.Author.Name != "fra1-deployer" {
		t.Fatalf("got %+v, want branch main, poll 1m, 5 push attempts, author fra1-deployer", r)
	}
	if c.Listen.Socket != "/run/deployer/deployer.sock" {
		t.Fatalf("socket: got %q", c.Listen.Socket)
	}
}

func TestParseConfigLimits(t *testing.T) {
	c, err := parseConfig("deployer.yaml", []byte("state_dir: /x\nlimits: {instance_file_bytes: 16777216, xml_depth: 1024}\nrepos:\n  - name: a\n    url: u\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l := c.ManifestLimits(); l.InstanceFileBytes != 16<<20 || l.XMLDepth != 1024 {
		t.Errorf("got %+v", l)
	}
}
