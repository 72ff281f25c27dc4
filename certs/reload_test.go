package certs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sre-tools/deployer/certs"
)

func writePair(t *testing.T, dir string, serial int64) (string, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "api"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	crt, key := filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	if err := os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return crt, key
}

// TestCertReloaderHostileFiles: a certificate path turned into a FIFO or a
// link to /dev/zero never blocks a handshake or eats memory: the pair in
// service stays, OnError says why (an attacker pass hung every TLS
// handshake with a FIFO and grew the daemon to 1.5 GB with /dev/zero).
func TestCertReloaderHostileFiles(t *testing.T) {
	dir := t.TempDir()
	crt, key := writePair(t, dir, 7)
	r, err := certs.NewCertReloader(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var errs []string
	r.OnError = func(err error) { mu.Lock(); errs = append(errs, err.Error()); mu.Unlock() }
	serial := func() int64 {
		done := make(chan int64, 1)
		go func() { done <- r.Certificate().Leaf.SerialNumber.Int64() }()
		select {
		case s := <-done:
			return s
		case <-time.After(3 * time.Second):
			t.Fatal("Certificate() blocked")
			return 0
		}
	}
	for _, hostile := range []string{"fifo", "/dev/zero"} {
		if err := os.Remove(crt); err != nil {
			t.Fatal(err)
		}
		if hostile == "fifo" {
			if err := syscall.Mkfifo(crt, 0o644); err != nil {
				t.Fatal(err)
			}
		} else if err := os.Symlink(hostile, crt); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond)
		if got := serial(); got != 7 {
			t.Fatalf("%s: serving serial %d, want the previous pair (7)", hostile, got)
		}
		time.Sleep(100 * time.Millisecond) // the reload runs beside the handshake
		serial()
	}
	mu.Lock()
	joined := strings.Join(errs, "\n")
	mu.Unlock()
	if !strings.Contains(joined, "not a regular file") {
		t.Errorf("OnError: want 'not a regular file', got %q", joined)
	}
	// A good pair rotated in place is served again.
	os.Remove(crt)
	crt2, _ := writePair(t, dir, 8)
	_ = crt2
	time.Sleep(1100 * time.Millisecond)
	serial()
	deadline := time.Now().Add(3 * time.Second)
	for serial() != 8 {
		if time.Now().After(deadline) {
			t.Fatal("the rotated pair was not served")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
