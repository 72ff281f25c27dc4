package integration_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sre-tools/deployer/integration/internal/itest"
)

// cmdIVID sets IV to the id of the open (or acknowledged) intervention of
// KIND, on INSTANCE when given; it fails when there is none.
//
//	ivid KIND [INSTANCE]
func cmdIVID(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: ivid KIND [INSTANCE]")
	}
	var kinds []string
	for _, iv := range listInterventions(ts) {
		if iv.State != "resolved" && iv.Kind == args[0] && (len(args) == 1 || iv.Instance == args[1]) {
			ts.Setenv("IV", strconv.FormatUint(iv.ID, 10))
			return
		}
		kinds = append(kinds, iv.Kind+"/"+iv.Instance)
	}
	ts.Fatalf("no open %s intervention (open: %s)", strings.Join(args, " on "), strings.Join(kinds, " "))
}

// listedIntervention is what the scenario commands read of an intervention
// from `deployer interventions -o json`.
type listedIntervention struct {
	ID       uint64 `json:"id"`
	Kind     string `json:"kind"`
	Instance string `json:"instance"`
	State    string `json:"state"`
}

// listInterventions returns the daemon's open and acknowledged interventions.
func listInterventions(ts *testscript.TestScript) []listedIntervention {
	var resp struct {
		Interventions []listedIntervention `json:"interventions"`
	}
	ts.Check(deployerJSON(ts, &resp, "interventions", "-o", "json"))
	return resp.Interventions
}

// cmdWaitSh runs `sh -c SCRIPT` in the work directory, with the scenario's
// environment, until it exits 0 (at most the scenario deadline), and prints
// its last output.
//
//	waitsh SCRIPT
func cmdWaitSh(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waitsh SCRIPT")
	}
	var out []byte
	waitUntil(ts, "sh -c "+args[0], func() bool {
		cmd := exec.Command("sh", "-c", args[0])
		cmd.Dir = ts.MkAbs(".")
		cmd.Env = scriptEnv(ts)
		var err error
		out, err = itest.CombinedOutput(cmd)
		return err == nil
	})
	fmt.Fprint(ts.Stdout(), string(out))
}

// scriptEnv is the scenario's environment as a list for exec.Cmd.
func scriptEnv(ts *testscript.TestScript) []string {
	env := os.Environ()
	for _, k := range []string{"WORK", "HOME", "PATH", "SRV", "TRANSPORT", "REMOTE_URL", "DEPLOYER_SOCKET", "DEPLOYER_CONFIG", "MARKDIR", "GIT_CONFIG_NOSYSTEM", "PUSHED", "RUN"} {
		if v := ts.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}
