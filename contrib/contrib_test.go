package contrib

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.yaml.in/yaml/v3"

	"github.com/sre-tools/deployer"
)

const (
	rulesFile     = "prometheus/deployer-rules.yml"
	rulesTestFile = "prometheus/deployer-rules.test.yml"
	dashboardFile = "grafana/deployer-dashboard.json"
)

// promtool finds promtool (Debian's prometheus package). Outside CI a
// missing one skips with a message; with CI_REQUIRE_PROMTOOL=1 (set by
// .ci/run, which installs it) it fails.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI_REQUIRE_PROMTOOL") == "1" {
			t.Fatalf("promtool is not installed and CI_REQUIRE_PROMTOOL=1: apt-get install prometheus")
		}
		t.Skip("promtool is not installed (apt-get install prometheus); skipping the promtool checks")
	}
	return p
}

func runPromtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool %s did not say SUCCESS:\n%s", strings.Join(args, " "), out)
	}
	return string(out)
}

// TestAlertRules: the rules pass promtool's checks and its unit tests.
func TestAlertRules(t *testing.T) {
	out := runPromtool(t, ".", "check", "rules", rulesFile)
	t.Log(strings.TrimSpace(out))
	out = runPromtool(t, "prometheus", "test", "rules", filepath.Base(rulesTestFile))
	t.Log(strings.TrimSpace(out))
	// Every alert has a unit test that expects it to fire.
	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		if !regexp.MustCompile(`(?s)alertname: ` + r.Alert + `\n\s+exp_alerts:\n\s+- exp_labels`).Match(tests) {
			t.Errorf("alert %s has no unit test in which it fires", r.Alert)
		}
	}
}

// TestDashboardQueriesParse: every dashboard query is valid PromQL, as
// promtool parses it once Grafana's variables are filled in.
func TestDashboardQueriesParse(t *testing.T) {
	exprs := dashboardExprs(t)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		e = strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*", "$repo", ".*").Replace(e)
		q, _ := json.Marshal(e)
		fmt.Fprintf(&b, "      - record: dashboard:query_%d\n        expr: %s\n", i, q)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard-rules.yml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runPromtool(t, dir, "check", "rules", "dashboard-rules.yml")
	if want := fmt.Sprintf("%d rules found", len(exprs)); !strings.Contains(out, want) {
		t.Errorf("promtool: %s, want %s", out, want)
	}
}

// TestDashboard: the JSON parses, has a uid, a data source variable used
// by every query (no data source baked in), and every panel has a query.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q", d.UID, d.Title)
	}
	if !slices.ContainsFunc(d.Templating.List, func(v variable) bool { return v.Name == "datasource" && v.Type == "datasource" }) {
		t.Error("no datasource variable")
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range append([]target{{Datasource: p.Datasource}}, p.Targets...) {
			if tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: data source %q, want ${datasource}", p.Title, tg.Datasource.UID)
			}
		}
	}
}

// TestEveryInterventionKindAlerts: each intervention kind the daemon has
// is matched by exactly one of the two intervention alerts' kind=~ regexps
// (a new kind must be placed in one of them).
func TestEveryInterventionKindAlerts(t *testing.T) {
	kindRe := regexp.MustCompile(`kind=~"([^"]+)"`)
	alerts := map[string]*regexp.Regexp{}
	for _, r := range loadRules(t) {
		if r.Alert != "DeployerInterventionBlocking" && r.Alert != "DeployerInterventionOpen" {
			continue
		}
		m := kindRe.FindStringSubmatch(r.Expr)
		if m == nil {
			t.Fatalf("%s has no kind=~ matcher: %s", r.Alert, r.Expr)
		}
		alerts[r.Alert] = regexp.MustCompile("^(?:" + m[1] + ")$") // PromQL regexps are anchored
	}
	if len(alerts) != 2 {
		t.Fatalf("found %d intervention alerts, want 2", len(alerts))
	}
	for _, k := range deployer.InterventionKinds {
		var in []string
		for name, re := range alerts {
			if re.MatchString(string(k)) {
				in = append(in, name)
			}
		}
		if len(in) != 1 {
			t.Errorf("intervention kind %s is matched by %v, want exactly one alert", k, in)
		}
	}
}

// metricName matches the series names our queries use: the daemon's
// deployer_*, the client library's go_* and process_*, and Prometheus's up.
var metricName = regexp.MustCompile(`\b((?:deployer|process|go)_[a-z0-9_]+|up)\b`)

// TestQueriedMetricsExist: every series the rules and the dashboard query
// is one the daemon exports (its Go source, or the Go and process
// collectors it registers), and the dashboard shows every deployer_ series.
func TestQueriedMetricsExist(t *testing.T) {
	exported := exportedMetrics(t)
	if len(exported) < 9 {
		t.Fatalf("found only %d deployer_ metrics in the Go source: %v", len(exported), exported)
	}
	known := map[string]bool{"up": true} // Prometheus's own, per target
	for _, n := range exported {
		known[n] = true
	}
	for _, n := range collectorMetrics(t) {
		known[n] = true
	}
	check := func(where, expr string) []string {
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s: %q queries no known series", where, expr)
		}
		for _, n := range names {
			base := n
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(n, suf); ok && known[b] {
					base = b
				}
			}
			if !known[base] {
				t.Errorf("%s: %s is not a series the daemon exports", where, n)
			}
		}
		return names
	}
	for _, r := range loadRules(t) {
		check(rulesFile+" "+r.Alert, r.Expr)
	}
	used := map[string]bool{}
	for _, e := range dashboardExprs(t) {
		for _, n := range check(dashboardFile, e) {
			used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")] = true
		}
	}
	for _, n := range exported {
		if !used[n] {
			t.Errorf("the dashboard does not show %s", n)
		}
	}
}

// exportedMetrics are the deployer_ metric names registered in the
// repository's Go source (Name: "..." in metric options, NewDesc("...")).
func exportedMetrics(t *testing.T) []string {
	t.Helper()
	re := regexp.MustCompile(`(?:Name:\s*|NewDesc\(\s*)"(deployer_[a-z0-9_]+)"`)
	var names []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "integration") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllSubmatch(data, -1) {
			if n := string(m[1]); !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// collectorMetrics are the names the Go and process collectors the daemon
// registers export on this machine.
func collectorMetrics(t *testing.T) []string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	return names
}

type rule struct {
	Alert  string `yaml:"alert"`
	Record string `yaml:"record"`
	Expr   string `yaml:"expr"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatal("no rules")
	}
	return rules
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	Datasource datasource `json:"datasource"`
	Expr       string     `json:"expr"`
}

type variable struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int        `json:"id"`
		Type       string     `json:"type"`
		Title      string     `json:"title"`
		Datasource datasource `json:"datasource"`
		Targets    []target   `json:"targets"`
	} `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

func dashboardExprs(t *testing.T) []string {
	t.Helper()
	var exprs []string
	for _, p := range loadDashboard(t).Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) == 0 {
		t.Fatal("no dashboard queries")
	}
	return exprs
}
