package manifest_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/manifest"
)

const goodManifest = `<deployer version="1">
  <instances dir="instances" pattern="*.xml" key="name"/>   <!-- instance name = file stem unless key attr on root -->
  <step name="instance-configure" run="scripts/configure.sh" timeout="5m" retries="1" writes="instance"/>
  <step name="instance-redeploy"  run="scripts/redeploy.sh"  timeout="20m" after="instance-configure">
    <arg>--instance</arg><arg>{instance}</arg>
  </step>
  <on-change steps="instance-configure instance-redeploy" bucket="5" max-failures="2"/>
  <schedule name="nightly" cron="0 3 * * 1-5" tz="Europe/Berlin" steps="instance-redeploy"
            select="instances/*.xml" where="/instance[@tier='gold']" bucket="10" max-failures="3"/>
</deployer>
`

func TestParseGood(t *testing.T) {
	m, err := manifest.Parse("deployer.xml", []byte(goodManifest), manifest.Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &manifest.Manifest{
		File:      "deployer.xml",
		Version:   1,
		Instances: manifest.InstanceSet{Dir: "instances", Pattern: "*.xml", Key: "name"},
		Steps: []manifest.Step{
			{Name: "instance-configure", Run: "scripts/configure.sh", Timeout: 5 * time.Minute, Retries: 1, Writes: "instance", Line: 3},
			{Name: "instance-redeploy", Run: "scripts/redeploy.sh", Timeout: 20 * time.Minute, After: []manifest.StepName{"instance-configure"},
				Args: []string{"--instance", "{instance}"}, Line: 4},
		},
		OnChange: &manifest.OnChange{Steps: []manifest.StepName{"instance-configure", "instance-redeploy"}, Bucket: 5, MaxFailures: 2},
		Schedules: []manifest.Schedule{{Name: "nightly", Cron: "0 3 * * 1-5", TZ: "Europe/Berlin", Steps: []manifest.StepName{"instance-redeploy"},
			Select: "instances/*.xml", Where: "/instance[@tier='gold']", Bucket: 10, MaxFailures: 3, Line: 8}},
		Limits: manifest.DefaultLimits(),
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got  %+v\nwant %+v", m, want)
	}
}

func TestParseDefaults(t *testing.T) {
	m, err := manifest.Parse("deployer.xml", []byte(`<deployer version="1"><step name="a" run="a.sh"/><on-change steps="a"/></deployer>`), manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Instances != (manifest.InstanceSet{Dir: "instances", Pattern: "*.xml", Key: "name"}) {
		t.Errorf("instances: got %+v", m.Instances)
	}
	if m.Steps[0].Timeout != 10*time.Minute {
		t.Errorf("timeout: got %v, want 10m", m.Steps[0].Timeout)
	}
	if m.OnChange.Bucket != 5 || m.OnChange.MaxFailures != 0 {
		t.Errorf("on-change: got %+v, want bucket 5, max-failures 0", m.OnChange)
	}
	if m.Schedules != nil {
		t.Errorf("schedules: got %+v, want none", m.Schedules)
	}
}

// TestParseProblems has one named case per validation error, each checking
// the exact position and message.
func TestParseProblems(t *testing.T) {
	opts := manifest.Options{AllowStepDirs: []string{"/opt/deployer/steps"}}
	cases := []struct {
		name string
		xml  string
		want []string // "line:col: message" prefixes (after the file name)
	}{
		{"not xml", "<deployer version=\"1\">\n<step>", []string{`2:7: element <step> (opened at line 2) is not closed`}},
		{"wrong root", `<deploy version="1"/>`, []string{`1:1: root element is <deploy>, want <deployer>`}},
		{"missing version", `<deployer/>`, []string{`1:1: <deployer>: missing attribute "version"`}},
		{"version 2", `<deployer version="2"/>`, []string{`1:11: <deployer>: unsupported version "2"`}},
		{"unknown root attribute", `<deployer version="1" colour="red"/>`, []string{`1:23: <deployer>: unknown attribute "colour"`}},
		{"unknown element", "<deployer version=\"1\">\n  <stepp name=\"a\"/>\n</deployer>", []string{`2:3: unknown element <stepp> in <deployer>`}},
		{"text in deployer", "<deployer version=\"1\">hello</deployer>", []string{`1:23: unexpected text inside <deployer>`}},
		{"unknown step attribute", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\" tmeout=\"5m\"/></deployer>", []string{`2:28: <step>: unknown attribute "tmeout"`}},
		{"step without name", "<deployer version=\"1\">\n <step run=\"a.sh\"/></deployer>", []string{`2:2: <step>: missing attribute "name"`}},
		{"step without run", "<deployer version=\"1\">\n <step name=\"a\"/></deployer>", []string{`2:2: step "a": missing attribute "run"`}},
		{"duplicate step", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\"/>\n <step name=\"a\" run=\"b.sh\"/></deployer>", []string{`3:2: duplicate step "a" (first defined on line 2)`}},
		{"after unknown", "<deployer version=\"1\">\n <step name=\"x\" run=\"a.sh\" after=\"y\"/></deployer>", []string{`2:2: step "x": after names unknown step "y"`}},
		{"cycle", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\" after=\"c\"/>\n <step name=\"b\" run=\"a.sh\" after=\"a\"/>\n <step name=\"c\" run=\"a.sh\" after=\"b\"/></deployer>",
			[]string{`2:2: step dependency cycle: a -> c -> b -> a`}},
		{"self cycle", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\" after=\"a\"/></deployer>", []string{`2:2: step dependency cycle: a -> a`}},
		{"run escapes", "<deployer version=\"1\">\n <step name=\"a\" run=\"scripts/../../x.sh\"/></deployer>", []string{`2:17: step "a": run "scripts/../../x.sh" escapes the repository (..)`}},
		{"run absolute", "<deployer version=\"1\">\n <step name=\"a\" run=\"/usr/bin/x\"/></deployer>", []string{`2:17: step "a": run "/usr/bin/x" is not under an allowed step directory (/opt/deployer/steps)`}},
		{"run absolute prefix trick", "<deployer version=\"1\">\n <step name=\"a\" run=\"/opt/deployer/steps-evil/x\"/></deployer>", []string{`2:17: step "a": run "/opt/deployer/steps-evil/x" is not under`}},
		{"run absolute dotdot", "<deployer version=\"1\">\n <step name=\"a\" run=\"/opt/deployer/steps/../../x\"/></deployer>", []string{`2:17: step "a": run "/opt/deployer/steps/../../x" is not under`}},
		{"run backslash", "<deployer version=\"1\">\n <step name=\"a\" run=\"..\\x.sh\"/></deployer>", []string{`2:17: step "a": run "..\\x.sh" contains a backslash`}},
		{"bad timeout", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\" timeout=\"5 minutes\"/></deployer>", []string{`2:37: step "a": bad timeout "5 minutes"`}},
		{"negative timeout", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\" timeout=\"-5m\"/></deployer>", []string{`2:37: step "a": bad timeout "-5m"`}},
		{"bad retries", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\" retries=\"-1\"/></deployer>", []string{`2:37: step "a": bad retries "-1"`}},
		{"bad writes", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\" writes=\"all\"/></deployer>", []string{`2:28: step "a": bad writes "all"`}},
		{"unknown step child", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\"><env/></step></deployer>", []string{`2:28: step "a": unknown element <env>`}},
		{"on-change unknown step", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\"/>\n <on-change steps=\"a b\"/></deployer>", []string{`3:20: <on-change>: unknown step "b"`}},
		{"on-change bad bucket", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\"/>\n <on-change steps=\"a\" bucket=\"0\"/></deployer>", []string{`3:31: <on-change>: bad bucket "0"`}},
		{"on-change missing steps", "<deployer version=\"1\">\n <on-change/></deployer>", []string{`2:2: <on-change>: missing attribute "steps"`}},
		{"duplicate on-change", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\"/>\n <on-change steps=\"a\"/>\n <on-change steps=\"a\"/></deployer>", []string{`4:2: duplicate <on-change>`}},
		{"bad cron", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\"/>\n <schedule name=\"n\" cron=\"0 25 * * *\" steps=\"a\"/></deployer>", []string{`3:27: schedule "n": bad cron spec "0 25 * * *"`}},
		{"panicking cron tz", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\"/>\n <schedule name=\"n\" cron=\"CRON_TZ=Europe/Berlin\" steps=\"a\"/></deployer>", []string{`3:27: schedule "n": bad cron spec "CRON_TZ=Europe/Berlin"`}},
		{"bad tz", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\"/>\n <schedule name=\"n\" cron=\"@daily\" tz=\"Mars/Olympus\" steps=\"a\"/></deployer>", []string{`3:39: schedule "n": unknown time zone "Mars/Olympus"`}},
		{"schedule unknown step", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\"/>\n <schedule name=\"n\" cron=\"@daily\" steps=\"z\"/></deployer>", []string{`3:42: schedule "n": unknown step "z"`}},
		{"schedule bad where", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\"/>\n <schedule name=\"n\" cron=\"@daily\" steps=\"a\" where=\"/instance[@tier='gold'\"/></deployer>", []string{`3:52: schedule "n": bad where path`}},
		{"schedule select escapes", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\"/>\n <schedule name=\"n\" cron=\"@daily\" steps=\"a\" select=\"../*.xml\"/></deployer>", []string{`3:53: schedule "n": select "../*.xml" escapes`}},
		{"schedule bad catch-up", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\"/>\n <schedule name=\"n\" cron=\"@daily\" steps=\"a\" catch-up=\"yes please\"/></deployer>", []string{`3:55: schedule "n": bad catch-up`}},
		{"duplicate schedule", "<deployer version=\"1\">\n <step name=\"a\" run=\"a.sh\"/>\n <schedule name=\"n\" cron=\"@daily\" steps=\"a\"/>\n <schedule name=\"n\" cron=\"@daily\" steps=\"a\"/></deployer>", []string{`4:2: duplicate schedule "n"`}},
		{"instances dir escapes", "<deployer version=\"1\">\n <instances dir=\"/etc\"/></deployer>", []string{`2:13: <instances>: dir "/etc" is not a relative slash path`}},
		{"instances dir in .git", "<deployer version=\"1\">\n <instances dir=\".GIT\"/></deployer>", []string{`2:13: <instances>: dir ".GIT" is inside the repository's .git directory`}},
		{"run in .git", "<deployer version=\"1\">\n <step name=\"a\" run=\"x/.git/hooks/a.sh\"/></deployer>", []string{`2:17: step "a": run "x/.git/hooks/a.sh" is inside the repository's .git directory`}},
		{"instances bad pattern", "<deployer version=\"1\">\n <instances pattern=\"[\"/></deployer>", []string{`2:13: <instances>: bad pattern "["`}},
		{"instances child", "<deployer version=\"1\">\n <instances><x/></instances></deployer>", []string{`2:13: unknown element <x> in <instances>`}},
		{"several problems at once", "<deployer version=\"1\">\n <step name=\"a\" run=\"/x\" timeout=\"soon\"/>\n <step name=\"b\" run=\"b.sh\" after=\"nope\"/>\n</deployer>", []string{
			`2:17: step "a": run "/x" is not under`,
			`2:35: step "a": bad timeout "soon"`,
			`3:2: step "b": after names unknown step "nope"`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := manifest.Parse("deployer.xml", []byte(tc.xml), opts)
			var pe *manifest.ProblemsError
			if !errors.As(err, &pe) {
				t.Fatalf("got error %v, want *ProblemsError", err)
			}
			if !errors.Is(err, manifest.ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) is false")
			}
			if len(pe.Problems) != len(tc.want) {
				t.Fatalf("got %d problems:\n%v\nwant %d", len(pe.Problems), err, len(tc.want))
			}
			for i, p := range pe.Problems {
				if !strings.HasPrefix(p.Error(), "deployer.xml:"+tc.want[i]) {
					t.Errorf("problem %d: got %q, want prefix %q", i, p.Error(), "deployer.xml:"+tc.want[i])
				}
				if p.Hint == "" {
					t.Errorf("problem %d has no hint", i)
				}
			}
		})
	}
}

func TestProblemError(t *testing.T) {
	p := manifest.Problem{File: "deployer.xml", Line: 12, Col: 3, Message: `step "x": after names unknown step "y"`, Hint: "fix it"}
	if got, want := p.Error(), `deployer.xml:12:3: step "x": after names unknown step "y" (hint: fix it)`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	pe := &manifest.ProblemsError{Problems: []manifest.Problem{p, {File: "a.xml", Message: "m"}}}
	if got, want := pe.Error(), "deployer.xml:12:3: step \"x\": after names unknown step \"y\" (hint: fix it)\na.xml: m"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestOrder(t *testing.T) {
	m, err := manifest.Parse("deployer.xml", []byte(`<deployer version="1">
<step name="d" run="x" after="b c"/>
<step name="c" run="x" after="a"/>
<step name="b" run="x"/>
<step name="a" run="x"/>
</deployer>`), manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		names []manifest.StepName
		want  string
	}{
		{"all", []manifest.StepName{"a", "b", "c", "d"}, "b a c d"},
		{"subset ignores missing deps", []manifest.StepName{"d", "c"}, "c d"},
		{"one", []manifest.StepName{"d"}, "d"},
		{"duplicates", []manifest.StepName{"a", "a"}, "a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			steps, err := m.Order(tc.names)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range steps {
				got = append(got, string(s.Name))
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("got %q, want %q", strings.Join(got, " "), tc.want)
			}
		})
	}
	if _, err := m.Order([]manifest.StepName{"zz"}); !errors.Is(err, manifest.ErrInvalid) {
		t.Errorf("unknown step: got %v, want ErrInvalid", err)
	}
}

func TestMatchesInstancePath(t *testing.T) {
	m, err := manifest.Parse("deployer.xml", []byte(`<deployer version="1"/>`), manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]bool{
		"instances/viatris.xml":              true,
		"instances/viatris.yaml":             false,
		"instances/sub/viatris.xml":          false,
		"viatris.xml":                        false,
		"instances/../instances/viatris.xml": false,
		"/instances/viatris.xml":             false,
		"./instances/viatris.xml":            false,
	}
	for p, want := range cases {
		if got := m.MatchesInstancePath(p); got != want {
			t.Errorf("%s: got %v, want %v", p, got, want)
		}
	}
}

// writeRepo writes files (slash paths) under a new temporary directory.
func writeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		full := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestLoad(t *testing.T) {
	root := writeRepo(t, map[string]string{
		"deployer.xml":         goodManifest,
		"scripts/configure.sh": "#!/bin/sh\n",
		"scripts/redeploy.sh":  "#!/bin/sh\n",
	})
	m, err := manifest.Load(root, manifest.Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(m.Steps) != 2 {
		t.Errorf("got %d steps, want 2", len(m.Steps))
	}
}

func TestLoadRunProblems(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "evil.sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	allowed := t.TempDir()
	if err := os.WriteFile(filepath.Join(allowed, "ok.sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		setup func(root string) error
		run   string
		want  string // "" for success
	}{
		{"missing file", nil, "scripts/none.sh", `step "s": run file "scripts/none.sh" does not exist`},
		{"symlink out of the repo", func(root string) error {
			return os.Symlink(filepath.Join(outside, "evil.sh"), filepath.Join(root, "link.sh"))
		}, "link.sh", `run file "link.sh" resolves outside the repository`},
		{"directory symlink out of the repo", func(root string) error {
			return os.Symlink(outside, filepath.Join(root, "scripts"))
		}, "scripts/evil.sh", `run file "scripts/evil.sh" resolves outside the repository`},
		{"a directory", func(root string) error { return os.Mkdir(filepath.Join(root, "dir"), 0o755) }, "dir", `is not a regular file`},
		{"symlink inside the repo", func(root string) error {
			if err := os.WriteFile(filepath.Join(root, "real.sh"), nil, 0o755); err != nil {
				return err
			}
			return os.Symlink("real.sh", filepath.Join(root, "link.sh"))
		}, "link.sh", ""},
		{"allowed host dir", nil, filepath.ToSlash(filepath.Join(allowed, "ok.sh")), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := writeRepo(t, map[string]string{"deployer.xml": `<deployer version="1">
  <step name="s" run="` + tc.run + `"/>
</deployer>`})
			if tc.setup != nil {
				if err := tc.setup(root); err != nil {
					t.Fatal(err)
				}
			}
			_, err := manifest.Load(root, manifest.Options{AllowStepDirs: []string{allowed}})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "deployer.xml:2:3: ") {
				t.Fatalf("got %v, want deployer.xml:2:3: ...%s", err, tc.want)
			}
		})
	}
}

func TestInstances(t *testing.T) {
	root := writeRepo(t, map[string]string{
		"deployer.xml":           `<deployer version="1"/>`,
		"instances/viatris.xml":  `<instance tier="gold"/>`,
		"instances/acme.xml":     `<instance name="acme-corp"/>`,
		"instances/notes.txt":    `not xml`,
		"instances/sub/x.xml":    `<instance/>`,
		"instances/broken.xml":   "<instance>\n  <app name=\"web\">\n</instance>",
		"instances/emptykey.xml": `<instance name=""/>`,
	})
	m, err := manifest.Load(root, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inst, err := m.ReadInstance(root, "instances/viatris.xml")
	if err != nil || inst != (manifest.Instance{Name: "viatris", File: "instances/viatris.xml"}) {
		t.Errorf("ReadInstance viatris: got %+v, %v", inst, err)
	}
	inst, err = m.ReadInstance(root, "instances/acme.xml")
	if err != nil || inst.Name != "acme-corp" {
		t.Errorf("ReadInstance acme: got %+v, %v, want name acme-corp", inst, err)
	}
	for _, bad := range []string{"../x.xml", "/etc/passwd", "instances/../deployer.xml"} {
		if _, err := m.ReadInstance(root, bad); !errors.Is(err, manifest.ErrInvalid) {
			t.Errorf("ReadInstance %s: got %v, want ErrInvalid", bad, err)
		}
	}
	list, err := m.ListInstances(root)
	var got []string
	for _, i := range list {
		got = append(got, string(i.Name)+"="+i.File)
	}
	if want := "acme-corp=instances/acme.xml viatris=instances/viatris.xml"; strings.Join(got, " ") != want {
		t.Errorf("ListInstances: got %q, want %q", strings.Join(got, " "), want)
	}
	var pe *manifest.ProblemsError
	if !errors.As(err, &pe) || len(pe.Problems) != 2 {
		t.Fatalf("ListInstances problems: got %v, want 2", err)
	}
	if got, want := pe.Problems[0].Error(), "instances/broken.xml:3:1: end tag </instance> does not match <app> opened at line 2, column 3"; !strings.HasPrefix(got, want) {
		t.Errorf("got %q, want prefix %q", got, want)
	}
	if got, want := pe.Problems[1].Error(), `instances/emptykey.xml:1:11: key attribute "name" is empty`; !strings.HasPrefix(got, want) {
		t.Errorf("got %q, want prefix %q", got, want)
	}
	probs := manifest.ValidateDir(root, manifest.Options{})
	if len(probs) != 2 {
		t.Errorf("ValidateDir: got %v, want 2 problems", probs)
	}
}

func TestInstanceSymlinkEscape(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.xml"), []byte(`<instance/>`), 0o644); err != nil {
		t.Fatal(err)
	}
	root := writeRepo(t, map[string]string{"deployer.xml": `<deployer version="1"/>`, "instances/ok.xml": `<instance/>`})
	if err := os.Symlink(filepath.Join(outside, "secret.xml"), filepath.Join(root, "instances", "evil.xml")); err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Load(root, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReadInstance(root, "instances/evil.xml"); err == nil || !strings.Contains(err.Error(), "outside the repository") {
		t.Errorf("got %v, want an escape problem", err)
	}
}

func TestValidateDirDuplicateNames(t *testing.T) {
	root := writeRepo(t, map[string]string{
		"deployer.xml":     `<deployer version="1"/>`,
		"instances/a.xml":  `<instance name="same"/>`,
		"instances/b.xml":  `<instance name="same"/>`,
		"instances/ok.xml": `<instance/>`,
	})
	probs := manifest.ValidateDir(root, manifest.Options{})
	if len(probs) != 1 || !strings.Contains(probs[0].Error(), `instances/b.xml: instance name "same" is also used by instances/a.xml`) {
		t.Errorf("got %v", probs)
	}
	root2 := writeRepo(t, map[string]string{"deployer.xml": `<deployer version="1"><bogus/></deployer>`, "instances/a.xml": `<a/>`})
	probs = manifest.ValidateDir(root2, manifest.Options{})
	if len(probs) != 1 || probs[0].Line != 1 || probs[0].Col != 23 {
		t.Errorf("got %v, want one problem at 1:23", probs)
	}
}
