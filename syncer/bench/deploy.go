package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// The deployment operations: deploy_edit_1000 (ours: a deployment through the daemon; git:
// the legacy flow of sed and the git CLI) and scale (the daemon's CPU per instance in a small
// and a large repository).

// DeployManifest is the manifest of the deployment operations' repositories: two steps that
// do nothing (/bin/true), run on change in buckets of DeployBucket.
const DeployManifest = `<deployer version="1">
  <instances dir="instances" pattern="*.xml" key="name"/>
  <step name="configure" run="/bin/true" timeout="30s"/>
  <step name="redeploy" run="/bin/true" timeout="30s" after="configure"/>
  <on-change steps="configure redeploy" bucket="50"/>
</deployer>
`

// DeployBucket is the deployments' bucket, and the legacy flow's instances per push.
const DeployBucket = 50

// deployHistory caps the history of the deployment operations' repositories: their cost is
// per instance, not per commit of history.
const deployHistory = 1000

// DeployInstancePath is the path of instance file i of a deployment repository whose first
// edited files are the ones a deployment edits: "instances/e%05d.xml" for those (selected
// by the glob instances/e*.xml), "instances/i%05d.xml" for the others.
func DeployInstancePath(i, edited int) string {
	if i < edited {
		return fmt.Sprintf("instances/e%05d.xml", i)
	}
	return InstancePath(i)
}

// generateDeploy creates a bare repository of files instances (the first edited of them
// named for the glob instances/e*.xml), DeployManifest, and up to deployHistory commits.
func generateDeploy(ctx context.Context, bare string, files, edited, commits int) error {
	if err := runGit(ctx, "", "init", "-q", "--bare", "-b", "main", bare); err != nil {
		return err
	}
	fi, err := startFastImport(ctx, bare)
	if err != nil {
		return err
	}
	all := map[string][]byte{"deployer.xml": []byte(DeployManifest)}
	for i := 0; i < files; i++ {
		all[DeployInstancePath(i, edited)] = Instance(i, "0")
	}
	fi.commit("initial", "", all)
	for k := 1; k < min(commits, deployHistory); k++ {
		i := (k * 7919) % files
		fi.commit(fmt.Sprintf("history %d", k), "", map[string][]byte{DeployInstancePath(i, edited): Instance(i, fmt.Sprint(k))})
	}
	if err := fi.finish(); err != nil {
		return err
	}
	return runGit(ctx, bare, "repack", "-a", "-d", "-q")
}

// deployEnv is deploy_edit_1000's: one generated repository, copied to a bare repository for
// each side (neither sees the other's commits), the daemon's state directory (kept across
// runs, as a daemon's is) and the legacy flow's clone.
type deployEnv struct {
	files, edited int
	oursURL       string
	state         string
	legacy        string
	paths         []string
}

func (b *bench) deployEnv(ctx context.Context) (*deployEnv, error) {
	if b.deploy != nil {
		return b.deploy, nil
	}
	files := max(b.opts.Files/2, 1)
	e := &deployEnv{files: files, edited: max(b.opts.Files/10, 1)}
	dir := filepath.Join(b.dir, "deploy")
	src := filepath.Join(dir, "generated.git")
	fmt.Fprintf(b.opts.Progress, "deploy_edit_1000: generating %d instances, %d of them edited\n", e.files, e.edited)
	if err := generateDeploy(ctx, src, e.files, e.edited, b.opts.Commits); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	oursBare, legacyBare := filepath.Join(dir, "ours.git"), filepath.Join(dir, "legacy.git")
	for _, bare := range []string{oursBare, legacyBare} {
		if err := runGit(ctx, "", "clone", "-q", "--bare", "--no-local", src, bare); err != nil {
			return nil, err
		}
	}
	e.oursURL, e.state, e.legacy = "file://"+oursBare, filepath.Join(dir, "state"), filepath.Join(dir, "legacy")
	if err := runGit(ctx, "", "clone", "-q", "--branch", "main", "file://"+legacyBare, e.legacy); err != nil {
		return nil, err
	}
	for i := 0; i < e.edited; i++ {
		e.paths = append(e.paths, DeployInstancePath(i, e.edited))
	}
	sort.Strings(e.paths)
	b.deploy = e
	return e, nil
}

// deployEdit is one run of deploy_edit_1000: a deployment setting the revision attribute of
// the edited instances (one commit each, pushed per bucket, then the no-op steps) through the
// daemon in a child process, against the legacy flow on the same instances.
func (b *bench) deployEdit(ctx context.Context, i int) (sample, sample, error) {
	e, err := b.deployEnv(ctx)
	if err != nil {
		return sample{}, sample{}, err
	}
	value := fmt.Sprintf("d%d", i+1)
	o, err := b.child(ctx, Spec{Op: "deploy", URL: e.oursURL, Dir: e.state, Select: "instances/e*.xml", Value: value,
		Bucket: DeployBucket, Expect: e.edited})
	if err != nil {
		return o, sample{}, err
	}
	g, err := b.child(ctx, Spec{Op: "legacy", Dir: e.legacy, Paths: e.paths, Value: value, Bucket: DeployBucket})
	return o, g, err
}

// smallScaleRuns is how many times scale deploys the small repository: its deployment is a
// fifth of the large one's work, and one run's CPU per instance varied by a fifth from run to
// run (4.3 to 6.2 ms in one afternoon, against 5.3 to 5.7 ms for the large one); the median
// of three is set against the large one's single run.
const smallScaleRuns = 3

// scale deploys every instance of a small and of a large repository through the daemon, each
// from a fresh state directory (the small one smallScaleRuns times, each from a freshly
// generated repository), and reports the daemon's CPU per instance (see Scale).
func (b *bench) scale(ctx context.Context) (Op, Scale, error) {
	sc := Scale{SmallInstances: max(b.opts.Files/10, 1), LargeInstances: max(b.opts.Files/2, 1)}
	deploy := func(n, run int) (Result, error) {
		dir := filepath.Join(b.dir, fmt.Sprintf("scale-%d-%d", n, run))
		bare := filepath.Join(dir, "repo.git")
		fmt.Fprintf(b.opts.Progress, "scale: generating %d instances\n", n)
		if err := generateDeploy(ctx, bare, n, n, b.opts.Commits); err != nil {
			return Result{}, fmt.Errorf("generate: %w", err)
		}
		r, err := b.childResult(ctx, Spec{Op: "deploy", URL: "file://" + bare, Dir: filepath.Join(dir, "state"),
			Select: "instances/*.xml", Value: "scale", Bucket: DeployBucket, Expect: n})
		if err != nil {
			return Result{}, err
		}
		fmt.Fprintf(b.opts.Progress, "scale: %d instances: wall %.1f s, daemon CPU %.1f s (%.2f ms per instance), state file %.1f MB\n",
			n, r.MS/1000, r.CPUMS/1000, r.CPUMS/float64(n), mb(r.StateBytes))
		if !b.opts.Keep {
			_ = os.RemoveAll(dir)
		}
		return r, nil
	}
	var small []Result
	for run := range smallScaleRuns {
		r, err := deploy(sc.SmallInstances, run)
		if err != nil {
			return Op{}, sc, err
		}
		small = append(small, r)
		sc.SmallCPUMSRuns = append(sc.SmallCPUMSRuns, round2(r.CPUMS/float64(sc.SmallInstances)))
	}
	sort.Slice(small, func(i, j int) bool { return small[i].CPUMS < small[j].CPUMS })
	large, err := deploy(sc.LargeInstances, 0)
	if err != nil {
		return Op{}, sc, err
	}
	res := [2]Result{small[len(small)/2], large}
	sc.SmallCPUMSPerInst = round2(res[0].CPUMS / float64(sc.SmallInstances))
	sc.LargeCPUMSPerInst = round2(res[1].CPUMS / float64(sc.LargeInstances))
	if sc.SmallCPUMSPerInst > 0 {
		sc.Ratio = round2(sc.LargeCPUMSPerInst / sc.SmallCPUMSPerInst)
	}
	sc.SmallWallMS, sc.LargeWallMS = res[0].MS, res[1].MS
	sc.SmallStateMB, sc.LargeStateMB = mb(res[0].StateBytes), mb(res[1].StateBytes)
	op := Op{Name: "scale", OursMS: sc.LargeCPUMSPerInst, GitMS: sc.SmallCPUMSPerInst, Ratio: sc.Ratio,
		OursRSSMB: res[1].RSSMB, GitRSSMB: res[0].RSSMB, StateMB: sc.LargeStateMB}
	return op, sc, nil
}

func mb(n int64) float64 { return round2(float64(n) / (1 << 20)) }
