package syncer

import (
	"net/url"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// redactor removes credentials from text: the password in the remote URL and the
// secret of an HTTP auth method.
type redactor struct {
	pairs []string // old, new, ... for strings.NewReplacer
}

func newRedactor(rawURL string, auth transport.AuthMethod) *redactor {
	r := &redactor{}
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			r.add(rawURL, u.Redacted())
			r.add(p, "xxxxx")
			r.add(url.QueryEscape(p), "xxxxx")
		}
	}
	switch a := auth.(type) {
	case *githttp.BasicAuth:
		r.add(a.Password, "xxxxx")
	case *githttp.TokenAuth:
		r.add(a.Token, "xxxxx")
	}
	return r
}

func (r *redactor) add(secret, repl string) {
	if len(secret) >= 3 {
		r.pairs = append(r.pairs, secret, repl)
	}
}

// String scrubs s.
func (r *redactor) String(s string) string {
	if r == nil || len(r.pairs) == 0 {
		return s
	}
	return strings.NewReplacer(r.pairs...).Replace(s)
}

// Err returns err with its text scrubbed; errors.Is and errors.As still see err.
func (r *redactor) Err(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := r.String(msg)
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

// RedactURL returns rawURL with any password replaced by "xxxxx".
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	return u.Redacted()
}
