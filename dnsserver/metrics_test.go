package dnsserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metric names, as an operator sees them.
const (
	requestsTotal    = "zkdns_dns_requests_total"
	requestDuration  = "zkdns_dns_request_duration_seconds"
	truncatedTotal   = "zkdns_dns_truncated_total"
	malformedTotal   = "zkdns_dns_malformed_total"
	snapshotServices = "zkdns_dns_snapshot_services"
	snapshotSerial   = "zkdns_dns_snapshot_serial"
	deniedTotal      = "zkdns_dns_denied_total"
	forwardsTotal    = "zkdns_dns_forward_requests_total"
	forwardDuration  = "zkdns_dns_forward_duration_seconds"
	tcpConnections   = "zkdns_dns_tcp_connections"
	tcpShedTotal     = "zkdns_dns_tcp_connections_shed_total"
)

// requestSeries is how many label sets zkdns_dns_requests_total exports:
// 9 qtypes × 9 rcodes × 2 protos.
const requestSeries = 9 * 9 * 2

// newTestMetrics returns metrics registered on a registry of their own.
func newTestMetrics(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	return m, reg
}

// series gathers the family called name from reg, as label set → value.
// A label set is written "name=value,…" in label name order ("" when there
// are no labels); a counter or gauge gives its value, a histogram its
// sample count. A family that is missing fails the test.
func series(t *testing.T, reg prometheus.Gatherer, name string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		out := make(map[string]float64)
		for _, metric := range mf.GetMetric() {
			var labels []string
			for _, lp := range metric.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			sort.Strings(labels)
			key := strings.Join(labels, ",")
			switch {
			case metric.GetCounter() != nil:
				out[key] = metric.GetCounter().GetValue()
			case metric.GetGauge() != nil:
				out[key] = metric.GetGauge().GetValue()
			case metric.GetHistogram() != nil:
				out[key] = float64(metric.GetHistogram().GetSampleCount())
			default:
				t.Fatalf("%s: a metric of an unexpected type", name)
			}
		}
		return out
	}
	t.Fatalf("no metric family %s gathered", name)
	return nil
}

func requestKey(qtype, rcode, proto string) string {
	return "proto=" + proto + ",qtype=" + qtype + ",rcode=" + rcode
}

// sameSeries checks that got holds exactly the label sets of want with
// want's values, reading a label set missing from want as 0. With size
// above 0, got must hold that many label sets.
func sameSeries(t *testing.T, name string, got, want map[string]float64, size int) {
	t.Helper()
	for key, w := range want {
		if _, ok := got[key]; !ok {
			t.Errorf("%s{%s} not exported, want %v", name, key, w)
		}
	}
	for key, g := range got {
		if g != want[key] {
			t.Errorf("%s{%s} = %v, want %v", name, key, g, want[key])
		}
	}
	if size > 0 && len(got) != size {
		t.Errorf("%s exports %d label sets, want %d", name, len(got), size)
	}
}

// TestHandlerMetrics sends one query per case straight to a Handler and
// checks that exactly that query's label set was counted.
func TestHandlerMetrics(t *testing.T) {
	query := func(name string, qtype uint16) *dns.Msg { return new(dns.Msg).SetQuestion(name, qtype) }
	udp, tcp := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}

	chaos := query("version.bind.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	ednsV1 := query("local.", dns.TypeSOA)
	ednsV1.SetEdns0(1232, false)
	ednsV1.IsEdns0().SetVersion(1)
	notify := query("local.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	noQuestion := query("local.", dns.TypeSOA)
	noQuestion.Question = nil
	twoQuestions := query("payments.local.", dns.TypeAAAA)
	twoQuestions.Question = append(twoQuestions.Question, dns.Question{Name: "local.", Qtype: dns.TypeSOA, Qclass: dns.ClassINET})
	signed := query("payments.local.", dns.TypeSRV)
	signed.SetTsig("client-key.", dns.HmacSHA256, 300, 1_700_000_000)

	cases := []struct {
		name      string
		snap      *Snapshot // nil: before the first snapshot
		remote    net.Addr
		req       *dns.Msg
		qtype     string
		rcode     string
		proto     string
		truncated float64
	}{
		{name: "SRV", snap: serverSnapshot(), remote: udp, req: query("payments.local.", dns.TypeSRV), qtype: "SRV", rcode: "NOERROR", proto: "udp"},
		{name: "A over TCP", snap: serverSnapshot(), remote: tcp, req: query("payments.local.", dns.TypeA), qtype: "A", rcode: "NOERROR", proto: "tcp"},
		{name: "AAAA of a missing name", snap: serverSnapshot(), remote: udp, req: query("nope.local.", dns.TypeAAAA), qtype: "AAAA", rcode: "NXDOMAIN", proto: "udp"},
		{name: "TXT", snap: serverSnapshot(), remote: udp, req: query("pay-1.payments.local.", dns.TypeTXT), qtype: "TXT", rcode: "NOERROR", proto: "udp"},
		{name: "apex SOA", snap: serverSnapshot(), remote: udp, req: query("local.", dns.TypeSOA), qtype: "SOA", rcode: "NOERROR", proto: "udp"},
		{name: "apex NS", snap: serverSnapshot(), remote: tcp, req: query("local.", dns.TypeNS), qtype: "NS", rcode: "NOERROR", proto: "tcp"},
		{name: "ANY", snap: serverSnapshot(), remote: udp, req: query("payments.local.", dns.TypeANY), qtype: "ANY", rcode: "NOERROR", proto: "udp"},
		{name: "PTR outside the zone", snap: serverSnapshot(), remote: udp, req: query("1.2.0.192.in-addr.arpa.", dns.TypePTR), qtype: "PTR", rcode: "REFUSED", proto: "udp"},
		{name: "MX counts as other", snap: serverSnapshot(), remote: udp, req: query("payments.local.", dns.TypeMX), qtype: "other", rcode: "NOERROR", proto: "udp"},
		{name: "class CH", snap: serverSnapshot(), remote: udp, req: chaos, qtype: "TXT", rcode: "REFUSED", proto: "udp"},
		{name: "EDNS version 1", snap: serverSnapshot(), remote: udp, req: ednsV1, qtype: "SOA", rcode: "BADVERS", proto: "udp"},
		{name: "TSIG-signed", snap: serverSnapshot(), remote: tcp, req: signed, qtype: "SRV", rcode: "NOTAUTH", proto: "tcp"},
		{name: "NOTIFY", snap: serverSnapshot(), remote: tcp, req: notify, qtype: "SOA", rcode: "NOTIMP", proto: "tcp"},
		{name: "no question", snap: serverSnapshot(), remote: udp, req: noQuestion, qtype: "other", rcode: "FORMERR", proto: "udp"},
		{name: "two questions count the first", snap: serverSnapshot(), remote: tcp, req: twoQuestions, qtype: "AAAA", rcode: "FORMERR", proto: "tcp"},
		{name: "before the first snapshot", remote: udp, req: query("payments.local.", dns.TypeA), qtype: "A", rcode: "SERVFAIL", proto: "udp"},
		{name: "big SRV over UDP is truncated", snap: serverSnapshot(), remote: udp, req: query("big.local.", dns.TypeSRV), qtype: "SRV", rcode: "NOERROR", proto: "udp", truncated: 1},
		{name: "big SRV over TCP is whole", snap: serverSnapshot(), remote: tcp, req: query("big.local.", dns.TypeSRV), qtype: "SRV", rcode: "NOERROR", proto: "tcp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, reg := newTestMetrics(t)
			h := NewHandler(tc.snap, m)
			w := &recorder{remote: tc.remote}
			h.ServeDNS(w, tc.req)
			if w.reply == nil {
				t.Fatal("no reply written")
			}
			if got := dns.RcodeToString[w.reply.Rcode]; got != tc.rcode && !(tc.rcode == "BADVERS" && w.reply.Rcode == dns.RcodeBadVers) {
				t.Fatalf("reply rcode %s, the case expects %s", got, tc.rcode)
			}

			sameSeries(t, requestsTotal, series(t, reg, requestsTotal),
				map[string]float64{requestKey(tc.qtype, tc.rcode, tc.proto): 1}, requestSeries)
			sameSeries(t, requestDuration, series(t, reg, requestDuration),
				map[string]float64{"proto=" + tc.proto: 1}, 2)
			sameSeries(t, truncatedTotal, series(t, reg, truncatedTotal),
				map[string]float64{"": tc.truncated}, 1)
			sameSeries(t, malformedTotal, series(t, reg, malformedTotal), nil, 2)
		})
	}
}

// TestServeMetrics runs queries and broken packets through a real Serve
// over UDP and TCP, then checks every counter against what was sent.
func TestServeMetrics(t *testing.T) {
	m, reg := newTestMetrics(t)
	srv := serveHandler(t, "127.0.0.1:0", NewHandler(serverSnapshot(), m), false)

	twoQuestions := new(dns.Msg).SetQuestion("payments.local.", dns.TypeA)
	twoQuestions.Question = append(twoQuestions.Question, dns.Question{Name: "local.", Qtype: dns.TypeSOA, Qclass: dns.ClassINET})
	queries := []struct {
		name      string
		proto     string
		req       *dns.Msg
		qtype     string
		rcode     string
		truncated bool
	}{
		{name: "SRV over UDP", proto: "udp", req: new(dns.Msg).SetQuestion("payments.local.", dns.TypeSRV), qtype: "SRV", rcode: "NOERROR"},
		{name: "SRV over TCP", proto: "tcp", req: new(dns.Msg).SetQuestion("payments.local.", dns.TypeSRV), qtype: "SRV", rcode: "NOERROR"},
		{name: "A over UDP", proto: "udp", req: new(dns.Msg).SetQuestion("payments.local.", dns.TypeA), qtype: "A", rcode: "NOERROR"},
		{name: "A over UDP again", proto: "udp", req: new(dns.Msg).SetQuestion("PAYMENTS.local.", dns.TypeA), qtype: "A", rcode: "NOERROR"},
		{name: "missing AAAA over TCP", proto: "tcp", req: new(dns.Msg).SetQuestion("nope.local.", dns.TypeAAAA), qtype: "AAAA", rcode: "NXDOMAIN"},
		{name: "outside the zone over UDP", proto: "udp", req: new(dns.Msg).SetQuestion("example.com.", dns.TypeA), qtype: "A", rcode: "REFUSED"},
		{name: "MX over UDP", proto: "udp", req: new(dns.Msg).SetQuestion("payments.local.", dns.TypeMX), qtype: "other", rcode: "NOERROR"},
		// miekg/dns would refuse this itself over TCP, out of the handler's sight.
		{name: "two questions over TCP", proto: "tcp", req: twoQuestions, qtype: "A", rcode: "FORMERR"},
		{name: "big SRV over UDP", proto: "udp", req: new(dns.Msg).SetQuestion("big.local.", dns.TypeSRV), qtype: "SRV", rcode: "NOERROR", truncated: true},
		{name: "big SRV over UDP again", proto: "udp", req: new(dns.Msg).SetQuestion("big.local.", dns.TypeSRV), qtype: "SRV", rcode: "NOERROR", truncated: true},
		{name: "big SRV over TCP", proto: "tcp", req: new(dns.Msg).SetQuestion("big.local.", dns.TypeSRV), qtype: "SRV", rcode: "NOERROR"},
	}
	seeds := fuzzSeeds(t)
	malformed := []struct {
		name   string
		proto  string
		packet []byte
	}{
		{name: "pointer loop over UDP", proto: "udp", packet: seeds["pointer-loop"]},
		{name: "short header over UDP", proto: "udp", packet: seeds["short-header"]},
		{name: "garbage over UDP", proto: "udp", packet: seeds["garbage"]},
		{name: "pointer loop over TCP", proto: "tcp", packet: seeds["pointer-loop"]},
		{name: "short header over TCP", proto: "tcp", packet: seeds["short-header"]},
	}

	wantRequests := make(map[string]float64)
	wantDuration := make(map[string]float64)
	wantMalformed := make(map[string]float64)
	var wantTruncated float64
	for _, tc := range queries {
		t.Run(tc.name, func(t *testing.T) {
			c := &dns.Client{Net: tc.proto, Timeout: 5 * time.Second}
			reply, _, err := c.Exchange(tc.req, srv.addr)
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if reply.Truncated != tc.truncated {
				t.Fatalf("reply TC %v, the case expects %v", reply.Truncated, tc.truncated)
			}
		})
		wantRequests[requestKey(tc.qtype, tc.rcode, tc.proto)]++
		wantDuration["proto="+tc.proto]++
		if tc.truncated {
			wantTruncated++
		}
	}
	for _, tc := range malformed {
		t.Run(tc.name, func(t *testing.T) {
			// The apex SOA sent after the bad packet on the same socket
			// is answered only once the bad packet has been taken in, so
			// it is counted by the time Serve returns.
			sendThenProbe(t, tc.proto, srv.addr, tc.packet)
		})
		wantMalformed["proto="+tc.proto]++
		wantRequests[requestKey("SOA", "NOERROR", tc.proto)]++
		wantDuration["proto="+tc.proto]++
	}

	// Replies reach the client before the handler counts them; Serve
	// returns only when every query in hand is done.
	if err := srv.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	sameSeries(t, requestsTotal, series(t, reg, requestsTotal), wantRequests, requestSeries)
	sameSeries(t, requestDuration, series(t, reg, requestDuration), wantDuration, 2)
	sameSeries(t, truncatedTotal, series(t, reg, truncatedTotal), map[string]float64{"": wantTruncated}, 1)
	sameSeries(t, malformedTotal, series(t, reg, malformedTotal), wantMalformed, 2)
}

// sendThenProbe sends packet to addr as it is (framed with its length over
// TCP), then asks for the apex SOA on the same connection and waits for
// that answer, skipping any reply to packet.
func sendThenProbe(t *testing.T, proto, addr string, packet []byte) {
	t.Helper()
	conn, err := net.DialTimeout(proto, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if proto == "tcp" {
		packet = append(binary.BigEndian.AppendUint16(nil, uint16(len(packet))), packet...)
	}
	dc := &dns.Conn{Conn: conn}
	if _, err := conn.Write(packet); err != nil {
		t.Fatalf("send bad packet: %v", err)
	}
	probe := new(dns.Msg).SetQuestion("local.", dns.TypeSOA)
	probe.Id = 0xbeef
	if err := dc.WriteMsg(probe); err != nil {
		t.Fatalf("send probe: %v", err)
	}
	for range 3 {
		reply, err := dc.ReadMsg()
		if err != nil {
			var perr *dns.Error
			if errors.As(err, &perr) {
				continue // a reply to the bad packet that does not unpack either
			}
			t.Fatalf("read probe reply: %v", err)
		}
		if reply.Id == probe.Id {
			if reply.Rcode != dns.RcodeSuccess {
				t.Fatalf("probe answered %s, want NOERROR", dns.RcodeToString[reply.Rcode])
			}
			return
		}
	}
	t.Fatal("no answer to the probe")
}

func TestSnapshotMetrics(t *testing.T) {
	fix := fixture() // 6 services, serial 2
	next := fix.Apply(Update{Services: []Service{{Name: "extra", Instances: []Instance{inst("e1", "192.0.2.77")}}}})
	cases := []struct {
		name     string
		initial  *Snapshot
		publish  []*Snapshot
		services float64
		serial   float64
	}{
		{name: "no snapshot yet", services: 0, serial: 0},
		{name: "initial snapshot", initial: fix, services: 6, serial: 2},
		{name: "published snapshot", initial: fix, publish: []*Snapshot{next}, services: 7, serial: 3},
		{name: "published after none", publish: []*Snapshot{fix}, services: 6, serial: 2},
		{name: "nil published again", initial: fix, publish: []*Snapshot{next, nil}, services: 0, serial: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, reg := newTestMetrics(t)
			h := NewHandler(tc.initial, m)
			for _, s := range tc.publish {
				h.Publish(s)
			}
			sameSeries(t, snapshotServices, series(t, reg, snapshotServices), map[string]float64{"": tc.services}, 1)
			sameSeries(t, snapshotSerial, series(t, reg, snapshotSerial), map[string]float64{"": tc.serial}, 1)
		})
	}
}

func TestNewMetricsErrors(t *testing.T) {
	cases := []struct {
		name    string
		reg     func(t *testing.T) *prometheus.Registry // nil: a nil Registerer
		wantErr string
		already bool     // the error wraps prometheus.AlreadyRegisteredError
		keep    []string // the families the registry gathers afterwards
	}{
		{name: "nil registerer", wantErr: "nil registerer"},
		{name: "registered twice", reg: func(t *testing.T) *prometheus.Registry {
			_, reg := newTestMetrics(t)
			return reg
		}, wantErr: "register metrics", already: true, keep: []string{
			deniedTotal, forwardDuration, forwardsTotal, malformedTotal, requestDuration, requestsTotal,
			snapshotSerial, snapshotServices, tcpConnections, tcpShedTotal, truncatedTotal,
		}},
		{name: "last metric taken: the others are let go", reg: func(t *testing.T) *prometheus.Registry {
			reg := prometheus.NewRegistry()
			taken := prometheus.NewGauge(prometheus.GaugeOpts{Name: tcpShedTotal, Help: "someone else's"})
			if err := reg.Register(taken); err != nil {
				t.Fatal(err)
			}
			return reg
		}, wantErr: "register metrics", keep: []string{tcpShedTotal}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var reg *prometheus.Registry
			var err error
			if tc.reg == nil {
				_, err = NewMetrics(nil)
			} else {
				reg = tc.reg(t)
				_, err = NewMetrics(reg)
			}
			if err == nil || !strings.HasPrefix(err.Error(), "dnsserver: ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NewMetrics returned %v, want an error starting dnsserver: and containing %q", err, tc.wantErr)
			}
			if reg == nil {
				return
			}
			var are prometheus.AlreadyRegisteredError
			if got := errors.As(err, &are); got != tc.already {
				t.Errorf("error %v wraps prometheus.AlreadyRegisteredError: %v, want %v", err, got, tc.already)
			}
			families, gerr := reg.Gather()
			if gerr != nil {
				t.Fatal(gerr)
			}
			var names []string
			for _, mf := range families {
				names = append(names, mf.GetName())
			}
			if strings.Join(names, " ") != strings.Join(tc.keep, " ") {
				t.Errorf("registry gathers %v after the failure, want %v", names, tc.keep)
			}
		})
	}
}

// TestMetricsText checks that the metrics, written as /metrics serves
// them, parse back with the names, types and help an operator relies on.
func TestMetricsText(t *testing.T) {
	m, reg := newTestMetrics(t)
	h := NewHandler(fixture(), m)
	h.ServeDNS(&recorder{remote: &net.UDPAddr{}}, new(dns.Msg).SetQuestion("payments.local.", dns.TypeSRV))

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	enc := expfmt.NewEncoder(&text, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encode %s: %v", mf.GetName(), err)
		}
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	parsed, err := parser.TextToMetricFamilies(&text)
	if err != nil {
		t.Fatalf("metrics text does not parse: %v\n%s", err, text.String())
	}

	cases := []struct {
		name    string
		typ     string
		metrics int // label sets (for a histogram: per proto)
		labels  []string
	}{
		{name: requestsTotal, typ: "COUNTER", metrics: requestSeries, labels: []string{"proto", "qtype", "rcode"}},
		{name: requestDuration, typ: "HISTOGRAM", metrics: 2, labels: []string{"proto"}},
		{name: truncatedTotal, typ: "COUNTER", metrics: 1},
		{name: malformedTotal, typ: "COUNTER", metrics: 2, labels: []string{"proto"}},
		{name: snapshotServices, typ: "GAUGE", metrics: 1},
		{name: snapshotSerial, typ: "GAUGE", metrics: 1},
		{name: deniedTotal, typ: "COUNTER", metrics: 2, labels: []string{"proto"}},
		{name: forwardsTotal, typ: "COUNTER", metrics: 4, labels: []string{"result"}},
		{name: forwardDuration, typ: "HISTOGRAM", metrics: 1},
		{name: tcpConnections, typ: "GAUGE", metrics: 1},
		{name: tcpShedTotal, typ: "COUNTER", metrics: 2, labels: []string{"closed"}},
	}
	if len(parsed) != len(cases) {
		t.Errorf("%d metric families, want %d", len(parsed), len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mf, ok := parsed[tc.name]
			if !ok {
				t.Fatalf("%s missing from the text", tc.name)
			}
			if got := mf.GetType().String(); got != tc.typ {
				t.Errorf("type %s, want %s", got, tc.typ)
			}
			if mf.GetHelp() == "" {
				t.Error("no help text")
			}
			if got := len(mf.GetMetric()); got != tc.metrics {
				t.Errorf("%d label sets, want %d", got, tc.metrics)
			}
			for _, metric := range mf.GetMetric() {
				var names []string
				for _, lp := range metric.GetLabel() {
					names = append(names, lp.GetName())
				}
				if strings.Join(names, ",") != strings.Join(tc.labels, ",") {
					t.Fatalf("labels %v, want %v", names, tc.labels)
				}
			}
		})
	}
	if got := parsed[requestsTotal].GetMetric(); len(got) > 0 {
		var total float64
		for _, metric := range got {
			total += metric.GetCounter().GetValue()
		}
		if total != 1 {
			t.Errorf("requests in the text add up to %v, want 1", total)
		}
	}
	if got := parsed[snapshotServices].GetMetric(); len(got) == 1 && got[0].GetGauge().GetValue() != 6 {
		t.Errorf("%s in the text is %v, want 6", snapshotServices, got[0].GetGauge().GetValue())
	}
}

// TestMetricsLabels checks that each bucket's label is the name DNS tools
// print for the codes that fall in it, and that none is left empty.
func TestMetricsLabels(t *testing.T) {
	cases := []struct {
		name  string
		label string
		want  string
	}{
		{name: "qtype A", label: bucketQtype(dns.TypeA).label(), want: "A"},
		{name: "qtype AAAA", label: bucketQtype(dns.TypeAAAA).label(), want: "AAAA"},
		{name: "qtype SRV", label: bucketQtype(dns.TypeSRV).label(), want: "SRV"},
		{name: "qtype TXT", label: bucketQtype(dns.TypeTXT).label(), want: "TXT"},
		{name: "qtype SOA", label: bucketQtype(dns.TypeSOA).label(), want: "SOA"},
		{name: "qtype NS", label: bucketQtype(dns.TypeNS).label(), want: "NS"},
		{name: "qtype ANY", label: bucketQtype(dns.TypeANY).label(), want: "ANY"},
		{name: "qtype PTR", label: bucketQtype(dns.TypePTR).label(), want: "PTR"},
		{name: "qtype HTTPS", label: bucketQtype(dns.TypeHTTPS).label(), want: "other"},
		{name: "qtype AXFR", label: bucketQtype(dns.TypeAXFR).label(), want: "other"},
		{name: "qtype 65535", label: bucketQtype(65535).label(), want: "other"},
		{name: "rcode NOERROR", label: bucketRcode(dns.RcodeSuccess).label(), want: "NOERROR"},
		{name: "rcode FORMERR", label: bucketRcode(dns.RcodeFormatError).label(), want: "FORMERR"},
		{name: "rcode SERVFAIL", label: bucketRcode(dns.RcodeServerFailure).label(), want: "SERVFAIL"},
		{name: "rcode NXDOMAIN", label: bucketRcode(dns.RcodeNameError).label(), want: "NXDOMAIN"},
		{name: "rcode NOTIMP", label: bucketRcode(dns.RcodeNotImplemented).label(), want: "NOTIMP"},
		{name: "rcode REFUSED", label: bucketRcode(dns.RcodeRefused).label(), want: "REFUSED"},
		{name: "rcode BADVERS", label: bucketRcode(dns.RcodeBadVers).label(), want: "BADVERS"},
		{name: "rcode NOTAUTH", label: bucketRcode(dns.RcodeNotAuth).label(), want: "NOTAUTH"},
		{name: "rcode YXDOMAIN", label: bucketRcode(dns.RcodeYXDomain).label(), want: "other"},
		{name: "rcode BADCOOKIE", label: bucketRcode(dns.RcodeBadCookie).label(), want: "other"},
		{name: "rcode 4095", label: bucketRcode(4095).label(), want: "other"},
		{name: "proto udp", label: protocolOf(false).label(), want: "udp"},
		{name: "proto tcp", label: protocolOf(true).label(), want: "tcp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.label != tc.want {
				t.Errorf("label %q, want %q", tc.label, tc.want)
			}
		})
	}
}

// TestMetricsAllocs checks that recording a query costs no allocation,
// alone and as part of ServeDNS.
func TestMetricsAllocs(t *testing.T) {
	m, _ := newTestMetrics(t)
	snap := fixture()
	req := new(dns.Msg).SetQuestion("local.", dns.TypeSOA)
	w := &recorder{remote: &net.TCPAddr{}}
	withMetrics, without := NewHandler(snap, m), NewHandler(snap, nil)

	cases := []struct {
		name string
		run  func()
		want func() float64 // allocations expected per run
	}{
		{name: "record a query", run: func() {
			m.observeQuery(dns.TypeSRV, dns.RcodeBadVers, true, false, 42*time.Microsecond)
		}, want: func() float64 { return 0 }},
		{name: "record a malformed packet", run: func() { m.observeMalformed(true) }, want: func() float64 { return 0 }},
		{name: "record into nil metrics", run: func() {
			(*Metrics)(nil).observeQuery(dns.TypeA, dns.RcodeSuccess, false, true, time.Millisecond)
		}, want: func() float64 { return 0 }},
		{name: "ServeDNS allocates no more with metrics", run: func() { withMetrics.ServeDNS(w, req) },
			want: func() float64 { return testing.AllocsPerRun(200, func() { without.ServeDNS(w, req) }) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want()
			if got := testing.AllocsPerRun(200, tc.run); got != want {
				t.Errorf("%v allocations per run, want %v", got, want)
			}
		})
	}
}

// TestTruncatedCountsUDPOnly: TC over TCP comes only in a relayed reply, not a
// client asked to retry, so only UDP replies count as truncated.
func TestTruncatedCountsUDPOnly(t *testing.T) {
	cases := []struct {
		name      string
		truncated bool
		tcp       bool
		want      float64
	}{
		{name: "UDP with TC", truncated: true, want: 1},
		{name: "UDP without TC"},
		{name: "TCP with TC", truncated: true, tcp: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, reg := newTestMetrics(t)
			m.observeQuery(dns.TypeSRV, dns.RcodeSuccess, tc.truncated, tc.tcp, time.Millisecond)
			sameSeries(t, truncatedTotal, series(t, reg, truncatedTotal), map[string]float64{"": tc.want}, 1)
		})
	}
}
