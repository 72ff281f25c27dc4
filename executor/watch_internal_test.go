package executor

import (
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
