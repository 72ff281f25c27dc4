package executor_test

import (
	"maps"
	"testing"

	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
)

func TestStepEnv(t *testing.T) {
	se := executor.StepEnv{Host: "h1", Repo: "cc", Commit: "abc", Run: "7", DryRun: true}
	want := map[string]string{"DEPLOYER_HOST": "h1", "DEPLOYER_REPO": "cc", "DEPLOYER_COMMIT": "abc", "DEPLOYER_RUN": "7", "DEPLOYER_DRY_RUN": "1"}
	if got := se.Env(); !maps.Equal(got, want) {
		t.Fatalf("Env %v, want %v", got, want)
	}
	if back := executor.StepEnvOf(se.Env()); back != se {
		t.Fatalf("StepEnvOf %+v, want %+v", back, se)
	}
	job := executor.Job{Instance: manifest.Instance{Name: "web", File: "instances/web.xml"}}
	se.DryRun = false
	se.Apply(&job)
	tmpl := map[string]string{"instance": "web", "file": "instances/web.xml", "commit": "abc", "host": "h1", "dry_run": "0"}
	if !maps.Equal(job.Template, tmpl) || job.Env["DEPLOYER_DRY_RUN"] != "0" {
		t.Fatalf("Apply: env %v, template %v", job.Env, job.Template)
	}
	// A value not known is not set (a hand-written scenario has no host).
	if env := (executor.StepEnv{}).Env(); len(env) != 1 || env["DEPLOYER_DRY_RUN"] != "0" {
		t.Fatalf("empty StepEnv: %v", env)
	}
}
