package fleet

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Host is one deployer host of the fleet.
type Host struct {
	Name       string            `json:"name"`
	Datacenter string            `json:"datacenter"`
	URL        string            `json:"url"`                  // http(s)://host:port or unix:///path/to/socket
	TokenFile  string            `json:"token_file,omitempty"` // bearer token for http(s) URLs
	Labels     map[string]string `json:"labels,omitempty"`     // for --hosts selections: env=prod, tier=canary
}

// HostsError lists every problem of a host list as source:line: message.
// It matches ErrInvalidHosts with errors.Is.
type HostsError struct {
	Problems []string
}

func (e *HostsError) Error() string {
	return "invalid host list:\n  " + strings.Join(e.Problems, "\n  ")
}

// Is makes errors.Is(err, ErrInvalidHosts) true.
func (e *HostsError) Is(target error) bool { return target == ErrInvalidHosts }

// maxInventory bounds the answer of an inventory URL.
const maxInventory = 4 << 20

// hostKeys are the keys a host entry may have, in the order of the docs.
var hostKeys = []string{"name", "datacenter", "url", "token_file", "labels"}

// Load reads the host list from source: an http:// or https:// inventory
// URL answering the list as JSON, or a YAML or JSON file (see Source).
func Load(ctx context.Context, source string) ([]Host, error) {
	return Source{Location: source}.Load(ctx)
}

// LoadWith is Load fetching an inventory URL with client (nil means a
// plain client): give it one that trusts the inventory's CA, see
// certs.ClientTLS.HTTPClient.
func LoadWith(ctx context.Context, source string, client *http.Client) ([]Host, error) {
	return Source{Location: source, Client: client}.Load(ctx)
}

// ParseHosts decodes a host list, YAML or JSON, named source in messages:
//
//	hosts:
//	  - {name: fra1-prod-dep01, datacenter: fra1, url: "https://fra1-prod-dep01:8443", token_file: fra1.token, labels: {env: prod}}
//	  - {name: ams1-prod-dep01, datacenter: ams1, url: "unix:///run/deployer/deployer.sock"}
//
// or the same list without the hosts: key (a bare list). Unknown keys,
// missing fields, duplicate names and bad URLs are errors, every one of
// them reported with its line in a *HostsError.
func ParseHosts(source string, data []byte) ([]Host, error) {
	return parseHosts(source, data, nil, "")
}

// ParseMapped decodes an inventory of any shape through m (see
// InventoryMap); fields it does not map are ignored.
func ParseMapped(source string, data []byte, m InventoryMap) ([]Host, error) {
	return parseHosts(source, data, &m, "")
}

// parseHosts decodes a host list; tokenDir is --host-token-dir (""
// without it): an http:// host without token_file is accepted when
// tokenDir holds NAME.token.
func parseHosts(source string, data []byte, m *InventoryMap, tokenDir string) ([]Host, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &HostsError{Problems: []string{syntaxProblem(source, err)}}
	}
	p := &hostParser{source: source, tokenDir: tokenDir}
	var hosts []lineHost
	if m != nil {
		hosts = p.mapped(&root, *m)
	} else {
		hosts = p.document(&root)
	}
	p.validate(hosts)
	if len(p.problems) > 0 && m != nil {
		d := m.withDefaults()
		p.problems = append(p.problems, fmt.Sprintf("(fields read through --inventory-map name=%s, url=%s, dc=%s, labels=%s: check the paths against the inventory's answer)", d.Name, d.URL, d.Datacenter, d.Labels))
	}
	if len(p.problems) > 0 {
		return nil, &HostsError{Problems: p.problems}
	}
	out := make([]Host, len(hosts))
	for i, h := range hosts {
		out[i] = h.Host
	}
	return out, nil
}

// yamlLine matches the one place yaml.v3 names a line in a syntax error;
// it has no typed syntax error.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxProblem turns yaml's "yaml: line N: msg" into "source:N: msg".
func syntaxProblem(source string, err error) string {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Sprintf("%s:%s: %s", source, m[1], m[2])
	}
	return fmt.Sprintf("%s: %v", source, err)
}

// lineHost is a host and the line it starts on.
type lineHost struct {
	Host
	line  int
	index int // in the inventory's list of hosts, from 0
}

type hostParser struct {
	source   string
	tokenDir string // --host-token-dir, "" without it
	problems []string
}

func (p *hostParser) bad(line int, format string, args ...any) {
	p.problems = append(p.problems, fmt.Sprintf("%s:%d: %s", p.source, line, fmt.Sprintf(format, args...)))
}

func (p *hostParser) document(root *yaml.Node) []lineHost {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		p.bad(1, "empty host list: want hosts: [{name, datacenter, url, token_file}, ...]")
		return nil
	}
	top := root.Content[0]
	if top.Kind == yaml.SequenceNode { // a bare list of hosts
		return p.list(top)
	}
	if top.Kind != yaml.MappingNode {
		p.bad(top.Line, "want a list of hosts, or a mapping with one key, hosts:")
		return nil
	}
	var list *yaml.Node
	for key, val := range p.pairs(top) {
		if key.Value != "hosts" {
			p.bad(key.Line, "unknown key %q (want hosts)", key.Value)
			continue
		}
		list = val
	}
	if list == nil {
		p.bad(top.Line, "no hosts: key")
		return nil
	}
	if list.Kind != yaml.SequenceNode {
		p.bad(list.Line, "hosts: want a list of hosts")
		return nil
	}
	return p.list(list)
}

func (p *hostParser) list(list *yaml.Node) []lineHost {
	hosts := make([]lineHost, 0, len(list.Content))
	for i, n := range list.Content {
		if h, ok := p.host(n); ok {
			h.index = i
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// pairs yields a mapping's key and value nodes, reporting repeated keys.
func (p *hostParser) pairs(m *yaml.Node) func(yield func(k, v *yaml.Node) bool) {
	return func(yield func(k, v *yaml.Node) bool) {
		seen := map[string]int{}
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			if first, dup := seen[k.Value]; dup {
				p.bad(k.Line, "key %q given twice (first at line %d)", k.Value, first)
				continue
			}
			seen[k.Value] = k.Line
			if !yield(k, v) {
				return
			}
		}
	}
}

func (p *hostParser) host(n *yaml.Node) (lineHost, bool) {
	h := lineHost{line: n.Line}
	if n.Kind != yaml.MappingNode {
		p.bad(n.Line, "a host is a mapping of %s", strings.Join(hostKeys, ", "))
		return h, false
	}
	ok := true
	for key, val := range p.pairs(n) {
		if key.Value == "labels" {
			labels, bad := labelsOf(val)
			if bad != "" {
				p.bad(val.Line, "labels: %s", bad)
				ok = false
			}
			h.Labels = labels
			continue
		}
		field := h.field(key.Value)
		if field == nil {
			p.bad(key.Line, "unknown key %q in a host (want %s)", key.Value, strings.Join(hostKeys, ", "))
			ok = false
			continue
		}
		if val.Kind != yaml.ScalarNode {
			p.bad(val.Line, "%s: want a string", key.Value)
			ok = false
			continue
		}
		*field = strings.TrimSpace(val.Value)
	}
	return h, ok
}

func (h *lineHost) field(key string) *string {
	switch key {
	case "name":
		return &h.Name
	case "datacenter":
		return &h.Datacenter
	case "url":
		return &h.URL
	case "token_file":
		return &h.TokenFile
	}
	return nil
}

func (p *hostParser) validate(hosts []lineHost) {
	if len(hosts) == 0 && len(p.problems) == 0 {
		p.bad(1, "no hosts listed")
	}
	first := map[string]int{}
	urls := map[string]lineHost{}
	for _, h := range hosts {
		name := Shown(h.Name) // text from the inventory: escaped and cut in every message
		if h.URL != "" {
			n := CanonicalURL(h.URL)
			if o, dup := urls[n]; dup {
				p.bad(h.line, "host \"%s\" has the url of host \"%s\" (line %d): %s; one host listed twice would be deployed twice", name, Shown(o.Name), o.line, ShownURL(h.URL))
			} else {
				urls[n] = h
			}
		}
		switch {
		case h.Name == "":
			p.bad(h.line, "host without a name (host [%d] of the list)", h.index)
		case !ValidName(h.Name):
			p.bad(h.line, "host [%d]: name \"%s\": %s", h.index, name, nameRule)
		default:
			if line, dup := first[h.Name]; dup {
				p.bad(h.line, "host \"%s\" is listed twice (first at line %d)", name, line)
			} else {
				first[h.Name] = h.line
			}
		}
		switch {
		case h.Datacenter == "":
			p.bad(h.line, "host \"%s\" has no datacenter", name)
		case !ValidName(h.Datacenter):
			p.bad(h.line, "host [%d] \"%s\": datacenter \"%s\": %s", h.index, name, Shown(h.Datacenter), nameRule)
		}
		if msg := checkLabels(h.Labels); msg != "" {
			p.bad(h.line, "host [%d] \"%s\": %s", h.index, name, msg)
		}
		if msg := checkURL(h.Host, p.tokenDir); msg != "" {
			p.bad(h.line, "host \"%s\": %s", name, msg)
		}
	}
}

// nameRule says what a host name or datacenter may be (NamePattern).
const nameRule = "want a letter or digit, then up to 62 letters, digits, '.', '_' and '-'"

// checkLabels says what is wrong with a host's labels, "" when nothing is:
// a key and a value are one line each, bounded.
func checkLabels(labels map[string]string) string {
	for k, v := range labels {
		switch {
		case k == "" || len(k) > maxLabelKey || !singleLine(k):
			return fmt.Sprintf("label \"%s\": want a key of 1 to %d characters on one line (no control characters)", Shown(k), maxLabelKey)
		case len(v) > maxLabelValue || !singleLine(v):
			return fmt.Sprintf("label %s=\"%s\": want a value of at most %d characters on one line (no control characters)", Shown(k), Shown(v), maxLabelValue)
		}
	}
	return ""
}

// checkURL says what is wrong with a host's URL, "" when nothing is;
// tokenDir is --host-token-dir ("" without it), where an http:// host
// without token_file finds its token as NAME.token.
func checkURL(h Host, tokenDir string) string {
	shown := ShownURL(h.URL)
	if h.URL == "" {
		return "no url (want https://HOST:PORT or unix:///path/to/socket)"
	}
	if HasPassword(h.URL) {
		return fmt.Sprintf("url \"%s\" %s (token_file, or --host-token-dir)", shown, PasswordRefused)
	}
	u, err := url.Parse(h.URL)
	if err != nil {
		return fmt.Sprintf("url \"%s\": does not parse as a URL", shown)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return fmt.Sprintf("url \"%s\" has no host", shown)
		}
		if h.TokenFile == "" && u.Scheme == "http" {
			if tokenDir == "" {
				return fmt.Sprintf("url \"%s\" needs token_file, or its token in DIR/%s.token with --host-token-dir DIR: a daemon's TCP API wants a bearer token", shown, Shown(h.Name))
			}
			if !ValidName(h.Name) || !fileExists(filepath.Join(tokenDir, h.Name+".token")) {
				return fmt.Sprintf("url \"%s\" needs token_file, or its token in %s (--host-token-dir): a daemon's TCP API wants a bearer token", shown, filepath.Join(tokenDir, Shown(h.Name)+".token"))
			}
		}
	case "unix":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return fmt.Sprintf("url \"%s\": want unix:///absolute/path/to/socket (three slashes)", shown)
		}
	default:
		return fmt.Sprintf("url \"%s\": want http://, https:// or unix:///path/to/socket", shown)
	}
	return ""
}
