package fleet

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/certs"
)

// Daemon is what the fleet needs from one host's daemon.
type Daemon interface {
	Deploy(ctx context.Context, repo string, req api.DeployRequest) (api.Deployment, error)
	Deployment(ctx context.Context, id string) (api.Deployment, error)
	// FleetDeployments lists the host's deployments labelled with the fleet
	// id, newest first (an older daemon may answer unfiltered: check).
	FleetDeployments(ctx context.Context, fleet string) ([]api.Deployment, error)
}

var _ Daemon = (*api.Client)(nil)

// Dialer returns the Daemon of a host.
type Dialer func(Host) (Daemon, error)

// DialAPI returns an API client for h: unix:// URLs talk to the socket,
// http(s) URLs send the bearer token read from h.TokenFile.
func DialAPI(h Host) (Daemon, error) { return TLSDialer(certs.ClientTLS{})(h) }

// TLSDialer returns a Dialer that reaches every https host with t: its CA
// bundle trusted besides the system's roots, its client certificate
// presented. With a client certificate an https host may have no
// token_file (the daemon lets the certificate's name in).
func TLSDialer(t certs.ClientTLS) Dialer {
	return func(h Host) (Daemon, error) {
		u, err := url.Parse(h.URL)
		if err != nil {
			return nil, fmt.Errorf("host %s: url: %w", h.Name, err)
		}
		if u.Scheme == "unix" {
			return api.NewUnixClient(u.Path), nil
		}
		tok := ""
		switch {
		case h.TokenFile != "":
			b, err := os.ReadFile(h.TokenFile)
			if err != nil {
				return nil, fmt.Errorf("host %s: read token file: %w", h.Name, err)
			}
			if tok = strings.TrimSpace(string(b)); tok == "" {
				return nil, fmt.Errorf("host %s: token file %s is empty", h.Name, h.TokenFile)
			}
		case u.Scheme != "https" || t.CertFile == "":
			return nil, fmt.Errorf("host %s: %s needs a token_file (or, over https, a client certificate: --cert-file, --key-file)", h.Name, h.URL)
		}
		if u.Scheme != "https" {
			return api.NewRemoteClient(h.URL, tok), nil
		}
		c, err := api.NewRemoteClientTLS(h.URL, tok, t)
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", h.Name, err)
		}
		return c, nil
	}
}
