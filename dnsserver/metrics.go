package dnsserver

import (
	"errors"
	"fmt"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the DNS server's Prometheus metrics. A nil *Metrics records
// nothing. It is safe for concurrent use.
//
// Every counter child is resolved once, in NewMetrics, so that recording a
// query is a few atomic adds: looking a child up by its label values takes
// a lock and allocates, which the query path must not do. The price is
// that every label combination is exported from the start, at zero.
type Metrics struct {
	requests  [qtypeBuckets][rcodeBuckets][protos]prometheus.Counter
	duration  [protos]prometheus.Observer
	truncated prometheus.Counter
	malformed [protos]prometheus.Counter
	denied    [protos]prometheus.Counter
	services  prometheus.Gauge
	serial    prometheus.Gauge

	forwards        [forwardResults]prometheus.Counter
	forwardDuration prometheus.Observer
	tcpConns        prometheus.Gauge
	tcpShed         [shedKinds]prometheus.Counter
}

// durationBuckets span what a query costs here: tens of microseconds when
// answered from memory, up to the milliseconds a loaded host or a slow
// client write adds.
func durationBuckets() []float64 {
	return []float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3}
}

// forwardBuckets span a forward: a millisecond to a resolver on the host
// or its cache, tens of milliseconds to the Internet, up to the timeout.
func forwardBuckets() []float64 {
	return []float64{1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 1.5, 2}
}

// NewMetrics creates the DNS metrics and registers them on reg. It fails
// when reg is nil or already holds metrics of the same names (one registry
// takes one set); nothing stays registered then.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("dnsserver: metrics: nil registerer; pass a registry such as prometheus.NewRegistry()")
	}
	const namespace, subsystem = "zkdns", "dns"

	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Subsystem: subsystem,
		Name:      "requests_total",
		Help:      "DNS queries answered, by query type, response code and transport.",
	}, []string{"qtype", "rcode", "proto"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace,
		Subsystem: subsystem,
		Name:      "request_duration_seconds",
		Help:      "Time from a parsed DNS query reaching the handler to its reply being written, by transport. UDP queries answered from packed replies are timed by batch, from the batch being read to its replies being sent.",
		Buckets:   durationBuckets(),
	}, []string{"proto"})
	truncated := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace,
		Subsystem: subsystem,
		Name:      "truncated_total",
		Help:      "UDP replies sent with the TC bit set because the answer did not fit the client's UDP size.",
	})
	malformed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Subsystem: subsystem,
		Name:      "malformed_total",
		Help:      "Packets that did not parse as DNS messages, answered FORMERR or dropped, by transport.",
	}, []string{"proto"})
	denied := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Subsystem: subsystem,
		Name:      "denied_total",
		Help:      "Queries from sources outside the allowed networks: dropped over UDP, answered REFUSED over TCP, by transport.",
	}, []string{"proto"})
	forwards := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Subsystem: subsystem,
		Name:      "forward_requests_total",
		Help:      "Queries for names outside the zone handed to forwarding, by result: answered (an upstream's reply relayed), failed (no upstream answered: SERVFAIL), busy (too many forwards in flight: SERVFAIL), loop (the query came from zkdns's own forwarding socket: REFUSED).",
	}, []string{"result"})
	forwardDuration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace,
		Subsystem: subsystem,
		Name:      "forward_duration_seconds",
		Help:      "Time from a query reaching the handler to the upstream's reply being relayed, or to SERVFAIL when no upstream answered.",
		Buckets:   forwardBuckets(),
	})
	tcpConns := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace,
		Subsystem: subsystem,
		Name:      "tcp_connections",
		Help:      "TCP connections open to the DNS server.",
	})
	tcpShed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Subsystem: subsystem,
		Name:      "tcp_connections_shed_total",
		Help:      "TCP connections closed because the connection cap was reached: the longest idle one to make room (closed=idle), or the new one when none was idle (closed=new).",
	}, []string{"closed"})
	services := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace,
		Subsystem: subsystem,
		Name:      "snapshot_services",
		Help:      "Services in the snapshot DNS queries are answered from.",
	})
	serial := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace,
		Subsystem: subsystem,
		Name:      "snapshot_serial",
		Help:      "SOA serial of the snapshot DNS queries are answered from; it grows by one with every published change.",
	})

	var registered []prometheus.Collector
	for _, c := range []prometheus.Collector{requests, duration, truncated, malformed, denied, services, serial, forwards, forwardDuration, tcpConns, tcpShed} {
		if err := reg.Register(c); err != nil {
			for _, r := range registered {
				reg.Unregister(r)
			}
			return nil, fmt.Errorf("dnsserver: register metrics (a registry takes one set of DNS metrics): %w", err)
		}
		registered = append(registered, c)
	}

	m := &Metrics{truncated: truncated, services: services, serial: serial, forwardDuration: forwardDuration, tcpConns: tcpConns}
	for r := range forwardResults {
		m.forwards[r] = forwards.WithLabelValues(r.label())
	}
	for k := range shedKinds {
		m.tcpShed[k] = tcpShed.WithLabelValues(k.label())
	}
	for p := range protos {
		m.duration[p] = duration.WithLabelValues(p.label())
		m.malformed[p] = malformed.WithLabelValues(p.label())
		m.denied[p] = denied.WithLabelValues(p.label())
		for q := range qtypeBuckets {
			for r := range rcodeBuckets {
				m.requests[q][r][p] = requests.WithLabelValues(q.label(), r.label(), p.label())
			}
		}
	}
	return m, nil
}

// observeQuery records one answered query: its type, the rcode and TC bit
// of the reply, the transport, and how long answering took. It takes no
// locks and does not allocate.
func (m *Metrics) observeQuery(qtype uint16, rcode int, truncated, tcp bool, elapsed time.Duration) {
	if m == nil {
		return
	}
	m.countQuery(qtype, rcode, truncated, tcp)
	m.observeDurations(tcp, elapsed, 1)
}

// observeDurations records the duration of n answered queries that took
// the same time: the fast-path replies of one UDP batch, which are
// counted as they are answered and sent together.
func (m *Metrics) observeDurations(tcp bool, elapsed time.Duration, n int) {
	if m == nil || n == 0 {
		return
	}
	d := m.duration[protocolOf(tcp)]
	for range n {
		d.Observe(elapsed.Seconds())
	}
}

// countQuery records an answered query without its duration: forwarded
// queries, whose time is the upstream's and is kept apart, and fast-path
// UDP queries, whose batch is timed as a whole (observeDurations).
func (m *Metrics) countQuery(qtype uint16, rcode int, truncated, tcp bool) {
	if m == nil {
		return
	}
	p := protocolOf(tcp)
	m.requests[bucketQtype(qtype)][bucketRcode(rcode)][p].Inc()
	if truncated && !tcp {
		m.truncated.Inc()
	}
}

// observeDenied records a query from a source the policy does not admit.
func (m *Metrics) observeDenied(tcp bool) {
	if m == nil {
		return
	}
	m.denied[protocolOf(tcp)].Inc()
}

// observeForward records the outcome of a query handed to forwarding and,
// when upstreams were asked, how long that took.
func (m *Metrics) observeForward(r forwardResult, elapsed time.Duration) {
	if m == nil {
		return
	}
	m.forwards[r].Inc()
	if r == forwardAnswered || r == forwardFailed {
		m.forwardDuration.Observe(elapsed.Seconds())
	}
}

// tcpOpened and tcpClosed track the TCP connections counted open.
func (m *Metrics) tcpOpened() {
	if m != nil {
		m.tcpConns.Inc()
	}
}

func (m *Metrics) tcpClosed() {
	if m != nil {
		m.tcpConns.Dec()
	}
}

// observeShed records a TCP connection closed to keep within the cap.
func (m *Metrics) observeShed(k shedKind) {
	if m == nil {
		return
	}
	m.tcpShed[k].Inc()
}

// observeMalformed records a packet that did not parse.
func (m *Metrics) observeMalformed(tcp bool) {
	if m == nil {
		return
	}
	m.malformed[protocolOf(tcp)].Inc()
}

// observeSnapshot records the snapshot now being served; nil is the empty
// state before the first one.
func (m *Metrics) observeSnapshot(s *Snapshot) {
	if m == nil {
		return
	}
	if s == nil {
		m.services.Set(0)
		m.serial.Set(0)
		return
	}
	m.services.Set(float64(s.Services()))
	m.serial.Set(float64(s.serial))
}

// protocol is the transport a query came over, the proto label.
type protocol uint8

const (
	protoUDP protocol = iota
	protoTCP
	protos // how many there are
)

func protocolOf(tcp bool) protocol {
	if tcp {
		return protoTCP
	}
	return protoUDP
}

func (p protocol) label() string { return [protos]string{"udp", "tcp"}[p] }

// qtypeBucket is the qtype label: the query types zkdns answers or is
// commonly asked, each on its own, and every other type together, so the
// label set stays bounded whatever clients send.
type qtypeBucket uint8

const (
	qtypeA qtypeBucket = iota
	qtypeAAAA
	qtypeSRV
	qtypeTXT
	qtypeSOA
	qtypeNS
	qtypeANY
	qtypePTR
	qtypeOther
	qtypeBuckets // how many there are
)

func bucketQtype(t uint16) qtypeBucket {
	switch t {
	case dns.TypeA:
		return qtypeA
	case dns.TypeAAAA:
		return qtypeAAAA
	case dns.TypeSRV:
		return qtypeSRV
	case dns.TypeTXT:
		return qtypeTXT
	case dns.TypeSOA:
		return qtypeSOA
	case dns.TypeNS:
		return qtypeNS
	case dns.TypeANY:
		return qtypeANY
	case dns.TypePTR:
		return qtypePTR
	}
	return qtypeOther
}

func (b qtypeBucket) label() string {
	return [qtypeBuckets]string{"A", "AAAA", "SRV", "TXT", "SOA", "NS", "ANY", "PTR", "other"}[b]
}

// rcodeBucket is the rcode label: every rcode Answer can give, and "other"
// so that a later code path cannot grow the label set.
type rcodeBucket uint8

const (
	rcodeNoError rcodeBucket = iota
	rcodeNXDomain
	rcodeServFail
	rcodeRefused
	rcodeFormErr
	rcodeNotImp
	rcodeBadVers
	rcodeNotAuth
	rcodeOther
	rcodeBuckets // how many there are
)

// bucketRcode takes the full 12-bit rcode, header and EDNS parts together,
// as dns.Msg keeps it.
func bucketRcode(rcode int) rcodeBucket {
	switch rcode {
	case dns.RcodeSuccess:
		return rcodeNoError
	case dns.RcodeNameError:
		return rcodeNXDomain
	case dns.RcodeServerFailure:
		return rcodeServFail
	case dns.RcodeRefused:
		return rcodeRefused
	case dns.RcodeFormatError:
		return rcodeFormErr
	case dns.RcodeNotImplemented:
		return rcodeNotImp
	case dns.RcodeBadVers:
		return rcodeBadVers
	case dns.RcodeNotAuth:
		return rcodeNotAuth
	}
	return rcodeOther
}

func (b rcodeBucket) label() string {
	return [rcodeBuckets]string{"NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP", "BADVERS", "NOTAUTH", "other"}[b]
}

// forwardResult is the result label of zkdns_dns_forward_requests_total.
type forwardResult uint8

const (
	forwardAnswered forwardResult = iota // an upstream's reply was relayed
	forwardFailed                        // no upstream answered: SERVFAIL
	forwardBusy                          // MaxForwards in flight: SERVFAIL
	forwardLoop                          // sent by our own forward: REFUSED
	forwardResults                       // how many there are
)

func (r forwardResult) label() string {
	return [forwardResults]string{"answered", "failed", "busy", "loop"}[r]
}

// shedKind is the closed label of zkdns_dns_tcp_connections_shed_total:
// which connection was closed to stay within the cap.
type shedKind uint8

const (
	shedIdle  shedKind = iota // the longest idle connection, for a new one
	shedNew                   // the new connection, as none was idle
	shedKinds                 // how many there are
)

func (k shedKind) label() string { return [shedKinds]string{"idle", "new"}[k] }
