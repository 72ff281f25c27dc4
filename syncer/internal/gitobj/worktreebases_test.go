package gitobj

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
)

// TestWorktreeBases: a checkout's file is taken as a base only when it is a regular file
// whose content hashes to the blob the index names for it; a file since rewritten, a symlink
// or a FIFO in its place (which must not block the read) is not.
func TestWorktreeBases(t *testing.T) {
	dir := t.TempDir()
	content := []byte("<instance name=\"a\"/>\n")
	h := plumbing.ComputeHash(plumbing.BlobObject, content)
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	idx := &index.Index{Version: 2, Entries: []*index.Entry{
		{Name: "a.xml", Hash: h, Mode: filemode.Regular},
	}}
	wt := &WorktreeBases{Dir: dir, Index: idx}
	write("a.xml", content)
	if got, ok := wt.read(h); !ok || string(got) != string(content) {
		t.Fatal("the matching file was not taken")
	}
	write("a.xml", []byte("<instance name=\"b\"/>\n")) // same size, other content
	if _, ok := wt.read(h); ok {
		t.Fatal("a rewritten file was taken")
	}
	other := filepath.Join(dir, "other.xml")
	write("other.xml", content)
	if err := os.Remove(filepath.Join(dir, "a.xml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(other, filepath.Join(dir, "a.xml")); err != nil {
		t.Fatal(err)
	}
	if _, ok := wt.read(h); ok {
		t.Fatal("a symlink was followed")
	}
	if err := os.Remove(filepath.Join(dir, "a.xml")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "a.xml"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan bool)
	go func() { _, ok := wt.read(h); done <- ok }()
	select {
	case ok := <-done:
		if ok {
			t.Fatal("a FIFO was taken")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a FIFO in the file's place blocked")
	}
	if _, ok := (&WorktreeBases{Dir: dir, Index: idx}).read(plumbing.ComputeHash(plumbing.BlobObject, []byte("x"))); ok {
		t.Fatal("a blob the index does not name was found")
	}
}

// TestReadRegularFile: a regular file is read; a FIFO is refused at once (not waited on), a
// symlink (here to /dev/zero) is not followed, a file larger than the bound is refused.
func TestReadRegularFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadRegularFile(p, 10); err != nil || string(b) != "data" {
		t.Fatalf("regular: %q %v", b, err)
	}
	if _, err := ReadRegularFile(p, 3); err == nil {
		t.Fatal("a file over the bound was read")
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := ReadRegularFile(fifo, 10); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Fatalf("fifo: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a FIFO blocked")
	}
	link := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRegularFile(link, 1<<30); err == nil {
		t.Fatal("a symlink to /dev/zero was followed")
	}
}
