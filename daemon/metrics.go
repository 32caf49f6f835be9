package daemon

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkdns/zkdns/zkwatch"
)

// metrics are the daemon's own Prometheus metrics; the DNS server and the
// watcher register theirs on the same registry.
type metrics struct {
	instances      *prometheus.GaugeVec
	reloads        *prometheus.CounterVec
	lastReloadOK   prometheus.Gauge
	eventToPublish prometheus.Histogram
	readToPublish  prometheus.Histogram
	reloadOK       prometheus.Counter
	reloadFail     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, version string) (*metrics, error) {
	m := &metrics{
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "zkdns_service_instances",
			Help: "Instances of each watched service as last seen in ZooKeeper, by health; only healthy ones are served.",
		}, []string{"service", "health"}),
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
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 16), // 25µs … ~0.8s
		}),
		readToPublish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "zkdns_zookeeper_read_to_publish_seconds",
			Help:    "Time from the ZooKeeper reads behind a watch event returning to the DNS answers reflecting it: zkdns's own part of event_to_publish.",
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 16),
		}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "zkdns_build_info",
		Help:        "Always 1; the version label says which zkdns is running.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	buildInfo.Set(1)
	m.lastReloadOK.Set(1)
	for _, c := range []prometheus.Collector{m.instances, m.reloads, m.lastReloadOK, m.eventToPublish, m.readToPublish, buildInfo} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("daemon: register metrics: %w", err)
		}
	}
	m.reloadOK = m.reloads.WithLabelValues("success")
	m.reloadFail = m.reloads.WithLabelValues("failure")
	return m, nil
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
	healthy := 0
	for _, in := range s.Instances {
		if in.Healthy {
			healthy++
		}
	}
	m.instances.WithLabelValues(s.Name, "healthy").Set(float64(healthy))
	m.instances.WithLabelValues(s.Name, "unhealthy").Set(float64(len(s.Instances) - healthy))
}

func (m *metrics) forgetService(name string) {
	// Two exact deletes, not a partial match, which would scan every
	// series of every service.
	m.instances.DeleteLabelValues(name, "healthy")
	m.instances.DeleteLabelValues(name, "unhealthy")
}
