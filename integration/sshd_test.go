package integration_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// sshdPath is the OpenSSH server the SSH scenarios start; .ci/run installs it.
var sshdPath = "/usr/sbin/sshd"

// sshdCondition answers the scenario condition [sshd]: whether sshd and
// ssh-keygen are installed. When CI_REQUIRE_SSHD=1 a missing one is an
// error (the scenario fails instead of skipping).
func sshdCondition() (bool, error) {
	var missing []string
	if _, err := os.Stat(sshdPath); err != nil {
		missing = append(missing, sshdPath)
	}
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		missing = append(missing, "ssh-keygen")
	}
	if len(missing) == 0 {
		return true, nil
	}
	if os.Getenv("CI_REQUIRE_SSHD") == "1" {
		return false, fmt.Errorf("CI_REQUIRE_SSHD=1 but %s missing", strings.Join(missing, " and "))
	}
	return false, nil
}

// TestSSHDConditionRequired shows that a missing sshd skips the SSH
// scenarios, unless CI_REQUIRE_SSHD=1 makes it an error.
func TestSSHDConditionRequired(t *testing.T) {
	saved := sshdPath
	t.Cleanup(func() { sshdPath = saved })
	sshdPath = filepath.Join(t.TempDir(), "no-sshd")
	t.Setenv("CI_REQUIRE_SSHD", "")
	if ok, err := sshdCondition(); ok || err != nil {
		t.Fatalf("without sshd: got %v, %v; want false, nil (skip)", ok, err)
	}
	t.Setenv("CI_REQUIRE_SSHD", "1")
	if ok, err := sshdCondition(); ok || err == nil {
		t.Fatalf("without sshd and CI_REQUIRE_SSHD=1: got %v, %v; want an error", ok, err)
	}
}

// sshServer is a real OpenSSH server on 127.0.0.1 run from a scenario's
// work directory with its own config, host key and authorized keys.
type sshServer struct {
	ts   *testscript.TestScript
	dir  string // $WORK/ssh
	cfg  string
	log  string
	port string
	mark int64 // log offset of `sshd mark`
	stop func()
}

var sshServers sync.Map // *testscript.TestScript → *sshServer

// cmdSSHD starts, stops and inspects the scenario's sshd.
//
//	sshd start [NAME]   start it (the first time: generate keys and config)
//	sshd stop           stop it (connections included)
//	sshd mark           remember the log's current end
//	sshd log            print the log written since the mark
//
// The first start writes, in $WORK/ssh: id_good (authorized), id_wrong (not
// authorized), known_hosts (the server's host key), known_hosts_wrong
// (another key for the same host and port) and known_hosts_unknown (the
// right key listed for another host only). It sets SSHD_PORT, SSH_USER (the
// current OS user, the one sshd lets in), SSH_URL_PREFIX
// (ssh://USER@127.0.0.1:PORT), SSH_DIR, SSHD_LOG, and with NAME SSH_URL, the
// URL of the bare repository $WORK/srv/NAME.git. A scenario that uses it
// starts with `[!sshd] skip`.
func cmdSSHD(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: sshd start [NAME] | stop | mark | log")
	}
	v, running := sshServers.Load(ts)
	switch args[0] {
	case "start":
		if len(args) > 2 {
			ts.Fatalf("usage: sshd start [NAME]")
		}
		var s *sshServer
		if running {
			s = v.(*sshServer)
		} else {
			s = newSSHServer(ts)
			sshServers.Store(ts, s)
			ts.Defer(func() { s.stop(); sshServers.Delete(ts) })
		}
		s.start()
		if len(args) == 2 {
			ts.Setenv("SSH_URL", ts.Getenv("SSH_URL_PREFIX")+filepath.ToSlash(filepath.Join(ts.MkAbs("srv"), args[1]+".git")))
		}
	case "stop", "mark", "log":
		if !running {
			ts.Fatalf("sshd %s: no sshd started", args[0])
		}
		s := v.(*sshServer)
		switch args[0] {
		case "stop":
			s.stop()
		case "mark":
			st, err := os.Stat(s.log)
			ts.Check(err)
			s.mark = st.Size()
		default:
			b, err := os.ReadFile(s.log)
			ts.Check(err)
			fmt.Fprint(ts.Stdout(), string(b[min(s.mark, int64(len(b))):]))
		}
	default:
		ts.Fatalf("usage: sshd start [NAME] | stop | mark | log")
	}
}

// newSSHServer generates the keys, the known_hosts files and sshd_config.
func newSSHServer(ts *testscript.TestScript) *sshServer {
	u, err := user.Current()
	ts.Check(err)
	dir := ts.MkAbs("ssh")
	ts.Check(os.MkdirAll(dir, 0o700))
	for _, k := range []string{"host", "host_other", "id_good", "id_wrong"} {
		keygen(ts, filepath.Join(dir, k), k)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	hostPub := readPub(ts, filepath.Join(dir, "host.pub"))
	otherPub := readPub(ts, filepath.Join(dir, "host_other.pub"))
	writeFile(ts, filepath.Join(dir, "known_hosts"), fmt.Sprintf("[127.0.0.1]:%s %s\n", port, hostPub))
	writeFile(ts, filepath.Join(dir, "known_hosts_wrong"), fmt.Sprintf("[127.0.0.1]:%s %s\n", port, otherPub))
	writeFile(ts, filepath.Join(dir, "known_hosts_unknown"), fmt.Sprintf("[127.0.0.2]:%s %s\n", port, hostPub))
	writeFile(ts, filepath.Join(dir, "authorized_keys"), readPub(ts, filepath.Join(dir, "id_good.pub"))+"\n")
	s := &sshServer{ts: ts, dir: dir, cfg: filepath.Join(dir, "sshd_config"), log: filepath.Join(dir, "sshd.log"), port: port, stop: func() {}}
	writeFile(ts, s.cfg, fmt.Sprintf(`ListenAddress 127.0.0.1
Port %s
HostKey %s
AuthorizedKeysFile %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
UseDNS no
PrintMotd no
PidFile %s
LogLevel VERBOSE
`, port, filepath.Join(dir, "host"), filepath.Join(dir, "authorized_keys"), filepath.Join(dir, "sshd.pid")))
	// Privilege separation needs this directory; a fresh container lacks it.
	_ = os.MkdirAll("/run/sshd", 0o755)
	out, err := exec.Command(sshdPath, "-t", "-f", s.cfg).CombinedOutput()
	if err != nil {
		ts.Fatalf("sshd -t: %v: %s", err, out)
	}
	ts.Setenv("SSHD_PORT", port)
	ts.Setenv("SSH_USER", u.Username)
	ts.Setenv("SSH_URL_PREFIX", "ssh://"+u.Username+"@127.0.0.1:"+port)
	ts.Setenv("SSH_DIR", dir)
	ts.Setenv("SSHD_LOG", s.log)
	return s
}

// start runs sshd -D -e in its own process group and waits until it listens.
func (s *sshServer) start() {
	s.stop()
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	s.ts.Check(err)
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", s.cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	// sshd forks a child per connection: the group is killed whole.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.ts.Check(cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			logf.Close()
		})
	}
	waitUntil(s.ts, "sshd to listen on port "+s.port, func() bool {
		select {
		case <-exited:
			b, _ := os.ReadFile(s.log)
			s.ts.Fatalf("sshd exited: %s", b)
		default:
		}
		c, err := net.Dial("tcp", "127.0.0.1:"+s.port)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func keygen(ts *testscript.TestScript, path, comment string) {
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path).CombinedOutput()
	if err != nil {
		ts.Fatalf("ssh-keygen %s: %v: %s", path, err, out)
	}
}

func readPub(ts *testscript.TestScript, path string) string {
	b, err := os.ReadFile(path)
	ts.Check(err)
	return strings.TrimSpace(string(b))
}

func writeFile(ts *testscript.TestScript, path, content string) {
	ts.Check(os.WriteFile(path, []byte(content), 0o600))
}

// cmdNoKeyMaterial fails if any line of a private key's body (or the key's
// whole text) appears in one of the files; it prints how much it checked.
//
//	nokeymaterial KEYFILE FILE...
func cmdNoKeyMaterial(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: nokeymaterial KEYFILE FILE...")
	}
	needles, err := keyLines(ts.ReadFile(args[0]))
	ts.Check(err)
	var found []string
	for _, f := range args[1:] {
		b, err := os.ReadFile(ts.MkAbs(f))
		ts.Check(err)
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				found = append(found, fmt.Sprintf("%s contains %.12s...", f, n))
			}
		}
	}
	if len(found) > 0 {
		if neg {
			fmt.Fprintf(ts.Stdout(), "key material found: %s\n", strings.Join(found, "; "))
			return
		}
		ts.Fatalf("private key material of %s leaked: %s", args[0], strings.Join(found, "; "))
	}
	if neg {
		ts.Fatalf("no key material of %s found in %s", args[0], strings.Join(args[1:], " "))
	}
	fmt.Fprintf(ts.Stdout(), "%d lines of %s: none in %s\n", len(needles), args[0], strings.Join(args[1:], " "))
}

// keyLines returns the base64 body lines of a PEM-armoured private key.
func keyLines(key string) ([]string, error) {
	var lines []string
	for _, l := range strings.Split(key, "\n") {
		l = strings.TrimSpace(l)
		if len(l) >= 16 && !strings.HasPrefix(l, "-----") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return nil, errors.New("no key body lines")
	}
	return lines, nil
}
