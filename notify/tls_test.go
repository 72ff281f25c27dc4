package notify_test

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sre-tools/deployer/notify"
)

// Every channel kind reaches an https endpoint signed by a CA only its
// ca_file trusts, and fails clearly (tls-untrusted, subject, issuer, what
// to set) without it.
func TestChannelsOverTLSWithCAFile(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if strings.HasSuffix(r.URL.Path, "/search") {
			_, _ = w.Write([]byte(`{"total": 0, "issues": []}`))
			return
		}
		if strings.HasPrefix(r.URL.Path, "/rest/api/2/issue") {
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id": "1", "key": "SRE-1"}`))
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []notify.ChannelConfig{
		{Kind: notify.KindWebhook, URL: srv.URL + "/hook"},
		{Kind: notify.KindSlack, URL: srv.URL + "/services/T0/B0/secretpart"},
		{Kind: notify.KindJira, URL: srv.URL, Token: "jira-token-123", Project: "SRE", IssueType: "Incident"},
	} {
		t.Run(string(cfg.Kind), func(t *testing.T) {
			m := notify.Message{DeliveryID: "d1", Channel: string(cfg.Kind), Event: sampleEvent(notify.EventNew)}
			ch, err := notify.NewChannel(cfg, notify.ChannelOptions{})
			if err != nil {
				t.Fatal(err)
			}
			before := hits.Load()
			_, err = ch.Deliver(context.Background(), m)
			if err == nil || !errors.Is(err, notify.ErrUnavailable) || !strings.Contains(err.Error(), "tls-untrusted") ||
				!strings.Contains(err.Error(), "issuer") || !strings.Contains(err.Error(), "notify[].ca_file") {
				t.Fatalf("without ca_file: got %v, want tls-untrusted naming issuer and notify[].ca_file", err)
			}
			if strings.Contains(err.Error(), "secretpart") || strings.Contains(err.Error(), "jira-token-123") {
				t.Errorf("the error carries a secret: %v", err)
			}
			t.Logf("without ca_file: %v", err)
			if hits.Load() != before {
				t.Fatal("the request reached the server without a verified certificate")
			}
			cfg.CAFile = caFile
			ch, err = notify.NewChannel(cfg, notify.ChannelOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ch.Deliver(context.Background(), m); err != nil {
				t.Fatalf("with ca_file: %v", err)
			}
			if hits.Load() == before {
				t.Fatal("with ca_file: nothing reached the server")
			}
		})
	}
	_, err := notify.NewChannel(notify.ChannelConfig{Kind: notify.KindWebhook, URL: srv.URL, CAFile: filepath.Join(t.TempDir(), "missing.pem")}, notify.ChannelOptions{})
	if !errors.Is(err, notify.ErrInvalidConfig) || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing ca_file: got %v, want an invalid-config error naming the file", err)
	}
}
