package rollout

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/certs"
	"github.com/sre-tools/deployer/fleet"
)

// A rollout's hosts come from whoever may submit to the coordinator, so a
// host's token_file must not choose which file of the coordinator's
// machine is read and sent as a bearer token to a URL of the submitter's
// choosing: the coordinator reads token files only inside
// Options.TokenDir, through an os.Root (a symlink cannot lead out).

// maxToken bounds a token file.
const maxToken = 4096

// tokenRel is where token file tf is inside dir: a bare file name, or a
// path in dir; anything else is refused.
func tokenRel(dir, tf string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("token_file %q: this coordinator reads no token file (it has no token directory); reach the host over unix:// or with a client certificate over https", tf)
	}
	rel := tf
	if filepath.IsAbs(tf) {
		r, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(tf))
		if err != nil {
			return "", fmt.Errorf("token_file %q: %v", tf, err)
		}
		rel = r
	}
	if rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("token_file %q is outside the coordinator's token directory %s: put the host's token there and name it by its file name", tf, dir)
	}
	return rel, nil
}

// checkTokens refuses a request whose hosts name token files outside the
// coordinator's token directory.
func (c *Coordinator) checkTokens(hosts []api.RolloutHost) error {
	for _, h := range hosts {
		if h.TokenFile == "" {
			continue
		}
		if _, err := tokenRel(c.opts.TokenDir, h.TokenFile); err != nil {
			return invalid("host %s: %v", h.Name, err)
		}
	}
	return nil
}

// readToken reads a host's bearer token from the token directory.
func (c *Coordinator) readToken(h fleet.Host) (string, error) {
	rel, err := tokenRel(c.opts.TokenDir, h.TokenFile)
	if err != nil {
		return "", fmt.Errorf("host %s: %w", h.Name, err)
	}
	f, err := os.OpenInRoot(c.opts.TokenDir, rel)
	if err != nil {
		return "", fmt.Errorf("host %s: token file: %w", h.Name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxToken+1))
	if err != nil {
		return "", fmt.Errorf("host %s: token file: %w", h.Name, err)
	}
	tok := strings.TrimSpace(string(b))
	switch {
	case len(b) > maxToken:
		return "", fmt.Errorf("host %s: token file %s is larger than %d bytes", h.Name, h.TokenFile, maxToken)
	case tok == "":
		return "", fmt.Errorf("host %s: token file %s is empty", h.Name, h.TokenFile)
	}
	return tok, nil
}

// dial reaches host h of rollout r: its socket, or its http(s) API with a
// token from the token directory and the rollout's TLS settings.
func (c *Coordinator) dial(r api.Rollout, h fleet.Host) (fleet.Daemon, error) {
	if c.opts.Dial != nil {
		return c.opts.Dial(h)
	}
	var t certs.ClientTLS
	if ht := r.Request.HostTLS; ht != nil {
		t = certs.ClientTLS{CAFile: ht.CAFile, CertFile: ht.CertFile, KeyFile: ht.KeyFile}
	}
	u, err := url.Parse(h.URL)
	if err != nil {
		return nil, fmt.Errorf("host %s: url: %w", h.Name, err)
	}
	switch u.Scheme {
	case "unix":
		return api.NewUnixClient(u.Path), nil
	case "http", "https":
	default:
		return nil, fmt.Errorf("host %s: url %q: want http://, https:// or unix:///path/to/socket", h.Name, h.URL)
	}
	tok := ""
	switch {
	case h.TokenFile != "":
		if tok, err = c.readToken(h); err != nil {
			return nil, err
		}
	case u.Scheme != "https" || t.CertFile == "":
		return nil, fmt.Errorf("host %s: %s needs a token_file (or, over https, a client certificate: --cert-file, --key-file)", h.Name, h.URL)
	}
	if u.Scheme == "http" {
		return api.NewRemoteClient(h.URL, tok), nil
	}
	cl, err := api.NewRemoteClientTLS(h.URL, tok, t)
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", h.Name, err)
	}
	return cl, nil
}
