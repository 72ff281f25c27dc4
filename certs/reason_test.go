package certs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/certs"
)

// TestTLSReasonNamesTheServersCertificate: a server that sends its chain
// (leaf, intermediate) to a client that trusts none of it is named by its
// own certificate, not by the intermediate where the chain stopped (an
// outsider saw the issuing CA named as "the server's certificate").
func TestTLSReasonNamesTheServersCertificate(t *testing.T) {
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	issue := func(tmpl, parent *x509.Certificate, pub, signer any) *x509.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rootKey, midKey, leafKey := key(), key(), key()
	ca := func(serial int64, cn string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	root := issue(ca(1, "Root CA"), ca(1, "Root CA"), &rootKey.PublicKey, rootKey)
	mid := issue(ca(2, "Issuing CA 1"), root, &midKey.PublicKey, rootKey)
	leaf := issue(&x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "git2.internal.example"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, mid, &leafKey.PublicKey, midKey)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw, mid.Raw}, PrivateKey: leafKey}}}
	srv.Config.ErrorLog = nil
	srv.StartTLS()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}
	_, err := client.Get(srv.URL)
	if err == nil {
		t.Fatal("want a verification error")
	}
	reason, ok := certs.TLSReason(err, "pass --ca-file")
	if !ok {
		t.Fatalf("not a TLS reason: %v", err)
	}
	if !strings.Contains(reason, `subject "CN=git2.internal.example", issuer "CN=Issuing CA 1"`) {
		t.Errorf("want the server's own certificate named, got %s", reason)
	}
	if !strings.Contains(reason, `chain ends at "CN=Issuing CA 1", issued by "CN=Root CA"`) {
		t.Errorf("want where the chain stopped, got %s", reason)
	}
}
