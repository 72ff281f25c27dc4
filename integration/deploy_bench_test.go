package integration_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
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

	"github.com/sre-tools/deployer/integration/internal/itest"
)

// The benchmark repository: benchInstances instance files of about 6 KB in
// instances/, a manifest whose two steps are /bin/true, and benchHistory
// small commits after the initial one.
const (
	benchInstances = 10000
	benchHistory   = 200
	benchSelect    = "instances/i01???.xml" // i01000 … i01999: 1,000 files
	benchSelected  = 1000
)

// BenchmarkDeploy1000 measures a deployment that sets one attribute on
// 1,000 instances of a 10,000-instance repository, with `true` steps, from
// `deployer deploy --wait` to its end, including every write-back push to
// a git daemon on 127.0.0.1. One sub-benchmark per bucket size
// (DEPLOY_BENCH_BUCKETS, default "50"; e.g. "5,50,200"); DEPLOY_BENCH_LOG
// names a file that keeps the daemon's log. It reports the
// wall time, the pushes (the daemon's "pushed" log lines) and the commits
// the deployment left on the remote, and prints a table.
func BenchmarkDeploy1000(b *testing.B) {
	if _, err := exec.LookPath("git"); err != nil {
		b.Skipf("git is needed: %v", err)
	}
	env := newBenchEnv(b)
	buckets := strings.Split(envOr("DEPLOY_BENCH_BUCKETS", "50"), ",")
	var rows []string
	for _, s := range buckets {
		bucket, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || bucket <= 0 {
			b.Fatalf("DEPLOY_BENCH_BUCKETS: bad bucket size %q", s)
		}
		b.Run(fmt.Sprintf("bucket=%d", bucket), func(b *testing.B) {
			b.StopTimer()
			for i := 0; i < b.N; i++ {
				r := env.deploy(b, bucket)
				b.ReportMetric(r.wall.Seconds(), "s/deployment")
				b.ReportMetric(float64(r.pushes), "pushes/op")
				b.ReportMetric(float64(r.commits), "commits/op")
				rows = append(rows, fmt.Sprintf("%6d  %-18s  %8.2f  %6d  %7d  %9d", bucket, r.id, r.wall.Seconds(), r.pushes, r.commits, r.succeeded))
			}
		})
	}
	b.Run("gitcli-baseline", func(b *testing.B) {
		b.StopTimer()
		for i := 0; i < b.N; i++ {
			r := env.gitBaseline(b, 50)
			b.ReportMetric(r.wall.Seconds(), "s/deployment")
			b.ReportMetric(float64(r.pushes), "pushes/op")
			b.ReportMetric(float64(r.commits), "commits/op")
			rows = append(rows, fmt.Sprintf("%6d  %-18s  %8.2f  %6d  %7d  %9s", 50, "git CLI, no steps", r.wall.Seconds(), r.pushes, r.commits, "-"))
		}
	})
	b.Logf("clone of the %d-instance repository at daemon start: %s", benchInstances, env.clone.Round(time.Millisecond))
	b.Logf("daemon log with elapsed times: %s", env.logPath)
	b.Logf("\nbucket  deployment          wall (s)  pushes  commits  succeeded\n%s", strings.Join(rows, "\n"))
}

// benchEnv is one git daemon, one bare repository and one deployer daemon.
type benchEnv struct {
	dir, sock, srv string
	url            string // the git daemon's URL of the repository
	logPath        string
	clone          time.Duration
	deployments    int

	mu     sync.Mutex
	pushed int // "pushed" lines in the daemon's log so far
}

type deployResult struct {
	id                         string
	wall                       time.Duration
	pushes, commits, succeeded int
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	dir := b.TempDir()
	sockDir, err := os.MkdirTemp("", "dbench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(sockDir) })
	e := &benchEnv{dir: dir, sock: filepath.Join(sockDir, "d.sock"), srv: filepath.Join(dir, "srv", "cc.git")}
	start := time.Now()
	e.generateRepo(b)
	b.Logf("generated %d instances and %d commits with git fast-import in %s", benchInstances, benchHistory+1, time.Since(start).Round(time.Millisecond))
	e.url = e.startGitDaemon(b)
	e.writeConfig(b, e.url)
	start = time.Now()
	e.startDaemon(b)
	e.waitReady(b)
	e.clone = time.Since(start)
	return e
}

// generateRepo writes the repository into a bare repository with one git
// fast-import stream.
func (e *benchEnv) generateRepo(b *testing.B) {
	b.Helper()
	benchGit(b, "", "init", "-q", "--bare", "-b", "main", e.srv)
	benchGit(b, e.srv, "config", "receive.denyNonFastForwards", "true")
	var stream bytes.Buffer
	w := bufio.NewWriter(&stream)
	when := int64(1700000000)
	fmt.Fprintf(w, "commit refs/heads/main\nmark :1\ncommitter Alice <alice@example.com> %d +0000\n", when)
	fastData(w, "initial config: 10,000 instances")
	fastFile(w, "deployer.xml", benchManifest)
	for i := 1; i <= benchInstances; i++ {
		fastFile(w, fmt.Sprintf("instances/i%05d.xml", i), benchInstanceXML(i, 0))
	}
	for c := 1; c <= benchHistory; c++ {
		n := (c*7919)%benchInstances + 1
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter Bob <bob@example.com> %d +0000\n", when+int64(c)*60)
		fastData(w, fmt.Sprintf("i%05d: tune p007", n))
		if c == 1 {
			fmt.Fprintf(w, "from :1\n")
		}
		fastFile(w, fmt.Sprintf("instances/i%05d.xml", n), benchInstanceXML(n, c))
	}
	w.Flush()
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = e.srv
	cmd.Stdin = &stream
	if out, err := itest.CombinedOutput(cmd); err != nil {
		b.Fatalf("git fast-import: %v: %s", err, out)
	}
}

func fastData(w io.Writer, s string) { fmt.Fprintf(w, "data %d\n%s\n", len(s), s) }

func fastFile(w io.Writer, path, content string) {
	fmt.Fprintf(w, "M 100644 inline %s\n", path)
	fastData(w, content)
}

const benchManifest = `<deployer version="1">
  <instances dir="instances" pattern="*.xml" key="name"/>
  <step name="instance-configure" run="/bin/true" timeout="30s"/>
  <step name="instance-redeploy" run="/bin/true" timeout="30s" after="instance-configure"/>
  <on-change steps="instance-configure instance-redeploy" bucket="50"/>
</deployer>
`

// benchInstanceXML is an instance file of about 6 KB; rev changes one
// parameter, for the history.
func benchInstanceXML(n, rev int) string {
	var s strings.Builder
	fmt.Fprintf(&s, "<instance name=\"i%05d\" tier=\"%s\">\n  <app name=\"web\" version=\"1.0.0\"/>\n", n, []string{"bronze", "gold", "silver"}[n%3])
	for p := 1; p <= 80; p++ {
		v := fmt.Sprintf("value-%05d-%03d", n, p)
		if p == 7 && rev > 0 {
			v = fmt.Sprintf("tuned-%d", rev)
		}
		fmt.Fprintf(&s, "  <param key=\"p%03d\" value=\"%s\"/> <!-- parameter %d of instance %d -->\n", p, v, p, n)
	}
	s.WriteString("</instance>\n")
	return s.String()
}

func (e *benchEnv) startGitDaemon(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	root := filepath.Dir(e.srv)
	cmd := exec.Command(filepath.Join(gitExecPath, "git-daemon"), "--export-all", "--enable=receive-pack", "--reuseaddr",
		"--listen=127.0.0.1", "--port="+port, "--base-path="+root, root)
	p, err := itest.Start(cmd)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Kill() })
	benchWaitUntil(b, "git daemon on "+addr, 10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "git://" + addr + "/cc.git"
}

func (e *benchEnv) writeConfig(b *testing.B, url string) {
	b.Helper()
	cfg := fmt.Sprintf(`host: bench-dep01
state_dir: %s
listen:
  socket: %s
log: {level: info, format: json}
allow_step_dirs: [/bin, /usr/bin]
repos:
  - name: cc
    url: %s
    branch: main
    poll: 1m
    author: {name: bench-deployer, email: deployer@bench-dep01}
`, filepath.Join(e.dir, "state"), e.sock, url)
	if err := os.WriteFile(filepath.Join(e.dir, "deployer.yaml"), []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
}

// startDaemon runs `deployer daemon`; its log goes to daemon.log, each line
// prefixed with the seconds since the daemon started, and "pushed" lines
// are counted.
func (e *benchEnv) startDaemon(b *testing.B) {
	b.Helper()
	cmd := exec.Command(filepath.Join(binDir, "deployer"), "daemon", "--config", filepath.Join(e.dir, "deployer.yaml"))
	cmd.Env = append(os.Environ(), "DEPLOYER_SOCKET="+e.sock)
	// A pipe of our own, not StderrPipe: itest's goroutine calls Wait,
	// which would close StderrPipe's end before the last lines were read.
	stderr, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = w
	e.logPath = envOr("DEPLOY_BENCH_LOG", filepath.Join(e.dir, "daemon.log")) // DEPLOY_BENCH_LOG keeps it
	logf, err := os.Create(e.logPath)
	if err != nil {
		b.Fatal(err)
	}
	p, err := itest.Start(cmd)
	w.Close()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer stderr.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(logf, "+%9.3fs %s\n", time.Since(start).Seconds(), line)
			if strings.Contains(line, `"message":"pushed"`) {
				e.mu.Lock()
				e.pushed++
				e.mu.Unlock()
			}
		}
	}()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = itest.KillGroup(cmd.Process)
			<-done
		}
		_ = p.Wait()
		logf.Close()
	})
}

func (e *benchEnv) pushes() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pushed
}

func (e *benchEnv) waitReady(b *testing.B) {
	b.Helper()
	benchWaitUntil(b, "the daemon to clone and sync", 10*time.Minute, func() bool {
		var st struct {
			Repos []struct {
				Deployed string `json:"deployed"`
				Running  any    `json:"running"`
			} `json:"repos"`
		}
		out, err := e.deployer(context.Background(), "status", "-o", "json")
		if err != nil || json.Unmarshal([]byte(out), &st) != nil {
			return false
		}
		return len(st.Repos) == 1 && st.Repos[0].Deployed != "" && st.Repos[0].Running == nil
	})
}

// deploy runs one deployment over the selected instances, setting a new
// version, and measures it.
func (e *benchEnv) deploy(b *testing.B, bucket int) deployResult {
	b.Helper()
	e.deployments++
	version := fmt.Sprintf("2.0.%d", e.deployments)
	pushesBefore := e.pushes()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b.StartTimer()
	start := time.Now()
	out, err := e.deployer(ctx, "deploy", "cc", "--select", benchSelect, "--set", "/instance/app@version="+version,
		"--bucket", strconv.Itoa(bucket), "--reason", "bench", "--wait", "-o", "json")
	wall := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatalf("deploy: %v\n%s", err, tail(out, 2000))
	}
	// --wait -o json prints progress lines, then the deployment.
	var d struct {
		ID     string         `json:"id"`
		State  string         `json:"state"`
		Counts map[string]int `json:"counts"`
	}
	if i := strings.Index(out, "{"); i < 0 || json.Unmarshal([]byte(out[i:]), &d) != nil {
		b.Fatalf("deploy: cannot read the deployment from:\n%s", tail(out, 2000))
	}
	if d.State != "succeeded" || d.Counts["succeeded"] != benchSelected {
		b.Fatalf("deployment %s: %s with %v, want succeeded with %d succeeded", d.ID, d.State, d.Counts, benchSelected)
	}
	commits := strings.Count(benchGit(b, e.srv, "log", "main", "--format=%H", "--grep=^Deployer-Deployment: "+d.ID+"$"), "\n")
	if commits != benchSelected {
		b.Errorf("deployment %s left %d commits on the remote, want %d (one per instance)", d.ID, commits, benchSelected)
	}
	return deployResult{id: d.ID, wall: wall, pushes: e.pushes() - pushesBefore, commits: commits, succeeded: d.Counts["succeeded"]}
}

// gitBaseline does with the git CLI what the deployment's write-back does:
// one commit per selected instance setting a new version, a push per bucket
// of them; no steps. It is the reference for the deployment's figure,
// measured in the same minute on the same machine. It pushes to a copy of
// the bare repository (served by the same git daemon), so that the
// deployer daemon does not see its commits.
func (e *benchEnv) gitBaseline(b *testing.B, bucket int) deployResult {
	b.Helper()
	dir := filepath.Join(e.dir, "gitcli")
	if _, err := os.Stat(dir); err != nil {
		bare := filepath.Join(filepath.Dir(e.srv), "cli.git")
		benchGit(b, "", "clone", "-q", "--bare", e.srv, bare)
		benchGit(b, "", "clone", "-q", strings.TrimSuffix(e.url, "cc.git")+"cli.git", dir)
		benchGit(b, dir, "config", "user.name", "Bench CLI")
		benchGit(b, dir, "config", "user.email", "cli@example.com")
	}
	benchGit(b, dir, "pull", "-q", "--ff-only")
	e.deployments++
	version := fmt.Sprintf("2.0.%d", e.deployments)
	files, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(benchSelect)))
	if err != nil || len(files) != benchSelected {
		b.Fatalf("gitcli: %d files match %s (%v), want %d", len(files), benchSelect, err, benchSelected)
	}
	re := regexp.MustCompile(`(<app name="web" version=")[^"]*`)
	b.StartTimer()
	start := time.Now()
	pushes := 0
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(f, re.ReplaceAll(data, []byte("${1}"+version)), 0o644); err != nil {
			b.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, f)
		benchGit(b, dir, "commit", "-q", "-m", "gitcli: "+rel+": version "+version, "--", rel)
		if (i+1)%bucket == 0 || i == len(files)-1 {
			benchGit(b, dir, "push", "-q", "origin", "HEAD:refs/heads/main")
			pushes++
		}
	}
	wall := time.Since(start)
	b.StopTimer()
	return deployResult{id: "git CLI", wall: wall, pushes: pushes, commits: len(files)}
}

func (e *benchEnv) deployer(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "deployer"), args...)
	cmd.Env = append(os.Environ(), "DEPLOYER_SOCKET="+e.sock)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := itest.Output(cmd)
	if err != nil {
		return string(out), fmt.Errorf("deployer %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

func benchGit(b *testing.B, dir string, args ...string) string {
	b.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1")
	out, err := itest.Output(cmd)
	if err != nil {
		b.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

func benchWaitUntil(b *testing.B, what string, limit time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
