package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/certs"
)

// Source is where a host list comes from and how it is read.
type Source struct {
	// Location is an http:// or https:// inventory URL, or a YAML or JSON
	// file.
	Location string
	// Map reads an inventory of any JSON shape (see ParseInventoryMap);
	// nil reads the deployer's shape ({hosts: [...]}) or a bare list of
	// hosts.
	Map *InventoryMap
	// TokenFile holds a bearer token sent to the inventory URL;
	// BasicAuthFile holds "user:password" for HTTP basic auth. Their
	// contents never appear in errors.
	TokenFile, BasicAuthFile string
	// Client fetches the inventory URL (nil: a plain client); give it one
	// that trusts the inventory's CA, see certs.ClientTLS.HTTPClient.
	Client *http.Client
	// Timeout bounds the whole fetch, retries included; 0 means
	// DefaultInventoryTimeout.
	Timeout time.Duration
	// HostTokenDir, when set, is where the hosts' bearer tokens are: a
	// host's token_file is a file name in it (no directory part), and a
	// host without one uses HostTokenDir/<name>.token when that exists.
	// An inventory URL may name token files only this way: a remote
	// inventory never chooses which file of this machine is read and sent
	// (it could have any one-line file, a daemon's token or an env file,
	// sent to a URL of its choice).
	HostTokenDir string
	// ForCoordinator says the hosts go to a coordinator, which reads a
	// host's token file itself, only inside its STATE_DIR/host-tokens:
	// without HostTokenDir, a relative token_file of an inventory file is
	// then left as written (a name in that directory), where the local
	// commands (fleet status, fleet deploy --in-process) read it relative
	// to the inventory file.
	ForCoordinator bool
}

// DefaultInventoryTimeout bounds an inventory fetch, retries included.
const DefaultInventoryTimeout = 10 * time.Second

// inventoryAttempts is how often a failing inventory URL is asked (a
// refused connection, a 5xx or 429 answer), within the timeout.
const inventoryAttempts = 3

// inventoryBackoff is the pause before the second attempt; it doubles.
var inventoryBackoff = 500 * time.Millisecond

// IsURL says whether location is an inventory URL rather than a file.
func IsURL(location string) bool {
	return strings.HasPrefix(location, "http://") || strings.HasPrefix(location, "https://")
}

// Load reads the host list. With HostTokenDir, a token_file is a file in
// it and a host without one uses HostTokenDir/NAME.token when that
// exists. Without it, a relative token_file in a file is relative to the
// file's directory, or left as written ForCoordinator.
func (s Source) Load(ctx context.Context) ([]Host, error) {
	if !IsURL(s.Location) {
		if s.TokenFile != "" || s.BasicAuthFile != "" {
			return nil, fmt.Errorf("%w: inventory auth (token or basic auth file) applies to an http(s) inventory URL, and %s is a file", ErrInvalidOptions, s.Location)
		}
		data, err := os.ReadFile(s.Location)
		if err != nil {
			return nil, fmt.Errorf("read host list: %w", err)
		}
		hosts, err := parseHosts(s.Location, data, s.Map, s.HostTokenDir)
		if err != nil {
			return nil, err
		}
		if s.HostTokenDir != "" {
			return s.hostTokens(s.Location, hosts)
		}
		for i, h := range hosts {
			if h.TokenFile != "" && !filepath.IsAbs(h.TokenFile) && !s.ForCoordinator {
				hosts[i].TokenFile = filepath.Join(filepath.Dir(s.Location), h.TokenFile)
			}
		}
		return hosts, nil
	}
	data, err := s.fetch(ctx)
	if err != nil {
		return nil, err
	}
	from := ShownURL(s.Location)
	hosts, err := parseHosts(from, data, s.Map, s.HostTokenDir)
	if err != nil {
		return nil, err
	}
	for i, h := range hosts {
		// a remote inventory does not choose a socket of this machine
		// (the local daemon's own, reached with no token)
		if strings.HasPrefix(strings.ToLower(h.URL), "unix:") {
			return nil, fmt.Errorf("%w: %s: host [%d] %s: url %s: an inventory URL may not name local sockets: use a file inventory",
				ErrInvalidHosts, from, i, Shown(h.Name), ShownURL(h.URL))
		}
	}
	return s.hostTokens(from, hosts)
}

// hostTokens places the hosts' token files in s.HostTokenDir, each used
// only for the URL pinned beside it (DIR/NAME.token for DIR/NAME.url, see
// CheckTokenPin): a host pairing a token with another URL is refused. Without it,
// an inventory that names a token file is refused (only a local inventory
// file may name paths, and it does not come here without the flag).
func (s Source) hostTokens(from string, hosts []Host) ([]Host, error) {
	for i, h := range hosts {
		switch {
		case s.HostTokenDir == "" && h.TokenFile != "":
			return nil, fmt.Errorf("%w: %s: host %s names token_file %s, and an inventory URL may not choose files on this machine: put the hosts' tokens in a directory and give --host-token-dir DIR (token_file is then a file name in DIR; a host without one uses DIR/%s.token), or use a client certificate over https",
				ErrInvalidHosts, from, Shown(h.Name), Shown(h.TokenFile), Shown(h.Name))
		case s.HostTokenDir == "":
		case h.TokenFile != "":
			// a path in DIR, cleaned: one that leads out of it is refused
			// (CheckTokenPin), whatever pins are there
			if err := CheckTokenPin(s.HostTokenDir, h.TokenFile, h.Name, h.URL); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrInvalidHosts, from, err)
			}
			hosts[i].TokenFile = filepath.Join(s.HostTokenDir, filepath.Clean(h.TokenFile))
		default:
			if p := filepath.Join(s.HostTokenDir, h.Name+".token"); fileExists(p) {
				if err := CheckTokenPin(s.HostTokenDir, h.Name+".token", h.Name, h.URL); err != nil {
					return nil, fmt.Errorf("%w: %s: %v", ErrInvalidHosts, from, err)
				}
				hosts[i].TokenFile = p
			}
		}
	}
	return hosts, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// RedactURL hides a password written in a URL (user:xxxxx@); anything
// else is returned as it is.
func RedactURL(u string) string {
	if !HasPassword(u) {
		return u
	}
	// the password's place in u as written: what is shown keeps the rest
	// of u as it was typed ({host} placeholders included)
	if urlPassword.MatchString(u) {
		return urlPassword.ReplaceAllString(u, "$1:xxxxx@")
	}
	p, _ := url.Parse(u) // HasPassword parsed it
	return p.Redacted()
}

// urlPassword is the userinfo's password of a URL: after the scheme and
// user name, up to the authority's last '@'.
var urlPassword = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*):[^/?#]*@`)

// auth returns the Authorization header value, and the secret itself to
// keep out of messages.
func (s Source) auth() (header, secret string, err error) {
	switch {
	case s.TokenFile != "" && s.BasicAuthFile != "":
		return "", "", fmt.Errorf("%w: give an inventory token file or a basic auth file, not both", ErrInvalidOptions)
	case s.TokenFile != "":
		tok, err := readSecret(s.TokenFile, "inventory token file")
		if err != nil {
			return "", "", err
		}
		return "Bearer " + tok, tok, nil
	case s.BasicAuthFile != "":
		up, err := readSecret(s.BasicAuthFile, "inventory basic auth file")
		if err != nil {
			return "", "", err
		}
		user, pass, ok := strings.Cut(up, ":")
		if !ok || user == "" {
			return "", "", fmt.Errorf("%w: inventory basic auth file %s: want one line user:password", ErrInvalidOptions, s.BasicAuthFile)
		}
		req := &http.Request{Header: http.Header{}}
		req.SetBasicAuth(user, pass)
		return req.Header.Get("Authorization"), pass, nil
	}
	return "", "", nil
}

// readSecret reads a one-line secret; errors never hold its content.
func readSecret(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w: read %s: %v", ErrInvalidOptions, what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%w: %s %s is empty", ErrInvalidOptions, what, path)
	}
	return s, nil
}

// fetch GETs the inventory URL within the timeout, asking again after a
// failure that may pass (no connection, 5xx, 429).
func (s Source) fetch(ctx context.Context) ([]byte, error) {
	header, secret, err := s.auth()
	if err != nil {
		return nil, err
	}
	client := &http.Client{}
	if s.Client != nil {
		c := *s.Client
		client = &c
	}
	client.CheckRedirect = keepAuthOnSameOrigin
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultInventoryTimeout
	}
	shown := ShownURL(s.Location)
	fetchCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	backoff := inventoryBackoff
	var last error
	attempt := 0
	for attempt = 1; attempt <= inventoryAttempts; attempt++ {
		data, retry, err := s.get(fetchCtx, client, header, shown)
		if err == nil {
			return data, nil
		}
		last = err
		if !retry || fetchCtx.Err() != nil {
			break
		}
		if attempt < inventoryAttempts && sleep(fetchCtx, backoff) != nil {
			break
		}
		backoff *= 2
	}
	attempt = min(attempt, inventoryAttempts)
	msg := last.Error()
	if secret != "" {
		msg = strings.ReplaceAll(msg, secret, "[redacted]")
	}
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%w: get %s: %v", ErrInventory, shown, ctx.Err())
	case errors.Is(last, context.DeadlineExceeded):
		return nil, fmt.Errorf("%w: %s did not answer within %s (%d attempt(s)): check the URL and that the inventory is up, or raise --inventory-timeout", ErrInventory, shown, timeout, attempt)
	}
	return nil, fmt.Errorf("%w: %s (%d attempt(s))", ErrInventory, msg, attempt)
}

// get is one attempt; retry says whether another one may go better.
func (s Source) get(ctx context.Context, client *http.Client, header, shown string) (data []byte, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Location, nil)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %v", shown, err)
	}
	req.Header.Set("Accept", "application/json")
	if header != "" {
		req.Header.Set("Authorization", header)
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if why, ok := certs.TLSReason(err, "pass --inventory-ca-file (or --ca-file) with the CA bundle that signed it"); ok {
			return nil, false, fmt.Errorf("get %s: %s", shown, why)
		}
		if errors.Is(err, errRedirectRefused) {
			return nil, false, fmt.Errorf("get %s: %w", shown, err)
		}
		return nil, true, fmt.Errorf("get %s: %w", shown, err)
	}
	defer resp.Body.Close()
	data, err = io.ReadAll(io.LimitReader(resp.Body, maxInventory+1))
	if err != nil {
		return nil, true, fmt.Errorf("read %s: %w", shown, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, false, fmt.Errorf("%s answered %s: give the inventory's credentials with --inventory-token-file (bearer) or --inventory-basic-auth-file (user:password), or check them", shown, resp.Status)
	case resp.StatusCode/100 != 2:
		retry := resp.StatusCode/100 == 5 || resp.StatusCode == http.StatusTooManyRequests
		// the body is the server's text: escaped and cut
		return nil, retry, fmt.Errorf("%s answered %s: %s", shown, deployer.Escape(resp.Status), deployer.Escape(Cut(strings.TrimSpace(string(data)), 200)))
	case len(data) > maxInventory:
		return nil, false, fmt.Errorf("%s answered more than %d bytes", shown, maxInventory)
	}
	return data, false, nil
}

// InventoryMap says where the fields of a host are in an inventory of any
// JSON (or YAML) shape, as field paths: ".items", ".spec.api.url". The zero
// value of a field means its default.
type InventoryMap struct {
	Hosts      string // the list of hosts, from the top; default: the top when it is a list, else .hosts
	Name       string // in each host; default .name
	URL        string // default .url
	Datacenter string // default .datacenter
	Labels     string // a mapping of names to values, or a list of "key=value" / "key:value" tags; default .labels
	TokenFile  string // default .token_file
}

// mapKeys are the keys of --inventory-map, in the order of the docs.
var mapKeys = []string{"hosts", "name", "url", "dc", "labels", "token_file"}

// ParseInventoryMap reads --inventory-map's "key=path, ..." list, e.g.
// "hosts=.items, url=.api, dc=.region, labels=.tags". Keys: hosts, name,
// url, dc (or datacenter), labels, token_file. A path is a dot and field
// names separated by dots; "." is the value itself.
func ParseInventoryMap(s string) (InventoryMap, error) {
	var m InventoryMap
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, path, ok := strings.Cut(part, "=")
		key, path = strings.TrimSpace(key), strings.TrimSpace(path)
		if !ok || path == "" {
			return m, fmt.Errorf("%w: --inventory-map %q: want key=.path (keys %s), e.g. 'hosts=.items, url=.api, dc=.region'", ErrInvalidOptions, part, strings.Join(mapKeys, ", "))
		}
		if key == "datacenter" {
			key = "dc"
		}
		if seen[key] {
			return m, fmt.Errorf("%w: --inventory-map: %s given twice", ErrInvalidOptions, key)
		}
		seen[key] = true
		if _, err := splitPath(path); err != nil {
			return m, fmt.Errorf("%w: --inventory-map %s=%s: %v", ErrInvalidOptions, key, path, err)
		}
		switch key {
		case "hosts":
			m.Hosts = path
		case "name":
			m.Name = path
		case "url":
			m.URL = path
		case "dc":
			m.Datacenter = path
		case "labels":
			m.Labels = path
		case "token_file":
			m.TokenFile = path
		default:
			return m, fmt.Errorf("%w: --inventory-map: unknown key %q (want %s)", ErrInvalidOptions, key, strings.Join(mapKeys, ", "))
		}
	}
	if len(seen) == 0 {
		return m, fmt.Errorf("%w: --inventory-map is empty: want e.g. 'hosts=.items, url=.api, dc=.region'", ErrInvalidOptions)
	}
	return m, nil
}

func (m InventoryMap) withDefaults() InventoryMap {
	for _, f := range []struct {
		p   *string
		def string
	}{{&m.Name, ".name"}, {&m.URL, ".url"}, {&m.Datacenter, ".datacenter"}, {&m.Labels, ".labels"}, {&m.TokenFile, ".token_file"}} {
		if *f.p == "" {
			*f.p = f.def
		}
	}
	return m
}

// splitPath splits ".a.b" into [a b]; "." is the empty path.
func splitPath(p string) ([]string, error) {
	if p == "." {
		return nil, nil
	}
	if !strings.HasPrefix(p, ".") {
		return nil, errors.New("a path starts with a dot: .field.field")
	}
	parts := strings.Split(p[1:], ".")
	for _, f := range parts {
		if f == "" || strings.ContainsAny(f, " \t[]=,") {
			return nil, fmt.Errorf("field %q: want field names separated by dots", f)
		}
	}
	return parts, nil
}

// lookup follows path from n; ok is false when a field is missing.
func lookup(n *yaml.Node, path string) (*yaml.Node, bool) {
	parts, _ := splitPath(path)
	for _, f := range parts {
		if n.Kind != yaml.MappingNode {
			return nil, false
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == f {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil, false
		}
		n = next
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n, true
}

// mapped reads the hosts of an inventory of any shape through m; fields
// other than the mapped ones are ignored.
func (p *hostParser) mapped(root *yaml.Node, m InventoryMap) []lineHost {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		p.bad(1, "empty inventory")
		return nil
	}
	top := root.Content[0]
	m = m.withDefaults()
	hostsPath := m.Hosts
	if hostsPath == "" {
		hostsPath = ".hosts"
		if top.Kind == yaml.SequenceNode {
			hostsPath = "."
		}
	}
	list, ok := lookup(top, hostsPath)
	if !ok {
		p.bad(top.Line, "no %s in the inventory: point --inventory-map hosts= at its list of hosts", hostsPath)
		return nil
	}
	if list.Kind != yaml.SequenceNode {
		p.bad(list.Line, "%s is not a list: point --inventory-map hosts= at the list of hosts", hostsPath)
		return nil
	}
	hosts := make([]lineHost, 0, len(list.Content))
	for i, n := range list.Content {
		h := lineHost{line: n.Line, index: i}
		if n.Kind != yaml.MappingNode {
			p.bad(n.Line, "%s[%d]: a host is a mapping", hostsPath, i)
			continue
		}
		ok := true
		for _, f := range []struct {
			path string
			dst  *string
		}{{m.Name, &h.Name}, {m.URL, &h.URL}, {m.Datacenter, &h.Datacenter}, {m.TokenFile, &h.TokenFile}} {
			v, found := lookup(n, f.path)
			if !found || v.Tag == "!!null" {
				continue
			}
			if v.Kind != yaml.ScalarNode {
				p.bad(v.Line, "%s[%d]%s: want a string", hostsPath, i, f.path)
				ok = false
				continue
			}
			*f.dst = strings.TrimSpace(v.Value)
		}
		if v, found := lookup(n, m.Labels); found && v.Tag != "!!null" {
			labels, bad := labelsOf(v)
			if bad != "" {
				p.bad(v.Line, "%s[%d]%s: %s", hostsPath, i, m.Labels, bad)
				ok = false
			}
			h.Labels = labels
		}
		if h.Name == "" && h.URL != "" {
			h.Name = hostOfURL(h.URL)
		}
		if ok {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// hostOfURL is the host name of an inventory entry that has a URL but no
// name field.
func hostOfURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Hostname() == "" {
		return ""
	}
	return p.Hostname()
}

// labelsOf reads labels: a mapping of names to scalar values, or a list of
// tags "key=value", "key:value" or "key" (a label with an empty value).
func labelsOf(n *yaml.Node) (map[string]string, string) {
	out := map[string]string{}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return nil, fmt.Sprintf("label %q: want a string value", k.Value)
			}
			out[k.Value] = v.Value
		}
	case yaml.SequenceNode:
		for _, t := range n.Content {
			if t.Kind != yaml.ScalarNode {
				return nil, "want a list of tags (key=value, key:value or key)"
			}
			k, v, ok := strings.Cut(t.Value, "=")
			if !ok {
				k, v, _ = strings.Cut(t.Value, ":")
			}
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	default:
		return nil, "want a mapping of labels or a list of tags"
	}
	return out, ""
}

// errRedirectRefused: a redirect the inventory fetch does not follow (it
// is not asked again).
var errRedirectRefused = errors.New("refused a redirect")

// keepAuthOnSameOrigin follows at most 10 redirects of the inventory URL;
// the credentials go along only to the same scheme, host and port (Go's
// client kept them for the same host on another port, and from https to
// http), and a redirect from https to http is refused outright.
func keepAuthOnSameOrigin(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return fmt.Errorf("%w: stopped after 10 redirects", errRedirectRefused)
	}
	first := via[0].URL
	if first.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w from https to %s", errRedirectRefused, req.URL.Redacted())
	}
	if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		req.Header.Del("Authorization")
	}
	return nil
}
