package sshtest

import (
	"cmp"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long Run waits for sshd to listen, and WaitLog for a log line.
const startTimeout = 10 * time.Second

// Options configures a [Server]. The zero value means defaults.
type Options struct {
	// Dir holds the keys, sshd_config, authorized_keys and the log. [Start] uses a new
	// t.TempDir() when it is empty; [New] needs it.
	Dir string
	// SSHD is the sshd binary; empty means [DefaultSSHD].
	SSHD string
	// ClientKey is the file name, in Dir, of the authorized client key (and of its .pub);
	// empty means "id_ed25519".
	ClientKey string
	// Config holds extra sshd_config lines, such as "MaxStartups 1".
	Config []string
}

// Server is an sshd on 127.0.0.1 with a generated host key, one authorized client key, and
// its own configuration. Its port, keys and log stay the same across Run and Stop.
type Server struct {
	dir     string
	sshd    string
	cfg     string
	port    int
	user    string
	hostPub string
	key     string
	logPath string

	cmd    *exec.Cmd
	exited chan struct{}
	log    *os.File
}

// Start starts a Server for the test and stops it at cleanup, logging sshd's log when the
// test failed. It skips the test (or fails it under CI_REQUIRE_SSHD=1) when sshd is missing.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	Require(tb)
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	s := New(tb, opts)
	tb.Cleanup(func() {
		s.Stop()
		if tb.Failed() {
			tb.Logf("sshd log:\n%s", s.Log())
		}
	})
	s.Run(tb)
	return s
}

// New prepares a Server in opts.Dir without starting it: it generates the host key and the
// client key, picks a free port, writes authorized_keys and sshd_config, and has sshd -t check
// them. The caller runs it with [Server.Run] and must [Server.Stop] it.
func New(tb TB, opts Options) *Server {
	tb.Helper()
	if opts.Dir == "" {
		tb.Fatalf("sshtest.New: Options.Dir is empty")
	}
	u, err := user.Current()
	if err != nil {
		tb.Fatalf("current user: %v", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		tb.Fatalf("create %s: %v", opts.Dir, err)
	}
	s := &Server{
		dir:     opts.Dir,
		sshd:    cmp.Or(opts.SSHD, DefaultSSHD),
		cfg:     filepath.Join(opts.Dir, "sshd_config"),
		port:    freePort(tb),
		user:    u.Username,
		key:     filepath.Join(opts.Dir, cmp.Or(opts.ClientKey, "id_ed25519")),
		logPath: filepath.Join(opts.Dir, "sshd.log"),
	}
	hostKey := filepath.Join(opts.Dir, "host_ed25519")
	s.hostPub = GenKey(tb, hostKey)
	authorized := s.writeAuthorizedKeys(tb, GenKey(tb, s.key))
	s.writeConfig(tb, hostKey, authorized, opts.Config)
	// Privilege separation directory; sshd refuses to start as root without it.
	if os.Geteuid() == 0 {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			tb.Fatalf("create /run/sshd: %v", err)
		}
	}
	if out, err := exec.Command(s.sshd, "-t", "-f", s.cfg).CombinedOutput(); err != nil {
		tb.Fatalf("sshd -t: %v\n%s", err, out)
	}
	return s
}

func freePort(tb TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeAuthorizedKeys authorizes clientPub, with a PATH under which the session finds
// git-upload-pack and git-receive-pack wherever git is installed, and returns the file's path.
func (s *Server) writeAuthorizedKeys(tb TB, clientPub string) string {
	tb.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		tb.Fatalf("find git: %v", err)
	}
	execPath, err := exec.Command(gitPath, "--exec-path").Output()
	if err != nil {
		tb.Fatalf("git --exec-path: %v", err)
	}
	path := filepath.Dir(gitPath) + ":" + strings.TrimSpace(string(execPath)) + ":/usr/bin:/bin"
	authorized := filepath.Join(s.dir, "authorized_keys")
	line := fmt.Sprintf("environment=\"PATH=%s\" %s sshtest\n", path, clientPub)
	if err := os.WriteFile(authorized, []byte(line), 0o600); err != nil {
		tb.Fatalf("write authorized_keys: %v", err)
	}
	return authorized
}

func (s *Server) writeConfig(tb TB, hostKey, authorized string, extra []string) {
	tb.Helper()
	lines := append([]string{
		"ListenAddress 127.0.0.1",
		fmt.Sprintf("Port %d", s.port),
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + authorized,
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"PermitUserEnvironment PATH",
		"StrictModes no",
		"UsePAM no",
		"UseDNS no",
		"PrintMotd no",
		"PidFile " + filepath.Join(s.dir, "sshd.pid"),
		"LogLevel VERBOSE",
	}, extra...)
	if err := os.WriteFile(s.cfg, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		tb.Fatalf("write sshd_config: %v", err)
	}
}

// Run starts sshd -D -e in its own process group (stopping it first if it runs) and waits
// until it listens. Its log is appended to the log file.
func (s *Server) Run(tb TB) {
	tb.Helper()
	s.Stop()
	// A file, not a pipe: each sshd process writes its lines itself, so a line logged before
	// sshd answered the client is in the file when the client call returns.
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		tb.Fatalf("open sshd log: %v", err)
	}
	cmd := exec.Command(s.sshd, "-D", "-e", "-f", s.cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // sshd forks a child per connection
	if err := cmd.Start(); err != nil {
		logf.Close()
		tb.Fatalf("start sshd: %v", err)
	}
	s.cmd, s.log, s.exited = cmd, logf, make(chan struct{})
	go func(exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(s.exited)
	s.waitListening(tb)
}

func (s *Server) waitListening(tb TB) {
	tb.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-s.exited:
			tb.Fatalf("sshd exited at start: %s\n%s", s.cmd.ProcessState, s.Log())
		default:
		}
		c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("sshd did not listen on %s: %v\n%s", s.Addr(), err, s.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop kills sshd and the children serving its connections, and waits for it. It does
// nothing when sshd is not running.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
	s.log.Close()
	s.cmd, s.log = nil, nil
}

// Dir is the directory holding the keys, the configuration and the log.
func (s *Server) Dir() string { return s.dir }

// Port is the TCP port sshd listens on, on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Addr is "127.0.0.1:PORT".
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// User is the user sshd lets in: the current OS user.
func (s *Server) User() string { return s.user }

// Key is the path of the authorized client private key (its public key is Key()+".pub").
func (s *Server) Key() string { return s.key }

// HostPub is the server's host public key, "ssh-ed25519 AAAA...".
func (s *Server) HostPub() string { return s.hostPub }

// URL is the ssh:// URL of the repository at the absolute path repo;
// URL("") is the prefix "ssh://USER@127.0.0.1:PORT".
func (s *Server) URL(repo string) string {
	return fmt.Sprintf("ssh://%s@%s%s", s.user, s.Addr(), filepath.ToSlash(repo))
}

// HostLine is a known_hosts line giving key for this server's address.
func (s *Server) HostLine(key string) string {
	return fmt.Sprintf("[127.0.0.1]:%d %s", s.port, key)
}

// KnownHosts writes a known_hosts file with the given lines in a new t.TempDir() and
// returns its path.
func (s *Server) KnownHosts(tb testing.TB, lines ...string) string {
	tb.Helper()
	return WriteKnownHosts(tb, filepath.Join(tb.TempDir(), "known_hosts"), lines...)
}

// LogPath is the file sshd logs to (-e), across every Run.
func (s *Server) LogPath() string { return s.logPath }

// Log is what sshd logged so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// WaitLog waits (at most 10 s) until sshd's log matches re, and returns the log.
func (s *Server) WaitLog(tb TB, re *regexp.Regexp) string {
	tb.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		log := s.Log()
		if re.MatchString(log) {
			return log
		}
		if time.Now().After(deadline) {
			tb.Fatalf("sshd log does not match %s:\n%s", re, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Sessions counts the sessions sshd started: a command ran after a successful login.
func (s *Server) Sessions() int {
	return strings.Count(s.Log(), "Starting session:")
}
