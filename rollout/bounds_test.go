package rollout_test

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/rollout"
)

// hostileHost runs h as host h1 on 127.0.0.1 with its token pinned, and a
// coordinator (call timeout d) that reaches it.
func hostileHost(t *testing.T, d time.Duration, h http.HandlerFunc) (*rollout.Coordinator, api.RolloutRequest) {
	t.Helper()
	st := openStore(t)
	dir := t.TempDir()
	srv := newAuthLog(t, h)
	write(t, filepath.Join(dir, "h1.token"), "tok\n")
	write(t, filepath.Join(dir, "h1.url"), srv.srv.URL+"\n")
	c := rollout.New(rollout.Options{Store: st, TokenDir: dir, PollFailures: 2, CallTimeout: d})
	(&fixture{st: st}).run(t, c)
	req := request("r-hostile")
	req.Hosts = []api.RolloutHost{{Name: "h1", Datacenter: "x", URL: srv.srv.URL, TokenFile: "h1.token"}}
	return c, req
}

// Attack: a host answered the POST of a deployment with 2000 x 1 MiB and
// the coordinator read it all (RSS 4 GB). An answer is read up to 4 MiB:
// the host fails, saying so.
func TestHostAnswerIsBounded(t *testing.T) {
	c, req := hostileHost(t, 10*time.Second, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte(`{"deployments":[]}`))
			return
		}
		_, _ = w.Write([]byte(`{"id":"`))
		chunk := []byte(strings.Repeat("a", 1<<20))
		for i := 0; i < 64; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	if _, err := c.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	r := waitEnd(t, c, "r-hostile")
	if h := r.Hosts[0]; h.State != "failed" || !strings.Contains(h.Error, "answered more than 4 MiB") {
		t.Errorf("host %s: %q, want failed: answered more than 4 MiB", h.State, h.Error)
	}
}

// Attack: a host that never answered left its wave running forever, and
// fleet cancel did not end the rollout. Every call has a deadline (a
// host whose calls time out is unreachable after the failed polls), and
// a cancel ends the calls in flight: the rollout ends within seconds.
func TestHungHostTimesOutAndCancelEndsTheRollout(t *testing.T) {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	c, req := hostileHost(t, 200*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	if _, err := c.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	r := waitEnd(t, c, "r-hostile")
	if h := r.Hosts[0]; h.State != "unreachable" || !strings.Contains(h.Error, "did not answer within 200ms") {
		t.Errorf("host %s: %q, want unreachable: did not answer", h.State, h.Error)
	}

	c, req = hostileHost(t, time.Hour, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	if _, err := c.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if _, err := c.Action(context.Background(), "r-hostile", "cancel", api.RolloutActionRequest{Who: "t"}); err != nil {
		t.Fatal(err)
	}
	r = waitEnd(t, c, "r-hostile")
	if r.State != api.RolloutCancelled || time.Since(start) > 5*time.Second {
		t.Errorf("state %s after %s, want cancelled within seconds", r.State, time.Since(start))
	}

	// a host that took the deployment and hangs when followed
	c, req = hostileHost(t, time.Hour, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/deployments":
			_, _ = w.Write([]byte(`{"deployments":[]}`))
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/deployments"):
			_, _ = w.Write([]byte(`{"id":"d000000000000001","state":"running"}`))
		default:
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}
	})
	if _, err := c.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	start = time.Now()
	if _, err := c.Action(context.Background(), "r-hostile", "cancel", api.RolloutActionRequest{Who: "t"}); err != nil {
		t.Fatal(err)
	}
	r = waitEnd(t, c, "r-hostile")
	if h := r.Hosts[0]; r.State != api.RolloutCancelled || time.Since(start) > 8*time.Second || h.State != "cancelled" || !strings.Contains(h.Error, "may still run there") {
		t.Errorf("state %s after %s, host %s %q, want cancelled within seconds", r.State, time.Since(start), h.State, h.Error)
	}
}

// Attack: an inventory host named '127.0.0.1:18199/steal?x=' with
// --gate-http 'http://{host}/health' had the gate GET the attacker's URL.
// Host names and datacenters are checked at submit (refused, escaped and
// cut in the message), and {host} and {dc} are path-escaped with the
// gate's host and port checked after the replacement.
func TestHostNamesCheckedAndGateURLsEscaped(t *testing.T) {
	f := newFixture(t)
	for _, bad := range []string{"127.0.0.1:18199/steal?x=", "h\x1b[31m", "h\u202egnp", "h\nx", strings.Repeat("a", 10000), ".h", "h:1"} {
		for _, field := range []string{"name", "datacenter"} {
			req := request("r-names")
			if field == "name" {
				req.Hosts[1].Name = bad
			} else {
				req.Hosts[1].Datacenter = bad
			}
			req.HTTP = &api.HTTPGate{URL: "http://{host}/health"}
			_, err := f.c.Submit(context.Background(), req)
			if api.ErrorKind(err) != api.KindInvalid || !strings.Contains(err.Error(), field) || strings.ContainsAny(err.Error(), "\x1b\n\u202e") || len(err.Error()) > 400 {
				t.Errorf("%s %q: %v, want refused, escaped and cut", field, bad, err)
			}
		}
	}
	for _, c := range []struct{ tmpl, host, want string }{
		{"http://{host}/health", "h1", "http://h1/health"},
		{"https://{host}.example:8443/{dc}/health", "h1", "https://h1.example:8443/fra/health"},
		{"http://gate/{host}/health", "a/b?x", "http://gate/a%2Fb%3Fx/health"},
	} {
		if got, err := rollout.GateURL(c.tmpl, c.host, "fra"); err != nil || got != c.want {
			t.Errorf("GateURL(%q, %q) = %q, %v; want %q", c.tmpl, c.host, got, err, c.want)
		}
	}
	for _, host := range []string{"127.0.0.1:18199/steal?x=", "evil.example:1@x", "a#b"} {
		if got, err := rollout.GateURL("http://{host}/health", host, "fra"); err == nil {
			t.Errorf("GateURL for host %q = %q, want refused", host, got)
		}
	}
}

// Attack: an inventory sent over TCP listed unix:// hosts and the
// coordinator deployed through local daemons' sockets with no token, its
// own included. A rollout submitted over TCP (net/http's local address of
// the request) may not name a unix:// host; over the unix socket it may.
func TestUnixHostsOnlyFromTheLocalSocket(t *testing.T) {
	f := newFixture(t)
	tcp := context.WithValue(context.Background(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443})
	for name, ctx := range map[string]context.Context{"tcp": tcp, "no listener": context.Background()} {
		req := request("r-unix")
		req.Hosts[1].URL = "UNIX:///run/deployer/deployer.sock"
		if _, err := f.c.SubmitRollout(ctx, req); api.ErrorKind(err) != api.KindInvalid || !strings.Contains(err.Error(), "submitted over TCP may not name a local socket") {
			t.Errorf("%s: %v, want refused", name, err)
		}
	}
	unix := context.WithValue(context.Background(), http.LocalAddrContextKey, &net.UnixAddr{Name: "/run/deployer/deployer.sock", Net: "unix"})
	if _, err := f.c.SubmitRollout(unix, request("r-unix")); err != nil {
		t.Errorf("over the socket: %v", err)
	}
}

// Attack: one host listed three times in a wave through aliases of its
// socket path (/h1/./d.sock, //h1/d.sock, /h1/../h1/d.sock) was deployed
// three times. The duplicate check compares canonical URLs.
func TestDuplicateHostsCompareCanonicalURLs(t *testing.T) {
	f := newFixture(t)
	for _, c := range [][2]string{
		{"unix:///h1/d.sock", "unix:///h1/./d.sock"},
		{"unix:///h1/d.sock", "unix:////h1/d.sock"},
		{"unix:///h1/d.sock", "unix:///h1/../h1/d.sock"},
		{"https://h1.example:8443/", "HTTPS://H1.Example.:8443/."},
		{"http://h1", "http://h1:80/"},
		{"https://h1/api", "https://h1:443/api/x/../"},
	} {
		if a, b := rollout.CanonicalURL(c[0]), rollout.CanonicalURL(c[1]); a != b {
			t.Errorf("%s is %s, %s is %s: want the same", c[0], a, c[1], b)
		}
		req := request("r-dup")
		req.Hosts[0].URL, req.Hosts[1].URL = c[0], c[1]
		if _, err := f.c.Submit(context.Background(), req); api.ErrorKind(err) != api.KindInvalid || !strings.Contains(err.Error(), "has the url of host") {
			t.Errorf("%s and %s: %v, want refused as one host twice", c[0], c[1], err)
		}
	}
	for _, c := range [][2]string{{"http://h1", "https://h1"}, {"http://h1:8080", "http://h1:8081"}, {"unix:///h1/d.sock", "unix:///h2/d.sock"}} {
		if a, b := rollout.CanonicalURL(c[0]), rollout.CanonicalURL(c[1]); a == b {
			t.Errorf("%s and %s both %s: want different", c[0], c[1], a)
		}
	}
}

// Attack: the coordinator recorded whatever deployment id a host answered
// ('../../../../tmp/PWNED') and took any repo name ('../../v1/rollouts').
// A host's answer with an id that is not a deployment id fails the host;
// a repo name is checked at submit as a daemon's config checks it.
func TestHostAnsweredIDsAndRepoNamesChecked(t *testing.T) {
	for _, answer := range []string{`{"id":"../../../../tmp/PWNED","state":"running"}`, `{"id":"","state":"running"}`} {
		c, req := hostileHost(t, 10*time.Second, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Path == "/v1/deployments" {
				_, _ = w.Write([]byte(`{"deployments":[]}`))
				return
			}
			_, _ = w.Write([]byte(answer))
		})
		if _, err := c.Submit(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		r := waitEnd(t, c, "r-hostile")
		if h := r.Hosts[0]; h.State != "failed" || !strings.Contains(h.Error, "not a deployment id: refused") || strings.Contains(h.Deployment, "PWNED") {
			t.Errorf("answer %s: host %s %q deployment %q, want failed: not a deployment id", answer, h.State, h.Error, h.Deployment)
		}
	}
	f := newFixture(t)
	for _, repo := range []string{"../../v1/rollouts", "..", "cc/x", "cc\x1b", "{host}/x"} {
		req := request("r-repo")
		req.Repo = repo
		if _, err := f.c.Submit(context.Background(), req); api.ErrorKind(err) != api.KindInvalid || !strings.Contains(err.Error(), "repo") || strings.Contains(err.Error(), "\x1b") {
			t.Errorf("repo %q: %v, want refused", repo, err)
		}
	}
	req := request("r-repo")
	req.Repo = "cc-{dc}.{host}"
	if _, err := f.c.Submit(context.Background(), req); err != nil {
		t.Errorf("repo with placeholders: %v", err)
	}
}

// Attack: who and reason took newlines, ANSI and U+202E into the Slack
// 'by:' line; a 10,000-character id came back whole in a 400. Who and
// reason are one clean, bounded line; an id in a message is cut.
func TestWhoReasonOneLineAndIDsCut(t *testing.T) {
	f := newFixture(t)
	req := request("r-who")
	req.Request.Who = "alice\nby: bob\x1b[2J\u202eevil" + strings.Repeat("w", 1000)
	req.Request.Reason = "fix\r\nspoofed line"
	r, err := f.c.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{r.Who, r.Request.Request.Who, r.Request.Request.Reason, r.Events[0].What} {
		if strings.ContainsAny(s, "\n\r\x1b\u202e") || len(s) > 400 {
			t.Errorf("%q: want one clean line, bounded", s)
		}
	}
	_, err = f.c.Action(context.Background(), "r-who", "pause", api.RolloutActionRequest{Who: "m\nallory", Reason: "x\u202ey"})
	if err == nil {
		r, _ = f.c.Get("r-who")
		if last := r.Events[len(r.Events)-1].What; strings.ContainsAny(last, "\n\u202e") {
			t.Errorf("pause event %q", last)
		}
	}
	long := strings.Repeat("x", 10000)
	for _, e := range []error{
		func() error {
			_, err := f.c.Submit(context.Background(), api.RolloutRequest{ID: long + "/"})
			return err
		}(),
		func() error {
			_, err := f.c.Action(context.Background(), long+"/", "pause", api.RolloutActionRequest{})
			return err
		}(),
		func() error {
			_, err := f.c.Action(context.Background(), "r-who", long, api.RolloutActionRequest{})
			return err
		}(),
	} {
		if e == nil || len(e.Error()) > 400 || !strings.Contains(e.Error(), "…") {
			t.Errorf("%.200v: want an error with the id cut", e)
		}
	}
}
