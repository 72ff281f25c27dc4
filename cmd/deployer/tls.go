package main

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/certs"
)

// certWarnWithin is how close to expiry a certificate is warned about.
const certWarnWithin = 30 * 24 * time.Hour

// certUse is one certificate the host config names: a pair (cert and
// key) or a CA bundle.
type certUse struct {
	use               string // the metric's use label and the check's name
	key               string // the config key, for messages
	certFile, keyFile string // a pair
	caFile            string // or a CA bundle
	reloader          *certs.CertReloader
}

// certUses lists every certificate of cfg.
func certUses(cfg *Config) []certUse {
	var out []certUse
	if t := cfg.Listen.TLS; t != nil {
		out = append(out, certUse{use: "api", key: "listen.tls.cert_file", certFile: t.CertFile, keyFile: t.KeyFile})
		if t.ClientCAFile != "" {
			out = append(out, certUse{use: "api-client-ca", key: "listen.tls.client_ca_file", caFile: t.ClientCAFile})
		}
	}
	for i, r := range cfg.Repos {
		t := r.TLS
		if t == nil {
			continue
		}
		if t.CAFile != "" {
			out = append(out, certUse{use: "repo-" + r.Name + "-ca", key: fmt.Sprintf("repos[%d].tls.ca_file", i), caFile: t.CAFile})
		}
		if t.CertFile != "" && t.KeyFile != "" {
			out = append(out, certUse{use: "repo-" + r.Name + "-client", key: fmt.Sprintf("repos[%d].tls.cert_file", i), certFile: t.CertFile, keyFile: t.KeyFile})
		}
	}
	for i, n := range cfg.Notify {
		if n.CAFile != "" {
			out = append(out, certUse{use: "notify-" + channelName(cfg, i) + "-ca", key: fmt.Sprintf("notify[%d].ca_file", i), caFile: n.CAFile})
		}
	}
	return out
}

// notAfter loads the certificate(s) of u and returns the earliest expiry
// and the subject that expires then. Errors name files, never contents.
func (u *certUse) notAfter() (time.Time, string, error) {
	if u.caFile != "" {
		cas, err := certs.LoadCAFile(u.caFile)
		if err != nil {
			return time.Time{}, "", err
		}
		first := cas[0]
		for _, c := range cas[1:] {
			if c.NotAfter.Before(first.NotAfter) {
				first = c
			}
		}
		return first.NotAfter, first.Subject.String(), nil
	}
	if u.reloader != nil {
		c := u.reloader.Certificate()
		return c.Leaf.NotAfter, c.Leaf.Subject.String(), nil
	}
	c, err := certs.LoadKeyPair(u.certFile, u.keyFile)
	if err != nil {
		return time.Time{}, "", err
	}
	return c.Leaf.NotAfter, c.Leaf.Subject.String(), nil
}

// checkCerts loads every certificate and key of cfg: an unloadable or
// expired one is a problem, one expiring within 30 days a warning.
func checkCerts(cfg *Config, now time.Time) (lines, problems []string) {
	if w := plainTCPWarning(cfg); w != "" {
		lines = append(lines, "warning: "+w)
	}
	for _, u := range certUses(cfg) {
		exp, subject, err := u.notAfter()
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %s: %v", cfg.file, u.key, err))
		case !exp.After(now):
			problems = append(problems, fmt.Sprintf("%s: %s: certificate %q expired on %s", cfg.file, u.key, deployer.Escape(subject), exp.UTC().Format(time.RFC3339)))
		case exp.Sub(now) < certWarnWithin:
			lines = append(lines, fmt.Sprintf("warning: %s (%s): certificate %q expires on %s, in %d days", u.key, u.use, deployer.Escape(subject), exp.UTC().Format(time.RFC3339), int(exp.Sub(now).Hours()/24)))
		default:
			lines = append(lines, fmt.Sprintf("ok: %s (%s): certificate %q valid until %s", u.key, u.use, deployer.Escape(subject), exp.UTC().Format(time.RFC3339)))
		}
	}
	return lines, problems
}

// certCollector exports deployer_tls_cert_expiry_seconds{use}: the Unix
// time at which each configured certificate expires (a CA bundle: its
// first to expire), read at every scrape, so a rotated file shows at once.
type certCollector struct {
	mu   sync.Mutex
	uses []certUse
}

// setRepos replaces the repos' certificates with those of cfg (SIGHUP);
// the listener's and the notification channels' need a restart and stay.
func (c *certCollector) setRepos(cfg *Config) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var uses []certUse
	for _, u := range c.uses {
		if !strings.HasPrefix(u.use, "repo-") {
			uses = append(uses, u)
		}
	}
	for _, u := range certUses(cfg) {
		if strings.HasPrefix(u.use, "repo-") {
			uses = append(uses, u)
		}
	}
	c.uses = uses
}

var certExpiryDesc = prometheus.NewDesc("deployer_tls_cert_expiry_seconds",
	"Unix time at which a configured TLS certificate expires (a CA bundle: its earliest); alert on deployer_tls_cert_expiry_seconds - time() < 30*86400.",
	[]string{"use"}, nil)

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- certExpiryDesc }

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.uses {
		exp, _, err := c.uses[i].notAfter()
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, float64(exp.Unix()), c.uses[i].use)
	}
}

// plainTCPWarning is the warning for an API on a TCP address other than
// loopback without TLS: its bearer token and webhook bodies cross the
// network in clear text. "" when there is nothing to warn about.
func plainTCPWarning(cfg *Config) string {
	if cfg.Listen.HTTP == "" || cfg.Listen.TLS != nil {
		return ""
	}
	host, _, err := net.SplitHostPort(cfg.Listen.HTTP)
	if err == nil {
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
			return ""
		}
	}
	return fmt.Sprintf("listen.http %s is plain HTTP on the network: the bearer token and webhook bodies cross it in clear text; set listen.tls (cert_file, key_file)", cfg.Listen.HTTP)
}
