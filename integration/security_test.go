package integration_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sre-tools/deployer/integration/internal/itest"
)

// securityCmds are the commands of the security-* and fault-* scenarios:
// crafted trees that git itself refuses, pathological instance files,
// the daemon's memory, a cutting proxy, a small filesystem, a stalled
// backup client and the size of /metrics.
func securityCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"craftcommit": cmdCraftCommit,
		"fixcommit":   cmdFixCommit,
		"lstree":      cmdLsTree,
		"gendeep":     cmdGenDeep,
		"peakrss":     cmdPeakRSS,
		"cutproxy":    cmdCutProxy,
		"mounttmpfs":  cmdMountTmpfs,
		"slowbackup":  cmdSlowBackup,
		"metricsize":  cmdMetricSize,
		"gensteps":    cmdGenSteps,
		"bigfile":     cmdBigFile,
	}
}

// treeEntry is one entry of a git tree object as `git ls-tree` lists it.
type treeEntry struct {
	mode, name string
	hash       []byte // raw object id
}

// cmdCraftCommit pushes to CLONE's origin main a commit on top of the
// remote's tip whose tree is the tip's tree plus one entry named ENTRY,
// written with `git hash-object -t tree --literally` so that any name is
// possible: `..`, `../../x`, `.git`, a name with a newline. The entry is a
// blob holding CONTENT, or with -file NAME a tree holding one blob NAME with
// CONTENT; -in DIR puts it inside the tip's subtree DIR (a plain path).
// ENTRY and CONTENT are Go-unquoted when they start with a double quote, so
// that '"a\nb.xml"' is a name with a newline. CLONE's own branch and work
// tree are left alone (git could not check that commit out). It sets PUSHED.
//
//	craftcommit [-in DIR] [-file NAME] CLONE ENTRY CONTENT MESSAGE
func cmdCraftCommit(ts *testscript.TestScript, neg bool, args []string) {
	in, file := "", ""
	for len(args) > 4 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-in":
			in = args[1]
		case "-file":
			file = args[1]
		default:
			ts.Fatalf("craftcommit: unknown flag %s", args[0])
		}
		args = args[2:]
	}
	if len(args) != 4 {
		ts.Fatalf("usage: craftcommit [-in DIR] [-file NAME] CLONE ENTRY CONTENT MESSAGE")
	}
	dir := ts.MkAbs(args[0])
	entry, content := unquoteArg(ts, args[1]), unquoteArg(ts, args[2])
	mustGit(ts, dir, "fetch", "-q", "origin")
	tip := strings.TrimSpace(mustGit(ts, dir, "rev-parse", "refs/remotes/origin/main"))
	obj := writeObject(ts, dir, "blob", []byte(content))
	mode := "100644"
	if file != "" {
		obj = writeObject(ts, dir, "tree", encodeTree([]treeEntry{{mode: "100644", name: file, hash: obj}}))
		mode = "40000"
	}
	var parts []string
	if in != "" {
		parts = strings.Split(in, "/")
	}
	root := insertEntry(ts, dir, tip+"^{tree}", parts, treeEntry{mode: mode, name: entry, hash: obj})
	commit := strings.TrimSpace(mustGit(ts, dir, "commit-tree", hex.EncodeToString(root), "-p", tip, "-m", args[3]))
	mustGit(ts, dir, "push", "-q", "origin", commit+":refs/heads/main")
	ts.Setenv("PUSHED", commit)
	fmt.Fprintf(ts.Stdout(), "crafted %s with entry %q\n", commit, entry)
}

// insertEntry returns the id of tree TREEISH with e added (replacing an
// entry of the same name) in its subtree at path parts.
func insertEntry(ts *testscript.TestScript, dir, treeish string, parts []string, e treeEntry) []byte {
	entries := readTree(ts, dir, treeish)
	if len(parts) > 0 {
		i := slices.IndexFunc(entries, func(x treeEntry) bool { return x.name == parts[0] && x.mode == "040000" })
		if i < 0 {
			ts.Fatalf("craftcommit: no directory %s in %s", parts[0], treeish)
		}
		sub := insertEntry(ts, dir, hex.EncodeToString(entries[i].hash), parts[1:], e)
		entries[i] = treeEntry{mode: "40000", name: parts[0], hash: sub}
		return writeObject(ts, dir, "tree", encodeTree(entries))
	}
	entries = slices.DeleteFunc(entries, func(x treeEntry) bool { return x.name == e.name })
	return writeObject(ts, dir, "tree", encodeTree(append(entries, e)))
}

// readTree lists a tree's entries with `git ls-tree -z`.
func readTree(ts *testscript.TestScript, dir, treeish string) []treeEntry {
	out := mustGit(ts, dir, "ls-tree", "-z", treeish)
	var entries []treeEntry
	for _, rec := range strings.Split(out, "\x00") {
		if rec == "" {
			continue
		}
		meta, name, ok := strings.Cut(rec, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 3 {
			ts.Fatalf("ls-tree: bad record %q", rec)
		}
		h, err := hex.DecodeString(f[2])
		ts.Check(err)
		entries = append(entries, treeEntry{mode: f[0], name: name, hash: h})
	}
	return entries
}

// encodeTree writes entries in git's raw tree format and order (a tree
// sorts as if its name ended in a slash). Mode 040000 is written as git
// writes it, 40000.
func encodeTree(entries []treeEntry) []byte {
	key := func(e treeEntry) string {
		if e.mode == "40000" || e.mode == "040000" {
			return e.name + "/"
		}
		return e.name
	}
	sort.SliceStable(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
	var b bytes.Buffer
	for _, e := range entries {
		mode := strings.TrimPrefix(e.mode, "0")
		fmt.Fprintf(&b, "%s %s\x00", mode, e.name)
		b.Write(e.hash)
	}
	return b.Bytes()
}

// writeObject stores data as an object of type typ without git's checks
// (`hash-object --literally`) and returns its raw id.
func writeObject(ts *testscript.TestScript, dir, typ string, data []byte) []byte {
	cmd := exec.Command("git", "hash-object", "-t", typ, "--literally", "-w", "--stdin")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+ts.Getenv("HOME"), "GIT_CONFIG_NOSYSTEM=1")
	cmd.Stdin = bytes.NewReader(data)
	out, err := itest.Output(cmd)
	if err != nil {
		ts.Fatalf("git hash-object -t %s: %v", typ, err)
	}
	h, err := hex.DecodeString(strings.TrimSpace(string(out)))
	ts.Check(err)
	return h
}

func unquoteArg(ts *testscript.TestScript, s string) string {
	if !strings.HasPrefix(s, `"`) {
		return s
	}
	u, err := strconv.Unquote(s)
	ts.Check(err)
	return u
}

// cmdFixCommit commits CLONE's work tree (git add -A) and pushes that tree
// as a new commit on top of the remote's tip, which may hold a tree git
// refuses to check out (so no pull, no rebase): the way an owner repairs a
// branch after a bad commit without rewriting it. CLONE's branch moves to
// the new commit. It sets PUSHED.
//
//	fixcommit CLONE MESSAGE
func cmdFixCommit(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: fixcommit CLONE MESSAGE")
	}
	dir := ts.MkAbs(args[0])
	mustGit(ts, dir, "add", "-A")
	tree := strings.TrimSpace(mustGit(ts, dir, "write-tree"))
	mustGit(ts, dir, "fetch", "-q", "origin")
	tip := strings.TrimSpace(mustGit(ts, dir, "rev-parse", "refs/remotes/origin/main"))
	commit := strings.TrimSpace(mustGit(ts, dir, "commit-tree", tree, "-p", tip, "-m", args[1]))
	mustGit(ts, dir, "push", "-q", "origin", commit+":refs/heads/main")
	mustGit(ts, dir, "update-ref", "HEAD", commit)
	ts.Setenv("PUSHED", commit)
}

// cmdLsTree prints every path under DIR, sorted, one line each: the path
// relative to DIR, its type and mode, and for a regular file its size and
// sha256 (a symlink shows its target). Inside a .git directory only
// config, HEAD and hooks/ are listed, so a scenario can show that a
// checkout's files and its git configuration are byte-identical before and
// after an attack without listing objects the daemon legitimately fetched.
//
//	lstree DIR
func cmdLsTree(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: lstree DIR")
	}
	root := ts.MkAbs(args[0])
	var lines []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "." {
			return nil
		}
		if !keptPath(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			lines = append(lines, fmt.Sprintf("%q symlink -> %q", rel, target))
		case info.IsDir():
			lines = append(lines, fmt.Sprintf("%q dir %v", rel, info.Mode().Perm()))
		default:
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			lines = append(lines, fmt.Sprintf("%q file %v %d %x", rel, info.Mode(), info.Size(), sum[:8]))
		}
		return nil
	})
	ts.Check(err)
	sort.Strings(lines)
	fmt.Fprintln(ts.Stdout(), strings.Join(lines, "\n"))
}

// keptPath says whether lstree lists rel: everything outside .git
// directories; inside one only config, HEAD and hooks/.
func keptPath(rel string) bool {
	parts := strings.Split(rel, string(filepath.Separator))
	i := slices.Index(parts, ".git")
	if i < 0 || i == len(parts)-1 {
		return true
	}
	rest := parts[i+1:]
	return rest[0] == "hooks" || (len(rest) == 1 && (rest[0] == "config" || rest[0] == "HEAD"))
}

// cmdGenDeep writes FILE: an <instance name=NAME version="1.0.0"
// build="b-0"> whose content is DEPTH nested <a> elements (about 7 bytes
// per level), the shape that made memory quadratic in depth; a step that
// pins build makes the daemon diff it.
//
//	gendeep FILE NAME DEPTH
func cmdGenDeep(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: gendeep FILE NAME DEPTH")
	}
	depth, err := strconv.Atoi(args[2])
	ts.Check(err)
	var b bytes.Buffer
	fmt.Fprintf(&b, "<instance name=%q version=\"1.0.0\" build=\"b-0\">\n", args[1])
	b.WriteString(strings.Repeat("<a>", depth))
	b.WriteString(strings.Repeat("</a>", depth))
	b.WriteString("\n</instance>\n")
	ts.Check(os.MkdirAll(filepath.Dir(ts.MkAbs(args[0])), 0o755))
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), b.Bytes(), 0o644))
	fmt.Fprintf(ts.Stdout(), "%s: %d bytes, depth %d\n", args[0], b.Len(), depth+1)
}

// cmdPeakRSS reads the peak resident set size (VmHWM in /proc/PID/status)
// of the scenario's running background daemon, prints it in MiB and fails
// when it is MAXMIB or more.
//
//	peakrss MAXMIB
func cmdPeakRSS(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: peakrss MAXMIB")
	}
	limit, err := strconv.Atoi(args[0])
	ts.Check(err)
	pid := runningDaemon(ts)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	ts.Check(err)
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			ts.Check(err)
			mib := kb / 1024
			fmt.Fprintf(ts.Stdout(), "daemon peak RSS %d MiB\n", mib)
			if (mib < limit) == neg {
				ts.Fatalf("daemon peak RSS %d MiB, limit %d MiB", mib, limit)
			}
			return
		}
	}
	ts.Fatalf("no VmHWM in /proc/%d/status", pid)
}

// runningDaemon returns the pid of the scenario's background daemon, and
// fails when none is running.
func runningDaemon(ts *testscript.TestScript) int {
	for _, c := range ts.BackgroundCmds() {
		if !slices.Contains(c.Args, "daemon") || c.Process == nil {
			continue
		}
		if c.ProcessState != nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", c.Process.Pid)); err == nil {
			return c.Process.Pid
		}
	}
	ts.Fatalf("no running background daemon")
	return 0
}

// TestEncodeTreeOrder shows that encodeTree writes what git itself would:
// the same tree id as `git mktree` for names where directory order and
// byte order differ.
func TestEncodeTreeOrder(t *testing.T) {
	dir := t.TempDir()
	git := func(stdin string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Stdin = strings.NewReader(stdin)
		out, err := itest.Output(cmd)
		if err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	git("", "init", "-q")
	blob := git("x", "hash-object", "-w", "--stdin")
	sub := git("100644 blob "+blob+"\tf\n", "mktree")
	want := git("100644 blob "+blob+"\ta.b\n040000 tree "+sub+"\ta\n100644 blob "+blob+"\ta-\n", "mktree")
	bh, _ := hex.DecodeString(blob)
	sh, _ := hex.DecodeString(sub)
	raw := encodeTree([]treeEntry{{"100644", "a.b", bh}, {"040000", "a", sh}, {"100644", "a-", bh}})
	got := git(string(raw), "hash-object", "-t", "tree", "-w", "--stdin")
	if got != want {
		t.Errorf("encodeTree gives tree %s, git mktree %s", got, want)
	}
}
