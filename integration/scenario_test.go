package integration_test

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sre-tools/deployer/integration/internal/itest"
	"github.com/sre-tools/deployer/syncer/sshtest"

	// The scenarios run a binary built from these packages; importing them
	// makes `go test` re-run the scenarios when they change.
	_ "github.com/sre-tools/deployer/api"
	_ "github.com/sre-tools/deployer/daemon"
)

// binDir holds the deployer binary built once for every scenario (through
// the pdeathsig wrapper, see itest.Build), and the wrapped git http-backend
// and sshd.
var binDir string

// gitHTTPBackend is git http-backend, wrapped: the http transport's server
// runs it as a CGI child per request.
var gitHTTPBackend string

// gitExecPath is where git keeps its programs. The tests start git's
// servers from there (git-daemon, not `git daemon`): the git command runs
// a server as its child, which would outlive the git process that a
// parent-death signal kills.
var gitExecPath string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// The production binary (the crash test in integration/crash builds its
	// own, with failpoints).
	dir, remove, err := itest.Build(itest.Binary{Name: "deployer"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer remove()
	binDir = dir
	if err := wrapServers(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The scenarios spend their time waiting on daemons, git servers and
	// polls, not on the CPU: run more of them at once than go test's
	// default (GOMAXPROCS, 2 on CI), unless -parallel was given.
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", "3")
	}
	return m.Run()
}

// wrapServers puts the git servers that the scenarios cannot start with
// itest.Start (net/http/cgi starts git http-backend, package sshtest
// starts sshd) behind the pdeathsig wrapper in dir.
func wrapServers(dir string) error {
	out, err := itest.Output(exec.Command("git", "--exec-path"))
	if err != nil {
		return fmt.Errorf("git --exec-path: %w", err)
	}
	gitExecPath = strings.TrimSpace(string(out))
	gitHTTPBackend, err = itest.Wrap(dir, "git-http-backend", filepath.Join(gitExecPath, "git-http-backend"))
	if err != nil {
		return err
	}
	if sshtest.Check(sshdPath) == nil {
		if sshdPath, err = itest.Wrap(dir, "sshd", sshdPath); err != nil {
			return err
		}
	}
	return nil
}

// TestScenarios runs every scenario once per git transport.
func TestScenarios(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is needed for the scenarios: %v", err)
	}
	if err := itest.ReadSources(); err != nil {
		t.Fatal(err)
	}
	for _, transport := range []string{"git", "http"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			p := testscript.Params{
				Dir:   "testdata",
				Setup: setup(transport),
				Condition: func(cond string) (bool, error) {
					if t, ok := strings.CutPrefix(cond, "transport:"); ok {
						return t == transport, nil
					}
					if cond == "sshd" {
						return sshdCondition()
					}
					if cond == "mount" {
						return mountCondition()
					}
					return false, fmt.Errorf("unknown condition %q", cond)
				},
				Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
					"gitserver":        cmdGitServer,
					"gitpush":          cmdGitPush,
					"gitclone":         cmdGitClone,
					"git":              cmdGit,
					"expandenv":        cmdExpandEnv,
					"waitrun":          cmdWaitRun,
					"waitfile":         cmdWaitFile,
					"gitrepo":          cmdGitRepo,
					"gitpushto":        cmdGitPushTo,
					"addrepo":          cmdAddRepo,
					"droprepo":         cmdDropRepo,
					"sighup":           cmdSighup,
					"waitrepos":        cmdWaitRepos,
					"norunsoverlap":    cmdNoRunsOverlap,
					"waitfilematch":    cmdWaitFileMatch,
					"notifyserver":     cmdNotifyServer,
					"waitdeployment":   cmdWaitDeployment,
					"webhook":          cmdWebhook,
					"waitintervention": cmdWaitIntervention,
					"waitready":        cmdWaitReady,
					"seedrepo":         cmdSeedRepo,
					"writeconfig":      cmdWriteConfig,
					"sshd":             cmdSSHD,
					"nokeymaterial":    cmdNoKeyMaterial,
					"ivid":             cmdIVID,
					"waitsh":           cmdWaitSh,
				},
			}
			for _, more := range []map[string]func(ts *testscript.TestScript, neg bool, args []string){opsCmds(), deployCmds(), securityCmds(), fleetCmds()} {
				maps.Copy(p.Cmds, more)
			}
			testscript.Run(t, p)
		})
	}
}

func setup(transport string) func(env *testscript.Env) error {
	return func(env *testscript.Env) error {
		sock, err := os.MkdirTemp("", "dsock")
		if err != nil {
			return err
		}
		env.Defer(func() { os.RemoveAll(sock) })
		env.Setenv("PATH", binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
		env.Setenv("TRANSPORT", transport)
		env.Setenv("DEPLOYER_SOCKET", filepath.Join(sock, "d.sock"))
		env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
		env.Setenv("MARKDIR", filepath.Join(env.WorkDir, "marks"))
		env.Setenv("GIT_CONFIG_NOSYSTEM", "1")
		if err := os.MkdirAll(filepath.Join(env.WorkDir, "marks"), 0o755); err != nil {
			return err
		}
		return os.MkdirAll(filepath.Join(env.WorkDir, "home"), 0o755)
	}
}
