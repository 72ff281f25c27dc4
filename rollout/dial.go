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
		rel, err := tokenRel(c.opts.TokenDir, h.TokenFile)
		if err != nil {
			return invalid("host %s: %v", h.Name, err)
		}
		if err := fleet.CheckTokenPin(c.opts.TokenDir, rel, h.Name, h.URL); err != nil {
			return invalid("%v", err)
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
	if err := fleet.CheckTokenPin(c.opts.TokenDir, rel, h.Name, h.URL); err != nil {
		return "", err
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
		t = certs.ClientTLS{CAFile: c.tlsPath(ht.CAFile), CertFile: c.tlsPath(ht.CertFile), KeyFile: c.tlsPath(ht.KeyFile)}
	}
	u, err := url.Parse(h.URL)
	if err != nil {
		return nil, fmt.Errorf("host %s: url: %w", h.Name, err)
	}
	switch u.Scheme {
	case "unix":
		return c.bound(api.NewUnixClient(u.Path)), nil
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
		return c.bound(api.NewRemoteClient(h.URL, tok)), nil
	}
	if err := c.checkTLS(r.Request.HostTLS); err != nil {
		return nil, fmt.Errorf("host %s: %w", h.Name, err)
	}
	cl, err := api.NewRemoteClientTLS(h.URL, tok, t)
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", h.Name, err)
	}
	return c.bound(cl), nil
}

// bound gives a host's client its deadline per call and its bound on an
// answer: a host that never answers, drips or answers without end fails
// the call, not the coordinator.
func (c *Coordinator) bound(cl *api.Client) *api.Client {
	cl.SetTimeout(c.opts.CallTimeout)
	cl.SetMaxAnswer(MaxAnswer)
	cl.SetNoHints() // the coordinator's errors name no CLI flag
	return cl
}

// checkTLS refuses host_tls files outside the coordinator's TLS directory
// (Options.TLSDir): a submitter does not choose which files of the
// coordinator's machine are read as a CA bundle or presented as its
// client certificate. A symlink in the directory must lead inside it.
func (c *Coordinator) checkTLS(t *api.RolloutTLS) error {
	if t == nil {
		return nil
	}
	for _, f := range []struct{ field, path string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if f.path == "" {
			continue
		}
		if c.opts.TLSDir == "" {
			return invalid("host_tls %s %q: this coordinator takes no TLS files from a request (it has no TLS directory)", f.field, f.path)
		}
		dir, err := filepath.Abs(c.opts.TLSDir)
		if err != nil {
			return invalid("host_tls: %v", err)
		}
		p := filepath.Clean(f.path)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if realDir, err := filepath.EvalSymlinks(dir); err == nil {
			dir = realDir
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return invalid("host_tls %s %q is outside the coordinator's TLS directory %s: put the file there and name it by its file name", f.field, f.path, c.opts.TLSDir)
		}
	}
	return nil
}

// tlsPath is where a host_tls file is: a name relative to the TLS
// directory, or the path as given (checkTLS refuses what is outside).
func (c *Coordinator) tlsPath(p string) string {
	if p == "" || filepath.IsAbs(p) || c.opts.TLSDir == "" {
		return p
	}
	return filepath.Join(c.opts.TLSDir, p)
}
