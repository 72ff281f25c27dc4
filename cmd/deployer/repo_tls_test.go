package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// repos[].tls problems name the file, the line and what to do.
func TestRepoTLSConfigProblems(t *testing.T) {
	const head = "state_dir: /x\nrepos:\n  - name: cc\n"
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"not https", head + "    url: ssh://git@h/cc.git\n    tls:\n      ca_file: /etc/ca.pem\n",
			[]string{`deployer.yaml:5: repo "cc": tls applies to https:// urls only, and url is ssh://git@h/cc.git; remove the tls: block or use the server's https:// url`}},
		{"insecure without allow", head + "    url: https://h/cc.git\n    tls:\n      insecure_skip_verify: true\n",
			[]string{`deployer.yaml:6: repo "cc": tls.insecure_skip_verify accepts any server certificate`, "set tls.ca_file to the CA that signs the git server instead, or add allow_insecure: true to the same tls block"}},
		{"allow elsewhere does not count", head + "    url: https://h/cc.git\n    tls: {insecure_skip_verify: true}\n  - name: other\n    url: https://h/o.git\n    tls: {insecure_skip_verify: true, allow_insecure: true}\n",
			[]string{`deployer.yaml:5: repo "cc": tls.insecure_skip_verify`}},
		{"insecure and a CA", head + "    url: https://h/cc.git\n    tls:\n      insecure_skip_verify: true\n      allow_insecure: true\n      ca_file: /etc/ca.pem\n",
			[]string{`deployer.yaml:8: repo "cc": tls.ca_file is not used when tls.insecure_skip_verify is set`}},
		{"allow alone", head + "    url: https://h/cc.git\n    tls:\n      allow_insecure: true\n",
			[]string{`deployer.yaml:6: repo "cc": tls.allow_insecure only confirms insecure_skip_verify`}},
		{"cert without key", head + "    url: https://h/cc.git\n    tls:\n      cert_file: /etc/c.pem\n",
			[]string{`deployer.yaml:6: repo "cc": a client certificate needs both tls.cert_file and tls.key_file (or neither)`}},
		{"unknown key", head + "    url: https://h/cc.git\n    tls:\n      ca_bundle: /etc/ca.pem\n",
			[]string{`deployer.yaml:6: unknown key "ca_bundle" (in repos[0].tls)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig("deployer.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("got no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// The files of repos[].tls are read into the daemon's options; a bad one is
// an error naming the config file, the line, the key and the file, never
// the key's contents; insecure_skip_verify is warned about at every start.
func TestRepoTLSFiles(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "Example Internal CA")
	ca.issue(t, dir, "client", "dep01", true, 90*24*time.Hour)
	ca.issue(t, dir, "other", "dep02", true, 90*24*time.Hour)
	writeFile(t, filepath.Join(dir, "garbage.pem"), "not a certificate\n")
	f := func(n string) string { return filepath.Join(dir, n) }
	load := func(tlsBlock string) (*Config, error) {
		t.Helper()
		p := f("deployer.yaml")
		writeFile(t, p, fmt.Sprintf("state_dir: %s/state\nrepos:\n  - name: cc\n    url: https://git.internal/cc.git\n    tls:\n%s", dir, tlsBlock))
		return loadConfig(p)
	}

	cfg, err := load(fmt.Sprintf("      ca_file: %s\n      cert_file: %s\n      key_file: %s\n", ca.file, f("client.crt"), f("client.key")))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	opts, err := daemonOpts(cfg, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	rt := opts.Repos[0].TLS
	if string(rt.CABundle) != mustRead(t, ca.file) || string(rt.ClientCert) != mustRead(t, f("client.crt")) || string(rt.ClientKey) != mustRead(t, f("client.key")) || rt.InsecureSkipVerify {
		t.Fatalf("daemon options do not carry the TLS files")
	}
	before := opts.Repos[0].AuthSource
	if strings.Contains(before, "PRIVATE") || !strings.Contains(before, "tls.key_file") {
		t.Fatalf("authSource: %s", before)
	}
	// a key rotated in place (with its certificate) changes the auth source
	writeFile(t, f("client.crt"), mustRead(t, f("other.crt")))
	writeFile(t, f("client.key"), mustRead(t, f("other.key")))
	if authSource(cfg.Repos[0]) == before {
		t.Fatal("a client key rotated in place gives the same authSource")
	}

	for _, tc := range []struct {
		name, block string
		want        []string
	}{
		{"ca without certificates", fmt.Sprintf("      ca_file: %s\n", f("garbage.pem")),
			[]string{"deployer.yaml:5: repo \"cc\": tls.ca_file: CA file " + f("garbage.pem") + ": no PEM certificate in it; point it at the PEM bundle"}},
		{"missing ca", fmt.Sprintf("      ca_file: %s\n", f("nope.pem")),
			[]string{"deployer.yaml:5: repo \"cc\": tls.ca_file: CA file " + f("nope.pem") + ": no such file or directory"}},
		{"key of another certificate", fmt.Sprintf("      cert_file: %s\n      key_file: %s\n", ca.file, f("client.key")),
			[]string{"deployer.yaml:5: repo \"cc\": tls.cert_file/key_file: certificate " + ca.file + " with key " + f("client.key"), "give a PEM certificate and the private key it was issued for"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := load(tc.block)
			if err != nil {
				t.Fatal(err)
			}
			_, err = daemonOpts(cfg, zerolog.New(logs))
			if err == nil {
				t.Fatalf("got no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
			key := mustRead(t, f("client.key"))
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), strings.Split(key, "\n")[1][:24]) {
				t.Errorf("error quotes the key: %v", err)
			}
		})
	}

	cfg, err = load("      insecure_skip_verify: true\n      allow_insecure: true\n")
	if err != nil {
		t.Fatal(err)
	}
	logs = &syncBuffer{}
	opts, err = daemonOpts(cfg, zerolog.New(logs))
	if err != nil || !opts.Repos[0].TLS.InsecureSkipVerify {
		t.Fatalf("insecure with allow_insecure: %v, %+v", err, opts.Repos[0].TLS)
	}
	if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "insecure_skip_verify is set") {
		t.Fatalf("no warning for insecure_skip_verify: %s", logs.String())
	}
	_ = os.Remove(f("deployer.yaml"))
}
