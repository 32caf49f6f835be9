package dnsserver

import (
	"bytes"
	"maps"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// fuzzSeeds are real queries, packed, plus a few broken packets. The same
// packets are committed under testdata/fuzz/FuzzAnswer.
func fuzzSeeds(tb testing.TB) map[string][]byte {
	pack := func(m *dns.Msg) []byte {
		wire, err := m.Pack()
		if err != nil {
			tb.Fatalf("pack seed: %v", err)
		}
		return wire
	}
	query := func(name string, qtype uint16) *dns.Msg {
		m := new(dns.Msg).SetQuestion(name, qtype)
		m.Id = 0x1234
		return m
	}
	withEDNS := func(m *dns.Msg, size uint16, do bool, version uint8) *dns.Msg {
		m.SetEdns0(size, do)
		m.IsEdns0().SetVersion(version)
		return m
	}
	notify := query("local.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	twoQ := query("payments.local.", dns.TypeA)
	twoQ.Question = append(twoQ.Question, dns.Question{Name: "big.local.", Qtype: dns.TypeSRV, Qclass: dns.ClassINET})

	// A header with one question whose name is a compression pointer to
	// itself (offset 12).
	loop := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}

	return map[string][]byte{
		"srv":            pack(query("payments.local.", dns.TypeSRV)),
		"srv-rfc2782":    pack(query("_payments._tcp.local.", dns.TypeSRV)),
		"srv-big":        pack(query("big.local.", dns.TypeSRV)),
		"a-mixed-case":   pack(query("PayMents.LOCAL.", dns.TypeA)),
		"txt":            pack(query("pay-1.payments.local.", dns.TypeTXT)),
		"any":            pack(query("payments.local.", dns.TypeANY)),
		"nxdomain":       pack(query("nope.local.", dns.TypeAAAA)),
		"outside":        pack(query("example.com.", dns.TypeA)),
		"edns":           pack(withEDNS(query("big.local.", dns.TypeSRV), 1232, true, 0)),
		"edns-huge":      pack(withEDNS(query("big.local.", dns.TypeSRV), 65535, false, 0)),
		"edns-version-1": pack(withEDNS(query("payments.local.", dns.TypeSRV), 1232, false, 1)),
		"notify":         pack(notify),
		"two-questions":  pack(twoQ),
		"pointer-loop":   loop,
		"short-header":   {0x12, 0x34, 0x01},
		"garbage":        []byte("\xff\xfe\x00\x01garbage\xc0\xff\x00\x00\x00\x00\x00\x00\x00"),
	}
}

func FuzzAnswer(f *testing.F) {
	seeds := fuzzSeeds(f)
	for _, name := range slices.Sorted(maps.Keys(seeds)) {
		f.Add(seeds[name])
	}
	snap := serverSnapshot()
	f.Fuzz(func(t *testing.T, wire []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(wire); err != nil {
			return
		}
		before, packErr := req.Pack()
		for _, tcp := range []bool{false, true} {
			reply := Answer(snap, req, tcp)
			out, err := reply.Pack()
			if err != nil {
				t.Fatalf("tcp=%v: reply does not pack: %v\nrequest %v\nreply %v", tcp, err, req, reply)
			}
			if limit := replyLimit(req, tcp); len(out) > limit {
				t.Fatalf("tcp=%v: reply is %d bytes, limit %d", tcp, len(out), limit)
			}
			if err := new(dns.Msg).Unpack(out); err != nil {
				t.Fatalf("tcp=%v: reply does not unpack: %v", tcp, err)
			}
		}
		if packErr == nil {
			after, err := req.Pack()
			if err != nil || !bytes.Equal(before, after) {
				t.Fatalf("Answer changed the request: %v", err)
			}
		}
	})
}

// replyLimit is the largest reply the client can take: 512 bytes over UDP
// without EDNS, its EDNS size kept within [512, 4096] with it, 65535 over
// TCP.
func replyLimit(req *dns.Msg, tcp bool) int {
	if tcp {
		return 65535
	}
	opt := req.IsEdns0()
	if opt == nil {
		return 512
	}
	return max(512, min(int(opt.UDPSize()), 4096))
}
