package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
)

// Signature headers.
const (
	headerGitHubSignature  = "X-Hub-Signature-256"
	headerGitLabToken      = "X-Gitlab-Token"
	headerGiteaSignature   = "X-Gitea-Signature"
	headerGenericSignature = "X-Deployer-Signature"
)

// verify checks the provider's signature or token over body.
func verify(provider string, header http.Header, body, secret []byte) error {
	switch provider {
	case GitHub:
		return verifyHMAC(header, headerGitHubSignature, "sha256=", body, secret)
	case GitLab:
		return verifyToken(header, headerGitLabToken, secret)
	case Gitea:
		return verifyHMAC(header, headerGiteaSignature, "", body, secret)
	case Generic:
		return verifyHMAC(header, headerGenericSignature, "sha256=", body, secret)
	}
	return fmt.Errorf("verify %q: %w", provider, ErrUnknownProvider)
}

// verifyHMAC checks that header name holds prefix followed by the hex
// HMAC-SHA256 of body keyed with secret.
func verifyHMAC(header http.Header, name, prefix string, body, secret []byte) error {
	value := header.Get(name)
	if value == "" {
		return fmt.Errorf("verify: missing %s header: %w", name, ErrSignature)
	}
	digest, ok := strings.CutPrefix(strings.TrimSpace(value), prefix)
	if !ok {
		return fmt.Errorf("verify: %s does not start with %q: %w", name, prefix, ErrSignature)
	}
	got, err := hex.DecodeString(digest)
	if err != nil {
		return fmt.Errorf("verify: %s is not hex: %w", name, ErrSignature)
	}
	if !hmac.Equal(got, Sign(body, secret)) {
		return fmt.Errorf("verify: %s does not match the body: %w", name, ErrSignature)
	}
	return nil
}

// verifyToken checks that header name holds the secret itself.
func verifyToken(header http.Header, name string, secret []byte) error {
	value := header.Get(name)
	if value == "" {
		return fmt.Errorf("verify: missing %s header: %w", name, ErrSignature)
	}
	if subtle.ConstantTimeCompare([]byte(value), secret) != 1 {
		return fmt.Errorf("verify: %s does not match the secret: %w", name, ErrSignature)
	}
	return nil
}

// Sign returns the HMAC-SHA256 of body keyed with secret: the digest that
// GitHub, Gitea and the generic sender put (hex-encoded) in their signature
// headers.
func Sign(body, secret []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return mac.Sum(nil)
}
