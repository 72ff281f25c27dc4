package main

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fleet deploy takes the slack and webhook channels of the host config,
// named as the daemon names them; a jira entry is not read (its token file
// may be root's only).
func TestFleetNotifyChannels(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "slack-url"), "https://hooks.slack.com/services/T0/B0/s3cret\n")
	writeFile(t, filepath.Join(dir, "hook.secret"), "h00k\n")
	cfg := `host: h1
state_dir: /var/lib/deployer
repos:
  - {name: cc, url: https://git.internal/cc.git}
notify:
  - {kind: slack, url_file: ` + filepath.Join(dir, "slack-url") + `}
  - {kind: webhook, url: https://hooks.internal/deployer, secret_file: ` + filepath.Join(dir, "hook.secret") + `}
  - {kind: webhook, url: https://audit.internal/in}
  - {kind: jira, url: https://jira.internal, token_file: /nonexistent/jira-token, project: SRE, issue_type: Task}
`
	path := filepath.Join(dir, "deployer.yaml")
	writeFile(t, path, cfg)
	chans, err := fleetNotifyChannels(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(chans)); !slices.Equal(got, []string{"slack", "webhook", "webhook-2"}) {
		t.Errorf("got channels %v, want slack, webhook, webhook-2", got)
	}

	writeFile(t, path, strings.Replace(cfg, filepath.Join(dir, "slack-url"), filepath.Join(dir, "nope"), 1))
	_, err = fleetNotifyChannels(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), filepath.Join(dir, "nope")) {
		t.Errorf("got %v, want an error naming the config and the missing url_file", err)
	}
	if err != nil && strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error holds the Slack URL: %v", err)
	}
}
