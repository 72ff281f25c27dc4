package crash_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sre-tools/deployer/daemon"
	"github.com/sre-tools/deployer/integration/internal/itest"
	"github.com/sre-tools/deployer/store"
)

// crashTally is what the seeded crash runs found.
type crashTally struct {
	mu                                                      sync.Mutex
	runs, crashes, accepted, landed, held, lost, duplicated int
	chosen, crashed                                         map[string]int // per failpoint
}

// add counts one run's findings; seeds run two at a time.
func (t *crashTally) add(o *crashTally) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.runs += o.runs
	t.crashes += o.crashes
	t.accepted += o.accepted
	t.landed += o.landed
	t.held += o.held
	t.lost += o.lost
	t.duplicated += o.duplicated
	for k, v := range o.chosen {
		t.chosen[k] += v
	}
	for k, v := range o.crashed {
		t.crashed[k] += v
	}
}

// TestCrashSeeded kills the daemon (the binary built with -tags failpoints)
// at a random failpoint of the write-back protocol and the run pipeline (at
// a random hit: journaled, committed, spliced, written-back, settled,
// mid-step, bucket-done, mid-outbox, mid-compaction) during a deployment of
// edits to 20 instances while a person pushes to the same remote; one
// instance's redeploy fails, so a notification goes out, and the state file
// is compacted every 250 ms. It restarts the daemon and checks that
// every accepted edit is on the remote exactly once or held in an open
// intervention, that git fsck and bbolt's check are clean, and that the
// remote (receive.denyNonFastForwards) never took a force. Runs:
// DEPLOYER_CRASH_RUNS (default 25; 12 with -short; .ci/run sets 50).
func TestCrashSeeded(t *testing.T) {
	if err := itest.ReadSources(); err != nil {
		t.Fatal(err)
	}
	runs := 25
	if testing.Short() {
		runs = 12
	}
	if v := os.Getenv("DEPLOYER_CRASH_RUNS"); v != "" {
		runs, _ = strconv.Atoi(v)
	}
	tally := crashTally{chosen: map[string]int{}, crashed: map[string]int{}}
	// The seeds run in parallel (go test's -parallel, GOMAXPROCS by default: two on a
	// 2-core machine): a seed mostly waits for its daemon and git.
	t.Run("seeds", func(t *testing.T) {
		for seed := 1; seed <= runs; seed++ {
			t.Run(fmt.Sprintf("seed-%03d", seed), func(t *testing.T) {
				t.Parallel()
				local := crashTally{chosen: map[string]int{}, crashed: map[string]int{}}
				crashOnce(t, uint64(seed), &local)
				tally.add(&local)
			})
		}
	})
	t.Logf("runs %d, crash points hit %d, edits accepted %d, landed %d, in interventions %d, lost %d, duplicated %d",
		tally.runs, tally.crashes, tally.accepted, tally.landed, tally.held, tally.lost, tally.duplicated)
	fmt.Printf("crash: runs %d, crash points hit %d, edits accepted %d, landed %d, in interventions %d, lost %d, duplicated %d\n",
		tally.runs, tally.crashes, tally.accepted, tally.landed, tally.held, tally.lost, tally.duplicated)
	var per []string
	for _, p := range daemon.Failpoints {
		per = append(per, fmt.Sprintf("%s %d/%d", p, tally.crashed[p], tally.chosen[p]))
	}
	fmt.Printf("crash: killed/chosen per point: %s\n", strings.Join(per, ", "))
	t.Logf("killed/chosen per point: %s", strings.Join(per, ", "))
	if tally.lost > 0 || tally.duplicated > 0 {
		t.Fatalf("%d edits lost, %d duplicated", tally.lost, tally.duplicated)
	}
}

const crashInstances = 20

func crashOnce(t *testing.T, seed uint64, tally *crashTally) {
	rng := rand.New(rand.NewPCG(seed, 42))
	dir := t.TempDir()
	sock, err := os.MkdirTemp("", "dcrash")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sock)
	bare := filepath.Join(dir, "cc.git")
	git := func(d string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = d
		cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1")
		out, err := itest.CombinedOutput(cmd)
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git(dir, "init", "-q", "--bare", "-b", "main", bare)
	git(bare, "config", "receive.denyNonFastForwards", "true")
	git(bare, "config", "receive.denyDeletes", "true")
	seedCrashRepo(t, filepath.Join(dir, "alice"), bare, git)

	cfg := filepath.Join(dir, "deployer.yaml")
	socket := filepath.Join(sock, "d.sock")
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	defer hook.Close()
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "host: crash\nstate_dir: %s\nlisten: {socket: %s}\nstep_env: [PATH]\nnotify:\n  - {kind: webhook, url: %q}\nrepos:\n  - name: cc\n    url: %s\n    poll: 200ms\n",
		filepath.Join(dir, "state"), socket, hook.URL, bare), 0o644); err != nil {
		t.Fatal(err)
	}
	point := daemon.Failpoints[rng.IntN(len(daemon.Failpoints))]
	hit := 1 + rng.IntN(4)
	if point == "mid-outbox" {
		hit = 1 + rng.IntN(2) // two notifications: i07's and i14's step-failed
	}
	t.Logf("failpoint %s:%d", point, hit)
	d := startCrashDaemon(t, cfg, bare, fmt.Sprintf("%s:%d", point, hit))
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(binDir, "deployer"), append(args, "--socket", socket)...)
		out, err := itest.Output(cmd)
		return string(out), err
	}
	// The failpoint may fire before the deployment is submitted (the
	// first compaction runs 250 ms after start): that crash counts, and a
	// daemon without failpoint takes over.
	crashedEarly := false
	value := fmt.Sprintf("2.%d", seed)
	var out string
	for {
		waitCrash(t, "the daemon's first sync", func() bool {
			if d.exited() {
				return true
			}
			out, err := cli("status", "-o", "json")
			return err == nil && strings.Contains(out, `"deployed": "`) && !strings.Contains(out, `"deployed": ""`)
		})
		if !d.exited() {
			var err error
			out, err = cli("deploy", "cc", "--select", "instances/*.xml", "--set", "/instance/app@version="+value, "--bucket", "5", "-o", "json")
			if err == nil {
				break
			}
			// A crash during the request: the CLI can see the socket close
			// before the process is reaped (seed-023 failed so, once).
			if !exitsWithin(d, 5*time.Second) {
				t.Fatalf("deploy: %v %s", err, out)
			}
		}
		if crashedEarly {
			t.Fatalf("the daemon without failpoint exited before the deployment was submitted")
		}
		crashedEarly = true
		d = startCrashDaemon(t, cfg, bare, "")
	}
	var dep struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &dep); err != nil {
		t.Fatal(err)
	}
	// A person pushes to other attributes of random instances meanwhile.
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		crashWriter(t, filepath.Join(dir, "bob"), bare, rng.Uint64(), git)
	}()
	finished := func() bool {
		out, err := cli("deployments", "show", dep.ID, "-o", "json")
		return err == nil && strings.Contains(out, `"finished":`)
	}
	crashed := false
	waitCrash(t, "a crash or the end of the deployment", func() bool {
		if d.exited() {
			crashed = true
			return true
		}
		return finished()
	})
	<-writerDone
	if crashed {
		d = startCrashDaemon(t, cfg, bare, "")
	}
	waitCrash(t, "the deployment to end after the restart", finished)
	d.stop(t)

	tally.runs++
	tally.chosen[point]++
	if crashed || crashedEarly {
		tally.crashes++
		tally.crashed[point]++
	}
	check := filepath.Join(dir, "check")
	git(dir, "clone", "-q", bare, check)
	ivs := openInterventions(t, filepath.Join(dir, "state", "state.db"))
	for i := 1; i <= crashInstances; i++ {
		name := fmt.Sprintf("i%02d", i)
		file := "instances/" + name + ".xml"
		tally.accepted++
		subjects := git(check, "log", "--format=%s", "--", file)
		n := strings.Count(subjects, name+": set /instance/app@version")
		content, _ := os.ReadFile(filepath.Join(check, file))
		switch {
		case n == 1 && bytes.Contains(content, []byte(`version="`+value+`"`)):
			tally.landed++
		case n == 0 && ivs[name]:
			tally.held++
		case n > 1:
			tally.duplicated++
			t.Errorf("%s: the edit landed %d times", name, n)
		default:
			tally.lost++
			t.Errorf("%s: the edit is neither on the remote (%d commits) nor held in an intervention", name, n)
		}
	}
	git(filepath.Join(dir, "state", "checkouts", "cc"), "fsck", "--no-progress")
	git(bare, "fsck", "--no-progress")
}

func seedCrashRepo(t *testing.T, work, bare string, git func(string, ...string) string) {
	files := map[string]string{
		"deployer.xml": `<deployer version="1">
  <instances dir="instances" pattern="*.xml"/>
  <step name="instance-configure" run="scripts/ok.sh" timeout="30s"/>
  <step name="instance-redeploy" run="scripts/ok.sh" timeout="30s" after="instance-configure"/>
  <on-change steps="instance-configure instance-redeploy" bucket="5"/>
</deployer>
`,
		// i07's and i14's redeploys fail (step-failed and its notification:
		// the outbox); every step lasts long enough for mid-step to land in it.
		"scripts/ok.sh": "#!/bin/sh\nsleep 0.05\nif { [ \"$DEPLOYER_INSTANCE\" = i07 ] || [ \"$DEPLOYER_INSTANCE\" = i14 ]; } && [ \"$DEPLOYER_STEP\" = instance-redeploy ]; then echo broken >&2; exit 1; fi\necho ok\n",
	}
	for i := 1; i <= crashInstances; i++ {
		// The owner stands lines away from the version, so that the
		// person's git rebase never meets the daemon's edit in one hunk.
		files[fmt.Sprintf("instances/i%02d.xml", i)] = fmt.Sprintf("<instance name=\"i%02d\">\n  <contact owner=\"team-a\"/>\n  <!-- owners change the contact; -->\n  <!-- releases change the app. -->\n  <app name=\"web\" version=\"1.0.0\"/>\n</instance>\n", i)
	}
	for name, content := range files {
		p := filepath.Join(work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	git(work, "init", "-q", "-b", "main")
	git(work, "-c", "user.name=Alice", "-c", "user.email=a@x", "add", "-A")
	git(work, "-c", "user.name=Alice", "-c", "user.email=a@x", "commit", "-q", "-m", "initial")
	git(work, "push", "-q", bare, "HEAD:refs/heads/main")
}

// crashWriter is a person changing the owner of random instances.
func crashWriter(t *testing.T, work, bare string, seed uint64, _ func(string, ...string) string) {
	rng := rand.New(rand.NewPCG(seed, 7))
	run := func(dir string, args ...string) error {
		cmd := exec.Command("git", append([]string{"-c", "user.name=Bob", "-c", "user.email=b@x"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1")
		if out, err := itest.CombinedOutput(cmd); err != nil {
			return fmt.Errorf("git %v: %v: %s", args, err, out)
		}
		return nil
	}
	if err := run(filepath.Dir(work), "clone", "-q", bare, work); err != nil {
		t.Error(err)
		return
	}
	owner := regexp.MustCompile(`owner="[^"]*"`)
	for k := 0; k < 4; k++ {
		file := filepath.Join(work, "instances", fmt.Sprintf("i%02d.xml", 1+rng.IntN(crashInstances)))
		b, err := os.ReadFile(file)
		if err != nil {
			t.Error(err)
			return
		}
		b = owner.ReplaceAll(b, fmt.Appendf(nil, `owner="team-%d-%d"`, seed, k))
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Error(err)
			return
		}
		if err := run(work, "commit", "-q", "-am", "owner change"); err != nil {
			t.Error(err)
			return
		}
		pushed := false
		for attempt := 0; attempt < 20 && !pushed; attempt++ {
			if run(work, "push", "-q", "origin", "HEAD:refs/heads/main") == nil {
				pushed = true
				break
			}
			if err := run(work, "pull", "-q", "--rebase", "origin", "main"); err != nil {
				t.Error(err)
				return
			}
		}
		if !pushed {
			t.Errorf("bob could not push after 20 attempts")
			return
		}
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
	}
}

type crashDaemon struct {
	cmd  *exec.Cmd
	proc *itest.Proc
	bare string
	t    *testing.T
}

func startCrashDaemon(t *testing.T, cfg, bare, failpoint string) *crashDaemon {
	cmd := exec.Command(filepath.Join(binDir, "deployer-failpoints"), "daemon", "--config", cfg)
	cmd.Env = append(os.Environ(), "DEPLOYER_FAILPOINT="+failpoint, "DEPLOYER_FAILPOINT_MAINTAIN=250ms")
	// Each start has its own log; on failure each is shown without the
	// maintenance lines (every 250 ms here), which would hide the rest.
	logFile := fmt.Sprintf("%s.%d.log", cfg, time.Now().UnixNano())
	if f, err := os.Create(logFile); err == nil {
		cmd.Stderr, cmd.Stdout = f, f
		t.Cleanup(func() {
			f.Close()
			if t.Failed() {
				t.Logf("daemon log (failpoint %q, maintenance lines left out):\n%s", failpoint, logTail(logFile, 8000))
			}
		})
	}
	p, err := itest.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	d := &crashDaemon{cmd: cmd, proc: p, bare: bare, t: t}
	t.Cleanup(func() { _ = p.Kill() })
	return d
}

// logTail is the last max bytes of a daemon log without its state
// maintenance lines.
func logTail(path string, max int) string {
	b, _ := os.ReadFile(path)
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, `"message":"state pruned"`) && !strings.Contains(line, `"message":"state compacted"`) &&
			!strings.Contains(line, `"message":"state file compacted"`) {
			keep = append(keep, line)
		}
	}
	out := strings.Join(keep, "\n")
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return out
}

// exitsWithin reports whether d has exited or does within wait.
func exitsWithin(d *crashDaemon, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for !d.exited() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

func (d *crashDaemon) exited() bool {
	select {
	case <-d.proc.Done():
		// What is left of the daemon's process group dies with it, as
		// systemd's KillMode=mixed does after the main process died: the
		// git receive-pack of a push to this file remote included (steps
		// run in process groups of their own). A receive-pack killed while
		// it held the branch's lock leaves refs/heads/main.lock behind, and
		// every later push fails on it; the daemon raises push-rejected
		// naming the lock, and the operator removes it as the runbook
		// says. This test plays the operator: once the group is gone (no
		// git process left), it removes a lock the kill left.
		_ = itest.KillGroup(d.cmd.Process)
		d.removeStaleLocks()
		return true
	default:
		return false
	}
}

// removeStaleLocks waits until the dead daemon's process group is empty and
// removes the ref lock files a killed receive-pack left in the remote.
func (d *crashDaemon) removeStaleLocks() {
	for i := 0; i < 200 && syscall.Kill(-d.cmd.Process.Pid, 0) == nil; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	for _, lock := range []string{filepath.Join(d.bare, "refs", "heads", "main.lock"), filepath.Join(d.bare, "packed-refs.lock")} {
		// bob's pushes hold the same lock for milliseconds: a lock still
		// there, unchanged, a second later is the dead one.
		before, err := os.Stat(lock)
		if err != nil {
			continue
		}
		time.Sleep(time.Second)
		if after, err := os.Stat(lock); err == nil && os.SameFile(before, after) && after.ModTime().Equal(before.ModTime()) {
			if os.Remove(lock) == nil {
				d.t.Logf("removed %s, left by the push the crash killed (the runbook's step for push-rejected)", lock)
			}
		}
	}
}

func (d *crashDaemon) stop(t *testing.T) {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.proc.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon did not stop within 30s of SIGTERM")
	}
}

func waitCrash(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// openInterventions checks the stopped daemon's state file with bbolt and
// returns the instances with an unresolved intervention.
func openInterventions(t *testing.T, path string) map[string]bool {
	st, err := store.OpenReadOnly(path, store.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open state: %v", err)
	}
	defer st.Close()
	ivs, err := st.Interventions(store.InterventionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, iv := range ivs {
		if iv.Instance != "" {
			held[iv.Instance] = true
		}
	}
	return held
}

// TestProductionBuildHasNoFailpoints: the failpoints are compiled only into
// the crash tests' binary (-tags failpoints); the production binary does not
// even contain the variable's name, so no environment can crash it.
func TestProductionBuildHasNoFailpoints(t *testing.T) {
	for name, want := range map[string]bool{"deployer": false, "deployer-failpoints": true} {
		b, err := os.ReadFile(itest.Real(binDir, name)) // not the wrapper in front of it
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Contains(b, []byte("DEPLOYER_FAILPOINT")); got != want {
			t.Errorf("%s contains DEPLOYER_FAILPOINT: %v, want %v", name, got, want)
		}
	}
	if daemon.FailpointsBuilt {
		t.Errorf("the test binary itself was built with -tags failpoints")
	}
}
