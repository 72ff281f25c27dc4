package syncer

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/sre-tools/deployer/syncer/bench"
)

var openBench struct {
	once sync.Once
	root string
	opts Options
	err  error
}

// TestMain runs at least 4 tests at a time unless -parallel says otherwise (the tests wait on
// git processes and servers more than they use the CPU, and TestRacingWriters holds a slot
// for a minute or more), and removes the benchmark repository BenchmarkOpen made, if any.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(max(4, runtime.GOMAXPROCS(0))))
	}
	code := m.Run()
	if openBench.root != "" {
		_ = os.RemoveAll(openBench.root)
	}
	os.Exit(code)
}

// BenchmarkOpen measures Open of an existing checkout (its start-up check) on the benchmark
// repository: 10,000 files and 20,000 commits unless DEPLOYER_BENCH_FILES / _COMMITS say
// otherwise. Open runs once per daemon start (and per re-clone), never per poll.
func BenchmarkOpen(b *testing.B) {
	files, commits := 10000, 20000
	if v, err := strconv.Atoi(os.Getenv("DEPLOYER_BENCH_FILES")); err == nil {
		files = v
	}
	if v, err := strconv.Atoi(os.Getenv("DEPLOYER_BENCH_COMMITS")); err == nil {
		commits = v
	}
	ctx := context.Background()
	openBench.once.Do(func() {
		// Once per process: the benchmark function runs again for each b.N.
		root, err := os.MkdirTemp("", "deployer-open-bench-")
		if err != nil {
			openBench.err = err
			return
		}
		openBench.root = root
		bare := filepath.Join(root, "remote.git")
		if openBench.err = bench.Generate(ctx, bare, files, commits); openBench.err != nil {
			return
		}
		openBench.opts = Options{Name: "bench", URL: bare, Dir: filepath.Join(root, "checkout")}
		r, err := Open(ctx, openBench.opts)
		if err != nil {
			openBench.err = err
			return
		}
		openBench.err = r.Close()
	})
	if openBench.err != nil {
		b.Fatal(openBench.err)
	}
	opts := openBench.opts
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := Open(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		_ = r.Close()
	}
	b.StopTimer()
	if aside, _ := filepath.Glob(opts.Dir + ".broken-*"); len(aside) > 0 {
		b.Fatalf("Open re-cloned a healthy checkout: %v", aside)
	}
}
