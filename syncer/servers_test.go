package syncer_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// gitDaemon serves root over git:// on a free 127.0.0.1 port, with push enabled.
type gitDaemon struct {
	cmd  *exec.Cmd
	port int
	root string
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startGitDaemon(tb testing.TB, root string, port int) *gitDaemon {
	tb.Helper()
	if port == 0 {
		port = freePort(tb)
	}
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack",
		"--base-path="+root, "--listen=127.0.0.1", fmt.Sprintf("--port=%d", port), "--informative-errors", root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // git runs git-daemon as a child
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	d := &gitDaemon{cmd: cmd, port: port, root: root}
	tb.Cleanup(d.stop)
	go func() { // drain
		s := bufio.NewScanner(stderr)
		for s.Scan() {
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return d
		}
		if time.Now().After(deadline) {
			tb.Fatalf("git daemon did not start on port %d: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *gitDaemon) url(repo string) string {
	return fmt.Sprintf("git://127.0.0.1:%d/%s", d.port, repo)
}

func (d *gitDaemon) stop() {
	if d.cmd.Process != nil && d.cmd.ProcessState == nil {
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		_ = d.cmd.Wait()
	}
}

// startHTTPBackend serves root with git http-backend behind net/http/cgi. With user set,
// requests need that basic-auth user and password, else 401.
func startHTTPBackend(tb testing.TB, root, user, pass string) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(httpBackendHandler(tb, root, user, pass))
	tb.Cleanup(srv.Close)
	return srv
}

// httpBackendHandler is git http-backend serving root behind net/http/cgi (see
// startHTTPBackend).
func httpBackendHandler(tb testing.TB, root, user, pass string) http.Handler {
	tb.Helper()
	execPath := gitRun(tb, root, "--exec-path")
	backend := &cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=deployer"},
	}
	h := http.Handler(backend)
	if user != "" {
		h = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			u, p, ok := req.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			backend.ServeHTTP(w, req)
		})
	}
	return h
}

// installHook writes an executable hook script into the bare repository.
func installHook(tb testing.TB, bare, name, script string) {
	tb.Helper()
	writeExec(tb, filepath.Join(bare, "hooks", name), "#!/bin/sh\n"+script+"\n")
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	return ctx
}
