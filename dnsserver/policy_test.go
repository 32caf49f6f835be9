package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zkdns/zkdns/internal/testutil"
)

func TestPolicyAdmits(t *testing.T) {
	open := &serveEnv{openByDefault: true}
	exposed := &serveEnv{openByDefault: false}
	cases := []struct {
		name   string
		policy Policy
		env    *serveEnv
		admit  []string
		deny   []string
	}{
		{name: "default, loopback listeners: everyone", env: open,
			admit: []string{"127.0.0.1", "192.0.2.1", "2001:db8::1", "::1"}},
		{name: "default, exposed listener: loopback only", env: exposed,
			admit: []string{"127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"},
			deny:  []string{"192.0.2.1", "2001:db8::1", "0.0.0.0"}},
		{name: "default, direct ServeDNS: everyone", env: nil,
			admit: []string{"192.0.2.1", "2001:db8::1"}},
		{name: "networks", env: exposed, policy: Policy{Allow: []string{"192.0.2.0/25", "2001:db8::/32", "198.51.100.7"}},
			admit: []string{"192.0.2.1", "192.0.2.127", "2001:db8:ffff::1", "198.51.100.7", "::ffff:192.0.2.9"},
			deny:  []string{"192.0.2.128", "198.51.100.8", "127.0.0.1", "::1", "2001:db9::1", "::ffff:198.51.100.8"}},
		{name: "a link-local source comes with its zone", env: exposed, policy: Policy{Allow: []string{"fe80::/10"}},
			admit: []string{"fe80::1%2", "fe80::1"},
			deny:  []string{"2001:db8::1%2"}},
		{name: "a list replaces the default even on loopback", env: open, policy: Policy{Allow: []string{"127.0.0.2/32"}},
			admit: []string{"127.0.0.2"},
			deny:  []string{"127.0.0.1", "::1"}},
		{name: "host bits are masked", env: exposed, policy: Policy{Allow: []string{"198.51.100.77/24"}},
			admit: []string{"198.51.100.1"}},
		{name: "IPv4-mapped network matches IPv4 sources", env: exposed, policy: Policy{Allow: []string{"::ffff:192.0.2.0/120"}},
			admit: []string{"192.0.2.200"},
			deny:  []string{"198.51.100.1"}},
		{name: "empty list admits no one", env: open, policy: Policy{Allow: []string{}},
			deny: []string{"127.0.0.1", "::1", "192.0.2.1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := compilePolicy(tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			// As the UDP fast path passes them: as the socket gave them.
			for _, a := range tc.admit {
				if !p.admits(netip.MustParseAddr(a), tc.env) {
					t.Errorf("%s denied, want admitted", a)
				}
			}
			for _, a := range tc.deny {
				if p.admits(netip.MustParseAddr(a), tc.env) {
					t.Errorf("%s admitted, want denied", a)
				}
			}
		})
	}
}

func TestSetPolicyErrors(t *testing.T) {
	cases := []struct {
		name    string
		policy  Policy
		wantErr string // "" means accepted
	}{
		{name: "valid", policy: Policy{Allow: []string{"10.0.0.0/8", "::1"}, Upstreams: []string{"192.0.2.53:53", "[2001:db8::53]:5353"}}},
		{name: "allow not a network", policy: Policy{Allow: []string{"10.0.0.0/33"}}, wantErr: `allow "10.0.0.0/33"`},
		{name: "allow a host name", policy: Policy{Allow: []string{"localhost"}}, wantErr: `allow "localhost"`},
		{name: "upstream without port", policy: Policy{Upstreams: []string{"192.0.2.53"}}, wantErr: `upstream "192.0.2.53"`},
		{name: "upstream port 0", policy: Policy{Upstreams: []string{"192.0.2.53:0"}}, wantErr: `upstream "192.0.2.53:0"`},
		{name: "upstream host name", policy: Policy{Upstreams: []string{"resolver.example:53"}}, wantErr: `upstream "resolver.example:53"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHandler(fixture(), nil)
			before := Policy{Allow: []string{"198.51.100.0/24"}}
			if err := h.SetPolicy(before); err != nil {
				t.Fatal(err)
			}
			err := h.SetPolicy(tc.policy)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("SetPolicy: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), "dnsserver: ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("SetPolicy returned %v, want an error starting dnsserver: and naming %s", err, tc.wantErr)
			}
			// The policy in force is the one before.
			if h.policy.Load().admits(netip.MustParseAddr("192.0.2.1"), nil) {
				t.Error("the failed SetPolicy replaced the policy in force")
			}
		})
	}
}

// TestNewServeEnvDefault checks which listeners make the default Allow
// open to everyone: only loopback ones.
func TestNewServeEnvDefault(t *testing.T) {
	cases := []struct {
		name  string
		addrs []string
		open  bool
	}{
		{name: "IPv4 loopback", addrs: []string{"127.0.0.1:53"}, open: true},
		{name: "both loopbacks", addrs: []string{"127.0.0.53:53", "[::1]:53"}, open: true},
		{name: "a routable address", addrs: []string{"127.0.0.1:53", "192.0.2.1:53"}},
		{name: "every IPv4 address", addrs: []string{"0.0.0.0:53"}},
		{name: "every IPv6 address", addrs: []string{"[::]:53"}},
		{name: "IPv6 documentation address", addrs: []string{"[2001:db8::1]:53"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := new(Listeners)
			for _, a := range tc.addrs {
				l.UDP = append(l.UDP, fakePacketConn{addr: net.UDPAddrFromAddrPort(netip.MustParseAddrPort(a))})
			}
			env := newServeEnv(context.Background(), l, ServeOptions{}.withDefaults())
			if env.openByDefault != tc.open {
				t.Errorf("openByDefault %v, want %v", env.openByDefault, tc.open)
			}
			if len(env.self) != len(tc.addrs) {
				t.Errorf("self %v, want the %d listen addresses", env.self, len(tc.addrs))
			}
		})
	}
}

// fakePacketConn is a socket that only has an address.
type fakePacketConn struct {
	net.PacketConn
	addr net.Addr
}

func (c fakePacketConn) LocalAddr() net.Addr { return c.addr }

// TestServeAllow runs a server on 127.0.0.1 and queries it from two
// loopback addresses, 127.0.0.1 and 127.0.0.2, while the allowed networks
// change under it as a reload would change them.
func TestServeAllow(t *testing.T) {
	m, reg := newTestMetrics(t)
	h := NewHandler(fixture(), m)
	srv := serveHandler(t, "127.0.0.1:0", h, false)
	if c, err := net.ListenPacket("udp", "127.0.0.2:0"); err != nil {
		t.Skipf("cannot bind 127.0.0.2 here: %v", err)
	} else {
		c.Close()
	}

	steps := []struct {
		name   string
		allow  []string // nil: the default
		admits map[string]bool
	}{
		{name: "only 127.0.0.2", allow: []string{"127.0.0.2/32"}, admits: map[string]bool{"127.0.0.1": false, "127.0.0.2": true}},
		{name: "reloaded: only 127.0.0.1", allow: []string{"127.0.0.1"}, admits: map[string]bool{"127.0.0.1": true, "127.0.0.2": false}},
		{name: "reloaded: the default on a loopback listener", admits: map[string]bool{"127.0.0.1": true, "127.0.0.2": true}},
	}
	var deniedUDP, deniedTCP float64
	for _, step := range steps {
		if err := h.SetPolicy(Policy{Allow: step.allow}); err != nil {
			t.Fatal(err)
		}
		for _, client := range []string{"127.0.0.1", "127.0.0.2"} {
			admitted := step.admits[client]
			t.Run(step.name+"/udp from "+client, func(t *testing.T) {
				if !admitted {
					deniedUDP++
				}
				queryFrom(t, "udp", client, srv.addr, admitted, func() {
					// The denial is counted once the packet is dropped:
					// after that no reply can come.
					waitSeries(t, reg, deniedTotal, "proto=udp", deniedUDP)
				})
			})
			t.Run(step.name+"/tcp from "+client, func(t *testing.T) {
				if !admitted {
					deniedTCP++
				}
				queryFrom(t, "tcp", client, srv.addr, admitted, nil)
			})
		}
	}
	sameSeries(t, deniedTotal, series(t, reg, deniedTotal), map[string]float64{"proto=udp": deniedUDP, "proto=tcp": deniedTCP}, 2)
}

// TestServeAllowMappedSource serves UDP on an IPv6 socket that takes IPv4
// too, as a "[::]:53" listener does: its IPv4 clients come IPv4-mapped,
// and an allowed IPv4 network must still admit them. The socket is bound
// to ::ffff:127.0.0.1, loopback only.
func TestServeAllowMappedSource(t *testing.T) {
	pc := listenDualStack(t, netip.MustParseAddr("::ffff:127.0.0.1"))
	h := NewHandler(fixture(), nil)
	if err := h.SetPolicy(Policy{Allow: []string{"127.0.0.0/8"}}); err != nil {
		t.Fatal(err)
	}
	srv := serveListeners(t, &Listeners{UDP: []net.PacketConn{pc}}, h, ServeOptions{})
	port := pc.LocalAddr().(*net.UDPAddr).Port
	queryFrom(t, "udp", "127.0.0.1", fmt.Sprintf("127.0.0.1:%d", port), true, nil)
	if err := srv.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// listenDualStack binds a UDP socket of the IPv6 family that also takes
// IPv4 to addr, port 0. Go's net refuses an IPv4-mapped address for
// "udp6", so the socket is made by hand. It skips t where IPv6 sockets
// cannot be made.
func listenDualStack(t *testing.T, addr netip.Addr) net.PacketConn {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no IPv6 sockets here: %v", err)
	}
	f := os.NewFile(uintptr(fd), "dual-stack udp")
	defer f.Close()
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 0); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet6{Addr: addr.As16()}); err != nil {
		t.Fatalf("bind %s: %v", addr, err)
	}
	pc, err := net.FilePacketConn(f)
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// queryFrom asks addr for payments.local A from a socket bound to the IP
// client. Admitted, it must get the answer. Denied, over TCP it must get
// REFUSED and then see the connection closed; over UDP it must get no
// reply at all, which is checked once dropped returns.
func queryFrom(t *testing.T, proto, client, addr string, admitted bool, dropped func()) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if proto == "udp" {
		d.LocalAddr = &net.UDPAddr{IP: net.ParseIP(client)}
	} else {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(client)}
	}
	conn, err := d.Dial(proto, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	dc := &dns.Conn{Conn: conn}
	q := new(dns.Msg).SetQuestion("payments.local.", dns.TypeA)
	q.SetEdns0(1232, false)
	if err := dc.WriteMsg(q); err != nil {
		t.Fatal(err)
	}
	if !admitted && proto == "udp" {
		dropped()
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if reply, err := dc.ReadMsg(); err == nil {
			t.Fatalf("a denied UDP query was answered: %v", reply)
		}
		return
	}
	reply, err := dc.ReadMsg()
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	if reply.Id != q.Id {
		t.Errorf("reply ID %d, want %d", reply.Id, q.Id)
	}
	if admitted {
		if reply.Rcode != dns.RcodeSuccess || len(reply.Answer) != 1 {
			t.Errorf("admitted query answered %s with %d records, want the A record", dns.RcodeToString[reply.Rcode], len(reply.Answer))
		}
		return
	}
	if reply.Rcode != dns.RcodeRefused || len(reply.Answer) != 0 {
		t.Errorf("denied TCP query answered %s with %d records, want REFUSED and none", dns.RcodeToString[reply.Rcode], len(reply.Answer))
	}
	if opt := reply.IsEdns0(); opt == nil {
		t.Error("the refusal has no OPT; the query had one")
	} else {
		checkEDE(t, opt, "Prohibited")
	}
	if _, err := dc.ReadMsg(); !errors.Is(err, io.EOF) {
		t.Errorf("after REFUSED the connection gave %v, want EOF: the server closes it", err)
	}
}

// waitSeries waits until the series key of the metric name reaches want,
// for at most 10 s.
func waitSeries(t *testing.T, reg prometheus.Gatherer, name, key string, want float64) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%s{%s} = %v", name, key, want), func() (bool, string) {
		got := series(t, reg, name)[key]
		return got == want, fmt.Sprint(got)
	})
}
