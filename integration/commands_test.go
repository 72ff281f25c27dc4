package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sre-tools/deployer/integration/internal/itest"
)

// scenarioDeadline bounds every wait in a scenario.
const scenarioDeadline = 60 * time.Second

// cmdGitPush commits everything in DIR and pushes it to $REMOTE_URL's main,
// making DIR a clone first when it is not a repository; when the remote
// moved it pulls with --rebase and pushes again, unless -force (which
// rewrites the branch). It sets PUSHED to the new commit.
//
//	gitpush [-force] DIR MESSAGE
func cmdGitPush(ts *testscript.TestScript, neg bool, args []string) {
	force := len(args) == 3 && args[0] == "-force"
	if force {
		args = args[1:]
	}
	if len(args) != 2 {
		ts.Fatalf("usage: gitpush [-force] DIR MESSAGE")
	}
	dir := ts.MkAbs(args[0])
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		mustGit(ts, dir, "init", "-q", "-b", "main")
		url := ts.Getenv("PUSH_URL") // a URL with credentials, when the server wants them
		if url == "" {
			url = ts.Getenv("REMOTE_URL")
		}
		mustGit(ts, dir, "remote", "add", "origin", url)
		setIdentity(ts, dir)
	}
	mustGit(ts, dir, "add", "-A")
	mustGit(ts, dir, "commit", "-q", "-m", args[1])
	// Like a person: when the remote moved, pull --rebase and push again.
	pushArgs := []string{"push", "-q", "origin", "HEAD:refs/heads/main"}
	if force {
		pushArgs = append(pushArgs, "--force")
	}
	_, err := runGit(ts, dir, pushArgs...)
	for i := 0; !force && err != nil && !neg && i < 5 && strings.Contains(err.Error(), "rejected"); i++ {
		mustGit(ts, dir, "pull", "-q", "--rebase", "origin", "main")
		_, err = runGit(ts, dir, "push", "-q", "origin", "HEAD:refs/heads/main")
	}
	if neg {
		if err == nil {
			ts.Fatalf("push succeeded unexpectedly")
		}
		return
	}
	ts.Check(err)
	ts.Setenv("PUSHED", strings.TrimSpace(mustGit(ts, dir, "rev-parse", "HEAD")))
}

// cmdGit runs the git CLI in a directory, as the other people do.
//
//	git DIR ARGS...
func cmdGit(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: git DIR ARGS...")
	}
	out, err := runGit(ts, ts.MkAbs(args[0]), args[1:]...)
	fmt.Fprint(ts.Stdout(), out)
	if neg != (err != nil) {
		ts.Fatalf("git %s: %v", strings.Join(args[1:], " "), err)
	}
}

// setIdentity names the person of a clone after its directory: alice → Alice <alice@example.com>.
func setIdentity(ts *testscript.TestScript, dir string) {
	name := filepath.Base(dir)
	mustGit(ts, dir, "config", "user.name", strings.ToUpper(name[:1])+name[1:])
	mustGit(ts, dir, "config", "user.email", name+"@example.com")
}

func runGit(ts *testscript.TestScript, dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+ts.Getenv("HOME"), "GIT_CONFIG_NOSYSTEM=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := itest.Output(cmd)
	if err != nil {
		return string(out), fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

func mustGit(ts *testscript.TestScript, dir string, args ...string) string {
	out, err := runGit(ts, dir, args...)
	ts.Check(err)
	return out
}

// cmdExpandEnv replaces $VAR and ${VAR} in files with the script's
// environment; unknown variables are left (as ${VAR}).
//
//	expandenv FILE...
func cmdExpandEnv(ts *testscript.TestScript, neg bool, args []string) {
	for _, f := range args {
		data := ts.ReadFile(f)
		// Variables the script does not know stay as they are, so that
		// shell scripts keep their own.
		expanded := os.Expand(data, func(name string) string {
			if v := ts.Getenv(name); v != "" {
				return v
			}
			return "${" + name + "}"
		})
		ts.Check(os.WriteFile(ts.MkAbs(f), []byte(expanded), 0o644))
	}
}

// cmdWaitRun waits, through `deployer runs -o json`, until a finished run at
// commit $PUSHED (or COMMIT) exists, with status S when -status is given,
// and prints `deployer runs show ID -o json`. It sets RUN to the run's id.
//
//	waitrun [-status S] [-trigger KIND] [-after RUNID] [COMMIT]
func cmdWaitRun(ts *testscript.TestScript, neg bool, args []string) {
	status, trigger, after := "", "", uint64(0)
	for len(args) >= 2 && (args[0] == "-status" || args[0] == "-trigger" || args[0] == "-after") {
		switch args[0] {
		case "-status":
			status = args[1]
		case "-trigger":
			trigger = args[1]
		default:
			n, err := strconv.ParseUint(args[1], 10, 64)
			ts.Check(err)
			after = n
		}
		args = args[2:]
	}
	commit := ts.Getenv("PUSHED")
	if len(args) == 1 {
		commit = args[0]
	}
	var id uint64
	waitUntil(ts, "a finished run at "+commit, func() bool {
		var resp struct {
			Runs []struct {
				ID       uint64     `json:"id"`
				Commit   string     `json:"commit"`
				Status   string     `json:"status"`
				Ended    *time.Time `json:"ended"`
				Triggers []struct {
					Kind string `json:"kind"`
				} `json:"triggers"`
			} `json:"runs"`
		}
		if err := deployerJSON(ts, &resp, "runs", "-o", "json"); err != nil {
			return false
		}
		for _, r := range resp.Runs {
			hasTrigger := trigger == ""
			for _, t := range r.Triggers {
				hasTrigger = hasTrigger || t.Kind == trigger
			}
			if (commit == "" || r.Commit == commit) && r.Ended != nil && (status == "" || r.Status == status) && hasTrigger && r.ID > after {
				id = r.ID
				return true
			}
		}
		return false
	})
	out, err := deployer(ts, "runs", "show", strconv.FormatUint(id, 10), "-o", "json")
	ts.Check(err)
	ts.Setenv("RUN", strconv.FormatUint(id, 10))
	fmt.Fprint(ts.Stdout(), out)
}

// cmdWaitDeployment waits until deployment ID has ended and prints it as JSON.
//
//	waitdeployment ID
func cmdWaitDeployment(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waitdeployment ID")
	}
	var out string
	waitUntil(ts, "deployment "+args[0]+" to end", func() bool {
		var d struct {
			Finished *time.Time `json:"finished"`
		}
		o, err := deployer(ts, "deployments", "show", args[0], "-o", "json")
		if err != nil || json.Unmarshal([]byte(o), &d) != nil {
			return false
		}
		out = o
		return d.Finished != nil
	})
	fmt.Fprint(ts.Stdout(), out)
}

// cmdWaitReady waits until `deployer status -o json` answers and every repo
// has been synced once.
func cmdWaitReady(ts *testscript.TestScript, neg bool, args []string) {
	waitUntil(ts, "the daemon to sync every repo", func() bool {
		var st struct {
			Repos []struct {
				Deployed string `json:"deployed"`
				Running  any    `json:"running"`
			} `json:"repos"`
		}
		if err := deployerJSON(ts, &st, "status", "-o", "json"); err != nil {
			return false
		}
		for _, r := range st.Repos {
			if r.Deployed == "" || r.Running != nil {
				return false
			}
		}
		return len(st.Repos) > 0
	})
}

// cmdWaitIntervention waits until an unresolved intervention of KIND is
// listed, or with -none until none is.
//
//	waitintervention KIND | -none
func cmdWaitIntervention(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waitintervention KIND | -none")
	}
	var last []string
	ok := waitFor(func() bool {
		var resp struct {
			Interventions []struct {
				Kind     string `json:"kind"`
				Instance string `json:"instance"`
			} `json:"interventions"`
		}
		if err := deployerJSON(ts, &resp, "interventions", "-o", "json"); err != nil {
			return false
		}
		last = last[:0]
		for _, iv := range resp.Interventions {
			last = append(last, strconv.Quote(iv.Kind+"/"+iv.Instance))
		}
		if args[0] == "-none" {
			return len(resp.Interventions) == 0
		}
		for _, iv := range resp.Interventions {
			if iv.Kind == args[0] {
				return true
			}
		}
		return false
	})
	if !ok {
		ts.Fatalf("timed out after %s waiting for intervention %s (open: %s)", scenarioDeadline, args[0], strings.Join(last, " "))
	}
}

// cmdWaitFileMatch waits until a file has a line matching a regexp.
//
//	waitfilematch FILE REGEXP
func cmdWaitFileMatch(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: waitfilematch FILE REGEXP")
	}
	re := regexp.MustCompile(args[1])
	waitUntil(ts, args[0]+" to match "+args[1], func() bool {
		b, err := os.ReadFile(ts.MkAbs(args[0]))
		return err == nil && re.Match(b)
	})
}

// cmdWaitFile waits until a file exists.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waitfile PATH")
	}
	waitUntil(ts, "file "+args[0], func() bool {
		_, err := os.Stat(ts.MkAbs(args[0]))
		return err == nil
	})
}

func waitUntil(ts *testscript.TestScript, what string, cond func() bool) {
	if !waitFor(cond) {
		ts.Fatalf("timed out after %s waiting for %s", scenarioDeadline, what)
	}
}

// waitFor polls cond every 100 ms for at most the scenario deadline and
// says whether it came true.
func waitFor(cond func() bool) bool {
	deadline := time.Now().Add(scenarioDeadline)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func deployer(ts *testscript.TestScript, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "deployer"), args...)
	cmd.Env = append(os.Environ(), "DEPLOYER_SOCKET="+ts.Getenv("DEPLOYER_SOCKET"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := itest.Output(cmd)
	if err != nil {
		var ee *exec.ExitError
		if ok := asExit(err, &ee); ok && ee.ExitCode() == 3 {
			return string(out), nil // an open intervention still answers
		}
		return string(out), fmt.Errorf("deployer %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

func asExit(err error, target **exec.ExitError) bool {
	ee, ok := err.(*exec.ExitError)
	if ok {
		*target = ee
	}
	return ok
}

func deployerJSON(ts *testscript.TestScript, v any, args ...string) error {
	out, err := deployer(ts, args...)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(out), v)
}
