package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/webhook"
)

// testSecret is the webhook secret of every test.
var testSecret = []byte("It's a Secret to Everybody")

// sample returns testdata/name, a payload modelled on the provider's
// documented example.
func sample(tb testing.TB, name string) []byte {
	tb.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

// withRef returns body with its refs/heads/main replaced by ref.
func withRef(tb testing.TB, body []byte, ref string) []byte {
	tb.Helper()
	out := strings.Replace(string(body), `"ref": "refs/heads/main"`, `"ref": "`+ref+`"`, 1)
	if out == string(body) {
		tb.Fatalf("body has no ref refs/heads/main")
	}
	return []byte(out)
}

// hmacHex is the hex HMAC-SHA256 of body, computed here rather than with
// webhook.Sign so the tests check the package against the standard library.
func hmacHex(body, secret []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// signed returns the headers provider sends with body for event, signed
// with secret.
func signed(provider, event string, body, secret []byte) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	switch provider {
	case webhook.GitHub:
		h.Set("X-GitHub-Event", event)
		h.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
		h.Set("X-Hub-Signature-256", "sha256="+hmacHex(body, secret))
	case webhook.GitLab:
		h.Set("X-Gitlab-Event", event)
		h.Set("X-Gitlab-Token", string(secret))
	case webhook.Gitea:
		h.Set("X-Gitea-Event", event)
		h.Set("X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473")
		h.Set("X-Gitea-Signature", hmacHex(body, secret))
	case webhook.Generic:
		h.Set("X-Deployer-Signature", "sha256="+hmacHex(body, secret))
	}
	return h
}
