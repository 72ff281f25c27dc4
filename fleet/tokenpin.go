package fleet

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A host's bearer token is sent only to the URL it belongs to: a token
// file FILE.token in a token directory (the CLI's --host-token-dir, a
// coordinator's STATE_DIR/host-tokens) is used only for a host whose URL
// equals the one line of FILE.url beside it, compared after NormalURL.
// Whoever writes the host list (an inventory URL, a rollout request)
// chooses neither which token is sent nor where: the pin is written by
// whoever owns the directory.

// maxPin bounds a .url pin file.
const maxPin = 4096

// NormalURL is CanonicalURL: u as hosts and pins are compared.
func NormalURL(u string) string { return CanonicalURL(u) }

// PinFile is the pin beside token file rel (a path in the token
// directory): rel without its extension, plus ".url".
func PinFile(rel string) string {
	return strings.TrimSuffix(rel, filepath.Ext(rel)) + ".url"
}

// CheckTokenPin says whether token file rel of dir may be sent to
// hostURL: nil when dir's pin beside it names the same URL. The pin is
// read through an os.Root (a symlink cannot lead out of dir).
func CheckTokenPin(dir, rel, host, hostURL string) error {
	host = Shown(host)
	if !filepath.IsLocal(rel) {
		// a path that leads out of dir (../, or absolute): no pin of dir
		// could vouch for it, and none is asked for
		return fmt.Errorf("host %s: token file %s is not inside the token directory %s: name a file in it (its owner puts the host's token there, with its URL pinned beside it)",
			host, Shown(rel), dir)
	}
	rel = filepath.Clean(rel)
	pin := PinFile(rel)
	f, err := os.OpenInRoot(dir, pin)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("host %s: token file %s has no pinned URL: write the host's URL in %s (one line) to let its token be sent there",
			host, filepath.Join(dir, rel), filepath.Join(dir, pin))
	}
	if err != nil {
		return fmt.Errorf("host %s: token pin: %w", host, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPin+1))
	if err != nil {
		return fmt.Errorf("host %s: token pin %s: %w", host, filepath.Join(dir, pin), err)
	}
	pinned := strings.TrimSpace(string(b))
	if first, _, _ := strings.Cut(pinned, "\n"); first != pinned || len(b) > maxPin || pinned == "" {
		return fmt.Errorf("host %s: token pin %s: want one line, the host's URL", host, filepath.Join(dir, pin))
	}
	if NormalURL(pinned) != NormalURL(hostURL) {
		return fmt.Errorf("host %s: url %s is not the URL its token file %s is pinned to (%s, in %s): give the host its pinned URL, or, if the host moved, its owner writes the new URL in %s",
			host, ShownURL(hostURL), Shown(rel), ShownURL(pinned), filepath.Join(dir, pin), filepath.Join(dir, pin))
	}
	return nil
}
