package main

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// probeServer answers on 127.0.0.1: A records for up.test., NXDOMAIN for
// down.test., an empty NOERROR for empty.test., a reply with another ID
// before the real one for stale.test., and nothing for silent.test. Its
// replies are packed beforehand, so that it allocates nothing per
// question either. It stops when the test ends.
func probeServer(t *testing.T) string {
	t.Helper()
	replies := map[string][][]byte{} // question section → replies, ID 0 for the question's
	for _, name := range []string{"up.test.", "down.test.", "empty.test.", "stale.test.", "silent.test."} {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		q.Id = 0
		r := new(dns.Msg)
		r.SetReply(q)
		a := &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.IPv4(10, 0, 0, 1)}
		var out []*dns.Msg
		switch name {
		case "up.test.":
			r.Answer = append(r.Answer, a)
			out = append(out, r)
		case "down.test.":
			r.Rcode = dns.RcodeNameError
			out = append(out, r)
		case "empty.test.":
			out = append(out, r)
		case "stale.test.":
			old := r.Copy()
			old.Id = 0xffff // written as the question's ID - 1
			old.Answer = append(old.Answer, a)
			out = append(out, old, r)
		}
		wq, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out {
			wire, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			replies[string(wq[12:])] = append(replies[string(wq[12:])], wire)
		}
	}
	return serveUDP(t, func(query []byte, send func([]byte)) {
		if len(query) < 12 {
			return
		}
		id := binary.BigEndian.Uint16(query)
		for _, r := range replies[string(query[12:])] {
			binary.BigEndian.PutUint16(r, id+binary.BigEndian.Uint16(r))
			send(r)
			binary.BigEndian.PutUint16(r, binary.BigEndian.Uint16(r)-id)
		}
	})
}

func TestProbe(t *testing.T) {
	c, err := dialDNS(probeServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	tests := []struct {
		name               string
		timeout            time.Duration
		wantHas, wantReply bool
	}{
		{"up.test", 5 * time.Second, true, true},
		{"down.test", 5 * time.Second, false, true},
		{"empty.test", 5 * time.Second, false, true},
		// The reply to an earlier question says "present": only the
		// reply with this question's ID counts.
		{"stale.test", 5 * time.Second, false, true},
		{"silent.test", 50 * time.Millisecond, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := newProbe(c, tt.name, dns.TypeA)
			if err != nil {
				t.Fatal(err)
			}
			for range 3 { // the ID changes every time
				has, answered, err := p.ask(tt.timeout)
				if err != nil {
					t.Fatal(err)
				}
				if has != tt.wantHas || answered != tt.wantReply {
					t.Errorf("has %v, answered %v; want %v, %v", has, answered, tt.wantHas, tt.wantReply)
				}
			}
		})
	}
}

// TestProbeAllocatesNothing: the propagation probe asks in a tight loop in
// the process that times the raw watchers, where garbage would bring the
// collector into the trials.
func TestProbeAllocatesNothing(t *testing.T) {
	c, err := dialDNS(probeServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	p, err := newProbe(c, "up.test", dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if has, _, err := p.ask(5 * time.Second); err != nil || !has {
			t.Fatalf("has %v, err %v", has, err)
		}
	}); allocs != 0 {
		t.Errorf("a question allocates %v times, want none", allocs)
	}
}
