package integration_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"
)

// seedFiles is the clusterconfig repository most scenarios start from.
var seedFiles = map[string]string{
	"deployer.xml": `<?xml version="1.0" encoding="UTF-8"?>
<deployer version="1">
  <instances dir="instances" pattern="*.xml" key="name"/>
  <step name="instance-configure" run="scripts/configure.sh" timeout="30s"/>
  <step name="instance-redeploy" run="scripts/redeploy.sh" timeout="30s" after="instance-configure">
    <arg>--instance</arg><arg>{instance}</arg>
  </step>
  <on-change steps="instance-configure instance-redeploy" bucket="2" max-failures="0"/>
</deployer>
`,
	"instances/alpha.xml": "<instance name=\"alpha\" tier=\"gold\">\n  <app name=\"web\" version=\"1.0.0\"/>\n</instance>\n",
	"instances/beta.xml":  "<instance name=\"beta\" tier=\"silver\">\n  <app name=\"web\" version=\"1.0.0\"/>\n</instance>\n",
	"instances/gamma.xml": "<instance name=\"gamma\" tier=\"silver\">\n  <app name=\"web\" version=\"1.0.0\"/>\n</instance>\n",
	"scripts/configure.sh": `#!/bin/sh
set -eu
echo "configure $DEPLOYER_INSTANCE from $DEPLOYER_INSTANCE_FILE on $DEPLOYER_HOST"
echo "configured=$DEPLOYER_INSTANCE" >> "$DEPLOYER_OUTPUT"
`,
	"scripts/redeploy.sh": `#!/bin/sh
set -eu
echo "redeploy $2 after configured=$DEPLOYER_OUT_CONFIGURED"
`,
	"README.md": "# clusterconfig-test\n",
}

// cmdSeedRepo writes the standard clusterconfig files into DIR, without
// overwriting files the scenario already put there, and makes every
// scripts/*.sh executable (txtar files are not).
//
//	seedrepo DIR
func cmdSeedRepo(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: seedrepo DIR")
	}
	dir := ts.MkAbs(args[0])
	for name, content := range seedFiles {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if _, err := os.Stat(path); err == nil {
			if strings.HasSuffix(name, ".sh") {
				ts.Check(os.Chmod(path, 0o755))
			}
			continue
		}
		ts.Check(os.MkdirAll(filepath.Dir(path), 0o755))
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		ts.Check(os.WriteFile(path, []byte(content), mode))
	}
}

// cmdWriteConfig writes deployer.yaml for one repo at $REMOTE_URL named
// NAME, with its state in $WORK/state and its socket at $DEPLOYER_SOCKET;
// -poll sets the poll interval (default 200ms), -webhook a webhook secret
// file, -http and -token a TCP listener with a bearer token file; -sshkey,
// -knownhosts and -sshuser fill the repo's auth: (ssh_key_file,
// known_hosts_file, username).
//
//	writeconfig [-poll D] [-webhook FILE] [-http ADDR -token FILE] [-notify SECRETFILE] [-envfile FILE]
//	            [-sshkey FILE] [-knownhosts FILE] [-sshuser USER] NAME
func cmdWriteConfig(ts *testscript.TestScript, neg bool, args []string) {
	poll, listen, notifyCfg, repoExtra := "200ms", "", "", ""
	var auth []string
	for len(args) > 1 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-poll":
			poll = args[1]
		case "-webhook":
			listen += "\n  webhook_secret_file: " + ts.MkAbs(args[1])
		case "-http":
			listen += "\n  http: " + args[1]
		case "-token":
			listen += "\n  token_file: " + ts.MkAbs(args[1])
		case "-envfile":
			repoExtra += fmt.Sprintf("    env_files: [%q]\n", ts.MkAbs(args[1]))
		case "-sshkey":
			auth = append(auth, fmt.Sprintf("ssh_key_file: %q", ts.MkAbs(args[1])))
		case "-knownhosts":
			auth = append(auth, fmt.Sprintf("known_hosts_file: %q", ts.MkAbs(args[1])))
		case "-sshuser":
			auth = append(auth, fmt.Sprintf("username: %q", args[1]))
		case "-notify":
			notifyCfg = fmt.Sprintf("notify:\n  - {kind: webhook, url: %q, secret_file: %q}\n", ts.Getenv("NOTIFY_URL"), ts.MkAbs(args[1]))
		default:
			ts.Fatalf("writeconfig: unknown flag %s", args[0])
		}
		args = args[2:]
	}
	if len(args) != 1 {
		ts.Fatalf("usage: writeconfig [-poll D] [-webhook FILE] [-http ADDR -token FILE] NAME")
	}
	if len(auth) > 0 {
		repoExtra += "    auth: {" + strings.Join(auth, ", ") + "}\n"
	}
	cfg := fmt.Sprintf(`host: it-dep01
state_dir: %s
listen:
  socket: %s%s
log: {level: debug, format: json}
step_env: [PATH, MARKDIR]
shutdown_grace: 1s
repos:
  - name: %s
    url: %s
    branch: main
    poll: %s
    webhook_names: [sre/%s]
    author: {name: it-deployer, email: deployer@it-dep01}
%s%s`, ts.MkAbs("state"), ts.Getenv("DEPLOYER_SOCKET"), listen, args[0], ts.Getenv("REMOTE_URL"), poll, args[0], repoExtra, notifyCfg)
	ts.Check(os.WriteFile(ts.MkAbs("deployer.yaml"), []byte(cfg), 0o644))
	ts.Setenv("DEPLOYER_CONFIG", ts.MkAbs("deployer.yaml"))
}

// cmdWebhook posts a signed GitHub push event for $REMOTE_URL's main to
// the daemon's socket and prints the status code and body.
//
//	webhook SECRETFILE [REF]
func cmdWebhook(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 {
		ts.Fatalf("usage: webhook SECRETFILE [REF]")
	}
	ref := "refs/heads/main"
	if len(args) == 2 {
		ref = args[1]
	}
	secret := strings.TrimSpace(ts.ReadFile(args[0]))
	body := fmt.Sprintf(`{"ref": %q, "after": "0123456789abcdef0123456789abcdef01234567",
  "repository": {"full_name": "sre/other", "clone_url": %q}}`, ref, ts.Getenv("REMOTE_URL"))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	req, err := http.NewRequest(http.MethodPost, "http://deployer/v1/webhooks/github", strings.NewReader(body))
	ts.Check(err)
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	sock := ts.Getenv("DEPLOYER_SOCKET")
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Fprintf(ts.Stdout(), "%d %s\n", resp.StatusCode, b)
}

// cmdNotifyServer starts a webhook receiver on 127.0.0.1 that appends one
// line per delivery to $WORK/notifications: the delivery id, the event, the
// intervention kind and whether the signature (made with SECRETFILE)
// verified. It sets NOTIFY_URL. Slack messages posted to $NOTIFY_SLACK_URL
// (the same server, path /slack) are appended to $WORK/slack as text.
//
//	notifyserver SECRETFILE
func cmdNotifyServer(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: notifyserver SECRETFILE")
	}
	secret := strings.TrimSpace(ts.ReadFile(args[0]))
	log, slackLog := ts.MkAbs("notifications"), ts.MkAbs("slack")
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/slack" {
			logSlack(slackLog, body, &mu)
			return
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		ok := r.Header.Get("X-Deployer-Signature") == "sha256="+hex.EncodeToString(mac.Sum(nil))
		var ev struct {
			Event        string `json:"event"`
			Intervention struct {
				Kind string `json:"kind"`
			} `json:"intervention"`
			Deployment *struct {
				ID    string `json:"id"`
				State string `json:"state"`
				Wave  int    `json:"wave"`
			} `json:"deployment"`
			Fleet *struct {
				ID    string `json:"id"`
				State string `json:"state"`
				Wave  int    `json:"wave"`
			} `json:"fleet"`
		}
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			if d := ev.Deployment; d != nil {
				fmt.Fprintf(f, "%s %s %s %s wave=%d signed=%v\n", r.Header.Get("X-Deployer-Delivery"), ev.Event, d.ID, d.State, d.Wave, ok)
			} else if d := ev.Fleet; d != nil {
				fmt.Fprintf(f, "%s %s %s %s wave=%d signed=%v\n", r.Header.Get("X-Deployer-Delivery"), ev.Event, d.ID, d.State, d.Wave, ok)
			} else {
				fmt.Fprintf(f, "%s %s %s signed=%v\n", r.Header.Get("X-Deployer-Delivery"), ev.Event, ev.Intervention.Kind, ok)
			}
			f.Close()
		}
	}))
	ts.Defer(srv.Close)
	ts.Setenv("NOTIFY_URL", srv.URL+"/hook")
	ts.Setenv("NOTIFY_SLACK_URL", srv.URL+"/slack")
}

// logSlack appends a Slack incoming-webhook message to file: its text,
// then the text of its blocks indented.
func logSlack(file string, body []byte, mu *sync.Mutex) {
	var p struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text *struct {
				Text string `json:"text"`
			} `json:"text"`
		} `json:"blocks"`
	}
	_ = json.Unmarshal(body, &p)
	var b strings.Builder
	b.WriteString(p.Text + "\n")
	for _, bl := range p.Blocks {
		if bl.Type == "section" && bl.Text != nil {
			for _, l := range strings.Split(bl.Text.Text, "\n") {
				b.WriteString("  " + l + "\n")
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err == nil {
		_, _ = f.WriteString(b.String())
		f.Close()
	}
}
