package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/sre-tools/deployer/fleet"
	"github.com/sre-tools/deployer/notify"
)

// fleetNotifyWait bounds how long fleet deploy waits, once the deployment
// has ended, for the Slack and webhook messages still queued;
// fleetNotifyWaitInterrupted after an interrupt.
const (
	fleetNotifyWait            = 30 * time.Second
	fleetNotifyWaitInterrupted = 5 * time.Second
)

// fleetNotifyHelp documents the notifications of fleet deploy.
const fleetNotifyHelp = `
Slack and webhooks: the fleet's start, the end of each wave and the final
outcome go to the slack and webhook channels of the host config's notify
section (--config, env DEPLOYER_CONFIG, else /etc/deployer/deployer.yaml when
it exists and is readable), one message each, every one with the fleet id and
the 'deployer fleet status' command. What was sent is kept in
~/.cache/deployer/fleet-notify/fleet-ID.json (--notify-state-dir DIR), so a
rerun under the same --id sends only what is new (a wave or an outcome that
differs) and nothing twice. A dry run and --notify=false send nothing.`

// fleetNotifier builds the notifier of the host config's slack and webhook
// channels, or nil when there are none or they are not wanted. A config
// given by --config or DEPLOYER_CONFIG must load; the default one is used
// only when it does, with a note otherwise.
func fleetNotifier(g *globalOptions, o *fleetDeployOptions, id, follow string, warnings io.Writer) (*fleet.Notifier, error) {
	if !o.notify || o.req.Request.DryRun {
		return nil, nil
	}
	path, explicit := g.configPath, g.configPath != ""
	if !explicit {
		path = defaultConfigPath
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	chans, err := fleetNotifyChannels(path)
	if err != nil {
		if explicit {
			return nil, &statusError{Code: exitUsage, Err: fmt.Errorf("fleet notifications: %w (or --notify=false)", err)}
		}
		fmt.Fprintf(warnings, "note: no Slack/webhook notification: %v\n", err)
		return nil, nil
	}
	if len(chans) == 0 {
		return nil, nil
	}
	state, err := fleet.StateFile(o.notifyStateDir, id)
	if err != nil {
		fmt.Fprintf(warnings, "note: %v: a rerun under the same --id sends every message again\n", err)
	}
	return fleet.NewNotifier(fleet.NotifierOptions{Channels: chans, StateFile: state, Follow: follow, Warnings: warnings}), nil
}

// fleetNotifyChannels builds the slack and webhook channels of the host
// config at path, with their URLs and secrets read from their files.
func fleetNotifyChannels(path string) (map[string]notify.Channel, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	// Only the slack and webhook entries, named as the daemon names them:
	// a jira entry's token file need not be readable by the operator.
	var entries []NotifyConfig
	for i, n := range cfg.Notify {
		if n.Kind == string(notify.KindSlack) || n.Kind == string(notify.KindWebhook) {
			n.Name = channelName(cfg, i)
			entries = append(entries, n)
		}
	}
	cfgs, err := notifyChannels(&Config{Notify: entries})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]notify.Channel{}
	for _, c := range cfgs {
		ch, err := notify.NewChannel(c, notify.ChannelOptions{})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out[c.Name] = ch
	}
	return out, nil
}

// finishFleetNotifier waits a bounded time for the messages still queued
// and says what was sent.
func finishFleetNotifier(ctx context.Context, n *fleet.Notifier, w io.Writer, res fleet.Result, deployErr error) *fleet.NotifyReport {
	if n == nil {
		return nil
	}
	wait := fleetNotifyWait
	if ctx.Err() != nil {
		wait = fleetNotifyWaitInterrupted
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
	defer cancel()
	rep := n.Finish(ctx, res, deployErr)
	fmt.Fprintf(w, "notify: %d message(s) sent, %d already sent under this fleet id, %d failed\n", rep.Sent, rep.AlreadySent, rep.Failed+rep.Dropped)
	return &rep
}
