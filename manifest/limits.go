package manifest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
)

// Default resource limits of the XML engine.
const (
	// DefaultInstanceFileBytes caps the size of an instance file (and of
	// deployer.xml): 8 MiB.
	DefaultInstanceFileBytes int64 = 8 << 20
	// MaxAttributes caps the attributes of one element. It is not
	// configurable: real configuration files have a handful, and the
	// duplicate check and the merge compare attributes pairwise.
	MaxAttributes = 1000
	// DefaultXMLDepth caps how deeply elements may nest.
	DefaultXMLDepth = 256
)

// Limits caps what the XML engine accepts from a repository. A zero field
// takes its default. The host config sets them (limits.instance_file_bytes,
// limits.xml_depth); the key names appear in the errors so that whoever
// reads one knows what to raise.
type Limits struct {
	// InstanceFileBytes is the largest instance file (and deployer.xml) read.
	InstanceFileBytes int64
	// XMLDepth is the deepest element nesting parsed; the root element is at
	// depth 1.
	XMLDepth int
}

// DefaultLimits returns the limits used when none are configured.
func DefaultLimits() Limits {
	return Limits{InstanceFileBytes: DefaultInstanceFileBytes, XMLDepth: DefaultXMLDepth}
}

// withDefaults fills zero fields.
func (l Limits) withDefaults() Limits {
	if l.InstanceFileBytes <= 0 {
		l.InstanceFileBytes = DefaultInstanceFileBytes
	}
	if l.XMLDepth <= 0 {
		l.XMLDepth = DefaultXMLDepth
	}
	return l
}

// ErrLimit is wrapped by errors that report an exceeded Limits cap.
var ErrLimit = errors.New("limit exceeded")

// instanceNameRE is the instance name grammar.
var instanceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// InstanceNameRule describes the instance name grammar for messages and docs.
const InstanceNameRule = "an instance name is 1 to 128 characters: letters, digits, '.', '_' and '-', starting with a letter or digit"

// CheckInstanceName reports whether name follows the instance name grammar
// [A-Za-z0-9][A-Za-z0-9._-]{0,127}. Names reach step argv, commit messages
// and tables, so nothing else is accepted: no leading '-' (an option to a
// step), no whitespace or control character (a new line in a commit
// message), no '/' (a path).
func CheckInstanceName(name string) error {
	if instanceNameRE.MatchString(name) {
		return nil
	}
	return fmt.Errorf("%w: instance name %q does not follow the grammar [A-Za-z0-9][A-Za-z0-9._-]{0,127} (%s)", ErrInvalid, name, InstanceNameRule)
}

// ErrOutsideRepo is wrapped by ReadRepoFile's error when the file resolves
// outside the repository root (through a symlink or "..").
var ErrOutsideRepo = errors.New("resolves outside the repository")

// ReadRepoFile reads the file at the slash path rel inside the directory
// root. It is the one rule for every file the daemon reads from a checkout:
// the path is opened through an os.Root, so no symlink or ".." can resolve
// outside root; only regular files are read; and a file larger than max
// bytes (max > 0) is refused with an error naming the file and the cap,
// wrapping ErrLimit. Nothing of the file's content ever appears in an error.
func ReadRepoFile(root, rel string, max int64) ([]byte, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", root, err)
	}
	defer r.Close()
	name := filepath.FromSlash(rel)
	// O_NONBLOCK: opening a FIFO must not wait for a writer; it is then
	// refused as not a regular file.
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, repoPathError(rel, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file (%s)", rel, ErrInvalid, fi.Mode().Type())
	}
	if max > 0 && fi.Size() > max {
		return nil, fmt.Errorf("%s: %w: %d bytes, over the cap of %d bytes", rel, ErrLimit, fi.Size(), max)
	}
	var rd io.Reader = f
	if max > 0 {
		rd = io.LimitReader(f, max+1)
	}
	data, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rel, err)
	}
	if max > 0 && int64(len(data)) > max {
		return nil, fmt.Errorf("%s: %w: over the cap of %d bytes", rel, ErrLimit, max)
	}
	return data, nil
}

// StatRepoFile checks, with ReadRepoFile's rule, that rel is a regular file
// inside root, and returns its mode.
func StatRepoFile(root, rel string) (fs.FileMode, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return 0, fmt.Errorf("open repository %s: %w", root, err)
	}
	defer r.Close()
	fi, err := r.Stat(filepath.FromSlash(rel))
	if err != nil {
		return 0, repoPathError(rel, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%s: %w: not a regular file (%s)", rel, ErrInvalid, fi.Mode().Type())
	}
	return fi.Mode(), nil
}

// repoPathError turns an os.Root error into one that says what is wrong
// without echoing where a symlink points.
func repoPathError(rel string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent" {
		return fmt.Errorf("%s: %w (a symlink or \"..\" leads out of it)", rel, ErrOutsideRepo)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", rel, fs.ErrNotExist)
	}
	return fmt.Errorf("%s: %w", rel, err)
}
