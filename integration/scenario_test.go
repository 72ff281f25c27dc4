package integration_test

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	// The scenarios run a binary built from these packages; importing them
	// makes `go test` re-run the scenarios when they change.
	_ "github.com/sre-tools/deployer/api"
	_ "github.com/sre-tools/deployer/daemon"
)

// binDir holds the deployer binary built once for every scenario.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "deployer-it-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..")
	// Reading the command's sources makes them part of the test cache key.
	mains, _ := filepath.Glob(filepath.Join(root, "cmd", "deployer", "*.go"))
	for _, f := range mains {
		_, _ = os.ReadFile(f)
	}
	// The production binary (the crash test in integration/crash builds its
	// own, with failpoints).
	for _, b := range [][]string{{"deployer"}} {
		build := exec.Command("go", append(append([]string{"build", "-o", filepath.Join(dir, b[0])}, b[1:]...), "./cmd/deployer")...)
		build.Dir = root
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build "+b[0]+":", err)
			return 1
		}
	}
	binDir = dir
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

// TestScenarios runs every scenario once per git transport.
func TestScenarios(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is needed for the scenarios: %v", err)
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
			for _, more := range []map[string]func(ts *testscript.TestScript, neg bool, args []string){opsCmds(), deployCmds(), securityCmds()} {
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
