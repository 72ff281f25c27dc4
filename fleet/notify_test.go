package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/fleet"
	"github.com/sre-tools/deployer/notify"
)

const hookSecret = "h00k-secret"

// hookServer receives Slack and webhook posts on 127.0.0.1, or answers
// every post with status when it is set.
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	status   int
	slack    []string // the text of each Slack message, and its section
	webhooks []string // "delivery event state wave signed"
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.status != 0 {
			w.WriteHeader(h.status)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/services/") {
			var p struct {
				Text   string `json:"text"`
				Blocks []struct {
					Text *struct{ Text string } `json:"text"`
				} `json:"blocks"`
			}
			_ = json.Unmarshal(body, &p)
			h.slack = append(h.slack, p.Text+"\n"+p.Blocks[1].Text.Text)
			return
		}
		var wb notify.WebhookBody
		_ = json.Unmarshal(body, &wb)
		signed := r.Header.Get(notify.HeaderSignature) == notify.Sign([]byte(hookSecret), body)
		h.webhooks = append(h.webhooks, strings.Join([]string{r.Header.Get(notify.HeaderDelivery), string(wb.Event), wb.Fleet.State, strconv.Itoa(wb.Fleet.Wave), map[bool]string{true: "signed", false: "unsigned"}[signed]}, " "))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) got() (slack, webhooks []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.slack), slices.Clone(h.webhooks)
}

func (h *hookServer) channels(t *testing.T) map[string]notify.Channel {
	t.Helper()
	out := map[string]notify.Channel{}
	for _, c := range []notify.ChannelConfig{
		{Name: "slack", Kind: notify.KindSlack, URL: h.URL + "/services/T000/B000/s3cretpath"},
		{Name: "webhook", Kind: notify.KindWebhook, URL: h.URL + "/hook", Secret: hookSecret},
	} {
		ch, err := notify.NewChannel(c, notify.ChannelOptions{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		out[c.Name] = ch
	}
	return out
}

// notifyRun runs fleet f-test-1 over sixHosts with fake daemons, notifying
// h's channels, with the state in state.
func notifyRun(t *testing.T, h *hookServer, state string, hosts map[string]*fakeHost, opts fleet.Options) (fleet.NotifyReport, string) {
	t.Helper()
	var warnings bytes.Buffer
	n := fleet.NewNotifier(fleet.NotifierOptions{Channels: h.channels(t), StateFile: state, Follow: "deployer fleet status f-test-1 --fleet hosts.yaml",
		Backoff: time.Millisecond, Warnings: &warnings})
	f := newFakeFleet(hosts)
	opts.Repo, opts.ID, opts.Dial, opts.Poll = "cc-{dc}", "f-test-1", f.dial, time.Millisecond
	if opts.Request.Select == "" {
		opts.Request = api.DeployRequest{Select: "instances/*.xml", Reason: "CHG-7 web 4.3", Who: "alice"}
	}
	opts, err := n.Wire(sixHosts(), opts)
	if err != nil {
		t.Fatal(err)
	}
	res, err := fleet.Deploy(context.Background(), sixHosts(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return n.Finish(ctx, res, nil), warnings.String()
}

func TestNotifierOnceEach(t *testing.T) {
	h := newHookServer(t)
	state := filepath.Join(t.TempDir(), "fleet-notify", "fleet-f-test-1.json")
	hosts, opts := budgetStop() // waves [fra-1], [fra-2 ams-1]: ams-1 fails and the fleet stops
	rep, warnings := notifyRun(t, h, state, hosts, opts)
	if rep.Sent != 8 || rep.AlreadySent != 0 || rep.Failed != 0 || warnings != "" {
		t.Fatalf("got %+v, warnings %q; want 8 sent (start, 2 waves, outcome on 2 channels)", rep, warnings)
	}
	slack, hooks := h.got()
	wantHooks := []string{
		"fleet-f-test-1-fleet-started fleet-started running 0 signed",
		"fleet-f-test-1-fleet-wave-1-succeeded fleet-wave running 1 signed",
		"fleet-f-test-1-fleet-wave-2-failed fleet-wave running 2 signed",
		"fleet-f-test-1-fleet-ended-failed fleet-ended failed 0 signed",
	}
	if !slices.Equal(hooks, wantHooks) {
		t.Errorf("got webhooks\n%s\nwant\n%s", strings.Join(hooks, "\n"), strings.Join(wantHooks, "\n"))
	}
	wantSlack := []string{
		"Fleet deployment f-test-1 started: repo cc-{dc}, 6 host(s), 4 wave(s)\nselect: instances/*.xml\nreason: CHG-7 web 4.3\nby: alice\nfollow: deployer fleet status f-test-1 --fleet hosts.yaml",
		"Fleet deployment f-test-1 wave 1/4 (canary) done: 1 succeeded of 1 host(s)\ninstances: 2 succeeded\nfra-1 [fra] succeeded: deployment d-fra-1-1 succeeded (2 succeeded)\nfollow: deployer fleet status f-test-1 --fleet hosts.yaml",
		"Fleet deployment f-test-1 wave 2/4 done: 1 failed, 1 succeeded of 2 host(s)\ninstances: 1 failed, 3 succeeded\nfra-2 [fra] succeeded: deployment d-fra-2-1 succeeded (2 succeeded)\nams-1 [ams] failed: deployment d-ams-1-1 failed (1 succeeded, 1 failed)\nfollow: deployer fleet status f-test-1 --fleet hosts.yaml",
		"Fleet deployment f-test-1 failed: 1 failed, 3 not-started, 2 succeeded of 6 host(s)\ninstances: 1 failed, 5 succeeded\nstopped: failure budget spent: 1 host(s) failed, --max-failed-hosts 1\nams-1 [ams] failed: deployment d-ams-1-1 failed (1 succeeded, 1 failed)\nams-2 [ams] not-started\nnyc-1 [nyc] not-started\nnyc-2 [nyc] not-started\nfollow: deployer fleet status f-test-1 --fleet hosts.yaml",
	}
	if !slices.Equal(slack, wantSlack) {
		t.Errorf("got Slack messages\n%s\nwant\n%s", strings.Join(slack, "\n--\n"), strings.Join(wantSlack, "\n--\n"))
	}

	// the same rerun: nothing twice
	hosts, opts = budgetStop()
	rep, _ = notifyRun(t, h, state, hosts, opts)
	if rep.Sent != 0 || rep.AlreadySent != 8 {
		t.Errorf("rerun: got %+v, want 0 sent, 8 already sent", rep)
	}
	// a rerun that ends otherwise: the new wave 2, the waves after and the
	// new outcome, once each
	rep, _ = notifyRun(t, h, state, map[string]*fakeHost{}, opts)
	if rep.Sent != 8 || rep.AlreadySent != 4 {
		t.Errorf("rerun that succeeds: got %+v, want 8 sent (waves 2-4 and the outcome), 4 already sent", rep)
	}
	_, hooks = h.got()
	if len(hooks) != 8 || hooks[len(hooks)-1] != "fleet-f-test-1-fleet-ended-succeeded fleet-ended succeeded 0 signed" {
		t.Errorf("got webhooks\n%s\nwant 8, the last the succeeded outcome", strings.Join(hooks, "\n"))
	}
}

// A channel that does not answer costs a warning, once, without its URL
// or secret; what failed is not kept as sent, so a rerun sends it.
func TestNotifierChannelDown(t *testing.T) {
	h := newHookServer(t)
	h.status = http.StatusServiceUnavailable
	state := filepath.Join(t.TempDir(), "fleet-f-test-1.json")
	rep, warnings := notifyRun(t, h, state, map[string]*fakeHost{}, fleet.Options{PlanOptions: fleet.PlanOptions{HostBucket: 6}})
	if rep.Sent != 0 || rep.Failed != 8 {
		t.Errorf("got %+v, want 8 failed (start, 2 waves, outcome on 2 channels)", rep)
	}
	if strings.Count(warnings, "\n") != 2 || strings.Contains(warnings, "s3cretpath") || strings.Contains(warnings, hookSecret) {
		t.Errorf("got warnings %q, want one line per channel, without the URL path or secret", warnings)
	}
	h.mu.Lock()
	h.status = 0
	h.mu.Unlock()
	rep, _ = notifyRun(t, h, state, map[string]*fakeHost{}, fleet.Options{PlanOptions: fleet.PlanOptions{HostBucket: 6}})
	if rep.Sent != 8 || rep.AlreadySent != 0 {
		t.Errorf("rerun after the outage: got %+v, want all 8 sent", rep)
	}
}

func TestNotifierDryRun(t *testing.T) {
	h := newHookServer(t)
	rep, _ := notifyRun(t, h, filepath.Join(t.TempDir(), "s.json"), map[string]*fakeHost{},
		fleet.Options{Request: api.DeployRequest{Select: "instances/*.xml", DryRun: true}})
	slack, hooks := h.got()
	if rep.Sent != 0 || len(slack)+len(hooks) != 0 {
		t.Errorf("dry run: got %+v, %d messages; want none", rep, len(slack)+len(hooks))
	}
}
