package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
)

// coordinatorBackend is a coordinator double over our own API: it keeps
// rollouts in a map, answers a known id as the coordinator does (New
// false), and a rollback asked twice with the rollback already submitted.
type coordinatorBackend struct {
	api.Backend
	mu       sync.Mutex
	rollouts map[string]api.Rollout
	order    []string
}

func (b *coordinatorBackend) SubmitRollout(_ context.Context, req api.RolloutRequest) (api.Rollout, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ro, ok := b.rollouts[req.ID]; ok {
		return ro, nil
	}
	ro := api.Rollout{ID: req.ID, State: api.RolloutRunning, Request: req, Created: opsT0, New: true,
		Waves: []api.RolloutWave{{Index: 1, Canary: true, Hosts: []string{req.Hosts[0].Name}, State: api.StepRunning}}}
	for _, h := range req.Hosts {
		ro.Hosts = append(ro.Hosts, api.RolloutHostState{Host: h, Wave: 1, State: "running"})
	}
	stored := ro
	stored.New = false
	b.rollouts[req.ID] = stored
	b.order = append(b.order, req.ID)
	return ro, nil
}

func (b *coordinatorBackend) Rollouts(context.Context, int) ([]api.Rollout, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []api.Rollout
	for _, id := range b.order {
		out = append(out, b.rollouts[id])
	}
	return out, nil
}

func (b *coordinatorBackend) Rollout(_ context.Context, id string) (api.Rollout, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ro, ok := b.rollouts[id]
	if !ok {
		return ro, api.Errorf(api.KindNotFound, "no rollout %s", id)
	}
	return ro, nil
}

func (b *coordinatorBackend) RolloutAction(ctx context.Context, id, action string, _ api.RolloutActionRequest) (api.Rollout, error) {
	orig, err := b.Rollout(ctx, id)
	if err != nil || action != "rollback" {
		return orig, err
	}
	if orig.RolledBackBy != "" {
		return b.Rollout(ctx, orig.RolledBackBy)
	}
	req := orig.Request
	req.ID, req.RollbackOf = id+"-rollback", id
	rb, err := b.SubmitRollout(ctx, req)
	b.mu.Lock()
	orig.RolledBackBy = rb.ID
	b.rollouts[id] = orig
	b.mu.Unlock()
	return rb, err
}

// serveCoordinator serves b over TCP with a bearer token, as a remote
// coordinator, and returns its URL and the token file.
func serveCoordinator(t *testing.T, b *coordinatorBackend) (url, tokenFile string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := api.NewHTTPServer((&api.Server{Backend: b, Token: "coord-token"}).Handler(true))
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	tokenFile = filepath.Join(t.TempDir(), "coord.token")
	writeFile(t, tokenFile, "coord-token\n")
	return "http://" + l.Addr().String(), tokenFile
}

// TestFleetDeployCoordinatorHints: fleet deploy submits to the coordinator
// given by --coordinator, and every command it prints to follow the
// rollout names that coordinator (from another machine, the local socket
// is another daemon); a second rollback says that the rollback exists and
// names it; fleet history takes --coordinator.
func TestFleetDeployCoordinatorHints(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // no client config
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "hosts.yaml"), "hosts:\n  - {name: h1, datacenter: fra, url: \"unix:///run/h1.sock\"}\n  - {name: h2, datacenter: ams, url: \"unix:///run/h2.sock\"}\n")
	b := &coordinatorBackend{rollouts: map[string]api.Rollout{}}
	url, tok := serveCoordinator(t, b)
	at := " --coordinator " + url + " --token-file " + tok
	deploy := []string{"fleet", "deploy", "--inventory", filepath.Join(dir, "hosts.yaml"), "--repo", "cc", "--select", "instances/*.xml", "--id", "r-1", "--coordinator", url, "--token-file", tok}

	out, stderr, code := runCLI(t, deploy...)
	want := "rollout r-1 submitted: repo cc, 2 host(s) in 1 wave(s); follow it with: deployer fleet show r-1 --wait" + at + "\n"
	if code != 0 || out != want {
		t.Errorf("fleet deploy: exit %d\n%s%s\nwant:\n%s", code, out, stderr, want)
	}
	out, _, code = runCLI(t, deploy...)
	if want := "rollout r-1: the coordinator has it already (running): nothing submitted again; follow it with: deployer fleet show r-1 --wait" + at + "\n"; code != 0 || out != want {
		t.Errorf("fleet deploy again: exit %d\n%s\nwant:\n%s", code, out, want)
	}
	// fleet rollout is the same command
	out, _, code = runCLI(t, append([]string{"fleet", "rollout"}, deploy[2:]...)...)
	if code != 0 || !strings.Contains(out, "the coordinator has it already") {
		t.Errorf("fleet rollout: exit %d\n%s", code, out)
	}

	rollback := []string{"fleet", "rollback", "r-1", "--coordinator", url, "--token-file", tok}
	out, stderr, code = runCLI(t, rollback...)
	if want := "rollback r-1-rollback of rollout r-1 submitted: 2 host(s) in 1 wave(s); follow it with: deployer fleet show r-1-rollback --wait" + at + "\n"; code != 0 || out != want {
		t.Errorf("fleet rollback: exit %d\n%s%s\nwant:\n%s", code, out, stderr, want)
	}
	out, _, code = runCLI(t, rollback...)
	if want := "rollout r-1 has a rollback already: r-1-rollback (running); nothing submitted again; follow it with: deployer fleet show r-1-rollback --wait" + at + "\n"; code != 0 || out != want {
		t.Errorf("fleet rollback again: exit %d\n%s\nwant:\n%s", code, out, want)
	}

	out, stderr, code = runCLI(t, "fleet", "history", "--coordinator", url, "--token-file", tok)
	if code != 0 || !strings.Contains(out, "\nr-1 ") || !strings.Contains(out, "\nr-1-rollback ") {
		t.Errorf("fleet history --coordinator: exit %d\n%s%s", code, out, stderr)
	}
	out, _, _ = runCLI(t, "fleet", "show", "r-1", "--coordinator", url, "--token-file", tok)
	if want := "rolled back by: r-1-rollback (deployer fleet show r-1-rollback" + at + ")"; !strings.Contains(out, want) {
		t.Errorf("fleet show lacks %q:\n%s", want, out)
	}
}

// TestFleetShowEscapesStoredText: every string fleet show prints from a
// rollout record, on stdout and in its error on stderr, is escaped: no
// escape sequence, no bidi override reaches the terminal.
func TestFleetShowEscapesStoredText(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	const evil = "\x1b[2J\u202eevil\r\nfake line"
	end := opsT0.Add(time.Minute)
	ro := api.Rollout{ID: "r-evil", State: api.RolloutFailed, Created: opsT0, Finished: &end, Stopped: "gate failed: " + evil, Who: "mallory" + evil,
		Request: api.RolloutRequest{Repo: "cc" + evil, Request: api.DeployRequest{Select: "instances/*.xml"}},
		Waves: []api.RolloutWave{{Index: 1, Hosts: []string{"h1" + evil}, State: api.StepDone,
			Gates: []api.RolloutGate{{Kind: api.GatePrometheus, State: api.StepFailed, Evidence: "value " + evil}}}},
		Hosts: []api.RolloutHostState{{Host: api.RolloutHost{Name: "h1" + evil, Datacenter: "fra" + evil}, Wave: 1, State: "failed",
			Deployment: "d-1" + evil, Counts: map[string]int{"failed": 1}, Error: "deploy: " + evil, Conflicts: []string{"alpha: " + evil}}},
		Events: []api.RolloutEvent{{At: opsT0, What: "host h1 failed: " + evil}}}
	b := &coordinatorBackend{rollouts: map[string]api.Rollout{ro.ID: ro}, order: []string{ro.ID}}
	url, tok := serveCoordinator(t, b)
	for _, args := range [][]string{
		{"fleet", "show", "r-evil"},
		{"fleet", "show", "r-evil", "--wait", "--poll", "100ms"},
		{"fleet", "history"},
	} {
		out, stderr, _ := runCLI(t, append(args, "--coordinator", url, "--token-file", tok)...)
		for _, bad := range []string{"\x1b", "\u202e", "\r"} {
			if strings.Contains(out, bad) || strings.Contains(stderr, bad) {
				t.Errorf("%v prints %q raw:\n%s\n%s", args, bad, out, stderr)
			}
		}
		if !strings.Contains(out+stderr, `\x1b[2J\u202eevil`) {
			t.Errorf("%v does not show the text escaped:\n%s\n%s", args, out, stderr)
		}
	}
}

// TestFleetIDDotRefused: '.' and '..' are no rollout id (the API's paths
// would be cleaned): --id and the ID argument are usage errors, before
// any daemon is asked.
func TestFleetIDDotRefused(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "hosts.yaml"), "hosts:\n  - {name: h1, datacenter: fra, url: \"unix:///run/h1.sock\"}\n")
	none := filepath.Join(dir, "none.sock")
	for _, id := range []string{".", ".."} {
		for _, args := range [][]string{
			{"fleet", "deploy", "--inventory", filepath.Join(dir, "hosts.yaml"), "--repo", "cc", "--select", "x", "--id", id},
			{"fleet", "deploy", "--in-process", "--inventory", filepath.Join(dir, "hosts.yaml"), "--repo", "cc", "--select", "x", "--id", id},
			{"fleet", "show", id},
			{"fleet", "pause", id},
			{"fleet", "retry", id, "--failed"},
			{"fleet", "rollback", id},
		} {
			_, stderr, code := runCLI(t, append([]string{"--socket", none}, args...)...)
			if code != exitUsage || !strings.Contains(stderr, "id \""+id+"\": want 1 to 64 letters") {
				t.Errorf("%v: exit %d, want 2 naming the id: %s", args, code, stderr)
			}
		}
	}
}

// TestFleetDeployNoCoordinator: without a daemon on the local socket,
// fleet deploy says what to do; flags of the other driver are refused.
func TestFleetDeployNoCoordinator(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts.yaml")
	writeFile(t, hosts, "hosts:\n  - {name: h1, datacenter: fra, url: \"unix:///run/h1.sock\"}\n")
	base := []string{"--socket", filepath.Join(dir, "none.sock"), "fleet", "deploy", "--inventory", hosts, "--repo", "cc", "--select", "instances/*.xml"}
	_, stderr, code := runCLI(t, base...)
	for _, want := range []string{"cannot reach the daemon at " + filepath.Join(dir, "none.sock"), "start the daemon here (deployer daemon)", "--coordinator URL", "--in-process"} {
		if code != exitError || !strings.Contains(stderr, want) {
			t.Errorf("no daemon: exit %d, stderr lacks %q:\n%s", code, want, stderr)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--in-process", "--approve"}, "--approve needs a coordinator"},
		{[]string{"--in-process", "--waves", "1,100%"}, "--waves needs a coordinator"},
		{[]string{"--in-process", "--coordinator", "http://127.0.0.1:1"}, "--coordinator names the daemon that would drive the rollout: give it or --in-process, not both"},
		{[]string{"--in-process", "--wait=false"}, "--in-process always waits"},
		{[]string{"--tickets", "per-instance"}, "--tickets is for --in-process"},
		{[]string{"--notify=false"}, "--notify is for --in-process"},
	} {
		_, stderr, code := runCLI(t, append(base, tc.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, want 2 with %q: %s", tc.args, code, tc.want, stderr)
		}
	}
}

// Outsider 19b #11: --coordinator URL without a token said '--remote
// needs --token-file', a flag the user had not typed. The message names
// the flag typed; --remote keeps its own.
func TestCoordinatorWithoutTokenNamesCoordinator(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "hosts.yaml"), "hosts:\n  - {name: h1, datacenter: fra, url: \"unix:///run/h1.sock\"}\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fleet", "deploy", "--inventory", filepath.Join(dir, "hosts.yaml"), "--repo", "cc", "--select", "x", "--coordinator", "http://127.0.0.1:9"}, "--coordinator needs --token-file"},
		{[]string{"fleet", "show", "r1", "--coordinator", "http://127.0.0.1:9"}, "--coordinator needs --token-file"},
		{[]string{"fleet", "show", "r1", "--coordinator", "http://127.0.0.1:9", "--ca-file", filepath.Join(dir, "hosts.yaml"), "--token-file", filepath.Join(dir, "hosts.yaml")}, "need an https:// --coordinator"},
		{[]string{"status", "--remote", "http://127.0.0.1:9"}, "--remote needs --token-file"},
	} {
		_, stderr, code := runCLI(t, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, want 2 with %q: %s", tc.args, code, tc.want, stderr)
		}
	}
}

// TestFleetShowDryRun: a dry-run rollout's state reads "succeeded (dry
// run)" in fleet show's header (-o table too) and in its fleet history
// row; a real one's does not.
func TestFleetShowDryRun(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	end := opsT0.Add(time.Minute)
	mk := func(id string, dry bool) api.Rollout {
		return api.Rollout{ID: id, State: api.RolloutSucceeded, Created: opsT0, Finished: &end, DryRun: dry, Who: "alice",
			Request: api.RolloutRequest{ID: id, Repo: "cc", Request: api.DeployRequest{Select: "instances/*.xml", DryRun: dry}},
			Waves:   []api.RolloutWave{{Index: 1, Canary: true, Hosts: []string{"h1"}, State: api.StepDone}},
			Hosts: []api.RolloutHostState{{Host: api.RolloutHost{Name: "h1", Datacenter: "fra"}, Wave: 1, State: "succeeded",
				Deployment: id + ".h1", Counts: map[string]int{"succeeded": 2}}}}
	}
	b := &coordinatorBackend{rollouts: map[string]api.Rollout{"r-dry": mk("r-dry", true), "r-real": mk("r-real", false)}, order: []string{"r-dry", "r-real"}}
	url, tok := serveCoordinator(t, b)
	at := []string{"--coordinator", url, "--token-file", tok}
	for _, args := range [][]string{{"fleet", "show", "r-dry"}, {"fleet", "show", "r-dry", "-o", "table"}} {
		out, stderr, code := runCLI(t, append(args, at...)...)
		if want := "rollout r-dry: succeeded (dry run); "; code != 0 || !strings.HasPrefix(out, want) {
			t.Errorf("%v: exit %d, want it to start with %q:\n%s%s", args, code, want, out, stderr)
		}
	}
	out, _, _ := runCLI(t, append([]string{"fleet", "show", "r-real"}, at...)...)
	if !strings.HasPrefix(out, "rollout r-real: succeeded; ") {
		t.Errorf("fleet show of a real rollout:\n%s", out)
	}
	out, stderr, code := runCLI(t, append([]string{"fleet", "history"}, at...)...)
	var dry, real string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "r-dry "):
			dry = l
		case strings.HasPrefix(l, "r-real "):
			real = l
		}
	}
	if code != 0 || !strings.Contains(dry, " succeeded (dry run) ") || strings.Contains(real, "dry run") || !strings.Contains(real, " succeeded ") {
		t.Errorf("fleet history: exit %d\n%s%s", code, out, stderr)
	}
}

// TestFleetDeployConfigHint: a coordinator found through --config (its
// listen.socket) is named again by --config in the command printed to
// follow the rollout: typed as shown, it reaches the same daemon.
func TestFleetDeployConfigHint(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // no client config
	t.Setenv("DEPLOYER_SOCKET", "")
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "dcfg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	b := &coordinatorBackend{rollouts: map[string]api.Rollout{}}
	hs := api.NewHTTPServer((&api.Server{Backend: b}).Handler(false))
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	cfg := filepath.Join(dir, "coord.yaml")
	writeFile(t, cfg, "host: coord\nstate_dir: "+filepath.Join(dir, "state")+"\nlisten: {socket: "+sock+"}\nrepos: []\n")
	writeFile(t, filepath.Join(dir, "hosts.yaml"), "hosts:\n  - {name: h1, datacenter: fra, url: \"unix:///run/h1.sock\"}\n")
	out, stderr, code := runCLI(t, "--config", cfg, "fleet", "deploy", "--inventory", filepath.Join(dir, "hosts.yaml"), "--repo", "cc", "--select", "instances/*.xml", "--id", "r-c")
	if want := "follow it with: deployer fleet show r-c --wait --config " + cfg + "\n"; code != 0 || !strings.HasSuffix(out, want) {
		t.Errorf("fleet deploy --config: exit %d\n%s%s\nwant the line to end %q", code, out, stderr, want)
	}
}
