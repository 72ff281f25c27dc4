package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
)

// globalOptions are the flags every command takes.
type globalOptions struct {
	configPath string
	socket     string
	remote     string
	tokenFile  string
	output     string
}

func newRootCmd() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "deployer",
		Short: "Git-driven deployer daemon for clusterconfig repositories, and its CLI",
		Long: `deployer keeps a host's clusterconfig repositories in step with their remotes,
runs the instance steps a commit or a schedule calls for, writes changes back
to git without losing anyone's work, and records everything for on-call.

Exit status: 0 success, 1 error, 2 usage, 3 the work ended with an intervention.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", os.Getenv("DEPLOYER_CONFIG"), "host config file (env DEPLOYER_CONFIG; default "+defaultConfigPath+")")
	pf.StringVar(&g.socket, "socket", os.Getenv("DEPLOYER_SOCKET"), "daemon API socket (env DEPLOYER_SOCKET; default from the config file)")
	pf.StringVar(&g.remote, "remote", "", "talk to the daemon at this URL instead of the local socket")
	pf.StringVar(&g.tokenFile, "token-file", "", "file holding the bearer token for --remote")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%v (see %s --help)", err, c.CommandPath())
	})
	root.AddCommand(
		newDaemonCmd(g),
		newStatusCmd(g),
		newSyncCmd(g),
		newRunsCmd(g),
		newStepCmd(g),
		newReplayCmd(g),
		newDeployCmd(g),
		newDeploymentsCmd(g),
		newInterventionsCmd(g),
		newReportCmd(g),
		newValidateCmd(g),
		newXMLCmd(),
		newBackupCmd(g),
		newBenchCmd(g),
		newDemoCmd(g),
		newFleetCmd(g),
	)
	return root
}

// client returns an API client for --remote or the local socket. It never
// opens the state file: the daemon owns it.
func (g *globalOptions) client() (*api.Client, error) {
	if g.remote != "" {
		if g.tokenFile == "" {
			return nil, usageErrorf("--remote needs --token-file")
		}
		tok, err := readSecretFile(g.tokenFile)
		if err != nil {
			return nil, err
		}
		return api.NewRemoteClient(g.remote, tok), nil
	}
	return api.NewUnixClient(g.socketPath()), nil
}

func (g *globalOptions) socketPath() string {
	if g.socket != "" {
		return g.socket
	}
	path := g.configPath
	if path == "" {
		path = defaultConfigPath
	}
	if c, err := loadConfig(path); err == nil {
		return c.Listen.Socket
	}
	return "/run/deployer/deployer.sock"
}

// jsonClient is what most commands start with: the output format and a client.
func (g *globalOptions) jsonClient() (bool, *api.Client, error) {
	asJSON, err := g.json()
	if err != nil {
		return false, nil, err
	}
	c, err := g.client()
	return asJSON, c, err
}

func (g *globalOptions) json() (bool, error) {
	switch g.output {
	case "table", "":
		return false, nil
	case "json":
		return true, nil
	}
	return false, usageErrorf("-o %q: want table or json", g.output)
}

// readSecretFile reads a one-line secret; the error never contains its content.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return s, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

func shortID(commit string) string {
	if len(commit) > 10 {
		return commit[:10]
	}
	if commit == "" {
		return "-"
	}
	return commit
}
