package syncer_test

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

var errConflict = errors.New("conflict")

// setAttr returns an Apply that changes attr from base to val, as the manifest three-way
// merge would: unchanged when upstream already has val, a conflict when upstream changed it.
func setAttr(attr, base, val string) func([]byte) ([]byte, error) {
	re := regexp.MustCompile(attr + `="([^"]*)"`)
	return func(up []byte) ([]byte, error) {
		m := re.FindSubmatch(up)
		if m == nil {
			return nil, fmt.Errorf("%w: %s removed", errConflict, attr)
		}
		switch string(m[1]) {
		case val:
			return up, nil
		case base:
			return re.ReplaceAll(up, []byte(attr+`="`+val+`"`)), nil
		}
		return nil, fmt.Errorf("%w: %s: base %q, ours %q, theirs %q", errConflict, attr, base, val, m[1])
	}
}

func change(id, path, attr, base, val string) syncer.Change {
	return syncer.Change{
		ID: id, Path: path, Apply: setAttr(attr, base, val),
		Message:  fmt.Sprintf("instance-configure: %s: set /instance@%s %s → %s", path, attr, base, val),
		Trailers: map[string]string{"Deployer-Host": "test-host", "Deployer-Run": "run-1"},
	}
}

func wantStatuses(t *testing.T, out []syncer.Outcome, want ...syncer.OutcomeStatus) {
	t.Helper()
	if len(out) != len(want) {
		t.Fatalf("outcomes: got %d, want %d: %+v", len(out), len(want), out)
	}
	for i := range want {
		if out[i].Status != want[i] {
			t.Fatalf("outcome %d (%s): got %s (err %v), want %s", i, out[i].ID, out[i].Status, out[i].Err, want[i])
		}
	}
}

// checkLinear asserts the remote's history is linear (no merges) and has n commits.
func checkLinear(t *testing.T, bare string, n int) {
	t.Helper()
	if merges := gitRun(t, bare, "rev-list", "--merges", "main"); merges != "" {
		t.Fatalf("merges on remote: %s", merges)
	}
	if got := gitRun(t, bare, "rev-list", "--count", "main"); got != fmt.Sprint(n) {
		t.Fatalf("remote commits: got %s, want %d", got, n)
	}
}

func TestWriteBackLandsOneCommitPerChange(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	out, err := r.WriteBack(ctxT(t), []syncer.Change{
		change("c1", "instances/a.xml", "version", "1", "2"),
		change("c2", "instances/b.xml", "version", "1", "3"),
	}, 3)
	if err != nil {
		t.Fatalf("write-back: %v", err)
	}
	wantStatuses(t, out, syncer.OutcomeLanded, syncer.OutcomeLanded)
	tip := f.tip()
	if out[1].Commit != tip || r.Head() != tip {
		t.Fatalf("tip: remote %s, outcome %s, head %s", tip, out[1].Commit, r.Head())
	}
	checkHealthy(t, f.dir, tip)
	checkLinear(t, f.bare, 3)
	gitRun(t, f.bare, "fsck", "--strict", "--no-progress")
	if files := gitRun(t, f.bare, "show", "--format=", "--name-only", out[0].Commit); files != "instances/a.xml" {
		t.Fatalf("files of first commit: got %q", files)
	}
	msg := gitRun(t, f.bare, "log", "-1", "--format=%B", out[0].Commit)
	for _, want := range []string{"set /instance@version 1 → 2", "Deployer-Change: c1", "Deployer-Host: test-host"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("message %q lacks %q", msg, want)
		}
	}
	if got := gitRun(t, f.bare, "show", "main:instances/b.xml"); got != `<instance name="b" version="3"/>` {
		t.Fatalf("b.xml on remote: got %q", got)
	}
	// our own commits are recognised: a sync afterwards is clean, not diverged
	res, err := r.Sync(ctxT(t), tip)
	if err != nil || res.State != syncer.StateClean {
		t.Fatalf("sync after write-back: %+v, %v", res, err)
	}
}

func TestWriteBackRemoteMovedReappliesAndDropsEditsAlreadyUpstream(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.push("instances/a.xml", "<instance name=\"a\" version=\"1\" tier=\"silver\"/>\n", "tier")
	r := f.open(f.options())
	// the remote moves after our sync: another file, the same file but another attribute,
	// and an edit identical to ours
	f.push("instances/b.xml", "<instance name=\"b\" version=\"9\"/>\n", "human: b")
	f.push("instances/a.xml", "<instance name=\"a\" version=\"1\" tier=\"gold\"/>\n", "human: a tier")
	f.push("deployer.xml", "<deployer version=\"2\"/>\n", "human: manifest")
	out, err := r.WriteBack(ctxT(t), []syncer.Change{
		change("c1", "instances/a.xml", "version", "1", "2"),
		change("c2", "deployer.xml", "version", "1", "2"),
	}, 5)
	if err != nil {
		t.Fatalf("write-back: %v", err)
	}
	wantStatuses(t, out, syncer.OutcomeLanded, syncer.OutcomeDropped)
	if out[0].Attempts != 2 {
		t.Fatalf("attempts: got %d, want 2", out[0].Attempts)
	}
	if got := gitRun(t, f.bare, "show", "main:instances/a.xml"); got != `<instance name="a" version="2" tier="gold"/>` {
		t.Fatalf("a.xml: got %q", got)
	}
	checkLinear(t, f.bare, 6)
	checkHealthy(t, f.dir, f.tip())
}

func TestWriteBackConflictOnlyDropsThatChange(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	f.push("instances/a.xml", "<instance name=\"a\" version=\"7\"/>\n", "human: a 7")
	out, err := r.WriteBack(ctxT(t), []syncer.Change{
		change("c1", "instances/a.xml", "version", "1", "2"),
		change("c2", "instances/b.xml", "version", "1", "2"),
	}, 5)
	if err != nil {
		t.Fatalf("write-back: %v", err)
	}
	wantStatuses(t, out, syncer.OutcomeConflict, syncer.OutcomeLanded)
	if !errors.Is(out[0].Err, errConflict) || !strings.Contains(out[0].Err.Error(), `theirs "7"`) {
		t.Fatalf("conflict error: %v", out[0].Err)
	}
	if out[0].Upstream != gitRun(t, f.bare, "rev-parse", "main~1") {
		t.Fatalf("conflict upstream: got %s", out[0].Upstream)
	}
	checkLinear(t, f.bare, 3)
	checkHealthy(t, f.dir, f.tip())
}

func TestWriteBackRefusesAPathThatIsADirectory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	tip := f.tip()
	out, err := r.WriteBack(ctxT(t), []syncer.Change{
		change("c1", "instances/a.xml", "version", "1", "2"),
		{ID: "c2", Path: "instances", Apply: func([]byte) ([]byte, error) { return []byte("x"), nil }},
	}, 3)
	if syncer.KindOf(err) != syncer.KindInternal || !strings.Contains(err.Error(), "instances is a directory") {
		t.Fatalf("write-back: got %v, want an internal error naming the directory", err)
	}
	wantStatuses(t, out, syncer.OutcomePending, syncer.OutcomePending)
	if f.tip() != tip || r.Head() != tip {
		t.Fatalf("remote %s, HEAD %s; want both still at %s", f.tip(), r.Head(), tip)
	}
	checkHealthy(t, f.dir, tip)
}
