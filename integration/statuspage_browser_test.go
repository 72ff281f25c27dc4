package integration_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/integration/internal/itest"
)

// chromiumPath finds Debian's chromium (or another Chromium build).
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestStatusPageInBrowser loads the status page of a real daemon, with an
// open intervention (an instance file that does not parse) and a
// deployment in progress (its step waits for a gate file), in headless
// Chromium: the DOM it built must show the intervention, its file and its
// next action, the deployment and the behind count; screenshots at 375 px
// (a phone) and 1280 px wide are saved in $DEPLOYER_SCREENSHOT_DIR, or the
// test's temporary directory. Without chromium it skips, or fails when
// CI_REQUIRE_CHROMIUM=1 (.ci/run sets it).
func TestStatusPageInBrowser(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		if os.Getenv("CI_REQUIRE_CHROMIUM") == "1" {
			t.Fatal("chromium is not installed and CI_REQUIRE_CHROMIUM=1: apt-get install chromium")
		}
		t.Skip("chromium is not installed (apt-get install chromium); CI_REQUIRE_CHROMIUM=1 makes this a failure")
	}
	dir := t.TempDir()
	shots := os.Getenv("DEPLOYER_SCREENSHOT_DIR")
	if shots == "" {
		shots = filepath.Join(dir, "screenshots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	gate := filepath.Join(dir, "gate")

	// The clusterconfig repo: beta does not parse (instance-invalid), and
	// the configure step of an instance at version 2.0.0 waits for the gate.
	git := func(d string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = d
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir, "GIT_AUTHOR_NAME=Alice", "GIT_AUTHOR_EMAIL=alice@example.com",
			"GIT_COMMITTER_NAME=Alice", "GIT_COMMITTER_EMAIL=alice@example.com")
		out, err := itest.CombinedOutput(cmd)
		if err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	work := filepath.Join(dir, "work")
	files := map[string]string{
		"deployer.xml": `<?xml version="1.0" encoding="UTF-8"?>
<deployer version="1">
  <instances dir="instances" pattern="*.xml" key="name"/>
  <step name="instance-configure" run="scripts/configure.sh" timeout="120s"/>
  <on-change steps="instance-configure" bucket="2" max-failures="0"/>
  <schedule name="nightly" cron="0 3 * * *" steps="instance-configure" select="instances/*.xml"/>
</deployer>
`,
		"instances/alpha.xml": "<instance name=\"alpha\" tier=\"silver\">\n  <app name=\"web\" version=\"1.0.0\"/>\n</instance>\n",
		"instances/beta.xml":  "<instance name=\"beta\" tier=\"gold\">\n  <app name=\"web\" version=\"1.0.0\"/>\n</instance>\n",
		"instances/gamma.xml": "<instance name=\"gamma\" tier=\"silver\">\n  <app name=\"web\" version=\"1.0.0\"/>\n</instance>\n",
		"instances/delta.xml": "<instance name=\"delta\" tier=\"silver\">\n  <app name=\"web\" version=\"1.0.0\"/>\n</instance>\n",
		"scripts/configure.sh": fmt.Sprintf(`#!/bin/sh
set -eu
echo "configure $DEPLOYER_INSTANCE"
if grep -q 'version="2.0.0"' "$DEPLOYER_INSTANCE_FILE"; then
  while [ ! -e %q ]; do sleep 0.2; done
fi
`, gate),
	}
	for name, content := range files {
		p := filepath.Join(work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	srv := filepath.Join(dir, "srv")
	bare := filepath.Join(srv, "cc.git")
	git(dir, "init", "-q", "--bare", "-b", "main", bare)
	git(dir, "init", "-q", "-b", "main", work)
	git(work, "add", "-A")
	git(work, "commit", "-q", "-m", "initial config")
	git(work, "push", "-q", bare, "HEAD:refs/heads/main")

	port := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	gitPort, apiPort := port(), port()
	gd := exec.Command(filepath.Join(gitExecPath, "git-daemon"), "--export-all", "--enable=receive-pack", "--reuseaddr", "--listen=127.0.0.1", "--port="+strconv.Itoa(gitPort), "--base-path="+srv, srv)
	gp, err := itest.Start(gd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gp.Kill() })

	sockDir, err := os.MkdirTemp("", "dpage")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	const token = "page-test-token"
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "deployer.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `host: web-dep01
state_dir: %s
listen:
  socket: %s
  http: 127.0.0.1:%d
  token_file: %s
  status: public
log: {level: info, format: json}
step_env: [PATH]
shutdown_grace: 1s
repos:
  - name: cc
    url: git://127.0.0.1:%d/cc.git
    branch: main
    poll: 500ms
    author: {name: web-deployer, email: deployer@web-dep01}
`, filepath.Join(dir, "state"), filepath.Join(sockDir, "d.sock"), apiPort, filepath.Join(dir, "token"), gitPort), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	d := exec.Command(filepath.Join(binDir, "deployer"), "daemon", "--config", cfg)
	d.Stdout, d.Stderr = logFile, logFile
	dp, err := itest.Start(d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.WriteFile(gate, nil, 0o644) // let the waiting step end
		d.Process.Signal(syscall.SIGTERM)
		dp.Wait()
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("daemon log:\n%s", tailLines(string(b), 40))
			}
		}
	})

	base := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	c := api.NewRemoteClient(base, token)
	ctx := context.Background()
	waitTrue := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s", what, limit)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitTrue("the daemon deployed the initial config", 60*time.Second, func() bool {
		st, err := c.Status(ctx)
		return err == nil && len(st.Repos) == 1 && st.Repos[0].Running == nil && st.Repos[0].Deployed != ""
	})
	// A push that breaks beta: instance-invalid, naming its file.
	if err := os.WriteFile(filepath.Join(work, "instances", "beta.xml"), []byte("<instance name=\"beta\" tier=\"gold\">\n  <app name=\"web\" version=\"1.1.0\">\n</instance>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(work, "commit", "-q", "-am", "beta: web 1.1.0")
	git(work, "push", "-q", bare, "HEAD:refs/heads/main")
	waitTrue("an instance-invalid intervention", 60*time.Second, func() bool {
		ivs, err := c.Interventions(ctx, false)
		if err != nil || len(ivs) == 0 {
			return false
		}
		st, err := c.Status(ctx)
		return err == nil && st.Repos[0].Running == nil
	})
	// Two commits upstream that the daemon has not deployed yet would be
	// deployed at once; the deployment below holds the repo, so the page
	// shows a deployment in progress and, after its edits, what is behind.
	dep, err := c.Deploy(ctx, "cc", api.DeployRequest{Select: "instances/*.xml", Where: "/instance[@tier='silver']",
		Set: []string{"/instance/app@version=2.0.0"}, Bucket: 1, Reason: "web 2.0 rollout", Who: "alice"})
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	waitTrue("the deployment's first instance is running", 60*time.Second, func() bool {
		got, err := c.Deployment(ctx, dep.ID)
		if err != nil {
			return false
		}
		for _, in := range got.Instances {
			if in.Status == "running" {
				return true
			}
		}
		return false
	})

	// Anonymous, as a browser on listen.status: public.
	dom := runChromium(t, chromium, dir, "--dump-dom", base+"/")
	ivs, err := c.Interventions(ctx, false)
	if err != nil || len(ivs) == 0 {
		t.Fatalf("interventions: %v %v", ivs, err)
	}
	iv := ivs[0]
	for _, want := range []string{
		"deployer on web-dep01",
		fmt.Sprintf("#%d cc / beta", iv.ID),
		"instance-invalid",
		"<code>instances/beta.xml</code>",
		"<code>" + htmlText(iv.NextAction) + "</code>",
		dep.ID + " on cc",
		"web 2.0 rollout",
		"instance(s) done",
		`<span class="st st-running">`,
		`nightly <span class="muted">in `,
		`<th class="num">Behind</th>`,
		// 0, or "-" (not counted) once the deployment's write-back landed
		// while its run goes on; the count itself is scenario
		// status-behind's.
		`data-label="behind by" class="num"><span>`,
		`action="/history"`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page chromium rendered lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
	// A phone's and a laptop's first screen, and the phone's whole page.
	for name, size := range map[string]string{"status-375.png": "375,900", "status-1280.png": "1280,900", "status-375-full.png": "375,2400"} {
		file := filepath.Join(shots, name)
		runChromium(t, chromium, dir, "--screenshot="+file, "--window-size="+size, "--hide-scrollbars", base+"/")
		if fi, err := os.Stat(file); err != nil || fi.Size() < 1000 {
			t.Errorf("screenshot %s: %v (size %v)", file, err, fi)
		} else {
			t.Logf("screenshot %s (%d bytes)", file, fi.Size())
		}
	}
	hist := runChromium(t, chromium, dir, "--dump-dom", base+"/history?instance=beta&repo=cc")
	// The intervention, as a card (the daemon's records) or as an event of
	// the daemon's history of the instance.
	if !strings.Contains(hist, "deployer history beta --repo cc") ||
		(!strings.Contains(hist, fmt.Sprintf("#%d cc / beta", iv.ID)) && !strings.Contains(hist, fmt.Sprintf("<b>#%d</b>", iv.ID))) {
		t.Errorf("the history page lacks the command or the intervention:\n%s", hist)
	}
	runChromium(t, chromium, dir, "--screenshot="+filepath.Join(shots, "history-375.png"), "--window-size=375,900", "--hide-scrollbars", base+"/history?instance=beta&repo=cc")
	// /v1 still needs the token on listen.status: public.
	resp, err := http.Get(base + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/status without a token: got %d, want 401", resp.StatusCode)
	}
}

// runChromium runs headless chromium with args and returns its stdout.
func runChromium(t *testing.T, chromium, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	profile, err := os.MkdirTemp(dir, "chromium-profile-")
	if err != nil {
		t.Fatal(err)
	}
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--no-default-browser-check", "--disable-extensions", "--user-data-dir=" + profile}, args...)
	cmd := exec.CommandContext(ctx, chromium, all...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := itest.Output(cmd)
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, tailLines(stderr.String(), 20))
	}
	return string(out)
}

// htmlText is s as text in HTML (what html/template and a DOM dump write).
func htmlText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
