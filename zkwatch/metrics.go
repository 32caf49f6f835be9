package zkwatch

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the watcher's Prometheus metrics. A nil *Metrics records
// nothing, so tests and library users need not register any.
type Metrics struct {
	watchEvents   *prometheus.CounterVec
	requests      *prometheus.CounterVec
	decodeErrors  *prometheus.CounterVec
	aclDenials    *prometheus.CounterVec
	tlsFailures   prometheus.Counter
	expirations   prometheus.Counter
	reconnects    prometheus.Counter
	resyncs       prometheus.Counter
	eventsByKind  [4]prometheus.Counter // children, data, deleted, created
	requestsByOp  map[string]prometheus.Counter
	sessionEvents prometheus.Counter
}

// Request kinds counted in zkdns_zookeeper_requests_total{op}.
const (
	opChildrenWatch = "children_watch"
	opExistsWatch   = "exists_watch"
	opGetWatch      = "get_watch"
	opSync          = "sync"
	// Persistent recursive watches set, one per service path on each
	// connection (zkclient.PersistentWatches).
	opAddWatch = "add_watch"
	// Those taken off the path of a service no longer watched.
	opRemoveWatches = "remove_watches"
	// Reads of a path whose watch is still armed (see Watcher.armed).
	opChildren = "children"
	opGet      = "get"
)

// NewMetrics registers the watcher's metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		watchEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zkdns_zookeeper_watch_events_total",
			Help: "ZooKeeper watch events received, by type (children, data, deleted, created, session).",
		}, []string{"type"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zkdns_zookeeper_requests_total",
			Help: "Requests sent to ZooKeeper, by operation.",
		}, []string{"op"}),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zkdns_zookeeper_payload_decode_errors_total",
			Help: "Instance znodes skipped because their payload did not decode, by service.",
		}, []string{"service"}),
		aclDenials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zkdns_zookeeper_acl_denied_total",
			Help: "Service and instance paths a ZooKeeper ACL refused to zkdns (NoAuth), by service; each path counts once until it is readable again.",
		}, []string{"service"}),
		tlsFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zkdns_zookeeper_tls_handshake_failures_total",
			Help: "TLS handshakes with a ZooKeeper server that failed (wrong CA, server name or client certificate; not those that timed out); zkdns keeps retrying.",
		}),
		expirations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zkdns_zookeeper_session_expirations_total",
			Help: "ZooKeeper sessions of zkdns that expired (each is followed by a full resync).",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zkdns_zookeeper_reconnects_total",
			Help: "Times zkdns regained a ZooKeeper session after losing its connection.",
		}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "zkdns_zookeeper_full_syncs_total",
			Help: "Full syncs of every watched path: the first one, one per new session, and one after a reconnect whose watches ZooKeeper did not take back.",
		}),
	}
	for _, c := range []prometheus.Collector{m.watchEvents, m.requests, m.decodeErrors, m.aclDenials, m.tlsFailures, m.expirations, m.reconnects, m.resyncs} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				return nil, errors.New("zkwatch: metrics are already registered on this registry")
			}
			return nil, err
		}
	}
	m.eventsByKind = [4]prometheus.Counter{
		m.watchEvents.WithLabelValues("children"),
		m.watchEvents.WithLabelValues("data"),
		m.watchEvents.WithLabelValues("deleted"),
		m.watchEvents.WithLabelValues("created"),
	}
	m.sessionEvents = m.watchEvents.WithLabelValues("session")
	m.requestsByOp = map[string]prometheus.Counter{}
	for _, op := range []string{opChildrenWatch, opExistsWatch, opGetWatch, opSync, opChildren, opGet, opAddWatch, opRemoveWatches} {
		m.requestsByOp[op] = m.requests.WithLabelValues(op)
	}
	return m, nil
}

func (m *Metrics) event(kind eventKind) {
	if m == nil {
		return
	}
	switch kind {
	case evChildren:
		m.eventsByKind[0].Inc()
	case evData:
		m.eventsByKind[1].Inc()
	case evDeleted:
		m.eventsByKind[2].Inc()
	case evCreated:
		m.eventsByKind[3].Inc()
	}
}

func (m *Metrics) sessionEvent() {
	if m != nil {
		m.sessionEvents.Inc()
	}
}

func (m *Metrics) request(op string) { m.countRequests(op, 1) }

// countRequests counts n requests of op.
func (m *Metrics) countRequests(op string, n int) {
	if m != nil {
		m.requestsByOp[op].Add(float64(n))
	}
}

func (m *Metrics) decodeError(service string) {
	if m != nil {
		m.decodeErrors.WithLabelValues(service).Inc()
	}
}

func (m *Metrics) aclDenied(service string) {
	if m != nil {
		m.aclDenials.WithLabelValues(service).Inc()
	}
}

// forgetService drops the per-service series of a service no longer
// watched, so that [[discover]] roots whose services come and go do not
// export every name ever seen. If the name is watched again, its counts
// start afresh, as its znodes are then reported afresh.
func (m *Metrics) forgetService(service string) {
	if m != nil {
		m.decodeErrors.DeleteLabelValues(service)
		m.aclDenials.DeleteLabelValues(service)
	}
}

func (m *Metrics) tlsHandshakeFailed() {
	if m != nil {
		m.tlsFailures.Inc()
	}
}

func (m *Metrics) expired() {
	if m != nil {
		m.expirations.Inc()
	}
}

func (m *Metrics) reconnected() {
	if m != nil {
		m.reconnects.Inc()
	}
}

func (m *Metrics) fullSync() {
	if m != nil {
		m.resyncs.Inc()
	}
}
