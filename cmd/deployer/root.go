package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/certs"
)

// globalOptions are the flags every command takes.
type globalOptions struct {
	configPath string
	socket     string
	remote     string
	// remoteFlag is the flag that named remote as the user typed it
	// ("--coordinator" for fleet commands), for messages; "" is --remote.
	remoteFlag string
	tokenFile  string
	output     string
	// TLS of --remote https://... (and of every host fleet commands call).
	caFile, certFile, keyFile string
	inventoryCAFile           string
	clientConfig              string
	// timeout bounds each daemon call that does not wait for a run.
	timeout time.Duration
}

// defaultCallTimeout is --timeout's default: a daemon call that is no
// wait (sync --wait, replay) gives up after it.
const defaultCallTimeout = 30 * time.Second

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
		Version:       version(),
	}
	root.SetVersionTemplate("deployer {{.Version}}\n")
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", os.Getenv("DEPLOYER_CONFIG"), "host config file (env DEPLOYER_CONFIG; default "+defaultConfigPath+")")
	pf.StringVar(&g.socket, "socket", os.Getenv("DEPLOYER_SOCKET"), "daemon API socket (env DEPLOYER_SOCKET; default from the config file)")
	pf.StringVar(&g.remote, "remote", "", "talk to the daemon at this URL instead of the local socket")
	pf.StringVar(&g.tokenFile, "token-file", "", "file holding the bearer token for --remote")
	pf.StringVar(&g.caFile, "ca-file", "", "PEM CA bundle trusted (besides the system's) for --remote https:// and fleet hosts")
	pf.StringVar(&g.certFile, "cert-file", "", "client certificate (PEM) for mutual TLS with --remote https:// and fleet hosts")
	pf.StringVar(&g.keyFile, "key-file", "", "private key (PEM) of --cert-file")
	pf.StringVar(&g.inventoryCAFile, "inventory-ca-file", "", "PEM CA bundle for an https:// fleet inventory URL (default --ca-file)")
	pf.StringVar(&g.clientConfig, "client-config", os.Getenv("DEPLOYER_CLIENT_CONFIG"), "client config file with remote, token_file, ca_file, cert_file, key_file (env DEPLOYER_CLIENT_CONFIG; default ~/.config/deployer/client.yaml when it exists)")
	pf.DurationVar(&g.timeout, "timeout", defaultCallTimeout, "give up a daemon call that gets no answer within this (0: wait forever); sync --wait and replay, which wait for their run, are not bounded")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table, json or yaml (report: markdown, json, yaml or html)")
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
		newPlanCmd(g),
		newHistoryCmd(g),
		newDiffCmd(g),
		newXMLCmd(g),
		newBackupCmd(g),
		newBenchCmd(g),
		newBenchChildCmd(),
		newDemoCmd(g),
		newFleetCmd(g),
		newGenDocsCmd(),
	)
	g.registerCompletions(root)
	// cobra adds these when it executes; added now, they get the same
	// usage errors as ours. Our help refuses a topic that is no command
	// (cobra's prints "Unknown help topic" and exits 0).
	root.SetHelpCommand(newHelpCmd())
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	markUsageErrors(root)
	return root
}

// markUsageErrors makes every wrong argument a usage error (exit 2), as
// flag errors are: each command's argument check is wrapped, and a command
// group (deployer, step, xml, fleet) given an unknown subcommand says so,
// with a suggestion, instead of printing its help and exiting 0. Run
// without arguments, a group prints its help.
func markUsageErrors(c *cobra.Command) {
	if c.HasSubCommands() && !c.Runnable() {
		c.SuggestionsMinimumDistance = 2
		c.Args = unknownSubcommand
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usageErrorf("%v (see %s --help)", err, cmd.CommandPath())
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markUsageErrors(sub)
	}
}

// newHelpCmd is 'deployer help [command]': the help of a command, and a
// usage error (exit 2) for a path that names none.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Long:  "Print the help of any command: deployer help fleet deploy.",
		Args: func(cmd *cobra.Command, args []string) error {
			c, rest, err := cmd.Root().Find(args)
			switch {
			case err != nil:
				return err
			case c == nil || len(rest) > 0:
				return fmt.Errorf("unknown help topic %q: no such command", strings.Join(args, " "))
			}
			return nil
		},
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			c, _, err := cmd.Root().Find(args)
			if err != nil || c == nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, sub := range c.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, _ := cmd.Root().Find(args)
			c.InitDefaultHelpFlag()
			return c.Help()
		},
	}
}

func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return errors.New(msg)
}

// client returns an API client for --remote or the local socket. It never
// opens the state file: the daemon owns it.
func (g *globalOptions) client() (*api.Client, error) {
	if err := g.applyClientConfig(); err != nil {
		return nil, err
	}
	c, err := g.newClient()
	if err != nil {
		return nil, err
	}
	c.SetTimeout(g.timeout)
	return c, nil
}

// remoteFlagName is the flag that named the remote daemon, for messages.
func (g *globalOptions) remoteFlagName() string {
	if g.remoteFlag != "" {
		return g.remoteFlag
	}
	return "--remote"
}

func (g *globalOptions) newClient() (*api.Client, error) {
	if g.remote != "" {
		t := g.clientTLS()
		tok := ""
		switch {
		case g.tokenFile != "":
			var err error
			if tok, err = readSecretFile(g.tokenFile); err != nil {
				return nil, err
			}
		case t.CertFile == "" || !strings.HasPrefix(g.remote, "https://"):
			return nil, usageErrorf("%s needs --token-file (or, over https://, a client certificate: --cert-file and --key-file)", g.remoteFlagName())
		}
		if !t.IsZero() && !strings.HasPrefix(g.remote, "https://") {
			return nil, usageErrorf("--ca-file, --cert-file and --key-file need an https:// %s", g.remoteFlagName())
		}
		if strings.HasPrefix(g.remote, "https://") {
			c, err := api.NewRemoteClientTLS(g.remote, tok, t)
			if err != nil {
				return nil, &statusError{Code: exitUsage, Err: err}
			}
			return c, nil
		}
		return api.NewRemoteClient(g.remote, tok), nil
	}
	return api.NewUnixClient(g.socketPath()), nil
}

// clientTLS is the TLS of calls to other daemons.
func (g *globalOptions) clientTLS() certs.ClientTLS {
	return certs.ClientTLS{CAFile: g.caFile, CertFile: g.certFile, KeyFile: g.keyFile}
}

// clientConfigFile is the client config: where --remote and its TLS
// settings can be kept instead of flags.
type clientConfigFile struct {
	Remote    string `yaml:"remote"`
	TokenFile string `yaml:"token_file"`
	CAFile    string `yaml:"ca_file"`
	CertFile  string `yaml:"cert_file"`
	KeyFile   string `yaml:"key_file"`
}

// applyClientConfig fills the flags that were not given from the client
// config file: --client-config, else $DEPLOYER_CLIENT_CONFIG, else
// ~/.config/deployer/client.yaml ($XDG_CONFIG_HOME) when it exists.
// Relative paths in it are relative to its directory; unknown keys are
// errors.
func (g *globalOptions) applyClientConfig() error {
	path, explicit := g.clientConfig, g.clientConfig != ""
	if !explicit {
		dir, err := os.UserConfigDir()
		if err != nil {
			return nil
		}
		path = filepath.Join(dir, "deployer", "client.yaml")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("client config: %w", err)
	}
	var c clientConfigFile
	if probs, _, _ := decodeStrict(path, data, &c); len(probs) > 0 {
		return &statusError{Code: exitUsage, Err: &ConfigError{Problems: probs}}
	}
	rel := func(p string) string {
		if p != "" && !filepath.IsAbs(p) {
			return filepath.Join(filepath.Dir(path), p)
		}
		return p
	}
	for _, f := range []struct {
		flag *string
		val  string
	}{{&g.remote, c.Remote}, {&g.tokenFile, rel(c.TokenFile)}, {&g.caFile, rel(c.CAFile)}, {&g.certFile, rel(c.CertFile)}, {&g.keyFile, rel(c.KeyFile)}} {
		if *f.flag == "" {
			*f.flag = f.val
		}
	}
	return nil
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

// formatClient is what most commands start with: the output format and a client.
func (g *globalOptions) formatClient() (outputFormat, *api.Client, error) {
	f, err := g.format()
	if err != nil {
		return "", nil, err
	}
	c, err := g.client()
	return f, c, err
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
