package integration_test

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// cutProxy forwards TCP connections to the scenario's git server; in cut
// mode it closes each connection after the server sent limit bytes, as a
// network that dies in the middle of a fetch.
type cutProxy struct {
	target string
	limit  atomic.Int64 // 0: pass everything
	gen    atomic.Int64 // bumped on every mode change
	cuts   atomic.Int64 // connections cut so far
}

var proxies sync.Map // *testscript.TestScript → *cutProxy

// cmdCutProxy starts a TCP proxy in front of the scenario's git server and
// sets PROXY_URL ($REMOTE_URL through the proxy); -cut N makes every new
// connection close after the server sent N bytes, -pass lets everything
// through again, -cuts MIN waits until at least MIN connections were cut
// and prints how many were.
//
//	cutproxy | cutproxy -cut N | cutproxy -pass | cutproxy -cuts MIN
func cmdCutProxy(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		startCutProxy(ts)
		return
	}
	v, ok := proxies.Load(ts)
	if !ok {
		ts.Fatalf("cutproxy %s: no proxy", args[0])
	}
	p := v.(*cutProxy)
	switch {
	case len(args) == 2 && args[0] == "-cut":
		n, err := strconv.ParseInt(args[1], 10, 64)
		ts.Check(err)
		p.limit.Store(n)
		p.gen.Add(1)
	case len(args) == 1 && args[0] == "-pass":
		p.limit.Store(0)
		p.gen.Add(1)
	case len(args) == 2 && args[0] == "-cuts":
		n, err := strconv.ParseInt(args[1], 10, 64)
		ts.Check(err)
		waitUntil(ts, fmt.Sprintf("%d connections cut", n), func() bool { return p.cuts.Load() >= n })
		fmt.Fprintf(ts.Stdout(), "cut %d connections\n", p.cuts.Load())
	default:
		ts.Fatalf("usage: cutproxy [-cut N | -pass | -cuts MIN]")
	}
}

func startCutProxy(ts *testscript.TestScript) {
	v, ok := servers.Load(ts)
	if !ok {
		ts.Fatalf("cutproxy: start gitserver first")
	}
	srv := v.(*gitServer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	p := &cutProxy{target: srv.addr}
	proxies.Store(ts, p)
	var wg sync.WaitGroup
	ts.Defer(func() {
		l.Close()
		wg.Wait()
		proxies.Delete(ts)
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	ts.Setenv("PROXY_URL", strings.Replace(ts.Getenv("REMOTE_URL"), srv.addr, l.Addr().String(), 1))
}

func (p *cutProxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	go func() {
		_, _ = io.Copy(server, client)
		server.Close()
	}()
	// Bytes count from the last mode change, so that a kept-alive HTTP
	// connection opened before -cut is cut too.
	gen, sent := p.gen.Load(), int64(0)
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if g := p.gen.Load(); g != gen {
			gen, sent = g, 0
		}
		if limit := p.limit.Load(); limit > 0 && sent+int64(n) >= limit {
			_, _ = client.Write(buf[:limit-sent])
			p.cuts.Add(1)
			return
		}
		if n > 0 {
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
			sent += int64(n)
		}
		if err != nil {
			return
		}
	}
}

// mountCondition reports whether the scenarios can mount a tmpfs (they run
// as root in CI). When they cannot and CI_REQUIRE_MOUNT=1, it is an error,
// so that CI fails instead of skipping.
var mountCondition = sync.OnceValues(func() (bool, error) {
	dir, err := os.MkdirTemp("", "dmount")
	if err != nil {
		return false, err
	}
	defer os.Remove(dir)
	err = syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k")
	if err == nil {
		_ = syscall.Unmount(dir, 0)
		return true, nil
	}
	if os.Getenv("CI_REQUIRE_MOUNT") == "1" {
		return false, fmt.Errorf("CI_REQUIRE_MOUNT=1 but mounting a tmpfs failed: %v", err)
	}
	return false, nil
})

// cmdMountTmpfs mounts a tmpfs of SIZE (as mount -o size= takes it) on DIR,
// creating DIR, and unmounts it (lazily) at the end of the scenario. Use it
// under the [mount] condition. -fill FILE LEAVE fills the filesystem
// holding FILE until at most LEAVE bytes are free (FILE holds the rest;
// delete it to free the space).
//
//	mounttmpfs DIR SIZE
//	mounttmpfs -fill FILE LEAVE
func cmdMountTmpfs(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 3 && args[0] == "-fill" {
		fillFS(ts, ts.MkAbs(args[1]), args[2])
		return
	}
	if len(args) != 2 {
		ts.Fatalf("usage: mounttmpfs DIR SIZE | mounttmpfs -fill FILE LEAVE")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o755))
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+args[1]+",mode=0755"); err != nil {
		ts.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	ts.Defer(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	fmt.Fprintf(ts.Stdout(), "mounted a %s tmpfs on %s\n", args[1], args[0])
}

func fillFS(ts *testscript.TestScript, path, leave string) {
	keep, err := strconv.ParseInt(leave, 10, 64)
	ts.Check(err)
	var st syscall.Statfs_t
	ts.Check(syscall.Statfs(filepath.Dir(path), &st))
	free := int64(st.Bavail) * st.Bsize
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	ts.Check(err)
	defer f.Close()
	if n := free - keep; n > 0 {
		buf := make([]byte, 64<<10)
		for n > 0 {
			w, err := f.Write(buf[:min(int64(len(buf)), n)])
			n -= int64(w)
			if err != nil {
				break
			}
		}
	}
	ts.Check(syscall.Statfs(filepath.Dir(path), &st))
	fmt.Fprintf(ts.Stdout(), "%d bytes free\n", int64(st.Bavail)*st.Bsize)
}

// slowBackups holds each scenario's stalled backup connection.
var slowBackups sync.Map // *testscript.TestScript → net.Conn

// cmdSlowBackup sends GET /v1/backup over $DEPLOYER_SOCKET with a small
// receive buffer, reads the status line and then stops reading, keeping
// the connection open: a client that stalls. -close reads what is left
// (for at most the scenario deadline) and prints how many body bytes came
// and how the stream ended.
//
//	slowbackup | slowbackup -close
func cmdSlowBackup(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 1 && args[0] == "-close" {
		v, ok := slowBackups.LoadAndDelete(ts)
		if !ok {
			ts.Fatalf("slowbackup -close: no stalled backup")
		}
		c := v.(*net.UnixConn)
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(scenarioDeadline))
		n, err := io.Copy(io.Discard, c)
		fmt.Fprintf(ts.Stdout(), "read %d more bytes, then %v\n", n, errString(err))
		return
	}
	if len(args) != 0 {
		ts.Fatalf("usage: slowbackup [-close]")
	}
	raw, err := net.Dial("unix", ts.Getenv("DEPLOYER_SOCKET"))
	ts.Check(err)
	c := raw.(*net.UnixConn)
	_ = c.SetReadBuffer(4096)
	slowBackups.Store(ts, c)
	ts.Defer(func() {
		if v, ok := slowBackups.LoadAndDelete(ts); ok {
			v.(net.Conn).Close()
		}
	})
	_, err = io.WriteString(c, "GET /v1/backup HTTP/1.1\r\nHost: deployer\r\nConnection: close\r\n\r\n")
	ts.Check(err)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReaderSize(c, 16).ReadString('\n')
	ts.Check(err)
	_ = c.SetReadDeadline(time.Time{})
	fmt.Fprintf(ts.Stdout(), "backup answered %s", line)
}

func errString(err error) string {
	if err == nil {
		return "EOF"
	}
	return err.Error()
}

// cmdMetricSize GETs /metrics over $DEPLOYER_SOCKET and prints its size in
// bytes and its number of samples. -var NAME stores the size in $NAME;
// -atmost NAME F fails unless the size is at most F times $NAME; -atleast
// NAME F fails unless it is at least F times $NAME.
//
//	metricsize [-var NAME] [-atmost NAME F] [-atleast NAME F]
func cmdMetricSize(ts *testscript.TestScript, neg bool, args []string) {
	resp, err := socketClient(ts).Get("http://deployer/metrics")
	ts.Check(err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	ts.Check(err)
	if resp.StatusCode != http.StatusOK {
		ts.Fatalf("GET /metrics: %s", resp.Status)
	}
	samples := 0
	for _, l := range strings.Split(string(body), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			samples++
		}
	}
	size := float64(len(body))
	fmt.Fprintf(ts.Stdout(), "metrics: %d bytes, %d samples\n", len(body), samples)
	for len(args) >= 2 {
		switch args[0] {
		case "-var":
			ts.Setenv(args[1], strconv.Itoa(len(body)))
			args = args[2:]
			continue
		case "-atmost", "-atleast":
			if len(args) < 3 {
				ts.Fatalf("metricsize %s NAME F", args[0])
			}
			ref, err := strconv.ParseFloat(ts.Getenv(args[1]), 64)
			ts.Check(err)
			f, err := strconv.ParseFloat(args[2], 64)
			ts.Check(err)
			if args[0] == "-atmost" && size > f*ref {
				ts.Fatalf("/metrics is %.0f bytes, more than %s × $%s (%.0f)", size, args[2], args[1], f*ref)
			}
			if args[0] == "-atleast" && size < f*ref {
				ts.Fatalf("/metrics is %.0f bytes, less than %s × $%s (%.0f)", size, args[2], args[1], f*ref)
			}
			args = args[3:]
			continue
		}
		break
	}
	if len(args) != 0 {
		ts.Fatalf("usage: metricsize [-var NAME] [-atmost NAME F] [-atleast NAME F]")
	}
	fmt.Fprint(ts.Stdout(), string(body))
}

// cmdGenSteps writes a manifest FILE with N independent steps s001...
// running scripts/ok.sh, all of them on change.
//
//	gensteps FILE N
func cmdGenSteps(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: gensteps FILE N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	var b strings.Builder
	b.WriteString("<deployer version=\"1\">\n  <instances dir=\"instances\" pattern=\"*.xml\" key=\"name\"/>\n")
	names := make([]string, 0, n)
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("s%03d", i)
		names = append(names, name)
		fmt.Fprintf(&b, "  <step name=%q run=\"scripts/ok.sh\" timeout=\"30s\"/>\n", name)
	}
	fmt.Fprintf(&b, "  <on-change steps=%q bucket=\"2\"/>\n</deployer>\n", strings.Join(names, " "))
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(b.String()), 0o644))
}

// cmdBigFile writes SIZE bytes of incompressible (seeded pseudo-random)
// data to FILE, so that a fetch of it takes many packets.
//
//	bigfile FILE SIZE
func cmdBigFile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: bigfile FILE SIZE")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	r := rand.New(rand.NewPCG(uint64(n), 13))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	ts.Check(os.MkdirAll(filepath.Dir(ts.MkAbs(args[0])), 0o755))
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), b, 0o644))
}
