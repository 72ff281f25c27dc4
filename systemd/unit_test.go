package systemd_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// unitFile is the unit shipped in this directory.
const unitFile = "deployer.service"

// maxExposure is the acceptance bar of issue 8.
const maxExposure = 2.0

func TestUnitVerify(t *testing.T) {
	analyze := systemdAnalyze(t)
	// verify checks that ExecStart exists; /usr/local/bin/deployer is not
	// installed here, so check a copy that starts a binary that is.
	bin, err := exec.LookPath("true")
	if err != nil {
		t.Skipf("no 'true' binary to stand in for the daemon: %v", err)
	}
	data := readUnit(t)
	execStart := regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/deployer `)
	if n := len(execStart.FindAllIndex(data, -1)); n != 1 {
		t.Fatalf("got %d ExecStart=/usr/local/bin/deployer lines, want 1", n)
	}
	copyPath := filepath.Join(t.TempDir(), unitFile)
	if err := os.WriteFile(copyPath, execStart.ReplaceAll(data, []byte("ExecStart="+bin+" ")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	t.Logf("systemd-analyze verify %s (ExecStart=%s):\n%s", copyPath, bin, out)
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Warnings about other units on this host are not ours to fix.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, unitFile) {
			t.Errorf("systemd-analyze verify complains about the unit: %s", line)
		}
	}
}

func TestUnitSecurityExposure(t *testing.T) {
	analyze := systemdAnalyze(t)
	path, err := filepath.Abs(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	got := exposure(t, analyze, path)
	t.Logf("systemd-analyze security --offline=true %s: overall exposure %.1f (want <= %.1f)", unitFile, got, maxExposure)
	if got > maxExposure {
		out, _ := exec.Command(analyze, "security", "--offline=true", path).CombinedOutput()
		t.Errorf("overall exposure %.1f, want <= %.1f\n%s", got, maxExposure, out)
	}

	// The same check on a unit with no sandbox must fail it, or the
	// figure above proves nothing.
	bare := filepath.Join(t.TempDir(), "bare.service")
	if err := os.WriteFile(bare, []byte("[Service]\nExecStart=/bin/true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b := exposure(t, analyze, bare); b <= maxExposure {
		t.Errorf("a unit without hardening scores %.1f, want > %.1f: the parsing or the check is broken", b, maxExposure)
	} else {
		t.Logf("a unit without hardening scores %.1f", b)
	}
}

// TestUnitKeepsWhatTheDaemonNeeds guards against buying a lower exposure
// with a setting that breaks the daemon.
func TestUnitKeepsWhatTheDaemonNeeds(t *testing.T) {
	unit := parseService(t, readUnit(t))
	want := []struct{ key, value, why string }{
		{"Type", "notify", "the daemon sends READY=1"},
		{"NotifyAccess", "main", "only the daemon, not its steps, may notify"},
		{"User", "deployer", "runs as the deployer user"},
		{"Group", "deployer", "runs as the deployer group"},
		{"StateDirectory", "deployer", "state.db and checkouts in /var/lib/deployer"},
		{"RuntimeDirectory", "deployer", "the API socket in /run/deployer"},
		{"ConfigurationDirectory", "deployer", "config in /etc/deployer"},
		{"Environment", "HOME=/var/lib/deployer", "steps inherit a writable HOME"},
		{"ProtectSystem", "strict", "everything else read-only"},
		{"SystemCallErrorNumber", "EPERM", "a step's denied call fails instead of killing it"},
	}
	for _, w := range want {
		if !slices.Contains(unit[w.key], w.value) {
			t.Errorf("%s=%s missing (%s); got %q", w.key, w.value, w.why, unit[w.key])
		}
	}
	// Repository content is untrusted: memory and tasks are capped, with
	// finite values (infinity is systemd's "no limit").
	for _, key := range []string{"MemoryMax", "TasksMax", "MemorySwapMax"} {
		v := unit[key]
		if len(v) == 0 || v[len(v)-1] == "infinity" || v[len(v)-1] == "" {
			t.Errorf("%s=%q, want a finite limit (untrusted repos must not exhaust the host)", key, v)
		}
	}
	if v := unit["MemoryMax"]; len(v) > 0 {
		if b, err := unitBytes(v[len(v)-1]); err != nil || b < 1<<30 {
			t.Errorf("MemoryMax=%s: want at least 1G, the daemon's own ceiling (%v)", v[len(v)-1], err)
		}
	}
	if v := unit["TasksMax"]; len(v) > 0 {
		if n, err := strconv.Atoi(v[len(v)-1]); err != nil || n < 256 {
			t.Errorf("TasksMax=%s: want a number of at least 256 (Go threads and parallel steps)", v[len(v)-1])
		}
	}
	if v := unit["OOMPolicy"]; len(v) == 0 || v[len(v)-1] != "continue" {
		t.Errorf("OOMPolicy=%q, want continue: a step's OOM kill must not stop the service", v)
	}
	if len(unit["WatchdogSec"]) == 0 {
		t.Error("WatchdogSec= missing: the daemon pets the watchdog")
	}
	families := strings.Fields(strings.Join(unit["RestrictAddressFamilies"], " "))
	for _, f := range []string{"AF_UNIX", "AF_INET", "AF_INET6"} {
		if !slices.Contains(families, f) {
			t.Errorf("RestrictAddressFamilies lacks %s: got %q", f, families)
		}
	}
	// The socket is chgrp'ed to listen.socket_group: chown must stay allowed
	// after ~@privileged, which contains it.
	filters := unit["SystemCallFilter"]
	if i := slices.Index(filters, "@chown"); i < 0 || i < slices.IndexFunc(filters, func(s string) bool { return strings.Contains(s, "~@privileged") }) {
		t.Errorf("SystemCallFilter must allow @chown after ~@privileged; got %q", filters)
	}
	for _, key := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		if v, ok := unit[key]; !ok || len(v) > 0 {
			t.Errorf("%s=%q, want present and empty (no capabilities)", key, v)
		}
	}
	forbidden := []struct{ key, why string }{
		{"IPAddressDeny", "the daemon reaches git servers and notification endpoints anywhere"},
		{"PrivateNetwork", "the daemon reaches git servers and notification endpoints"},
		{"PrivateUsers", "the socket group would not be mapped, so the chgrp fails"},
		{"ProcSubset", "hides /proc/stat: process_start_time_seconds would vanish"},
	}
	for _, f := range forbidden {
		if v := unit[f.key]; len(v) > 0 && !slices.Contains([]string{"no", "false", "all"}, v[len(v)-1]) {
			t.Errorf("%s=%s: %s", f.key, v[len(v)-1], f.why)
		}
	}
}

// unitBytes parses a systemd byte size (1024-based suffixes K, M, G, T).
func unitBytes(s string) (int64, error) {
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:n-1]
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v * mult, err
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian: apt-get install systemd); the unit was not checked")
	}
	return p
}

func readUnit(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

var overall = regexp.MustCompile(`Overall exposure level for \S+: ([0-9]+(?:\.[0-9]+)?)`)

// exposure runs the offline security analysis of the unit at path and
// returns its overall exposure level.
func exposure(t *testing.T, analyze, path string) float64 {
	t.Helper()
	out, err := exec.Command(analyze, "security", "--offline=true", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security --offline=true %s: %v\n%s", path, err, out)
	}
	m := overall.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no \"Overall exposure level\" line in:\n%s", out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatalf("exposure %q: %v", m[1], err)
	}
	return v
}

// parseService returns the [Service] settings as key -> values in file
// order; an empty assignment (Key=) resets the list, as systemd does.
func parseService(t *testing.T, data []byte) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
			continue
		case strings.HasPrefix(line, "["):
			section = line
			continue
		}
		if section != "[Service]" {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("unit line without '=': %q", line)
		}
		if value == "" {
			out[key] = []string{}
			continue
		}
		out[key] = append(out[key], value)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
