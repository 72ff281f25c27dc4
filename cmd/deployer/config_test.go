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
			[]string{`deployer.yaml:5: unknown key "colour" (in repos[0]); remove it (the keys there: name, url,`}},
		{"every problem in one pass, by line", "state_dir: /x\nbogus_key: 1\nlisten:\n  http: 127.0.0.1:9999\n  status: everyone\nrepos:\n  - name: cc\n    url: ftp://x/y\n    pol: 1m\n    poll: 0s\n  - name: cc\n    url: https://h/cc.git\n    poll: -5s\n  - name: dd\n    url: u\n    push_attempts: many\n",
			[]string{`deployer.yaml:2: unknown key "bogus_key" (at the top level); remove it`,
				"\ndeployer.yaml:4: listen.http needs listen.token_file",
				"\ndeployer.yaml:5: listen.status \"everyone\": want token",
				"\ndeployer.yaml:8: repo \"cc\": url scheme \"ftp\": want ssh://, https://, http://, git:// or file://",
				"\ndeployer.yaml:9: unknown key \"pol\" (in repos[0]); did you mean poll?",
				"\ndeployer.yaml:10: repo \"cc\": poll 0s: want a positive interval",
				"\ndeployer.yaml:11: repo name \"cc\" is used twice",
				"\ndeployer.yaml:13: repos[1].poll: \"-5s\" is negative: want a positive duration",
				"\ndeployer.yaml:16: repos[2].push_attempts: got many, want a whole number"}},
		{"no Go type names", "state_dir: /x\nlimits: [1]\nlisten: {tls: {cert_fil: a}}\nrepos:\n  - name: a\n    url: u\n    auth: {user: x}\n",
			[]string{"deployer.yaml:2: limits: got a list, want a mapping (key: value)", `deployer.yaml:3: unknown key "cert_fil" (in listen.tls); did you mean cert_file?`, `deployer.yaml:7: unknown key "user" (in repos[0].auth)`}},
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
			for _, bad := range []string{"Config", "not found in", "main."} {
				if strings.Contains(err.Error(), bad) {
					t.Errorf("got %q: names a Go type (%q)", err, bad)
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

// out19 #13: a daemon that only coordinates fleet rollouts needed a dummy
// repo. 'repos: []' written out is such a daemon; no repos key at all is
// still a config that forgot them.
func TestParseConfigCoordinatorOnly(t *testing.T) {
	c, err := parseConfig("deployer.yaml", []byte("host: coord\nstate_dir: /var/lib/deployer\nrepos: []\n"))
	if err != nil || len(c.Repos) != 0 {
		t.Fatalf("repos: []: %v", err)
	}
	_, err = parseConfig("deployer.yaml", []byte("host: coord\nstate_dir: /var/lib/deployer\n"))
	if err == nil || !strings.Contains(err.Error(), "no repos configured: add at least one under repos: (or write 'repos: []' for a daemon that only coordinates fleet rollouts)") {
		t.Fatalf("no repos key: %v", err)
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

// TestParseConfigAcceptsURLs: the schemes git fetches from, an scp-like
// address and a path pass; a poll left out is the default.
func TestParseConfigAcceptsURLs(t *testing.T) {
	for _, u := range []string{"ssh://git@h/cc.git", "https://h/cc.git", "HTTP://h/cc.git", "git://h/cc", "file:///srv/cc.git", "git@h:cc.git", "/srv/cc.git"} {
		if _, err := parseConfig("deployer.yaml", []byte("state_dir: /x\nrepos:\n  - name: a\n    url: "+u+"\n    poll: 30s\n")); err != nil {
			t.Errorf("url %s: %v", u, err)
		}
	}
}

// TestCheckConfigEveryProblem: daemon --check-config lists the config's
// problems and the files it names that cannot be read in one pass, each
// with its line, and counts them.
func TestCheckConfigEveryProblem(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/deployer.yaml"
	writeFile(t, path, "state_dir: "+dir+"\nlisten: {http: \"127.0.0.1:1\", token_file: "+dir+"/no-token}\nrepos:\n  - name: a\n    url: ftp://h/a\n    auth: {password_file: "+dir+"/no-pw}\n    colour: red\n")
	_, stderr, code := runCLI(t, "--config", path, "daemon", "--check-config")
	if code != exitError {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{
		path + ":2: listen.token_file " + dir + "/no-token: no such file; create it or correct the path",
		"\n" + path + ":5: repo \"a\": url scheme \"ftp\"",
		"\n" + path + ":6: repos[0].auth.password_file " + dir + "/no-pw: no such file",
		"\n" + path + ":7: unknown key \"colour\" (in repos[0])",
		"\n" + path + ": 4 problems; fix and run deployer daemon --check-config again",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}
