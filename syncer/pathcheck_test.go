package syncer_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sre-tools/deployer/syncer"
)

// badNames are names git's verify_path (read-cache.c), is_ntfs_dotgit / is_hfs_dotgit
// (path.c, utf8.c) and go-git's ValidTreePath refuse, or that the checkout's filesystem cannot
// hold, with the rule each breaks.
var badNames = map[string]string{
	"":                        syncer.RuleEmpty,
	".":                       syncer.RuleDot,
	"..":                      syncer.RuleDot,
	"a/b":                     syncer.RuleSlash,
	"/":                       syncer.RuleSlash,
	"../../../outside.txt":    syncer.RuleSlash,
	`a\b`:                     syncer.RuleBackslash,
	`..\..\x`:                 syncer.RuleBackslash,
	".git":                    syncer.RuleDotGit,
	".GIT":                    syncer.RuleDotGit,
	".Git":                    syncer.RuleDotGit,
	"git~1":                   syncer.RuleNTFSGit,
	"GIT~1":                   syncer.RuleNTFSGit,
	"git~1.":                  syncer.RuleNTFSGit,
	"git~1 ":                  syncer.RuleNTFSGit,
	"git~1::$DATA":            syncer.RuleNTFSGit,
	".git.":                   syncer.RuleNTFSGit,
	".git ":                   syncer.RuleNTFSGit,
	".git . . .":              syncer.RuleNTFSGit,
	".GIT...":                 syncer.RuleNTFSGit,
	".git:":                   syncer.RuleNTFSGit,
	".git::$INDEX_ALLOCATION": syncer.RuleNTFSGit,
	".git:foo":                syncer.RuleNTFSGit,
	".g\u200cit":              syncer.RuleHFSGit,
	".gi\u200dt":              syncer.RuleHFSGit,
	".gi\ufefft":              syncer.RuleHFSGit,
	"\u200e.git":              syncer.RuleHFSGit,
	".g\u200ci\u200dt":        syncer.RuleHFSGit,
	".GI\u202eT":              syncer.RuleHFSGit,
	".git\u206f":              syncer.RuleHFSGit,
	"a\nb":                    syncer.RuleControl,
	"x.xml\r":                 syncer.RuleControl,
	"\x00":                    syncer.RuleControl,
	"tab\there":               syncer.RuleControl,
	"del\x7f":                 syncer.RuleControl,
	"esc\x1b[31m":             syncer.RuleControl,
	"c1\u0085next":            syncer.RuleControl,
	"ls\u2028next":            syncer.RuleControl,
	"ps\u2029next":            syncer.RuleControl,
	strings.Repeat("n", 256):  syncer.RuleNameLong,
}

// goodNames must pass: near misses of the rules above.
var goodNames = []string{
	"a", "deployer.xml", ".gitignore", ".gitmodules", ".gitattributes", ".git2", "git", "git~2",
	"git~10", "gitfoo", ".gxt", "...", ".a", "a.", "a ", "CON", "nul", "COM1", "a:b",
	"été.xml", "日本.xml", ".g\x80it", strings.Repeat("n", 255), "--output=x",
}

func TestCheckEntryName(t *testing.T) {
	t.Parallel()
	for name, rule := range badNames {
		err := syncer.CheckEntryName(name)
		var pe *syncer.PathError
		if !errors.As(err, &pe) || pe.Rule != rule {
			t.Errorf("CheckEntryName(%q): got %v, want rule %q", name, err, rule)
			continue
		}
		if !errors.Is(err, syncer.ErrInvalidPath) {
			t.Errorf("CheckEntryName(%q): not ErrInvalidPath", name)
		}
		if strings.ContainsAny(err.Error(), "\n\r\x00\u2028") {
			t.Errorf("CheckEntryName(%q): raw control character in %q", name, err)
		}
	}
	for _, name := range goodNames {
		if err := syncer.CheckEntryName(name); err != nil {
			t.Errorf("CheckEntryName(%q): %v, want nil", name, err)
		}
	}
}

func TestCheckPath(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "/a", "a/", "a//b", "a/../b", "../a", "a/./b", "instances/.git/config",
		"instances/.GIT/x", "a/git~1/b", "instances/x\ny.xml", "a\\b/c", strings.Repeat("a/", 2048) + "a"} {
		if err := syncer.CheckPath(p); !errors.Is(err, syncer.ErrInvalidPath) {
			t.Errorf("CheckPath(%q): got %v, want an invalid path", p, err)
		}
	}
	for _, p := range []string{"a", "instances/a.xml", "a/b/c/d.xml", ".gitignore", "sub/.gitmodules"} {
		if err := syncer.CheckPath(p); err != nil {
			t.Errorf("CheckPath(%q): %v", p, err)
		}
	}
	err := syncer.CheckPath("instances/a\nb.xml")
	if want := `invalid path "instances/a\nb.xml": ` + syncer.RuleControl; err == nil || err.Error() != want {
		t.Errorf("CheckPath error: got %v, want %s", err, want)
	}
}

// FuzzCheckEntryName checks the path check's invariants on any name: whatever it accepts is
// one component that stays inside the directory it is joined to, is not .git under any
// folding git knows, and has no control character; CheckPath agrees with it on a name with no slash;
// its error text never holds a raw control character. The seeds are the known-bad names.
func FuzzCheckEntryName(f *testing.F) {
	for name := range badNames {
		f.Add(name)
	}
	for _, name := range goodNames {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := syncer.CheckEntryName(name)
		if !strings.Contains(name, "/") && (err == nil) != (syncer.CheckPath(name) == nil) {
			t.Fatalf("CheckEntryName(%q) = %v but CheckPath = %v", name, err, syncer.CheckPath(name))
		}
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r\x00") {
				t.Fatalf("raw control character in %q", err)
			}
			return
		}
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
			t.Fatalf("accepted %q", name)
		}
		if j := filepath.Join("/checkout", name); filepath.Dir(j) != "/checkout" {
			t.Fatalf("accepted %q, which leaves the directory: %s", name, j)
		}
		for _, r := range name {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == '\u2028' || r == '\u2029' {
				t.Fatalf("accepted %q with control character %U", name, r)
			}
		}
		// git's folding: drop HFS+ ignorables, then trailing dots and spaces (NTFS), then an
		// ADS suffix, then compare with .git and git~1 in any case.
		var b strings.Builder
		for _, r := range name {
			if (r >= 0x200c && r <= 0x200f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x206a && r <= 0x206f) || r == 0xfeff {
				continue
			}
			b.WriteRune(r)
		}
		folded := strings.ToLower(b.String())
		if i := strings.IndexByte(folded, ':'); i >= 0 && utf8.ValidString(name) {
			folded = folded[:i]
		}
		folded = strings.TrimRight(folded, ". ")
		if folded == ".git" || folded == "git~1" {
			// HFS+ folding and NTFS trimming together are not one of git's rules; only flag
			// what either rule alone says.
			hfs := strings.ToLower(b.String()) == ".git"
			ntfs := strings.TrimRight(strings.ToLower(strings.SplitN(name, ":", 2)[0]), ". ")
			if hfs || ntfs == ".git" || ntfs == "git~1" {
				t.Fatalf("accepted %q, which git reads as .git", name)
			}
		}
		if len(name) > 255 {
			t.Fatalf("accepted a %d-byte name", len(name))
		}
	})
}
