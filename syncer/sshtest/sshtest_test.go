package sshtest_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/syncer/sshtest"
)

// sshTo runs the ssh client against s with key and known_hosts, and returns its output.
func sshTo(t *testing.T, s *sshtest.Server, key, knownHosts string, command ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client")
	}
	args := append([]string{"-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + knownHosts,
		"-p", strings.TrimPrefix(s.Addr(), "127.0.0.1:"), s.User() + "@127.0.0.1"}, command...)
	out, err := exec.Command("ssh", args...).CombinedOutput()
	return string(out), err
}

// The authorized key logs in, finds git-upload-pack on the session's PATH and counts as one
// session; another key is refused and starts none.
func TestServerAcceptsOnlyItsKey(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	kh := s.KnownHosts(t, s.HostLine(s.HostPub()))
	out, err := sshTo(t, s, s.Key(), kh, "command", "-v", "git-upload-pack")
	if err != nil || !strings.Contains(out, "git-upload-pack") {
		t.Fatalf("ssh with the client key: %v\n%s", err, out)
	}
	s.WaitLog(t, regexp.MustCompile(`Accepted publickey for `+regexp.QuoteMeta(s.User())))
	if got := s.Sessions(); got != 1 {
		t.Fatalf("sessions: got %d, want 1", got)
	}

	wrong := filepath.Join(t.TempDir(), "wrong")
	sshtest.GenKey(t, wrong)
	if out, err := sshTo(t, s, wrong, kh, "true"); err == nil {
		t.Fatalf("ssh with an unknown key logged in:\n%s", out)
	}
	s.WaitLog(t, regexp.MustCompile(`Failed publickey for `))
	if got := s.Sessions(); got != 1 {
		t.Fatalf("sessions after a refused key: got %d, want 1", got)
	}
	if got, want := s.URL("/srv/a.git"), "ssh://"+s.User()+"@"+s.Addr()+"/srv/a.git"; got != want {
		t.Fatalf("URL: got %s, want %s", got, want)
	}
}

// Run after Stop serves again on the same port with the same keys, appending to the log;
// extra configuration lines reach sshd_config.
func TestServerRestarts(t *testing.T) {
	sshtest.Require(t)
	dir := filepath.Join(t.TempDir(), "ssh")
	s := sshtest.New(t, sshtest.Options{Dir: dir, ClientKey: "id_good", Config: []string{"MaxStartups 3"}})
	defer s.Stop()
	if s.Key() != filepath.Join(dir, "id_good") || s.Dir() != dir {
		t.Fatalf("key %s in %s, want id_good in %s", s.Key(), s.Dir(), dir)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "sshd_config"))
	if err != nil || !strings.Contains(string(cfg), "\nMaxStartups 3\n") {
		t.Fatalf("sshd_config lacks the extra line: %v\n%s", err, cfg)
	}
	kh := sshtest.WriteKnownHosts(t, filepath.Join(dir, "known_hosts"), s.HostLine(s.HostPub()))
	for i := range 2 {
		s.Run(t)
		if out, err := sshTo(t, s, s.Key(), kh, "true"); err != nil {
			t.Fatalf("run %d: ssh: %v\n%s", i+1, err, out)
		}
		s.Stop()
		if out, err := sshTo(t, s, s.Key(), kh, "true"); err == nil {
			t.Fatalf("run %d: ssh after Stop logged in:\n%s", i+1, out)
		}
	}
	if got := strings.Count(s.Log(), "Accepted publickey"); got != 2 {
		t.Fatalf("log across two runs: %d logins, want 2\n%s", got, s.Log())
	}
}

// A missing sshd is a skip, or an error under CI_REQUIRE_SSHD=1.
func TestCondition(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-sshd")
	if err := sshtest.Check(missing); !errors.Is(err, sshtest.ErrNotInstalled) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Check(missing): got %v, want ErrNotInstalled naming %s", err, missing)
	}
	t.Setenv(sshtest.RequireEnv, "")
	if ok, err := sshtest.Condition(missing); ok || err != nil {
		t.Fatalf("without sshd: got %v, %v; want false, nil (skip)", ok, err)
	}
	t.Setenv(sshtest.RequireEnv, "1")
	if ok, err := sshtest.Condition(missing); ok || !errors.Is(err, sshtest.ErrNotInstalled) {
		t.Fatalf("without sshd and CI_REQUIRE_SSHD=1: got %v, %v; want ErrNotInstalled", ok, err)
	}
}

func TestKeyLines(t *testing.T) {
	sshtest.Require(t)
	key := filepath.Join(t.TempDir(), "k")
	sshtest.GenKey(t, key)
	b, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	lines := sshtest.KeyLines(string(b))
	if len(lines) == 0 {
		t.Fatalf("no body lines in %s", b)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "-----") || !strings.Contains(string(b), l) {
			t.Fatalf("line %q is armour or not in the key", l)
		}
	}
	if got := sshtest.KeyLines("-----BEGIN OPENSSH PRIVATE KEY-----\nshort\n-----END OPENSSH PRIVATE KEY-----\n"); len(got) != 0 {
		t.Fatalf("KeyLines of armour and a short line: %q", got)
	}
}
