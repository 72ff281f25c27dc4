package demo

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sre-tools/deployer/internal/demo/gitrepo"
)

// demoFiles is the clusterconfig repository the demo starts from.
var demoFiles = map[string]string{
	"deployer.xml": `<?xml version="1.0" encoding="UTF-8"?>
<!-- clusterconfig-demo: what the deployer daemon does on demo-dep01 -->
<deployer version="1">
  <instances dir="instances" pattern="*.xml" key="name"/>
  <step name="instance-configure" run="scripts/configure.sh" timeout="1m" retries="0" writes="instance"/>
  <step name="instance-redeploy" run="scripts/redeploy.sh" timeout="1m" after="instance-configure">
    <arg>--instance</arg><arg>{instance}</arg>
  </step>
  <on-change steps="instance-configure instance-redeploy" bucket="2" max-failures="1"/>
</deployer>
`,
	"instances/acme.xml": `<?xml version="1.0" encoding="UTF-8"?>
<instance name="acme" tier="silver">
  <app name="web" version="4.2.1" image="registry.example/web:4.2.1@sha256:ab2de7dc634b" replicas="2"/>
  <db host="db1.fra1.internal" size="medium"/>
</instance>
`,
	"instances/globex.xml": `<?xml version="1.0" encoding="UTF-8"?>
<instance name="globex" tier="gold">
  <app name="web" version="4.2.1" image="registry.example/web:4.2.1@sha256:ab2de7dc634b" replicas="4"/>
  <app name="worker" version="4.2.1" replicas="2"/>
  <server host="lb1.fra1.internal" weight="1"/>
  <server host="lb2.fra1.internal" weight="1"/>
  <db host="db2.fra1.internal" size="large"/>
</instance>
`,
	"instances/viatris.xml": `<?xml version="1.0" encoding="UTF-8"?>
<!-- Viatris production: change window Tue/Thu -->
<instance name="viatris" tier="gold">
  <app name="web"    version="4.2.1"
       image="registry.example/web:4.2.1@sha256:ab2de7dc634b"
       replicas="3"/>
  <app name="worker" version="4.2.1" replicas="2"/>
  <db host='db3.fra1.internal' size="large"/>
</instance>
`,
	"scripts/configure.sh": `#!/bin/sh
# instance-configure: pins the web image for the version in the instance file,
# rewriting the file with sed as many real tools do.
set -eu
f="$DEPLOYER_INSTANCE_FILE"
version=$(tr '\n' ' ' < "$f" | sed -n 's/.*<app name="web" *version="\([^"]*\)".*/\1/p')
digest=$(printf '%s' "web:$version" | sha256sum | cut -c1-12)
image="registry.example/web:$version@sha256:$digest"
echo "configuring $DEPLOYER_INSTANCE: web $version is $image"
if grep -qx "$DEPLOYER_INSTANCE" freeze.list; then
  echo "$DEPLOYER_INSTANCE is frozen by its owner; refusing to configure" >&2
  exit 4
fi
if [ -n "${DEMO_MARKS:-}" ] && [ -e "$DEMO_MARKS/hold-$DEPLOYER_INSTANCE" ]; then
  touch "$DEMO_MARKS/held-$DEPLOYER_INSTANCE"
  i=0
  while [ ! -e "$DEMO_MARKS/go-$DEPLOYER_INSTANCE" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
  rm -f "$DEMO_MARKS/hold-$DEPLOYER_INSTANCE" "$DEMO_MARKS/go-$DEPLOYER_INSTANCE"
fi
sed -i "s|image=\"[^\"]*\"|image=\"$image\"|" "$f"
if [ -n "${DEMO_MARKS:-}" ] && [ -s "$DEMO_MARKS/drain-$DEPLOYER_INSTANCE" ]; then
  host=$(cat "$DEMO_MARKS/drain-$DEPLOYER_INSTANCE")
  rm -f "$DEMO_MARKS/drain-$DEPLOYER_INSTANCE"
  echo "draining $host: weight 0"
  sed -i "s|<server host=\"$host\" weight=\"[0-9]*\"|<server host=\"$host\" weight=\"0\"|" "$f"
fi
echo "image=$image" >> "$DEPLOYER_OUTPUT"
`,
	"freeze.list": "# instances their owners froze: instance-configure refuses them\n",
	"scripts/redeploy.sh": `#!/bin/sh
# instance-redeploy: would roll the instance; here it only says so.
set -eu
echo "redeploying $2 with $DEPLOYER_OUT_IMAGE on $DEPLOYER_HOST"
echo "rolled=$2" >> "$DEPLOYER_OUTPUT"
`,
}

// demoImage is the image instance-configure pins for a web version.
func demoImage(version string) string {
	sum := sha256.Sum256([]byte("web:" + version))
	return fmt.Sprintf("registry.example/web:%s@sha256:%x", version, sum[:6])
}

// operator is a person with a clone of the clusterconfig remote. The demo
// plays it with the gitrepo helper.
type operator struct {
	dir  string
	repo *gitrepo.Repo
	name string
}

// setUp creates the bare remote and the operator's first commit.
func (dm *demo) setUp(ctx context.Context) error {
	dm.remote = filepath.Join(dm.dir, "remote", "clusterconfig-demo.git")
	if err := gitrepo.InitBare(dm.remote); err != nil {
		return fmt.Errorf("create remote: %w", err)
	}
	op, err := newOperator(filepath.Join(dm.dir, "alice"), dm.remote, "alice")
	if err != nil {
		return err
	}
	dm.operator = op
	for path, content := range demoFiles {
		if err := op.write(path, content); err != nil {
			return err
		}
	}
	if _, err := op.commitAndPush(ctx, "clusterconfig-demo: three instances and their steps"); err != nil {
		return err
	}
	if dm.bob, err = cloneOperator(ctx, filepath.Join(dm.dir, "bob"), dm.remote, "bob"); err != nil {
		return err
	}
	dm.say("Created a throwaway clusterconfig remote at %s", dm.remote)
	dm.say("with deployer.xml, three instances (acme, globex, viatris) and two steps (instance-configure, instance-redeploy).")
	return nil
}

// newOperator is a person who starts a repository for remote in dir.
func newOperator(dir, remote, name string) (*operator, error) {
	repo, err := gitrepo.Init(dir, remote)
	if err != nil {
		return nil, fmt.Errorf("operator clone: %w", err)
	}
	return &operator{dir: dir, repo: repo, name: name}, nil
}

// cloneOperator is a second person with a fresh clone of the remote.
func cloneOperator(ctx context.Context, dir, remote, name string) (*operator, error) {
	repo, err := gitrepo.Clone(ctx, dir, remote)
	if err != nil {
		return nil, fmt.Errorf("%s clones: %w", name, err)
	}
	return &operator{dir: dir, repo: repo, name: name}, nil
}

func (op *operator) write(path, content string) error {
	full := filepath.Join(op.dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if strings.HasSuffix(path, ".sh") {
		mode = 0o755
	}
	return os.WriteFile(full, []byte(content), mode)
}

func (op *operator) read(path string) (string, error) {
	b, err := os.ReadFile(filepath.Join(op.dir, filepath.FromSlash(path)))
	return string(b), err
}

// replace edits one file like a person in a text editor would.
func (op *operator) replace(path, old, new string) error {
	s, err := op.read(path)
	if err != nil {
		return err
	}
	if !strings.Contains(s, old) {
		return fmt.Errorf("%s does not contain %q", path, old)
	}
	return op.write(path, strings.Replace(s, old, new, 1))
}

// commitAndPush commits everything and pushes main; it returns the commit.
func (op *operator) commitAndPush(ctx context.Context, msg string) (string, error) {
	commit, err := op.repo.CommitAll(op.name, msg)
	if err != nil {
		return "", fmt.Errorf("operator %w", err)
	}
	if err := op.repo.Push(ctx); err != nil {
		return "", fmt.Errorf("operator push: %w", err)
	}
	return commit, nil
}

// pull brings the operator's clone to the remote's main.
func (op *operator) pull(ctx context.Context) error {
	if err := op.repo.Pull(ctx); err != nil {
		return fmt.Errorf("%s pulls: %w", op.name, err)
	}
	return nil
}

// edit is one change a person makes to a file in a text editor.
type edit struct{ file, old, new string }

// change pulls, makes the edits and pushes them as one commit.
func (op *operator) change(ctx context.Context, msg string, edits ...edit) (string, error) {
	if err := op.pull(ctx); err != nil {
		return "", err
	}
	for _, e := range edits {
		if err := op.replace(e.file, e.old, e.new); err != nil {
			return "", err
		}
	}
	return op.commitAndPush(ctx, msg)
}
