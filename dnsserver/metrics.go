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
	services  prometheus.Gauge
	serial    prometheus.Gauge
}

// durationBuckets span what a query costs here: tens of microseconds when
// answered from memory, up to the milliseconds a loaded host or a slow
// client write adds.
func durationBuckets() []float64 {
	return []float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3}
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
		Help:      "Time from a parsed DNS query reaching the handler to its reply being written, by transport.",
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
	for _, c := range []prometheus.Collector{requests, duration, truncated, malformed, services, serial} {
		if err := reg.Register(c); err != nil {
			for _, r := range registered {
				reg.Unregister(r)
			}
			return nil, fmt.Errorf("dnsserver: register metrics (a registry takes one set of DNS metrics): %w", err)
		}
		registered = append(registered, c)
	}

	m := &Metrics{truncated: truncated, services: services, serial: serial}
	for p := range protos {
		m.duration[p] = duration.WithLabelValues(p.label())
		m.malformed[p] = malformed.WithLabelValues(p.label())
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
	p := protocolOf(tcp)
	m.requests[bucketQtype(qtype)][bucketRcode(rcode)][p].Inc()
	m.duration[p].Observe(elapsed.Seconds())
	if truncated && !tcp {
		m.truncated.Inc()
	}
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
	}
	return rcodeOther
}

func (b rcodeBucket) label() string {
	return [rcodeBuckets]string{"NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP", "BADVERS", "other"}[b]
}
