package sshtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// DefaultSSHD is where openssh-server installs sshd.
const DefaultSSHD = "/usr/sbin/sshd"

// RequireEnv is the environment variable that, set to "1", turns a missing sshd or
// ssh-keygen from a skip into a failure.
const RequireEnv = "CI_REQUIRE_SSHD"

// ErrNotInstalled is returned when sshd or ssh-keygen is not installed.
var ErrNotInstalled = errors.New("openssh-server is not installed")

// TB is the part of a test the helpers use: *testing.T and *testing.B have it, and a
// testscript command can wrap its *testscript.TestScript with a no-op Helper.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Check returns an error wrapping [ErrNotInstalled] that names what is missing, when sshd
// (at sshd, [DefaultSSHD] when empty) or ssh-keygen is not installed.
func Check(sshd string) error {
	if sshd == "" {
		sshd = DefaultSSHD
	}
	var missing []string
	if _, err := os.Stat(sshd); err != nil {
		missing = append(missing, sshd)
	}
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		missing = append(missing, "ssh-keygen")
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: missing %s", ErrNotInstalled, strings.Join(missing, " and "))
}

// Required reports whether CI_REQUIRE_SSHD=1: a missing sshd is then a failure, not a skip.
func Required() bool {
	return os.Getenv(RequireEnv) == "1"
}

// Condition answers a testscript condition such as [sshd]: true when sshd (at sshd,
// [DefaultSSHD] when empty) and ssh-keygen are installed; false (skip) when one is missing;
// and the [Check] error when one is missing and CI_REQUIRE_SSHD=1.
func Condition(sshd string) (bool, error) {
	err := Check(sshd)
	switch {
	case err == nil:
		return true, nil
	case Required():
		return false, fmt.Errorf("%s=1: %w", RequireEnv, err)
	default:
		return false, nil
	}
}

// Require skips the test when sshd or ssh-keygen is missing, or fails it when
// CI_REQUIRE_SSHD=1.
func Require(tb testing.TB) {
	tb.Helper()
	err := Check("")
	if err == nil {
		return
	}
	if Required() {
		tb.Fatalf("SSH transport tests need openssh-server: %v (%s=1)", err, RequireEnv)
	}
	tb.Skipf("SSH transport tests need openssh-server: %v", err)
}

// GenKey writes a new passphrase-less ed25519 key pair at path and path.pub and returns the
// public key as "ssh-ed25519 AAAA...", without its comment.
func GenKey(tb TB, path string) string {
	tb.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sshtest", "-f", path).CombinedOutput()
	if err != nil {
		tb.Fatalf("ssh-keygen %s: %v\n%s", path, err, out)
	}
	b, err := os.ReadFile(path + ".pub")
	if err != nil {
		tb.Fatalf("read public key: %v", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		tb.Fatalf("public key %s: %q", path, b)
	}
	return f[0] + " " + f[1]
}

// KeyLines returns the base64 body lines of a PEM-armoured private key (the lines of at least
// 16 characters that are not armour): the text that must never appear in a log or a message.
// It returns none for a text that is not a private key.
func KeyLines(privateKey string) []string {
	var lines []string
	for _, l := range strings.Split(privateKey, "\n") {
		if l = strings.TrimSpace(l); len(l) >= 16 && !strings.HasPrefix(l, "-----") {
			lines = append(lines, l)
		}
	}
	return lines
}

// WriteKnownHosts writes a known_hosts file at path with the given lines and returns path.
func WriteKnownHosts(tb TB, path string, lines ...string) string {
	tb.Helper()
	content := ""
	for _, l := range lines {
		content += l + "\n"
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatalf("write known_hosts: %v", err)
	}
	return path
}
