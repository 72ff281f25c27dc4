package integration_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sre-tools/deployer/integration/internal/itest"
)

// TestIdleDaemon measures the idle daemon: 30 repos polling every 10 s over
// git:// on 127.0.0.1 with nothing new upstream (targets: under 3% of one
// core and under 64 MiB RSS over the window), and the API's p99 at 100
// requests/s (target: under 10 ms). It takes DEPLOYER_IDLE_WINDOW (default
// 2m) and runs only with DEPLOYER_IDLE_BENCH=1.
func TestIdleDaemon(t *testing.T) {
	if os.Getenv("DEPLOYER_IDLE_BENCH") != "1" {
		t.Skip("set DEPLOYER_IDLE_BENCH=1 to measure the idle daemon (takes over 2 minutes)")
	}
	window := 2 * time.Minute
	if v, err := time.ParseDuration(os.Getenv("DEPLOYER_IDLE_WINDOW")); err == nil {
		window = v
	}
	dir := t.TempDir()
	srv := filepath.Join(dir, "srv")
	git := func(d string, args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = d
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir, "GIT_AUTHOR_NAME=a", "GIT_AUTHOR_EMAIL=a@x", "GIT_COMMITTER_NAME=a", "GIT_COMMITTER_EMAIL=a@x")
		if out, err := itest.CombinedOutput(cmd); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	work := filepath.Join(dir, "work")
	os.MkdirAll(filepath.Join(work, "instances"), 0o755)
	os.WriteFile(filepath.Join(work, "deployer.xml"), []byte(`<deployer version="1"><instances dir="instances" pattern="*.xml"/></deployer>`+"\n"), 0o644)
	os.WriteFile(filepath.Join(work, "instances", "a.xml"), []byte("<instance name=\"a\"/>\n"), 0o644)
	git(dir, "init", "-q", "-b", "main", work)
	git(work, "add", "-A")
	git(work, "commit", "-q", "-m", "init")
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var repos strings.Builder
	for i := 0; i < 30; i++ {
		bare := filepath.Join(srv, fmt.Sprintf("cc%02d.git", i))
		git(dir, "init", "-q", "--bare", "-b", "main", bare)
		git(work, "push", "-q", bare, "HEAD:refs/heads/main")
		fmt.Fprintf(&repos, "  - {name: cc%02d, url: \"git://127.0.0.1:%d/cc%02d.git\", poll: 10s}\n", i, port, i)
	}
	gd := exec.Command(filepath.Join(gitExecPath, "git-daemon"), "--export-all", "--reuseaddr", "--listen=127.0.0.1", "--port="+strconv.Itoa(port), "--base-path="+srv, srv)
	gp, err := itest.Start(gd)
	if err != nil {
		t.Fatal(err)
	}
	defer gp.Kill()
	sockDir, _ := os.MkdirTemp("", "didle")
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "d.sock")
	cfg := filepath.Join(dir, "deployer.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "host: idle\nstate_dir: %s\nlisten: {socket: %s}\nlog: {level: warn, format: json}\nrepos:\n%s", filepath.Join(dir, "state"), sock, repos.String()), 0o644)
	d := exec.Command(filepath.Join(binDir, "deployer"), "daemon", "--config", cfg)
	dp, err := itest.Start(d)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Process.Signal(syscall.SIGTERM); dp.Wait() }()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dd net.Dialer
		return dd.DialContext(ctx, "unix", sock)
	}}}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := client.Get("http://d/readyz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("daemon not ready after 2 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(15 * time.Second) // first runs and adoption done
	cpu0 := procCPU(t, d.Process.Pid)
	start := time.Now()
	time.Sleep(window)
	cpu := procCPU(t, d.Process.Pid) - cpu0
	elapsed := time.Since(start)
	pct := 100 * cpu.Seconds() / elapsed.Seconds()
	rss := procRSS(t, d.Process.Pid)

	// API: 100 requests/s for 10 s against /v1/status.
	var lat []time.Duration
	tick := time.NewTicker(10 * time.Millisecond)
	for i := 0; i < 1000; i++ {
		<-tick.C
		t0 := time.Now()
		resp, err := client.Get("http://d/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
	}
	tick.Stop()
	slices.Sort(lat)
	p99 := lat[len(lat)*99/100]
	t.Logf("idle: 30 repos, poll 10s, window %s: cpu %.2f%% of one core (target < 3%%), peak rss %.1f MiB (target < 64 MiB); api /v1/status at 100 req/s: p50 %s, p99 %s (target < 10ms)",
		elapsed.Round(time.Second), pct, rss, lat[len(lat)/2], p99)
	if pct >= 3 || rss >= 64 || p99 >= 10*time.Millisecond {
		t.Errorf("a target is missed")
	}
}

func procCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func procRSS(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
}
