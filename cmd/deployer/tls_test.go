package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	stdlog "log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/certs"
	"github.com/sre-tools/deployer/daemon"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // its PEM
}

var serial int64 = 1000

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name, Organization: []string{"deployer tests"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, file: filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".pem")}
	writeFile(t, ca.file, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return ca
}

// issue writes a certificate for cn signed by ca, and its key, to
// dir/base.crt and dir/base.key; it returns the certificate.
func (ca *testCA) issue(t *testing.T, dir, base, cn string, client bool, validFor time.Duration) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(validFor), KeyUsage: x509.KeyUsageDigitalSignature}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, base+".key"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
	writeFile(t, filepath.Join(dir, base+".crt"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// servedSerial connects to addr trusting ca and returns the serial number
// of the certificate the server presents.
func servedSerial(t *testing.T, addr string, ca *testCA) *big.Int {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// TestAPIOverTLS runs a daemon whose TCP API is served over TLS with a
// client CA, from a host config file, and drives it with the CLI: a token
// over TLS, a client certificate named in client_names without a token,
// one not named (refused), one from another CA (refused), no --ca-file
// (tls-untrusted naming subject and issuer); the server certificate is
// rotated in place and served without a restart; a webhook is accepted
// over TLS; /metrics exports the certificate's expiry; check-config
// reports the certificates; no key material reaches the log or the output.
func TestAPIOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "deployer test CA")
	other := newTestCA(t, dir, "other CA")
	ca.issue(t, dir, "server", "fra1-prod-dep01", false, 90*24*time.Hour)
	ca.issue(t, dir, "coordinator", "fleet-coordinator", true, 90*24*time.Hour)
	ca.issue(t, dir, "intruder", "intruder", true, 90*24*time.Hour)
	other.issue(t, dir, "forged", "fleet-coordinator", true, 90*24*time.Hour)
	writeFile(t, filepath.Join(dir, "api-token"), "tok-123\n")
	writeFile(t, filepath.Join(dir, "webhook-secret"), "hook-secret\n")
	addr := freePort(t)
	cfgPath := filepath.Join(dir, "deployer.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`state_dir: %[1]s/state
listen:
  socket: %[1]s/api.sock
  http: %[2]s
  token_file: %[1]s/api-token
  webhook_secret_file: %[1]s/webhook-secret
  tls:
    cert_file: %[1]s/server.crt
    key_file: %[1]s/server.key
    client_ca_file: %[3]s
    client_names: [fleet-coordinator]
repos:
  - {name: cc, url: "file:///nonexistent", webhook_names: [sre/cc]}
notify:
  - {kind: webhook, url: "https://127.0.0.1:1/hook", ca_file: %[3]s}
`, dir, addr, ca.file))
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := zerolog.New(logs).Level(zerolog.DebugLevel)
	opts, err := daemonOpts(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	servers, _, err := serveAPI(cfg, d, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range servers {
			s.Close()
		}
	})
	remote := "https://" + addr
	var outputs strings.Builder
	cli := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		root := newRootCmd()
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetArgs(append([]string{"--client-config", filepath.Join(dir, "no-client.yaml"), "--remote", remote}, args...))
		writeFile(t, filepath.Join(dir, "no-client.yaml"), "{}\n")
		err := root.ExecuteContext(context.Background())
		outputs.WriteString(out.String() + errOut.String())
		if err != nil {
			outputs.WriteString(err.Error())
		}
		return out.String(), err
	}
	f := func(name string) string { return filepath.Join(dir, name) }

	if _, err := cli("--ca-file", ca.file, "--token-file", f("api-token"), "status"); err != nil {
		t.Errorf("token over TLS: %v", err)
	}
	_, err = cli("--token-file", f("api-token"), "status")
	if err == nil || !strings.Contains(err.Error(), "tls-untrusted") || !strings.Contains(err.Error(), "fra1-prod-dep01") || !strings.Contains(err.Error(), "deployer test CA") || !strings.Contains(err.Error(), "--ca-file") {
		t.Errorf("without --ca-file: got %v, want tls-untrusted naming subject, issuer and --ca-file", err)
	} else {
		t.Logf("without --ca-file: %v", err)
	}
	if _, err := cli("--ca-file", ca.file, "--cert-file", f("coordinator.crt"), "--key-file", f("coordinator.key"), "status"); err != nil {
		t.Errorf("client certificate in client_names, no token: %v", err)
	}
	_, err = cli("--ca-file", ca.file, "--cert-file", f("intruder.crt"), "--key-file", f("intruder.key"), "status")
	if api.ErrorKind(err) != api.KindUnauthorized || !strings.Contains(err.Error(), "intruder") {
		t.Errorf("client certificate not in client_names: got %v, want unauthorized naming it", err)
	} else {
		t.Logf("not in client_names: %v", err)
	}
	if _, err := cli("--ca-file", ca.file, "--cert-file", f("forged.crt"), "--key-file", f("forged.key"), "status"); err == nil {
		t.Error("a client certificate of another CA with an allowed name was let in")
	} else {
		t.Logf("another CA's certificate: %v", err)
	}

	// A client config file instead of flags, paths relative to it.
	writeFile(t, f("client.yaml"), "remote: "+remote+"\nca_file: "+filepath.Base(ca.file)+"\ncert_file: coordinator.crt\nkey_file: coordinator.key\n")
	{
		var out bytes.Buffer
		root := newRootCmd()
		root.SetOut(&out)
		root.SetErr(io.Discard)
		root.SetArgs([]string{"--client-config", f("client.yaml"), "runs"})
		if err := root.ExecuteContext(context.Background()); err != nil {
			t.Errorf("client config: %v", err)
		}
	}

	// Rotation in place: the new certificate is served without a restart.
	before := servedSerial(t, addr, ca)
	time.Sleep(10 * time.Millisecond)
	rotated := ca.issue(t, dir, "server", "fra1-prod-dep01", false, 20*24*time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := servedSerial(t, addr, ca)
		if got.Cmp(rotated.SerialNumber) == 0 {
			t.Logf("rotated: serial %s, then %s", before, got)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serving serial %s after rotation to %s", got, rotated.SerialNumber)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A webhook over TLS (signed, no token).
	body := []byte(`{"repo": "cc", "ref": "refs/heads/main"}`)
	mac := hmac.New(sha256.New, []byte("hook-secret"))
	mac.Write(body)
	hc, err := certs.ClientTLS{CAFile: ca.file}.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, remote+"/v1/webhooks/generic", bytes.NewReader(body))
	req.Header.Set("X-Deployer-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hookAnswer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(hookAnswer), "cc") {
		t.Errorf("webhook over TLS: %s %s, want 202 triggering cc", resp.Status, hookAnswer)
	}

	// /metrics: the certificate in service, and the client CA.
	resp, err = hc.Get(remote + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`deployer_tls_cert_expiry_seconds{use="api"} %s`, promFloat(rotated.NotAfter.Unix())),
		fmt.Sprintf(`deployer_tls_cert_expiry_seconds{use="api-client-ca"} %s`, promFloat(ca.cert.NotAfter.Unix())),
		fmt.Sprintf(`deployer_tls_cert_expiry_seconds{use="notify-webhook-ca"} %s`, promFloat(ca.cert.NotAfter.Unix())),
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// check-config: the rotated certificate expires within 30 days.
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetArgs([]string{"--config", cfgPath, "daemon", "--check-config"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("check-config: %v", err)
	}
	t.Logf("check-config:\n%s", out.String())
	if !strings.Contains(out.String(), "warning: listen.tls.cert_file (api): certificate \"CN=fra1-prod-dep01\" expires on") ||
		!strings.Contains(out.String(), "ok: listen.tls.client_ca_file") || !strings.Contains(out.String(), "ok (1 repo, 3 certificates)") {
		t.Errorf("check-config output is not what the docs show")
	}
	outputs.WriteString(out.String())

	// A key that does not match its certificate: an error naming the
	// files, never the key.
	ca.issue(t, dir, "other", "x", false, time.Hour)
	writeFile(t, f("mismatch.yaml"), strings.Replace(mustRead(t, cfgPath), "server.key", "other.key", 1))
	root = newRootCmd()
	root.SetOut(io.Discard)
	root.SetArgs([]string{"--config", f("mismatch.yaml"), "daemon", "--check-config"})
	err = root.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "server.crt with key") {
		t.Errorf("mismatched key: got %v", err)
	} else {
		t.Logf("mismatched key: %v", err)
		outputs.WriteString(err.Error())
	}

	// The fleet coordinator: an https inventory signed by the same CA,
	// listing the host without a token_file; the client certificate gets
	// it in.
	ca.issue(t, dir, "inventory", "inventory.internal", false, 90*24*time.Hour)
	invCert, err := tls.LoadX509KeyPair(f("inventory.crt"), f("inventory.key"))
	if err != nil {
		t.Fatal(err)
	}
	invL, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{invCert}})
	if err != nil {
		t.Fatal(err)
	}
	inv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"hosts": [{"name": "fra1-prod-dep01", "datacenter": "fra1", "url": %q}]}`, remote)
	}), ErrorLog: stdlogDiscard()}
	go inv.Serve(invL)
	defer inv.Close()
	fleetOut, err := cli("--ca-file", ca.file, "--cert-file", f("coordinator.crt"), "--key-file", f("coordinator.key"), "-o", "json",
		"fleet", "status", "f-none", "--fleet", "https://"+invL.Addr().String()+"/hosts")
	if !strings.Contains(fleetOut, `"not-started": 1`) || strings.Contains(fleetOut, "unreachable\": 1") {
		t.Errorf("fleet status over mTLS: %v\n%s", err, fleetOut)
	}
	_, err = cli("--cert-file", f("coordinator.crt"), "--key-file", f("coordinator.key"), "--inventory-ca-file", other.file,
		"fleet", "status", "f-none", "--fleet", "https://"+invL.Addr().String()+"/hosts")
	if err == nil || !strings.Contains(err.Error(), "tls-untrusted") {
		t.Errorf("inventory with the wrong CA: got %v, want tls-untrusted", err)
	}

	for _, name := range []string{"server.key", "coordinator.key", "intruder.key", "forged.key", "other.key", "inventory.key"} {
		key := mustRead(t, f(name))
		b64 := strings.Split(key, "\n")[1][:24]
		for what, text := range map[string]string{"log": logs.String(), "CLI output and errors": outputs.String(), "metrics": string(metrics)} {
			if strings.Contains(text, "PRIVATE KEY") || strings.Contains(text, b64) {
				t.Errorf("key material of %s in the %s", name, what)
			}
		}
	}
}

func stdlogDiscard() *stdlog.Logger { return stdlog.New(io.Discard, "", 0) }

// promFloat is how the Prometheus text format writes a Unix time.
func promFloat(v int64) string { return fmt.Sprintf("%g", float64(v)) }

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
