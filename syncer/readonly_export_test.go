package syncer_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

// A hostile tree holds a symlink "x" to a directory outside and a
// directory "x" with a file: exporting it (deployer plan on a merge
// request's commit) must write nothing outside the export directory. It
// wrote x/pwned.txt through the symlink before the duplicate name was
// noticed.
func TestExportTreeNeverWritesThroughSymlinks(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(root, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(root, "repo")
	gitRun(t, root, "init", "-q", "-b", "main", repo)
	if err := os.WriteFile(filepath.Join(repo, "deployer.xml"), []byte("<deployer version=\"1\"/>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(t, repo, "add", ".")
	gitRun(t, repo, "commit", "-q", "-m", "initial")
	hashObject := func(content string) string {
		cmd := exec.Command("git", "hash-object", "-w", "--stdin")
		cmd.Dir, cmd.Stdin = repo, strings.NewReader(content)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	mktree := func(entries string) string {
		cmd := exec.Command("git", "mktree")
		cmd.Dir, cmd.Stdin = repo, strings.NewReader(entries)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	link := hashObject(outside)
	pwned := hashObject("PWNED by plan\n")
	sub := mktree(fmt.Sprintf("100644 blob %s\tpwned.txt\n", pwned))
	top := gitRun(t, repo, "ls-tree", "HEAD") + "\n" +
		fmt.Sprintf("120000 blob %s\tx\n040000 tree %s\tx\n", link, sub)
	tree := mktree(top)
	commit := gitRun(t, repo, "commit-tree", tree, "-p", "HEAD", "-m", "dup")

	ro, err := syncer.OpenReadOnly(repo)
	if err != nil {
		t.Fatal(err)
	}
	err = ro.ExportTree(commit, filepath.Join(root, "export"))
	if err == nil {
		t.Fatal("exporting a tree with a symlink and a directory of one name worked")
	}
	if _, serr := os.Stat(filepath.Join(outside, "pwned.txt")); serr == nil {
		t.Fatalf("the export wrote outside its directory (error: %v)", err)
	}
	t.Logf("refused: %v", err)
}
