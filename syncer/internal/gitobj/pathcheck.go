package gitobj

import (
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file is the one check of the paths a repository names. Repository content is
// untrusted: anyone who can push can craft a tree with any entry name (git servers accept
// such trees unless receive.fsckObjects is on). Clone, fast-forward, reset, rescue, restore
// and every write or delete in the checkout go through it, before anything is written.
//
// The rules are git's own (verify_path, verify_dotfile, is_ntfs_dotgit, is_hfs_dotgit in
// git's read-cache.c, path.c and utf8.c) and go-git's ValidTreePath, with the .git aliases
// of NTFS and HFS+ refused on every filesystem, plus the limits of the filesystem under the
// checkout (255 bytes a name, 4095 a path), so that a commit the checkout cannot hold is
// refused by name instead of failing half-way through a write.

// ErrInvalidPath is matched (errors.Is) by every *PathError.
var ErrInvalidPath = errors.New("invalid path")

// The rules a path can break: PathError.Rule is one of these.
const (
	RuleEmpty     = "empty name"
	RuleDot       = `"." and ".." are not allowed`
	RuleSlash     = "contains a slash"
	RuleBackslash = "contains a backslash"
	RuleControl   = "contains a control character"
	RuleDotGit    = "is .git in some letter case"
	RuleNTFSGit   = "is an NTFS alias of .git (git~1, or .git with trailing dots, spaces or :stream)"
	RuleHFSGit    = "is an HFS+ alias of .git (.git with ignorable unicode code points)"
	RuleNameLong  = "name longer than 255 bytes"
	RulePathLong  = "path longer than 4095 bytes"
	RuleDuplicate = "two entries of one tree have this name"
	RuleOrder     = "tree entries are not in git's order"
)

const (
	maxNameLen = 255  // NAME_MAX
	maxPathLen = 4095 // PATH_MAX less the terminating NUL
)

// PathError says why a path from a repository is refused.
type PathError struct {
	Path string // the whole slash path, as the repository names it
	Rule string // which rule it breaks (one of the Rule constants)
}

// Error names the path, quoted so that control characters show as escapes, and the rule.
func (e *PathError) Error() string {
	return "invalid path " + QuotePath(e.Path) + ": " + e.Rule
}

// Is makes errors.Is(err, ErrInvalidPath) true.
func (e *PathError) Is(target error) bool { return target == ErrInvalidPath }

// QuotePath quotes a repository path for a message, a log or a table: Go syntax, with every
// control, format and non-printable character escaped, so that it never starts a new line or
// reorders the text around it.
func QuotePath(p string) string { return strconv.Quote(p) }

// CheckEntryName checks one tree entry name (one path component). It returns a *PathError
// naming the rule the name breaks, or nil.
func CheckEntryName(name string) error {
	if rule := entryRule(name); rule != "" {
		return &PathError{Path: name, Rule: rule}
	}
	return nil
}

// CheckPath checks a slash path relative to the checkout: every component must pass
// CheckEntryName (so "", "/a", "a//b", "a/" and "a/../b" are refused). It returns a
// *PathError naming the whole path and the rule, or nil.
func CheckPath(p string) error {
	if p == "" {
		return &PathError{Path: p, Rule: RuleEmpty}
	}
	if len(p) > maxPathLen {
		return &PathError{Path: p, Rule: RulePathLong}
	}
	for rest := p; ; {
		name, tail, more := strings.Cut(rest, "/")
		if rule := entryRule(name); rule != "" {
			return &PathError{Path: p, Rule: rule}
		}
		if !more {
			return nil
		}
		rest = tail
	}
}

// entryRule returns the rule name breaks, or "".
func entryRule(name string) string {
	switch name {
	case "":
		return RuleEmpty
	case ".", "..":
		return RuleDot
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '/':
			return RuleSlash
		case c == '\\':
			return RuleBackslash
		case c < 0x20 || c == 0x7f:
			return RuleControl
		case c >= 0x80:
			if r, _ := utf8.DecodeRuneInString(name[i:]); r != utf8.RuneError && isControlRune(r) {
				return RuleControl
			}
		}
	}
	if len(name) > maxNameLen {
		return RuleNameLong
	}
	switch {
	case strings.EqualFold(name, ".git"):
		return RuleDotGit
	case isNTFSDotGit(name):
		return RuleNTFSGit
	case isHFSDotGit(name):
		return RuleHFSGit
	}
	return ""
}

// isControlRune reports the C1 controls and the unicode line and paragraph separators: they
// start a new line in a terminal or a log viewer as "\n" does.
func isControlRune(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}

// isNTFSDotGit is git's is_ntfs_dotgit: ".git" or its 8.3 short name "git~1", in any letter
// case, followed only by dots and spaces (which NTFS strips), or by ":" (an alternate data
// stream of the same file).
func isNTFSDotGit(name string) bool {
	var i int
	switch {
	case len(name) >= 4 && name[0] == '.' && strings.EqualFold(name[1:4], "git"):
		i = 4
	case len(name) >= 5 && strings.EqualFold(name[:3], "git") && name[3:5] == "~1":
		i = 5
	default:
		return false
	}
	for ; i < len(name); i++ {
		switch name[i] {
		case ':':
			return true
		case '.', ' ':
		default:
			return false
		}
	}
	return true
}

// hfsIgnorable are the code points HFS+ ignores in names (git's next_hfs_char): ".g\u200cit"
// names the same directory as ".git" there.
func hfsIgnorable(r rune) bool {
	switch {
	case r >= 0x200c && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x206a && r <= 0x206f, r == 0xfeff:
		return true
	}
	return false
}

// isHFSDotGit is git's is_hfs_dotgit: ".git" in any ASCII letter case once the ignorable code
// points are dropped.
func isHFSDotGit(name string) bool {
	const want = ".git"
	n := 0
	for _, r := range name {
		if hfsIgnorable(r) {
			continue
		}
		if n == len(want) || r > 127 || unicode.ToLower(r) != rune(want[n]) {
			return false
		}
		n++
	}
	return n == len(want)
}
