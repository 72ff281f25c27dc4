package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/notify"
)

func TestWebhookSignsBody(t *testing.T) {
	srv := newRecorder(t, nil)
	secret := "hook-secret-3f9a"
	ch, err := notify.NewChannel(notify.ChannelConfig{Kind: notify.KindWebhook, URL: srv.URL + "/deployer", Secret: secret}, notify.ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := notify.Message{DeliveryID: "ab12-5", Channel: "webhook", Event: sampleEvent(notify.EventNew)}
	for range 2 { // a retry sends the identical body
		if _, err := ch.Deliver(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	reqs := srv.requests()
	if len(reqs) != 2 || string(reqs[0].Body) != string(reqs[1].Body) {
		t.Fatalf("got %d requests, bodies equal %v; want 2 identical", len(reqs), len(reqs) == 2 && string(reqs[0].Body) == string(reqs[1].Body))
	}
	r := reqs[0]
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(r.Body)
	if got, want := r.Header.Get("X-Deployer-Signature"), "sha256="+hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Fatalf("signature %q, want %q", got, want)
	}
	if got := r.Header.Get("X-Deployer-Delivery"); got != "ab12-5" {
		t.Fatalf("delivery header %q, want ab12-5", got)
	}
	if r.Method != http.MethodPost || r.Path != "/deployer" || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %s %s %s, want POST /deployer application/json", r.Method, r.Path, r.Header.Get("Content-Type"))
	}
	var body struct {
		DeliveryID   string `json:"delivery_id"`
		Event        string `json:"event"`
		Intervention map[string]any
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	iv := body.Intervention
	if body.DeliveryID != "ab12-5" || body.Event != "new" || iv["kind"] != "push-conflict" || iv["host"] != "fra1-prod-dep01" ||
		iv["instance"] != "viatris" || iv["count"] != float64(50) || !strings.HasPrefix(iv["next_action"].(string), "deployer interventions resolve 7") {
		t.Fatalf("body %s lacks the event", r.Body)
	}
}

func TestWebhookWithoutSecretSendsNoSignature(t *testing.T) {
	srv := newRecorder(t, nil)
	ch, err := notify.NewChannel(notify.ChannelConfig{Kind: notify.KindWebhook, URL: srv.URL}, notify.ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Deliver(context.Background(), notify.Message{DeliveryID: "x-1", Event: sampleEvent(notify.EventNew)}); err != nil {
		t.Fatal(err)
	}
	if sig := srv.requests()[0].Header.Get("X-Deployer-Signature"); sig != "" {
		t.Fatalf("signature %q without a secret", sig)
	}
}

func TestStatusClassification(t *testing.T) {
	for _, tt := range []struct {
		status int
		want   error
	}{{500, notify.ErrUnavailable}, {503, notify.ErrUnavailable}, {429, notify.ErrUnavailable}, {400, notify.ErrRejected}, {404, notify.ErrRejected}} {
		srv := newRecorder(t, func(w http.ResponseWriter, r recorded) { w.WriteHeader(tt.status) })
		ch, _ := notify.NewChannel(notify.ChannelConfig{Kind: notify.KindWebhook, URL: srv.URL}, notify.ChannelOptions{})
		_, err := ch.Deliver(context.Background(), notify.Message{DeliveryID: "x-1", Event: sampleEvent(notify.EventNew)})
		var se *notify.StatusError
		if !errors.Is(err, tt.want) || !errors.As(err, &se) || se.Status != tt.status {
			t.Errorf("status %d: got %v, want %v", tt.status, err, tt.want)
		}
	}
}

func TestNewChannelRejectsBadConfig(t *testing.T) {
	for _, cfg := range []notify.ChannelConfig{
		{Kind: "pager", URL: "https://x"},
		{Kind: notify.KindSlack, URL: "hooks.slack.com/services/T/B/C"},
		{Kind: notify.KindJira, URL: "https://jira.internal"},
	} {
		if _, err := notify.NewChannel(cfg, notify.ChannelOptions{}); !errors.Is(err, notify.ErrInvalidConfig) {
			t.Errorf("%+v: got %v, want ErrInvalidConfig", cfg, err)
		}
	}
	if _, err := notify.NewChannel(notify.ChannelConfig{Kind: notify.KindSlack, URL: "ftp://h/T/secretpath"}, notify.ChannelOptions{}); err == nil || strings.Contains(err.Error(), "secretpath") {
		t.Errorf("got %v, want an error without the URL path", err)
	}
}
