package daemon

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/store"
)

// badManifest is a deployer.xml with an unknown step attribute.
const badManifest = `<deployer version="1">
  <instances dir="instances" pattern="*.xml" key="name"/>
  <step name="configure" run="scripts/configure.sh" colour="red"/>
  <on-change steps="configure"/>
</deployer>
`

func writeManifest(t *testing.T, dir, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "deployer.xml"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDeploymentManifestInvalidAtRun: a deployment whose run finds
// deployer.xml invalid (it was not checked at submit: before the first
// clone, or the manifest broke at the run's sync) fails as a whole, saying
// why and naming the intervention; it does not succeed with no instance
// (which a fleet reads as no match). Fixed, its retry selects the
// instances and succeeds.
func TestDeploymentManifestInvalidAtRun(t *testing.T) {
	w, co, run := newUnitWorker(t)
	deploymentCheckout(t, co)
	good, err := os.ReadFile(filepath.Join(co.dir, "deployer.xml"))
	if err != nil {
		t.Fatal(err)
	}
	writeManifest(t, co.dir, badManifest)
	dep := runQueuedDeployment(t, w, deployer.DeployRequest{Select: "instances/*.xml", Who: "test"})
	iv, open := w.openIntervention(deployer.KindManifestInvalid, "")
	if !open {
		t.Fatal("no manifest-invalid raised")
	}
	want := "deployer.xml at commit 1111111111 is invalid (manifest-invalid intervention #" + strconv.FormatUint(iv.ID, 10) + "): fix it and push; no instance was started (deployer.xml:3:"
	if dep.State != string(deployer.DeploymentFailed) || !strings.HasPrefix(dep.Error, want) || !strings.Contains(dep.Error, `unknown attribute "colour"`) {
		t.Fatalf("deployment %s: %q, want failed: %q...", dep.State, dep.Error, want)
	}
	if len(run.jobs) != 0 || len(dep.Runs) != 1 {
		t.Fatalf("%d jobs, runs %v", len(run.jobs), dep.Runs)
	}
	if r, err := w.d.store.Run(store.RunID(dep.Runs[0])); err != nil || r.Status != store.RunInvalid {
		t.Fatalf("run %+v, %v: want invalid", r, err)
	}

	writeManifest(t, co.dir, string(good))
	if _, err := w.d.RetryDeployment(context.Background(), dep.ID); err != nil {
		t.Fatal(err)
	}
	w.runDeployment(context.Background(), w.take()[0])
	dep, err = w.d.Deployment(context.Background(), dep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if dep.State != string(deployer.DeploymentSucceeded) || dep.Error != "" || dep.Counts[string(deployer.InstanceSucceeded)] != 3 {
		t.Fatalf("retried: %s %q %v, want succeeded with 3 instances", dep.State, dep.Error, dep.Counts)
	}
}

// TestDeployRefusedWhileManifestInvalid: with deployer.xml invalid in the
// checkout, a deployment and a deployment's retry are refused up front
// (conflict: HTTP 409, exit 1) naming the commit and the open intervention;
// nothing is created or queued. A retry of a deployment that has not ended
// is answered as before (a coordinator reads that it was asked already).
func TestDeployRefusedWhileManifestInvalid(t *testing.T) {
	w, co, _ := newUnitWorker(t)
	co.dir = filepath.Join(w.d.opts.StateDir, "checkouts", "r")
	deploymentCheckout(t, co)
	writeManifest(t, co.dir, badManifest)
	ctx := context.Background()
	// Before the first clone the run decides: a deployment whose run
	// fails on the manifest, and one still queued.
	failed := runQueuedDeployment(t, w, deployer.DeployRequest{Select: "instances/*.xml", Who: "test"})
	queued, err := w.d.Deploy(ctx, "r", deployer.DeployRequest{Select: "instances/a.xml", Who: "test"})
	if err != nil {
		t.Fatal(err)
	}
	w.take()
	w.setSnap(func(s *snapshot) { s.opened, s.head = true, fakeHead })
	iv, open := w.openIntervention(deployer.KindManifestInvalid, "")
	if !open {
		t.Fatal("no manifest-invalid raised")
	}
	want := "deployer.xml at commit 1111111111 is invalid (manifest-invalid intervention #" + strconv.FormatUint(iv.ID, 10) + "): fix it and push; nothing was deployed (deployer.xml:3:"
	refused := func(what string, err error) {
		t.Helper()
		if err == nil || deployer.ErrorCode(err) != deployer.ECONFLICT || api.HTTPStatus(api.ErrorKind(err)) != http.StatusConflict ||
			!strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %v (%s), want a conflict: %q...", what, err, deployer.ErrorCode(err), want)
		}
	}
	_, err = w.d.Deploy(ctx, "r", deployer.DeployRequest{Select: "instances/*.xml", Set: []string{"/instance/app@version=2.0.0"}, Who: "test"})
	refused("deploy", err)
	_, err = w.d.Deploy(ctx, "r", deployer.DeployRequest{ID: "r1.h1", Select: "instances/*.xml", Who: "coordinator"})
	refused("deploy --id", err)
	_, err = w.d.RetryDeployment(ctx, failed.ID)
	refused("retry", err)
	if _, err := w.d.RetryDeployment(ctx, queued.ID); deployer.ErrorCode(err) != deployer.EINVALID || !strings.Contains(err.Error(), "is queued; retry it when it has ended") {
		t.Errorf("retry of a queued deployment: %v, want 'is queued'", err)
	}
	if reqs := w.take(); len(reqs) != 0 {
		t.Errorf("queued %+v", reqs)
	}
	if _, err := w.d.Deployment(ctx, "r1.h1"); deployer.ErrorCode(err) != deployer.ENOTFOUND {
		t.Errorf("deployment r1.h1: %v, want not found", err)
	}
	if dep, err := w.d.Deployment(ctx, failed.ID); err != nil || dep.State != string(deployer.DeploymentFailed) || len(dep.Runs) != 1 {
		t.Errorf("refused retry changed %s: %+v, %v", failed.ID, dep, err)
	}
}
