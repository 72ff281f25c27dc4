package store_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sre-tools/deployer/store"
)

func TestMain(m *testing.M) {
	if path := os.Getenv("STORE_TEST_COMPACT_LOOP"); path != "" {
		compactLoop(path)
		return
	}
	if path := os.Getenv("STORE_TEST_OUTBOX_LOOP"); path != "" {
		outboxLoop(path)
		return
	}
	os.Exit(m.Run())
}

// compactLoop is the child process of TestCompactSurvivesKill: it adds
// runs and compacts forever, printing how many runs are durable.
func compactLoop(path string) {
	s, err := store.Open(path, store.Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i := 1; ; i++ {
		for j := 0; j < 5+i%17; j++ { // vary where the kill lands
			if _, err := s.CreateRun(store.Run{Repo: "fra", Status: store.RunSucceeded}); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
		}
		fmt.Println("compacting")
		if _, err := s.Compact(); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		runs, _ := s.Runs("", 0)
		fmt.Println("durable", len(runs))
	}
}

func TestCompactShrinksAndKeepsEverything(t *testing.T) {
	clk := newClock()
	s := mustOpenStore(t, store.Options{Now: clk.Now})
	j, _ := s.PutJournal(store.JournalEntry{Repo: "fra", File: "f.xml"})
	iv, _, _ := s.Raise(store.Intervention{Kind: "auth-failed", Repo: "fra"})
	var last store.RunID
	for i := 0; i < 1000; i++ {
		last, _ = s.CreateRun(store.Run{Repo: "fra", Status: store.RunSucceeded, Error: strings.Repeat("e", 500)})
	}
	if _, err := s.Prune(store.Retention{Runs: store.Limit{MaxCount: 10}}); err != nil {
		t.Fatal(err)
	}
	st, err := s.Compact()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compacted %d -> %d bytes", st.Before, st.After)
	if st.After >= st.Before/4 {
		t.Fatalf("compaction got %d -> %d bytes, want under a quarter", st.Before, st.After)
	}
	if fi, _ := os.Stat(s.Path()); fi.Size() != st.After {
		t.Fatalf("file is %d bytes, stats say %d", fi.Size(), st.After)
	}
	if _, err := os.Stat(s.Path() + ".compact"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
	if runs, _ := s.Runs("fra", 0); len(runs) != 10 || runs[0].ID != last {
		t.Fatalf("got %d runs, newest %d; want 10, newest %d", len(runs), runs[0].ID, last)
	}
	if id, _ := s.CreateRun(store.Run{Repo: "fra"}); id != last+1 {
		t.Fatalf("sequence after compaction: got %d, want %d", id, last+1)
	}
	if _, err := s.JournalEntry(j.ID); err != nil {
		t.Fatal(err)
	}
	if _, isNew, _ := s.Raise(store.Intervention{Kind: "auth-failed", Repo: "fra"}); isNew {
		t.Fatalf("open intervention %d lost its index in compaction", iv.ID)
	}
}

func TestCompactWhileWriting(t *testing.T) {
	s := mustOpenStore(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, err := s.CreateRun(store.Run{Repo: "fra"}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 0; i < 5; i++ {
		fmt.Println("compacting")
		if _, err := s.Compact(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if runs, _ := s.Runs("", 0); len(runs) != 200 {
		t.Fatalf("got %d runs, want 200", len(runs))
	}
}

func TestOpenDropsLeftoverCompactionCopy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	populate(t, path, 5)
	os.WriteFile(path+".compact", []byte("half-written"), 0o600)
	s := mustOpenAt(t, path, store.Options{})
	if runs, _ := s.Runs("", 0); len(runs) != 5 || s.Salvaged() != nil {
		t.Fatalf("got %d runs, salvage %v; want the original 5", len(runs), s.Salvaged())
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Fatalf("leftover copy still there: %v", err)
	}
}

// TestCompactSurvivesKill kills -9, five times over, a process that adds
// runs and compacts in a loop, at a different point each time, and checks
// the file it leaves behind is sound and has every run it reported
// durable.
func TestCompactSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	midway := 0
	defer func() { t.Logf("%d of 5 kills left a half-written compaction copy", midway) }()
	for round := 0; round < 5; round++ {
		durable := killCompactor(t, path, 3+round*2) // runs in the file, as the child last saw it
		if _, err := os.Stat(path + ".compact"); err == nil {
			midway++ // killed while the copy was being written
		}
		s, err := store.Open(path, store.Options{})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if s.Salvaged() != nil {
			t.Fatalf("round %d: file needed a salvage after kill -9: %+v", round, s.Salvaged())
		}
		runs, _ := s.Runs("", 0)
		s.Close()
		checkFile(t, path)
		if len(runs) < durable {
			t.Fatalf("round %d: got %d runs, the child had made %d durable", round, len(runs), durable)
		}
		if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
			t.Fatalf("round %d: leftover compaction copy after open: %v", round, err)
		}
	}
}

// killCompactor runs compactLoop on path until it has compacted n times,
// kills it with SIGKILL as soon as it says it has started the next
// compaction, and returns the number of runs it last reported durable.
func killCompactor(t *testing.T, path string, n int) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "STORE_TEST_COMPACT_LOOP="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	durable, seen := 0, 0
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		switch {
		case len(f) == 1 && f[0] == "compacting":
		case len(f) == 2 && f[0] == "durable":
			durable, _ = strconv.Atoi(f[1])
			seen++
			continue
		default:
			t.Fatalf("child: %s", lines.Text())
		}
		if seen >= n {
			break // the child is inside Compact now: kill it there
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if seen < n {
		t.Fatalf("child compacted only %d times before the deadline", seen)
	}
	return durable
}

func TestBackupIsAConsistentOnlineCopy(t *testing.T) {
	s := mustOpenStore(t)
	for i := 0; i < 100; i++ {
		s.CreateRun(store.Run{Repo: "fra"})
	}
	s.PutJournal(store.JournalEntry{Repo: "fra", File: "f.xml"})
	stop := make(chan struct{})
	done := make(chan error)
	go func() { // a writer keeps going during the backup
		for {
			select {
			case <-stop:
				close(done)
				return
			default:
			}
			if _, err := s.CreateRun(store.Run{Repo: "fra"}); err != nil {
				done <- err
				return
			}
		}
	}()
	var buf bytes.Buffer
	n, err := s.Backup(&buf)
	close(stop)
	if werr := <-done; werr != nil {
		t.Fatal(werr)
	}
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("backup: %d bytes, buffer %d, %v", n, buf.Len(), err)
	}
	path := filepath.Join(t.TempDir(), "restored.db")
	os.WriteFile(path, buf.Bytes(), 0o600)
	restored := mustOpenAt(t, path, store.Options{})
	if restored.Salvaged() != nil {
		t.Fatalf("backup needed salvage: %+v", restored.Salvaged())
	}
	runs, _ := restored.Runs("fra", 0)
	if len(runs) < 100 {
		t.Fatalf("backup has %d runs, want at least 100", len(runs))
	}
	if j, _ := restored.Journal("fra"); len(j) != 1 {
		t.Fatalf("backup journal has %d entries, want 1", len(j))
	}
}
