package demo

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
)

// actTLS: the same clusterconfig remote served over HTTPS by git
// http-backend with a certificate of an internal CA. A second host's daemon
// without the CA refuses the server (auth-failed, tls-untrusted, naming the
// certificate); with repos[].tls.ca_file it clones.
func (dm *demo) actTLS(ctx context.Context) error {
	dm.act(8, "the remote over HTTPS signed by an internal CA: refused without the CA, cloned with it")
	out, err := exec.CommandContext(ctx, "git", "--exec-path").Output()
	if err != nil {
		return fmt.Errorf("act 8: git --exec-path: %w", err)
	}
	caPEM, pair, err := demoPKI()
	if err != nil {
		return err
	}
	caFile := filepath.Join(dm.dir, "internal-ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		return err
	}
	srv := httptest.NewUnstartedServer(&cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(out)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + filepath.Dir(dm.remote), "GIT_HTTP_EXPORT_ALL=1"},
	})
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below is expected
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()
	url := srv.URL + "/" + filepath.Base(dm.remote)
	dm.say("git.internal serves %s at %s with a certificate of \"Demo Internal CA\".", dm.repo, url)

	dm.say("\nA second host, demo-dep02, tracks it without the CA:")
	ivs, err := dm.otherHost(ctx, url, "", func(ctx context.Context, c *api.Client) (bool, error) {
		ivs, err := c.Interventions(ctx, false)
		return err == nil && len(ivs) > 0 && ivs[0].Kind == string(deployer.KindAuthFailed), err
	})
	if err != nil {
		return fmt.Errorf("act 8: %w", err)
	}
	dm.Print.Intervention(dm.Out, ivs[0])
	if !strings.Contains(ivs[0].Evidence.Output, "tls-untrusted") || !strings.Contains(ivs[0].Evidence.Output, "Demo Internal CA") {
		return fmt.Errorf("act 8: want tls-untrusted naming the issuer, got %q", ivs[0].Evidence.Output)
	}
	dm.say("\nWith repos[].tls.ca_file: %s in its config:", caFile)
	if _, err := dm.otherHost(ctx, url, caFile, func(ctx context.Context, c *api.Client) (bool, error) {
		st, err := c.Status(ctx)
		return err == nil && len(st.Repos) == 1 && st.Repos[0].Deployed != "", err
	}); err != nil {
		return fmt.Errorf("act 8: %w", err)
	}
	dm.say("demo-dep02 cloned %s over HTTPS and adopted it; the CA is trusted for this repo only, not system-wide.", dm.repo)
	return nil
}

// otherHost runs a daemon for host demo-dep02 tracking url (with caFile when
// set) until done holds, then stops it; it returns the open interventions
// at that moment.
func (dm *demo) otherHost(ctx context.Context, url, caFile string, done func(context.Context, *api.Client) (bool, error)) ([]api.Intervention, error) {
	dir, err := os.MkdirTemp(dm.dir, "dep02-")
	if err != nil {
		return nil, err
	}
	socket := filepath.Join(dir, "d.sock")
	run, err := dm.Daemon("demo-dep02.yaml", daemonConfig{host: "demo-dep02", stateDir: filepath.Join(dir, "state"), socket: socket,
		repo: dm.repo, url: url, poll: "300ms", caFile: caFile}.yaml())
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = run(ctx, zerolog.Nop())
	}()
	defer func() { stop(); <-stopped }()
	c := api.NewUnixClient(socket)
	if err := dm.waitFor(ctx, "demo-dep02", 30*time.Second, func(ctx context.Context) (bool, error) { return done(ctx, c) }); err != nil {
		return nil, err
	}
	return c.Interventions(ctx, false)
}

// demoPKI makes an internal CA and a server certificate for 127.0.0.1
// signed by it: the CA's PEM and the server's key pair.
func demoPKI() ([]byte, tls.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Demo Internal CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "git.internal"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return caPEM, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
