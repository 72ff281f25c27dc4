package integration_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/sre-tools/deployer/syncer/sshtest"
)

// sshdPath is the OpenSSH server the SSH scenarios start; .ci/run installs it.
var sshdPath = sshtest.DefaultSSHD

// sshdCondition answers the scenario condition [sshd]: whether sshd and
// ssh-keygen are installed. When CI_REQUIRE_SSHD=1 a missing one is an
// error (the scenario fails instead of skipping).
func sshdCondition() (bool, error) {
	return sshtest.Condition(sshdPath)
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

// sshServer is the scenario's sshd (package sshtest), run from its work
// directory, and the log offset of `sshd mark`.
type sshServer struct {
	*sshtest.Server
	mark int64
}

// scriptTB lets the sshtest helpers fail the scenario.
type scriptTB struct{ *testscript.TestScript }

func (scriptTB) Helper() {}

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
			ts.Defer(func() { s.Stop(); sshServers.Delete(ts) })
		}
		s.Run(scriptTB{ts})
		if len(args) == 2 {
			ts.Setenv("SSH_URL", s.URL(filepath.Join(ts.MkAbs("srv"), args[1]+".git")))
		}
	case "stop", "mark", "log":
		if !running {
			ts.Fatalf("sshd %s: no sshd started", args[0])
		}
		s := v.(*sshServer)
		switch args[0] {
		case "stop":
			s.Stop()
		case "mark":
			st, err := os.Stat(s.LogPath())
			ts.Check(err)
			s.mark = st.Size()
		default:
			b, err := os.ReadFile(s.LogPath())
			ts.Check(err)
			fmt.Fprint(ts.Stdout(), string(b[min(s.mark, int64(len(b))):]))
		}
	default:
		ts.Fatalf("usage: sshd start [NAME] | stop | mark | log")
	}
}

// newSSHServer generates the server, the keys and the known_hosts files in
// $WORK/ssh and sets the scenario's SSH variables.
func newSSHServer(ts *testscript.TestScript) *sshServer {
	tb := scriptTB{ts}
	dir := ts.MkAbs("ssh")
	srv := sshtest.New(tb, sshtest.Options{Dir: dir, SSHD: sshdPath, ClientKey: "id_good"})
	sshtest.GenKey(tb, filepath.Join(dir, "id_wrong"))
	otherPub := sshtest.GenKey(tb, filepath.Join(dir, "host_other"))
	sshtest.WriteKnownHosts(tb, filepath.Join(dir, "known_hosts"), srv.HostLine(srv.HostPub()))
	sshtest.WriteKnownHosts(tb, filepath.Join(dir, "known_hosts_wrong"), srv.HostLine(otherPub))
	sshtest.WriteKnownHosts(tb, filepath.Join(dir, "known_hosts_unknown"), fmt.Sprintf("[127.0.0.2]:%d %s", srv.Port(), srv.HostPub()))
	ts.Setenv("SSHD_PORT", strconv.Itoa(srv.Port()))
	ts.Setenv("SSH_USER", srv.User())
	ts.Setenv("SSH_URL_PREFIX", srv.URL(""))
	ts.Setenv("SSH_DIR", dir)
	ts.Setenv("SSHD_LOG", srv.LogPath())
	return &sshServer{Server: srv}
}

// cmdNoKeyMaterial fails if any line of a private key's body (or the key's
// whole text) appears in one of the files; it prints how much it checked.
//
//	nokeymaterial KEYFILE FILE...
func cmdNoKeyMaterial(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: nokeymaterial KEYFILE FILE...")
	}
	needles := sshtest.KeyLines(ts.ReadFile(args[0]))
	if len(needles) == 0 {
		ts.Fatalf("%s: no key body lines", args[0])
	}
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
