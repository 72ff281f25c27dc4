package fleet

import (
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sre-tools/deployer"
)

// NamePattern is what a host name and a datacenter may be, from any
// inventory: a letter or digit, then up to 62 letters, digits, '.', '_'
// and '-'. A name is put in URLs ({host}, {dc} of a gate), deployment
// ids, tables and messages: nothing in it may change their meaning. The
// coordinator checks hosts it is sent with the same rule.
var NamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ValidName says whether s is a valid host name or datacenter.
func ValidName(s string) bool { return NamePattern.MatchString(s) }

// Label bounds: a label's key and value are one line each, of at most
// these many bytes.
const (
	maxLabelKey   = 63
	maxLabelValue = 256
)

// maxShown is how much of a foreign string (a name, an id, an answer's
// body) a message shows.
const maxShown = 64

// Shown is s as a message shows text from outside: control and bidi
// characters escaped (deployer.Escape), cut after 64 characters.
func Shown(s string) string { return deployer.Escape(Cut(s, maxShown)) }

// Cut is s cut after n characters, "..." and the full length added
// when anything was cut.
func Cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, k := 0, 0
	for i = range s {
		if k == n {
			break
		}
		k++
	}
	return s[:i] + "...(" + strconv.Itoa(len(s)) + " bytes)"
}

// ShownURL is a URL from outside as a message shows it: its password
// hidden (RedactURL), escaped, cut after 200 characters.
func ShownURL(u string) string { return deployer.Escape(Cut(RedactURL(u), 200)) }

// singleLine says whether s holds nothing deployer.Escape would escape.
func singleLine(s string) bool { return deployer.Escape(s) == s }

// HasPassword says whether u, a URL as written ({host} placeholders
// allowed), has a password in its userinfo (user:password@).
func HasPassword(u string) bool {
	if p, err := url.Parse(u); err == nil && p.User != nil {
		if _, ok := p.User.Password(); ok {
			return true
		}
	}
	return urlPassword.MatchString(u)
}

// PasswordRefused is the message for a URL with a password in it.
const PasswordRefused = "has a password in its userinfo (user:password@), which would be stored and shown: put the credential in a token file"

// CanonicalURL is u as hosts are compared: two URLs that reach the same
// daemon compare equal. unix://: the socket path cleaned
// (filepath.Clean: /h1/./d.sock, //h1/d.sock and /h1/../h1/d.sock are
// /h1/d.sock). http(s)://: scheme and host lower-case, a trailing dot of
// the host dropped, the default port made explicit, the path cleaned and
// without a trailing slash; no query, fragment or userinfo. A URL that
// does not parse is returned as it is.
func CanonicalURL(u string) string {
	p, err := url.Parse(strings.TrimSpace(u))
	if err != nil {
		return u
	}
	scheme := strings.ToLower(p.Scheme)
	if scheme == "unix" {
		sock := p.Path
		if p.Host != "" { // unix://host/path is refused elsewhere; compare it as written
			sock = p.Host + "/" + sock
		}
		return "unix://" + filepath.Clean(sock)
	}
	host := strings.TrimSuffix(strings.ToLower(p.Hostname()), ".")
	port := p.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	if port != "" {
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		host += ":" + port
	}
	pth := p.Path
	if pth != "" {
		pth = path.Clean("/" + pth)
	}
	return scheme + "://" + host + strings.TrimRight(pth, "/")
}
