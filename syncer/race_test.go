package syncer_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/syncer"
)

// A small pool, so that the two sides often edit the same attribute.
const raceFiles, raceAttrs = 2, 3

// raceInstance has one attribute per line, two blank lines apart, so that git's line merge
// (the human side rebases) only conflicts on the same attribute.
func raceInstance(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<instance name=%q", name)
	for k := 0; k < raceAttrs; k++ {
		fmt.Fprintf(&b, "\n\n\n  x%d=\"init\"", k)
	}
	b.WriteString("/>\n")
	return b.String()
}

func setAttrText(content, attr, val string) string {
	re := regexp.MustCompile(attr + `="[^"]*"`)
	return re.ReplaceAllString(content, attr+`="`+val+`"`)
}

// TestRacingWriters has a git-CLI writer commit and push to random attributes of random
// instance files while we write back our own edits, 200 rounds. Each round reads our edit's
// base at the start and, like a long step running, writes it back only after the human has
// pushed at least once more, so the remote has always moved and, from a small pool of files
// and attributes, often on the same attribute. At the end every edit of both sides is on the
// remote exactly once, or (ours) reported as a conflict with what a push-conflict
// intervention needs and never on the remote; the server never saw a non-fast-forward update.
//
// It is the package's longest test (65 s on an idle 2-core machine, minutes beside the other
// packages' tests in CI), and its rounds are git processes waiting on each other: they start
// before t.Parallel, in a goroutine, so that they run beside every other test of the package
// whatever order go test releases the parallel tests in, instead of after them. Each round
// has its own bound, for a hang; a slow machine only makes the rounds slower.
func TestRacingWriters(t *testing.T) {
	rounds := 200
	if testing.Short() {
		rounds = 40
	}
	race := startRace(t, rounds)
	t.Parallel()
	<-race.done
	if t.Failed() {
		return
	}
	race.check(t)
}

// race is TestRacingWriters' state: the fixture, our repo, and what each side did.
type race struct {
	f      *fixture
	r      *syncer.Repo
	rounds int
	done   chan struct{}
	known  string
	human  humanStats

	landed, conflicts, pending int
	moved                      int               // our pushes refused because the remote had moved
	ours                       map[string]string // value → landed commit
	conflicted                 []string
}

// startRace makes the fixture and starts the rounds and the human writer; done closes when
// both have stopped.
func startRace(t *testing.T, rounds int) *race {
	f := newFixture(t)
	for i := 0; i < raceFiles; i++ {
		f.write(fmt.Sprintf("instances/r%d.xml", i), raceInstance(fmt.Sprint("r", i)))
	}
	f.commit("race files")
	gitRun(t, f.human, "push", "-q", "origin", "main")
	gitRun(t, f.bare, "config", "receive.denyNonFastForwards", "true")
	installHook(t, f.bare, "pre-receive", `while read old new ref; do
  if [ "$old" != 0000000000000000000000000000000000000000 ] && ! git merge-base --is-ancestor "$old" "$new"; then echo "FORCE $ref" >> forces.log; fi
done; exit 0`)
	d := startGitDaemon(t, filepath.Dir(f.bare), 0)
	opts := f.options()
	opts.URL = d.url("remote.git")
	rc := &race{f: f, r: f.open(opts), rounds: rounds, done: make(chan struct{}), ours: map[string]string{}}
	rc.known = rc.r.Head()
	ctx, cancel := context.WithCancel(context.Background())
	// The human makes an edit per token: two per round, enough to move the remote while our
	// step runs and to race our push, without starving our retries.
	allow := make(chan struct{}, 2)
	humanDone := make(chan humanStats, 1)
	go func() { humanDone <- humanWriter(ctx, t, f, allow) }()
	go func() {
		defer close(rc.done)
		defer func() { cancel(); rc.human = <-humanDone }() // the writer stops before the test ends, also on Fatal
		for round := 0; round < rounds; round++ {
			rc.round(ctx, t, round, allow)
		}
	}()
	return rc
}

// round is one round of ours: sync, read the base, wait for the human to push, write back.
func (rc *race) round(ctx context.Context, t *testing.T, round int, allow chan struct{}) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute) // a bound for a hang, not for speed
	defer cancel()
	r := rc.r
	if res, err := r.Sync(ctx, rc.known); err != nil {
		t.Fatalf("round %d sync: %+v, %v", round, res, err)
	}
	start := r.Head()
	path := fmt.Sprintf("instances/r%d.xml", rand.IntN(raceFiles))
	attr := fmt.Sprintf("x%d", rand.IntN(raceAttrs))
	cur, err := r.ReadFile(start, path)
	if err != nil {
		t.Fatal(err)
	}
	base := attrValue(t, cur, attr)
	// Our step runs (its base is start) until the human has pushed an edit ...
	grant(allow)
	waitRemoteMoved(t, rc.f.bare, start)
	val := fmt.Sprintf("d%d", round)
	// ... and the human edits again, starting at a random moment of our push and its retries (backoff
	// 50-150 ms, fetch, push), so that it sometimes lands between our fetch and our push
	time.AfterFunc(time.Duration(rand.IntN(250))*time.Millisecond, func() { grant(allow) })
	out, err := r.WriteBack(ctx, []syncer.Change{change(val, path, attr, base, val)}, 10)
	rc.moved += out[0].Attempts
	switch out[0].Status {
	case syncer.OutcomeLanded:
		if err != nil {
			t.Fatalf("round %d: landed with error %v", round, err)
		}
		if out[0].Attempts < 2 {
			t.Fatalf("round %d: landed on the first push although the remote had moved from %s", round, start)
		}
		rc.landed++
		rc.moved--
		rc.ours[val] = out[0].Commit
	case syncer.OutcomeConflict:
		if err != nil {
			t.Fatalf("round %d: conflict with error %v", round, err)
		}
		rc.conflicts++
		rc.conflicted = append(rc.conflicted, val)
		checkConflict(t, rc.f.bare, out[0], path, attr, base, val)
	default:
		rc.pending++
		t.Logf("round %d: %s after %d attempts: %v", round, out[0].Status, out[0].Attempts, err)
	}
	rc.known = r.Head()
}

// check asserts the end state: every value introduced exactly once on the remote (landed), or
// never (conflict), no force, no merge, a healthy checkout.
func (rc *race) check(t *testing.T) {
	f, human := rc.f, rc.human
	log := gitRun(t, f.bare, "log", "-p", "--format=", "main")
	added := map[string]int{}
	for _, l := range strings.Split(log, "\n") {
		if m := regexp.MustCompile(`^\+\s+x\d+="([dh]\d+)"`).FindStringSubmatch(l); m != nil {
			added[m[1]]++
		}
	}
	for val, commit := range rc.ours {
		if added[val] != 1 {
			t.Errorf("our edit %s (commit %s) introduced %d times on the remote, want 1", val, commit, added[val])
		}
		gitRun(t, f.bare, "merge-base", "--is-ancestor", commit, "main")
	}
	for _, val := range rc.conflicted {
		if added[val] != 0 {
			t.Errorf("our conflicting edit %s is on the remote %d times, want 0", val, added[val])
		}
	}
	for _, val := range human.landed {
		if added[val] != 1 {
			t.Errorf("human edit %s introduced %d times, want 1", val, added[val])
		}
	}
	ourAdded := 0
	for val, n := range added {
		if strings.HasPrefix(val, "d") {
			ourAdded += n
		}
	}
	if ourAdded != rc.landed {
		t.Errorf("our values on the remote: %d, landed outcomes: %d", ourAdded, rc.landed)
	}
	if b, err := os.ReadFile(filepath.Join(f.bare, "forces.log")); err == nil {
		t.Errorf("the server saw non-fast-forward updates:\n%s", b)
	}
	if merges := gitRun(t, f.bare, "rev-list", "--merges", "main"); merges != "" {
		t.Errorf("merge commits on the remote")
	}
	gitRun(t, f.bare, "fsck", "--strict", "--no-progress")
	res, err := rc.r.Sync(ctxT(t), rc.known)
	if err != nil {
		t.Fatalf("final sync: %+v, %v", res, err)
	}
	checkHealthy(t, f.dir, f.tip())
	t.Logf("racing writers, %d rounds: ours landed %d, conflicts %d, pending %d, pushes refused (remote moved) %d; human edits landed %d, pushes refused %d; remote commits %s",
		rc.rounds, rc.landed, rc.conflicts, rc.pending, rc.moved, len(human.landed), human.rejected, gitRun(t, f.bare, "rev-list", "--count", "main"))
	if rc.landed+rc.conflicts+rc.pending != rc.rounds || rc.pending > 0 {
		t.Errorf("outcomes: landed %d + conflicts %d + pending %d, want %d with none pending", rc.landed, rc.conflicts, rc.pending, rc.rounds)
	}
	if !testing.Short() && (rc.landed == 0 || rc.conflicts == 0) {
		t.Errorf("the race provoked landed %d, conflicts %d: want both > 0 in %d rounds", rc.landed, rc.conflicts, rc.rounds)
	}
}

// grant lets the human writer make one more edit, unless two are still to be made.
func grant(allow chan<- struct{}) {
	select {
	case allow <- struct{}{}:
	default:
	}
}

func attrValue(t *testing.T, content []byte, attr string) string {
	t.Helper()
	m := regexp.MustCompile(attr + `="([^"]*)"`).FindSubmatch(content)
	if m == nil {
		t.Fatalf("no %s in %q", attr, content)
	}
	return string(m[1])
}

// waitRemoteMoved waits (at most 20 s) until the remote's main is no longer at tip. It polls
// the loose ref file, which receive-pack replaces by a rename, rather than start a git
// process every few milliseconds beside the git processes it waits for; a packed ref (no
// loose file) is asked of git.
func waitRemoteMoved(t *testing.T, bare, tip string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for remoteMain(t, bare) == tip {
		if time.Now().After(deadline) {
			t.Fatalf("the human writer pushed nothing for 20 s (remote still at %s)", tip)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func remoteMain(t *testing.T, bare string) string {
	b, err := os.ReadFile(filepath.Join(bare, "refs", "heads", "main"))
	if err != nil {
		return gitRun(t, bare, "rev-parse", "main")
	}
	return strings.TrimSpace(string(b))
}

// checkConflict asserts that a conflict outcome holds what a push-conflict intervention needs:
// the upstream commit whose version of the file Apply refused (a commit on the remote branch,
// where a human set the attribute to theirs), and Apply's error naming base, ours and theirs.
func checkConflict(t *testing.T, bare string, o syncer.Outcome, path, attr, base, ours string) {
	t.Helper()
	if o.Commit != "" || !errors.Is(o.Err, errConflict) || o.Upstream == "" {
		t.Fatalf("conflict %s: commit %q, err %v, upstream %q; want no commit, the merge conflict and the upstream commit", o.ID, o.Commit, o.Err, o.Upstream)
	}
	if typ, err := gitCmd(bare, "cat-file", "-t", o.Upstream); err != nil || strings.TrimSpace(typ) != "commit" {
		t.Fatalf("conflict %s: upstream %s is not a commit on the remote: %v %s", o.ID, o.Upstream, err, typ)
	}
	gitRun(t, bare, "merge-base", "--is-ancestor", o.Upstream, "main")
	theirs := attrValue(t, []byte(gitRun(t, bare, "show", o.Upstream+":"+path)), attr)
	if theirs == base || theirs == ours || !strings.HasPrefix(theirs, "h") {
		t.Fatalf("conflict %s: %s at upstream %s is %q; want a human's value, not base %q or ours %q", o.ID, attr, o.Upstream, theirs, base, ours)
	}
	if want := fmt.Sprintf("%s: base %q, ours %q, theirs %q", attr, base, ours, theirs); !strings.Contains(o.Err.Error(), want) {
		t.Fatalf("conflict %s: error %q does not name %s", o.ID, o.Err, want)
	}
	who := gitRun(t, bare, "log", "-1", "--format=%an", "-S", attr+`="`+theirs+`"`, o.Upstream, "--", path)
	if who != "Human" {
		t.Fatalf("conflict %s: %s=%q was introduced by %q, want the human", o.ID, attr, theirs, who)
	}
}

type humanStats struct {
	landed   []string // values the human pushed
	rejected int      // pushes the server refused (the remote had moved)
}

// humanWriter commits and pushes one edit with the git CLI for each token from allow, until ctx
// ends; on a rejected push it fetches, resets and re-applies its edit (a human who re-does the
// change).
func humanWriter(ctx context.Context, t *testing.T, f *fixture, allow <-chan struct{}) humanStats {
	var st humanStats
	for n := 0; ctx.Err() == nil; n++ {
		select {
		case <-allow:
		case <-ctx.Done():
			return st
		}
		path := fmt.Sprintf("instances/r%d.xml", rand.IntN(raceFiles))
		attr := fmt.Sprintf("x%d", rand.IntN(raceAttrs))
		val := fmt.Sprintf("h%d", n)
		for try := 0; ctx.Err() == nil; try++ {
			if _, err := gitCmd(f.human, "fetch", "-q", "origin"); err != nil {
				continue
			}
			if out, err := gitCmd(f.human, "reset", "-q", "--hard", "origin/main"); err != nil {
				t.Errorf("human reset: %v %s", err, out)
				return st
			}
			full := filepath.Join(f.human, filepath.FromSlash(path))
			b, err := os.ReadFile(full)
			if err != nil {
				t.Error(err)
				return st
			}
			if err := os.WriteFile(full, []byte(setAttrText(string(b), attr, val)), 0o644); err != nil {
				t.Error(err)
				return st
			}
			if out, err := gitCmd(f.human, "commit", "-q", "-am", "human "+val); err != nil {
				t.Errorf("human commit: %v %s", err, out)
				return st
			}
			if _, err := gitCmd(f.human, "push", "-q", "origin", "main"); err == nil {
				st.landed = append(st.landed, val)
				break
			}
			st.rejected++
		}
	}
	return st
}
