package bench

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestWorkDirNeverRemovesWhatItDidNotWrite: a --dir that holds files is refused and left as
// it was; an empty one is used and emptied afterwards (the directory stays); a new one is
// created and removed; with keep nothing is removed.
func TestWorkDirNeverRemovesWhatItDidNotWrite(t *testing.T) {
	root := t.TempDir()
	full := filepath.Join(root, "full")
	if err := os.MkdirAll(filepath.Join(full, "keepme"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "keepme", "notes.txt"), []byte("important"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := workDir(full, false); !errors.Is(err, ErrDirNotEmpty) {
		t.Fatalf("a directory with files: %v, want ErrDirNotEmpty", err)
	}
	if b, err := os.ReadFile(filepath.Join(full, "keepme", "notes.txt")); err != nil || string(b) != "important" {
		t.Fatalf("the refused directory changed: %q %v", b, err)
	}

	empty := filepath.Join(root, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, cleanup, err := workDir(empty, false)
	if err != nil || dir != empty {
		t.Fatalf("empty: %s %v", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "remote.git"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cleanup()
	if ents, err := os.ReadDir(empty); err != nil || len(ents) != 0 {
		t.Fatalf("an empty directory given: after the run %v, %v; want it kept, empty", ents, err)
	}

	fresh := filepath.Join(root, "new")
	_, cleanup, err = workDir(fresh, false)
	if err != nil {
		t.Fatal(err)
	}
	cleanup()
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a directory the benchmark made: %v, want removed", err)
	}

	kept := filepath.Join(root, "kept")
	_, cleanup, err = workDir(kept, true)
	if err != nil {
		t.Fatal(err)
	}
	cleanup()
	if _, err := os.Stat(kept); err != nil {
		t.Fatalf("--keep: %v", err)
	}
}
