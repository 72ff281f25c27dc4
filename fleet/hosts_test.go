package fleet_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/fleet"
)

const goodYAML = `# the fleet
hosts:
  - name: fra1-dep01
    datacenter: fra1
    url: https://fra1-dep01.example:8443
    token_file: tokens/fra1
  - {name: ams1-dep01, datacenter: ams1, url: "unix:///run/deployer/deployer.sock"}
`

func TestParseHosts(t *testing.T) {
	want := []fleet.Host{
		{Name: "fra1-dep01", Datacenter: "fra1", URL: "https://fra1-dep01.example:8443", TokenFile: "tokens/fra1"},
		{Name: "ams1-dep01", Datacenter: "ams1", URL: "unix:///run/deployer/deployer.sock"},
	}
	asJSON := "{\n\t\"hosts\": [\n\t\t{\"name\": \"fra1-dep01\", \"datacenter\": \"fra1\", \"url\": \"https://fra1-dep01.example:8443\", \"token_file\": \"tokens/fra1\"},\n" +
		"\t\t{\"name\": \"ams1-dep01\", \"datacenter\": \"ams1\", \"url\": \"unix:///run/deployer/deployer.sock\"}\n\t]\n}\n"
	for name, src := range map[string]string{"yaml": goodYAML, "json": asJSON} {
		t.Run(name, func(t *testing.T) {
			got, err := fleet.ParseHosts("hosts."+name, []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestParseHostsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []string // every problem, in order
	}{
		{"unknown key in a host names its line",
			"hosts:\n  - name: a\n    datacenter: x\n    url: unix:///a.sock\n    tokenfile: t\n",
			[]string{`hosts.yaml:5: unknown key "tokenfile" in a host (want name, datacenter, url, token_file, labels)`}},
		{"unknown top-level key",
			"hosts:\n  - {name: a, datacenter: x, url: \"unix:///a.sock\"}\nhost: b\n",
			[]string{`hosts.yaml:3: unknown key "host" (want hosts)`}},
		{"unknown key in JSON",
			"{\"hosts\": [\n  {\"name\": \"a\", \"datacenter\": \"x\", \"url\": \"unix:///a.sock\",\n   \"dc\": \"y\"}\n]}\n",
			[]string{`hosts.yaml:3: unknown key "dc" in a host`}},
		{"duplicate host names, both lines",
			"hosts:\n  - {name: a, datacenter: x, url: \"unix:///a.sock\"}\n  - {name: b, datacenter: x, url: \"unix:///b.sock\"}\n  - {name: a, datacenter: y, url: \"unix:///c.sock\"}\n",
			[]string{`hosts.yaml:4: host "a" is listed twice (first at line 2)`}},
		{"repeated key in a host",
			"hosts:\n  - name: a\n    name: b\n    datacenter: x\n    url: unix:///a.sock\n",
			[]string{`hosts.yaml:3: key "name" given twice (first at line 2)`}},
		{"missing fields and bad URLs, every one reported",
			"hosts:\n  - {datacenter: x, url: \"unix:///a.sock\"}\n  - {name: b, url: \"ftp://b\"}\n  - {name: c, datacenter: x, url: \"http://c:8080\"}\n  - {name: d, datacenter: x, url: \"unix://run/d.sock\"}\n  - {name: e, datacenter: x}\n",
			[]string{
				`hosts.yaml:2: host without a name`,
				`hosts.yaml:3: host "b" has no datacenter`,
				`hosts.yaml:3: host "b": url "ftp://b": want http://, https:// or unix:///path/to/socket`,
				`hosts.yaml:4: host "c": url "http://c:8080" needs token_file`,
				`hosts.yaml:5: host "d": url "unix://run/d.sock": want unix:///absolute/path/to/socket`,
				`hosts.yaml:6: host "e": no url`,
			}},
		{"not a list", "hosts: fra1\n", []string{`hosts.yaml:1: hosts: want a list of hosts`}},
		{"empty list", "hosts: []\n", []string{`hosts.yaml:1: no hosts listed`}},
		{"empty file", "", []string{`hosts.yaml:1: empty host list`}},
		{"a bare list is checked like the hosts: list", "- {name: a, url: \"unix:///a.sock\", dc: x}\n", []string{`hosts.yaml:1: unknown key "dc" in a host`}},
		{"a scalar at the top", "fra1\n", []string{`hosts.yaml:1: want a list of hosts, or a mapping with one key, hosts:`}},
		{"labels that are not labels", "hosts:\n  - {name: a, datacenter: x, url: \"unix:///a.sock\", labels: prod}\n", []string{`hosts.yaml:2: labels: want a mapping of labels or a list of tags`}},
		{"a value that is not a string", "hosts:\n  - name: [a, b]\n    datacenter: x\n    url: unix:///a.sock\n", []string{`hosts.yaml:2: name: want a string`}},
		{"syntax error", "hosts:\n  - name: a\n    url: \"unix:///a.sock\n", []string{`hosts.yaml:3: found unexpected end of stream`}},
		{"tab indentation", "hosts:\n\t- name: a\n", []string{`hosts.yaml:2: found character that cannot start any token`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fleet.ParseHosts("hosts.yaml", []byte(tc.src))
			var he *fleet.HostsError
			if !errors.As(err, &he) || !errors.Is(err, fleet.ErrInvalidHosts) {
				t.Fatalf("got error %v, want a *HostsError matching ErrInvalidHosts", err)
			}
			if len(he.Problems) != len(tc.want) {
				t.Fatalf("got problems %q, want %d like %q", he.Problems, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(he.Problems[i], w) {
					t.Errorf("problem %d: got %q, want it to start with %q", i, he.Problems[i], w)
				}
			}
		})
	}
}

func TestLoadFileResolvesTokenFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts.yaml")
	if err := os.WriteFile(path, []byte(goodYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	hosts, err := fleet.Load(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hosts[0].TokenFile, filepath.Join(dir, "tokens", "fra1"); got != want {
		t.Errorf("got token file %q, want %q", got, want)
	}
	if _, err := fleet.Load(context.Background(), filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got error %v for a missing file, want os.ErrNotExist", err)
	}
}

func TestLoadInventory(t *testing.T) {
	defer fleet.SetInventoryBackoff(fleet.SetInventoryBackoff(10 * time.Millisecond))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /clusters", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "application/json" {
			http.Error(w, "want JSON", http.StatusNotAcceptable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"hosts": [{"name": "fra1-dep01", "datacenter": "fra1", "url": "https://fra1-dep01:8443", "token_file": "fra1.token"},
 {"name": "ams1-dep01", "datacenter": "ams1", "url": "http://10.0.0.7:8080", "token_file": "ams1.token"}]}`))
	})
	mux.HandleFunc("GET /typo", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("{\"hosts\": [\n{\"name\": \"a\", \"datacentre\": \"x\", \"url\": \"unix:///a.sock\"}]}"))
	})
	mux.HandleFunc("GET /down", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "inventory database is down", http.StatusServiceUnavailable)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// An inventory URL names token files only inside --host-token-dir,
	// each sent only to the URL pinned beside it.
	tokens := t.TempDir()
	for name, url := range map[string]string{"fra1": "https://fra1-dep01:8443", "ams1": "http://10.0.0.7:8080"} {
		if err := os.WriteFile(filepath.Join(tokens, name+".url"), []byte(url+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hosts, err := fleet.Source{Location: srv.URL + "/clusters", HostTokenDir: tokens}.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 2 || hosts[1].Name != "ams1-dep01" || hosts[1].TokenFile != filepath.Join(tokens, "ams1.token") {
		t.Errorf("got %+v, want fra1-dep01 and ams1-dep01 with their token files", hosts)
	}

	_, err = fleet.Load(context.Background(), srv.URL+"/typo")
	if !errors.Is(err, fleet.ErrInvalidHosts) || !strings.Contains(err.Error(), srv.URL+`/typo:2: unknown key "datacentre"`) {
		t.Errorf("got error %v, want the unknown key with the URL and line", err)
	}
	_, err = fleet.Load(context.Background(), srv.URL+"/down")
	if !errors.Is(err, fleet.ErrInventory) || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "inventory database is down") {
		t.Errorf("got error %v, want ErrInventory with the status and body", err)
	}
	srv.Close()
	if _, err = fleet.Load(context.Background(), srv.URL+"/clusters"); !errors.Is(err, fleet.ErrInventory) {
		t.Errorf("got error %v from a closed server, want ErrInventory", err)
	}
}
