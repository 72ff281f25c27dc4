// Package contrib holds what runs next to the daemon rather than in it: a
// Grafana dashboard (grafana/deployer-dashboard.json) and Prometheus
// alerting rules with their unit tests (prometheus/deployer-rules.yml,
// prometheus/deployer-rules.test.yml). It has no Go code; its tests check
// the rules with promtool and that every series the dashboard and the
// rules query is one the daemon exports.
package contrib
