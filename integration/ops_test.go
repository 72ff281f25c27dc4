package integration_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/rogpeppe/go-internal/testscript"
)

// opsCmds are the commands of the ops-* scenarios (webhook storms, signals,
// the systemd notify protocol and metrics).
func opsCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"webhookn":     cmdWebhookN,
		"runtriggers":  cmdRunTriggers,
		"checkruns":    cmdCheckRuns,
		"sigterm":      cmdSigterm,
		"stamp":        cmdStamp,
		"within":       cmdWithin,
		"notifysocket": cmdNotifySocket,
		"waitlines":    cmdWaitLines,
		"metrics":      cmdMetrics,
	}
}

// socketClient is an HTTP client that dials the daemon's Unix socket.
func socketClient(ts *testscript.TestScript) *http.Client {
	sock := ts.Getenv("DEPLOYER_SOCKET")
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
}

// cmdWebhookN posts N signed GitHub push events for $REMOTE_URL's main to
// the daemon's socket at once, each with its own delivery id, and prints
// one line per status code: `CODE COUNT`.
//
//	webhookn N SECRETFILE
func cmdWebhookN(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: webhookn N SECRETFILE")
	}
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	secret := strings.TrimSpace(ts.ReadFile(args[1]))
	body := fmt.Sprintf(`{"ref": "refs/heads/main", "after": "0123456789abcdef0123456789abcdef01234567",
  "repository": {"full_name": "sre/other", "clone_url": %q}}`, ts.Getenv("REMOTE_URL"))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	c := socketClient(ts)
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := -1
			req, err := http.NewRequest(http.MethodPost, "http://deployer/v1/webhooks/github", strings.NewReader(body))
			if err == nil {
				req.Header.Set("X-GitHub-Event", "push")
				req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("delivery-%d", i))
				req.Header.Set("X-Hub-Signature-256", sig)
				var resp *http.Response
				if resp, err = c.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
			}
			if err != nil {
				ts.Logf("delivery %d: %v", i, err)
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	keys := make([]int, 0, len(codes))
	for k := range codes {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	for _, k := range keys {
		fmt.Fprintf(ts.Stdout(), "%d %d\n", k, codes[k])
	}
}

type runRecord struct {
	ID       uint64     `json:"id"`
	Status   string     `json:"status"`
	Commit   string     `json:"commit"`
	Ended    *time.Time `json:"ended"`
	Triggers []struct {
		Kind string `json:"kind"`
	} `json:"triggers"`
}

// cmdRunTriggers prints how many triggers of each kind run ID records, one
// `KIND COUNT` line per kind, sorted.
//
//	runtriggers ID
func cmdRunTriggers(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: runtriggers ID")
	}
	out, err := deployer(ts, "runs", "show", args[0], "-o", "json")
	ts.Check(err)
	var r runRecord
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.ID == 0 {
		// `runs show` may wrap the run with its steps.
		var wrapped struct {
			Run runRecord `json:"run"`
		}
		ts.Check(json.Unmarshal([]byte(out), &wrapped))
		r = wrapped.Run
	}
	if r.ID == 0 {
		ts.Fatalf("run %s: no id in %s", args[0], out)
	}
	counts := map[string]int{}
	for _, t := range r.Triggers {
		counts[t.Kind]++
	}
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(ts.Stdout(), "%s %d\n", k, counts[k])
	}
}

// cmdCheckRuns waits until no run is in flight on any repo, then fails
// unless exactly N runs with an id above AFTER are recorded; it prints
// them as `ID STATUS`.
//
//	checkruns -after ID N
func cmdCheckRuns(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 || args[0] != "-after" {
		ts.Fatalf("usage: checkruns -after ID N")
	}
	after, err := strconv.ParseUint(args[1], 10, 64)
	ts.Check(err)
	want, err := strconv.Atoi(args[2])
	ts.Check(err)
	waitUntil(ts, "no run in flight", func() bool {
		var st struct {
			Repos []struct {
				Running any `json:"running"`
			} `json:"repos"`
		}
		if err := deployerJSON(ts, &st, "status", "-o", "json"); err != nil {
			return false
		}
		for _, r := range st.Repos {
			if r.Running != nil {
				return false
			}
		}
		return true
	})
	var resp struct {
		Runs []runRecord `json:"runs"`
	}
	ts.Check(deployerJSON(ts, &resp, "runs", "-o", "json"))
	got := 0
	for _, r := range resp.Runs {
		if r.ID > after {
			got++
			fmt.Fprintf(ts.Stdout(), "%d %s\n", r.ID, r.Status)
		}
	}
	if (got == want) == neg {
		ts.Fatalf("%d runs after run %d, want %d", got, after, want)
	}
}

// cmdSigterm sends SIGTERM to the scenario's background daemons that are
// still running (testscript's kill knows only INT and KILL).
//
//	sigterm
func cmdSigterm(ts *testscript.TestScript, neg bool, args []string) {
	n := 0
	for _, c := range ts.BackgroundCmds() {
		if !slices.Contains(c.Args, "daemon") || c.Process == nil {
			continue
		}
		err := c.Process.Signal(syscall.SIGTERM)
		if errors.Is(err, os.ErrProcessDone) {
			continue
		}
		ts.Check(err)
		n++
	}
	if n == 0 {
		ts.Fatalf("sigterm: no running background daemon")
	}
}

// cmdStamp sets NAME to the current time (Unix nanoseconds).
//
//	stamp NAME
func cmdStamp(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: stamp NAME")
	}
	ts.Setenv(args[0], strconv.FormatInt(time.Now().UnixNano(), 10))
}

// cmdWithin prints the time since `stamp NAME` and fails unless it is
// under MAX.
//
//	within NAME MAX
func cmdWithin(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: within NAME MAX")
	}
	ns, err := strconv.ParseInt(ts.Getenv(args[0]), 10, 64)
	ts.Check(err)
	limit, err := time.ParseDuration(args[1])
	ts.Check(err)
	elapsed := time.Since(time.Unix(0, ns))
	fmt.Fprintf(ts.Stdout(), "elapsed %s\n", elapsed.Round(10*time.Millisecond))
	if (elapsed < limit) == neg {
		ts.Fatalf("%s since %s, limit %s", elapsed.Round(time.Millisecond), args[0], limit)
	}
}

// cmdNotifySocket listens on a datagram socket in a short temporary
// directory, as systemd does for a Type=notify service, and appends every
// datagram it receives to $WORK/notify.log, one line per datagram
// (newlines inside shown as `|`). It sets NOTIFY_SOCKET, and WATCHDOG_USEC
// when -watchdog is given. With -check PATH, a datagram with READY=1 is
// logged with ` (PATH present)` or ` (PATH missing)`, so a scenario can
// show that the service only said ready once PATH existed.
//
//	notifysocket [-watchdog DURATION] [-check PATH]
func cmdNotifySocket(ts *testscript.TestScript, neg bool, args []string) {
	var watchdog time.Duration
	check := ""
	for len(args) >= 2 {
		switch args[0] {
		case "-watchdog":
			d, err := time.ParseDuration(args[1])
			ts.Check(err)
			watchdog = d
		case "-check":
			check = args[1]
		default:
			ts.Fatalf("notifysocket: unknown flag %s", args[0])
		}
		args = args[2:]
	}
	if len(args) != 0 {
		ts.Fatalf("usage: notifysocket [-watchdog DURATION] [-check PATH]")
	}
	dir, err := os.MkdirTemp("", "dn")
	ts.Check(err)
	ts.Defer(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	ts.Check(err)
	logPath := ts.MkAbs("notify.log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	ts.Check(err)
	checkPath := ""
	if check != "" {
		checkPath = ts.MkAbs(check)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			line := strings.ReplaceAll(strings.TrimRight(string(buf[:n]), "\n"), "\n", "|")
			if checkPath != "" && regexp.MustCompile(`(^|\|)READY=1($|\|)`).MatchString(line) {
				if _, err := os.Stat(checkPath); err == nil {
					line += " (" + check + " present)"
				} else {
					line += " (" + check + " missing)"
				}
			}
			_, _ = fmt.Fprintln(f, line)
		}
	}()
	ts.Defer(func() {
		conn.Close()
		<-done
		f.Close()
	})
	ts.Setenv("NOTIFY_SOCKET", path)
	if watchdog > 0 {
		ts.Setenv("WATCHDOG_USEC", strconv.FormatInt(watchdog.Microseconds(), 10))
	}
}

// cmdWaitLines waits until at least N lines of FILE match REGEXP (for at
// most MAX with -within, else the scenario deadline) and prints how many do.
//
//	waitlines [-within MAX] FILE REGEXP N
func cmdWaitLines(ts *testscript.TestScript, neg bool, args []string) {
	limit := scenarioDeadline
	if len(args) == 5 && args[0] == "-within" {
		d, err := time.ParseDuration(args[1])
		ts.Check(err)
		limit, args = d, args[2:]
	}
	if len(args) != 3 {
		ts.Fatalf("usage: waitlines [-within MAX] FILE REGEXP N")
	}
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	want, err := strconv.Atoi(args[2])
	ts.Check(err)
	count := func() int {
		b, err := os.ReadFile(ts.MkAbs(args[0]))
		if err != nil {
			return 0
		}
		n := 0
		for _, l := range strings.Split(string(b), "\n") {
			if re.MatchString(l) {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(limit)
	got := count()
	for got < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		got = count()
	}
	fmt.Fprintf(ts.Stdout(), "%d lines match\n", got)
	if got < want {
		ts.Fatalf("%d lines of %s match %s after %s, want %d", got, args[0], args[1], limit, want)
	}
}

// cmdMetrics GETs /metrics over $DEPLOYER_SOCKET, fails on a status other
// than 200 or on any problem the Prometheus client library's linter finds
// (the checks of `promtool check metrics`), and prints the exposition.
//
//	metrics
func cmdMetrics(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 0 {
		ts.Fatalf("usage: metrics")
	}
	resp, err := socketClient(ts).Get("http://deployer/metrics")
	ts.Check(err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	ts.Check(err)
	if resp.StatusCode != http.StatusOK {
		ts.Fatalf("GET /metrics: %s: %s", resp.Status, body)
	}
	problems, err := lintMetrics(string(body))
	if err != nil {
		ts.Fatalf("lint /metrics: %v", err)
	}
	for _, p := range problems {
		ts.Logf("promlint: %s", p)
	}
	if len(problems) > 0 {
		ts.Fatalf("promlint found %d problems in /metrics", len(problems))
	}
	fmt.Fprint(ts.Stdout(), string(body))
}

// lintMetrics returns the problems promlint finds in a text exposition, as
// `metric: text`.
func lintMetrics(exposition string) ([]string, error) {
	problems, err := promlint.New(strings.NewReader(exposition)).Lint()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(problems))
	for _, p := range problems {
		out = append(out, p.Metric+": "+p.Text)
	}
	return out, nil
}

// TestLintMetricsFindsProblems shows that the metrics command would fail on
// the problems promtool reports, and passes a clean exposition.
func TestLintMetricsFindsProblems(t *testing.T) {
	bad := "# HELP deployer_runs Runs.\n# TYPE deployer_runs counter\ndeployer_runs{repo=\"cc\"} 1\n" +
		"# TYPE deployer_step_duration_milliseconds gauge\ndeployer_step_duration_milliseconds 3\n"
	problems, err := lintMetrics(bad)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) < 3 { // no _total suffix, no help, a non-base unit
		t.Errorf("lint found %d problems, want at least 3: %q", len(problems), problems)
	}
	good := "# HELP deployer_runs_total Runs.\n# TYPE deployer_runs_total counter\ndeployer_runs_total{repo=\"cc\"} 1\n"
	if problems, err := lintMetrics(good); err != nil || len(problems) != 0 {
		t.Errorf("lint of a clean exposition: %q, %v", problems, err)
	}
}
