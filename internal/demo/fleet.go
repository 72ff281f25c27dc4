package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/fleet"
	"github.com/sre-tools/deployer/internal/demo/gitrepo"
)

// The fleet demo: N clusters, each a host with its own daemon (in this
// process) and its own clusterconfig remote, spread round-robin over three
// datacenters; one fleet deployment of web 4.3.0 with a canary and host
// buckets, submitted to the canary cluster's daemon, which keeps and drives
// it (the coordinator). One cluster's owner froze an instance (its configure step fails),
// and on another a human pins an instance's image while its configure step
// pins it too (a push-conflict): both hosts end failed, within the budget,
// and every other host succeeds. Then a rollout that a daemon keeps and
// drives, gated by a bake and an approval, and its rollback
// (fleet_rollout.go).

// fleetDemoDCs are the datacenters the clusters are spread over.
var fleetDemoDCs = []string{"fra", "ams", "sjc"}

// fleetDemoCustomers name the instances; each cluster's are suffixed with it.
var fleetDemoCustomers = []string{"acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell", "soylent", "wonka", "oscorp"}

// MinFleetClusters is the smallest fleet the story needs: the canary, the
// cluster with the frozen instance, the one with the conflict, and a
// second healthy cluster for the rollout's second wave.
const MinFleetClusters = 4

const (
	fleetDemoRepo        = "clusterconfig"
	fleetDemoVersion     = "4.3.0"
	fleetDemoHotfixImage = "registry.example/web:4.2.1-hotfix7"
	fleetDemoWaves       = 3 // host waves after the canary
)

// fleetCluster is one simulated cluster: its host, remote and daemon.
type fleetCluster struct {
	host      fleet.Host
	remote    string
	socket    string
	instances []string
	client    *api.Client
	done      chan struct{}
	err       error // runDaemon's
}

type fleetDemo struct {
	Options
	dir      string
	marks    string
	clusters []*fleetCluster
	frozen   int       // the cluster whose first instance is frozen
	conflict int       // the cluster where a human pins an image mid-deployment
	bob      *operator // the human on the conflict cluster, once he pinned
}

// RunFleet plays `deployer demo --fleet`: it creates clusters throwaway
// clusterconfig remotes, starts a daemon per cluster in this process, runs
// one fleet deployment across them and prints the table. It fails when
// anything did not end as described.
func RunFleet(ctx context.Context, o Options, clusters int) error {
	if clusters < MinFleetClusters {
		return fmt.Errorf("fleet demo: want at least %d clusters, not %d", MinFleetClusters, clusters)
	}
	start := time.Now()
	o.Out = &lockedWriter{w: o.Out}
	err := o.inTempDir("deployer-fleet-demo-", func(dir string) error {
		fd := &fleetDemo{Options: o, dir: dir, marks: filepath.Join(dir, "marks"), frozen: clusters / 2, conflict: clusters - 1}
		return fd.run(ctx, clusters)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "Fleet demo of %d clusters finished in %s: everything ended as described.\n", clusters, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// run sets the clusters up, runs their daemons while the story plays, and
// stops them.
func (fd *fleetDemo) run(ctx context.Context, clusters int) error {
	if err := fd.setUp(ctx, clusters); err != nil {
		return fmt.Errorf("fleet demo set-up: %w", err)
	}
	dctx, stop := context.WithCancel(ctx)
	fd.startDaemons(dctx)
	err := fd.play(ctx)
	stop()
	if serr := fd.waitStopped(); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("fleet demo: %w", err)
	}
	return nil
}

func (fd *fleetDemo) say(format string, args ...any) {
	fmt.Fprintf(fd.Out, format+"\n", args...)
}

// play waits for the daemons, deploys across the fleet and checks the outcome.
func (fd *fleetDemo) play(ctx context.Context) error {
	if err := fd.waitReady(ctx); err != nil {
		return err
	}
	ro, err := fd.deploy(ctx)
	if err != nil {
		return err
	}
	hosts := fd.hosts()
	s, err := fleet.Status(ctx, hosts, ro.ID, nil)
	if err != nil {
		return err
	}
	fd.say("\n== The fleet status, asked from the %d daemons (deployer fleet status %s) ==", len(hosts), ro.ID)
	if err := fd.Print.FleetStatus(fd.Out, s); err != nil {
		return err
	}
	if err := fd.check(ro, s); err != nil {
		return err
	}
	if err := fd.printInterventions(ctx, s.Hosts); err != nil {
		return err
	}
	if err := fd.checkRemote(ctx); err != nil {
		return err
	}
	return fd.rolloutAct(ctx)
}

// setUp creates every cluster's remote with its first commit.
func (fd *fleetDemo) setUp(ctx context.Context, n int) error {
	if err := os.MkdirAll(fd.marks, 0o755); err != nil {
		return err
	}
	perDC := map[string]int{}
	for i := range n {
		dc := fleetDemoDCs[i%len(fleetDemoDCs)]
		perDC[dc]++
		name := fmt.Sprintf("%s-dep%02d", dc, perDC[dc])
		c := &fleetCluster{
			host:   fleet.Host{Name: name, Datacenter: dc, URL: "unix://" + filepath.Join(fd.dir, "sock", name+".sock")},
			remote: filepath.Join(fd.dir, "remote", name+".git"),
			socket: filepath.Join(fd.dir, "sock", name+".sock"),
			done:   make(chan struct{}),
		}
		for j := range 2 + i%2 {
			c.instances = append(c.instances, fleetDemoCustomers[(i*3+j)%len(fleetDemoCustomers)]+"-"+name[:3]+name[len(name)-2:])
		}
		if err := fd.seed(ctx, i, c); err != nil {
			return fmt.Errorf("cluster %s: %w", name, err)
		}
		fd.clusters = append(fd.clusters, c)
	}
	if err := os.MkdirAll(filepath.Join(fd.dir, "sock"), 0o755); err != nil {
		return err
	}
	fd.say("Created %d throwaway clusterconfig remotes in %s, one per cluster, over %s;", n, filepath.Join(fd.dir, "remote"), strings.Join(fleetDemoDCs, ", "))
	fd.say("each has deployer.xml, 2 or 3 instances (web 4.2.1) and the steps instance-configure and instance-redeploy.")
	fd.say("%s's owner froze %s (its configure step refuses it).", fd.clusters[fd.frozen].host.Name, fd.clusters[fd.frozen].instances[0])
	return nil
}

// seed makes cluster i's bare remote and pushes its first commit as its owner.
func (fd *fleetDemo) seed(ctx context.Context, i int, c *fleetCluster) error {
	if err := gitrepo.InitBare(c.remote); err != nil {
		return fmt.Errorf("create remote: %w", err)
	}
	op, err := newOperator(filepath.Join(fd.dir, "owners", c.host.Name), c.remote, "owner-"+c.host.Name)
	if err != nil {
		return err
	}
	files := map[string]string{
		"deployer.xml":         strings.NewReplacer("clusterconfig-demo", fleetDemoRepo, "demo-dep01", c.host.Name).Replace(demoFiles["deployer.xml"]),
		"scripts/configure.sh": demoFiles["scripts/configure.sh"],
		"scripts/redeploy.sh":  demoFiles["scripts/redeploy.sh"],
		"freeze.list":          demoFiles["freeze.list"],
	}
	if i == fd.frozen {
		files["freeze.list"] += c.instances[0] + "\n"
	}
	for j, in := range c.instances {
		files["instances/"+in+".xml"] = fleetDemoInstance(in, j, c.host.Datacenter)
	}
	for path, content := range files {
		if err := op.write(path, content); err != nil {
			return err
		}
	}
	_, err = op.commitAndPush(ctx, fmt.Sprintf("%s: %d instances and their steps", c.host.Name, len(c.instances)))
	return err
}

func fleetDemoInstance(name string, j int, dc string) string {
	tier := []string{"gold", "silver"}[j%2]
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<instance name="%s" tier="%s">
  <app name="web" version="4.2.1" image="%s" replicas="%d"/>
  <db host="db%d.%s.internal" size="medium"/>
</instance>
`, name, tier, demoImage("4.2.1"), 2+j, j+1, dc)
}

// startDaemons runs one daemon per cluster in this process, each with its
// own state directory and socket, polling its remote every 500ms.
func (fd *fleetDemo) startDaemons(ctx context.Context) {
	// The step scripts find the demo's marks through an allow-listed variable.
	os.Setenv("DEMO_MARKS", fd.marks)
	for _, c := range fd.clusters {
		run, err := fd.Daemon(c.host.Name+".yaml", daemonConfig{host: c.host.Name, datacenter: c.host.Datacenter,
			stateDir: filepath.Join(fd.dir, "state", c.host.Name), socket: c.socket, repo: fleetDemoRepo, url: c.remote, poll: "500ms"}.yaml())
		if err != nil {
			c.err = err
			close(c.done)
			continue
		}
		c.client = api.NewUnixClient(c.socket)
		go func() {
			defer close(c.done)
			c.err = run(ctx, zerolog.Nop())
		}()
	}
	fd.say("Started %d daemons in this process, one per cluster, each with its own state and socket.", len(fd.clusters))
}

// waitReady waits until every daemon has cloned its remote.
func (fd *fleetDemo) waitReady(ctx context.Context) error {
	start := time.Now()
	deadline := start.Add(90 * time.Second)
	for _, c := range fd.clusters {
		for {
			st, err := c.client.Status(ctx)
			if err == nil && len(st.Repos) == 1 && st.Repos[0].Deployed != "" && st.Repos[0].Running == nil {
				break
			}
			select {
			case <-c.done:
				return fmt.Errorf("daemon of %s stopped: %v", c.host.Name, c.err)
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("daemon of %s not ready after %s: %v", c.host.Name, time.Since(start).Round(time.Second), err)
			}
		}
	}
	fd.say("All %d daemons cloned their remote in %s.", len(fd.clusters), time.Since(start).Round(100*time.Millisecond))
	return nil
}

func (fd *fleetDemo) hosts() []fleet.Host {
	hosts := make([]fleet.Host, len(fd.clusters))
	for i, c := range fd.clusters {
		hosts[i] = c.host
	}
	return hosts
}

// deploy submits the fleet deployment to the canary cluster's daemon,
// which keeps and drives it (the coordinator), and follows it while a
// human on the conflict cluster pins an image under the configure step's
// feet.
func (fd *fleetDemo) deploy(ctx context.Context) (api.Rollout, error) {
	n := len(fd.clusters)
	coord := fd.clusters[0]
	var hosts []api.RolloutHost
	for _, c := range fd.clusters {
		hosts = append(hosts, api.RolloutHost{Name: c.host.Name, Datacenter: c.host.Datacenter, URL: c.host.URL})
	}
	req := api.RolloutRequest{
		ID: "r-web-" + fleetDemoVersion, Hosts: hosts, Repo: fleetDemoRepo,
		HostBucket: (n - 1 + fleetDemoWaves - 1) / fleetDemoWaves, MaxFailedHosts: 3, Poll: "200ms",
		Request: api.DeployRequest{Select: "instances/*.xml", Set: []string{"/instance/app@version=" + fleetDemoVersion}, Reason: "web " + fleetDemoVersion + " across the fleet", Who: "alice"},
	}
	fd.say("\n== alice deploys web %s to every cluster: a rollout that %s's daemon keeps and drives, a canary, then %d hosts a wave, round-robin over the datacenters ==", fleetDemoVersion, coord.host.Name, req.HostBucket)
	fd.say("deployer fleet deploy --coordinator %s --fleet hosts.yaml --repo %s --select 'instances/*.xml' --set '/instance/app@version=%s' --host-bucket %d --max-failed-hosts %d --id %s --wait",
		coord.host.Name, fleetDemoRepo, fleetDemoVersion, req.HostBucket, req.MaxFailedHosts, req.ID)
	c := fd.clusters[fd.conflict]
	held := c.instances[len(c.instances)-1]
	if err := os.WriteFile(filepath.Join(fd.marks, "hold-"+held), nil, 0o644); err != nil {
		return api.Rollout{}, err
	}
	hctx, cancel := context.WithCancel(ctx)
	humanErr := make(chan error, 1)
	go func() { humanErr <- fd.humanPins(hctx, c, held) }()
	start := time.Now()
	ro, err := coord.client.SubmitRollout(ctx, req)
	if err == nil {
		fd.say("rollout %s submitted: repo %s, %d host(s) in %d wave(s)", ro.ID, fleetDemoRepo, len(ro.Hosts), len(ro.Waves))
		ro, err = fd.followRollout(ctx, coord, ro.ID)
	}
	cancel()
	herr := <-humanErr
	if err != nil {
		return ro, err
	}
	fd.say("\nThe fleet deployment took %s.", time.Since(start).Round(100*time.Millisecond))
	fd.printRollout(ro)
	if herr != nil {
		return ro, fmt.Errorf("the human on %s: %w", c.host.Name, herr)
	}
	return ro, nil
}

// humanPins waits until the configure step of instance on c runs, then pins
// its image by hand (another value for the attribute the step writes), and
// lets the step go on.
func (fd *fleetDemo) humanPins(ctx context.Context, c *fleetCluster, instance string) error {
	heldMark := filepath.Join(fd.marks, "held-"+instance)
	for {
		if _, err := os.Stat(heldMark); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("instance-configure of %s never started", instance)
		case <-time.After(50 * time.Millisecond):
		}
	}
	bob, err := cloneOperator(ctx, filepath.Join(fd.dir, "bob"), c.remote, "bob")
	if err != nil {
		return err
	}
	file := "instances/" + instance + ".xml"
	if err := bob.replace(file, `image="`+demoImage("4.2.1")+`"`, `image="`+fleetDemoHotfixImage+`"`); err != nil {
		return err
	}
	if _, err := bob.commitAndPush(ctx, instance+": pin web to the 4.2.1 hotfix image"); err != nil {
		return err
	}
	fd.bob = bob
	fd.say("  (meanwhile on %s, bob pinned %s's web image to a hotfix build while instance-configure pinned it too)", c.host.Name, instance)
	_ = os.Remove(heldMark)
	return os.WriteFile(filepath.Join(fd.marks, "go-"+instance), nil, 0o644)
}

// check says what did not end as described: the frozen and the conflict
// clusters failed with one instance each, every other host succeeded, and
// the status from the daemons agrees.
func (fd *fleetDemo) check(ro api.Rollout, s fleet.Summary) error {
	var problems []string
	for i, h := range s.Hosts {
		want, bad := fleet.HostSucceeded, 0
		if i == fd.frozen || i == fd.conflict {
			want, bad = fleet.HostFailed, 1
		}
		notOK := len(fd.clusters[i].instances) - h.Counts["succeeded"]
		if h.State != want || notOK != bad || ro.Hosts[i].State != string(want) {
			problems = append(problems, fmt.Sprintf("%s: %s (rollout: %s) with %s, want %s with %d instance(s) not succeeded", h.Host.Name, h.State, ro.Hosts[i].State, fd.Print.Counts(h.Counts), want, bad))
		}
	}
	if f := fd.clusters[fd.frozen]; !hasInstance(s.Hosts[fd.frozen], f.instances[0], "failed") {
		problems = append(problems, fmt.Sprintf("%s: want %s failed", f.host.Name, f.instances[0]))
	}
	for _, w := range ro.Waves {
		if w.State != api.StepDone {
			problems = append(problems, fmt.Sprintf("wave %d %s: the rollout stopped (%s)", w.Index, w.State, ro.Stopped))
		}
	}
	n := len(fd.clusters)
	if s.HostCounts[fleet.HostSucceeded] != n-2 || s.HostCounts[fleet.HostFailed] != 2 {
		problems = append(problems, fmt.Sprintf("fleet status: %s, want %d succeeded, 2 failed", fd.Print.HostCounts(s.HostCounts), n-2))
	}
	if len(problems) > 0 {
		return errors.New("not as described:\n  " + strings.Join(problems, "\n  "))
	}
	return nil
}

func hasInstance(h fleet.HostResult, name, status string) bool {
	for _, in := range h.Instances {
		if in.Name == name && string(in.Status) == status {
			return true
		}
	}
	return false
}

// printInterventions lists the open interventions of the failed hosts: a
// step-failed for the frozen instance, a push-conflict for bob's pin.
func (fd *fleetDemo) printInterventions(ctx context.Context, hosts []fleet.HostResult) error {
	fd.say("\n== What on-call sees on the failed hosts (deployer interventions) ==")
	t := newTable(fd.Out)
	fmt.Fprintln(t, "DC\tHOST\tID\tKIND\tINSTANCE\tSUMMARY")
	kinds := map[string]map[string]bool{}
	for i, h := range hosts {
		if !h.Failed() {
			continue
		}
		ivs, err := fd.clusters[i].client.Interventions(ctx, false)
		if err != nil {
			return fmt.Errorf("interventions of %s: %w", h.Host.Name, err)
		}
		kinds[h.Host.Name] = map[string]bool{}
		for _, iv := range ivs {
			kinds[h.Host.Name][iv.Kind] = true
			fmt.Fprintf(t, "%s\t%s\t%d\t%s\t%s\t%s\n", h.Host.Datacenter, h.Host.Name, iv.ID, iv.Kind, dash(iv.Instance), firstLine(iv.Summary))
		}
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if f := fd.clusters[fd.frozen].host.Name; !kinds[f][string(deployer.KindStepFailed)] {
		return fmt.Errorf("want a step-failed intervention on %s", f)
	}
	if c := fd.clusters[fd.conflict].host.Name; !kinds[c][string(deployer.KindPushConflict)] {
		return fmt.Errorf("want a push-conflict intervention on %s", c)
	}
	return nil
}

// checkRemote checks that bob's pin stayed on the conflict cluster's remote
// beside the new version: the daemon did not clobber him.
func (fd *fleetDemo) checkRemote(ctx context.Context) error {
	c, bob := fd.clusters[fd.conflict], fd.bob
	if err := bob.pull(ctx); err != nil {
		return err
	}
	in := c.instances[len(c.instances)-1]
	got, err := bob.read("instances/" + in + ".xml")
	if err != nil {
		return err
	}
	if !strings.Contains(got, `image="`+fleetDemoHotfixImage+`"`) || !strings.Contains(got, `version="`+fleetDemoVersion+`"`) {
		return fmt.Errorf("%s's remote: want bob's hotfix image and web %s in %s, got:\n%s", c.host.Name, fleetDemoVersion, in, got)
	}
	fd.say("\nOn %s's remote, %s has web %s and bob's hotfix image: the daemon did not clobber him.", c.host.Name, in, fleetDemoVersion)
	return nil
}

// waitStopped waits for every daemon to stop and returns the first error
// one stopped with.
func (fd *fleetDemo) waitStopped() error {
	var first error
	for _, c := range fd.clusters {
		<-c.done
		if c.err != nil && first == nil {
			first = fmt.Errorf("daemon of %s: %w", c.host.Name, c.err)
		}
	}
	return first
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// lockedWriter serializes writes: the waves and the human on the conflict
// cluster report from different goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
