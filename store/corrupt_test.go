package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	deployer "github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
)

// population is what populate wrote.
type population struct {
	journal       map[string]string // id -> final state
	interventions int
	runs          int
}

// populate fills a state file the way a daemon would over time: journal
// entries first (each then committed, so stale versions exist), then
// interventions, then many runs with step records.
func populate(t *testing.T, path string, runs int) population {
	t.Helper()
	clk := newClock()
	s, err := store.Open(path, store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := population{journal: map[string]string{}}
	for i := 0; i < 20; i++ {
		e, err := s.PutJournal(store.JournalEntry{Repo: "fra", Instance: fmt.Sprintf("inst%02d", i), File: fmt.Sprintf("instances/inst%02d.xml", i),
			BaseBlob: strings.Repeat("b", 40), Edits: []byte(`[{"op":"set","path":"/instance/app","attr":"version","value":"4.3.0"}]`), Reason: "configure"})
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
		if _, err := s.SetJournalState(e.ID, store.JournalCommitted, fmt.Sprintf("c%02d", i)); err != nil {
			t.Fatal(err)
		}
		p.journal[e.ID] = store.JournalCommitted
	}
	for i := 0; i < 30; i++ {
		iv, _, err := s.Raise(store.Intervention{Kind: "step-failed", Repo: "fra", Instance: fmt.Sprintf("inst%02d", i), Summary: "configure failed", Evidence: store.Evidence{Output: strings.Repeat("x", 200)}})
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			s.Resolve(iv.ID, "alice", "fixed")
		}
		p.interventions++
	}
	for i := 0; i < runs; i++ {
		clk.Advance(time.Minute)
		id, err := s.CreateRun(store.Run{Repo: "fra", Commit: fmt.Sprintf("%040d", i), Status: store.RunSucceeded,
			Instances: []store.InstanceOutcome{{Name: "inst01", Status: "succeeded"}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, step := range []string{"instance-configure", "instance-redeploy"} {
			s.AddStep(store.StepRecord{Run: id, StepResult: deployer.StepResult{Instance: "inst01", Step: step, Status: "succeeded", OutputTail: strings.Repeat("o", 100)}})
		}
		p.runs++
	}
	return p
}

// checkSalvage opens the damaged file at path and checks what must hold
// whatever the damage: Open succeeds, the damaged bytes are kept aside
// untouched, the new file is usable and passes bbolt's check.
func checkSalvage(t *testing.T, path string, damaged []byte) (*store.Store, *store.SalvageReport) {
	t.Helper()
	start := time.Now()
	s := mustOpenAt(t, path, store.Options{Timeout: time.Second})
	t.Logf("open with salvage took %v", time.Since(start))
	rep := s.Salvaged()
	if rep == nil {
		t.Fatal("damaged file opened without a salvage report")
	}
	t.Logf("salvage: %s", rep.Summary())
	t.Logf("recovered %v dropped %v incomplete %v raw %d problems %q", rep.Recovered, rep.Dropped, rep.Incomplete, rep.RawRecovered, rep.Problems)
	if rep.Kind != store.KindStateCorrupt || len(rep.Problems) == 0 || rep.Path != path {
		t.Fatalf("report %+v", rep)
	}
	kept, err := os.ReadFile(rep.CorruptPath)
	if err != nil {
		t.Fatalf("damaged file not kept: %v", err)
	}
	if !bytes.Equal(kept, damaged) {
		t.Fatal("damaged file was modified")
	}
	if !strings.HasPrefix(filepath.Base(rep.CorruptPath), "state.db.corrupt-") {
		t.Fatalf("aside name %s", rep.CorruptPath)
	}
	// The fresh file takes new records after the salvaged ones.
	runs, _ := s.Runs("", 1)
	id, err := s.CreateRun(store.Run{Repo: "fra"})
	if err != nil || (len(runs) > 0 && id <= runs[0].ID) {
		t.Fatalf("new run id %d after %v: %v", id, runs, err)
	}
	if _, _, err := s.Raise(store.Intervention{Kind: store.KindStateCorrupt, Repo: "fra", Summary: rep.Summary()}); err != nil {
		t.Fatal(err)
	}
	return s, rep
}

func checkJournal(t *testing.T, s *store.Store, want map[string]string) {
	t.Helper()
	got, err := s.Journal("")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	for _, e := range got {
		have[e.ID] = e.State
	}
	for id, st := range want {
		if have[id] != st {
			t.Errorf("journal %s: got state %q, want %q", id, have[id], st)
		}
	}
	pending, _ := s.Journal("fra", store.JournalCommitted)
	if len(pending) != len(want) {
		t.Errorf("journal index after salvage: got %d committed entries, want %d", len(pending), len(want))
	}
}

var (
	fixtureOnce sync.Once
	fixtureData []byte
	fixturePop  population
)

// bigFixture returns a copy, at a fresh path, of a populated state file
// with 1,500 runs (built once per test binary: fsync makes it slow).
func bigFixture(t *testing.T) (string, population) {
	t.Helper()
	fixtureOnce.Do(func() {
		path := filepath.Join(t.TempDir(), "fixture.db")
		fixturePop = populate(t, path, 1500)
		fixtureData, _ = os.ReadFile(path)
	})
	if fixtureData == nil {
		t.Fatal("fixture failed")
	}
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, fixtureData, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, fixturePop
}

func TestOpenSalvagesTruncatedFile(t *testing.T) {
	path, p := bigFixture(t)
	fi, _ := os.Stat(path)
	cut := fi.Size()*6/10 + 123
	if err := os.Truncate(path, cut); err != nil {
		t.Fatal(err)
	}
	damaged, _ := os.ReadFile(path)

	s, rep := checkSalvage(t, path, damaged)
	checkJournal(t, s, p.journal)
	ivs, _ := s.Interventions(store.InterventionFilter{IncludeResolved: true})
	if len(ivs) < p.interventions { // plus the one checkSalvage raised
		t.Errorf("got %d interventions, want at least %d", len(ivs), p.interventions)
	}
	if n := rep.Recovered["runs"]; n < p.runs/2 {
		t.Errorf("recovered %d of %d runs from a file cut at 60%%", n, p.runs)
	}
	// Step records come back with their runs, except where the newest
	// version of their page was cut off.
	runs, _ := s.Runs("fra", 0)
	with := 0
	for _, r := range runs {
		if steps, _ := s.Steps(r.ID); len(steps) == 2 {
			with++
		}
	}
	if with < len(runs)*9/10 {
		t.Errorf("%d of %d salvaged runs have their two step records", with, len(runs))
	}
	t.Logf("%d of %d salvaged runs have their two step records", with, len(runs))
}

// reachablePages returns the reachable leaf pages of the file whose bytes
// contain marker.
func reachablePages(t *testing.T, path string, marker string) (pages []int, pageSize int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pageSize = db.Info().PageSize
	data, _ := os.ReadFile(path)
	db.View(func(tx *bolt.Tx) error {
		for id := 2; (id+1)*pageSize <= len(data); id++ {
			info, err := tx.Page(id)
			if err != nil || info == nil || info.Type != "leaf" {
				continue
			}
			if bytes.Contains(data[id*pageSize:(id+1)*pageSize], []byte(marker)) {
				pages = append(pages, id)
			}
		}
		return nil
	})
	return pages, pageSize
}

func TestOpenSalvagesFileWithFlippedBytes(t *testing.T) {
	path, p := bigFixture(t)
	pages, pageSize := reachablePages(t, path, `"repo":"fra","commit"`)
	if len(pages) < 10 {
		t.Fatalf("only %d run pages", len(pages))
	}
	data, _ := os.ReadFile(path)
	// Flip every bit of the headers (id, flags, count) of three run pages
	// in the middle of the tree, and of a stretch of records in a fourth.
	for _, pg := range []int{pages[len(pages)/4], pages[len(pages)/2], pages[3*len(pages)/4]} {
		for i := 0; i < 16; i++ {
			data[pg*pageSize+i] ^= 0xFF
		}
	}
	pg := pages[len(pages)/3]
	for i := pageSize / 2; i < pageSize/2+64; i++ {
		data[pg*pageSize+i] ^= 0x5A
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	s, rep := checkSalvage(t, path, data)
	checkJournal(t, s, p.journal)
	open, _ := s.Interventions(store.InterventionFilter{Kind: "step-failed"})
	if len(open) != 20 {
		t.Errorf("got %d open step-failed interventions, want 20", len(open))
	}
	if n := rep.Recovered["runs"]; n != p.runs {
		t.Errorf("recovered %d of %d runs; records in pages with a destroyed header are carved out", n, p.runs)
	}
	if n := rep.Recovered["steps"]; n != 2*p.runs {
		t.Errorf("recovered %d of %d step records", n, 2*p.runs)
	}
}

// TestOpenNeverPanicsOnRandomDamage flips random bytes all over the file
// (meta pages included) with fixed seeds. Whatever the damage, Open must
// return a usable store over a file that passes bbolt's check, or an
// error; never panic or crash.
func TestOpenNeverPanicsOnRandomDamage(t *testing.T) {
	dir := t.TempDir()
	pristine := filepath.Join(dir, "pristine.db")
	populate(t, pristine, 300)
	orig, _ := os.ReadFile(pristine)
	salvaged := 0
	for seed := int64(1); seed <= 40; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			data := bytes.Clone(orig)
			for i := 0; i < 1+int(seed%8)*20; i++ {
				data[rng.Intn(len(data))] ^= byte(1 + rng.Intn(255))
			}
			if seed%5 == 0 { // and truncate some
				data = data[:rng.Intn(len(data))]
			}
			path := filepath.Join(t.TempDir(), "state.db")
			os.WriteFile(path, data, 0o600)
			s := mustOpenAt(t, path, store.Options{Timeout: time.Second})
			if s.Salvaged() != nil {
				salvaged++
			}
			if _, err := s.CreateRun(store.Run{Repo: "fra"}); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Logf("%d of 40 damaged files needed a salvage", salvaged)
	if salvaged == 0 {
		t.Fatal("no damage was detected at all")
	}
}

func TestOpenSalvagesGarbageFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	damaged := bytes.Repeat([]byte("not a bolt file "), 4096)
	os.WriteFile(path, damaged, 0o600)
	_, rep := checkSalvage(t, path, damaged)
	if len(rep.Recovered) != 0 && rep.Recovered["journal"]+rep.Recovered["runs"] != 0 {
		t.Fatalf("recovered %v from garbage", rep.Recovered)
	}
}

func TestFinishesSalvageInterruptedAfterMoveAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	// A crash after the damaged file was moved aside and before the
	// salvaged copy was renamed into place leaves only "<path>.salvage".
	populate(t, filepath.Join(dir, "x.db"), 10)
	if err := os.Rename(filepath.Join(dir, "x.db"), path+".salvage"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path+".corrupt-20260101T000000Z", []byte("damaged"), 0o600)
	s := mustOpenAt(t, path, store.Options{})
	if runs, _ := s.Runs("", 0); len(runs) != 10 {
		t.Fatalf("got %d runs, want the 10 of the salvaged copy", len(runs))
	}
	if rep := s.Salvaged(); rep == nil || rep.CorruptPath != path+".corrupt-20260101T000000Z" {
		t.Fatalf("got report %+v, want one naming the damaged file", rep)
	}
	if _, err := os.Stat(path + ".salvage"); !os.IsNotExist(err) {
		t.Fatalf("salvage copy still there: %v", err)
	}
}

// A damaged file another process holds is left alone: Open times out like
// bbolt would, and nothing is moved or salvaged.
func TestDamagedFileHeldByAnotherProcessIsLeftAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	damaged := bytes.Repeat([]byte("garbage!"), 8192)
	os.WriteFile(path, damaged, 0o600)
	holder, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(path, store.Options{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, berrors.ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, damaged) {
		t.Fatal("held file was changed or moved")
	}
	if aside, _ := filepath.Glob(path + ".corrupt-*"); len(aside) != 0 {
		t.Fatalf("held file was moved aside: %v", aside)
	}
}
