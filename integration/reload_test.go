package integration_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdGitRepo creates another bare repository NAME on the scenario's git
// server and sets REMOTE_<NAME> to its URL.
//
//	gitrepo NAME
func cmdGitRepo(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: gitrepo NAME")
	}
	bare := filepath.Join(ts.MkAbs("srv"), args[0]+".git")
	mustGit(ts, "", "init", "-q", "--bare", "-b", "main", bare)
	mustGit(ts, bare, "config", "http.receivepack", "true")
	base := strings.TrimSuffix(ts.Getenv("REMOTE_URL"), filepath.Base(ts.Getenv("REMOTE_URL")))
	ts.Setenv("REMOTE_"+strings.ToUpper(args[0]), base+args[0]+".git")
}

// cmdGitPushTo commits everything in DIR and pushes it to URL's main, making
// DIR a repository first when it is not one.
//
//	gitpushto DIR URL MESSAGE
func cmdGitPushTo(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: gitpushto DIR URL MESSAGE")
	}
	dir := ts.MkAbs(args[0])
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		mustGit(ts, dir, "init", "-q", "-b", "main")
		setIdentity(ts, dir)
	}
	mustGit(ts, dir, "add", "-A")
	mustGit(ts, dir, "commit", "-q", "-m", args[2])
	mustGit(ts, dir, "push", "-q", args[1], "HEAD:refs/heads/main")
}

// cmdAddRepo appends a repo to $DEPLOYER_CONFIG.
//
//	addrepo NAME URL
func cmdAddRepo(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: addrepo NAME URL")
	}
	path := ts.Getenv("DEPLOYER_CONFIG")
	cfg := ts.ReadFile(path)
	at := strings.Index(cfg, "repos:\n")
	if at < 0 {
		ts.Fatalf("addrepo: no repos: in %s", path)
	}
	at += len("repos:\n")
	entry := fmt.Sprintf("  - name: %s\n    url: %s\n    branch: main\n    poll: 200ms\n", args[0], args[1])
	ts.Check(os.WriteFile(path, []byte(cfg[:at]+entry+cfg[at:]), 0o644))
}

// cmdDropRepo removes a repo from $DEPLOYER_CONFIG.
//
//	droprepo NAME
func cmdDropRepo(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: droprepo NAME")
	}
	path := ts.Getenv("DEPLOYER_CONFIG")
	lines := strings.SplitAfter(ts.ReadFile(path), "\n")
	var out []string
	skipping := false
	for _, l := range lines {
		if strings.HasPrefix(l, "  - name: ") {
			skipping = strings.TrimSpace(strings.TrimPrefix(l, "  - name: ")) == args[0]
		} else if !strings.HasPrefix(l, "    ") {
			skipping = false
		}
		if !skipping {
			out = append(out, l)
		}
	}
	ts.Check(os.WriteFile(path, []byte(strings.Join(out, "")), 0o644))
}

// cmdSighup sends SIGHUP to the scenario's background daemons.
//
//	sighup
func cmdSighup(ts *testscript.TestScript, neg bool, args []string) {
	n := 0
	for _, c := range ts.BackgroundCmds() {
		if slices.Contains(c.Args, "daemon") && c.Process != nil {
			ts.Check(c.Process.Signal(syscall.SIGHUP))
			n++
		}
	}
	if n == 0 {
		ts.Fatalf("sighup: no background daemon")
	}
}

// cmdWaitRepos waits until `deployer status` lists exactly these repos,
// each synced once.
//
//	waitrepos NAME...
func cmdWaitRepos(ts *testscript.TestScript, neg bool, args []string) {
	want := slices.Clone(args)
	slices.Sort(want)
	waitUntil(ts, "repos "+strings.Join(want, " "), func() bool {
		out, err := deployer(ts, "status", "-o", "json")
		if err != nil {
			return false
		}
		var st struct {
			Repos []struct {
				Name     string `json:"name"`
				Deployed string `json:"deployed"`
			} `json:"repos"`
		}
		if json.Unmarshal([]byte(out), &st) != nil {
			return false
		}
		var got []string
		for _, r := range st.Repos {
			if r.Deployed == "" {
				return false
			}
			got = append(got, r.Name)
		}
		slices.Sort(got)
		return slices.Equal(got, want)
	})
}

// cmdNoRunsOverlap checks, through `deployer runs -o json`, that at least N
// runs finished and that no two of them overlapped in time.
//
//	norunsoverlap N
func cmdNoRunsOverlap(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: norunsoverlap N")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	var resp struct {
		Runs []struct {
			ID       uint64     `json:"id"`
			Started  time.Time  `json:"started"`
			Ended    *time.Time `json:"ended"`
			Triggers []struct {
				Kind string `json:"kind"`
			} `json:"triggers"`
		} `json:"runs"`
	}
	out, err := deployer(ts, "runs", "--limit", "200", "-o", "json")
	ts.Check(err)
	ts.Check(json.Unmarshal([]byte(out), &resp))
	kinds := map[string]int{}
	n := 0
	for i, a := range resp.Runs {
		if a.Ended == nil {
			continue
		}
		n++
		for _, t := range a.Triggers {
			kinds[t.Kind]++
		}
		for _, b := range resp.Runs[i+1:] {
			if b.Ended != nil && a.Started.Before(*b.Ended) && b.Started.Before(*a.Ended) {
				ts.Fatalf("runs %d and %d overlap", a.ID, b.ID)
			}
		}
	}
	if n < want {
		ts.Fatalf("%d finished runs, want at least %d", n, want)
	}
	fmt.Fprintf(ts.Stdout(), "%d runs, none overlapping; triggers %v\n", n, kinds)
}
