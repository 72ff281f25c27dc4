package executor

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func BenchmarkTreeWatchMark(b *testing.B) {
	root := b.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f"), nil, 0o644); err != nil {
		b.Fatal(err)
	}
	w, err := newTreeWatch(root)
	if err != nil {
		b.Fatal(err)
	}
	defer w.close()
	for b.Loop() {
		m, err := w.mark()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.changedSince(m); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTreeWatchWindows(t *testing.T) {
	root := t.TempDir()
	write := func(name string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a")
	w, err := newTreeWatch(root)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	write("before-any-mark")
	m1, err := w.mark()
	if err != nil {
		t.Fatal(err)
	}
	write("a")
	m2, err := w.mark()
	if err != nil {
		t.Fatal(err)
	}
	write("sub/dir/b")
	got2, err := w.changedSince(m2)
	if err != nil {
		t.Fatal(err)
	}
	got1, err := w.changedSince(m1)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[sub/dir/b]"; fmt.Sprint(got2) != want {
		t.Errorf("second window: got %v, want %s", got2, want)
	}
	if want := "[a sub/dir/b]"; fmt.Sprint(got1) != want {
		t.Errorf("first window: got %v, want %s", got1, want)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.log) != 0 || len(w.marks) != 0 {
		t.Errorf("after every mark was released: %d log entries, %d marks, want none", len(w.log), len(w.marks))
	}
	if !w.files["sub/dir/b"] || !w.files["a"] {
		t.Errorf("file set misses files: %v", w.files)
	}
}

// TestKeptWatch: with KeepWatches a checkout's watch serves the next call
// (its file set kept right by the events in between), and is set up again
// when it can no longer tell every change (overflow, the root replaced); a
// watch another call holds is left to it; idle and closed watches stop.
func TestKeptWatch(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "checkout")
	write := func(name string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	write("a")
	e := New(Options{KeepWatches: true, WatchIdle: time.Hour})
	defer e.Close()
	jobs := []Job{{RepoRoot: root}}

	ws := e.watchJobs(jobs, true)
	w1 := ws[root]
	if w1 == nil {
		t.Fatal("no watch")
	}
	e.releaseWatches(ws)
	write("made-while-idle")
	if err := os.Remove(filepath.Join(root, "a")); err != nil {
		t.Fatal(err)
	}
	ws = e.watchJobs(jobs, true)
	if ws[root] != w1 {
		t.Fatal("the second call set up a new watch, want the kept one")
	}
	m, err := w1.mark()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "made-while-idle")); err != nil {
		t.Fatal(err)
	}
	write("a") // created again in the window
	got, err := w1.changedSince(m)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[a made-while-idle]"; fmt.Sprint(got) != want {
		t.Errorf("changes in the second call: got %v, want %s", got, want)
	}

	// In use by this call and no longer able to tell: the next call gets its own.
	w1.mu.Lock()
	w1.seq++
	w1.overflow = w1.seq
	w1.mu.Unlock()
	ws2 := e.watchJobs(jobs, true)
	w2 := ws2[root]
	if w2 == nil || w2 == w1 {
		t.Fatalf("call during a lost watch's use got %p (the lost one is %p)", w2, w1)
	}
	e.releaseWatches(ws2)
	select {
	case <-w2.done:
	default:
		t.Error("a watch that was not kept stayed open after its call")
	}
	e.releaseWatches(ws)

	// Not in use and lost: replaced, and the lost one closed.
	ws = e.watchJobs(jobs, true)
	w3 := ws[root]
	if w3 == nil || w3 == w1 {
		t.Fatal("an overflowed watch was kept")
	}
	select {
	case <-w1.done:
	default:
		t.Error("the overflowed watch was not closed")
	}
	e.releaseWatches(ws)

	// The root replaced by another directory of the same name.
	if err := os.Rename(root, filepath.Join(parent, "old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	ws = e.watchJobs(jobs, true)
	w4 := ws[root]
	if w4 == nil || w4 == w3 {
		t.Fatal("the watch of a replaced root was kept")
	}
	m, err = w4.mark()
	if err != nil {
		t.Fatal(err)
	}
	write("new")
	if got, err := w4.changedSince(m); err != nil || fmt.Sprint(got) != "[new]" {
		t.Errorf("watch of the new root: %v, %v; want [new]", got, err)
	}
	e.releaseWatches(ws)

	// Close stops the idle watch.
	e.Close()
	select {
	case <-w4.done:
	case <-time.After(10 * time.Second):
		t.Error("Close left a kept watch open")
	}
	if _, err := os.Stat(w4.barrier); !os.IsNotExist(err) {
		t.Errorf("barrier directory after Close: %v", err)
	}
}

// TestKeptWatchIdle: a kept watch no call used for WatchIdle is closed.
func TestKeptWatchIdle(t *testing.T) {
	root := t.TempDir()
	e := New(Options{KeepWatches: true, WatchIdle: 20 * time.Millisecond})
	defer e.Close()
	ws := e.watchJobs([]Job{{RepoRoot: root}}, true)
	w := ws[root]
	e.releaseWatches(ws)
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		t.Fatal("an idle kept watch stayed open")
	}
	e.kept.mu.Lock()
	defer e.kept.mu.Unlock()
	if len(e.kept.m) != 0 {
		t.Errorf("%d kept watches after the idle time, want 0", len(e.kept.m))
	}
}
