package daemon

import (
	"fmt"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/webhook"
)

// WebhookRepos lists the tracked repos for matching push webhooks.
func (d *Daemon) WebhookRepos() []webhook.Repo {
	names := d.repoNames()
	out := make([]webhook.Repo, 0, len(names))
	for _, name := range names {
		w, err := d.worker(name)
		if err != nil {
			continue
		}
		c := w.cfg
		out = append(out, webhook.Repo{Name: c.Name, URL: c.URL, Branch: c.Branch, WebhookNames: c.WebhookNames})
	}
	return out
}

// TriggerPush queues a fetch-and-run of repo for a verified push webhook;
// it coalesces with any run in flight and never blocks.
func (d *Daemon) TriggerPush(repo string, p webhook.Push) {
	w, err := d.worker(repo)
	if err != nil {
		return
	}
	detail := fmt.Sprintf("%s push to %s", p.Provider, p.Ref)
	if p.After != "" {
		detail += " at " + short(p.After)
	}
	w.enqueue(request{trigger: w.trigger(deployer.TriggerPush, detail)})
}
