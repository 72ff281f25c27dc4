package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"
	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/certs"
	"github.com/sre-tools/deployer/daemon"
	"github.com/sre-tools/deployer/notify"
	"github.com/sre-tools/deployer/syncer"
	"github.com/sre-tools/deployer/webhook"
)

type daemonOptions struct{ checkConfig bool }

func newDaemonCmd(g *globalOptions) *cobra.Command {
	o := &daemonOptions{}
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the daemon in the foreground until SIGTERM",
		Long: `Run the daemon in the foreground until SIGTERM or SIGINT; SIGHUP re-reads and
validates the config file.

With --check-config, only validate the config file: every problem is printed
as file:line: message. Every TLS certificate and key it names is loaded; one
that expires within 30 days is a warning, an expired or unloadable one an
error. Exit status: 0 valid (or clean stop), 1 error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := g.configPath
			if path == "" {
				path = defaultConfigPath
			}
			cfg, err := loadConfig(path)
			if o.checkConfig {
				return checkConfig(cmd.OutOrStdout(), path, cfg, err)
			}
			if err != nil {
				return err
			}
			return runDaemon(cmd.Context(), cfg, path, newLogger(cfg.Log, os.Stderr))
		},
	}
	cmd.Flags().BoolVar(&o.checkConfig, "check-config", false, "only validate the config file")
	return cmd
}

// checkConfig is daemon --check-config: every problem of the file at
// once (its checks, the files it names that cannot be read, its
// certificates), each as file:line: message, then how many there are.
func checkConfig(w io.Writer, path string, cfg *Config, err error) error {
	var problems []string
	var ce *ConfigError
	switch {
	case errors.As(err, &ce):
		problems = ce.Problems
		if cfg != nil {
			problems = append(problems, cfg.fileProblems()...)
			sortByLine(path, problems)
		}
	case err != nil:
		return err
	default:
		lines, certProblems := checkCerts(cfg, time.Now())
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
		problems = append(cfg.fileProblems(), certProblems...)
	}
	if len(problems) > 0 {
		n := plural(len(problems), "problem", "problems")
		return &ConfigError{Problems: append(problems, fmt.Sprintf("%s: %s; fix and run deployer daemon --check-config again", path, n))}
	}
	fmt.Fprintf(w, "%s: ok (%s, %s)\n", path, plural(len(cfg.Repos), "repo", "repos"), plural(len(certUses(cfg)), "certificate", "certificates"))
	return nil
}

// plural is "1 repo", "2 repos".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// runDaemon serves the API and runs the pipeline until ctx is done.
func runDaemon(ctx context.Context, cfg *Config, path string, log zerolog.Logger) error {
	opts, err := daemonOpts(cfg, log)
	if err != nil {
		return err
	}
	d, err := daemon.New(opts)
	if err != nil {
		return err
	}
	defer d.Close()
	servers, certs, err := serveAPI(cfg, d, log)
	if err != nil {
		return err
	}
	certLines, certProblems := checkCerts(cfg, time.Now())
	for _, l := range append(certLines, certProblems...) {
		if !strings.HasPrefix(l, "ok: ") {
			log.Warn().Str("check", l).Msg("tls certificate")
		}
	}
	go watchHUP(ctx, path, cfg, d, certs, log)
	go notifySystemd(ctx, d, cfg.Listen.Socket, log)
	log.Info().Str("host", opts.Host).Str("state", d.StatePath()).Str("socket", cfg.Listen.Socket).Int("repos", len(cfg.Repos)).Str("version", version()).Msg("daemon started")
	err = d.Serve(ctx)
	// Said here, synchronously: the process may exit before a goroutine would.
	_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyStopping)
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(shut)
	}
	log.Info().Msg("daemon stopped")
	return err
}

// serveAPI starts the API's listeners; the collector it registers exports
// the expiry of every configured certificate (SIGHUP updates the repos').
func serveAPI(cfg *Config, d *daemon.Daemon, log zerolog.Logger) ([]*http.Server, *certCollector, error) {
	srv := &api.Server{Backend: api.ServiceBackend(d), Logger: log, Metrics: d.MetricsHandler(), Deadlines: apiDeadlines, SpoolDir: filepath.Dir(d.StatePath())}
	srv.StatusPublic = cfg.Listen.Status == StatusPublic
	if cfg.Listen.WebhookSecretFile != "" {
		secret, err := readSecretFile(cfg.Listen.WebhookSecretFile)
		if err != nil {
			return nil, nil, fmt.Errorf("listen.webhook_secret_file: %w", err)
		}
		srv.Webhooks = &webhook.Handler{Secret: []byte(secret), Repos: d.WebhookRepos, Trigger: d.TriggerPush, Logger: log}
	} else {
		// Unconfigured webhooks answer 401 and say so.
		srv.Webhooks = &webhook.Handler{Repos: d.WebhookRepos, Trigger: d.TriggerPush, Logger: log}
	}
	ul, err := api.ListenUnix(cfg.Listen.Socket, cfg.Listen.SocketGroup)
	if err != nil {
		return nil, nil, err
	}
	servers := []*http.Server{srv.HTTPServer(false)}
	listeners := []net.Listener{ul}
	uses := certUses(cfg)
	if cfg.Listen.HTTP != "" {
		if w := plainTCPWarning(cfg); w != "" {
			log.Warn().Msg(w)
		}
		if cfg.Listen.TokenFile != "" {
			tok, err := readSecretFile(cfg.Listen.TokenFile)
			if err != nil {
				ul.Close()
				return nil, nil, fmt.Errorf("listen.http %s: %w (the TCP API needs a token)", cfg.Listen.HTTP, err)
			}
			srv.Token = tok
		}
		var tlsConf *tls.Config
		if t := cfg.Listen.TLS; t != nil {
			var reloader *certs.CertReloader
			var err error
			tlsConf, reloader, err = certs.ServerTLSConfig(certs.ServerTLS{CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile, ClientNames: t.ClientNames})
			if err != nil {
				ul.Close()
				return nil, nil, fmt.Errorf("listen.tls: %w", err)
			}
			reloader.OnError = func(err error) {
				log.Warn().Err(err).Msg("listen.tls: the changed certificate or key does not load; the previous pair stays in service")
			}
			srv.ClientNames = t.ClientNames
			for i := range uses {
				if uses[i].use == "api" {
					uses[i].reloader = reloader
				}
			}
		}
		tl, err := net.Listen("tcp", cfg.Listen.HTTP)
		if err != nil {
			ul.Close()
			return nil, nil, fmt.Errorf("listen %s: %w", cfg.Listen.HTTP, err)
		}
		if tlsConf != nil {
			tl = tls.NewListener(tl, tlsConf)
		}
		hs := srv.HTTPServer(true)
		hs.ErrorLog = stdlog.New(tlsErrorLog{log}, "", 0)
		servers = append(servers, hs)
		listeners = append(listeners, tl)
	}
	certs := &certCollector{uses: uses}
	if err := d.RegisterCollector(certs); err != nil {
		log.Warn().Err(err).Msg("tls certificate expiry metric")
	}
	for i, s := range servers {
		go func() {
			if err := s.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error().Err(err).Msg("api server stopped")
			}
		}()
	}
	return servers, certs, nil
}

// tlsErrorLog sends net/http's own lines (TLS handshake errors of clients
// with an untrusted or no certificate) to the daemon's log at debug level:
// a port scanner must not flood it.
type tlsErrorLog struct{ log zerolog.Logger }

func (t tlsErrorLog) Write(p []byte) (int, error) {
	t.log.Debug().Str("line", strings.TrimSpace(string(p))).Msg("api connection")
	return len(p), nil
}

// apiDeadlines bound every API connection (tests shorten them).
var apiDeadlines = api.DefaultDeadlines

// notifySystemd tells systemd (Type=notify) that the daemon is ready once
// every checkout is open, keeps STATUS= current, and pets the watchdog only
// while the scheduler and the API answer. Without NOTIFY_SOCKET it does
// nothing.
func notifySystemd(ctx context.Context, d *daemon.Daemon, socket string, log zerolog.Logger) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for d.Ready() != nil {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	if ok, err := sdnotify.SdNotify(false, sdnotify.SdNotifyReady); err != nil {
		log.Warn().Err(err).Msg("sd_notify READY")
	} else if ok {
		log.Info().Msg("told systemd we are ready")
		_, _ = sdnotify.SdNotify(false, "STATUS="+d.Summary())
	}
	interval, err := sdnotify.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		interval = time.Minute // no watchdog: keep STATUS= current
	}
	self := api.NewUnixClient(socket)
	pet := time.NewTicker(interval / 3)
	defer pet.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pet.C:
		}
		// Proof of life: the scheduler and the API answer. Readiness
		// (every checkout open) is /readyz's business: a slow first clone
		// must not get the daemon killed.
		check, cancel := context.WithTimeout(ctx, interval/3)
		err := d.Alive(interval / 3)
		if err == nil {
			var body io.ReadCloser
			if body, err = self.Raw(check, "/healthz"); err == nil {
				body.Close()
			}
		}
		cancel()
		if err != nil {
			log.Warn().Err(err).Msg("not petting the systemd watchdog")
			continue
		}
		_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyWatchdog)
		_, _ = sdnotify.SdNotify(false, "STATUS="+d.Summary())
	}
}

// watchHUP re-reads the config on SIGHUP: the log level and the limits
// follow it and repos are added, removed or restarted with their new
// settings while the others go on; an invalid file changes nothing. The
// other keys (listeners, the state dir, notify, ...) need a restart: a
// change of one is logged as a warning naming it, at every SIGHUP until
// the restart. running is the config the daemon started with.
func watchHUP(ctx context.Context, path string, running *Config, d *daemon.Daemon, certs *certCollector, log zerolog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
		_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyReloading)
		cfg, err := loadConfig(path)
		if err == nil {
			var opts daemon.Options
			if opts, err = daemonOpts(cfg, log); err == nil {
				if lvl, perr := zerolog.ParseLevel(cfg.Log.Level); perr == nil && cfg.Log.Level != "" {
					zerolog.SetGlobalLevel(lvl)
				}
				limitsChanged := d.SetLimits(opts.Limits)
				added, removed, changed := d.Reload(opts.Repos)
				certs.setRepos(cfg)
				lim := d.Limits()
				log.Info().Strs("added", added).Strs("removed", removed).Strs("changed", changed).Str("log_level", cfg.Log.Level).
					Int64("instance_file_bytes", lim.InstanceFileBytes).Int("xml_depth", lim.XMLDepth).Bool("limits_changed", limitsChanged).
					Msg("SIGHUP: config reloaded")
				if keys := restartKeys(running, cfg); len(keys) > 0 {
					log.Warn().Strs("keys", keys).Msg("SIGHUP: changed, but applied only at a restart (systemctl restart deployer): " + strings.Join(keys, ", ") + "; until then the daemon keeps the values it started with")
				}
			}
		}
		if err != nil {
			log.Error().Err(err).Msg("SIGHUP: config invalid; keeping the running config")
		}
		_, _ = sdnotify.SdNotify(false, sdnotify.SdNotifyReady)
	}
}

// restartKeys lists the keys whose change SIGHUP does not apply: every
// listen.* key by name, the other sections as a whole. The repos, the
// limits and log.level are reloaded.
func restartKeys(running, next *Config) []string {
	var keys []string
	a, b := reflect.ValueOf(running.Listen), reflect.ValueOf(next.Listen)
	for i := 0; i < a.NumField(); i++ {
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			name, _, _ := strings.Cut(a.Type().Field(i).Tag.Get("yaml"), ",")
			keys = append(keys, "listen."+name)
		}
	}
	for _, k := range []struct {
		key  string
		a, b any
	}{
		{"host", running.Host, next.Host},
		{"datacenter", running.Datacenter, next.Datacenter},
		{"state_dir", running.StateDir, next.StateDir},
		{"log.format", running.Log.Format, next.Log.Format},
		{"allow_step_dirs", running.AllowStepDirs, next.AllowStepDirs},
		{"step_env", running.StepEnv, next.StepEnv},
		{"shutdown_grace", running.ShutdownGrace, next.ShutdownGrace},
		{"notify", running.Notify, next.Notify},
	} {
		if !reflect.DeepEqual(k.a, k.b) {
			keys = append(keys, k.key)
		}
	}
	return keys
}

func daemonOpts(cfg *Config, log zerolog.Logger) (daemon.Options, error) {
	opts := daemon.Options{Host: cfg.Host, StateDir: cfg.StateDir, AllowStepDirs: cfg.AllowStepDirs, StepEnv: cfg.StepEnv, Logger: log,
		Limits: cfg.ManifestLimits()}
	opts.Datacenter = cfg.Datacenter
	opts.Rollouts = newRolloutCoordinator // cmd_fleet_rollout.go
	opts.ShutdownGrace = 30 * time.Second
	if cfg.ShutdownGrace != nil {
		opts.ShutdownGrace = time.Duration(*cfg.ShutdownGrace)
	}
	channels, err := notifyChannels(cfg)
	if err != nil {
		return opts, err
	}
	opts.Notify = channels
	if len(opts.StepEnv) == 0 {
		opts.StepEnv = defaultStepEnv
	}
	for i, r := range cfg.Repos {
		auth, err := repoAuth(r)
		if err != nil {
			return opts, fmt.Errorf("repo %s: %w", r.Name, err)
		}
		rtls, err := repoTLS(cfg, i)
		if err != nil {
			return opts, err
		}
		if rtls.InsecureSkipVerify {
			log.Warn().Str("repo", r.Name).Str("url", syncer.RedactURL(r.URL)).
				Msg("repos[].tls.insecure_skip_verify is set (with allow_insecure): the git server's certificate is not checked, so anyone on the network path can read and change what this repo serves; set tls.ca_file instead")
		}
		opts.Repos = append(opts.Repos, daemon.RepoConfig{
			Name: r.Name, URL: r.URL, Branch: r.Branch, Poll: time.Duration(r.Poll), Auth: auth, AuthSource: authSource(r), TLS: rtls,
			Author:  syncer.Author{Name: r.Author.Name, Email: r.Author.Email},
			OnDirty: r.OnDirty, OnRewrite: r.OnRewrite, PushAttempts: r.PushAttempts, WebhookNames: r.WebhookNames, EnvFiles: r.EnvFiles,
		})
	}
	return opts, nil
}

// notifyChannels turns the notify: entries into channels, reading their
// secrets from files; two channels of one kind are named kind-2, kind-3...
func notifyChannels(cfg *Config) ([]notify.ChannelConfig, error) {
	var out []notify.ChannelConfig
	for i, n := range cfg.Notify {
		c := notify.ChannelConfig{Name: channelName(cfg, i), Kind: notify.ChannelKind(n.Kind), URL: n.URL, Reminder: time.Duration(n.Reminder),
			Project: n.Project, IssueType: n.IssueType, Fields: n.Fields, CAFile: n.CAFile}
		var err error
		if n.URLFile != "" {
			if c.URL, err = readSecretFile(n.URLFile); err != nil {
				return nil, fmt.Errorf("notify[%d] (%s): %w", i, n.Kind, err)
			}
		}
		if n.SecretFile != "" {
			if c.Secret, err = readSecretFile(n.SecretFile); err != nil {
				return nil, fmt.Errorf("notify[%d] (%s): %w", i, n.Kind, err)
			}
		}
		if n.TokenFile != "" {
			if c.Token, err = readSecretFile(n.TokenFile); err != nil {
				return nil, fmt.Errorf("notify[%d] (%s): %w", i, n.Kind, err)
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// channelName is the name of notify[i]: its name, else its kind, and
// kind-2, kind-3... for later unnamed channels of the same kind.
func channelName(cfg *Config, i int) string {
	n := cfg.Notify[i]
	if n.Name != "" {
		return n.Name
	}
	k := 0
	for _, o := range cfg.Notify[:i+1] {
		if o.Name == "" && o.Kind == n.Kind {
			k++
		}
	}
	if k > 1 {
		return fmt.Sprintf("%s-%d", n.Kind, k)
	}
	return n.Kind
}

// repoTLS reads the TLS files of cfg.Repos[i] and checks them: the CA
// file holds certificates, the client certificate and key load and pair.
// Errors name the config file, line and key, and the file, never contents.
func repoTLS(cfg *Config, i int) (syncer.TLS, error) {
	r := cfg.Repos[i]
	t := r.TLS
	if t == nil {
		return syncer.TLS{}, nil
	}
	where := fmt.Sprintf("%s:%d: repo %q", cfg.file, t.line, r.Name)
	out := syncer.TLS{InsecureSkipVerify: t.InsecureSkipVerify && t.AllowInsecure}
	if t.CAFile != "" {
		if _, err := certs.LoadCAFile(t.CAFile); err != nil {
			return out, fmt.Errorf("%s: tls.ca_file: %w; point it at the PEM bundle of the CA that signs the git server's certificate", where, err)
		}
		data, err := os.ReadFile(t.CAFile)
		if err != nil {
			return out, fmt.Errorf("%s: tls.ca_file: %w", where, err)
		}
		out.CABundle = data
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if _, err := certs.LoadKeyPair(t.CertFile, t.KeyFile); err != nil {
			return out, fmt.Errorf("%s: tls.cert_file/key_file: %w; give a PEM certificate and the private key it was issued for", where, err)
		}
		cert, err := os.ReadFile(t.CertFile)
		if err != nil {
			return out, fmt.Errorf("%s: tls.cert_file: %w", where, err)
		}
		key, err := os.ReadFile(t.KeyFile)
		if err != nil {
			return out, fmt.Errorf("%s: tls.key_file: %w", where, err)
		}
		out.ClientCert, out.ClientKey = cert, key
	}
	return out, nil
}

// authSource identifies where a repo's credentials come from and what those
// files held when read: the auth files' and TLS files' paths and a SHA-256
// of each file's contents. SIGHUP compares it, so a key, password or known_hosts file that
// (or a TLS CA, certificate or key) that was pointed elsewhere or rotated
// in place restarts the repo. It stays in
// memory (never logged or stored); a file that cannot be read counts as
// changed, and repoAuth reports why.
func authSource(r RepoConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "user=%q", r.Auth.Username)
	for _, f := range []struct{ key, path string }{
		{"ssh_key_file", r.Auth.SSHKeyFile}, {"known_hosts_file", r.Auth.KnownHostsFile}, {"password_file", r.Auth.PasswordFile},
		{"tls.ca_file", tlsFile(r, func(t *RepoTLSConfig) string { return t.CAFile })},
		{"tls.cert_file", tlsFile(r, func(t *RepoTLSConfig) string { return t.CertFile })},
		{"tls.key_file", tlsFile(r, func(t *RepoTLSConfig) string { return t.KeyFile })},
	} {
		if f.path == "" {
			continue
		}
		data, err := os.ReadFile(f.path)
		if err != nil {
			fmt.Fprintf(&b, " %s=%q(unreadable)", f.key, f.path)
			continue
		}
		fmt.Fprintf(&b, " %s=%q(%x)", f.key, f.path, sha256.Sum256(data))
	}
	if r.TLS != nil && r.TLS.InsecureSkipVerify {
		b.WriteString(" tls.insecure_skip_verify")
	}
	return b.String()
}

func tlsFile(r RepoConfig, f func(*RepoTLSConfig) string) string {
	if r.TLS == nil {
		return ""
	}
	return f(r.TLS)
}

// repoAuth builds the transport credentials of a repo from its files.
func repoAuth(r RepoConfig) (syncer.AuthMethod, error) {
	switch {
	case r.Auth.SSHKeyFile != "":
		return syncer.SSHKeyAuth(r.Auth.Username, r.Auth.SSHKeyFile, r.Auth.KnownHostsFile)
	case r.Auth.PasswordFile != "":
		pw, err := readSecretFile(r.Auth.PasswordFile)
		if err != nil {
			return nil, err
		}
		return syncer.BasicAuth(r.Auth.Username, pw), nil
	}
	return nil, nil
}

func newLogger(c LogConfig, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil || c.Level == "" {
		level = zerolog.InfoLevel
	}
	format := c.Format
	if f, ok := w.(*os.File); ok && format == "" && isatty.IsTerminal(f.Fd()) {
		format = "console"
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	// The level is global so that SIGHUP can change it for every logger.
	zerolog.SetGlobalLevel(level)
	return zerolog.New(w).With().Timestamp().Logger()
}
