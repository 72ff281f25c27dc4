package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/daemon"
)

// TestDeployChosenIDOverHTTP: a deployment POSTed twice with the same id
// is one deployment (202 then 200, the second answer saying it existed);
// POSTed with the same id and another request it is refused with 409
// naming the id; ids of the daemon's own form and malformed ones are
// refused with 400. Many requests at once with one id make one deployment.
func TestDeployChosenIDOverHTTP(t *testing.T) {
	d, err := daemon.New(daemon.Options{Host: "fra1-dep01", StateDir: t.TempDir(),
		Repos: []daemon.RepoConfig{{Name: "cc", URL: "file:///nonexistent"}}}) // not served: deployments stay queued
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	h := serveDaemon(t, d)
	post := func(body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, h.URL+"/v1/repos/cc/deployments", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("answer %s: %v", data, err)
		}
		return resp.StatusCode, out
	}
	body := `{"id":"r-7.fra1-dep01","select":"instances/*.xml","set":["/instance/app@version=2.0.0"],"fleet":"r-7","who":"alice"}`
	code, first := post(body)
	if code != http.StatusAccepted || first["id"] != "r-7.fra1-dep01" || first["existed"] != nil {
		t.Fatalf("first POST: %d %v, want 202 and deployment r-7.fra1-dep01", code, first)
	}
	// Who asks again is not what is asked: the same request.
	code, second := post(strings.Replace(body, "alice", "coordinator", 1))
	if code != http.StatusOK || second["id"] != "r-7.fra1-dep01" || second["existed"] != true {
		t.Fatalf("second POST: %d %v, want 200, the same deployment, existed", code, second)
	}
	code, conflict := post(strings.Replace(body, "2.0.0", "3.0.0", 1))
	if msg, _ := conflict["message"].(string); code != http.StatusConflict || conflict["kind"] != deployer.ECONFLICT || !strings.Contains(msg, "deployment r-7.fra1-dep01 exists with another request") {
		t.Fatalf("POST with another request: %d %v, want 409 naming the id", code, conflict)
	}
	for _, bad := range []string{"d000000000000001", "d42", ".", "..", "-x", "a/b", "a b", strings.Repeat("a", 129)} {
		code, out := post(`{"id":"` + bad + `","select":"instances/*.xml"}`)
		if code != http.StatusBadRequest || !strings.Contains(out["message"].(string), "deployment id") {
			t.Errorf("id %q: %d %v, want 400 about the deployment id", bad, code, out)
		}
	}

	// Racing requests with one id: one deployment, the others existed.
	c := api.NewRemoteClient(h.URL, "tok")
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for range 8 {
		wg.Go(func() {
			dep, err := c.Deploy(context.Background(), "cc", api.DeployRequest{ID: "race", Select: "instances/*.xml"})
			if err != nil {
				t.Error(err)
				return
			}
			if !dep.Existed {
				mu.Lock()
				created++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	all, err := c.Deployments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, dep := range all {
		ids = append(ids, dep.ID)
	}
	if created != 1 || len(all) != 2 {
		t.Fatalf("8 requests with id race: %d created, deployments %v; want 1 created and 2 deployments in all", created, ids)
	}
}
