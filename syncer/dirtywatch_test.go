package syncer_test

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sre-tools/deployer/syncer"
)

// dirtyFixture is a checkout of a repository with files in several directories, an
// executable and a symlink, and the tracked paths' original content.
type dirtyFixture struct {
	*fixture
	r       *syncer.Repo
	tracked []string
	orig    map[string]string // path → content ("link:" + target for a symlink)
	extra   []string
	rng     *rand.Rand
	outside string
}

func newDirtyFixture(t *testing.T, seed int64) *dirtyFixture {
	f := newFixture(t)
	d := &dirtyFixture{fixture: f, orig: map[string]string{}, rng: rand.New(rand.NewSource(seed)), outside: t.TempDir()}
	for i := 0; i < 8; i++ {
		f.write(fmt.Sprintf("instances/i%d.xml", i), fmt.Sprintf("<instance name=\"i%d\" version=\"1\"/>\n", i))
		f.write(fmt.Sprintf("instances/sub/s%d.xml", i), fmt.Sprintf("<instance name=\"s%d\"/>\n", i))
	}
	f.write("group/deep/er/x.xml", "<x/>\n")
	writeExec(t, filepath.Join(f.human, "run.sh"), "#!/bin/sh\nexit 0\n")
	if err := os.Symlink("instances/i0.xml", filepath.Join(f.human, "link")); err != nil {
		t.Fatal(err)
	}
	f.commit("many files")
	gitRun(t, f.human, "push", "-q", "origin", "main")
	for _, p := range strings.Split(gitRun(t, f.human, "ls-files"), "\n") {
		d.tracked = append(d.tracked, p)
		full := filepath.Join(f.human, filepath.FromSlash(p))
		if target, err := os.Readlink(full); err == nil {
			d.orig[p] = "link:" + target
			continue
		}
		d.orig[p] = readFile(t, full)
	}
	d.extra = []string{"new.xml", "instances/new.xml", "instances/sub/new.xml", "instances/sub/deeper/n.xml", "other/o.xml", "instances/sub2", "group/deep", "instances/sub", "group"}
	d.r = f.open(f.options())
	if ok, why := d.r.Watching(); !ok {
		// Out of inotify instances or watches (limits shared by every process of the user)
		// is the host's state, not a defect; anything else on Linux is.
		if runtime.GOOS != "linux" || strings.Contains(why, "too many open files") || strings.Contains(why, "no space left") {
			t.Skipf("no inotify watch: %s", why)
		}
		t.Fatalf("no inotify watch: %s", why)
	}
	return d
}

func (d *dirtyFixture) full(p string) string { return filepath.Join(d.dir, filepath.FromSlash(p)) }

func (d *dirtyFixture) pick() string {
	if d.rng.Intn(10) < 7 {
		return d.tracked[d.rng.Intn(len(d.tracked))]
	}
	return d.extra[d.rng.Intn(len(d.extra))]
}

// realParents makes every directory above p a real directory, removing a file or symlink in
// the way, so that no write of the test goes through a link.
func (d *dirtyFixture) realParents(p string) error {
	parts := strings.Split(p, "/")
	for i := 1; i < len(parts); i++ {
		full := d.full(strings.Join(parts[:i], "/"))
		fi, err := os.Lstat(full)
		if err == nil && fi.IsDir() {
			continue
		}
		if err == nil {
			if err := os.Remove(full); err != nil {
				return err
			}
		}
		if err := os.Mkdir(full, 0o755); err != nil {
			return err
		}
	}
	return nil
}

func (d *dirtyFixture) writeFile(p, content string, mode os.FileMode) error {
	if err := d.realParents(p); err != nil {
		return err
	}
	full := d.full(p)
	if fi, err := os.Lstat(full); err == nil && (fi.IsDir() || fi.Mode()&os.ModeSymlink != 0) {
		if err := os.RemoveAll(full); err != nil {
			return err
		}
	}
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		return err
	}
	return os.Chmod(full, mode)
}

// restore puts p back as HEAD has it (or removes it if it is not tracked).
func (d *dirtyFixture) restore(p string) error {
	content, ok := d.orig[p]
	if !ok {
		if err := os.RemoveAll(d.full(p)); err != nil && !errors.Is(err, syscall.ENOTDIR) {
			return err
		}
		return nil // a file or link above it: nothing there
	}
	if target, isLink := strings.CutPrefix(content, "link:"); isLink {
		if err := d.realParents(p); err != nil {
			return err
		}
		if err := os.RemoveAll(d.full(p)); err != nil {
			return err
		}
		return os.Symlink(target, d.full(p))
	}
	mode := os.FileMode(0o644)
	if strings.HasSuffix(p, ".sh") {
		mode = 0o755
	}
	return d.writeFile(p, content, mode)
}

// edit makes one random change and describes it.
func (d *dirtyFixture) edit() (string, error) {
	p := d.pick()
	full := d.full(p)
	switch op := d.rng.Intn(11); op {
	case 0: // create or overwrite with new content
		return "create " + p, d.writeFile(p, "created "+strconv.Itoa(d.rng.Int())+"\n", 0o644)
	case 1: // modify in place, same size
		b, err := os.ReadFile(full)
		if err != nil || len(b) == 0 {
			return "modify (nothing) " + p, nil
		}
		b[d.rng.Intn(len(b))] ^= 1
		return "modify " + p, os.WriteFile(full, b, 0o644)
	case 2: // delete (a file, a symlink or a whole directory)
		if err := os.RemoveAll(full); err != nil {
			return "delete (nothing) " + p, nil // a file or link above it
		}
		return "delete " + p, nil
	case 3: // rename onto another path (a file or a directory)
		to := d.pick()
		if _, err := os.Lstat(full); err != nil || to == p || strings.HasPrefix(to, p+"/") || strings.HasPrefix(p, to+"/") {
			return "rename (nothing) " + p, nil
		}
		if err := d.realParents(to); err != nil {
			return "", err
		}
		_ = os.RemoveAll(d.full(to))
		return "rename " + p + " " + to, os.Rename(full, d.full(to))
	case 4: // chmod: flip the executable bit
		fi, err := os.Lstat(full)
		if err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return "chmod (nothing) " + p, nil
		}
		return "chmod " + p, os.Chmod(full, fi.Mode().Perm()^0o111)
	case 5: // symlink in place of the path: dangling, to a file, out of the checkout
		targets := []string{"nowhere", "deployer.xml", "../deployer.xml", d.outside, filepath.Join(d.outside, "f")}
		if err := d.realParents(p); err != nil {
			return "", err
		}
		_ = os.RemoveAll(full)
		return "symlink " + p, os.Symlink(targets[d.rng.Intn(len(targets))], full)
	case 6, 7: // put back as HEAD has it
		return "restore " + p, d.restore(p)
	case 8: // touch: new times, same content
		now := time.Now()
		if err := os.Chtimes(full, now, now); err != nil {
			return "touch (nothing) " + p, nil
		}
		return "touch " + p, nil
	case 9: // rewrite with the same content (new inode, new times)
		content, ok := d.orig[p]
		if !ok || strings.HasPrefix(content, "link:") || strings.HasSuffix(p, ".sh") {
			return "rewrite (nothing) " + p, nil
		}
		tmp := full + ".tmp"
		if err := d.realParents(p); err != nil {
			return "", err
		}
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			return "", err
		}
		_ = os.RemoveAll(full)
		return "rewrite " + p, os.Rename(tmp, full)
	default: // a directory where the path was
		_ = d.realParents(p)
		_ = os.RemoveAll(full)
		return "mkdir " + p, os.MkdirAll(filepath.Join(full, "x"), 0o755)
	}
}

// restoreAll puts back what differs from HEAD, and only that (a restore of every file
// would touch every path, and the check after it would not be incremental in substance).
func (d *dirtyFixture) restoreAll() error {
	for _, p := range d.extra {
		if _, tracked := d.orig[p]; !tracked {
			if _, err := os.Lstat(d.full(p)); err == nil {
				if err := os.RemoveAll(d.full(p)); err != nil {
					return err
				}
			}
		}
	}
	for _, p := range d.tracked {
		if !d.intact(p) {
			if err := d.restore(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// intact reports whether p is as HEAD has it, with real directories above it.
func (d *dirtyFixture) intact(p string) bool {
	parts := strings.Split(p, "/")
	for i := 1; i < len(parts); i++ {
		if fi, err := os.Lstat(d.full(strings.Join(parts[:i], "/"))); err != nil || !fi.IsDir() {
			return false
		}
	}
	fi, err := os.Lstat(d.full(p))
	if err != nil {
		return false
	}
	content := d.orig[p]
	if target, isLink := strings.CutPrefix(content, "link:"); isLink {
		got, err := os.Readlink(d.full(p))
		return err == nil && got == target
	}
	if !fi.Mode().IsRegular() || (fi.Mode()&0o111 != 0) != strings.HasSuffix(p, ".sh") {
		return false
	}
	b, err := os.ReadFile(d.full(p))
	return err == nil && string(b) == content
}

// TestIncrementalDirtyAgreesWithFullScan: over 1,000 random sequences of edits (create,
// modify, delete, rename, chmod, symlink, restore, touch, same-content rewrite, a directory
// in place of a file), the incremental dirty check (inotify) reports exactly what the full
// lstat scan reports after every sequence, and it is incremental (no full scan) each time.
func TestIncrementalDirtyAgreesWithFullScan(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("DIRTY_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (DIRTY_SEED=%d to repeat)", seed, seed)
	d := newDirtyFixture(t, seed)
	sequences, dirtySeen := 1000, 0
	for seq := 0; seq < sequences; seq++ {
		var log []string
		if d.rng.Intn(10) < 7 {
			if err := d.restoreAll(); err != nil {
				t.Fatal(err)
			}
			log = append(log, "restore all")
		}
		for n := 1 + d.rng.Intn(5); n > 0; n-- {
			what, err := d.edit()
			if err != nil {
				t.Fatalf("sequence %d: %s: %v", seq, what, err)
			}
			log = append(log, what)
		}
		inc, full, why, err := d.r.DirtyBoth()
		if err != nil {
			t.Fatalf("sequence %d: %v", seq, err)
		}
		if why != "" {
			t.Fatalf("sequence %d: the check scanned in full (%s), want incremental", seq, why)
		}
		if !slices.Equal(inc, full) {
			t.Fatalf("sequence %d (%s): incremental dirty %q, full scan %q", seq, strings.Join(log, "; "), inc, full)
		}
		if len(full) > 0 {
			dirtySeen++
		}
	}
	if err := d.restoreAll(); err != nil {
		t.Fatal(err)
	}
	inc, full, _, err := d.r.DirtyBoth()
	if err != nil || len(inc) != 0 || len(full) != 0 {
		t.Fatalf("after restoring everything: incremental %q, full %q, %v", inc, full, err)
	}
	t.Logf("%d sequences, %d with dirty files", sequences, dirtySeen)
}

// TestDirtyCheckAfterQueueOverflow: with the reading of events held, a flood of events
// overflows the kernel's inotify queue and an edit made after it is dropped from the queue;
// the next check sees the overflow, scans in full and reports the edit, and the checks after
// it are incremental again.
func TestDirtyCheckAfterQueueOverflow(t *testing.T) {
	d := newDirtyFixture(t, 1)
	limit := 16384
	if b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			limit = n
		}
	}
	if limit > 1<<20 {
		t.Skipf("max_queued_events is %d: too many events to flood", limit)
	}
	release := d.r.HoldWatch()
	a, b := d.full("untracked-a"), d.full("untracked-b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			release()
			t.Fatal(err)
		}
	}
	for i := 0; i < limit/2+100; i++ { // alternate, so that the kernel cannot merge them
		_ = os.Chmod(a, os.FileMode(0o600|i&1))
		_ = os.Chmod(b, os.FileMode(0o600|i&1))
	}
	if err := os.WriteFile(d.full("instances/i3.xml"), []byte("edited after the flood\n"), 0o644); err != nil {
		release()
		t.Fatal(err)
	}
	release()
	inc, full, why, err := d.r.DirtyBoth()
	if err != nil {
		t.Fatal(err)
	}
	if why != "the inotify queue overflowed" {
		t.Fatalf("the check after the flood: full scan reason %q, want the overflow", why)
	}
	if !slices.Equal(inc, []string{"instances/i3.xml"}) || !slices.Equal(inc, full) {
		t.Fatalf("after the overflow: incremental %q, full %q; want the edit after the flood", inc, full)
	}
	if err := d.restore("instances/i3.xml"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.full("instances/sub/s1.xml"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	inc, full, why, err = d.r.DirtyBoth()
	if err != nil || why != "" || !slices.Equal(inc, []string{"instances/sub/s1.xml"}) || !slices.Equal(inc, full) {
		t.Fatalf("the check after that: incremental %q (full scan: %q), full %q, %v", inc, why, full, err)
	}
}

// TestDirtyCheckAfterIndexWrittenElsewhere: an index written by someone else (git add in
// the checkout) makes the next check scan in full, not trust the events against an index it
// did not write.
func TestDirtyCheckAfterIndexWrittenElsewhere(t *testing.T) {
	d := newDirtyFixture(t, 2)
	if err := os.WriteFile(d.full("instances/i1.xml"), []byte("staged by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(t, d.dir, "add", "instances/i1.xml")
	inc, full, why, err := d.r.DirtyBoth()
	if err != nil {
		t.Fatal(err)
	}
	if why != "the index was read from disk" {
		t.Fatalf("the check after git add: full scan reason %q, want the index read again", why)
	}
	if !slices.Equal(inc, full) {
		t.Fatalf("incremental %q, full %q", inc, full)
	}
}
