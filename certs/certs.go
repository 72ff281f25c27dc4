// Package certs reads TLS certificates, keys and CA bundles from files
// (regular files of bounded size, reloaded when they change) and explains
// certificate verification failures to operators. It serves the API's
// listener and every client of ours that speaks TLS (CLI, fleet, notify).
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	deployer "github.com/sre-tools/deployer"
)

// ServerTLS is the TLS of the API's TCP listener.
type ServerTLS struct {
	CertFile, KeyFile string
	// ClientCAFile, when set, asks clients for a certificate and verifies
	// it against this PEM bundle (mutual TLS). A client whose verified
	// certificate names (CN or DNS SAN) one of ClientNames needs no bearer
	// token; clients without a certificate still may use the token.
	ClientCAFile string
	ClientNames  []string
}

// CertReloader serves a certificate and key pair from files and reloads
// them when either file changes (size or modification time, looked at most
// once a second), so a rotated certificate is served without a restart. A
// pair that does not load (a half-written file, a key that does not match)
// keeps the previous one in service; Err says why.
type CertReloader struct {
	certFile, keyFile string

	// OnError, when set, hears of a reload that failed (once per distinct
	// error): the previous pair stays in service, and a broken rotation
	// must not go unnoticed until the old certificate expires.
	OnError func(error)

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string // size, mtime, ctime and inode of both files when cert was loaded
	checked   time.Time
	err       error
	reloading bool
}

// NewCertReloader loads the pair once; an error names the files, never
// their contents.
func NewCertReloader(certFile, keyFile string) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile}
	if err := r.reload(time.Now()); err != nil {
		return nil, err
	}
	return r, nil
}

func fileStamp(paths ...string) string {
	s := ""
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			s += "missing;"
			continue
		}
		// ctime and inode too: a rotation that keeps size and mtime (cp -p,
		// rsync -t, tar) still changes them.
		var ino uint64
		var ctime int64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino, ctime = st.Ino, st.Ctim.Nano()
		}
		s += fmt.Sprintf("%d@%d/%d#%d;", fi.Size(), fi.ModTime().UnixNano(), ctime, ino)
	}
	return s
}

// maxPEMBytes caps a certificate, key or CA bundle file.
const maxPEMBytes = 4 << 20

// readPEMFile reads a certificate, key or CA file: a regular file (after
// symlinks) of at most maxPEMBytes, opened without blocking, so that a
// FIFO, a device or a huge file put in its place is refused at once.
func readPEMFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	if fi.Size() > maxPEMBytes {
		return nil, fmt.Errorf("%d bytes, over the %d a certificate file may have", fi.Size(), maxPEMBytes)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPEMBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPEMBytes {
		return nil, fmt.Errorf("over the %d bytes a certificate file may have", maxPEMBytes)
	}
	return b, nil
}

func (r *CertReloader) reload(now time.Time) error {
	stamp := fileStamp(r.certFile, r.keyFile)
	r.checked = now
	if r.cert != nil && stamp == r.stamp {
		return nil
	}
	c, err := LoadKeyPair(r.certFile, r.keyFile)
	if err != nil {
		r.err = err
		return err
	}
	r.cert, r.stamp, r.err = c, stamp, nil
	return nil
}

// refresh reloads the pair when its files changed, outside the lock: the
// TLS handshakes meanwhile get the pair in service, whatever the files are
// (a FIFO, a device, a huge file are refused by readPEMFile anyway).
func (r *CertReloader) refresh(now time.Time) {
	r.mu.Lock()
	if r.reloading || now.Sub(r.checked) < time.Second {
		r.mu.Unlock()
		return
	}
	r.reloading, r.checked = true, now
	served, old, prevErr := r.cert, r.stamp, r.err
	r.mu.Unlock()
	stamp := fileStamp(r.certFile, r.keyFile)
	var c *tls.Certificate
	var err error
	if served == nil || stamp != old {
		c, err = LoadKeyPair(r.certFile, r.keyFile)
	}
	r.mu.Lock()
	r.reloading = false
	switch {
	case err != nil:
		r.err = err
	case c != nil:
		r.cert, r.stamp, r.err = c, stamp, nil
	}
	r.mu.Unlock()
	if err != nil && r.OnError != nil && (prevErr == nil || prevErr.Error() != err.Error()) {
		r.OnError(err)
	}
}

// Certificate returns the pair in service, reloading it first when its
// files changed.
func (r *CertReloader) Certificate() *tls.Certificate {
	r.refresh(time.Now())
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert
}

// GetCertificate is tls.Config.GetCertificate.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.Certificate(), nil
}

// GetClientCertificate is tls.Config.GetClientCertificate.
func (r *CertReloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.Certificate(), nil
}

// Err is why the last reload failed (the previous pair stays in service),
// or nil.
func (r *CertReloader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// NotAfter is when the certificate in service expires.
func (r *CertReloader) NotAfter() time.Time {
	c := r.Certificate()
	if c == nil || c.Leaf == nil {
		return time.Time{}
	}
	return c.Leaf.NotAfter
}

// LoadKeyPair loads a PEM certificate (chain) and its private key. Errors
// name the files and what is wrong, never key material.
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := readPEMFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", certFile, pathErr(err))
	}
	keyPEM, err := readPEMFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", keyFile, pathErr(err))
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// crypto/tls's messages name PEM block types and mismatches,
		// never key bytes.
		return nil, fmt.Errorf("certificate %s with key %s: %v", certFile, keyFile, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate %s: %v", certFile, err)
		}
	}
	return &c, nil
}

func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// LoadCAPool returns the system's roots plus the PEM certificates of file
// (a CA bundle). It is an error for file to hold no certificate.
func LoadCAPool(file string) (*x509.CertPool, error) {
	data, err := readPEMFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA file %s: %w", file, pathErr(err))
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// LoadCAFile parses the certificates of a PEM bundle (for expiry checks).
func LoadCAFile(file string) ([]*x509.Certificate, error) {
	data, err := readPEMFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA file %s: %w", file, pathErr(err))
	}
	var out []*x509.Certificate
	for len(data) > 0 {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA file %s: %v", file, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", file)
	}
	return out, nil
}

// ServerTLSConfig returns the listener's tls.Config (TLS 1.2 at least,
// the certificate reloaded on change) and the reloader serving it.
func ServerTLSConfig(st ServerTLS) (*tls.Config, *CertReloader, error) {
	r, err := NewCertReloader(st.CertFile, st.KeyFile)
	if err != nil {
		return nil, nil, err
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
	if st.ClientCAFile != "" {
		cas, err := LoadCAFile(st.ClientCAFile)
		if err != nil {
			return nil, nil, err
		}
		pool := x509.NewCertPool() // only this CA: the system's roots do not vouch for clients
		for _, c := range cas {
			pool.AddCert(c)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return conf, r, nil
}

// ClientTLS is how a client reaches a TLS API: a CA bundle added to the
// system's roots, and a client certificate for mutual TLS.
type ClientTLS struct {
	CAFile, CertFile, KeyFile string
}

// IsZero reports whether nothing is configured.
func (c ClientTLS) IsZero() bool { return c == ClientTLS{} }

// Config returns the client tls.Config (TLS 1.2 at least); the client
// certificate is reloaded when its files change.
func (c ClientTLS) Config() (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pool, err := LoadCAPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		conf.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, fmt.Errorf("a client certificate needs both a certificate file and a key file")
	}
	if c.CertFile != "" {
		r, err := NewCertReloader(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, err
		}
		conf.GetClientCertificate = r.GetClientCertificate
	}
	return conf, nil
}

// HTTPClient returns an http.Client whose transport uses c (nil c.Config
// errors are returned).
func (c ClientTLS) HTTPClient() (*http.Client, error) {
	conf, err := c.Config()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = conf
	return &http.Client{Transport: tr}, nil
}

// TLSReason explains a certificate verification failure for operators:
// the certificate's subject and issuer and what to configure (hint names
// the CA-file setting of the caller). ok is false for other errors.
func TLSReason(err error, hint string) (reason string, ok bool) {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var he x509.HostnameError
	var ve *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ua):
		// The server's own certificate is the first it sent; ua.Cert is
		// where the chain stopped (an intermediate or a root it sent).
		var c *x509.Certificate
		if errors.As(err, &ve) && len(ve.UnverifiedCertificates) > 0 {
			c = ve.UnverifiedCertificates[0]
		}
		if c == nil {
			c = ua.Cert
		}
		if c == nil {
			return fmt.Sprintf("tls-untrusted: the server's certificate is not signed by a trusted CA; %s", hint), true
		}
		chain := ""
		if ua.Cert != nil && c != ua.Cert && !ua.Cert.Equal(c) {
			chain = fmt.Sprintf(" (its chain ends at %q, issued by %q)", deployer.Escape(ua.Cert.Subject.String()), deployer.Escape(ua.Cert.Issuer.String()))
		}
		return fmt.Sprintf("tls-untrusted: the server's certificate (subject %q, issuer %q)%s is not signed by a trusted CA; %s",
			deployer.Escape(c.Subject.String()), deployer.Escape(c.Issuer.String()), chain, hint), true
	case errors.As(err, &he):
		return fmt.Sprintf("tls: %v", he), true
	case errors.As(err, &ci):
		return fmt.Sprintf("tls: %v", ci), true
	}
	return "", false
}
