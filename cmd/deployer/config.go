package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"

	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/syncer"
)

// defaultConfigPath is where the daemon and the CLI look without --config.
const defaultConfigPath = "/etc/deployer/deployer.yaml"

// Config is the host config file (/etc/deployer/deployer.yaml), decoded strictly.
type Config struct {
	Host          string         `yaml:"host"`
	Datacenter    string         `yaml:"datacenter"`
	StateDir      string         `yaml:"state_dir"`
	Listen        ListenConfig   `yaml:"listen"`
	Log           LogConfig      `yaml:"log"`
	AllowStepDirs []string       `yaml:"allow_step_dirs"`
	StepEnv       []string       `yaml:"step_env"`
	ShutdownGrace *Duration      `yaml:"shutdown_grace"` // default 30s
	Repos         []RepoConfig   `yaml:"repos"`
	Notify        []NotifyConfig `yaml:"notify"`
	Limits        LimitsConfig   `yaml:"limits"`

	file string     // the path it was read from, for messages
	root *yaml.Node // its document, for the lines of later checks
}

// LimitsConfig caps what the XML engine accepts from a repository; zero
// means the default (manifest.DefaultLimits).
type LimitsConfig struct {
	InstanceFileBytes int64 `yaml:"instance_file_bytes"` // default 8 MiB
	XMLDepth          int   `yaml:"xml_depth"`           // default 256
}

// Bounds of the limits keys: the XML engine recurses once per nesting
// level, so the depth stays far below what a goroutine stack holds.
const (
	minInstanceFileBytes = 4 << 10
	maxInstanceFileBytes = 1 << 30
	minXMLDepth          = 16
	maxXMLDepth          = 100_000
)

// ManifestLimits returns the configured limits for the manifest package.
func (c *Config) ManifestLimits() manifest.Limits {
	return manifest.Limits{InstanceFileBytes: c.Limits.InstanceFileBytes, XMLDepth: c.Limits.XMLDepth}
}

// ListenConfig says where the API listens.
type ListenConfig struct {
	Socket            string `yaml:"socket"`
	SocketGroup       string `yaml:"socket_group"`
	HTTP              string `yaml:"http"`
	TokenFile         string `yaml:"token_file"`
	WebhookSecretFile string `yaml:"webhook_secret_file"`
	// TLS, when set, serves listen.http over TLS.
	TLS *ListenTLSConfig `yaml:"tls"`
	// Status is who may open the status pages on listen.http: "token"
	// (the default: the bearer token or a client certificate) or "public"
	// (anyone; every /v1 call still needs the token).
	Status string `yaml:"status"`
}

// The listen.status values.
const (
	StatusToken  = "token"
	StatusPublic = "public"
)

// ListenTLSConfig is the TLS of the TCP API listener.
type ListenTLSConfig struct {
	CertFile     string   `yaml:"cert_file"`
	KeyFile      string   `yaml:"key_file"`
	ClientCAFile string   `yaml:"client_ca_file"`
	ClientNames  []string `yaml:"client_names"`
}

// LogConfig sets the log level and format (json, or console; console is the default on a TTY).
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// RepoConfig is one tracked clusterconfig repository.
type RepoConfig struct {
	Name         string       `yaml:"name"`
	URL          string       `yaml:"url"`
	Branch       string       `yaml:"branch"`
	Poll         Duration     `yaml:"poll"`
	Auth         AuthConfig   `yaml:"auth"`
	Author       AuthorConfig `yaml:"author"`
	WebhookNames []string     `yaml:"webhook_names"`
	OnDirty      string       `yaml:"on_dirty"`
	OnRewrite    string       `yaml:"on_rewrite"`
	PushAttempts int          `yaml:"push_attempts"`
	EnvFiles     []string     `yaml:"env_files"`
	// TLS, for an https:// url: the CA that signs the git server and a
	// client certificate for servers that require one.
	TLS *RepoTLSConfig `yaml:"tls"`
}

// RepoTLSConfig is how a repo's https:// server is trusted and how the
// daemon proves who it is to it. The files are read at start and on SIGHUP
// (a changed file restarts the repo); key contents are never logged.
type RepoTLSConfig struct {
	CAFile string `yaml:"ca_file"` // PEM bundle trusted besides the system's roots
	// InsecureSkipVerify accepts any server certificate; refused unless
	// AllowInsecure is set too, and warned about on every start.
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	AllowInsecure      bool   `yaml:"allow_insecure"`
	CertFile           string `yaml:"cert_file"` // client certificate (PEM), with key_file
	KeyFile            string `yaml:"key_file"`

	line int // of the tls: key, for messages about its files
}

// AuthConfig names the credential files of a repo; their contents are never logged.
type AuthConfig struct {
	SSHKeyFile     string `yaml:"ssh_key_file"`
	KnownHostsFile string `yaml:"known_hosts_file"`
	Username       string `yaml:"username"`
	PasswordFile   string `yaml:"password_file"`
}

// AuthorConfig is the identity of the daemon's commits.
type AuthorConfig struct {
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
}

// NotifyConfig is one notification channel.
type NotifyConfig struct {
	Name       string            `yaml:"name"`
	Kind       string            `yaml:"kind"`
	URL        string            `yaml:"url"`
	URLFile    string            `yaml:"url_file"`
	SecretFile string            `yaml:"secret_file"`
	TokenFile  string            `yaml:"token_file"`
	Reminder   Duration          `yaml:"reminder"`
	Project    string            `yaml:"project"`
	IssueType  string            `yaml:"issue_type"`
	Fields     map[string]string `yaml:"fields"`
	CAFile     string            `yaml:"ca_file"` // PEM bundle trusted besides the system's roots
}

// Duration is a time.Duration written as "1m30s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string. A bad one is a type error,
// so that the decoder goes on and every other problem is reported too.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	switch {
	case err != nil:
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration (write e.g. 30s, 1m, 4h)", n.Line, n.Value)}}
	case v < 0:
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is negative: want a positive duration (e.g. 30s, 1m, 4h)", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// ConfigError lists every problem of a config file as file:line: message.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string { return strings.Join(e.Problems, "\n") }

var yamlLine = regexp.MustCompile(`^\s*(?:yaml: )?line (\d+): (.*)$`)

// loadConfig reads and validates the host config at path.
func loadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return parseConfig(path, data)
}

// parseConfig decodes and validates a host config and reports every
// problem in one pass, in the order of their lines: YAML type errors,
// unknown keys and the checks of validate. Only a file that is no YAML at
// all stops at its first problem.
func parseConfig(path string, data []byte) (*Config, error) {
	var c Config
	c.file = path
	probs, root, ok := decodeStrict(path, data, &c)
	if !ok {
		return nil, &ConfigError{Problems: probs}
	}
	probs = append(probs, c.validate(root)...)
	c.root = root
	if len(probs) > 0 {
		sortByLine(path, probs)
		// The partly decoded config goes with the error: --check-config
		// checks its files too. Every other caller stops at the error.
		return &c, &ConfigError{Problems: probs}
	}
	c.applyDefaults()
	return &c, nil
}

// fileProblems lists the files the config names that the daemon reads at
// start (tokens, secrets, credentials) and cannot read now, each with the
// line of its key: --check-config reports them with the rest.
func (c *Config) fileProblems() []string {
	type named struct {
		keys []string
		path string
	}
	files := []named{
		{[]string{"listen", "token_file"}, c.Listen.TokenFile},
		{[]string{"listen", "webhook_secret_file"}, c.Listen.WebhookSecretFile},
	}
	for i, r := range c.Repos {
		is := strconv.Itoa(i)
		files = append(files,
			named{[]string{"repos", is, "auth", "ssh_key_file"}, r.Auth.SSHKeyFile},
			named{[]string{"repos", is, "auth", "known_hosts_file"}, r.Auth.KnownHostsFile},
			named{[]string{"repos", is, "auth", "password_file"}, r.Auth.PasswordFile})
	}
	for i, n := range c.Notify {
		is := strconv.Itoa(i)
		files = append(files,
			named{[]string{"notify", is, "url_file"}, n.URLFile},
			named{[]string{"notify", is, "secret_file"}, n.SecretFile},
			named{[]string{"notify", is, "token_file"}, n.TokenFile})
	}
	var probs []string
	for _, f := range files {
		if f.path == "" {
			continue
		}
		line := 1
		if c.root != nil {
			line = lineOf(c.root, f.keys...)
		}
		key := strings.Join(f.keys, ".")
		for _, k := range f.keys {
			if _, err := strconv.Atoi(k); err == nil {
				key = strings.Replace(key, "."+k+".", "["+k+"].", 1)
			}
		}
		fh, err := os.Open(f.path)
		if err != nil {
			why := err.Error()
			switch {
			case errors.Is(err, os.ErrNotExist):
				why = "no such file"
			case errors.Is(err, os.ErrPermission):
				why = "permission denied (run the check as the daemon's user: runuser -u deployer -- deployer daemon --check-config)"
			}
			probs = append(probs, fmt.Sprintf("%s:%d: %s %s: %s; create it or correct the path (the daemon reads it at start)", c.file, line, key, f.path, why))
			continue
		}
		fh.Close()
	}
	return probs
}

// decodeStrict decodes data into v and lists its problems: the values of
// the wrong type and the keys v has no field for, each named by its path
// (unknown key "pol" (in repos[0])), never by a Go type. ok is false when
// data is no YAML document at all (nothing was decoded). root is the
// document, for the lines of later checks.
func decodeStrict(path string, data []byte, v any) (probs []string, root *yaml.Node, ok bool) {
	root = &yaml.Node{}
	if err := yaml.Unmarshal(data, root); err != nil {
		return yamlProblems(path, err), root, false
	}
	if root.Kind == 0 {
		return nil, root, true // an empty file: the checks say what is missing
	}
	if err := root.Decode(v); err != nil {
		if !errors.As(err, new(*yaml.TypeError)) {
			return yamlProblems(path, err), root, false
		}
		probs = yamlProblems(path, err)
	}
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	for i, p := range probs {
		// Name the key of a value of the wrong type: repos[0].poll: ...
		if line := problemLine(path, p); line > 0 {
			if key := keyAt(doc, line, "", 0); key != "" {
				probs[i] = fmt.Sprintf("%s:%d: %s: %s", path, line, key, strings.TrimPrefix(p, fmt.Sprintf("%s:%d: ", path, line)))
			}
		}
	}
	unknownKeys(doc, reflect.TypeOf(v), "", 0, func(line int, key, where string, known []string) {
		msg := fmt.Sprintf("unknown key %q (%s)", key, where)
		if s := nearest(key, known); s != "" {
			msg += fmt.Sprintf("; did you mean %s?", s)
		} else {
			msg += fmt.Sprintf("; remove it (the keys there: %s)", strings.Join(known, ", "))
		}
		probs = append(probs, fmt.Sprintf("%s:%d: %s", path, line, msg))
	})
	return probs, root, true
}

// unknownKeys walks a YAML node along the Go type it decodes into and
// reports every mapping key that type has no yaml field for. where is the
// path of n (repos[0].auth), "" at the top.
func unknownKeys(n *yaml.Node, t reflect.Type, where string, depth int, report func(line int, key, where string, known []string)) {
	if n == nil || depth > 32 {
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
		if n == nil {
			return
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		var known []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			fields[name] = f.Type
			known = append(known, name)
		}
		in := "at the top level"
		if where != "" {
			in = "in " + where
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				report(k.Line, k.Value, in, known)
				continue
			}
			unknownKeys(n.Content[i+1], ft, joinKey(where, k.Value), depth+1, report)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, e := range n.Content {
			unknownKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", where, i), depth+1, report)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			unknownKeys(n.Content[i+1], t.Elem(), joinKey(where, n.Content[i].Value), depth+1, report)
		}
	}
}

func joinKey(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

// nearest is the known key within two edits of key, if one is.
func nearest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// keyAt is the path (repos[0].poll) of the first deepest key written on
// line, "" if none is.
func keyAt(n *yaml.Node, line int, where string, depth int) string {
	if n == nil || depth > 32 {
		return ""
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := joinKey(where, k.Value)
			if deeper := keyAt(v, line, path, depth+1); deeper != "" {
				return deeper
			}
			if k.Line == line {
				return path
			}
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			if deeper := keyAt(e, line, fmt.Sprintf("%s[%d]", where, i), depth+1); deeper != "" {
				return deeper
			}
		}
	}
	return ""
}

// problemLine is the line of a problem written file:line: message, 0 if
// it has none.
func problemLine(path, p string) int {
	rest := strings.TrimPrefix(p, path+":")
	n, err := strconv.Atoi(rest[:max(strings.IndexByte(rest, ':'), 0)])
	if err != nil {
		return 0
	}
	return n
}

// sortByLine orders problems (file:line: message) by their line; the
// order of one line's problems is kept.
func sortByLine(path string, probs []string) {
	slices.SortStableFunc(probs, func(a, b string) int { return problemLine(path, a) - problemLine(path, b) })
}

// yamlUnmarshal is yaml's "cannot unmarshal !!seq into main.RepoConfig":
// said in the words of the file, not of Go's types.
var yamlUnmarshal = regexp.MustCompile("^cannot unmarshal !!(\\w+) (`[^`]*` )?into (\\S+)$")

func yamlKind(tag, value string) string {
	value = strings.TrimSpace(value)
	switch tag {
	case "seq":
		return "a list"
	case "map":
		return "a mapping (key: value)"
	case "null":
		return "nothing"
	}
	if value != "" {
		return strings.Trim(value, "`")
	}
	return "a " + tag
}

func goKind(t string) string {
	t = strings.TrimPrefix(strings.TrimPrefix(t, "*"), "main.")
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping (key: value)"
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "a whole number"
	case strings.HasPrefix(t, "float"):
		return "a number"
	}
	return "a mapping (key: value)"
}

func yamlProblems(path string, err error) []string {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var out []string
	for _, m := range msgs {
		// One problem per line: a value quoted in the message may hold line breaks.
		m = strings.NewReplacer("\r", `\r`, "\n", `\n`, "main.", "").Replace(m)
		if g := yamlLine.FindStringSubmatch(m); g != nil {
			msg := strings.Replace(g[2], " in type ", " in ", 1)
			if u := yamlUnmarshal.FindStringSubmatch(msg); u != nil {
				msg = fmt.Sprintf("got %s, want %s", yamlKind(u[1], u[2]), goKind(u[3]))
			}
			out = append(out, fmt.Sprintf("%s:%s: %s", path, g[1], msg))
			continue
		}
		out = append(out, fmt.Sprintf("%s: %s", path, strings.TrimPrefix(m, "yaml: ")))
	}
	return out
}

// configCheck collects the problems of one config file, each as file:line: message.
type configCheck struct {
	c     *Config
	root  *yaml.Node
	probs []string
}

func (k *configCheck) bad(line int, format string, args ...any) {
	k.probs = append(k.probs, fmt.Sprintf("%s:%d: %s", k.c.file, line, fmt.Sprintf(format, args...)))
}

// at is the line of a key path in the file (see lineOf).
func (k *configCheck) at(keys ...string) int { return lineOf(k.root, keys...) }

// validate lists every problem of the config, in the order of its sections.
func (c *Config) validate(root *yaml.Node) []string {
	k := &configCheck{c: c, root: root}
	if c.StateDir == "" {
		k.bad(1, "state_dir is required (e.g. state_dir: /var/lib/deployer)")
	}
	k.listen()
	k.log()
	k.notify()
	k.limits()
	k.repos()
	return k.probs
}

// listen: the TCP API is never served without authentication, and its TLS
// block is complete.
func (k *configCheck) listen() {
	l := k.c.Listen
	if l.Status != "" && l.Status != StatusToken && l.Status != StatusPublic {
		k.bad(k.at("listen", "status"), "listen.status %q: want token (the status page needs the token, the default) or public (anyone who reaches listen.http may read it)", l.Status)
	}
	mtls := l.TLS != nil && l.TLS.ClientCAFile != "" && len(l.TLS.ClientNames) > 0
	if l.HTTP != "" && l.TokenFile == "" && !mtls {
		k.bad(k.at("listen", "http"), "listen.http needs listen.token_file (or listen.tls with client_ca_file and client_names): the TCP API is never served without authentication")
	}
	if g := l.SocketGroup; g != "" {
		if _, err := user.LookupGroup(g); err != nil {
			why := err.Error()
			if errors.As(err, new(user.UnknownGroupError)) {
				why = "no such group on this host"
			}
			k.bad(k.at("listen", "socket_group"), "listen.socket_group %q: %s (the daemon could not hand its socket to it); create it (groupadd %s, then add the deployer user and the operators to it) or name an existing group", g, why, g)
		}
	}
	t := l.TLS
	if t == nil {
		return
	}
	if l.HTTP == "" {
		k.bad(k.at("listen", "tls", ""), "listen.tls needs listen.http: it is the TLS of the TCP listener")
	}
	if t.CertFile == "" || t.KeyFile == "" {
		k.bad(k.at("listen", "tls", ""), "listen.tls needs cert_file and key_file")
	}
	if len(t.ClientNames) > 0 && t.ClientCAFile == "" {
		k.bad(k.at("listen", "tls", "client_names"), "listen.tls.client_names needs client_ca_file: names are only trusted on certificates that CA signed")
	}
	for i, n := range t.ClientNames {
		if strings.TrimSpace(n) == "" || n != strings.TrimSpace(n) {
			k.bad(k.at("listen", "tls", "client_names", strconv.Itoa(i)), "listen.tls.client_names[%d] %q: want a certificate name (CN or DNS name) without spaces around it", i, n)
		}
	}
}

func (k *configCheck) log() {
	lc := k.c.Log
	if lc.Level != "" {
		if _, err := zerolog.ParseLevel(lc.Level); err != nil {
			k.bad(k.at("log", "level"), "log.level %q: want trace, debug, info, warn or error", lc.Level)
		}
	}
	if lc.Format != "" && lc.Format != "json" && lc.Format != "console" {
		k.bad(k.at("log", "format"), "log.format %q: want json or console", lc.Format)
	}
}

func (k *configCheck) notify() {
	for i, n := range k.c.Notify {
		at := func(key string) int { return k.at("notify", strconv.Itoa(i), key) }
		switch n.Kind {
		case "slack", "webhook":
			if n.URL == "" && n.URLFile == "" {
				k.bad(at(""), "notify[%d] (%s): url or url_file is required", i, n.Kind)
			}
		case "jira":
			if n.URL == "" || n.Project == "" || n.IssueType == "" || n.TokenFile == "" {
				k.bad(at(""), "notify[%d] (jira): url, token_file, project and issue_type are required", i)
			}
		default:
			k.bad(at("kind"), "notify[%d]: kind %q: want slack, webhook or jira", i, n.Kind)
		}
	}
}

func (k *configCheck) limits() {
	if b := k.c.Limits.InstanceFileBytes; b != 0 && (b < minInstanceFileBytes || b > maxInstanceFileBytes) {
		k.bad(k.at("limits", "instance_file_bytes"), "limits.instance_file_bytes %d: want between %d and %d (default %d)", b, minInstanceFileBytes, maxInstanceFileBytes, manifest.DefaultInstanceFileBytes)
	}
	if d := k.c.Limits.XMLDepth; d != 0 && (d < minXMLDepth || d > maxXMLDepth) {
		k.bad(k.at("limits", "xml_depth"), "limits.xml_depth %d: want between %d and %d (default %d)", d, minXMLDepth, maxXMLDepth, manifest.DefaultXMLDepth)
	}
}

func (k *configCheck) repos() {
	// repos: [] written out is a daemon that only coordinates rollouts;
	// no repos key at all is a config that forgot them
	doc := k.root
	if doc != nil && doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	if len(k.c.Repos) == 0 && (doc == nil || child(doc, "repos") == nil) {
		k.bad(k.at("repos"), "no repos configured: add at least one under repos: (or write 'repos: []' for a daemon that only coordinates fleet rollouts)")
	}
	seen := map[string]bool{}
	for i := range k.c.Repos {
		r := &k.c.Repos[i]
		at := func(key string) int { return k.at("repos", strconv.Itoa(i), key) }
		switch {
		case r.Name == "":
			k.bad(at(""), "repos[%d]: name is required", i)
		case !validName(r.Name):
			k.bad(at("name"), "repo name %q: use letters, digits, '.', '_' and '-' only", r.Name)
		case seen[r.Name]:
			k.bad(at("name"), "repo name %q is used twice", r.Name)
		}
		seen[r.Name] = true
		k.repo(r, at)
		k.repoURLPoll(i, r)
		if r.TLS != nil {
			k.repoTLS(i, r)
		}
	}
}

// repo checks one repo's url and policies; at is the line of its keys.
func (k *configCheck) repo(r *RepoConfig, at func(key string) int) {
	if r.URL == "" {
		k.bad(at(""), "repo %q: url is required", r.Name)
	}
	if r.OnDirty != "" && r.OnDirty != "intervene" && r.OnDirty != "rescue" {
		k.bad(at("on_dirty"), "repo %q: on_dirty must be intervene or rescue, not %q", r.Name, r.OnDirty)
	}
	if r.OnRewrite != "" && r.OnRewrite != "intervene" && r.OnRewrite != "follow" {
		k.bad(at("on_rewrite"), "repo %q: on_rewrite must be intervene or follow, not %q", r.Name, r.OnRewrite)
	}
	if r.PushAttempts < 0 {
		k.bad(at("push_attempts"), "repo %q: push_attempts must be positive", r.Name)
	}
}

// repoSchemes are the url schemes a repo may use; an scp-like
// user@host:path and a local path have none.
var repoSchemes = []string{"ssh", "https", "http", "git", "file"}

var urlScheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)

// repoURLPoll refuses a url of a scheme git cannot fetch from and a poll
// interval written as zero (a repo that would poll without pause).
func (k *configCheck) repoURLPoll(i int, r *RepoConfig) {
	at := func(key string) int { return k.at("repos", strconv.Itoa(i), key) }
	if m := urlScheme.FindStringSubmatch(r.URL); m != nil && !slices.Contains(repoSchemes, strings.ToLower(m[1])) {
		k.bad(at("url"), "repo %q: url scheme %q: want ssh://, https://, http://, git:// or file:// (or user@host:path)", r.Name, m[1])
	}
	doc := k.root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	if n := child(doc, "repos"); n != nil {
		if n = child(n, strconv.Itoa(i)); n != nil {
			if p := child(n, "poll"); p != nil && p.Kind == yaml.ScalarNode {
				if d, err := time.ParseDuration(p.Value); err == nil && d == 0 {
					k.bad(p.Line, "repo %q: poll %s: want a positive interval (e.g. 30s, 5m; leave poll out for the default 1m)", r.Name, p.Value)
				}
			}
		}
	}
}

// repoTLS checks the tls block of repos[i] and remembers its line for
// messages about its files.
func (k *configCheck) repoTLS(i int, r *RepoConfig) {
	t := r.TLS
	tat := func(key string) int { return k.at("repos", strconv.Itoa(i), "tls", key) }
	t.line = keyLine(k.root, "repos", strconv.Itoa(i), "tls")
	if r.URL != "" && !strings.HasPrefix(strings.ToLower(r.URL), "https://") {
		k.bad(t.line, "repo %q: tls applies to https:// urls only, and url is %s; remove the tls: block or use the server's https:// url", r.Name, syncer.RedactURL(r.URL))
	}
	if t.InsecureSkipVerify && !t.AllowInsecure {
		k.bad(tat("insecure_skip_verify"), "repo %q: tls.insecure_skip_verify accepts any server certificate, so anyone on the network path can read and change what the repo serves; set tls.ca_file to the CA that signs the git server instead, or add allow_insecure: true to the same tls block to accept that risk", r.Name)
	}
	if t.InsecureSkipVerify && t.CAFile != "" {
		k.bad(tat("ca_file"), "repo %q: tls.ca_file is not used when tls.insecure_skip_verify is set; remove one of them", r.Name)
	}
	if t.AllowInsecure && !t.InsecureSkipVerify {
		k.bad(tat("allow_insecure"), "repo %q: tls.allow_insecure only confirms insecure_skip_verify, which is not set; remove it", r.Name)
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		line := tat("cert_file")
		if t.CertFile == "" {
			line = tat("key_file")
		}
		k.bad(line, "repo %q: a client certificate needs both tls.cert_file and tls.key_file (or neither)", r.Name)
	}
}

func (c *Config) applyDefaults() {
	if c.Host == "" {
		c.Host, _ = os.Hostname()
	}
	if c.Listen.Socket == "" {
		c.Listen.Socket = "/run/deployer/deployer.sock"
	}
	for i := range c.Repos {
		r := &c.Repos[i]
		if r.Branch == "" {
			r.Branch = "main"
		}
		if r.Poll == 0 {
			r.Poll = Duration(time.Minute)
		}
		if r.PushAttempts == 0 {
			r.PushAttempts = 5
		}
		if r.Author.Name == "" {
			r.Author.Name = c.Host + "-deployer"
		}
		if r.Author.Email == "" {
			r.Author.Email = "deployer@" + c.Host
		}
	}
}

func validName(s string) bool {
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return s != "" && s != "." && s != ".."
}

// lineOf finds the line of a key path in a YAML document ("" as the last
// key means the node itself); it returns the deepest line it reached.
func lineOf(root *yaml.Node, keys ...string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := max(n.Line, 1)
	for _, k := range keys {
		if k == "" {
			break
		}
		next := child(n, k)
		if next == nil {
			break
		}
		n, line = next, next.Line
	}
	return line
}

// keyLine is the line of the last key of a path (where "tls:" is written,
// not where the block under it starts); lineOf's answer if it is missing.
func keyLine(root *yaml.Node, keys ...string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, k := range keys[:len(keys)-1] {
		if n = child(n, k); n == nil {
			return lineOf(root, keys...)
		}
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == keys[len(keys)-1] {
				return n.Content[i].Line
			}
		}
	}
	return lineOf(root, keys...)
}

func child(n *yaml.Node, key string) *yaml.Node {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
	case yaml.SequenceNode:
		if i, err := strconv.Atoi(key); err == nil && i < len(n.Content) {
			return n.Content[i]
		}
	}
	return nil
}
