package dnsserver

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestRelisten moves a served set of addresses to another that keeps one
// of them, the way a reload does: the kept address must keep its port
// and answer every query sent across the switch on the first try, the
// new address must answer, and the dropped one must be let go.
func TestRelisten(t *testing.T) {
	h := NewHandler(serverSnapshot(), nil)
	old, err := Listen([]string{"127.0.0.1:0", "127.0.0.2:0"})
	if err != nil {
		t.Fatal(err)
	}
	oldAddrs := old.Addrs()
	oldServe := serveListeners(t, old, h, ServeOptions{})

	// Queries to the kept address, one after another, from before the
	// switch until after it.
	const warmUp = 20
	var (
		wg       sync.WaitGroup
		asked    int
		missed   []string
		started  = make(chan struct{})
		switched = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := &dns.Client{Timeout: 2 * time.Second}
		q := new(dns.Msg).SetQuestion("payments.local.", dns.TypeSRV)
		after := 0 // queries sent once the switch is over
		for asked < 100000 && after < warmUp {
			if asked == warmUp {
				close(started)
			}
			select {
			case <-switched:
				after++
			default:
			}
			r, _, err := c.Exchange(q, oldAddrs[0])
			asked++
			if err != nil || r.Rcode != dns.RcodeSuccess {
				missed = append(missed, fmt.Sprintf("query %d: %v", asked, err))
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no queries answered before the switch")
	}

	next, err := old.Relisten([]string{"127.0.0.1:0", "127.0.0.3:0"})
	if err != nil {
		t.Fatalf("Relisten: %v", err)
	}
	nextAddrs := next.Addrs()
	if nextAddrs[0] != oldAddrs[0] {
		t.Errorf("the kept address moved from %s to %s", oldAddrs[0], nextAddrs[0])
	}
	serveListeners(t, next, h, ServeOptions{})
	if err := oldServe.stop(); err != nil {
		t.Fatalf("old Serve: %v", err)
	}
	close(switched)
	wg.Wait()
	if len(missed) > 0 || asked == 0 {
		t.Errorf("%d of %d queries to the kept address went unanswered: %s", len(missed), asked, strings.Join(missed, "; "))
	}

	for _, addr := range nextAddrs {
		for _, proto := range []string{"udp", "tcp"} {
			c := &dns.Client{Net: proto, Timeout: 2 * time.Second}
			r, _, err := c.Exchange(new(dns.Msg).SetQuestion("payments.local.", dns.TypeA), addr)
			if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
				t.Errorf("%s %s after the switch: %v %v", proto, addr, err, r)
			}
		}
	}
	assertReleased(t, oldAddrs[1])
}

// TestRelistenFailure: when one new address cannot be bound, Relisten
// fails whole, leaves nothing of its own open, and the served sockets
// go on answering.
func TestRelistenFailure(t *testing.T) {
	h := NewHandler(serverSnapshot(), nil)
	old, err := Listen([]string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	served := serveListeners(t, old, h, ServeOptions{})
	port := old.UDP[0].LocalAddr().(*net.UDPAddr).Port
	taken, err := net.ListenPacket("udp", "127.0.0.4:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	cases := []struct {
		name    string
		addrs   []string
		wantErr []string
	}{
		{"a taken port", []string{"127.0.0.1:0", taken.LocalAddr().String()}, []string{taken.LocalAddr().String(), "address already in use"}},
		// The same address spelled as IPv4-mapped IPv6 is a different
		// address to Relisten but the same socket to the kernel: the
		// error says zkdns holds the port itself.
		{"zkdns's own port under another address", []string{fmt.Sprintf("[::ffff:127.0.0.1]:%d", port)},
			[]string{"address already in use", fmt.Sprintf("zkdns itself listens on port %d", port)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := openDescriptors(t)
			if next, err := old.Relisten(tc.addrs); err == nil {
				next.Close()
				t.Fatalf("Relisten(%q) succeeded", tc.addrs)
			} else {
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
			}
			if after := openDescriptors(t); after != before {
				t.Errorf("%d descriptors open after the failed Relisten, %d before", after, before)
			}
		})
	}
	c := &dns.Client{Timeout: 2 * time.Second}
	if r, _, err := c.Exchange(new(dns.Msg).SetQuestion("payments.local.", dns.TypeA), served.addr); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Errorf("the served address after failed Relistens: %v %v", err, r)
	}
}

// openDescriptors counts the process's open file descriptors.
func openDescriptors(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(entries)
}
