package fleet_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sre-tools/deployer/fleet"
)

func writeSecret(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestInventoryBareList: an inventory URL answering a bare JSON list of
// hosts (no hosts: key) is read, labels included, and checked as strictly
// as the deployer's shape.
func TestInventoryBareList(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/hosts":
			_, _ = w.Write([]byte(`[
 {"name": "fra1-dep01", "datacenter": "fra1", "url": "https://fra1-dep01:8443", "labels": {"env": "prod", "tier": "canary"}},
 {"name": "ams1-dep01", "datacenter": "ams1", "url": "https://ams1-dep01:8443", "labels": ["env:prod", "tier=web"]}
]`))
		case "/typo":
			_, _ = w.Write([]byte("[\n {\"name\": \"a\", \"datacentre\": \"x\", \"url\": \"unix:///a.sock\"}\n]"))
		}
	}))
	defer srv.Close()
	hosts, err := fleet.Source{Location: srv.URL + "/hosts"}.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []fleet.Host{
		{Name: "fra1-dep01", Datacenter: "fra1", URL: "https://fra1-dep01:8443", Labels: map[string]string{"env": "prod", "tier": "canary"}},
		{Name: "ams1-dep01", Datacenter: "ams1", URL: "https://ams1-dep01:8443", Labels: map[string]string{"env": "prod", "tier": "web"}},
	}
	if !reflect.DeepEqual(hosts, want) {
		t.Errorf("got %+v\nwant %+v", hosts, want)
	}
	_, err = fleet.Source{Location: srv.URL + "/typo"}.Load(context.Background())
	if !errors.Is(err, fleet.ErrInvalidHosts) || !strings.Contains(err.Error(), srv.URL+`/typo:2: unknown key "datacentre"`) {
		t.Errorf("got %v, want the unknown key with its line", err)
	}
}

// inventoryAPI is a typical inventory service: its own JSON shape, behind
// a bearer token or basic auth.
const inventoryAPI = `{
  "apiVersion": "v2",
  "items": [
    {"hostname": "fra1-prod-dep01", "region": "eu-fra1", "api": "https://fra1-prod-dep01.sre.internal:8443",
     "tags": ["env:prod", "tier:canary"], "owner": "sre"},
    {"hostname": "fra1-prod-dep02", "region": "eu-fra1", "api": "https://fra1-prod-dep02.sre.internal:8443",
     "tags": ["env:prod", "tier:web"]},
    {"hostname": "ams1-stg-dep01", "region": "eu-ams1", "api": "https://ams1-stg-dep01.sre.internal:8443",
     "tags": ["env:staging", "tier:web"]}
  ],
  "next": null
}`

// TestInventoryMappedWithAuth: an inventory of its own shape is read
// through --inventory-map field paths, with a bearer token or basic auth
// from a file; a wrong or missing credential is a clear error that never
// holds the secret.
func TestInventoryMappedWithAuth(t *testing.T) {
	const token, password = "s3cr3t-inventory-token", "hunter2-basic"
	var sawAuth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAuth.Store(r.Header.Get("Authorization"))
		user, pass, basic := r.BasicAuth()
		okBasic := basic && user == "deployer" && pass == password
		if r.Header.Get("Authorization") != "Bearer "+token && !okBasic {
			http.Error(w, "denied for "+r.Header.Get("Authorization"), http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(inventoryAPI))
	}))
	defer srv.Close()
	m, err := fleet.ParseInventoryMap("hosts=.items, name=.hostname, url=.api, dc=.region, labels=.tags")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"fra1-prod-dep01 eu-fra1 https://fra1-prod-dep01.sre.internal:8443 map[env:prod tier:canary]",
		"fra1-prod-dep02 eu-fra1 https://fra1-prod-dep02.sre.internal:8443 map[env:prod tier:web]",
		"ams1-stg-dep01 eu-ams1 https://ams1-stg-dep01.sre.internal:8443 map[env:staging tier:web]"}
	for name, src := range map[string]fleet.Source{
		"bearer": {Location: srv.URL + "/v2/clusters", Map: &m, TokenFile: writeSecret(t, "token", token)},
		"basic":  {Location: srv.URL + "/v2/clusters", Map: &m, BasicAuthFile: writeSecret(t, "basic", "deployer:"+password)},
	} {
		t.Run(name, func(t *testing.T) {
			hosts, err := src.Load(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, h := range hosts {
				got = append(got, fmtHost(h))
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %q\nwant %q", got, want)
			}
		})
	}
	for name, src := range map[string]fleet.Source{
		"no credential":    {Location: srv.URL + "/v2/clusters", Map: &m},
		"wrong token":      {Location: srv.URL + "/v2/clusters", Map: &m, TokenFile: writeSecret(t, "bad", "not-the-token")},
		"wrong basic auth": {Location: srv.URL + "/v2/clusters", Map: &m, BasicAuthFile: writeSecret(t, "badbasic", "deployer:not-the-password")},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := src.Load(context.Background())
			if !errors.Is(err, fleet.ErrInventory) || !strings.Contains(err.Error(), "401 Unauthorized") || !strings.Contains(err.Error(), "--inventory-token-file") {
				t.Fatalf("got %v, want ErrInventory naming 401 and the flags", err)
			}
			for _, secret := range []string{"not-the-token", "not-the-password", "Bearer", "Basic"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error holds %q: %v", secret, err)
				}
			}
		})
	}
	// A map that points nowhere says where to point it.
	bad, _ := fleet.ParseInventoryMap("hosts=.clusters")
	_, err = fleet.Source{Location: srv.URL, Map: &bad, TokenFile: writeSecret(t, "t2", token)}.Load(context.Background())
	if !errors.Is(err, fleet.ErrInvalidHosts) || !strings.Contains(err.Error(), "no .clusters in the inventory") {
		t.Errorf("got %v, want no .clusters", err)
	}
	// A host without a mapped field is named with its line, and the paths used.
	noURL, _ := fleet.ParseInventoryMap("hosts=.items, name=.hostname, dc=.region")
	_, err = fleet.Source{Location: srv.URL, Map: &noURL, TokenFile: writeSecret(t, "t3", token)}.Load(context.Background())
	if !errors.Is(err, fleet.ErrInvalidHosts) || !strings.Contains(err.Error(), `:4: host "fra1-prod-dep01": no url`) || !strings.Contains(err.Error(), "url=.url") {
		t.Errorf("got %v, want the host without url at its line", err)
	}
}

func fmtHost(h fleet.Host) string {
	s := h.Name + " " + h.Datacenter + " " + h.URL + " map["
	var kv []string
	for _, k := range []string{"env", "tier"} {
		if v, ok := h.Labels[k]; ok {
			kv = append(kv, k+":"+v)
		}
	}
	return s + strings.Join(kv, " ") + "]"
}

func TestParseInventoryMapErrors(t *testing.T) {
	for in, want := range map[string]string{
		"hosts=items":             "a path starts with a dot",
		"hosts=.items, colour=.c": `unknown key "colour"`,
		"url":                     "want key=.path",
		"url=.a, url=.b":          "url given twice",
		"url=.a..b":               `field ""`,
		"":                        "is empty",
	} {
		if _, err := fleet.ParseInventoryMap(in); !errors.Is(err, fleet.ErrInvalidOptions) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", in, err, want)
		}
	}
}

// TestInventoryNeverAnswers: a server that accepts the connection and
// never answers fails the load within 15 s (the default 10 s timeout),
// with an error that says so.
func TestInventoryNeverAnswers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	start := time.Now()
	_, err = fleet.Source{Location: "http://" + l.Addr().String() + "/hosts"}.Load(context.Background())
	took := time.Since(start)
	if took > 15*time.Second {
		t.Errorf("took %s, want at most 15s", took)
	}
	if !errors.Is(err, fleet.ErrInventory) || !strings.Contains(err.Error(), "did not answer within 10s") {
		t.Errorf("got %v, want ErrInventory: did not answer within 10s", err)
	}
	t.Logf("after %s: %v", took.Round(time.Millisecond), err)
}

// TestInventoryRetries: a failure that may pass (503, a refused
// connection) is asked again; a 404 is not.
func TestInventoryRetries(t *testing.T) {
	defer fleet.SetInventoryBackoff(fleet.SetInventoryBackoff(10 * time.Millisecond))
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			calls.Add(1)
			http.NotFound(w, r)
			return
		}
		if calls.Add(1) == 1 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`[{"name": "a", "datacenter": "x", "url": "https://a:8443"}]`))
	}))
	defer srv.Close()
	hosts, err := fleet.Load(context.Background(), srv.URL+"/hosts")
	if err != nil || len(hosts) != 1 || calls.Load() != 2 {
		t.Errorf("got %v, %v after %d calls, want host a after 2", hosts, err, calls.Load())
	}
	calls.Store(0)
	_, err = fleet.Load(context.Background(), srv.URL+"/missing")
	if !errors.Is(err, fleet.ErrInventory) || calls.Load() != 1 || !strings.Contains(err.Error(), "404") {
		t.Errorf("got %v after %d calls, want a 404 asked once", err, calls.Load())
	}
}

// TestSelectByLabel: --hosts selects by labels, name and datacenter;
// a selection that matches nothing lists the labels there are.
func TestSelectByLabel(t *testing.T) {
	hosts := []fleet.Host{
		{Name: "fra1-dep01", Datacenter: "fra1", Labels: map[string]string{"env": "prod", "tier": "canary"}},
		{Name: "fra1-dep02", Datacenter: "fra1", Labels: map[string]string{"env": "prod", "tier": "web"}},
		{Name: "ams1-dep01", Datacenter: "ams1", Labels: map[string]string{"env": "prod"}},
		{Name: "ams1-stg01", Datacenter: "ams1", Labels: map[string]string{"env": "staging", "tier": "web"}},
	}
	for sel, want := range map[string][]string{
		"":                          {"fra1-dep01", "fra1-dep02", "ams1-dep01", "ams1-stg01"},
		"env=prod":                  {"fra1-dep01", "fra1-dep02", "ams1-dep01"},
		"env=prod,tier!=canary":     {"fra1-dep02", "ams1-dep01"},
		"env=prod, tier":            {"fra1-dep01", "fra1-dep02"},
		"!tier":                     {"ams1-dep01"},
		"dc=ams*":                   {"ams1-dep01", "ams1-stg01"},
		"name=fra1-*,tier=web":      {"fra1-dep02"},
		"env!=prod,datacenter=ams1": {"ams1-stg01"},
	} {
		s, err := fleet.ParseSelector(sel)
		if err != nil {
			t.Fatalf("%q: %v", sel, err)
		}
		got, err := s.Select(hosts)
		if err != nil || !reflect.DeepEqual(names(got), want) {
			t.Errorf("%q: got %v, %v, want %v", sel, names(got), err, want)
		}
	}
	s, _ := fleet.ParseSelector("env=prdo")
	_, err := s.Select(hosts)
	if !errors.Is(err, fleet.ErrInvalidOptions) || !strings.Contains(err.Error(), `--hosts "env=prdo" matches none of the 4 host(s); their labels: env=prod|staging, tier=canary|web`) {
		t.Errorf("got %v", err)
	}
	for _, bad := range []string{"=prod", "env=[", "a b=c"} {
		if _, err := fleet.ParseSelector(bad); !errors.Is(err, fleet.ErrInvalidOptions) {
			t.Errorf("%q: got %v, want ErrInvalidOptions", bad, err)
		}
	}
}

// TestDocumentedInventoryExample: the operations guide's inventory answer,
// read with its --inventory-map and --hosts, gives the host it says.
func TestDocumentedInventoryExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	_, rest, ok := strings.Cut(text, "A typical inventory API answer:\n\n```json\n")
	if !ok {
		t.Fatal("no inventory example in docs/operations.md")
	}
	answer, rest, _ := strings.Cut(rest, "```")
	flag := func(name string) string {
		_, after, ok := strings.Cut(rest, "--"+name+" '")
		if !ok {
			t.Fatalf("the example has no --%s", name)
		}
		v, _, _ := strings.Cut(after, "'")
		return v
	}
	m, err := fleet.ParseInventoryMap(flag("inventory-map"))
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := fleet.ParseMapped("inventory", []byte(answer), m)
	if err != nil {
		t.Fatal(err)
	}
	sel, err := fleet.ParseSelector(flag("hosts"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := sel.Select(hosts)
	if err != nil || len(got) != 1 || got[0].Name != "fra1-prod-dep02" || got[0].Datacenter != "eu-fra1" || !strings.Contains(rest, "(here only `fra1-prod-dep02`)") {
		t.Errorf("the example selects %+v (%v), the guide says fra1-prod-dep02", got, err)
	}
}

// TestInventoryURLPasswordHidden: a password written in the inventory URL
// is not in errors.
func TestInventoryURLPasswordHidden(t *testing.T) {
	defer fleet.SetInventoryBackoff(fleet.SetInventoryBackoff(time.Millisecond))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://ops:pa55word@", 1)
	_, err := fleet.Load(context.Background(), u+"/hosts")
	if err == nil || strings.Contains(err.Error(), "pa55word") || !strings.Contains(err.Error(), "502") {
		t.Errorf("got %v, want a 502 without the password", err)
	}
	if got := fleet.RedactURL(u); strings.Contains(got, "pa55word") {
		t.Errorf("RedactURL: %s", got)
	}
}
