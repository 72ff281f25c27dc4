package notify_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"testing"

	"github.com/rs/zerolog"
	"github.com/sre-tools/deployer/notify"
)

// TestNoSecretInLogsOrReasons delivers through every channel kind, with
// success, server errors, rejections and a refused connection, logging at
// debug level, and checks that no URL path, query token, webhook secret
// or Jira token reaches the log or the failure reasons stored in the
// outbox.
func TestNoSecretInLogsOrReasons(t *testing.T) {
	const (
		slackPath  = "/services/T0SECRET/B0SECRET/xoxSECRETpath"
		hookSecret = "hmac-SECRET-value"
		hookToken  = "qtokenSECRET"
		jiraToken  = "jira-pat-SECRET"
	)
	status := http.StatusInternalServerError
	srv := newRecorder(t, func(w http.ResponseWriter, r recorded) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"errorMessages":["nope"]}`))
	})
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String()
	dead.Close() // connections to it are refused

	var logs bytes.Buffer
	log := zerolog.New(&logs).Level(zerolog.DebugLevel)
	clk := &clock{t: t0}
	out := &memOutbox{now: clk.Now}
	chans := []notify.ChannelConfig{
		{Kind: notify.KindSlack, URL: srv.URL + slackPath},
		{Kind: notify.KindWebhook, URL: srv.URL + "/hook?token=" + hookToken, Secret: hookSecret},
		{Kind: notify.KindJira, URL: srv.URL, Token: jiraToken, Project: "SRE", IssueType: "Incident"},
		{Name: "dead-slack", Kind: notify.KindSlack, URL: deadURL + slackPath},
		{Name: "dead-hook", Kind: notify.KindWebhook, URL: deadURL + "/hook?token=" + hookToken, Secret: hookSecret},
	}
	d := newDispatcher(t, out, clk, log, chans...)
	ids := []string{}
	for _, status = range []int{500, 429, 400, 401, 200} {
		for _, c := range chans {
			name := c.Name
			if name == "" {
				name = string(c.Kind)
			}
			id := fmt.Sprintf("%s-%d", name, status)
			ids = append(ids, id)
			out.add(notify.Message{DeliveryID: id, Channel: name, Event: sampleEvent(notify.EventNew)})
		}
		clk.Set(clk.Now().Add(24 * 7 * 3600e9))
		drain(t, d)
	}
	if len(srv.requests()) == 0 || logs.Len() == 0 {
		t.Fatalf("nothing happened: %d requests, %d log bytes", len(srv.requests()), logs.Len())
	}
	secrets := []string{"SECRET", slackPath, hookSecret, hookToken, jiraToken}
	if s := containsAny(logs.Bytes(), secrets...); s != "" {
		t.Fatalf("log contains %q:\n%s", s, logs.String())
	}
	for _, id := range ids {
		if s := containsAny([]byte(out.get(id).reason), secrets...); s != "" {
			t.Fatalf("failure reason of %s contains %q: %s", id, s, out.get(id).reason)
		}
	}
}
