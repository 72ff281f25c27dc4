package syncer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

const raceFiles, raceAttrs = 4, 6

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

// TestRacingWriters has git-CLI writers commit and push to random attributes of random
// instance files while we write back our own edits, 200 rounds. At the end every edit of both
// sides is on the remote exactly once or reported as a conflict, and the server never saw a
// non-fast-forward update.
func TestRacingWriters(t *testing.T) {
	rounds := 200
	if testing.Short() {
		rounds = 40
	}
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
	r := f.open(opts)

	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	var wg sync.WaitGroup
	humanEdits := make(chan []string, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		humanEdits <- humanWriter(ctx, t, f)
	}()

	var landed, conflicts, pending int
	ours := map[string]string{} // value → landed commit
	known := r.Head()
	for round := 0; round < rounds; round++ {
		if res, err := r.Sync(ctx, known); err != nil {
			t.Fatalf("round %d sync: %+v, %v", round, res, err)
		}
		path := fmt.Sprintf("instances/r%d.xml", rand.IntN(raceFiles))
		attr := fmt.Sprintf("x%d", rand.IntN(raceAttrs))
		cur, err := r.ReadFile(r.Head(), path)
		if err != nil {
			t.Fatal(err)
		}
		base := regexp.MustCompile(attr + `="([^"]*)"`).FindStringSubmatch(string(cur))[1]
		val := fmt.Sprintf("d%d", round)
		out, err := r.WriteBack(ctx, []syncer.Change{change("d"+fmt.Sprint(round), path, attr, base, val)}, 10)
		switch out[0].Status {
		case syncer.OutcomeLanded:
			landed++
			ours[val] = out[0].Commit
		case syncer.OutcomeConflict:
			conflicts++
		default:
			pending++
			t.Logf("round %d: %s: %v", round, out[0].Status, err)
		}
		known = r.Head()
	}
	cancel()
	wg.Wait()
	human := <-humanEdits

	// every value: introduced exactly once on the remote (landed), or never (conflict)
	log := gitRun(t, f.bare, "log", "-p", "--format=", "main")
	added := map[string]int{}
	for _, l := range strings.Split(log, "\n") {
		if m := regexp.MustCompile(`^\+\s+x\d+="([dh]\d+)"`).FindStringSubmatch(l); m != nil {
			added[m[1]]++
		}
	}
	for val, commit := range ours {
		if added[val] != 1 {
			t.Errorf("our edit %s (commit %s) introduced %d times on the remote, want 1", val, commit, added[val])
		}
		gitRun(t, f.bare, "merge-base", "--is-ancestor", commit, "main")
	}
	for _, val := range human {
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
	if ourAdded != landed {
		t.Errorf("our values on the remote: %d, landed outcomes: %d", ourAdded, landed)
	}
	if b, err := os.ReadFile(filepath.Join(f.bare, "forces.log")); err == nil {
		t.Errorf("the server saw non-fast-forward updates:\n%s", b)
	}
	if merges := gitRun(t, f.bare, "rev-list", "--merges", "main"); merges != "" {
		t.Errorf("merge commits on the remote")
	}
	gitRun(t, f.bare, "fsck", "--strict", "--no-progress")
	res, err := r.Sync(ctxT(t), known)
	if err != nil {
		t.Fatalf("final sync: %+v, %v", res, err)
	}
	checkHealthy(t, f.dir, f.tip())
	t.Logf("racing writers, %d rounds: ours landed %d, conflicts %d, pending %d; human edits landed %d; remote commits %s",
		rounds, landed, conflicts, pending, len(human), gitRun(t, f.bare, "rev-list", "--count", "main"))
	if landed+conflicts+pending != rounds || pending > 0 {
		t.Errorf("outcomes: landed %d + conflicts %d + pending %d, want %d with none pending", landed, conflicts, pending, rounds)
	}
}

// humanWriter commits and pushes edits with the git CLI until ctx ends; on a rejected push it
// fetches, resets and re-applies its edit (a human who re-does the change). It returns the
// values it landed.
func humanWriter(ctx context.Context, t *testing.T, f *fixture) []string {
	var landed []string
	for n := 0; ctx.Err() == nil; n++ {
		path := fmt.Sprintf("instances/r%d.xml", rand.IntN(raceFiles))
		attr := fmt.Sprintf("x%d", rand.IntN(raceAttrs))
		val := fmt.Sprintf("h%d", n)
		for try := 0; ctx.Err() == nil; try++ {
			if _, err := gitCmd(f.human, "fetch", "-q", "origin"); err != nil {
				continue
			}
			if out, err := gitCmd(f.human, "reset", "-q", "--hard", "origin/main"); err != nil {
				t.Errorf("human reset: %v %s", err, out)
				return landed
			}
			full := filepath.Join(f.human, filepath.FromSlash(path))
			b, err := os.ReadFile(full)
			if err != nil {
				t.Error(err)
				return landed
			}
			if err := os.WriteFile(full, []byte(setAttrText(string(b), attr, val)), 0o644); err != nil {
				t.Error(err)
				return landed
			}
			if out, err := gitCmd(f.human, "commit", "-q", "-am", "human "+val); err != nil {
				t.Errorf("human commit: %v %s", err, out)
				return landed
			}
			if _, err := gitCmd(f.human, "push", "-q", "origin", "main"); err == nil {
				landed = append(landed, val)
				break
			}
		}
	}
	return landed
}
