package daemon

import "github.com/prometheus/client_golang/prometheus"

// RegisterCollector adds c to the registry that /metrics serves (the
// command line registers what only it knows, such as TLS certificate
// expiry).
func (d *Daemon) RegisterCollector(c prometheus.Collector) error { return d.metrics.reg.Register(c) }
