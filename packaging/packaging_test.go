package packaging

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const testVersion = "9.8.7~test1"

// requireTools finds dpkg-deb. Outside CI a missing one skips with a
// message; with CI_REQUIRE_PACKAGING=1 (set by .ci/run) it fails.
func requireTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"dpkg-deb", "bash", "gzip", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI_REQUIRE_PACKAGING") == "1" {
				t.Fatalf("%s is missing and CI_REQUIRE_PACKAGING=1", tool)
			}
			t.Skipf("%s is not installed: skipping the package build (Debian: apt-get install dpkg)", tool)
		}
	}
}

// TestDeb builds the package with build-deb and checks its files (dpkg-deb
// -c), control fields (-f), maintainer scripts and conffiles (-e), and the
// files themselves (-x): the binary runs, the unit starts /usr/bin/deployer,
// the completions and man pages are cobra's.
func TestDeb(t *testing.T) {
	requireTools(t)
	if testing.Short() {
		t.Skip("-short: the package build takes a while")
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "build-deb", out)
	cmd.Env = append(os.Environ(), "VERSION="+testVersion)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-deb: %v\n%s", err, b)
	} else {
		t.Logf("build-deb:\n%s", b)
	}
	debs, _ := filepath.Glob(filepath.Join(out, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("build-deb made %v, want one .deb", debs)
	}
	deb := debs[0]
	if !strings.HasPrefix(filepath.Base(deb), "deployer_"+testVersion+"_") {
		t.Errorf("package file %s does not carry the version", filepath.Base(deb))
	}

	// Fields.
	for field, want := range map[string]string{
		"Package": "deployer", "Version": testVersion, "Section": "admin",
	} {
		if got := strings.TrimSpace(dpkgDeb(t, "-f", deb, field)); got != want {
			t.Errorf("%s: %q, want %q", field, got, want)
		}
	}
	depends := dpkgDeb(t, "-f", deb, "Depends")
	for _, d := range []string{"git", "adduser"} {
		if !regexp.MustCompile(`(^|, )` + d + `($|,| )`).MatchString(strings.TrimSpace(depends)) {
			t.Errorf("Depends %q lacks %s", depends, d)
		}
	}

	// Contents with modes and owners.
	files := map[string]string{} // path -> mode owner
	sc := bufio.NewScanner(strings.NewReader(dpkgDeb(t, "-c", deb)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue
		}
		files[strings.TrimPrefix(strings.TrimSuffix(f[5], "/"), ".")] = f[0] + " " + f[1]
	}
	for path, want := range map[string]string{
		"/usr/bin/deployer":                                       "-rwxr-xr-x root/root",
		"/usr/lib/systemd/system/deployer.service":                "-rw-r--r-- root/root",
		"/etc/deployer/deployer.yaml":                             "-rw-r--r-- root/root",
		"/opt/deployer/steps":                                     "drwxr-xr-x root/root",
		"/usr/share/bash-completion/completions/deployer":         "-rw-r--r-- root/root",
		"/usr/share/zsh/vendor-completions/_deployer":             "-rw-r--r-- root/root",
		"/usr/share/fish/vendor_completions.d/deployer.fish":      "-rw-r--r-- root/root",
		"/usr/share/man/man1/deployer.1.gz":                       "-rw-r--r-- root/root",
		"/usr/share/man/man1/deployer-status.1.gz":                "-rw-r--r-- root/root",
		"/usr/share/man/man1/deployer-interventions-resolve.1.gz": "-rw-r--r-- root/root",
		"/usr/share/man/man1/deployer-xml-merge.1.gz":             "-rw-r--r-- root/root",
		"/usr/share/doc/deployer/operations.md":                   "-rw-r--r-- root/root",
		"/usr/share/doc/deployer/examples/deployer.yaml":          "-rw-r--r-- root/root",
		"/usr/share/deployer/grafana/deployer-dashboard.json":     "-rw-r--r-- root/root",
		"/usr/share/deployer/prometheus/deployer-rules.yml":       "-rw-r--r-- root/root",
	} {
		if got, ok := files[path]; !ok {
			t.Errorf("%s is not in the package", path)
		} else if got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
	var man []string
	for p := range files {
		if strings.HasPrefix(p, "/usr/share/man/man1/") && strings.HasSuffix(p, ".1.gz") {
			man = append(man, p)
		}
	}
	if len(man) < 30 {
		t.Errorf("%d man pages, want one per command (30 or more): %v", len(man), man)
	}
	for p := range files {
		if strings.Contains(p, "gen-docs") || strings.HasPrefix(p, "/usr/local") {
			t.Errorf("%s should not be in the package", p)
		}
	}

	// Maintainer scripts and conffiles.
	ctl := t.TempDir()
	dpkgDeb(t, "-e", deb, ctl)
	if got := strings.TrimSpace(readFile(t, filepath.Join(ctl, "conffiles"))); got != "/etc/deployer/deployer.yaml" {
		t.Errorf("conffiles %q, want /etc/deployer/deployer.yaml", got)
	}
	for _, s := range []string{"preinst", "postinst", "prerm", "postrm"} {
		p := filepath.Join(ctl, s)
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("no %s: %v", s, err)
			continue
		}
		if fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s is not executable: %v", s, fi.Mode())
		}
		if b, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", s, err, b)
		}
		if want, _ := os.ReadFile(filepath.Join("scripts", s)); readFile(t, p) != string(want) {
			t.Errorf("%s differs from packaging/scripts/%s", s, s)
		}
	}
	postinst := readFile(t, filepath.Join(ctl, "postinst"))
	for _, re := range []string{
		`addgroup --quiet --system deployer\n`,
		`adduser --quiet --system --ingroup deployer --home /var/lib/deployer --no-create-home`,
		`addgroup --quiet --system deployer-ops\n`,
		`adduser --quiet deployer deployer-ops\n`,
		`systemctl daemon-reload`,
	} {
		if !regexp.MustCompile(re).MatchString(postinst) {
			t.Errorf("postinst lacks %q", re)
		}
	}
	if strings.Contains(postinst, "enable --now") && !strings.Contains(postinst, "3. systemctl enable --now deployer") {
		t.Error("postinst starts the daemon on a fresh install, before its config is edited")
	}

	// The files.
	root := t.TempDir()
	dpkgDeb(t, "-x", deb, root)
	bin := filepath.Join(root, "usr/bin/deployer")
	if b, err := exec.Command(bin, "--help").CombinedOutput(); err != nil || !strings.Contains(string(b), "deployer keeps a host's clusterconfig repositories") {
		t.Errorf("packaged binary --help: %v\n%s", err, b)
	}
	if b, _ := os.ReadFile(bin); !bytes.Contains(b, []byte(testVersion)) {
		t.Errorf("the binary does not carry version %s (daemon.Version)", testVersion)
	}
	unit := readFile(t, filepath.Join(root, "usr/lib/systemd/system/deployer.service"))
	orig := readFile(t, "../systemd/deployer.service")
	if want := strings.Replace(orig, "ExecStart=/usr/local/bin/deployer ", "ExecStart=/usr/bin/deployer ", 1); unit != want || unit == orig {
		t.Errorf("packaged unit is not systemd/deployer.service with ExecStart=/usr/bin/deployer:\n%s", unit)
	}
	if got, want := readFile(t, filepath.Join(root, "etc/deployer/deployer.yaml")), readFile(t, "../systemd/deployer.yaml.example"); got != want {
		t.Error("/etc/deployer/deployer.yaml is not systemd/deployer.yaml.example")
	}
	for file, want := range map[string]string{
		"usr/share/bash-completion/completions/deployer":    "__start_deployer",
		"usr/share/zsh/vendor-completions/_deployer":        "#compdef deployer",
		"usr/share/fish/vendor_completions.d/deployer.fish": "complete -c deployer",
	} {
		if !strings.Contains(readFile(t, filepath.Join(root, file)), want) {
			t.Errorf("%s lacks %q", file, want)
		}
	}
	page := gunzip(t, filepath.Join(root, "usr/share/man/man1/deployer-status.1.gz"))
	for _, want := range []string{".TH \"DEPLOYER\" \"1\"", "deployer-status - Show the host", "\\fBdeployer status [flags]\\fP", "output format: table, json or yaml"} {
		if !strings.Contains(page, want) {
			t.Errorf("deployer-status(1) lacks %q:\n%s", want, page)
		}
	}
	var names []string
	for _, p := range man {
		names = append(names, filepath.Base(p))
	}
	if slices.Contains(names, "deployer-gen-docs.1.gz") {
		t.Error("the hidden gen-docs command has a man page")
	}
}

func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	b, err := exec.Command("dpkg-deb", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return string(b)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func gunzip(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return string(b)
}
