package syncer

import "github.com/sre-tools/deployer/syncer/internal/gitobj"

// The one check of the paths a repository names lives in the object layer (gitobj), which
// runs it before anything is written; these are its exported names. Repository content is
// untrusted: anyone who can push can craft a tree with any entry name. The rules are git's
// own (verify_path, verify_dotfile, is_ntfs_dotgit, is_hfs_dotgit) and go-git's
// ValidTreePath, with the .git aliases of NTFS and HFS+ refused on every filesystem, plus the
// limits of the filesystem under the checkout (255 bytes a name, 4095 a path).

// ErrInvalidPath is matched (errors.Is) by every *PathError.
var ErrInvalidPath = gitobj.ErrInvalidPath

// PathError says why a path from a repository is refused: Path is the whole slash path, as
// the repository names it; Rule is one of the Rule constants.
type PathError = gitobj.PathError

// The rules a path can break: PathError.Rule is one of these.
const (
	RuleEmpty     = gitobj.RuleEmpty
	RuleDot       = gitobj.RuleDot
	RuleSlash     = gitobj.RuleSlash
	RuleBackslash = gitobj.RuleBackslash
	RuleControl   = gitobj.RuleControl
	RuleDotGit    = gitobj.RuleDotGit
	RuleNTFSGit   = gitobj.RuleNTFSGit
	RuleHFSGit    = gitobj.RuleHFSGit
	RuleNameLong  = gitobj.RuleNameLong
	RulePathLong  = gitobj.RulePathLong
	RuleDuplicate = gitobj.RuleDuplicate
	RuleOrder     = gitobj.RuleOrder
)

// QuotePath quotes a repository path for a message, a log or a table: Go syntax, with every
// control, format and non-printable character escaped, so that it never starts a new line or
// reorders the text around it.
func QuotePath(p string) string { return gitobj.QuotePath(p) }

// CheckEntryName checks one tree entry name (one path component). It returns a *PathError
// naming the rule the name breaks, or nil.
func CheckEntryName(name string) error { return gitobj.CheckEntryName(name) }

// CheckPath checks a slash path relative to the checkout: every component must pass
// CheckEntryName (so "", "/a", "a//b", "a/" and "a/../b" are refused). It returns a
// *PathError naming the whole path and the rule, or nil.
func CheckPath(p string) error { return gitobj.CheckPath(p) }
