package dnsserver

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zkdns/zkdns/internal/testutil"
)

// served is a Serve running in the background for one test.
type served struct {
	addr string // ip:port of the one address served
	stop func() error
}

// serve binds addr, serves snap on it until the test ends, and returns the
// bound address. It skips the test when addr cannot be bound and skip is set.
func serve(t *testing.T, addr string, snap *Snapshot, skip bool) served {
	t.Helper()
	return serveHandler(t, addr, NewHandler(snap, nil), skip)
}

// serveHandler is serve with a handler of the test's own.
func serveHandler(t *testing.T, addr string, h *Handler, skip bool) served {
	t.Helper()
	return serveWith(t, addr, h, ServeOptions{}, skip)
}

// serveWith is serveHandler with limits of the test's own.
func serveWith(t *testing.T, addr string, h *Handler, opts ServeOptions, skip bool) served {
	t.Helper()
	l, err := Listen([]string{addr})
	if err != nil {
		if skip {
			t.Skipf("cannot bind %s here: %v", addr, err)
		}
		t.Fatalf("Listen: %v", err)
	}
	return serveListeners(t, l, h, opts)
}

// serveListeners serves l with h until the returned stop is called or t
// ends.
func serveListeners(t *testing.T, l *Listeners, h *Handler, opts ServeOptions) served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, h, opts) }()

	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(10 * time.Second):
				serveErr = errors.New("Serve did not return within 10s of cancel")
			}
		})
		return serveErr
	}
	t.Cleanup(func() { _ = stop() })
	return served{addr: l.Addrs()[0], stop: stop}
}

// digReply is the part of dig's output the tests look at.
type digReply struct {
	status string
	flags  []string
	answer []dns.RR
	ns     []dns.RR
	extra  []dns.RR
}

var (
	digStatus = regexp.MustCompile(`status: ([A-Z]+)`)
	digFlags  = regexp.MustCompile(`;; flags: ([a-z ]*);`)
)

// dig runs the real dig against addr and parses its output.
func dig(t *testing.T, addr string, args ...string) digReply {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	argv := append([]string{"@" + ap.Addr().String(), "-p", fmt.Sprint(ap.Port()), "+time=2", "+tries=1", "+nocookie"}, args...)
	out, err := exec.CommandContext(ctx, "dig", argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(argv, " "), err, out)
	}

	var r digReply
	if m := digStatus.FindSubmatch(out); m != nil {
		r.status = string(m[1])
	}
	if m := digFlags.FindSubmatch(out); m != nil {
		r.flags = strings.Fields(string(m[1]))
	}
	var section *[]dns.RR
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == ";; ANSWER SECTION:":
			section = &r.answer
		case line == ";; AUTHORITY SECTION:":
			section = &r.ns
		case line == ";; ADDITIONAL SECTION:":
			section = &r.extra
		case line == "" || strings.HasPrefix(line, ";"):
			if line == "" {
				section = nil
			}
		case section != nil:
			rr, err := dns.NewRR(line)
			if err != nil {
				t.Fatalf("dig printed a record that does not parse: %q: %v", line, err)
			}
			*section = append(*section, rr)
		}
	}
	if r.status == "" {
		t.Fatalf("no status in dig output:\n%s", out)
	}
	return r
}

// serverSnapshot is the fixture plus a service too big for one UDP reply.
func serverSnapshot() *Snapshot {
	big := bigSnapshot(60).byName.get("big").src
	return fixture().Apply(Update{Services: []Service{big}})
}

func TestServeDig(t *testing.T) {
	snap := serverSnapshot()
	cases := []struct {
		name      string
		args      []string
		status    string
		flags     []string // flags that must be set
		noFlags   []string // flags that must not be set
		answer    []string // expected answer section, compared as a set; nil: see answers
		answers   int      // with answer nil: how many answer records; -1: any number ≥ 1 below 60
		extra     []string // expected additional section, if not nil
		authority int      // records in the authority section
	}{
		{name: "SRV over UDP", args: []string{"payments.local.", "SRV"}, status: "NOERROR", flags: []string{"qr", "aa", "rd"}, noFlags: []string{"ra", "tc"},
			answer: []string{
				"payments.local. 5 IN SRV 0 100 8080 pay-1.payments.local.",
				"payments.local. 5 IN SRV 0 50 8080 pay-2.payments.local.",
			},
			extra: []string{"pay-1.payments.local. 5 IN A 192.0.2.1", "pay-2.payments.local. 5 IN AAAA 2001:db8::2"}},
		{name: "A over TCP", args: []string{"+tcp", "payments.local.", "A"}, status: "NOERROR", flags: []string{"aa"},
			answer: []string{"payments.local. 5 IN A 192.0.2.1"}},
		{name: "no recursion desired", args: []string{"+norecurse", "PayMents.LOCAL.", "AAAA"}, status: "NOERROR", flags: []string{"aa"}, noFlags: []string{"rd", "ra"},
			answer: []string{"PayMents.LOCAL. 5 IN AAAA 2001:db8::2"}},
		{name: "TXT", args: []string{"pay-1.payments.local.", "TXT"}, status: "NOERROR",
			answer: []string{`pay-1.payments.local. 5 IN TXT "format=curator" "id=pay-1"`}},
		{name: "NXDOMAIN", args: []string{"nope.local.", "A"}, status: "NXDOMAIN", flags: []string{"aa"}, authority: 1},
		{name: "NODATA", args: []string{"empty.local.", "SRV"}, status: "NOERROR", flags: []string{"aa"}, authority: 1},
		{name: "outside the zone", args: []string{"example.com.", "A"}, status: "REFUSED", noFlags: []string{"aa"}},
		{name: "class CH", args: []string{"-c", "CH", "version.bind.", "TXT"}, status: "REFUSED"},
		{name: "EDNS version 1", args: []string{"+edns=1", "+noednsneg", "local.", "SOA"}, status: "BADVERS"},
		{name: "signed with a TSIG key zkdns does not hold", args: []string{"-y", "hmac-sha256:client-key:c2VjcmV0LXNlY3JldA==", "payments.local.", "A"}, status: "NOTAUTH", noFlags: []string{"aa"}},
		{name: "ANY", args: []string{"payments.local.", "ANY"}, status: "NOERROR",
			answer: []string{`payments.local. 5 IN HINFO "RFC8482" ""`}},
		{name: "big SRV over UDP without EDNS is truncated", args: []string{"+ignore", "+noedns", "big.local.", "SRV"}, status: "NOERROR", flags: []string{"tc"}, answers: -1},
		{name: "big SRV over UDP with 512 bytes is truncated", args: []string{"+ignore", "+bufsize=512", "big.local.", "SRV"}, status: "NOERROR", flags: []string{"tc"}, answers: -1},
		{name: "big SRV over TCP is whole", args: []string{"+tcp", "big.local.", "SRV"}, status: "NOERROR", noFlags: []string{"tc"}, answers: 60},
		{name: "big SRV falls back to TCP by itself", args: []string{"+noedns", "big.local.", "SRV"}, status: "NOERROR", noFlags: []string{"tc"}, answers: 60},
	}

	for _, family := range []struct {
		name string
		addr string
		skip bool
	}{
		{name: "IPv4", addr: "127.0.0.1:0"},
		{name: "IPv6", addr: "[::1]:0", skip: true},
	} {
		t.Run(family.name, func(t *testing.T) {
			srv := serve(t, family.addr, snap, family.skip)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					r := dig(t, srv.addr, tc.args...)
					if r.status != tc.status {
						t.Errorf("status %s, want %s", r.status, tc.status)
					}
					for _, f := range tc.flags {
						if !slices.Contains(r.flags, f) {
							t.Errorf("flags %v lack %q", r.flags, f)
						}
					}
					for _, f := range tc.noFlags {
						if slices.Contains(r.flags, f) {
							t.Errorf("flags %v have %q", r.flags, f)
						}
					}
					switch {
					case tc.answer != nil:
						sameRRs(t, "answer", r.answer, tc.answer)
					case tc.answers == -1:
						if n := len(r.answer); n == 0 || n >= 60 {
							t.Errorf("%d answer records, want a truncated set of 1 to 59", n)
						}
					case len(r.answer) != tc.answers:
						t.Errorf("%d answer records, want %d", len(r.answer), tc.answers)
					}
					if tc.extra != nil {
						sameRRs(t, "additional", r.extra, tc.extra)
					}
					if len(r.ns) != tc.authority {
						t.Errorf("%d authority records, want %d", len(r.ns), tc.authority)
					}
				})
			}
			if err := srv.stop(); err != nil {
				t.Fatalf("Serve returned %v after cancel, want nil", err)
			}
			assertReleased(t, srv.addr)
		})
	}
}

// TestServeWildcardRepliesFromTheAddressAsked: a socket bound to a
// wildcard address takes queries sent to any of the host's addresses, and
// each reply must leave from the address its query was sent to, or the
// resolver, which accepts replies only from the server it asked, drops it
// and times out. 127.0.0.2 is one such address whose replies would
// otherwise leave from 127.0.0.1. Replies of the fast path, of the slow
// path and FORMERRs each go out their own way, so each is tried. The test
// runs in a network namespace of its own, so that its wildcard sockets
// reach nothing but loopback.
func TestServeWildcardRepliesFromTheAddressAsked(t *testing.T) {
	if !testutil.InPrivateNetwork(t) {
		return
	}
	fast, _ := new(dns.Msg).SetQuestion("payments.local.", dns.TypeA).Pack()
	withCookie := new(dns.Msg).SetQuestion("payments.local.", dns.TypeA)
	withCookie.SetEdns0(1232, false)
	opt := withCookie.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	slow, err := withCookie.Pack()
	if err != nil {
		t.Fatal(err)
	}
	malformed := slices.Clone(fast[:len(fast)-3]) // the question cut short
	forwarded, _ := outsideQuery(7, 0, dns.TypeA).Pack()
	upstream := startUpstream(t, "upstream", newArrivals(), func(r *dns.Msg, tcp bool) *dns.Msg {
		return new(dns.Msg).SetReply(r)
	})
	queries := []struct {
		name   string
		packet []byte
		rcode  int
	}{
		{"fast path", fast, dns.RcodeSuccess},
		{"slow path (an EDNS option)", slow, dns.RcodeSuccess},
		{"FORMERR", malformed, dns.RcodeFormatError},
		{"forwarded (written later, by another goroutine)", forwarded, dns.RcodeSuccess},
	}

	listenV4Only := func(t *testing.T) *Listeners {
		pc, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)))
		if err != nil {
			pc.Close()
			t.Fatal(err)
		}
		return &Listeners{UDP: []net.PacketConn{pc}, TCP: []net.Listener{ln}}
	}
	listen := func(addr string) func(t *testing.T) *Listeners {
		return func(t *testing.T) *Listeners {
			l, err := Listen([]string{addr})
			if err != nil {
				t.Skipf("cannot bind %s here: %v", addr, err)
			}
			return l
		}
	}
	sockets := []struct {
		name   string
		listen func(t *testing.T) *Listeners
		to     []string
	}{
		{"0.0.0.0 as configured (a dual-stack socket)", listen("0.0.0.0:0"), []string{"127.0.0.1", "127.0.0.2", "::1"}},
		{"[::]", listen("[::]:0"), []string{"127.0.0.2", "::1"}},
		{"an IPv4 socket on 0.0.0.0 (as systemd may pass)", listenV4Only, []string{"127.0.0.1", "127.0.0.2", "127.1.2.3"}},
	}
	for _, sock := range sockets {
		t.Run(sock.name, func(t *testing.T) {
			h := NewHandler(serverSnapshot(), nil)
			if err := h.SetPolicy(Policy{Upstreams: []string{upstream.addr}}); err != nil {
				t.Fatal(err)
			}
			srv := serveListeners(t, sock.listen(t), h, ServeOptions{})
			port := netip.MustParseAddrPort(srv.addr).Port()
			for _, to := range sock.to {
				dest := netip.AddrPortFrom(netip.MustParseAddr(to), port)
				client, err := net.ListenUDP("udp", nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { client.Close() })
				for _, q := range queries {
					if _, err := client.WriteToUDPAddrPort(q.packet, dest); err != nil {
						t.Skipf("cannot send to %v here: %v", dest, err)
					}
					_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
					buf := make([]byte, 4096)
					n, from, err := client.ReadFromUDPAddrPort(buf)
					if err != nil {
						t.Fatalf("%s to %v: no reply: %v", q.name, dest, err)
					}
					if got := netip.AddrPortFrom(from.Addr().Unmap(), from.Port()); got != dest {
						t.Errorf("%s to %v: the reply came from %v; a resolver drops it", q.name, dest, got)
					}
					reply := new(dns.Msg)
					if err := reply.Unpack(buf[:n]); err != nil || reply.Rcode != q.rcode {
						t.Errorf("%s to %v: reply %v (%v), want rcode %s", q.name, dest, reply, err, dns.RcodeToString[q.rcode])
					}
				}
			}
		})
	}
}

// assertReleased binds addr on UDP and TCP again, which only works if the
// server let go of it.
func assertReleased(t *testing.T, addr string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Errorf("UDP %s still taken after Serve returned: %v", addr, err)
	} else {
		pc.Close()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Errorf("TCP %s still taken after Serve returned: %v", addr, err)
	} else {
		ln.Close()
	}
}

// goResolver is Go's own DNS client, sending every query to addr.
func goResolver(addr string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

func TestServeGoResolver(t *testing.T) {
	srv := serve(t, "127.0.0.1:0", serverSnapshot(), false)
	r := goResolver(srv.addr)

	cases := []struct {
		name  string
		query func(ctx context.Context) ([]string, error)
		want  []string // sorted
		nx    bool     // want a not-found error instead
	}{
		{name: "LookupSRV by name", query: func(ctx context.Context) ([]string, error) {
			_, srvs, err := r.LookupSRV(ctx, "", "", "payments.local.")
			return srvStrings(srvs), err
		}, want: []string{"pay-1.payments.local.:8080/100", "pay-2.payments.local.:8080/50"}},
		{name: "LookupSRV by service and proto", query: func(ctx context.Context) ([]string, error) {
			_, srvs, err := r.LookupSRV(ctx, "payments", "tcp", "local.")
			return srvStrings(srvs), err
		}, want: []string{"pay-1.payments.local.:8080/100", "pay-2.payments.local.:8080/50"}},
		{name: "LookupSRV of a big set comes whole over TCP", query: func(ctx context.Context) ([]string, error) {
			_, srvs, err := r.LookupSRV(ctx, "", "", "big.local.")
			return []string{fmt.Sprint(len(srvs))}, err
		}, want: []string{"60"}},
		{name: "LookupHost", query: func(ctx context.Context) ([]string, error) {
			return r.LookupHost(ctx, "payments.local.")
		}, want: []string{"192.0.2.1", "2001:db8::2"}},
		{name: "LookupIPAddr of an instance", query: func(ctx context.Context) ([]string, error) {
			addrs, err := r.LookupIPAddr(ctx, "pay-2.payments.local.")
			var out []string
			for _, a := range addrs {
				out = append(out, a.IP.String())
			}
			return out, err
		}, want: []string{"2001:db8::2"}},
		{name: "LookupTXT joins one record's strings", query: func(ctx context.Context) ([]string, error) {
			return r.LookupTXT(ctx, "pay-1.payments.local.")
		}, want: []string{"format=curatorid=pay-1"}},
		{name: "LookupHost of a missing name", query: func(ctx context.Context) ([]string, error) {
			return r.LookupHost(ctx, "nope.local.")
		}, nx: true},
		{name: "LookupSRV of a missing name", query: func(ctx context.Context) ([]string, error) {
			_, srvs, err := r.LookupSRV(ctx, "", "", "nope.local.")
			return srvStrings(srvs), err
		}, nx: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := tc.query(ctx)
			if tc.nx {
				var dnsErr *net.DNSError
				if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
					t.Fatalf("got %v, %v; want a not-found DNSError", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("lookup: %v", err)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func srvStrings(srvs []*net.SRV) []string {
	var out []string
	for _, s := range srvs {
		out = append(out, fmt.Sprintf("%s:%d/%d", s.Target, s.Port, s.Weight))
	}
	return out
}

func TestListen(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	cases := []struct {
		name    string
		addrs   []string
		wantErr string // substring of the error; "" means success
	}{
		{name: "one free port", addrs: []string{"127.0.0.1:0"}},
		{name: "two addresses", addrs: []string{"127.0.0.1:0", "127.0.0.1:0"}},
		{name: "no addresses", addrs: nil, wantErr: "no addresses"},
		{name: "hostname is not an address", addrs: []string{"localhost:0"}, wantErr: `"localhost:0"`},
		{name: "missing port", addrs: []string{"127.0.0.1"}, wantErr: `"127.0.0.1"`},
		{name: "port taken for TCP", addrs: []string{"127.0.0.1:0", taken.Addr().String()}, wantErr: taken.Addr().String()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Listen(tc.addrs)
			if tc.wantErr != "" {
				if err == nil {
					l.Close()
					t.Fatalf("Listen(%q) succeeded, want an error naming %s", tc.addrs, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "dnsserver: ") {
					t.Errorf("error %q does not start with dnsserver: and name %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Listen: %v", err)
			}
			defer l.Close()
			got := l.Addrs()
			if len(got) != len(tc.addrs) || len(l.UDP) != len(tc.addrs) || len(l.TCP) != len(tc.addrs) {
				t.Fatalf("Addrs %v, %d UDP, %d TCP; want %d of each", got, len(l.UDP), len(l.TCP), len(tc.addrs))
			}
			for i := range tc.addrs {
				if u, c := l.UDP[i].LocalAddr().String(), l.TCP[i].Addr().String(); u != c || u != got[i] {
					t.Errorf("address %d: UDP %s, TCP %s, Addrs %s; want one port for both", i, u, c, got[i])
				}
			}
			if err := l.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := l.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			for _, a := range got {
				assertReleased(t, a)
			}
		})
	}
}

// TestListenReleasesOnFailure checks that a failing Listen closes what it
// had already bound.
func TestListenReleasesOnFailure(t *testing.T) {
	probe, err := Listen([]string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	free := probe.Addrs()[0]
	probe.Close()

	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	if l, err := Listen([]string{free, taken.LocalAddr().String()}); err == nil {
		l.Close()
		t.Fatal("Listen succeeded on a taken UDP port")
	}
	assertReleased(t, free)
}

func TestServeErrors(t *testing.T) {
	cases := []struct {
		name    string
		run     func(t *testing.T) error
		wantErr string
	}{
		{name: "no listeners", run: func(t *testing.T) error {
			return Serve(context.Background(), &Listeners{}, NewHandler(nil, nil), ServeOptions{})
		}, wantErr: "no listeners"},
		{name: "nil handler", run: func(t *testing.T) error {
			l, err := Listen([]string{"127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			defer assertReleased(t, l.Addrs()[0])
			return Serve(context.Background(), l, nil, ServeOptions{})
		}, wantErr: "nil handler"},
		{name: "a listener closed under Serve", run: func(t *testing.T) error {
			l, err := Listen([]string{"127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l.TCP[0].Close()
			err = Serve(ctx, l, NewHandler(nil, nil), ServeOptions{})
			if ctx.Err() != nil {
				t.Fatal("Serve ran until the test timeout; it should have stopped on the listener failure")
			}
			return err
		}, wantErr: "dnsserver: serving tcp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run(t)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Serve returned %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestServeStopsBeforeStart(t *testing.T) {
	l, err := Listen([]string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addrs()[0]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, NewHandler(nil, nil), ServeOptions{}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve with a cancelled context returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve with a cancelled context did not return")
	}
	assertReleased(t, addr)
}

// TestServeMalformed sends packets that do not parse and checks that the
// server answers FORMERR where it can read a header, and keeps serving.
func TestServeMalformed(t *testing.T) {
	srv := serve(t, "127.0.0.1:0", fixture(), false)
	seeds := fuzzSeeds(t)
	cases := []struct {
		name   string
		packet []byte
		reply  bool // a FORMERR reply is expected
	}{
		{name: "compression pointer loop", packet: seeds["pointer-loop"], reply: true},
		{name: "two questions", packet: seeds["two-questions"], reply: true},
		{name: "short header", packet: seeds["short-header"]},
		{name: "garbage", packet: seeds["garbage"]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("udp", srv.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(tc.packet); err != nil {
				t.Fatal(err)
			}
			if tc.reply {
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 512)
				n, err := conn.Read(buf)
				if err != nil {
					t.Fatalf("no reply: %v", err)
				}
				m := new(dns.Msg)
				if err := m.Unpack(buf[:n]); err != nil {
					t.Fatalf("reply does not unpack: %v", err)
				}
				if m.Rcode != dns.RcodeFormatError {
					t.Errorf("rcode %s, want FORMERR", dns.RcodeToString[m.Rcode])
				}
			}
			// The server still answers a good query, over UDP and TCP.
			for _, network := range []string{"udp", "tcp"} {
				c := &dns.Client{Net: network, Timeout: 5 * time.Second}
				m, _, err := c.Exchange(new(dns.Msg).SetQuestion("payments.local.", dns.TypeA), srv.addr)
				if err != nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
					t.Errorf("%s query after a bad packet: %v, %v", network, m, err)
				}
			}
		})
	}
}

// TestServeGrowsUDPReceiveBuffer checks that Serve raises the UDP socket's
// receive buffer as far as the process may: to udpReceiveBuffer with
// CAP_NET_ADMIN (SO_RCVBUFFORCE), else to the net.core.rmem_max cap.
func TestServeGrowsUDPReceiveBuffer(t *testing.T) {
	limit := udpReceiveBuffer
	if b, err := os.ReadFile("/proc/sys/net/core/rmem_max"); err == nil {
		if rmemMax, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && rmemMax < limit {
			limit = rmemMax
		}
	}
	l, err := Listen([]string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := l.UDP[0].(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, NewHandler(fixture(), nil), ServeOptions{}) }()
	defer func() {
		cancel()
		<-done
	}()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("SO_RCVBUF of at least %d bytes", limit), func() (bool, string) {
		var got int
		var sockErr error
		if err := raw.Control(func(fd uintptr) {
			// Linux reports twice the size asked for (the rest is its
			// bookkeeping); half of it is what was granted.
			got, sockErr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
			got /= 2
		}); err != nil || sockErr != nil {
			return false, fmt.Sprintf("getsockopt: %v %v", err, sockErr)
		}
		return got >= limit, fmt.Sprintf("SO_RCVBUF = %d", got)
	})
}

// TestUDPReceiveBufferHoldsAStall checks what udpReceiveBuffer is for:
// 36,000 small queries arriving while nothing reads the socket (a reader
// off its core) all wait in the kernel, none dropped. It needs the whole
// buffer granted, which takes CAP_NET_ADMIN or a raised rmem_max.
//
// On a loaded machine the kernel may lose some of the burst before it
// reaches any socket (loopback's input backlog, its softirq starved):
// those say nothing of the buffer, so the burst is sent again, a few
// times at most. A drop at the socket is always a failure.
func TestUDPReceiveBufferHoldsAStall(t *testing.T) {
	const queries, attempts = 36_000, 3
	for attempt := 1; ; attempt++ {
		held, socketDrops := stallUDP(t, queries)
		if socketDrops > 0 {
			t.Fatalf("the socket dropped %d of %d queries while unread, holding %d: the buffer overflowed", socketDrops, queries, held)
		}
		if held == queries {
			return
		}
		if attempt == attempts {
			t.Skipf("the kernel lost queries before the socket on all %d bursts (the last: %d of %d), so the buffer could not be filled", attempts, queries-held, queries)
		}
		t.Logf("burst %d: %d of %d queries lost before the socket, none at it; sending again", attempt, queries-held, queries)
	}
}

// stallUDP sends queries to a socket with udpReceiveBuffer that nothing
// reads, then reads them all: how many the socket held, and how many the
// kernel dropped at it.
func stallUDP(t *testing.T, queries int) (held int, socketDrops int64) {
	t.Helper()
	server, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	growReceiveBuffer(server)
	raw, err := server.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var granted int
	if err := raw.Control(func(fd uintptr) {
		granted, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	}); err != nil {
		t.Fatal(err)
	}
	if granted < 2*udpReceiveBuffer { // Linux reports twice what was granted
		t.Skipf("receive buffer %d bytes, not the %d asked for: no CAP_NET_ADMIN, and net.core.rmem_max is lower", granted/2, udpReceiveBuffer)
	}
	port := server.LocalAddr().(*net.UDPAddr).Port
	dropsBefore := testutil.UDPDrops(port)
	client, err := net.DialUDP("udp", nil, server.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	q, err := new(dns.Msg).SetQuestion("svc123.local.", dns.TypeSRV).Pack()
	if err != nil {
		t.Fatal(err)
	}
	for range queries {
		if _, err := client.Write(q); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 512)
	for {
		if err := server.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := server.ReadFromUDP(buf); err != nil {
			break // all read: nothing more within the deadline
		}
		held++
	}
	return held, testutil.UDPDrops(port) - dropsBefore
}

// TestServeUDPAllocatesNothing holds the whole UDP path of a fast-path
// query, from the socket read to the reply written, to no allocation,
// with metrics on: at tens of thousands of queries a second, garbage
// means collections, and their pauses show in the latency tail. The
// count is the whole process's, client and server, averaged over many
// queries.
func TestServeUDPAllocatesNothing(t *testing.T) {
	for _, family := range []struct{ name, addr string }{{"IPv4", "127.0.0.1:0"}, {"IPv6", "[::1]:0"}} {
		t.Run(family.name, func(t *testing.T) {
			m, err := NewMetrics(prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			h := NewHandler(serverSnapshot(), m)
			srv := serveHandler(t, family.addr, h, family.name == "IPv6")
			exchange := udpAsker(t, srv.addr, "payments.local.", dns.TypeSRV)
			exchange() // the first read sets up the socket's poller
			if allocs := testing.AllocsPerRun(1000, exchange); allocs > 0 {
				t.Errorf("%.0f allocations per query, want none", allocs)
			}
		})
	}
}

// udpAsker dials addr over UDP and returns a function that asks it for
// (name, qtype) and fails tb unless the reply is an answer. Once dialled,
// asking allocates nothing on the client's side. The socket closes when
// tb ends.
func udpAsker(tb testing.TB, addr, name string, qtype uint16) func() {
	tb.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	query, err := q.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, 1500)
	return func() {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(query); err != nil {
			tb.Fatal(err)
		}
		n, err := c.Read(buf)
		if err != nil {
			tb.Fatal(err)
		}
		if n < 12 || buf[3]&0x0F != dns.RcodeSuccess || binary.BigEndian.Uint16(buf[6:]) == 0 {
			tb.Fatalf("reply %x is not an answer", buf[:n])
		}
	}
}
