package daemon

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkdns/zkdns/zkwatch"
)

// metrics are the daemon's own Prometheus metrics; the DNS server and the
// watcher register theirs on the same registry.
type metrics struct {
	instances      *instancesCollector
	reloads        *prometheus.CounterVec
	lastReloadOK   prometheus.Gauge
	eventToPublish prometheus.Histogram
	readToPublish  prometheus.Histogram
	reloadOK       prometheus.Counter
	reloadFail     prometheus.Counter
}

// newMetrics registers the daemon's metrics on reg. connected reports
// whether the watcher DNS is served from has its ZooKeeper session, for
// zkdns_zookeeper_connected, and switching whether a move to another
// ensemble waits for its first sync; nil counts as not.
func newMetrics(reg prometheus.Registerer, version string, connected, switching func() bool) (*metrics, error) {
	m := &metrics{
		instances: &instancesCollector{
			desc: prometheus.NewDesc("zkdns_service_instances",
				"Instances of each watched service as last seen in ZooKeeper, by health; only healthy ones are served.",
				[]string{"service", "health"}, nil),
			counts: map[string]instanceCount{},
		},
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zkdns_config_reloads_total",
			Help: "Config reloads (file change or SIGHUP), by result; a failed one keeps the running config.",
		}, []string{"result"}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "zkdns_config_last_reload_successful",
			Help: "1 if the last config reload was applied, 0 if it was rejected.",
		}),
		eventToPublish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "zkdns_zookeeper_event_to_publish_seconds",
			Help:    "Time from a ZooKeeper watch event arriving to the DNS answers reflecting it, including the reads it asked for.",
			Buckets: publishBuckets(),
		}),
		readToPublish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "zkdns_zookeeper_read_to_publish_seconds",
			Help:    "Time from the ZooKeeper reads behind a watch event returning to the DNS answers reflecting it: zkdns's own part of event_to_publish.",
			Buckets: publishBuckets(),
		}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "zkdns_build_info",
		Help:        "Always 1; the version label says which zkdns is running.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	buildInfo.Set(1)
	m.lastReloadOK.Set(1)
	// Read at scrape time from the served watcher alone: while zkdns moves
	// to another ensemble, the new watcher still connecting must not say
	// that zkdns is cut off, nor a retired one's late disconnection.
	zkConnected := flagGauge("zkdns_zookeeper_connected",
		"1 while the ZooKeeper session zkdns serves answers from is established, 0 while it is cut off (answers then come from the last known state).",
		connected)
	// A reload that names another ensemble is applied once that ensemble
	// has synced; one that cannot be reached or read keeps this at 1 for
	// as long as the config names it.
	zkSwitching := flagGauge("zkdns_zookeeper_ensemble_switch_pending",
		"1 while a reload's move to another ZooKeeper ensemble waits for the new ensemble's first full sync (answers come from the current one meanwhile), else 0.",
		switching)
	for _, c := range []prometheus.Collector{m.instances, m.reloads, m.lastReloadOK, m.eventToPublish, m.readToPublish, buildInfo, zkConnected, zkSwitching} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("daemon: register metrics: %w", err)
		}
	}
	m.reloadOK = m.reloads.WithLabelValues("success")
	m.reloadFail = m.reloads.WithLabelValues("failure")
	return m, nil
}

// flagGauge is a gauge read at scrape time: 1 while f reports true, 0
// otherwise or when f is nil.
func flagGauge(name, help string, f func() bool) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
		if f != nil && f() {
			return 1
		}
		return 0
	})
}

func (m *metrics) reloadSucceeded() {
	m.reloadOK.Inc()
	m.lastReloadOK.Set(1)
}

func (m *metrics) reloadFailed() {
	m.reloadFail.Inc()
	m.lastReloadOK.Set(0)
}

func (m *metrics) setInstances(s zkwatch.ServiceState) {
	healthy := healthyIn(s)
	c := instanceCount{healthy: healthy, unhealthy: len(s.Instances) - healthy}
	m.instances.mu.Lock()
	m.instances.counts[s.Name] = c
	m.instances.mu.Unlock()
}

func (m *metrics) forgetService(name string) {
	m.instances.mu.Lock()
	delete(m.instances.counts, name)
	m.instances.mu.Unlock()
}

// instancesCollector reports zkdns_service_instances from counts kept in
// a plain map and turned into metrics only when scraped. Stored gauge
// series would cost two labelled series per service (megabytes with
// 10,000 services) and a series lookup per change.
type instancesCollector struct {
	desc *prometheus.Desc

	mu     sync.Mutex
	counts map[string]instanceCount // by service name
}

type instanceCount struct{ healthy, unhealthy int }

func (c *instancesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *instancesCollector) Collect(ch chan<- prometheus.Metric) {
	type row struct {
		service string
		instanceCount
	}
	c.mu.Lock()
	rows := make([]row, 0, len(c.counts))
	for name, n := range c.counts {
		rows = append(rows, row{name, n})
	}
	c.mu.Unlock()
	// In the order the registry sorts a family's series into (by label
	// value, labels taken by name: health, then service), because sorting
	// input already in order is linear: with 10,000 services that takes
	// half off every scrape (go test -bench MetricsScrape).
	slices.SortFunc(rows, func(a, b row) int { return strings.Compare(a.service, b.service) })
	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(r.healthy), r.service, "healthy")
	}
	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(r.unhealthy), r.service, "unhealthy")
	}
}

// publishBuckets are the bounds of the event-to-publish histograms, in
// seconds. A change should be served within a few hundred microseconds of
// its event, so the buckets are fine below a millisecond, where a quantile
// read from doubling buckets could be off by half, and have bounds at
// 200 µs and 500 µs to compare with directly; above, they only need to
// tell a slow read from a stall.
func publishBuckets() []float64 {
	return []float64{
		25e-6, 50e-6, 75e-6, 100e-6, 125e-6, 150e-6, 200e-6, 250e-6, 300e-6, 400e-6, 500e-6, 650e-6, 800e-6,
		1e-3, 1.5e-3, 2e-3, 3e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1,
	}
}
