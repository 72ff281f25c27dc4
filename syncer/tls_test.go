package syncer_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sre-tools/deployer/syncer"
)

// pki is a certificate authority made for one test, with what it issued.
type pki struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

var pkiSerial atomic.Int64

func newPKI(tb testing.TB, cn string) *pki {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(pkiSerial.Add(1)), Subject: pkix.Name{CommonName: cn, Organization: []string{"Example Corp"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &pki{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM certificate for cn signed by p, and its PEM key; a server
// certificate names 127.0.0.1.
func (p *pki) issue(tb testing.TB, cn string, client bool) (certPEM, keyPEM []byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(pkiSerial.Add(1)), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// startHTTPSBackend serves root with git http-backend over TLS with a certificate for
// 127.0.0.1 signed by ca. With clientCA set, the server requires a client certificate that
// clientCA signed. maxVersion 0 is Go's default (TLS 1.3).
func startHTTPSBackend(tb testing.TB, root string, ca, clientCA *pki, maxVersion uint16) *httptest.Server {
	tb.Helper()
	certPEM, keyPEM := ca.issue(tb, "git.internal.example", false)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(httpBackendHandler(tb, root, "", ""))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12, MaxVersion: maxVersion}
	if clientCA != nil {
		pool := x509.NewCertPool()
		pool.AddCert(clientCA.cert)
		srv.TLS.ClientCAs = pool
		srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
	}
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	return srv
}

// wantTLSAuth checks that err is auth-failed and says why in its text and in its Detail.
func wantTLSAuth(tb testing.TB, what string, err error, frags ...string) {
	tb.Helper()
	if syncer.KindOf(err) != syncer.KindAuth {
		tb.Fatalf("%s: got %v (kind %q), want auth-failed", what, err, syncer.KindOf(err))
	}
	var e *syncer.Error
	if !errors.As(err, &e) {
		tb.Fatalf("%s: %v is not a *syncer.Error", what, err)
	}
	for _, f := range frags {
		if !strings.Contains(err.Error(), f) || !strings.Contains(e.Detail, f) {
			tb.Fatalf("%s: error %q / detail %q lacks %q", what, err, e.Detail, f)
		}
	}
	if strings.Contains(err.Error()+e.Detail, "PRIVATE KEY") {
		tb.Fatalf("%s: key material in %q", what, err)
	}
}

// Clone, sync and write-back over https:// against git http-backend behind a server signed
// by an internal CA: they work with the CA bundle, and without it every one of them is
// auth-failed with a tls-untrusted reason naming the certificate's subject and issuer.
func TestHTTPSInternalCA(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	gitRun(t, f.bare, "config", "http.receivepack", "true")
	ca := newPKI(t, "Example Internal CA")
	srv := startHTTPSBackend(t, filepath.Dir(f.bare), ca, nil, 0)
	opts := f.options()
	opts.URL = srv.URL + "/remote.git"
	if !strings.HasPrefix(opts.URL, "https://127.0.0.1:") {
		t.Fatalf("server URL %s", opts.URL)
	}
	untrusted := []string{"tls-untrusted", `subject "CN=git.internal.example"`, `issuer "CN=Example Internal CA,O=Example Corp"`}

	// clone without the CA
	_, err := syncer.Open(ctxT(t), opts)
	wantTLSAuth(t, "clone without the CA", err, untrusted...)
	t.Logf("clone without the CA: %v", err)

	// clone, sync (fast-forward) and write-back with it
	withCA := opts
	withCA.TLS = syncer.TLS{CABundle: ca.certPEM}
	r := f.open(withCA)
	if r.Head() != f.tip() {
		t.Fatalf("head %s, want %s", r.Head(), f.tip())
	}
	tip := f.push("instances/a.xml", "<instance name=\"a\" version=\"2\"/>\n", "a v2")
	res, err := r.Sync(ctxT(t), r.Head())
	if err != nil || res.Head != tip || res.State != syncer.StateBehind {
		t.Fatalf("sync: %+v, %v; want behind (fast-forwarded) to %s", res, err, tip)
	}
	out, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/b.xml", "version", "1", "2")}, 3)
	if err != nil {
		t.Fatalf("write-back: %v", err)
	}
	wantStatuses(t, out, syncer.OutcomeLanded)
	if got := f.tip(); got != out[0].Commit {
		t.Fatalf("remote at %s, want the landed commit %s", got, out[0].Commit)
	}
	checkHealthy(t, f.dir, f.tip())
	_ = r.Close()

	// the same checkout without the CA: push and fetch both refuse the server
	known := f.tip()
	r = f.open(opts)
	out, err = r.WriteBack(ctxT(t), []syncer.Change{change("c2", "instances/b.xml", "version", "2", "3")}, 3)
	wantTLSAuth(t, "push without the CA", err, untrusted...)
	wantStatuses(t, out, syncer.OutcomePending)
	if out[0].Attempts != 1 {
		t.Fatalf("push without the CA was tried %d times; auth-failed is not retried", out[0].Attempts)
	}
	f.humanPush("instances/a.xml", "<instance name=\"a\" version=\"3\"/>\n", "a v3")
	res, err = r.Sync(ctxT(t), known)
	wantTLSAuth(t, "sync without the CA", err, untrusted...)
	if res.State != syncer.StateAuth {
		t.Fatalf("sync without the CA: state %q, want auth", res.State)
	}
	_ = r.Close()

	// with the CA again, the fetch works; a broken checkout re-clones over https
	r = f.open(withCA)
	res, err = r.Sync(ctxT(t), known)
	if err != nil || res.Upstream != f.tip() {
		t.Fatalf("sync with the CA: %+v, %v; want upstream %s", res, err, f.tip())
	}
	_ = r.Close()
	cutPacks(t, f.dir, func(n int64) int64 { return n / 2 })
	r = f.open(withCA)
	if n := len(movedAside(t, f.dir)); n != 1 {
		t.Fatalf("moved-aside checkouts: got %d, want 1 (Open did not re-clone)", n)
	}
	checkHealthy(t, f.dir, f.tip())
	_ = r.Close()

	// and a broken checkout without the CA: the re-clone fails, and says why
	cutPacks(t, f.dir, func(n int64) int64 { return n / 2 })
	_, err = syncer.Open(ctxT(t), opts)
	if syncer.KindOf(err) != syncer.KindCorrupt || !strings.Contains(err.Error(), "tls-untrusted") {
		t.Fatalf("re-clone without the CA: got %v, want repo-corrupt saying tls-untrusted", err)
	}
}

// A server that requires a client certificate: it works with the certificate and key, and
// without them (or with one the server does not trust) it is auth-failed and says so.
func TestHTTPSClientCertificate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		maxVersion uint16
	}{{"tls1.3", 0}, {"tls1.2", tls.VersionTLS12}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			gitRun(t, f.bare, "config", "http.receivepack", "true")
			ca := newPKI(t, "Example Internal CA")
			clientCA := newPKI(t, "Example Client CA")
			forger := newPKI(t, "Forger CA")
			srv := startHTTPSBackend(t, filepath.Dir(f.bare), ca, clientCA, tc.maxVersion)
			opts := f.options()
			opts.URL = srv.URL + "/remote.git"
			opts.TLS = syncer.TLS{CABundle: ca.certPEM}

			_, err := syncer.Open(ctxT(t), opts)
			wantTLSAuth(t, "clone without a client certificate", err, "tls-client-cert", "client certificate and we have none")
			t.Logf("clone without a client certificate: %v", err)

			forged := opts
			forged.TLS.ClientCert, forged.TLS.ClientKey = forger.issue(t, "dep01.fra1", true)
			_, err = syncer.Open(ctxT(t), forged)
			wantTLSAuth(t, "clone with an untrusted client certificate", err, `our client certificate (subject "CN=dep01.fra1")`)
			t.Logf("clone with an untrusted client certificate: %v", err)
			if strings.Contains(err.Error(), string(forged.TLS.ClientKey[40:80])) {
				t.Fatalf("error quotes the key: %v", err)
			}

			good := opts
			good.TLS.ClientCert, good.TLS.ClientKey = clientCA.issue(t, "dep01.fra1", true)
			r := f.open(good)
			tip := f.push("instances/a.xml", "<instance name=\"a\" version=\"2\"/>\n", "a v2")
			if res, err := r.Sync(ctxT(t), r.Head()); err != nil || res.Head != tip {
				t.Fatalf("sync: %+v, %v", res, err)
			}
			out, err := r.WriteBack(ctxT(t), []syncer.Change{change("c1", "instances/b.xml", "version", "1", "2")}, 3)
			if err != nil {
				t.Fatalf("write-back: %v", err)
			}
			wantStatuses(t, out, syncer.OutcomeLanded)
			if f.tip() != out[0].Commit {
				t.Fatalf("remote at %s, want %s", f.tip(), out[0].Commit)
			}
			_ = r.Close()

			// the certificate is taken away: fetch and push say so
			r = f.open(opts)
			_, err = r.Sync(ctxT(t), r.Head())
			wantTLSAuth(t, "sync without a client certificate", err, "tls-client-cert")
			out, err = r.WriteBack(ctxT(t), []syncer.Change{change("c2", "instances/a.xml", "version", "2", "3")}, 3)
			wantTLSAuth(t, "push without a client certificate", err, "tls-client-cert")
			wantStatuses(t, out, syncer.OutcomePending)
		})
	}
}

// Settings go-git would fail on at every connection are refused at Open, without quoting
// the key.
func TestTLSOptionsChecked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ca := newPKI(t, "Example Internal CA")
	cert, key := ca.issue(t, "dep01", true)
	_, otherKey := ca.issue(t, "dep02", true)
	for _, tc := range []struct {
		name string
		tls  syncer.TLS
		want string
	}{
		{"no-pem-ca", syncer.TLS{CABundle: []byte("not a certificate")}, "no PEM certificate"},
		{"cert-only", syncer.TLS{ClientCert: cert}, "both a certificate and a key"},
		{"key-only", syncer.TLS{ClientKey: key}, "both a certificate and a key"},
		{"mismatch", syncer.TLS{ClientCert: cert, ClientKey: otherKey}, "does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := f.options()
			opts.TLS = tc.tls
			_, err := syncer.Open(ctxT(t), opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), string(otherKey[40:80])) || strings.Contains(err.Error(), string(key[40:80])) {
				t.Fatalf("error quotes the key: %v", err)
			}
		})
	}
}

// Syncs of a repo with TLS settings reuse one connection: go-git's per-session transport,
// left to itself, kept each sync's connection open for 90 s.
func TestHTTPSConnectionsAreReused(t *testing.T) {
	f := newFixture(t)
	ca := newPKI(t, "Example Internal CA")
	srv := startHTTPSBackend(t, filepath.Dir(f.bare), ca, nil, 0)
	opts := f.options()
	opts.URL = srv.URL + "/remote.git"
	opts.TLS = syncer.TLS{CABundle: ca.certPEM}
	r := f.open(opts)
	openFiles := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("no /proc/self/fd: %v", err)
		}
		return len(ents)
	}
	if _, err := r.Sync(ctxT(t), r.Head()); err != nil {
		t.Fatal(err)
	}
	before := openFiles()
	const syncs = 40
	for i := 0; i < syncs; i++ {
		if _, err := r.Sync(ctxT(t), r.Head()); err != nil {
			t.Fatal(err)
		}
	}
	if grew := openFiles() - before; grew > 6 {
		t.Fatalf("%d syncs left %d more open files: connections are not reused", syncs, grew)
	}
}
