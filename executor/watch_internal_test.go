package executor

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
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
