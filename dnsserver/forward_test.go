package dnsserver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkdns/zkdns/internal/testutil"
)

// received is a query as an upstream in the test saw it.
type received struct {
	upstream string
	proto    string
	id       uint16
	edns     bool
	udpSize  uint16
}

// arrivals records, in order, the queries every upstream of a test
// received.
type arrivals struct {
	mu  sync.Mutex
	got []received
	// each receives a value per query, so a test can wait for one.
	each chan received
}

func newArrivals() *arrivals { return &arrivals{each: make(chan received, 256)} }

func (a *arrivals) add(r received) {
	a.mu.Lock()
	a.got = append(a.got, r)
	a.mu.Unlock()
	a.each <- r
}

func (a *arrivals) list() []received {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.got)
}

// wait waits for n more queries to arrive, for at most 10 s.
func (a *arrivals) wait(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-a.each:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d queries reached the upstreams within 10s", i, n)
		}
	}
}

// upstream is a resolver in the test, on UDP and TCP of one loopback port.
type upstream struct {
	addr string
	// sent holds the replies it wrote, packed, in order.
	mu   sync.Mutex
	sent [][]byte
}

func (u *upstream) replies() [][]byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.sent)
}

// reply builds the reply an upstream sends to r, or nil for none.
type reply func(r *dns.Msg, tcp bool) *dns.Msg

// startUpstream runs an upstream named name that records each query in
// log and answers with do, until the test ends.
func startUpstream(t *testing.T, name string, log *arrivals, do reply) *upstream {
	t.Helper()
	l, err := Listen([]string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{addr: l.Addrs()[0]}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		_, tcp := w.RemoteAddr().(*net.TCPAddr)
		rec := received{upstream: name, proto: "udp", id: r.Id}
		if tcp {
			rec.proto = "tcp"
		}
		if opt := r.IsEdns0(); opt != nil {
			rec.edns, rec.udpSize = true, opt.UDPSize()
		}
		log.add(rec)
		m := do(r, tcp)
		if m == nil {
			return
		}
		raw, err := m.Pack()
		if err != nil {
			t.Errorf("upstream %s: pack: %v", name, err)
			return
		}
		u.mu.Lock()
		u.sent = append(u.sent, raw)
		u.mu.Unlock()
		_, _ = w.Write(raw)
	})
	servers := []*dns.Server{
		{PacketConn: l.UDP[0], Handler: handler},
		{Listener: l.TCP[0], Handler: handler, ReadTimeout: 5 * time.Second},
	}
	for _, s := range servers {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go func() { _ = s.ActivateAndServe() }()
		<-started
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = s.ShutdownContext(ctx)
		})
	}
	return u
}

// Upstream behaviours.

// answerA answers n A records, 198.51.100.1 onwards, with a TTL of 42 and
// an OPT record when the query had one; over UDP with truncUDP it sends
// only the header with TC set, as a resolver does when the answer is too
// big. It leaves RA clear, so that the relay is seen to set it.
func answerA(n int, truncUDP bool) reply {
	return func(r *dns.Msg, tcp bool) *dns.Msg {
		m := new(dns.Msg).SetReply(r)
		if !tcp && truncUDP {
			m.Truncated = true
			return m
		}
		for i := range n {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 42},
				A:   netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}).AsSlice(),
			})
		}
		if r.IsEdns0() != nil {
			m.SetEdns0(1232, false)
		}
		return m
	}
}

func answerRcode(rcode int) reply {
	return func(r *dns.Msg, _ bool) *dns.Msg { return new(dns.Msg).SetRcode(r, rcode) }
}

func silent(*dns.Msg, bool) *dns.Msg { return nil }

// dropFirst ignores the first query, as if it were lost on the way, and
// answers the others with do.
func dropFirst(do reply) reply {
	var seen atomic.Bool
	return func(r *dns.Msg, tcp bool) *dns.Msg {
		if !seen.Swap(true) {
			return nil
		}
		return do(r, tcp)
	}
}

// onlyFirst answers the first query with do and ignores the others.
func onlyFirst(do reply) reply {
	var seen atomic.Bool
	return func(r *dns.Msg, tcp bool) *dns.Msg {
		if seen.Swap(true) {
			return nil
		}
		return do(r, tcp)
	}
}

// delayed answers with do after d.
func delayed(d time.Duration, do reply) reply {
	return func(r *dns.Msg, tcp bool) *dns.Msg {
		time.Sleep(d)
		return do(r, tcp)
	}
}

// afterRelease answers with do once release is closed.
func afterRelease(release <-chan struct{}, do reply) reply {
	return func(r *dns.Msg, tcp bool) *dns.Msg {
		<-release
		return do(r, tcp)
	}
}

// askRaw sends q to addr over proto and returns the reply as received.
func askRaw(t *testing.T, proto, addr string, q *dns.Msg) ([]byte, *dns.Msg) {
	t.Helper()
	conn, err := net.DialTimeout(proto, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// A signed query is signed with a key of the client's own, which
	// zkdns does not hold.
	dc := &dns.Conn{Conn: conn, UDPSize: dns.MaxMsgSize, TsigSecret: map[string]string{"client-key.": "c2VjcmV0LXNlY3JldA=="}}
	if err := dc.WriteMsg(q); err != nil {
		t.Fatal(err)
	}
	raw, err := dc.ReadMsgHeader(nil)
	if err != nil {
		t.Fatalf("no reply over %s: %v", proto, err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(raw); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	return raw, m
}

// forwardingServer serves fixture() on 127.0.0.1 with upstreams, and
// returns its address and the registry of its metrics.
func forwardingServer(t *testing.T, upstreams []string, opts ServeOptions) (string, *prometheus.Registry) {
	t.Helper()
	m, reg := newTestMetrics(t)
	h := NewHandler(fixture(), m)
	if err := h.SetPolicy(Policy{Upstreams: upstreams}); err != nil {
		t.Fatal(err)
	}
	return serveWith(t, "127.0.0.1:0", h, opts, false).addr, reg
}

// outsideQuery is a query for a name outside the zone, with an ID and
// EDNS size of the test's choosing (0: no OPT).
func outsideQuery(id, ednsSize uint16, qtype uint16) *dns.Msg {
	q := new(dns.Msg).SetQuestion("www.example.com.", qtype)
	q.Id = id
	if ednsSize != 0 {
		q.SetEdns0(ednsSize, false)
	}
	return q
}

// TestForward sends a query for a name outside the zone through zkdns to
// upstreams that answer, fail or stay silent, and checks what the client
// gets, which upstreams were asked in which order, and over what.
func TestForward(t *testing.T) {
	fast := ServeOptions{ForwardTryTimeout: 200 * time.Millisecond, ForwardTimeout: 5 * time.Second}
	type spec struct {
		name string
		do   reply
	}
	cases := []struct {
		name      string
		upstreams []spec
		opts      ServeOptions
		proto     string
		ednsSize  uint16
		rcode     int
		answers   int // -1: some, but not all 60
		truncated bool
		asked     []string // the upstreams asked, in order
		// askedAgain, when set, is the upstream asked after asked, once
		// or more, until the forward's time ran out.
		askedAgain string
		// budgetBound: the forward's time may run out before the last
		// of asked, on a host that wakes the forward late; asked must
		// then be a part of it from the first, never one upstream more.
		budgetBound bool
		// relayed says the client must get the bytes of the last
		// upstream's reply, but for ID and RA.
		relayed bool
		// upstreamSize is the EDNS size the upstreams must see; 0: none.
		upstreamSize uint16
		// ede names the Extended DNS Error zkdns's own reply carries; "":
		// none (relayed replies carry the upstream's).
		ede string
	}{
		{name: "answer relayed over UDP", upstreams: []spec{{"good", answerA(2, false)}}, proto: "udp",
			rcode: dns.RcodeSuccess, answers: 2, asked: []string{"good"}, relayed: true},
		{name: "answer relayed over TCP, asked over TCP", upstreams: []spec{{"good", answerA(3, false)}}, proto: "tcp",
			rcode: dns.RcodeSuccess, answers: 3, asked: []string{"good"}, relayed: true},
		{name: "EDNS size above 1232 is lowered toward the upstream", upstreams: []spec{{"good", answerA(1, false)}}, proto: "udp", ednsSize: 4096,
			rcode: dns.RcodeSuccess, answers: 1, asked: []string{"good"}, relayed: true, upstreamSize: 1232},
		{name: "EDNS size below 1232 is passed on", upstreams: []spec{{"good", answerA(1, false)}}, proto: "udp", ednsSize: 800,
			rcode: dns.RcodeSuccess, answers: 1, asked: []string{"good"}, relayed: true, upstreamSize: 800},
		{name: "NXDOMAIN is an answer, not a failure", upstreams: []spec{{"nx", answerRcode(dns.RcodeNameError)}, {"good", answerA(1, false)}}, proto: "udp",
			rcode: dns.RcodeNameError, asked: []string{"nx"}, relayed: true},
		{name: "failover past silence, SERVFAIL and REFUSED, in order", opts: fast, proto: "udp", rcode: dns.RcodeSuccess, answers: 1, relayed: true,
			upstreams: []spec{{"silent", silent}, {"servfail", answerRcode(dns.RcodeServerFailure)}, {"refused", answerRcode(dns.RcodeRefused)}, {"good", answerA(1, false)}, {"spare", answerA(1, false)}},
			asked:     []string{"silent", "servfail", "refused", "good"}},
		{name: "failover over TCP", opts: fast, proto: "tcp", rcode: dns.RcodeSuccess, answers: 1, relayed: true,
			upstreams: []spec{{"silent", silent}, {"servfail", answerRcode(dns.RcodeServerFailure)}, {"good", answerA(1, false)}},
			asked:     []string{"silent", "servfail", "good"}},
		{name: "all fail: SERVFAIL once the time runs out, the silent one asked again meanwhile", proto: "udp", rcode: dns.RcodeServerFailure,
			opts:      ServeOptions{ForwardTryTimeout: 200 * time.Millisecond, ForwardTimeout: time.Second},
			upstreams: []spec{{"servfail", answerRcode(dns.RcodeServerFailure)}, {"silent", silent}, {"refused", answerRcode(dns.RcodeRefused)}},
			asked:     []string{"servfail", "silent", "refused"}, askedAgain: "silent"},
		{name: "all fail over EDNS: the SERVFAIL says No Reachable Authority", proto: "udp", ednsSize: 1232, rcode: dns.RcodeServerFailure,
			opts:      ServeOptions{ForwardTryTimeout: 200 * time.Millisecond, ForwardTimeout: 300 * time.Millisecond},
			upstreams: []spec{{"servfail", answerRcode(dns.RcodeServerFailure)}},
			asked:     []string{"servfail"}, upstreamSize: 1232, ede: "No Reachable Authority"},
		{name: "a lost datagram is sent again", opts: fast, proto: "udp", rcode: dns.RcodeSuccess, answers: 1, relayed: true,
			// Sent again at least once; more when a loaded machine holds
			// the reply past a try.
			upstreams: []spec{{"lossy", dropFirst(answerA(1, false))}},
			asked:     []string{"lossy"}, askedAgain: "lossy"},
		{name: "one slow upstream gets the whole time, its late reply taken", opts: fast, proto: "udp", rcode: dns.RcodeSuccess, answers: 1,
			// Only the first query is answered: the answer is the late
			// reply to it, taken on the socket kept for the sends after.
			upstreams: []spec{{"slow", delayed(600*time.Millisecond, onlyFirst(answerA(1, false)))}},
			asked:     []string{"slow"}, askedAgain: "slow", relayed: true},
		{name: "the whole budget spent: SERVFAIL without asking the rest", proto: "udp", rcode: dns.RcodeServerFailure,
			opts:      ServeOptions{ForwardTryTimeout: 200 * time.Millisecond, ForwardTimeout: 300 * time.Millisecond},
			upstreams: []spec{{"silent-1", silent}, {"silent-2", silent}, {"good", answerA(1, false)}},
			asked:     []string{"silent-1", "silent-2"}, budgetBound: true},
		{name: "TC from the upstream is relayed over UDP", upstreams: []spec{{"big", answerA(40, true)}}, proto: "udp",
			rcode: dns.RcodeSuccess, truncated: true, asked: []string{"big"}, relayed: true},
		{name: "the TCP retry is forwarded over TCP", upstreams: []spec{{"big", answerA(40, true)}}, proto: "tcp",
			rcode: dns.RcodeSuccess, answers: 40, asked: []string{"big"}, relayed: true},
		{name: "an upstream reply too big for the client is cut", upstreams: []spec{{"careless", answerA(60, false)}}, proto: "udp",
			rcode: dns.RcodeSuccess, answers: -1, truncated: true, asked: []string{"careless"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			log := newArrivals()
			var addrs []string
			ups := map[string]*upstream{}
			for _, s := range tc.upstreams {
				u := startUpstream(t, s.name, log, s.do)
				ups[s.name] = u
				addrs = append(addrs, u.addr)
			}
			addr, _ := forwardingServer(t, addrs, tc.opts)

			q := outsideQuery(0xabcd, tc.ednsSize, dns.TypeA)
			raw, got := askRaw(t, tc.proto, addr, q)

			if got.Id != q.Id || !got.Response {
				t.Errorf("reply ID %#x response %v, want the query's ID %#x", got.Id, got.Response, q.Id)
			}
			if !got.RecursionAvailable {
				t.Error("RA clear on a forwarded answer")
			}
			answers := len(got.Answer)
			if tc.answers == -1 && answers > 0 && answers < 60 {
				answers = -1
			}
			if got.Rcode != tc.rcode || answers != tc.answers || got.Truncated != tc.truncated {
				t.Errorf("got %s, %d answers, TC %v; want %s, %d, %v", dns.RcodeToString[got.Rcode], len(got.Answer), got.Truncated,
					dns.RcodeToString[tc.rcode], tc.answers, tc.truncated)
			}
			if opt := got.IsEdns0(); opt != nil {
				checkEDE(t, opt, tc.ede)
			} else if tc.ede != "" {
				t.Error("reply has no OPT; the query had one")
			}
			if limit := maxReplySize(q, tc.proto == "tcp"); len(raw) > limit {
				t.Errorf("reply of %d bytes, the client takes %d", len(raw), limit)
			}
			var asked []string
			for _, r := range log.list() {
				asked = append(asked, r.upstream)
				if r.proto != tc.proto {
					t.Errorf("%s was asked over %s, the client asked over %s", r.upstream, r.proto, tc.proto)
				}
				if r.edns != (tc.ednsSize != 0) || r.edns && r.udpSize != tc.upstreamSize {
					t.Errorf("%s saw EDNS %v size %d, want EDNS %v size %d", r.upstream, r.edns, r.udpSize, tc.ednsSize != 0, tc.upstreamSize)
				}
			}
			again := 0
			if tc.askedAgain != "" {
				for len(asked) > len(tc.asked) && asked[len(asked)-1] == tc.askedAgain {
					asked, again = asked[:len(asked)-1], again+1
				}
				if again == 0 {
					t.Errorf("%s was not asked again", tc.askedAgain)
				}
			}
			want := tc.asked
			if tc.budgetBound && len(asked) > 0 && len(asked) < len(want) {
				want = want[:len(asked)]
			}
			if !slices.Equal(asked, want) {
				t.Errorf("upstreams asked %v (and %s %d more times), want %v", asked, tc.askedAgain, again, tc.asked)
			}
			if tc.relayed {
				// The query was asked again when askedAgain is set, and
				// every send carries the same ID: any reply is the one.
				last := ups[tc.asked[len(tc.asked)-1]].replies()
				if len(last) != 1 && (tc.askedAgain == "" || len(last) == 0) {
					t.Fatalf("the answering upstream sent %d replies, want 1", len(last))
				}
				want := bytes.Clone(last[0])
				want[0], want[1] = raw[0], raw[1] // the ID is the client's: checked above
				want[3] |= 0x80                   // RA
				if !bytes.Equal(raw, want) {
					t.Errorf("relayed reply differs from the upstream's beyond ID and RA:\n got % x\nwant % x", raw, want)
				}
			}
		})
	}
}

// TestForwardNotForwarded checks what is answered without any upstream
// being asked, although upstreams are set: names in the zone, zone
// transfers of outside names, and classes other than IN.
func TestForwardNotForwarded(t *testing.T) {
	log := newArrivals()
	up := startUpstream(t, "good", log, answerA(1, false))
	addr, _ := forwardingServer(t, []string{up.addr}, ServeOptions{})
	chaos := new(dns.Msg).SetQuestion("version.bind.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	signed := outsideQuery(1, 0, dns.TypeA)
	signed.SetTsig("client-key.", dns.HmacSHA256, 300, time.Now().Unix())
	cases := []struct {
		name  string
		proto string
		q     *dns.Msg
		rcode int
		aa    bool
	}{
		{name: "a name in the zone", proto: "udp", q: new(dns.Msg).SetQuestion("payments.local.", dns.TypeA), rcode: dns.RcodeSuccess, aa: true},
		{name: "a missing name in the zone", proto: "udp", q: new(dns.Msg).SetQuestion("nope.local.", dns.TypeA), rcode: dns.RcodeNameError, aa: true},
		{name: "AXFR of an outside name", proto: "tcp", q: outsideQuery(1, 0, dns.TypeAXFR), rcode: dns.RcodeRefused},
		{name: "class CHAOS", proto: "udp", q: chaos, rcode: dns.RcodeRefused},
		{name: "TSIG-signed outside name", proto: "udp", q: signed, rcode: dns.RcodeRefused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, got := askRaw(t, tc.proto, addr, tc.q)
			if got.Rcode != tc.rcode || got.Authoritative != tc.aa || got.RecursionAvailable {
				t.Errorf("got %s AA %v RA %v, want %s AA %v RA false", dns.RcodeToString[got.Rcode], got.Authoritative, got.RecursionAvailable,
					dns.RcodeToString[tc.rcode], tc.aa)
			}
		})
	}
	if got := log.list(); len(got) != 0 {
		t.Errorf("upstream asked %v, want nothing", got)
	}
}

// TestForwardNeverToItself checks both guards against forwarding to
// zkdns itself: an upstream that is one of Serve's own addresses is
// skipped, and a query arriving from one of the handler's own forwarding
// sockets is refused rather than forwarded again.
func TestForwardNeverToItself(t *testing.T) {
	t.Run("own listen address is skipped", func(t *testing.T) {
		log := newArrivals()
		good := startUpstream(t, "good", log, answerA(1, false))
		m, reg := newTestMetrics(t)
		h := NewHandler(fixture(), m)
		l, err := Listen([]string{"127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		self := l.Addrs()[0]
		if err := h.SetPolicy(Policy{Upstreams: []string{self, good.addr}}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, l, h, ServeOptions{}) }()
		stop := sync.OnceFunc(func() { cancel(); <-done })
		defer stop()

		for _, proto := range []string{"udp", "tcp"} {
			_, got := askRaw(t, proto, self, outsideQuery(7, 0, dns.TypeA))
			if got.Rcode != dns.RcodeSuccess || len(got.Answer) != 1 {
				t.Errorf("%s: %s with %d answers, want the good upstream's answer", proto, dns.RcodeToString[got.Rcode], len(got.Answer))
			}
		}
		// A forward is counted after its reply is written; Serve waits
		// for forwards in flight, so stop it before reading the counts.
		stop()
		sameSeries(t, forwardsTotal, series(t, reg, forwardsTotal), map[string]float64{"result=answered": 2}, 4)
	})

	t.Run("a query from our own forwarding socket is refused", func(t *testing.T) {
		// Two servers share a handler whose upstream is the second: a
		// query to the first is forwarded to the second, which sees it
		// come from the handler's own socket and must not forward it on.
		m, reg := newTestMetrics(t)
		h := NewHandler(fixture(), m)
		first := serveHandler(t, "127.0.0.1:0", h, false)
		second := serveHandler(t, "127.0.0.1:0", h, false)
		if err := h.SetPolicy(Policy{Upstreams: []string{second.addr}}); err != nil {
			t.Fatal(err)
		}
		_, got := askRaw(t, "udp", first.addr, outsideQuery(9, 1232, dns.TypeA))
		if got.Rcode != dns.RcodeServerFailure {
			t.Errorf("got %s, want SERVFAIL: the only upstream loops back", dns.RcodeToString[got.Rcode])
		}
		if opt := got.IsEdns0(); opt == nil {
			t.Error("reply has no OPT; the query had one")
		} else {
			checkEDE(t, opt, "No Reachable Authority")
		}
		sameSeries(t, forwardsTotal, series(t, reg, forwardsTotal), map[string]float64{"result=failed": 1, "result=loop": 1}, 4)
	})
}

// TestForwardOffTheReaders holds every forward at a blocked upstream and
// checks that more forwards are in flight than there are UDP readers,
// that names in the zone are still answered meanwhile, and that past
// MaxForwards a query is answered SERVFAIL at once.
func TestForwardOffTheReaders(t *testing.T) {
	const maxForwards = 6 // more than the max(2, GOMAXPROCS) readers here
	if readers := max(2, runtime.GOMAXPROCS(0)); readers >= maxForwards {
		t.Skipf("%d UDP readers: the test needs fewer than %d", readers, maxForwards)
	}
	release := make(chan struct{})
	log := newArrivals()
	up := startUpstream(t, "slow", log, afterRelease(release, answerA(1, false)))
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	addr, reg := forwardingServer(t, []string{up.addr}, ServeOptions{
		MaxForwards: maxForwards, ForwardTryTimeout: time.Minute, ForwardTimeout: time.Minute,
	})

	// maxForwards queries, each from a socket of its own, all held.
	type pending struct {
		id  uint16
		got chan *dns.Msg
	}
	var held []pending
	for i := range maxForwards {
		p := pending{id: uint16(100 + i), got: make(chan *dns.Msg, 1)}
		held = append(held, p)
		go func() {
			_, m := askRawAsync(addr, outsideQuery(p.id, 0, dns.TypeA))
			p.got <- m
		}()
	}
	log.wait(t, maxForwards)

	cases := []struct {
		name  string
		q     *dns.Msg
		rcode int
		ede   string
	}{
		{name: "a name in the zone is answered", q: new(dns.Msg).SetQuestion("payments.local.", dns.TypeA).SetEdns0(1232, false), rcode: dns.RcodeSuccess},
		{name: "one forward too many is SERVFAIL at once", q: outsideQuery(999, 1232, dns.TypeA), rcode: dns.RcodeServerFailure,
			ede: "Other"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, got := askRaw(t, "udp", addr, tc.q)
			if got.Rcode != tc.rcode {
				t.Errorf("got %s, want %s", dns.RcodeToString[got.Rcode], dns.RcodeToString[tc.rcode])
			}
			if opt := got.IsEdns0(); opt == nil {
				t.Error("reply has no OPT; the query had one")
			} else {
				checkEDE(t, opt, tc.ede)
			}
		})
	}

	close(release)
	for _, p := range held {
		select {
		case m := <-p.got:
			if m == nil || m.Id != p.id || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
				t.Errorf("held query %d: got %v, want the upstream's answer", p.id, m)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("held query %d not answered within 10s of the release", p.id)
		}
	}
	sameSeries(t, forwardsTotal, series(t, reg, forwardsTotal),
		map[string]float64{"result=answered": maxForwards, "result=busy": 1}, 4)
	if n := series(t, reg, forwardDuration)[""]; n != maxForwards {
		t.Errorf("%v forward durations observed, want %d: busy ones are not timed", n, maxForwards)
	}
}

// askRawAsync is askRaw over UDP for a goroutine: it returns nil on error.
func askRawAsync(addr string, q *dns.Msg) ([]byte, *dns.Msg) {
	conn, err := net.DialTimeout("udp", addr, 5*time.Second)
	if err != nil {
		return nil, nil
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	dc := &dns.Conn{Conn: conn, UDPSize: dns.MaxMsgSize}
	if err := dc.WriteMsg(q); err != nil {
		return nil, nil
	}
	raw, err := dc.ReadMsgHeader(nil)
	if err != nil {
		return nil, nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(raw); err != nil {
		return nil, nil
	}
	return raw, m
}

// TestForwardRoundsWaitTheirTry forwards, many at once, to an upstream
// that never answers: every round must wait its whole try before sending
// again, so a forward sends at most its time over the try timeout. A wait
// cut short (a hook of an earlier try ending a later wait on the same
// socket) shows as more sends.
func TestForwardRoundsWaitTheirTry(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// Room for every send of the test, should the reader below fall
	// behind on a loaded machine: a drop would read as a missing forward.
	growReceiveBuffer(pc)
	var mu sync.Mutex
	// One forward's sends share a socket and a query ID; the pair tells
	// forwards apart (either alone may repeat across 80 of them).
	type forward struct {
		src string
		id  uint16
	}
	sends := map[forward]int{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, src, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			m := new(dns.Msg)
			if m.Unpack(buf[:n]) == nil {
				mu.Lock()
				sends[forward{src.String(), m.Id}]++
				mu.Unlock()
			}
		}
	}()
	const (
		try    = 20 * time.Millisecond
		budget = 300 * time.Millisecond
	)
	h := NewHandler(nil, nil)
	env := &serveEnv{ctx: context.Background(), forwardTimeout: budget, forwardTryTimeout: try}
	pol := &policy{upstreams: []netip.AddrPort{netip.MustParseAddrPort(pc.LocalAddr().String())}}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				q := new(dns.Msg).SetQuestion("example.org.", dns.TypeA)
				if _, _, err := h.exchange(env, pol, q, false); err == nil {
					t.Error("a silent upstream answered")
				}
			}
		})
	}
	wg.Wait()
	// Each forward sent its first query at its start, a whole budget
	// ago, but the reader may still be catching up.
	testutil.Eventually(t, 10*time.Second, "80 forwards reaching the upstream", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(sends) >= 80, fmt.Sprintf("%d forwards", len(sends))
	})
	time.Sleep(50 * time.Millisecond) // the last datagrams in flight
	mu.Lock()
	defer mu.Unlock()
	for f, n := range sends {
		if n > int(budget/try) {
			t.Errorf("forward %v sent %d queries; %v of %v tries allow %d", f, n, budget, try, budget/try)
		}
	}
	if len(sends) != 80 {
		t.Errorf("%d forwards reached the upstream, want 80", len(sends))
	}
}

// listenFull listens on TCP on loopback with an accept queue of one,
// filled by a connection that is never used: until release is closed, a
// connect to it hangs, the kernel dropping its SYNs. After release a DNS
// server on it answers every query with an A record.
func listenFull(t *testing.T, release <-chan struct{}) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	// A backlog of 0 holds one connection not yet accepted.
	if err := syscall.Listen(fd, 0); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "full listener")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	filler, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, ReadTimeout: 5 * time.Second, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		_ = w.WriteMsg(answerA(1, false)(r, true))
	})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		select {
		case <-release:
			_ = srv.ActivateAndServe() // until the listener closes
		case <-t.Context().Done():
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		filler.Close()
		<-served
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// TestForwardRedialsAConnectThatRanOutOfTime forwards over TCP to an
// upstream whose accept queue is full for the first few tries: a connect
// that runs out of a try's time is a wait like an unanswered query, and
// the forward dials again in its next round, where it used to give the
// upstream up at once.
func TestForwardRedialsAConnectThatRanOutOfTime(t *testing.T) {
	release := make(chan struct{})
	up := listenFull(t, release)
	const (
		try    = 50 * time.Millisecond
		budget = 5 * time.Second
	)
	time.AfterFunc(4*try, func() { close(release) })
	h := NewHandler(nil, nil)
	env := &serveEnv{ctx: context.Background(), forwardTimeout: budget, forwardTryTimeout: try}
	pol := &policy{upstreams: []netip.AddrPort{up}}
	start := time.Now()
	q := new(dns.Msg).SetQuestion("example.org.", dns.TypeA)
	_, reply, err := h.exchange(env, pol, q, true)
	if err != nil {
		t.Fatalf("forward failed after %v, the upstream accepting from %v: %v", time.Since(start).Round(time.Millisecond), 4*try, err)
	}
	if len(reply.Answer) != 1 {
		t.Errorf("reply %v, want the upstream's one A record", reply)
	}
}
