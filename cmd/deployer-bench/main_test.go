package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/syncer/bench"
)

// TestMain makes the test binary its own benchmark child, as deployer-bench is: the runner
// starts os.Executable() with "child" first.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestRunBench runs the benchmark through the command line on a small repository and checks
// its JSON report. DEPLOYER_BENCH_FILES / _COMMITS / _RUNS / _OPS run it at another size
// (DEPLOYER_BENCH_VERBOSE=1 prints the progress) and print the table.
func TestRunBench(t *testing.T) {
	args := []string{"-files", "200", "-commits", "300", "-runs", "1", "-o", "json"}
	for _, v := range []struct{ env, flag string }{
		{"DEPLOYER_BENCH_FILES", "-files"}, {"DEPLOYER_BENCH_COMMITS", "-commits"},
		{"DEPLOYER_BENCH_RUNS", "-runs"}, {"DEPLOYER_BENCH_OPS", "-ops"},
	} {
		if s := os.Getenv(v.env); s != "" {
			args = append(args, v.flag, s)
		}
	}
	if os.Getenv("DEPLOYER_BENCH_VERBOSE") != "" {
		args = append(args, "-v")
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	var rep bench.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out.String())
	}
	want := bench.Ops
	if s := os.Getenv("DEPLOYER_BENCH_OPS"); s != "" {
		want = strings.Split(s, ",")
	}
	if len(rep.Ops) != len(want) {
		t.Fatalf("ops: got %d, want %d", len(rep.Ops), len(want))
	}
	for i, op := range rep.Ops {
		if op.Name != want[i] || op.OursMS <= 0 || op.GitMS <= 0 || op.OursRSSMB <= 0 || op.GitRSSMB <= 0 {
			t.Fatalf("op %d: %+v", i, op)
		}
	}
	_ = rep.WriteTable(os.Stdout)
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-o", "yaml"}, {"extra"}, {"-nosuchflag"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, code, errb.String())
		}
	}
}

// TestChildReportsErrors checks the child's protocol: a bad spec or a failing operation is a
// JSON result with the error, exit 0; no spec at all is a usage error.
func TestChildReportsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"child"}, 2, ""},
		{[]string{"child", "{"}, 0, "bad spec"},
		{[]string{"child", `{"op":"nope","url":"/nonexistent","dir":"` + t.TempDir() + `/x"}`}, 0, "clone: remote-unreachable"},
		{[]string{"child", `{"op":"git","dir":"` + t.TempDir() + `","steps":[["no-such-git-command"]]}`}, 0, "no-such-git-command"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errb)
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d (%s)", tc.args, code, tc.code, errb.String())
			continue
		}
		if tc.code != 0 {
			continue
		}
		var res bench.Result
		if err := json.Unmarshal(out.Bytes(), &res); err != nil || !strings.Contains(res.Err, tc.err) {
			t.Errorf("%q: result %q (%v), want an error containing %q", tc.args, out.String(), err, tc.err)
		}
	}
}
