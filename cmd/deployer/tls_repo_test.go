package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
)

// TestMain lets a test run this package's main as a child process (the
// daemon) by re-executing the test binary with DEPLOYER_TEST_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("DEPLOYER_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func tgit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Alice", "GIT_AUTHOR_EMAIL=alice@example.com", "GIT_COMMITTER_NAME=Alice", "GIT_COMMITTER_EMAIL=alice@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestRepoOverTLS runs the daemon as a child process from a host config
// whose repo is an https:// git http-backend signed by an internal CA and
// requiring a client certificate. Without repos[].tls.ca_file the clone is
// an auth-failed intervention saying tls-untrusted with the certificate's
// subject and issuer; with it (SIGHUP) the daemon clones, a step writes
// back and the push lands on the https server; check-config and /metrics
// list the repo's CA and client certificate; no key material reaches the
// log, the CLI's output or the state file.
func TestRepoOverTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a daemon, a TLS git server and a step")
	}
	dir := t.TempDir()
	ca := newTestCA(t, dir, "Example Internal CA")
	ca.issue(t, dir, "git", "git.internal.example", false, 90*24*time.Hour)
	ca.issue(t, dir, "client", "fra1-dep01", true, 20*24*time.Hour)
	f := func(name string) string { return filepath.Join(dir, name) }

	// the clusterconfig repository, served by git http-backend over TLS
	bare := f("srv/cc.git")
	tgit(t, dir, "init", "-q", "--bare", "-b", "main", bare)
	tgit(t, bare, "config", "http.receivepack", "true")
	alice := f("alice")
	for name, content := range map[string]string{
		"deployer.xml": `<deployer version="1">
  <instances dir="instances" pattern="*.xml"/>
  <step name="instance-configure" run="scripts/configure.sh" timeout="60s" writes="instance"/>
  <on-change steps="instance-configure"/>
</deployer>
`,
		"scripts/configure.sh": `#!/bin/sh
set -eu
f="$DEPLOYER_INSTANCE_FILE"
v=$(sed -n 's/.*version="\([^"]*\)".*/\1/p' "$f")
sed -i "s|build=\"[^\"]*\"|build=\"b-$v\"|" "$f"
`,
		"instances/beta.xml": "<instance name=\"beta\">\n  <app name=\"web\" version=\"1.0.0\" build=\"b-1.0.0\"/>\n</instance>\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(alice, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(alice, name), content)
	}
	if err := os.Chmod(filepath.Join(alice, "scripts/configure.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	tgit(t, alice, "init", "-q", "-b", "main")
	tgit(t, alice, "add", "-A")
	tgit(t, alice, "commit", "-q", "-m", "initial config")
	tgit(t, alice, "push", "-q", bare, "main")

	execPath := tgit(t, dir, "--exec-path")
	pair, err := tls.LoadX509KeyPair(f("git.crt"), f("git.key"))
	if err != nil {
		t.Fatal(err)
	}
	clients := x509.NewCertPool()
	clients.AddCert(ca.cert)
	srv := httptest.NewUnstartedServer(&cgi.Handler{Path: filepath.Join(execPath, "git-http-backend"),
		Env: []string{"GIT_PROJECT_ROOT=" + f("srv"), "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=deployer"}})
	srv.Config.ErrorLog = stdlogDiscard()
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: clients, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()
	url := srv.URL + "/cc.git"

	cfgPath := f("deployer.yaml")
	sock := f("api.sock")
	writeConfig := func(tlsBlock string) {
		writeFile(t, cfgPath, fmt.Sprintf(`host: fra1-dep01
state_dir: %s/state
listen: {socket: %s}
log: {level: debug, format: json}
shutdown_grace: 1s
repos:
  - name: cc
    url: %s
    poll: 200ms
    author: {name: fra1-dep01-deployer, email: deployer@fra1-dep01}
    tls:
%s`, dir, sock, url, tlsBlock))
	}
	clientOnly := fmt.Sprintf("      cert_file: %s\n      key_file: %s\n", f("client.crt"), f("client.key"))
	writeConfig(clientOnly)

	logFile, err := os.Create(f("daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	d := exec.Command(os.Args[0], "--config", cfgPath, "daemon")
	d.Env = append(os.Environ(), "DEPLOYER_TEST_MAIN=1")
	d.Stdout, d.Stderr = logFile, logFile
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = d.Process.Signal(syscall.SIGTERM)
			_ = d.Wait()
		}
	}
	defer stop()

	client := api.NewUnixClient(sock)
	ctx := context.Background()
	var outputs strings.Builder
	waitFor := func(what string, ok func() (bool, string)) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		last := ""
		for time.Now().Before(deadline) {
			var done bool
			if done, last = ok(); done {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s; last: %s\ndaemon log:\n%s", what, last, mustRead(t, f("daemon.log")))
	}
	openIV := func(kind string) (api.Intervention, bool, string) {
		ivs, err := client.Interventions(ctx, false)
		if err != nil {
			return api.Intervention{}, false, err.Error()
		}
		for _, iv := range ivs {
			if iv.Kind == kind && iv.Repo == "cc" {
				return iv, true, ""
			}
		}
		return api.Intervention{}, false, fmt.Sprintf("%d open interventions", len(ivs))
	}

	// 1. no ca_file: the clone is auth-failed, tls-untrusted, subject and issuer
	var iv api.Intervention
	waitFor("an auth-failed intervention", func() (bool, string) {
		var ok bool
		var why string
		iv, ok, why = openIV("auth-failed")
		return ok, why
	})
	t.Logf("auth-failed evidence: %s", iv.Evidence.Output)
	for _, want := range []string{"tls-untrusted", `subject "CN=git.internal.example"`, `issuer "CN=Example Internal CA,O=deployer tests"`, "ca_file"} {
		if !strings.Contains(iv.Evidence.Output, want) {
			t.Errorf("auth-failed evidence lacks %q: %s", want, iv.Evidence.Output)
		}
	}
	if _, ok, _ := openIV("remote-unreachable"); ok {
		t.Error("an untrusted certificate raised remote-unreachable")
	}
	var ivOut bytes.Buffer
	root := newRootCmd()
	root.SetOut(&ivOut)
	root.SetErr(io.Discard)
	root.SetArgs([]string{"--config", cfgPath, "interventions"})
	_ = root.ExecuteContext(ctx)
	outputs.WriteString(ivOut.String())

	// 2. the config gets the CA; SIGHUP: the repo restarts, clones and the
	// intervention resolves
	writeConfig(fmt.Sprintf("      ca_file: %s\n", ca.file) + clientOnly)
	if err := d.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("the clone and the auth-failed intervention resolved", func() (bool, string) {
		st, err := client.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		_, open, _ := openIV("auth-failed")
		return len(st.Repos) == 1 && st.Repos[0].Head != "" && !open, fmt.Sprintf("%+v open=%v", st.Repos, open)
	})

	// 3. a change upstream: the step writes back, and the push lands on the https server
	writeFile(t, filepath.Join(alice, "instances/beta.xml"), "<instance name=\"beta\">\n  <app name=\"web\" version=\"1.1.0\" build=\"b-1.0.0\"/>\n</instance>\n")
	tgit(t, alice, "commit", "-q", "-am", "beta: web 1.1.0")
	tgit(t, alice, "push", "-q", bare, "main")
	waitFor("the write-back on the https server", func() (bool, string) {
		out := tgit(t, bare, "show", "main:instances/beta.xml")
		return strings.Contains(out, `build="b-1.1.0"`), out
	})
	msg := tgit(t, bare, "log", "-1", "--format=%an%n%B", "main")
	if !strings.Contains(msg, "fra1-dep01-deployer") || !strings.Contains(msg, "Deployer-Change:") {
		t.Errorf("the landed commit is not the daemon's: %s", msg)
	}
	waitFor("the run recorded as succeeded", func() (bool, string) {
		runs, err := client.Runs(ctx, "cc", 5)
		if err != nil || len(runs) == 0 {
			return false, fmt.Sprint(runs, err)
		}
		return runs[0].Status == "succeeded", runs[0].Status
	})

	// 4. /metrics and check-config list the repo's CA and client certificate
	body, err := client.Raw(ctx, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(body)
	body.Close()
	for _, want := range []string{
		fmt.Sprintf(`deployer_tls_cert_expiry_seconds{use="repo-cc-ca"} %s`, promFloat(ca.cert.NotAfter.Unix())),
		`deployer_tls_cert_expiry_seconds{use="repo-cc-client"} `,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var check bytes.Buffer
	root = newRootCmd()
	root.SetOut(&check)
	root.SetArgs([]string{"--config", cfgPath, "daemon", "--check-config"})
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("check-config: %v", err)
	}
	t.Logf("deployer daemon --check-config:\n%s", check.String())
	for _, want := range []string{
		`ok: repos[0].tls.ca_file (repo-cc-ca): certificate "CN=Example Internal CA,O=deployer tests" valid until`,
		`warning: repos[0].tls.cert_file (repo-cc-client): certificate "CN=fra1-dep01" expires on`,
		"ok (1 repo, 2 certificates)",
	} {
		if !strings.Contains(check.String(), want) {
			t.Errorf("check-config lacks %q", want)
		}
	}
	outputs.WriteString(check.String())
	var status bytes.Buffer
	root = newRootCmd()
	root.SetOut(&status)
	root.SetArgs([]string{"--config", cfgPath, "status", "-o", "json"})
	if err := root.ExecuteContext(ctx); err != nil {
		t.Errorf("status: %v", err)
	}
	outputs.WriteString(status.String())

	// 5. no key material in the log, the CLI's output, the metrics or the state file
	stop()
	state, err := os.ReadFile(f("state/state.db"))
	if err != nil {
		t.Fatal(err)
	}
	log := mustRead(t, f("daemon.log"))
	if !strings.Contains(log, "tls-untrusted") {
		t.Error("the daemon's log does not say tls-untrusted")
	}
	for _, name := range []string{"client.key", "git.key"} {
		key := mustRead(t, f(name))
		b64 := strings.Split(key, "\n")[1][:24]
		for what, text := range map[string]string{"log": log, "CLI output": outputs.String(), "metrics": string(metrics), "state file": string(state)} {
			if strings.Contains(text, "PRIVATE KEY") || strings.Contains(text, b64) {
				t.Errorf("key material of %s in the %s", name, what)
			}
		}
	}
}
