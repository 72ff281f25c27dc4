package integration_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// seedFiles is the clusterconfig repository most scenarios start from.
var seedFiles = map[string]string{
	"deployer.xml": `<?xml version="1.0" encoding="UTF-8"?>
<deployer version="1">
  <instances dir="instances" pattern="*.xml" key="name"/>
  <step name="instance-configure" run="scripts/configure.sh" timeout="30s"/>
  <step name="instance-redeploy" run="scripts/redeploy.sh" timeout="30s" after="instance-configure">
    <arg>--instance</arg><arg>{instance}</arg>
  </step>
  <on-change steps="instance-configure instance-redeploy" bucket="2" max-failures="0"/>
</deployer>
`,
	"instances/alpha.xml": "<instance name=\"alpha\" tier=\"gold\">\n  <app name=\"web\" version=\"1.0.0\"/>\n</instance>\n",
	"instances/beta.xml":  "<instance name=\"beta\" tier=\"silver\">\n  <app name=\"web\" version=\"1.0.0\"/>\n</instance>\n",
	"instances/gamma.xml": "<instance name=\"gamma\" tier=\"silver\">\n  <app name=\"web\" version=\"1.0.0\"/>\n</instance>\n",
	"scripts/configure.sh": `#!/bin/sh
set -eu
echo "configure $DEPLOYER_INSTANCE from $DEPLOYER_INSTANCE_FILE on $DEPLOYER_HOST"
echo "configured=$DEPLOYER_INSTANCE" >> "$DEPLOYER_OUTPUT"
`,
	"scripts/redeploy.sh": `#!/bin/sh
set -eu
echo "redeploy $2 after configured=$DEPLOYER_OUT_CONFIGURED"
`,
	"README.md": "# clusterconfig-test\n",
}

// cmdSeedRepo writes the standard clusterconfig files into DIR, without
// overwriting files the scenario already put there, and makes every
// scripts/*.sh executable (txtar files are not).
//
//	seedrepo DIR
func cmdSeedRepo(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: seedrepo DIR")
	}
	dir := ts.MkAbs(args[0])
	for name, content := range seedFiles {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if _, err := os.Stat(path); err == nil {
			if strings.HasSuffix(name, ".sh") {
				ts.Check(os.Chmod(path, 0o755))
			}
			continue
		}
		ts.Check(os.MkdirAll(filepath.Dir(path), 0o755))
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		ts.Check(os.WriteFile(path, []byte(content), mode))
	}
}

// cmdWriteConfig writes deployer.yaml for one repo at $REMOTE_URL named
// NAME, with its state in $WORK/state and its socket at $DEPLOYER_SOCKET.
//
//	writeconfig NAME
func cmdWriteConfig(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: writeconfig NAME")
	}
	cfg := fmt.Sprintf(`host: it-dep01
state_dir: %s
listen:
  socket: %s
log: {level: debug, format: json}
step_env: [PATH, MARKDIR]
repos:
  - name: %s
    url: %s
    branch: main
    poll: 200ms
    author: {name: it-deployer, email: deployer@it-dep01}
`, ts.MkAbs("state"), ts.Getenv("DEPLOYER_SOCKET"), args[0], ts.Getenv("REMOTE_URL"))
	ts.Check(os.WriteFile(ts.MkAbs("deployer.yaml"), []byte(cfg), 0o644))
	ts.Setenv("DEPLOYER_CONFIG", ts.MkAbs("deployer.yaml"))
}
