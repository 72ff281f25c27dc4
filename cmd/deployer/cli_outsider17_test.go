package main

import (
	"context"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
)

// deployRunBackend answers a deployment run: beta ran at the commit of its
// turn (after alpha's write-back), beta was written back, and gamma's
// second step never started because its first failed.
type deployRunBackend struct{ api.Backend }

func (deployRunBackend) Run(_ context.Context, id uint64) (api.Run, error) {
	end := opsT0.Add(3e9)
	return api.Run{ID: id, Repo: "cc", Commit: "9effae8eaa11111111", Status: "failed", Started: opsT0, Ended: &end,
		Triggers: []api.Trigger{{Kind: "deployment", Detail: "d-1", At: opsT0}},
		Instances: []api.InstanceOutcome{
			{Name: "alpha", File: "instances/alpha.xml", Status: "succeeded", Commit: "9effae8eaa11111111"},
			{Name: "beta", File: "instances/beta.xml", Status: "succeeded", Commit: "4ec5d69abc22222222"},
			{Name: "gamma", File: "instances/gamma.xml", Status: "failed"},
		},
		Steps: []api.StepResult{
			{Instance: "alpha", Step: "instance-configure", Attempt: 1, Status: "succeeded"},
			{Instance: "beta", Step: "instance-configure", Attempt: 1, Status: "succeeded"},
			{Instance: "gamma", Step: "instance-configure", Attempt: 1, Status: "failed", ExitCode: 3},
			{Instance: "gamma", Step: "instance-redeploy", Attempt: 0, Status: "skipped", Reason: "instance-configure failed"},
		}}, nil
}

func (deployRunBackend) History(context.Context, string, string, int) (api.InstanceHistory, error) {
	return api.InstanceHistory{}, api.Errorf(api.KindNotFound, "none")
}

func (deployRunBackend) RunDiff(_ context.Context, run uint64, _ string) (api.RunDiff, error) {
	return api.RunDiff{Run: run, Repo: "cc", WriteBacks: []api.WriteBack{
		{Run: run, Instance: "beta", File: "instances/beta.xml", Reason: "instance-configure", State: "pushed", Commit: "5555555555aaaa", Diff: []string{"set a@b 1 → 2"}},
	}}, nil
}

func (deployRunBackend) Runs(_ context.Context, repo string, _ int) ([]api.Run, error) {
	return nil, api.Errorf(api.KindNotFound, "unknown repo %q", repo)
}

// TestRunsShowDeployment: runs show names the commit an instance ran at
// when it is not the run's, points at deployer diff for a written-back
// instance, and shows a step that never started as such (not "attempt 0").
func TestRunsShowDeployment(t *testing.T) {
	sock := serveBackend(t, deployRunBackend{})
	out, stderr, code := runCLI(t, "--socket", sock, "runs", "show", "6")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	t.Logf("runs show 6:\n%s", out)
	for _, want := range []string{
		"instance beta (instances/beta.xml): succeeded\n    ran at commit 4ec5d69abc22222222 (the run started at 9effae8eaa)\n",
		"    wrote back instances/beta.xml: pushed 5555555555 (the edit: deployer diff 6 --instance beta)\n",
		"    step instance-redeploy: not started (skipped: instance-configure failed)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q", want)
		}
	}
	for _, bad := range []string{"attempt 0", "ran at commit 9effae8eaa"} {
		if strings.Contains(out, bad) {
			t.Errorf("says %q", bad)
		}
	}
}

// TestRunsNumberHint: 'runs 7' (a run id where a repo name goes) is a
// usage error that suggests runs show 7.
func TestRunsNumberHint(t *testing.T) {
	sock := serveBackend(t, deployRunBackend{})
	_, stderr, code := runCLI(t, "--socket", sock, "runs", "7")
	if code != exitUsage || !strings.Contains(stderr, "did you mean: deployer runs show 7") {
		t.Errorf("runs 7: exit %d: %s", code, stderr)
	}
}

// statesBackend answers interventions and deployments in every state.
type statesBackend struct{ api.Backend }

func (statesBackend) Interventions(_ context.Context, all bool) ([]api.Intervention, error) {
	ivs := []api.Intervention{opsIntervention(7, "open"), opsIntervention(8, "acknowledged")}
	if all {
		ivs = append(ivs, opsIntervention(3, "resolved"))
	}
	return ivs, nil
}

func (statesBackend) Deployments(context.Context, api.DeploymentFilter) ([]api.Deployment, error) {
	var ds []api.Deployment
	for i, st := range []string{"running", "queued", "succeeded", "failed", "cancelled", "blocked"} {
		d := opsDeployment()
		d.ID, d.State = "d-"+string(rune('1'+i)), st
		ds = append(ds, d)
	}
	return ds, nil
}

// TestCompletionByState: ack offers only the open, unacknowledged
// interventions, resolve every unresolved one; cancel offers the queued
// and running deployments, retry the ended ones that did not succeed,
// show every one. step run offers the valid instances of a checkout that
// also holds an invalid instance file.
func TestCompletionByState(t *testing.T) {
	sock := serveBackend(t, statesBackend{})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"interventions", "ack", ""}, "7"},
		{[]string{"interventions", "resolve", ""}, "7 8"},
		{[]string{"interventions", "show", ""}, "7 8 3"},
		{[]string{"deployments", "cancel", ""}, "d-1 d-2"},
		{[]string{"deployments", "retry", ""}, "d-4 d-5 d-6"},
		{[]string{"deployments", "show", ""}, "d-1 d-2 d-3 d-4 d-5 d-6"},
	} {
		got, _ := complete(t, append([]string{"--socket", sock}, tc.args...)...)
		if g := strings.Join(values(got), " "); g != tc.want {
			t.Errorf("%v: got %q, want %q", tc.args, g, tc.want)
		}
	}

	dir, _ := newStepCheckout(t)
	writeStepFile(t, dir+"/instances/gamma.xml", "<instance name=\"gamma\">\n<app\n</instance>\n")
	writeStepFile(t, dir+"/instances/delta.xml", "<instance name=\"bad name\"/>\n")
	got, _ := complete(t, "step", "run", dir, "")
	if g := strings.Join(values(got), " "); g != "alpha beta" {
		t.Errorf("step run instances with invalid files beside: got %q, want alpha beta", g)
	}
}

// hungSocket is a daemon socket that accepts connections and never answers.
func hungSocket(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "hung.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return sock
}

// slowSyncBackend answers sync only after a while, as a sync --wait does
// when the run takes that long.
type slowSyncBackend struct{ api.Backend }

func (slowSyncBackend) Sync(_ context.Context, repo string, wait bool) (api.SyncResponse, error) {
	time.Sleep(700 * time.Millisecond)
	end := opsT0.Add(time.Second)
	return api.SyncResponse{Repo: repo, Run: &api.Run{ID: 5, Repo: repo, Status: "succeeded", Started: opsT0, Ended: &end}}, nil
}

// TestClientTimeout: a call to a daemon that never answers gives up after
// --timeout (30 s by default) naming the socket and the timeout; a
// sync --wait, which waits for its run, is not cut off by it.
func TestClientTimeout(t *testing.T) {
	if f := newRootCmd().PersistentFlags().Lookup("timeout"); f == nil || f.DefValue != "30s" {
		t.Fatalf("--timeout default: %v", f)
	}
	sock := hungSocket(t)
	start := time.Now()
	_, stderr, code := runCLI(t, "--socket", sock, "--timeout", "300ms", "status")
	took := time.Since(start)
	if code != exitError || took > 5*time.Second {
		t.Errorf("status against a hung daemon: exit %d after %s", code, took)
	}
	if want := "the daemon at " + sock + " did not answer within 300ms"; !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q: %s", want, stderr)
	}

	slow := serveBackend(t, slowSyncBackend{})
	out, stderr, code := runCLI(t, "--socket", slow, "--timeout", "200ms", "sync", "cc", "--wait")
	if code != 0 || !strings.Contains(out, "succeeded") {
		t.Errorf("sync --wait slower than --timeout: exit %d: %s%s", code, out, stderr)
	}
}

// TestInterruptedCall: SIGTERM while a call waits for the daemon says
// interrupted, not that the daemon cannot be reached.
func TestInterruptedCall(t *testing.T) {
	sock := hungSocket(t)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	time.AfterFunc(300*time.Millisecond, func() { _ = syscall.Kill(os.Getpid(), syscall.SIGTERM) })
	root := newRootCmd()
	root.SetOut(io.Discard)
	root.SetArgs([]string{"--socket", sock, "status"})
	err := root.ExecuteContext(ctx)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "interrupted (") || !strings.Contains(msg, "before the daemon at "+sock+" answered") ||
		strings.Contains(msg, "cannot reach") || strings.Contains(msg, "is `deployer daemon` running") {
		t.Errorf("got %q", msg)
	}
}

// TestReportTableRefused: the report has no table format; -o table is a
// usage error naming the formats, and no -o prints markdown.
func TestReportTableRefused(t *testing.T) {
	sock := serveBackend(t, opsBackend{})
	_, stderr, code := runCLI(t, "--socket", sock, "report", "-o", "table")
	if code != exitUsage || !strings.Contains(stderr, `report -o "table": want markdown (the default), json, yaml or html`) {
		t.Errorf("report -o table: exit %d: %s", code, stderr)
	}
	out, stderr, code := runCLI(t, "--socket", sock, "report")
	if code != exitIntervention || !strings.Contains(out, "#") {
		t.Errorf("report: exit %d: %s%s", code, out, stderr)
	}
}

// TestValidateMissingDir: validate of a directory that does not exist says
// so (it said "deployer.xml: load manifest: open repository …, 1 problems").
func TestValidateMissingDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nonexistent")
	_, stderr, code := runCLI(t, "validate", missing)
	if code != exitError || !strings.Contains(stderr, missing+": no such directory") || strings.Contains(stderr, "problems") {
		t.Errorf("validate %s: exit %d: %s", missing, code, stderr)
	}
	empty := t.TempDir()
	_, stderr, code = runCLI(t, "validate", empty)
	if code != exitError || !strings.Contains(stderr, empty+": 1 problem\n") {
		t.Errorf("validate of a directory without deployer.xml: exit %d: %s", code, stderr)
	}
}

// TestRestartKeys: the keys SIGHUP does not apply are named when they
// change; the repos, limits and log.level (which it applies) are not.
func TestRestartKeys(t *testing.T) {
	base := "state_dir: /x\nlisten: {socket: /run/d.sock}\nlog: {level: info}\nrepos:\n  - name: a\n    url: u\n"
	running, err := parseConfig("deployer.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{base, ""},
		{strings.Replace(base, "log: {level: info}", "log: {level: debug}\nlimits: {xml_depth: 64}", 1) + "  - name: b\n    url: v\n", ""},
		{strings.Replace(base, "listen: {socket: /run/d.sock}", "listen: {socket: /run/d.sock, status: public}", 1), "listen.status"},
		{strings.Replace(base, "listen: {socket: /run/d.sock}", "listen: {socket: /run/e.sock, http: \"127.0.0.1:1\", token_file: /t}", 1), "listen.socket listen.http listen.token_file"},
		{strings.Replace(base, "state_dir: /x", "state_dir: /y\nnotify: [{kind: slack, url: https://s}]", 1), "state_dir notify"},
	} {
		next, err := parseConfig("deployer.yaml", []byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(restartKeys(running, next), " "); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.yaml, got, tc.want)
		}
	}
}

// fleet status gives up on a hung host after --timeout, like every other
// daemon call, and says the host did not answer.
func TestFleetStatusHungHostTimesOut(t *testing.T) {
	sock := hungSocket(t)
	inv := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(inv, []byte("- {name: hung, datacenter: x, url: \"unix://"+sock+"\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var code int
	var out, stderr string
	go func() {
		defer close(done)
		out, stderr, code = runCLI(t, "--timeout", "300ms", "fleet", "status", "f-1", "--inventory", inv)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("fleet status against a hung host did not end within 20 s with --timeout 300ms")
	}
	if code != exitError {
		t.Errorf("exit %d, want 1 (a host did not answer): %s%s", code, out, stderr)
	}
}

// Every command whose help offers --coordinator has the flag (fleet
// history's help named it and refused it).
func TestCoordinatorFlagWhereOffered(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if strings.Contains(c.Long, "--coordinator URL") && c.Flags().Lookup("coordinator") == nil {
			t.Errorf("%s: its help offers --coordinator, the command has no such flag", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
}
