package planner_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/planner"
	"github.com/sre-tools/deployer/syncer"
)

const manifestXML = `<deployer version="1">
  <instances dir="instances" pattern="*.xml" key="name"/>
  <step name="configure" run="scripts/configure.sh" timeout="30s"/>
  <step name="redeploy" run="scripts/redeploy.sh" timeout="30s" after="configure"/>
  <on-change steps="configure redeploy" bucket="2" max-failures="0"/>
</deployer>
`

// repo is a real git repository made with the git CLI (people's side),
// read through syncer.ReadOnly as `deployer plan` reads it.
type repo struct {
	t   *testing.T
	dir string
}

func newRepo(t *testing.T) *repo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed to make the test repositories")
	}
	r := &repo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	r.git("config", "user.name", "Alice")
	r.git("config", "user.email", "alice@example.com")
	r.write("deployer.xml", manifestXML)
	for _, n := range []string{"alpha", "beta", "gamma"} {
		r.write("instances/"+n+".xml", `<instance name="`+n+`"><app version="1"/></instance>`+"\n")
	}
	r.write("scripts/configure.sh", "#!/bin/sh\necho configure\n")
	r.write("scripts/redeploy.sh", "#!/bin/sh\necho redeploy\n")
	r.commit("initial")
	return r
}

func (r *repo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r *repo) write(name, content string) {
	r.t.Helper()
	p := filepath.Join(r.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		r.t.Fatal(err)
	}
}

func (r *repo) commit(msg string) string {
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

// plan plans HEAD against HEAD~1 with the tree exported as `deployer plan`
// does, and returns file -> reasons.
func (r *repo) plan(deployed func(string) bool) map[string][]string {
	r.t.Helper()
	ro, err := syncer.OpenReadOnly(r.dir)
	if err != nil {
		r.t.Fatal(err)
	}
	defer ro.Close()
	head, err := ro.Resolve("HEAD")
	if err != nil {
		r.t.Fatal(err)
	}
	base, err := ro.Parent(head)
	if err != nil {
		r.t.Fatal(err)
	}
	tree := r.t.TempDir()
	if err := ro.ExportTree(head, tree); err != nil {
		r.t.Fatal(err)
	}
	m, err := manifest.Load(tree, manifest.Options{})
	if err != nil {
		r.t.Fatal(err)
	}
	steps, err := planner.Steps(m)
	if err != nil {
		r.t.Fatal(err)
	}
	files, err := planner.Files(planner.Input{Git: ro, Manifest: m, Dir: tree, Base: base, Head: head, Deployed: deployed}, steps)
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string][]string{}
	for _, f := range files {
		out[f.File] = f.Reasons
	}
	return out
}

func TestInstanceChangedPlansThatInstance(t *testing.T) {
	r := newRepo(t)
	r.write("instances/beta.xml", `<instance name="beta"><app version="2"/></instance>`+"\n")
	r.write("README.md", "not an instance\n")
	r.commit("beta 2")
	got := r.plan(nil)
	want := map[string][]string{"instances/beta.xml": {planner.ReasonInstanceChanged}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("plan = %v, want %v", got, want)
	}
}

func TestStepScriptChangedPlansEveryInstance(t *testing.T) {
	r := newRepo(t)
	r.write("scripts/redeploy.sh", "#!/bin/sh\necho redeploy, now slower\n")
	r.write("instances/gamma.xml", `<instance name="gamma"><app version="3"/></instance>`+"\n")
	r.commit("redeploy waits")
	got := r.plan(nil)
	step := planner.ReasonStepChanged + ": scripts/redeploy.sh (step redeploy)"
	want := map[string][]string{
		"instances/alpha.xml": {step},
		"instances/beta.xml":  {step},
		"instances/gamma.xml": {planner.ReasonInstanceChanged, step},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("plan = %v, want %v", got, want)
	}
}

func TestManifestChangePlansEveryInstanceOnlyWhenStepsDiffer(t *testing.T) {
	r := newRepo(t)
	// The bucket is not a step: nothing to run for it.
	r.write("deployer.xml", strings.Replace(manifestXML, `bucket="2"`, `bucket="3"`, 1))
	r.commit("bucket 3")
	if got := r.plan(nil); len(got) != 0 {
		t.Fatalf("a bucket change planned %v, want nothing", got)
	}
	// A step's timeout, on another line than before: every instance.
	r.write("deployer.xml", strings.Replace(manifestXML, `<step name="configure" run="scripts/configure.sh" timeout="30s"/>`,
		"\n<step name=\"configure\" run=\"scripts/configure.sh\" timeout=\"60s\"/>", 1))
	r.commit("configure 60s")
	got := r.plan(nil)
	if len(got) != 3 {
		t.Fatalf("plan = %v, want the 3 instances", got)
	}
	for f, reasons := range got {
		if !reflect.DeepEqual(reasons, []string{planner.ReasonManifestChanged + ": on-change steps differ"}) {
			t.Errorf("%s: reasons %v", f, reasons)
		}
	}
	// Moving a step's line alone changes nothing.
	r.write("deployer.xml", manifestXML)
	r.commit("back")
	r.write("deployer.xml", "\n\n"+manifestXML)
	r.commit("blank lines")
	if got := r.plan(nil); len(got) != 0 {
		t.Fatalf("blank lines planned %v, want nothing", got)
	}
}

func TestDeployedFileIsNotPlannedForItsOwnChange(t *testing.T) {
	r := newRepo(t)
	r.write("instances/alpha.xml", `<instance name="alpha"><app version="1" build="b1"/></instance>`+"\n")
	r.write("instances/beta.xml", `<instance name="beta"><app version="9"/></instance>`+"\n")
	r.commit("alpha written back, beta changed")
	got := r.plan(func(file string) bool { return file == "instances/alpha.xml" })
	want := map[string][]string{"instances/beta.xml": {planner.ReasonInstanceChanged}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("plan = %v, want %v", got, want)
	}
}

func TestRead(t *testing.T) {
	r := newRepo(t)
	r.write("instances/delta.xml", `<instance name="delta"`)
	r.write("instances/named.xml", `<instance name="other-name"/>`)
	m, err := manifest.Load(r.dir, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if in := planner.Read(m, r.dir, planner.Planned{File: "instances/gone.xml"}); !in.Removed || in.Name != "gone" {
		t.Errorf("a missing file: %+v, want removed, named after its stem", in)
	}
	in := planner.Read(m, r.dir, planner.Planned{File: "instances/delta.xml"})
	var pe *manifest.ProblemsError
	if !errors.As(in.Err, &pe) || in.Name != "delta" {
		t.Errorf("an invalid file: %+v, want a *manifest.ProblemsError", in)
	}
	if in := planner.Read(m, r.dir, planner.Planned{File: "instances/named.xml"}); in.Err != nil || in.Name != "other-name" {
		t.Errorf("a file with a key attribute: %+v, want the name it says", in)
	}
}

func TestNoOnChangeStepsPlansNothing(t *testing.T) {
	m, err := manifest.Parse("deployer.xml", []byte(`<deployer version="1"><instances dir="instances" pattern="*.xml"/></deployer>`), manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	steps, err := planner.Steps(m)
	if err != nil || steps != nil {
		t.Fatalf("Steps = %v, %v; want none", steps, err)
	}
	files, err := planner.Files(planner.Input{Manifest: m}, steps)
	if err != nil || files != nil {
		t.Fatalf("Files = %v, %v; want none (and git not read)", files, err)
	}
}

// A commit range that changes a step script and adds an invalid instance
// file and removes another lists both: the invalid one must reach the
// reports (the daemon's instance-invalid, plan's table), the removed one
// is skipped there. Before, the step's "every instance" held the valid
// instances only and both went unreported.
func TestStepScriptChangedListsInvalidAndRemovedFiles(t *testing.T) {
	r := newRepo(t)
	r.write("instances/delta.xml", "<instance name=\"delta\">\n<app\n</instance>\n")
	if err := os.Remove(filepath.Join(r.dir, "instances", "alpha.xml")); err != nil {
		t.Fatal(err)
	}
	r.write("instances/epsilon.xml", `<instance name="beta"><app version="2"/></instance>`+"\n")
	r.write("scripts/configure.sh", "#!/bin/sh\necho configure\n#x\n")
	r.commit("delta broken, alpha gone, configure changed")
	got := r.plan(nil)
	step := planner.ReasonStepChanged + ": scripts/configure.sh (step configure)"
	want := map[string][]string{
		"instances/alpha.xml":   {planner.ReasonInstanceChanged, step},
		"instances/beta.xml":    {step},
		"instances/delta.xml":   {planner.ReasonInstanceChanged, step},
		"instances/epsilon.xml": {planner.ReasonInstanceChanged, step},
		"instances/gamma.xml":   {step},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("plan = %v, want %v", got, want)
	}
}
