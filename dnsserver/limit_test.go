package dnsserver

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

func TestServeOptionsDefaults(t *testing.T) {
	cases := []struct {
		name string
		in   ServeOptions
		want ServeOptions
	}{
		{name: "zero value", want: ServeOptions{
			MaxTCPConns: DefaultMaxTCPConns, MaxTCPQueries: DefaultMaxTCPQueries, MaxForwards: DefaultMaxForwards,
			ForwardTimeout: DefaultForwardTimeout, ForwardTryTimeout: DefaultForwardTryTimeout,
		}},
		{name: "negative means default, or no query cap", in: ServeOptions{MaxTCPConns: -1, MaxTCPQueries: -7, MaxForwards: -1, ForwardTimeout: -time.Second, ForwardTryTimeout: -time.Second},
			want: ServeOptions{
				MaxTCPConns: DefaultMaxTCPConns, MaxTCPQueries: -1, MaxForwards: DefaultMaxForwards,
				ForwardTimeout: DefaultForwardTimeout, ForwardTryTimeout: DefaultForwardTryTimeout,
			}},
		{name: "set values are kept", in: ServeOptions{MaxTCPConns: 3, MaxTCPQueries: 4, MaxForwards: 5, ForwardTimeout: time.Second, ForwardTryTimeout: time.Millisecond},
			want: ServeOptions{MaxTCPConns: 3, MaxTCPQueries: 4, MaxForwards: 5, ForwardTimeout: time.Second, ForwardTryTimeout: time.Millisecond}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.withDefaults(); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// fakeConn is a connection that reads what is sent to it one byte per
// call, and records Close.
type fakeConn struct {
	net.Conn
	name   string
	in     []byte
	closed bool
}

func (c *fakeConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 || len(p) == 0 {
		return 0, io.EOF
	}
	p[0], c.in = c.in[0], c.in[1:]
	return 1, nil
}
func (c *fakeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *fakeConn) Close() error                     { c.closed = true; return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// send has lc read b, a byte at a time, as a server reading its
// connection would.
func send(lc *limitedConn, b ...byte) {
	fc := lc.Conn.(*fakeConn)
	fc.in = append(fc.in, b...)
	for len(fc.in) > 0 {
		_, _ = lc.Read(make([]byte, 512))
	}
}

// TestConnLimiter drives the limiter through accepts, queries and replies
// on a cap of two, checking after each step which connections are closed.
func TestConnLimiter(t *testing.T) {
	m, reg := newTestMetrics(t)
	lim := newConnLimiter(2, m)
	conns := map[string]*fakeConn{}
	admitted := map[string]*limitedConn{}

	steps := []struct {
		name   string
		do     func()
		closed []string // every connection closed so far
	}{
		{name: "a and b fit", do: func() { accept(lim, conns, admitted, "a"); accept(lim, conns, admitted, "b") }},
		{name: "c takes the place of a, idle longest", do: func() { accept(lim, conns, admitted, "c") }, closed: []string{"a"}},
		{name: "b reads a whole query, d takes the place of c", do: func() {
			send(admitted["b"], 0, 3, 'q', 'r', 'y')
			accept(lim, conns, admitted, "d")
		}, closed: []string{"a", "c"}},
		{name: "d reads only part of a query: it can still go, and e takes its place", do: func() {
			send(admitted["d"], 0, 3, 'q')
			accept(lim, conns, admitted, "e")
		}, closed: []string{"a", "c", "d"}},
		{name: "e reads two queries in one piece: every one busy, f is closed at once", do: func() {
			send(admitted["e"], 0, 1, 'x', 0, 0)
			accept(lim, conns, admitted, "f")
		}, closed: []string{"a", "c", "d", "f"}},
		{name: "b answers, then g takes b's place", do: func() {
			_, _ = admitted["b"].Write([]byte{0})
			accept(lim, conns, admitted, "g")
		}, closed: []string{"a", "c", "d", "f", "b"}},
		{name: "e closes on its own, h fits", do: func() {
			_ = admitted["e"].Close()
			accept(lim, conns, admitted, "h")
		}, closed: []string{"a", "c", "d", "f", "b", "e"}},
		{name: "closing an evicted connection again changes nothing", do: func() {
			_ = admitted["a"].Close()
			accept(lim, conns, admitted, "i")
		}, closed: []string{"a", "c", "d", "f", "b", "e", "g"}},
		{name: "i reads a query; h a message that gets no reply, and reads on: j takes h's place", do: func() {
			send(admitted["i"], 0, 1, 'q')
			send(admitted["h"], 0, 0)      // an empty message: the server drops it unanswered
			_, _ = admitted["h"].Read(nil) // and waits for the next
			accept(lim, conns, admitted, "j")
		}, closed: []string{"a", "c", "d", "f", "b", "e", "g", "h"}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			step.do()
			want := map[string]bool{}
			for _, n := range step.closed {
				want[n] = true
			}
			for n, c := range conns {
				if c.closed != want[n] {
					t.Errorf("%s closed %v, want %v", n, c.closed, want[n])
				}
			}
			lim.mu.Lock()
			open := len(lim.open)
			lim.mu.Unlock()
			if open > 2 {
				t.Errorf("%d connections counted open, cap 2", open)
			}
		})
	}
	sameSeries(t, tcpConnections, series(t, reg, tcpConnections), map[string]float64{"": 2}, 1)
	sameSeries(t, tcpShedTotal, series(t, reg, tcpShedTotal), map[string]float64{"closed=idle": 6, "closed=new": 1}, 2)
}

func accept(lim *connLimiter, conns map[string]*fakeConn, admitted map[string]*limitedConn, name string) {
	c := &fakeConn{name: name}
	conns[name] = c
	if lc := lim.admit(c); lc != nil {
		admitted[name] = lc
	}
}

// TestServeTCPFlood opens many more idle TCP connections than the cap and
// checks that queries over UDP and TCP are still answered, that the server
// holds no more connections than the cap, and that its goroutines stay
// bounded by it.
func TestServeTCPFlood(t *testing.T) {
	const maxConns, flood = 16, 300
	m, reg := newTestMetrics(t)
	srv := serveWith(t, "127.0.0.1:0", NewHandler(serverSnapshot(), m), ServeOptions{MaxTCPConns: maxConns}, false)
	// Let Serve start every goroutine it keeps.
	for _, proto := range []string{"udp", "tcp"} {
		if _, err := exchange(proto, srv.addr, "payments.local.", dns.TypeA); err != nil {
			t.Fatalf("%s query before the flood: %v", proto, err)
		}
	}
	base := runtime.NumGoroutine()

	var idle []net.Conn
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	for range flood {
		c, err := net.DialTimeout("tcp", srv.addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", len(idle), err)
		}
		idle = append(idle, c)
	}

	cases := []struct {
		name  string
		proto string
		qname string
		qtype uint16
		want  int // answer records
	}{
		{name: "UDP query during the flood", proto: "udp", qname: "payments.local.", qtype: dns.TypeA, want: 1},
		{name: "TCP query during the flood", proto: "tcp", qname: "payments.local.", qtype: dns.TypeA, want: 1},
		{name: "big TCP answer during the flood", proto: "tcp", qname: "big.local.", qtype: dns.TypeSRV, want: 60},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reply, err := exchange(tc.proto, srv.addr, tc.qname, tc.qtype)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if reply.Rcode != dns.RcodeSuccess || len(reply.Answer) != tc.want {
				t.Errorf("%s with %d records, want NOERROR with %d", dns.RcodeToString[reply.Rcode], len(reply.Answer), tc.want)
			}
		})
	}

	// The TCP queries were accepted after every flood connection: by now
	// the server has seen them all.
	if open := series(t, reg, tcpConnections)[""]; open > maxConns {
		t.Errorf("%v TCP connections open, cap %d", open, maxConns)
	}
	if shed := series(t, reg, tcpShedTotal)["closed=idle"]; shed < flood-maxConns {
		t.Errorf("%v idle connections shed, want at least %d", shed, flood-maxConns)
	}
	// Each open connection costs the server one goroutine; the shed ones
	// end theirs as soon as their read fails.
	bound := base + maxConns + 8
	deadline := time.Now().Add(10 * time.Second)
	for n := runtime.NumGoroutine(); n > bound; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines with %d connections held by a flood of %d; want at most %d", n, maxConns, flood, bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Most flood connections were closed by the server.
	closed := 0
	for _, c := range idle[:flood-maxConns] {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			closed++
		}
	}
	if closed != flood-maxConns {
		t.Errorf("%d of the first %d flood connections closed by the server, want all", closed, flood-maxConns)
	}
}

// TestServeTCPTricklingConnectionsDoNotLockOut: connections that each
// send the first byte of a query and stall are not queries in hand, so a
// full set of them cannot keep a client that asks from getting in.
func TestServeTCPTricklingConnectionsDoNotLockOut(t *testing.T) {
	const maxConns = 4
	m, reg := newTestMetrics(t)
	srv := serveWith(t, "127.0.0.1:0", NewHandler(serverSnapshot(), m), ServeOptions{MaxTCPConns: maxConns}, false)
	holdConnections(t, srv.addr, reg, maxConns, []byte{0}) // half a length prefix each
	reply, err := exchange("tcp", srv.addr, "big.local.", dns.TypeSRV)
	if err != nil {
		t.Fatalf("TCP query while %d connections each hold one byte of a query: %v", maxConns, err)
	}
	if len(reply.Answer) != 60 {
		t.Errorf("%d SRV records over TCP, want 60", len(reply.Answer))
	}
}

// TestServeTCPUnansweredMessagesDoNotLockOut: a message the server drops
// without a reply (it has no header to answer, or is itself a response)
// leaves no query in hand, so a full set of connections that each sent one
// and wait cannot keep a client that asks from getting in, though each
// can keep its connection open for the idle timeout, and renew it by
// sending another.
func TestServeTCPUnansweredMessagesDoNotLockOut(t *testing.T) {
	const maxConns = 4
	cases := []struct {
		name string
		msg  []byte // the message, without its length prefix
	}{
		{name: "empty message", msg: nil},
		{name: "shorter than a header", msg: []byte{0xab, 0xcd, 0x01}},
		{name: "a response", msg: cat(header(0xabcd, 1<<15, 1, 0, 0, 0), wireName("payments", "local"), typeClass(dns.TypeA, dns.ClassINET))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, reg := newTestMetrics(t)
			srv := serveWith(t, "127.0.0.1:0", NewHandler(serverSnapshot(), m), ServeOptions{MaxTCPConns: maxConns}, false)
			holdConnections(t, srv.addr, reg, maxConns, append(binary.BigEndian.AppendUint16(nil, uint16(len(tc.msg))), tc.msg...))
			reply, err := exchange("tcp", srv.addr, "payments.local.", dns.TypeA)
			if err != nil {
				t.Fatalf("TCP query while %d connections each sent a message that gets no reply: %v", maxConns, err)
			}
			if len(reply.Answer) != 1 {
				t.Errorf("%d answers, want 1", len(reply.Answer))
			}
		})
	}
}

// TestServeTCPClientThatDoesNotRead: a client that asks for more than the
// socket buffers hold and never reads leaves the server's write blocked.
// The write must give up within its timeout and the connection close,
// so that the connection neither holds its place under the cap forever
// nor keeps Serve from returning.
func TestServeTCPClientThatDoesNotRead(t *testing.T) {
	cases := []struct {
		name  string
		check func(t *testing.T, srv served)
	}{
		{name: "a new client gets in", check: func(t *testing.T, srv served) {
			// The write times out only once the buffers are full, and
			// filling them takes building a hundred or more large
			// replies: seconds with the race detector on a busy host.
			// A connection that kept its place forever fails any bound.
			const wait = 10 * ioTimeout
			deadline := time.Now().Add(wait)
			for {
				_, err := exchange("tcp", srv.addr, "payments.local.", dns.TypeA)
				if err == nil {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("TCP query %v after the non-reader began: %v", wait, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}},
		{name: "Serve stops", check: func(t *testing.T, srv served) {
			// stop fails when Serve has not returned within its bound.
			if err := srv.stop(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	// Big enough that DefaultMaxTCPQueries replies (about 64 KiB each, cut
	// to fit a TCP message) are more than the socket buffers of loopback
	// grow to.
	snap := bigSnapshot(3000)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := serveWith(t, "127.0.0.1:0", NewHandler(snap, nil), ServeOptions{MaxTCPConns: 1}, false)
			c := dialSlowReader(t, srv.addr)
			if _, err := c.Write(pipelined(t, DefaultMaxTCPQueries)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond) // the server fills the buffers
			tc.check(t, srv)
		})
	}
}

// isReset reports whether err is a connection reset: how a close with
// unread data shows at the other end.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// exchange asks addr one question over proto.
func exchange(proto, addr, qname string, qtype uint16) (*dns.Msg, error) {
	c := &dns.Client{Net: proto, Timeout: 5 * time.Second}
	reply, _, err := c.Exchange(new(dns.Msg).SetQuestion(qname, qtype), addr)
	return reply, err
}

// TestServeTCPQueryCap sends queries one after another on one TCP
// connection and checks that the server closes it after the cap.
func TestServeTCPQueryCap(t *testing.T) {
	const maxQueries = 3
	srv := serveWith(t, "127.0.0.1:0", NewHandler(fixture(), nil), ServeOptions{MaxTCPQueries: maxQueries}, false)
	conn, err := net.DialTimeout("tcp", srv.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	dc := &dns.Conn{Conn: conn}
	for i := range maxQueries {
		t.Run("query "+string(rune('1'+i)), func(t *testing.T) {
			q := new(dns.Msg).SetQuestion("payments.local.", dns.TypeA)
			if err := dc.WriteMsg(q); err != nil {
				t.Fatal(err)
			}
			reply, err := dc.ReadMsg()
			if err != nil || reply.Id != q.Id || len(reply.Answer) != 1 {
				t.Fatalf("reply %v, %v; want the A record", reply, err)
			}
		})
	}
	if _, err := dc.ReadMsg(); !errors.Is(err, io.EOF) {
		t.Errorf("after %d queries the connection gave %v, want EOF", maxQueries, err)
	}
}

// TestServeTCPQueryCapPipelined sends more queries at once than the cap
// allows on one connection, then reads slowly. The server closes after
// the cap with the rest unread; every reply it wrote must still arrive,
// followed by an orderly close (RFC 1035 §4.2.2: outstanding requests
// are satisfied before the server closes its end), not a reset, which
// throws away the replies still on their way.
func TestServeTCPQueryCapPipelined(t *testing.T) {
	const maxQueries, sent = 4, 12
	srv := serveWith(t, "127.0.0.1:0", NewHandler(serverSnapshot(), nil), ServeOptions{MaxTCPQueries: maxQueries}, false)
	conn := dialSlowReader(t, srv.addr)
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(pipelined(t, sent)); err != nil {
		t.Fatal(err)
	}
	// Long enough for the server to answer the cap and close, while
	// its replies wait in its send buffer for the client to read.
	time.Sleep(300 * time.Millisecond)
	dc := &dns.Conn{Conn: conn}
	for i := range maxQueries {
		reply, err := dc.ReadMsg()
		if err != nil {
			t.Fatalf("reply %d of %d: %v", i+1, maxQueries, err)
		}
		if reply.Id != uint16(i) || len(reply.Answer) != 60 {
			t.Fatalf("reply %d: ID %d with %d answers, want ID %d with 60", i+1, reply.Id, len(reply.Answer), i)
		}
	}
	if _, err := dc.ReadMsg(); !errors.Is(err, io.EOF) {
		t.Errorf("after %d replies the connection gave %v, want EOF", maxQueries, err)
	}
}

// waitConnections waits up to 10 s until the server reg counts for holds
// n TCP connections.
func waitConnections(t *testing.T, reg prometheus.Gatherer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for series(t, reg, tcpConnections)[""] < float64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("the server took fewer than %d connections within 10s", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// holdConnections opens n TCP connections to addr, each of which sends
// data and then waits, and returns once the server (whose metrics reg
// holds) has taken all of them and had a moment to read what they sent.
// They are closed when t ends.
func holdConnections(t *testing.T, addr string, reg prometheus.Gatherer, n int, data []byte) {
	t.Helper()
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	waitConnections(t, reg, n)
	time.Sleep(50 * time.Millisecond) // for the reads of what they sent
}

// dialSlowReader connects to addr over TCP with a small receive buffer,
// so that replies the test does not read soon fill it and hold up the
// server's writes. The connection is closed when t ends.
func dialSlowReader(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pipelined returns n queries for big.local SRV, IDs 0 to n-1, each with
// its TCP length prefix, to be written at once.
func pipelined(t *testing.T, n int) []byte {
	t.Helper()
	var queries []byte
	for i := range n {
		q := new(dns.Msg).SetQuestion("big.local.", dns.TypeSRV)
		q.Id = uint16(i)
		wire, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		queries = append(binary.BigEndian.AppendUint16(queries, uint16(len(wire))), wire...)
	}
	return queries
}
