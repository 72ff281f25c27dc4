package syncer_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/rs/zerolog"
	"github.com/sre-tools/deployer/syncer"
)

const sshdPath = "/usr/sbin/sshd"

// sshServer is a real sshd on 127.0.0.1 serving git-upload-pack and git-receive-pack of any
// repository by absolute path, to the keys in its authorized_keys file.
type sshServer struct {
	dir     string
	port    int
	user    string
	hostPub string // the server's host key, "ssh-ed25519 AAAA..."
	key     string // a client private key that is authorized
	cmd     *exec.Cmd
	logPath string // sshd's stderr (-e): written directly by sshd and its children
	exited  chan struct{}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// requireSSHTools skips the test when sshd or ssh-keygen is missing, or fails it when
// CI_REQUIRE_SSHD=1 (.ci/run installs openssh-server).
func requireSSHTools(t *testing.T) {
	t.Helper()
	var missing []string
	if _, err := os.Stat(sshdPath); err != nil {
		missing = append(missing, sshdPath)
	}
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		missing = append(missing, "ssh-keygen")
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("SSH transport tests need openssh-server: missing %s", strings.Join(missing, ", "))
	if os.Getenv("CI_REQUIRE_SSHD") == "1" {
		t.Fatal(msg + " (CI_REQUIRE_SSHD=1)")
	}
	t.Skip(msg)
}

// genKey writes a new passphrase-less ed25519 key pair at path and path.pub and returns the
// public key line without its comment.
func genKey(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen %s: %v\n%s", path, err, out)
	}
	f := strings.Fields(readFile(t, path+".pub"))
	if len(f) < 2 {
		t.Fatalf("public key %s: %q", path, f)
	}
	return f[0] + " " + f[1]
}

// startSSHD starts sshd in the foreground from a temporary directory on a free port, with a
// generated host key and one authorized client key (s.key), and extra lines of sshd_config.
// It is killed at cleanup.
func startSSHD(t *testing.T, extra ...string) *sshServer {
	t.Helper()
	requireSSHTools(t)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	// Privilege separation directory; sshd refuses to start as root without it.
	if os.Geteuid() == 0 {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("create /run/sshd: %v", err)
		}
	}
	dir := t.TempDir()
	s := &sshServer{dir: dir, port: freePort(t), user: u.Username, logPath: filepath.Join(dir, "sshd.log"), exited: make(chan struct{})}
	s.hostPub = genKey(t, filepath.Join(dir, "host_ed25519"))
	s.key = filepath.Join(dir, "client_ed25519")
	clientPub := genKey(t, s.key)
	// The session's PATH must find git-upload-pack and git-receive-pack, wherever git is.
	path := filepath.Dir(gitPath) + ":" + strings.TrimSpace(gitRun(t, dir, "--exec-path")) + ":/usr/bin:/bin"
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, []byte(fmt.Sprintf("environment=\"PATH=%s\" %s test\n", path, clientPub)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sshd_config")
	conf := strings.Join([]string{
		"ListenAddress 127.0.0.1",
		fmt.Sprintf("Port %d", s.port),
		"HostKey " + filepath.Join(dir, "host_ed25519"),
		"AuthorizedKeysFile " + authorized,
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"PermitUserEnvironment PATH",
		"StrictModes no",
		"UsePAM no",
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"LogLevel VERBOSE",
	}, "\n") + "\n" + strings.Join(append(extra, ""), "\n")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(sshdPath, "-D", "-e", "-f", cfg)
	// A file, not a pipe: each sshd process writes its lines itself, so a line logged before
	// sshd answered the client is in the file when the client call returns.
	logFile, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	s.cmd.Stderr = logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // sshd forks a child per connection
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.log())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-s.exited:
			t.Fatalf("sshd exited at start: %s\n%s", s.cmd.ProcessState, s.log())
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), time.Second)
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen on port %d: %v\n%s", s.port, err, s.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// log is what sshd logged so far.
func (s *sshServer) log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// waitLog waits (at most 10 s) until sshd's log matches re, and returns the log.
func (s *sshServer) waitLog(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		log := s.log()
		if re.MatchString(log) {
			return log
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd log does not match %s:\n%s", re, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sessions counts the sessions sshd started (a command ran after a successful login).
func (s *sshServer) sessions() int {
	return strings.Count(s.log(), "Starting session:")
}

// noNewSession fails when sshd started a session since it counted n: a refused connection
// must never get as far as running git on the server.
func (s *sshServer) noNewSession(t *testing.T, n int) {
	t.Helper()
	if got := s.sessions(); got != n {
		t.Fatalf("sshd started %d session(s) for a connection that should have been refused:\n%s", got-n, s.log())
	}
}

// url is the ssh:// URL of the repository at the absolute path bare.
func (s *sshServer) url(bare string) string {
	return fmt.Sprintf("ssh://%s@127.0.0.1:%d%s", s.user, s.port, bare)
}

// knownHosts writes a known_hosts file with the given lines and returns its path.
func (s *sshServer) knownHosts(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "known_hosts")
	content := ""
	for _, l := range lines {
		content += l + "\n"
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// hostLine is a known_hosts line giving key for this server's address.
func (s *sshServer) hostLine(key string) string {
	return fmt.Sprintf("[127.0.0.1]:%d %s", s.port, key)
}

// auth builds the credentials the way the daemon does (cmd/deployer repoAuth): a key file and
// a known_hosts file.
func (s *sshServer) auth(t *testing.T, keyFile, knownHosts string) *gitssh.PublicKeys {
	t.Helper()
	keys, err := gitssh.NewPublicKeysFromFile(s.user, keyFile, "")
	if err != nil {
		t.Fatalf("ssh key %s: %v", keyFile, err)
	}
	cb, err := gitssh.NewKnownHostsCallback(knownHosts)
	if err != nil {
		t.Fatalf("known hosts %s: %v", knownHosts, err)
	}
	keys.HostKeyCallback = cb
	return keys
}

// gitSSH runs the git CLI in dir over ssh with key and the server's host key pinned.
func (s *sshServer) gitSSH(t *testing.T, dir, key string, args ...string) string {
	t.Helper()
	kh := s.knownHosts(t, s.hostLine(s.hostPub))
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Human", "GIT_AUTHOR_EMAIL=human@example.com",
		"GIT_COMMITTER_NAME=Human", "GIT_COMMITTER_EMAIL=human@example.com",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+os.TempDir(), "GIT_TERMINAL_PROMPT=0",
		fmt.Sprintf("GIT_SSH_COMMAND=ssh -F /dev/null -i %s -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=%s", key, kh))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s over ssh: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// sshFixture is a fixture whose remote is served by s, and a logger that records everything.
func sshFixture(t *testing.T, s *sshServer, auth *gitssh.PublicKeys, logs *syncBuffer) (*fixture, syncer.Options) {
	t.Helper()
	f := newFixture(t)
	gitRun(t, f.bare, "config", "receive.denyNonFastForwards", "true")
	opts := f.options()
	opts.URL = s.url(f.bare)
	opts.Auth = auth
	opts.Logger = zerolog.New(logs)
	return f, opts
}

// snapshot is everything in a checkout that a failed sync must leave alone.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	return gitRun(t, dir, "for-each-ref", "--format=%(refname) %(objectname)") + "\nHEAD " +
		gitRun(t, dir, "rev-parse", "HEAD") + "\n" + gitRun(t, dir, "status", "--porcelain", "--untracked-files=all")
}

// noKeyMaterial fails when any text contains a line of the private key file.
func noKeyMaterial(t *testing.T, keyFile string, texts ...string) {
	t.Helper()
	var secret []string
	for _, l := range strings.Split(readFile(t, keyFile), "\n") {
		if l = strings.TrimSpace(l); len(l) >= 16 && !strings.HasPrefix(l, "-----") {
			secret = append(secret, l)
		}
	}
	if len(secret) == 0 {
		t.Fatalf("no key lines read from %s", keyFile)
	}
	for _, text := range texts {
		for _, l := range secret {
			if strings.Contains(text, l) {
				t.Fatalf("private key material %q appears in: %s", l, text)
			}
		}
	}
}

// fingerprint is the SHA256 fingerprint of the public key of keyFile, as sshd logs it.
func fingerprint(t *testing.T, keyFile string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-l", "-E", "sha256", "-f", keyFile+".pub").CombinedOutput()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 2 || !strings.HasPrefix(f[1], "SHA256:") {
		t.Fatalf("ssh-keygen -l %s: %v\n%s", keyFile, err, out)
	}
	return f[1]
}

// errTexts is the text an operator sees of err: its message and the Detail of its *Error.
func errTexts(err error) []string {
	if err == nil {
		return nil
	}
	texts := []string{err.Error()}
	var e *syncer.Error
	if errors.As(err, &e) {
		texts = append(texts, e.Detail)
	}
	return texts
}

// TestSSHGoodKey clones, syncs and writes back over ssh:// with the daemon's kind of
// credentials (key file and known_hosts file holding the server's host key), against a real
// sshd; the human pushes over ssh with the git CLI.
func TestSSHGoodKey(t *testing.T) {
	s := startSSHD(t)
	logs := &syncBuffer{}
	auth := s.auth(t, s.key, s.knownHosts(t, s.hostLine(s.hostPub)))
	f, opts := sshFixture(t, s, auth, logs)

	r := f.open(opts)
	checkHealthy(t, f.dir, f.tip())
	if got := gitRun(t, f.dir, "config", "remote.origin.url"); got != s.url(f.bare) {
		t.Fatalf("checkout remote: got %s, want %s", got, s.url(f.bare))
	}
	known := f.tip()

	// the human pushes over ssh with the git CLI
	f.write("instances/a.xml", "<instance name=\"a\" version=\"7\"/>\n")
	want := f.commit("human: a v7")
	s.gitSSH(t, f.human, s.key, "push", "-q", s.url(f.bare), "main")
	if f.tip() != want {
		t.Fatalf("human push over ssh: remote at %s, want %s", f.tip(), want)
	}
	res, err := r.Sync(ctxT(t), known)
	if err != nil || res.State != syncer.StateBehind || res.Head != want || res.Upstream != want {
		t.Fatalf("sync over ssh: %+v, %v; want behind → %s", res, err, want)
	}
	checkHealthy(t, f.dir, want)
	if got := readFile(t, filepath.Join(f.dir, "instances/a.xml")); !strings.Contains(got, `version="7"`) {
		t.Fatalf("a.xml after sync: %q", got)
	}

	out, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/b.xml", "version", "1", "2")}, 3)
	if err != nil {
		t.Fatalf("write-back over ssh: %v", err)
	}
	wantStatuses(t, out, syncer.OutcomeLanded)
	if out[0].Commit != f.tip() || r.Head() != f.tip() {
		t.Fatalf("write-back: outcome %s, remote %s, head %s", out[0].Commit, f.tip(), r.Head())
	}
	if got := gitRun(t, f.bare, "show", "main:instances/b.xml"); got != `<instance name="b" version="2"/>` {
		t.Fatalf("b.xml on the remote: %q", got)
	}
	// the remote moved on another file between our sync and our push: re-applied, lands
	gitRun(t, f.human, "pull", "-q", "--ff-only", "origin", "main")
	f.push("instances/a.xml", "<instance name=\"a\" version=\"8\"/>\n", "human: a v8")
	out, err = r.WriteBack(ctxT(t), []syncer.Change{change("c2", "deployer.xml", "version", "1", "2")}, 5)
	if err != nil {
		t.Fatalf("write-back after the remote moved: %v", err)
	}
	wantStatuses(t, out, syncer.OutcomeLanded)
	if out[0].Attempts != 2 {
		t.Fatalf("write-back after the remote moved: %d attempts, want 2", out[0].Attempts)
	}
	checkHealthy(t, f.dir, f.tip())
	gitRun(t, f.bare, "fsck", "--strict", "--no-progress")
	checkLinear(t, f.bare, 5) // initial, a v7, c1, a v8, c2
	s.waitLog(t, regexp.MustCompile(`Accepted publickey for `+regexp.QuoteMeta(s.user)+` from .* `+regexp.QuoteMeta(fingerprint(t, s.key))))
	noKeyMaterial(t, s.key, logs.String())
}

// TestSSHRefusedIsAuthFailed: a key the server does not know, a host key that differs from the
// pinned one, and an empty known_hosts file each end as auth-failed on clone, on sync and on
// push, never accepted silently, leaving the checkout as it was.
func TestSSHRefusedIsAuthFailed(t *testing.T) {
	s := startSSHD(t)
	keys := t.TempDir()
	wrongKey := filepath.Join(keys, "wrong_ed25519")
	genKey(t, wrongKey)
	otherHost := genKey(t, filepath.Join(keys, "other_host_ed25519"))
	good := s.knownHosts(t, s.hostLine(s.hostPub))

	for _, tc := range []struct {
		name       string
		key        string
		knownHosts string
		why        string // in the error text
	}{
		{"wrong key", wrongKey, good, "unable to authenticate"},
		{"host key mismatch", s.key, s.knownHosts(t, s.hostLine(otherHost)), "knownhosts: key mismatch"},
		{"empty known_hosts", s.key, s.knownHosts(t), "knownhosts: key is unknown"},
		{"host known on another port", s.key, s.knownHosts(t, fmt.Sprintf("[127.0.0.1]:%d %s", s.port+1, s.hostPub)), "knownhosts: key is unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuffer{}
			bad := s.auth(t, tc.key, tc.knownHosts)
			f, opts := sshFixture(t, s, bad, logs)
			var seen []string

			// clone
			sessions := s.sessions()
			_, err := syncer.Open(ctxT(t), opts)
			if syncer.KindOf(err) != syncer.KindAuth || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("clone: got %v (kind %q), want auth-failed with %q", err, syncer.KindOf(err), tc.why)
			}
			seen = append(seen, errTexts(err)...)
			s.noNewSession(t, sessions)
			if ents, _ := os.ReadDir(f.dir); len(ents) != 0 {
				t.Fatalf("a refused clone left %d entries in %s", len(ents), f.dir)
			}

			// sync of a checkout made with good credentials, after an upstream commit
			goodOpts := opts
			goodOpts.Auth = s.auth(t, s.key, good)
			first := f.open(goodOpts)
			known := first.Head()
			_ = first.Close()
			r := f.open(opts)
			upstream := f.push("instances/a.xml", "<instance name=\"a\" version=\"2\"/>\n", "human: a v2")
			before := snapshot(t, f.dir)
			sessions = s.sessions()
			res, err := r.Sync(ctxT(t), known)
			if syncer.KindOf(err) != syncer.KindAuth || res.State != syncer.StateAuth || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("sync: %+v, %v (kind %q); want auth-failed with %q", res, err, syncer.KindOf(err), tc.why)
			}
			seen = append(seen, errTexts(err)...)
			s.noNewSession(t, sessions)
			if after := snapshot(t, f.dir); after != before {
				t.Fatalf("a refused sync changed the checkout:\nbefore %s\nafter  %s", before, after)
			}
			checkHealthy(t, f.dir, known)

			// push
			sessions = s.sessions()
			out, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/b.xml", "version", "1", "2")}, 3)
			if syncer.KindOf(err) != syncer.KindAuth || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("push: got %v (kind %q), want auth-failed with %q", err, syncer.KindOf(err), tc.why)
			}
			wantStatuses(t, out, syncer.OutcomePending)
			if out[0].Attempts != 1 {
				t.Fatalf("push: %d attempts, want 1 (retrying does not fix keys)", out[0].Attempts)
			}
			seen = append(seen, errTexts(err)...)
			s.noNewSession(t, sessions)
			if f.tip() != upstream {
				t.Fatalf("a refused push moved the remote to %s, want %s", f.tip(), upstream)
			}
			gitRun(t, f.dir, "fsck", "--strict", "--no-progress")
			gitRun(t, f.bare, "fsck", "--strict", "--no-progress")
			if tc.key == wrongKey {
				fp := regexp.QuoteMeta(fingerprint(t, wrongKey))
				log := s.waitLog(t, regexp.MustCompile(`Failed publickey for \S+ from .* `+fp))
				if regexp.MustCompile(`Accepted publickey for \S+ from .* ` + fp).MatchString(log) {
					t.Fatalf("sshd accepted the wrong key:\n%s", log)
				}
			}
			noKeyMaterial(t, tc.key, append(seen, logs.String())...)
			noKeyMaterial(t, s.key, append(seen, logs.String())...)
		})
	}
}

// TestSSHPushDeclinedByHook: a pre-receive hook that declines a push over ssh is push-rejected
// with the server's message, without retry, and the checkout returns to upstream.
func TestSSHPushDeclinedByHook(t *testing.T) {
	s := startSSHD(t)
	logs := &syncBuffer{}
	f, opts := sshFixture(t, s, s.auth(t, s.key, s.knownHosts(t, s.hostLine(s.hostPub))), logs)
	r := f.open(opts)
	installHook(t, f.bare, "pre-receive", `echo "main is frozen by the change board" >&2; exit 1`)
	tip := f.tip()

	out, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/a.xml", "version", "1", "2")}, 3)
	var e *syncer.Error
	if !errors.Is(err, syncer.ErrRejected) || !errors.As(err, &e) || e.Kind != syncer.KindRejected {
		t.Fatalf("declined over ssh: got %v (kind %q), want push-rejected", err, syncer.KindOf(err))
	}
	if !strings.Contains(e.Detail, "frozen by the change board") {
		t.Fatalf("declined detail lacks the server message: %q", e.Detail)
	}
	wantStatuses(t, out, syncer.OutcomeRejected)
	if out[0].Attempts != 1 || !errors.Is(out[0].Err, syncer.ErrRejected) {
		t.Fatalf("rejected outcome: %+v, want 1 attempt and ErrRejected", out[0])
	}
	if f.tip() != tip {
		t.Fatalf("remote moved to %s", f.tip())
	}
	checkHealthy(t, f.dir, tip)
	gitRun(t, f.bare, "fsck", "--strict", "--no-progress")
	noKeyMaterial(t, s.key, append(errTexts(err), logs.String())...)
}

// TestSSHServerOverloadedIsUnreachable: an sshd past its MaxStartups drops new connections
// before the key exchange ("ssh: handshake failed: EOF"). That is a busy server, not refused
// credentials: remote-unreachable (retried), not auth-failed; once the server has room the
// next sync works.
func TestSSHServerOverloadedIsUnreachable(t *testing.T) {
	s := startSSHD(t, "MaxStartups 1")
	logs := &syncBuffer{}
	f, opts := sshFixture(t, s, s.auth(t, s.key, s.knownHosts(t, s.hostLine(s.hostPub))), logs)
	r := f.open(opts)
	known := r.Head()
	upstream := f.push("instances/a.xml", "<instance name=\"a\" version=\"2\"/>\n", "human: a v2")

	// one unauthenticated connection that never finishes its handshake fills MaxStartups
	hold, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.port))
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	if _, err := hold.Read(make([]byte, 64)); err != nil { // sshd's banner: it counts us now
		t.Fatal(err)
	}
	before := snapshot(t, f.dir)
	res, err := r.Sync(ctxT(t), known)
	if syncer.KindOf(err) != syncer.KindUnreachable || res.State != syncer.StateUnreachable {
		t.Fatalf("sync against a full sshd: %+v, %v (kind %q); want remote-unreachable", res, err, syncer.KindOf(err))
	}
	s.waitLog(t, regexp.MustCompile(`past MaxStartups`))
	if after := snapshot(t, f.dir); after != before {
		t.Fatalf("a failed sync changed the checkout:\nbefore %s\nafter  %s", before, after)
	}
	clone := opts
	clone.Dir = filepath.Join(t.TempDir(), "clone")
	if _, err := syncer.Open(ctxT(t), clone); syncer.KindOf(err) != syncer.KindUnreachable {
		t.Fatalf("clone from a full sshd: got %v (kind %q), want remote-unreachable", err, syncer.KindOf(err))
	}

	hold.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err = r.Sync(ctxT(t), known)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // sshd notices the closed connection
	}
	if err != nil || res.State != syncer.StateBehind || res.Head != upstream {
		t.Fatalf("sync once sshd has room: %+v, %v; want behind → %s", res, err, upstream)
	}
	checkHealthy(t, f.dir, upstream)
}

// With no known_hosts file configured and none in the default places, the host key cannot be
// checked: that is auth-failed (fix the config), never internal and never accepted.
func TestSSHNoKnownHostsIsAuthFailed(t *testing.T) {
	s := startSSHD(t)
	for _, f := range []string{"/etc/ssh/ssh_known_hosts"} {
		if _, err := os.Stat(f); err == nil {
			t.Skipf("%s exists on this machine: go-git would use it", f)
		}
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSH_KNOWN_HOSTS", "")
	keys, err := gitssh.NewPublicKeysFromFile(s.user, s.key, "")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	f, opts := sshFixture(t, s, keys, logs)
	sessions := s.sessions()
	_, err = syncer.Open(ctxT(t), opts)
	if syncer.KindOf(err) != syncer.KindAuth || !strings.Contains(err.Error(), "known_hosts") {
		t.Fatalf("clone without any known_hosts: got %v (kind %q), want auth-failed naming known_hosts", err, syncer.KindOf(err))
	}
	s.noNewSession(t, sessions)
	if ents, _ := os.ReadDir(f.dir); len(ents) != 0 {
		t.Fatalf("a refused clone left %d entries in %s", len(ents), f.dir)
	}
	noKeyMaterial(t, s.key, append(errTexts(err), logs.String())...)
}
