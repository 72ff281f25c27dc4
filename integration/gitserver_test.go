package integration_test

import (
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sre-tools/deployer/integration/internal/itest"
)

// gitServer serves the bare repositories under root over $TRANSPORT on a
// fixed 127.0.0.1 port, so that a scenario can stop and start it.
type gitServer struct {
	ts        *testscript.TestScript
	transport string
	root      string
	addr      string
	auth      string // "user:password" required over http, when set
	stop      func()
}

var servers sync.Map // *testscript.TestScript → *gitServer

// cmdGitServer creates a bare repository NAME (branch main, non-fast-forward
// pushes denied) and serves it; it sets REMOTE_URL.
//
//	gitserver [-auth USER:PASS] NAME
//	gitserver -stop
//	gitserver -start
func cmdGitServer(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 1 && (args[0] == "-stop" || args[0] == "-start") {
		v, ok := servers.Load(ts)
		if !ok {
			ts.Fatalf("gitserver %s: no server", args[0])
		}
		srv := v.(*gitServer)
		if args[0] == "-stop" {
			srv.stop()
		} else {
			srv.start()
		}
		return
	}
	auth := ""
	if len(args) == 3 && args[0] == "-auth" {
		auth, args = args[1], args[2:]
	}
	if len(args) != 1 {
		ts.Fatalf("usage: gitserver [-auth USER:PASS] NAME | -stop | -start")
	}
	root := ts.MkAbs("srv")
	bare := filepath.Join(root, args[0]+".git")
	mustGit(ts, "", "init", "-q", "--bare", "-b", "main", bare)
	mustGit(ts, bare, "config", "http.receivepack", "true")
	mustGit(ts, bare, "config", "receive.denyNonFastForwards", "true")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	srv := &gitServer{ts: ts, transport: ts.Getenv("TRANSPORT"), root: root, addr: l.Addr().String(), auth: auth}
	l.Close()
	srv.start()
	ts.Defer(func() { srv.stop() })
	servers.Store(ts, srv)
	ts.Defer(func() { servers.Delete(ts) })
	if srv.transport == "http" {
		ts.Setenv("REMOTE_URL", "http://"+srv.addr+"/"+args[0]+".git")
		if auth != "" {
			ts.Setenv("REMOTE_URL_AUTH", "http://"+auth+"@"+srv.addr+"/"+args[0]+".git")
		}
	} else {
		ts.Setenv("REMOTE_URL", "git://"+srv.addr+"/"+args[0]+".git")
	}
	ts.Setenv("SRV", bare)
}

func (s *gitServer) start() {
	if s.transport == "http" {
		s.startHTTP()
	} else {
		s.startDaemon()
	}
	s.waitListening()
}

func (s *gitServer) startDaemon() {
	_, port, _ := net.SplitHostPort(s.addr)
	cmd := exec.Command(filepath.Join(gitExecPath, "git-daemon"), "--export-all", "--enable=receive-pack", "--reuseaddr",
		"--listen=127.0.0.1", "--port="+port, "--base-path="+s.root, s.root)
	// Its own process group, killed whole: git daemon forks a child per
	// connection (itest.Start). Its log goes to a file, not to the test's
	// stderr.
	logf, err := os.OpenFile(filepath.Join(s.root, "git-daemon.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	s.ts.Check(err)
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := itest.Start(cmd)
	s.ts.Check(err)
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			_ = p.Kill()
			logf.Close()
		})
	}
}

func (s *gitServer) startHTTP() {
	var h http.Handler = &cgi.Handler{
		Path: gitHTTPBackend,
		Env:  []string{"GIT_PROJECT_ROOT=" + s.root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	if s.auth != "" {
		user, pass, _ := strings.Cut(s.auth, ":")
		next := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	var l net.Listener
	deadline := time.Now().Add(scenarioDeadline)
	for {
		var err error
		if l, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			s.ts.Fatalf("listen %s: %v", s.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(l)
	var once sync.Once
	s.stop = func() { once.Do(func() { hs.Close() }) }
}

func (s *gitServer) waitListening() {
	deadline := time.Now().Add(scenarioDeadline)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", s.addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.ts.Fatalf("git server did not listen on %s", s.addr)
}

// cmdGitClone clones $REMOTE_URL into DIR, as another person.
//
//	gitclone DIR
func cmdGitClone(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: gitclone DIR")
	}
	mustGit(ts, ts.MkAbs("."), "clone", "-q", ts.Getenv("REMOTE_URL"), ts.MkAbs(args[0]))
	setIdentity(ts, ts.MkAbs(args[0]))
}
