package fleet

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/sre-tools/deployer/api"
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
func DialAPI(h Host) (Daemon, error) {
	u, err := url.Parse(h.URL)
	if err != nil {
		return nil, fmt.Errorf("host %s: url: %w", h.Name, err)
	}
	if u.Scheme == "unix" {
		return api.NewUnixClient(u.Path), nil
	}
	if h.TokenFile == "" {
		return nil, fmt.Errorf("host %s: %s needs a token_file", h.Name, h.URL)
	}
	b, err := os.ReadFile(h.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("host %s: read token file: %w", h.Name, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return nil, fmt.Errorf("host %s: token file %s is empty", h.Name, h.TokenFile)
	}
	return api.NewRemoteClient(h.URL, tok), nil
}
