package manifest_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/sre-tools/deployer/manifest"
)

// secret is content outside the repository that must never show up.
const secret = "TOP-SECRET-OUTSIDE-CONTENT"

func TestManifestSymlinkOutsideRefused(t *testing.T) {
	outside := t.TempDir()
	target := filepath.Join(outside, "deployer.xml")
	if err := os.WriteFile(target, []byte(`<deployer version="1"><!-- `+secret+` --></deployer>`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{target, "../" + filepath.Base(outside) + "/deployer.xml"} {
		root := writeRepo(t, map[string]string{"instances/a.xml": `<instance/>`})
		if !filepath.IsAbs(link) {
			rel, err := filepath.Rel(root, target)
			if err != nil {
				t.Fatal(err)
			}
			link = rel
		}
		if err := os.Symlink(link, filepath.Join(root, "deployer.xml")); err != nil {
			t.Fatal(err)
		}
		_, err := manifest.Load(root, manifest.Options{})
		if err == nil || !errors.Is(err, manifest.ErrInvalid) || !strings.Contains(err.Error(), "deployer.xml: resolves outside the repository") {
			t.Fatalf("Load through symlink %s: got %v, want an outside-the-repository problem", link, err)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), outside) {
			t.Fatalf("the error shows the outside file: %v", err)
		}
		probs := manifest.ValidateDir(root, manifest.Options{})
		if len(probs) != 1 || strings.Contains(fmt.Sprint(probs), secret) {
			t.Fatalf("ValidateDir: %v", probs)
		}
	}
}

func TestReadRepoFile(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "f"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	root := writeRepo(t, map[string]string{"a/ok.xml": "<a/>", "big.xml": strings.Repeat("x", 101)})
	mustLink := func(old, new string) {
		if err := os.Symlink(old, filepath.Join(root, new)); err != nil {
			t.Fatal(err)
		}
	}
	mustLink(filepath.Join(outside, "f"), "abs")
	mustLink("../../"+filepath.Base(outside)+"/f", "a/rel")
	mustLink(outside, "dirlink")
	mustLink("ok.xml", "a/inside")
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		rel  string
		want error
		msg  string
	}{
		{"a/ok.xml", nil, ""},
		{"a/inside", nil, ""},
		{"abs", manifest.ErrOutsideRepo, "abs: resolves outside the repository"},
		{"a/rel", manifest.ErrOutsideRepo, "a/rel: resolves outside"},
		{"dirlink/f", manifest.ErrOutsideRepo, "dirlink/f: resolves outside"},
		{"../x", manifest.ErrOutsideRepo, "../x: resolves outside"},
		{"a", manifest.ErrInvalid, "a: invalid: not a regular file"},
		{"fifo", manifest.ErrInvalid, "fifo: invalid: not a regular file"},
		{"big.xml", manifest.ErrLimit, "big.xml: limit exceeded: 101 bytes, over the cap of 100 bytes"},
		{"none.xml", os.ErrNotExist, "none.xml"},
	}
	for _, tc := range cases {
		data, err := manifest.ReadRepoFile(root, tc.rel, 100)
		if tc.want == nil {
			if err != nil || string(data) != "<a/>" {
				t.Errorf("%s: got %q, %v", tc.rel, data, err)
			}
			continue
		}
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want %v containing %q", tc.rel, err, tc.want, tc.msg)
		}
		if err != nil && (strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), outside)) {
			t.Errorf("%s: the error shows the outside file: %v", tc.rel, err)
		}
	}
}

func TestManifestDoctypeRefused(t *testing.T) {
	_, err := manifest.Parse("deployer.xml", []byte("<?xml version=\"1.0\"?>\n<!DOCTYPE deployer [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<deployer version=\"1\"/>\n"), manifest.Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "deployer.xml:2:1: DOCTYPE is not allowed in the manifest") {
		t.Fatalf("got %v", err)
	}
}

func TestCheckInstanceName(t *testing.T) {
	good := []string{"a", "acme", "viatris-prod.eu_1", "0", strings.Repeat("a", 128)}
	bad := []string{"", "-x", "--output=/tmp/x", ".hidden", "_x", "a b", "a\nb", "a\rb", "a/b", "a\\b", "é", strings.Repeat("a", 129), "a\x00"}
	for _, n := range good {
		if err := manifest.CheckInstanceName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range bad {
		err := manifest.CheckInstanceName(n)
		if err == nil || strings.ContainsAny(err.Error(), "\r\n") {
			t.Errorf("%q: got %v, want a one-line refusal", n, err)
		}
	}
}

func TestInstanceNameRefused(t *testing.T) {
	root := writeRepo(t, map[string]string{
		"deployer.xml":            `<deployer version="1"/>`,
		"instances/ok.xml":        `<instance/>`,
		"instances/opt.xml":       `<instance name="--output=/tmp/x"/>`,
		"instances/nl.xml":        "<instance name=\"a&#10;Signed-off-by: x\"/>",
		"instances/--evil.xml":    `<instance/>`,
		"instances/new\nline.xml": `<instance/>`,
	})
	m, err := manifest.Load(root, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	insts, err := m.ListInstances(root)
	if len(insts) != 1 || insts[0].Name != "ok" {
		t.Errorf("instances: %v", insts)
	}
	var pe *manifest.ProblemsError
	if !errors.As(err, &pe) || len(pe.Problems) != 4 {
		t.Fatalf("got %v, want 4 problems", err)
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if !strings.Contains(line, "does not follow the grammar [A-Za-z0-9][A-Za-z0-9._-]{0,127}") {
			t.Errorf("problem line %q does not name the rule (a name started a new line?)", line)
		}
	}
	for _, want := range []string{`instances/opt.xml:1:11: instance name "--output=/tmp/x" (attribute "name")`, `instances/nl.xml:1:11: instance name "a\nSigned-off-by: x"`,
		`instances/--evil.xml: instance name "--evil" (the file name)`, `"instances/new\nline.xml": instance name "new\nline"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
	if _, err := m.ReadInstance(root, "instances/opt.xml"); !errors.Is(err, manifest.ErrInvalid) {
		t.Errorf("ReadInstance: %v", err)
	}
}

// deep returns an instance file nested n deep, each level with an attribute.
func deep(n int) []byte {
	var sb strings.Builder
	sb.WriteString("<instance name=\"deep\">\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "<l v=\"%d\">", i)
	}
	sb.WriteString("<leaf>x</leaf>")
	for i := 0; i < n; i++ {
		sb.WriteString("</l>")
	}
	sb.WriteString("\n</instance>\n")
	return []byte(sb.String())
}

func TestInstanceLimits(t *testing.T) {
	root := writeRepo(t, map[string]string{
		"deployer.xml":        `<deployer version="1"/>`,
		"instances/deep.xml":  string(deep(300)),
		"instances/big.xml":   "<instance>" + strings.Repeat(" ", 6000) + "</instance>",
		"instances/small.xml": "<instance/>",
	})
	m, err := manifest.Load(root, manifest.Options{Limits: manifest.Limits{InstanceFileBytes: 5000}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.ListInstances(root)
	for _, want := range []string{
		"instances/big.xml: limit exceeded: 6021 bytes, over the cap of 5000 bytes (hint: raise limits.instance_file_bytes in the host config",
		"instances/deep.xml:2:", "is nested deeper than the cap of 256 levels (raise limits.xml_depth in the host config)",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
	m, err = manifest.Load(root, manifest.Options{Limits: manifest.Limits{XMLDepth: 400}})
	if err != nil {
		t.Fatal(err)
	}
	if insts, err := m.ListInstances(root); err != nil || len(insts) != 3 {
		t.Errorf("raised limits: %v, %v", insts, err)
	}
	if _, err := manifest.ParseDocument(deep(300)); !errors.Is(err, manifest.ErrLimit) {
		t.Errorf("ParseDocument of a 300-deep file: %v", err)
	}
}

func TestEveryNonPositiveRefused(t *testing.T) {
	for _, spec := range []string{"@every -5s", "@every 0s", "@every 0", "@every 500ms", "CRON_TZ=UTC @every -1m"} {
		_, err := manifest.Parse("deployer.xml", []byte(`<deployer version="1">
  <step name="s" run="s.sh"/>
  <schedule name="n" cron="`+spec+`" steps="s"/>
</deployer>`), manifest.Options{})
		if err == nil || !strings.Contains(err.Error(), "deployer.xml:3:") || !strings.Contains(err.Error(), "@every needs an interval of at least 1s") {
			t.Errorf("%s: got %v", spec, err)
		}
	}
	if _, err := manifest.Parse("deployer.xml", []byte(`<deployer version="1"><step name="s" run="s.sh"/><schedule name="n" cron="@every 5m" steps="s"/></deployer>`), manifest.Options{}); err != nil {
		t.Errorf("@every 5m: %v", err)
	}
}

// TestDeepDiffMergeMemory diffs and merges a 20,000-deep file (caps raised)
// and fails when either allocates more than 100 MB in total, which bounds
// the peak: memory must be linear in the file, not in its depth squared.
func TestDeepDiffMergeMemory(t *testing.T) {
	const depth = 20000
	lim := manifest.Limits{XMLDepth: depth + 10}
	opts := manifest.DiffOptions{Limits: lim}
	base := deep(depth)
	// Ours changes the root, the middle and the deepest element; theirs an
	// attribute near the top.
	ours := []byte(strings.Replace(strings.Replace(string(base), `<l v="10000">`, `<l v="10000" w="1">`, 1), "<leaf>x</leaf>", "<leaf>y</leaf>", 1))
	ours = []byte(strings.Replace(string(ours), `<instance name="deep">`, `<instance name="deep" step="done">`, 1))
	theirs := []byte(strings.Replace(string(base), `<l v="3">`, `<l v="3" t="2">`, 1))
	if len(base) > 400_000 {
		t.Fatalf("test file is %d bytes", len(base))
	}
	measure := func(name string, f func()) {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s of a %d-deep, %d-byte file: %.1f MB allocated", name, depth, len(base), float64(alloc)/1e6)
		if alloc > 100<<20 {
			t.Errorf("%s allocated %.1f MB, want under 100 MB", name, float64(alloc)/1e6)
		}
	}
	var edits []manifest.Edit
	measure("Diff", func() {
		var err error
		edits, err = manifest.Diff(base, ours, opts)
		if err != nil || len(edits) != 3 {
			t.Fatalf("Diff: %v, %d edits", err, len(edits))
		}
	})
	var merged []byte
	measure("Merge", func() {
		var conflicts []manifest.Conflict
		var err error
		merged, conflicts, err = manifest.Merge(base, ours, theirs, opts)
		if err != nil || len(conflicts) > 0 {
			t.Fatalf("Merge: %v, %v", err, conflicts)
		}
	})
	want := strings.Replace(string(ours), `<l v="3">`, `<l v="3" t="2">`, 1)
	if string(merged) != want {
		t.Errorf("merged result differs from ours plus theirs' attribute")
	}
	if _, err := manifest.Diff(base, ours, manifest.DiffOptions{}); !errors.Is(err, manifest.ErrLimit) {
		t.Errorf("Diff with the default depth cap: %v", err)
	}
}
