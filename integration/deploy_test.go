package integration_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// deployCmds are the scenario commands for large deployments; scenario_test.go
// merges them into its Cmds.
func deployCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"geninstances":     cmdGenInstances,
		"resolveall":       cmdResolveAll,
		"waitdeploycount":  cmdWaitDeployCount,
		"deploymentcounts": cmdDeploymentCounts,
		"remotecommits":    cmdRemoteCommits,
	}
}

// instanceXML is one generated instance file: i001 is gold, i002 silver,
// i003 bronze, and so on.
func instanceXML(n int) string {
	tiers := []string{"bronze", "gold", "silver"}
	return fmt.Sprintf("<instance name=\"i%03d\" tier=\"%s\">\n  <app name=\"web\" version=\"1.0.0\"/>\n</instance>\n", n, tiers[n%3])
}

// cmdGenInstances writes N instance files DIR/instances/i001.xml ... with
// app web at version 1.0.0.
//
//	geninstances DIR N
func cmdGenInstances(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: geninstances DIR N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	dir := filepath.Join(ts.MkAbs(args[0]), "instances")
	ts.Check(os.MkdirAll(dir, 0o755))
	for i := 1; i <= n; i++ {
		ts.Check(os.WriteFile(filepath.Join(dir, fmt.Sprintf("i%03d.xml", i)), []byte(instanceXML(i)), 0o644))
	}
}

// cmdResolveAll resolves every open (or acknowledged) intervention, of KIND
// when -kind is given, with `deployer interventions resolve ID`, and prints
// one line per intervention resolved: `resolved #ID KIND INSTANCE`.
//
//	resolveall [-kind KIND] NOTE
func cmdResolveAll(ts *testscript.TestScript, neg bool, args []string) {
	kind := ""
	if len(args) == 3 && args[0] == "-kind" {
		kind, args = args[1], args[2:]
	}
	if len(args) != 1 {
		ts.Fatalf("usage: resolveall [-kind KIND] NOTE")
	}
	n := 0
	for _, iv := range listInterventions(ts) {
		if iv.State == "resolved" || (kind != "" && iv.Kind != kind) {
			continue
		}
		_, err := deployer(ts, "interventions", "resolve", strconv.FormatUint(iv.ID, 10), "--note", args[0])
		ts.Check(err)
		fmt.Fprintf(ts.Stdout(), "resolved #%d %s %s\n", iv.ID, iv.Kind, iv.Instance)
		n++
	}
	fmt.Fprintf(ts.Stdout(), "resolved %d interventions\n", n)
}

// deploymentSummary is what the deployment commands read from
// `deployer deployments show ID -o json`.
type deploymentSummary struct {
	State     string         `json:"state"`
	Finished  any            `json:"finished"`
	Counts    map[string]int `json:"counts"`
	Instances []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Commit string `json:"commit"`
	} `json:"instances"`
}

func showDeployment(ts *testscript.TestScript, id string) (deploymentSummary, error) {
	var d deploymentSummary
	err := deployerJSON(ts, &d, "deployments", "show", id, "-o", "json")
	return d, err
}

// countsLine prints a deployment's state and counts in a fixed order:
// `state=running succeeded=37 failed=0 ...`.
func countsLine(d deploymentSummary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "state=%s", d.State)
	for _, k := range []string{"succeeded", "failed", "conflict", "skipped", "not-started", "running", "pending"} {
		fmt.Fprintf(&b, " %s=%d", k, d.Counts[k])
	}
	return b.String()
}

// cmdWaitDeployCount waits until deployment ID has at least N instances in
// STATUS and prints its counts line.
//
//	waitdeploycount ID STATUS N
func cmdWaitDeployCount(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: waitdeploycount ID STATUS N")
	}
	n, err := strconv.Atoi(args[2])
	ts.Check(err)
	var d deploymentSummary
	waitUntil(ts, fmt.Sprintf("deployment %s to have %d %s", args[0], n, args[1]), func() bool {
		var err error
		d, err = showDeployment(ts, args[0])
		return err == nil && d.Counts[args[1]] >= n
	})
	fmt.Fprintln(ts.Stdout(), countsLine(d))
}

// cmdDeploymentCounts prints deployment ID's counts line, then one line per
// instance: `NAME STATUS`.
//
//	deploymentcounts ID
func cmdDeploymentCounts(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: deploymentcounts ID")
	}
	d, err := showDeployment(ts, args[0])
	ts.Check(err)
	fmt.Fprintln(ts.Stdout(), countsLine(d))
	for _, in := range d.Instances {
		fmt.Fprintf(ts.Stdout(), "%s %s\n", in.Name, in.Status)
	}
}

// cmdRemoteCommits counts, on the bare repository $SRV's main, the commits
// carrying the trailer `Deployer-Deployment: ID` per file they touch, and
// prints one line per file (`FILE COUNT`), then a summary:
// `commits=C files=F once=O more=M`.
//
//	remotecommits ID
func cmdRemoteCommits(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: remotecommits ID")
	}
	out := mustGit(ts, ts.Getenv("SRV"), "log", "main", "--format=commit %H", "--name-only",
		"--grep=^Deployer-Deployment: "+args[0]+"$")
	perFile, commits := map[string]int{}, 0
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "commit "):
			commits++
		case line != "":
			perFile[line]++
		}
	}
	files := make([]string, 0, len(perFile))
	for f := range perFile {
		files = append(files, f)
	}
	sort.Strings(files)
	once, more := 0, 0
	for _, f := range files {
		fmt.Fprintf(ts.Stdout(), "%s %d\n", f, perFile[f])
		if perFile[f] == 1 {
			once++
		} else {
			more++
		}
	}
	fmt.Fprintf(ts.Stdout(), "commits=%d files=%d once=%d more=%d\n", commits, len(files), once, more)
}
