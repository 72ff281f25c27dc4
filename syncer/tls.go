package syncer

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// TLS is how an https:// remote is trusted and how the daemon proves who it is to it. The
// zero value trusts the system's roots and presents no client certificate. The same settings
// go to every connection of the repo: clone, re-clone, fetch (Sync, WriteBack's re-fetch)
// and push. Other schemes ignore them (Open drops them).
type TLS struct {
	// CABundle is PEM certificates trusted besides the system's roots (an internal CA).
	CABundle []byte
	// InsecureSkipVerify accepts any server certificate. Only for a test bench: anyone on
	// the path can then read and change what the repo serves.
	InsecureSkipVerify bool
	// ClientCert and ClientKey are a PEM client certificate (chain) and its private key, for
	// servers that require one (mutual TLS); both or neither. The key never appears in an
	// error or a log.
	ClientCert, ClientKey []byte
}

// httpsTransports is how many distinct TLS settings keep an HTTP transport (and its idle
// connections) for reuse.
const httpsTransports = 64

// go-git builds a new http.Transport for every session whose endpoint carries TLS settings
// and drops it with its connection still open: each fetch or push of a repo with a CA bundle
// left a connection (and, against a local server, its other end) open for the transport's
// idle timeout, 90 s (50 syncs: 13 -> 113 open files). go-git caches those transports by
// their TLS settings only when the client installed for the scheme asks for it, so syncer
// installs such a client for https once, before any session. It is go-git's own client over
// http.DefaultTransport; sessions without TLS settings use that transport as before.
func init() {
	client.InstallProtocol("https", githttp.NewClientWithOptions(nil, &githttp.ClientOptions{CacheMaxEntries: httpsTransports}))
}

// isHTTPS reports whether rawURL is an https:// URL, the only scheme TLS applies to.
func isHTTPS(rawURL string) bool {
	return len(rawURL) > len("https://") && strings.EqualFold(rawURL[:len("https://")], "https://")
}

// IsZero reports whether nothing is configured.
func (t TLS) IsZero() bool {
	return len(t.CABundle) == 0 && !t.InsecureSkipVerify && len(t.ClientCert) == 0 && len(t.ClientKey) == 0
}

// check reports settings go-git would silently ignore or fail on at every connection. Its
// errors never quote the PEM data.
func (t TLS) check() error {
	if len(t.CABundle) > 0 {
		if !x509.NewCertPool().AppendCertsFromPEM(t.CABundle) {
			return errors.New("TLS CA bundle: no PEM certificate in it")
		}
	}
	if (len(t.ClientCert) == 0) != (len(t.ClientKey) == 0) {
		return errors.New("TLS client certificate: needs both a certificate and a key")
	}
	if len(t.ClientCert) > 0 {
		// crypto/tls's messages name PEM block types and mismatches, never key bytes
		if _, err := tls.X509KeyPair(t.ClientCert, t.ClientKey); err != nil {
			return fmt.Errorf("TLS client certificate: %v", err)
		}
	}
	return nil
}

// apply sets t on an endpoint (the push session, which syncer opens itself).
func (t TLS) apply(ep *transport.Endpoint) {
	ep.CaBundle = t.CABundle
	ep.InsecureSkipTLS = t.InsecureSkipVerify
	ep.ClientCert = t.ClientCert
	ep.ClientKey = t.ClientKey
}

// clientSubject is the subject of the configured client certificate, or "".
func (t TLS) clientSubject() string {
	b, _ := pem.Decode(t.ClientCert)
	if b == nil {
		return ""
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return ""
	}
	return c.Subject.String()
}

// tlsError is a TLS failure explained for operators: Error is the reason (it starts with
// "tls-untrusted:", "tls-client-cert:" or "tls:"), Unwrap the error it explains.
type tlsError struct {
	reason string
	err    error
}

func (e *tlsError) Error() string { return e.reason }
func (e *tlsError) Unwrap() error { return e.err }

// Alerts a TLS server sends when it refuses the client's certificate, or the lack of one
// (TLS 1.3: certificate required; TLS 1.2: bad certificate or handshake failure).
var clientCertAlerts = []string{
	"remote error: tls: certificate required",
	"remote error: tls: bad certificate",
	"remote error: tls: unknown certificate authority",
	"remote error: tls: certificate unknown",
	"remote error: tls: unsupported certificate",
	"remote error: tls: expired certificate",
	"remote error: tls: revoked certificate",
	"remote error: tls: access denied",
	"remote error: tls: handshake failure", // TLS 1.2 without a certificate, or nothing in common
}

// tlsReason explains a TLS failure: a server certificate that does not verify (its subject
// and issuer, and what to configure), or a server that refused our client certificate or its
// absence. ok is false for any other error. Retrying fixes none of them (auth-failed).
func (t TLS) tlsReason(err error) (reason string, ok bool) {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var he x509.HostnameError
	var ve *tls.CertificateVerificationError
	var leaf *x509.Certificate
	if errors.As(err, &ve) && len(ve.UnverifiedCertificates) > 0 {
		leaf = ve.UnverifiedCertificates[0]
	}
	switch {
	case errors.As(err, &ua):
		const hint = "add the CA that issued it to the repo's TLS CA file (repos[].tls.ca_file in the host config); retrying does not help"
		// The server's own certificate is the first it sent; ua.Cert is
		// where the chain stopped (an intermediate or a root it sent).
		c := leaf
		if c == nil {
			c = ua.Cert
		}
		if c == nil {
			return "tls-untrusted: the server's certificate is not signed by a trusted CA; " + hint, true
		}
		chain := ""
		if ua.Cert != nil && c != ua.Cert && !ua.Cert.Equal(c) {
			chain = fmt.Sprintf(" (its chain ends at %q, issued by %q)", ua.Cert.Subject.String(), ua.Cert.Issuer.String())
		}
		return fmt.Sprintf("tls-untrusted: the server's certificate (subject %q, issuer %q)%s is not signed by a trusted CA; %s",
			c.Subject.String(), c.Issuer.String(), chain, hint), true
	case errors.As(err, &he):
		return fmt.Sprintf("tls: the server's certificate does not name this host: %v; fix the remote URL or the server's certificate", he), true
	case errors.As(err, &ci):
		return fmt.Sprintf("tls: the server's certificate is not valid: %v", ci), true
	case ve != nil:
		return fmt.Sprintf("tls: the server's certificate does not verify: %v", ve.Err), true
	}
	s := err.Error()
	for _, a := range clientCertAlerts {
		if !strings.Contains(s, a) {
			continue
		}
		alert := strings.TrimPrefix(a, "remote error: ")
		subj := t.clientSubject()
		switch {
		case strings.HasSuffix(a, "handshake failure") && subj != "":
			return fmt.Sprintf("tls: the server refused the TLS handshake (%s) with our client certificate (subject %q): it does not trust that certificate, or wants a TLS version or cipher we do not offer", alert, subj), true
		case strings.HasSuffix(a, "handshake failure"):
			return fmt.Sprintf("tls-client-cert: the server refused the TLS handshake (%s): it most likely requires a client certificate and we have none; set repos[].tls.cert_file and key_file (else it wants a TLS version or cipher we do not offer)", alert), true
		case subj != "":
			return fmt.Sprintf("tls-client-cert: the server refused our client certificate (subject %q): %s; give the repo a certificate the server trusts (repos[].tls.cert_file and key_file)", subj, alert), true
		}
		return fmt.Sprintf("tls-client-cert: the server requires a client certificate and we have none (%s); set repos[].tls.cert_file and key_file", alert), true
	}
	return "", false
}
