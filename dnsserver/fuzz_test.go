package dnsserver

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

var updateCorpus = flag.Bool("update-corpus", false, "write the FuzzAnswer seeds to testdata/fuzz/FuzzAnswer")

// corpusFile is packet in the file format of go test's fuzzing corpus.
func corpusFile(packet []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", packet)
}

// fuzzSeeds are real queries, packed, a few broken packets, and every
// packet of hostileCases. The same packets are committed under
// testdata/fuzz/FuzzAnswer (TestFuzzCorpusCommitted checks).
func fuzzSeeds(tb testing.TB) map[string][]byte {
	seeds := basicSeeds(tb)
	for _, tc := range hostileCases() {
		seeds["hostile-"+seedName(tc.name)] = tc.packet
	}
	return seeds
}

// seedName makes a case name into a file name: lowercase letters, digits
// and '-'.
func seedName(name string) string {
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '-'
	}, name)
	for strings.Contains(name, "--") {
		name = strings.ReplaceAll(name, "--", "-")
	}
	return strings.Trim(name, "-")
}

// basicSeeds are the real queries and broken packets the fuzzer started
// from.
func basicSeeds(tb testing.TB) map[string][]byte {
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
// without EDNS, its EDNS size kept within [512, 1232] with it (the DNS
// Flag Day 2020 size: no more, whatever the client advertises), 65535
// over TCP.
func replyLimit(req *dns.Msg, tcp bool) int {
	if tcp {
		return 65535
	}
	opt := req.IsEdns0()
	if opt == nil {
		return 512
	}
	return max(512, min(int(opt.UDPSize()), 1232))
}

// relaySeeds are upstream replies to relayQuery: ordinary, truncated,
// failing, oversized, and broken. The same packets are committed under
// testdata/fuzz/FuzzRelay.
func relaySeeds(tb testing.TB) map[string][]byte {
	q := relayQuery()
	pack := func(m *dns.Msg) []byte {
		wire, err := m.Pack()
		if err != nil {
			tb.Fatalf("pack seed: %v", err)
		}
		return wire
	}
	withA := func(n int, edns bool) *dns.Msg {
		m := answerA(n, false)(q, false)
		if edns {
			m.SetEdns0(1232, false)
		}
		return m
	}
	truncated := answerA(0, true)(q, false)
	otherQuestion := withA(1, false)
	otherQuestion.Question[0].Name = "www.example.net."
	return map[string][]byte{
		"answer":         pack(withA(2, false)),
		"answer-edns":    pack(withA(2, true)),
		"too-big":        pack(withA(80, false)),
		"truncated":      pack(truncated),
		"nxdomain":       pack(answerRcode(dns.RcodeNameError)(q, false)),
		"servfail":       pack(answerRcode(dns.RcodeServerFailure)(q, false)),
		"other-question": pack(otherQuestion),
		"no-question":    pack(&dns.Msg{MsgHdr: dns.MsgHdr{Id: q.Id, Response: true, Rcode: dns.RcodeFormatError}}),
		"header-only":    pack(withA(1, false))[:12],
		"pointer-loop":   {0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1},
	}
}

// relayQuery is the query FuzzRelay's replies answer, as zkdns sends it
// upstream: a fixed ID, no EDNS, so the client takes 512 bytes over UDP.
func relayQuery() *dns.Msg {
	q := new(dns.Msg).SetQuestion("www.example.com.", dns.TypeA)
	q.Id = 0xabcd
	return q
}

// FuzzRelay feeds replies from a hostile upstream through the checks and
// the rewriting a forwarded reply goes through. A reply that passes must
// come out answering the client's ID, with RA set, within the size the
// client takes, and still parse.
func FuzzRelay(f *testing.F) {
	seeds := relaySeeds(f)
	for _, name := range slices.Sorted(maps.Keys(seeds)) {
		f.Add(seeds[name])
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		q := relayQuery()
		if len(raw) >= 2 {
			// Give every input the ID asked for, so that the fuzzer spends
			// its time past that check.
			raw[0], raw[1] = byte(q.Id>>8), byte(q.Id)
		}
		reply, err := replyTo(q, raw)
		if err != nil {
			return
		}
		client := relayQuery()
		client.Id = 0x1234
		for _, tcp := range []bool{false, true} {
			out, err := relayed(client, slices.Clone(raw), reply.Copy(), tcp)
			if err != nil {
				continue // answered SERVFAIL instead
			}
			if limit := maxReplySize(client, tcp); len(out) > limit {
				t.Fatalf("tcp=%v: relayed %d bytes, the client takes %d", tcp, len(out), limit)
			}
			m := new(dns.Msg)
			if err := m.Unpack(out); err != nil {
				t.Fatalf("tcp=%v: relayed reply does not unpack: %v", tcp, err)
			}
			if m.Id != client.Id || !m.RecursionAvailable || !m.Response {
				t.Fatalf("tcp=%v: relayed ID %#x RA %v QR %v, want %#x, RA and QR set", tcp, m.Id, m.RecursionAvailable, m.Response, client.Id)
			}
		}
	})
}
