package dnsserver

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fastVsSlow answers the packed query both ways. fast is nil when the fast
// path declined it; slow is what Answer replies over UDP.
func fastVsSlow(t testing.TB, s *Snapshot, packet []byte, seq uint32) (fast, slow *dns.Msg) {
	t.Helper()
	var q fastQuery
	out, _, rcode, ok := s.fastReply(packet, make([]byte, 0, dns.MaxMsgSize), seq, &q)
	req := new(dns.Msg)
	if err := req.Unpack(packet); err != nil {
		if ok {
			t.Fatalf("fast path answered a query that does not unpack: %x", packet)
		}
		return nil, nil
	}
	slow = roundTrip(t, Answer(s, req, false))
	if !ok {
		return nil, slow
	}
	fast = new(dns.Msg)
	if err := fast.Unpack(out); err != nil {
		t.Fatalf("fast reply does not unpack: %v\n%x", err, out)
	}
	if fast.Rcode != rcode {
		t.Errorf("fast path reported rcode %d, its reply has %d", rcode, fast.Rcode)
	}
	return fast, slow
}

// normalised is a section as sorted lowercase zone-file lines: the fast
// path may spell names below the query name in the client's case, which
// DNS does not tell apart.
func normalised(rrs []dns.RR) string {
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.ToLower(rr.String()))
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// sameReply reports how fast differs from slow, or "" when it does not.
func sameReply(fast, slow *dns.Msg) string {
	switch {
	case fast.Id != slow.Id:
		return fmt.Sprintf("id %d, slow %d", fast.Id, slow.Id)
	case fast.Rcode != slow.Rcode:
		return fmt.Sprintf("rcode %s, slow %s", dns.RcodeToString[fast.Rcode], dns.RcodeToString[slow.Rcode])
	case fast.Response != slow.Response || fast.Authoritative != slow.Authoritative || fast.RecursionDesired != slow.RecursionDesired ||
		fast.RecursionAvailable != slow.RecursionAvailable || fast.Truncated != slow.Truncated ||
		fast.CheckingDisabled != slow.CheckingDisabled:
		return fmt.Sprintf("flags %v, slow %v", fast.MsgHdr, slow.MsgHdr)
	case len(fast.Question) != 1 || len(slow.Question) != 1 || fast.Question[0] != slow.Question[0]:
		return fmt.Sprintf("question %v, slow %v (the client's case must be kept)", fast.Question, slow.Question)
	case normalised(fast.Answer) != normalised(slow.Answer):
		return fmt.Sprintf("answer\n%s\nslow\n%s", normalised(fast.Answer), normalised(slow.Answer))
	case normalised(fast.Ns) != normalised(slow.Ns):
		return fmt.Sprintf("authority\n%s\nslow\n%s", normalised(fast.Ns), normalised(slow.Ns))
	case normalised(fast.Extra) != normalised(slow.Extra):
		return fmt.Sprintf("additional\n%s\nslow\n%s", normalised(fast.Extra), normalised(slow.Extra))
	}
	return ""
}

// TestFastPathMatchesAnswer checks the fast path against Answer, the
// reference, for every kind of name the zone has, every query type the
// fast path serves and some it leaves alone, in odd cases, with and
// without EDNS0, RD, CD and DO.
func TestFastPathMatchesAnswer(t *testing.T) {
	s := fixture()
	names := []string{
		"local.", "LOCAL.", "ns.local.", "payments.local.", "PayMents.Local.", "_payments._tcp.local.",
		"pay-1.payments.local.", "pay-2.payments.local.", "ipv4only.local.", "v4.ipv4only.local.",
		"empty.local.", "_empty._tcp.local.", "legacy.local.", "host-1.legacy.local.", "web-front.local.",
		"nosuch.local.", "x.pay-1.payments.local.", "nosuch.payments.local.", "_nosuch._tcp.local.",
		"_tcp.local.", "a.b.c.d.local.", "example.com.", "otherlocal.", "local.example.",
	}
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypeSOA, dns.TypeNS, dns.TypeMX, dns.TypeANY, dns.TypeCNAME}
	served := 0
	for _, name := range names {
		for _, qtype := range types {
			for _, edns := range []bool{false, true} {
				for flags := range 8 {
					rd, cd, do := flags&1 != 0, flags&2 != 0, flags&4 != 0
					if do && !edns {
						continue // DO lives in the OPT record
					}
					t.Run(fmt.Sprintf("%s/%s/edns=%v/rd=%v/cd=%v/do=%v", name, dns.TypeToString[qtype], edns, rd, cd, do), func(t *testing.T) {
						q := new(dns.Msg)
						q.SetQuestion(name, qtype)
						q.Id = 4242
						q.RecursionDesired = rd
						q.CheckingDisabled = cd
						if edns {
							q.SetEdns0(1232, do)
						}
						packet, err := q.Pack()
						if err != nil {
							t.Fatal(err)
						}
						for seq := range uint32(maxRotations + 1) {
							fast, slow := fastVsSlow(t, s, packet, seq)
							if slow.CheckingDisabled != cd {
								t.Errorf("CD %v in the reply, %v in the query (RFC 4035 §3.1.6: copied)", slow.CheckingDisabled, cd)
							}
							if opt := slow.IsEdns0(); edns && (opt == nil || opt.Do() != do) {
								t.Errorf("reply OPT %v to a query with DO %v (RFC 3225 §3: copied)", opt, do)
							}
							if fast == nil {
								continue
							}
							served++
							if diff := sameReply(fast, slow); diff != "" {
								t.Errorf("fast path differs from Answer: %s", diff)
							}
						}
					})
				}
			}
		}
	}
	// The fast path must actually serve the common queries.
	if served < len(names)*4 {
		t.Errorf("fast path served only %d of the queries", served)
	}
}

func TestFastPathDeclines(t *testing.T) {
	s := fixture()
	query := func(name string, qtype uint16, mutate func(*dns.Msg)) []byte {
		q := new(dns.Msg)
		q.SetQuestion(name, qtype)
		if mutate != nil {
			mutate(q)
		}
		packet, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return packet
	}
	cases := []struct {
		name   string
		packet []byte
	}{
		{"outside the zone", query("example.com.", dns.TypeA, nil)},
		{"ANY", query("payments.local.", dns.TypeANY, nil)},
		{"AXFR", query("local.", dns.TypeAXFR, nil)},
		{"class CH", query("payments.local.", dns.TypeA, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS })},
		{"opcode NOTIFY", query("payments.local.", dns.TypeA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify })},
		{"a response", query("payments.local.", dns.TypeA, func(m *dns.Msg) { m.Response = true })},
		{"EDNS version 1", query("payments.local.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false); m.Extra[0].(*dns.OPT).SetVersion(1) })},
		{"two questions", query("payments.local.", dns.TypeA, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) })},
		{"an EDNS cookie", query("payments.local.", dns.TypeA, func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			opt := m.Extra[0].(*dns.OPT)
			opt.Option = append(opt.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"})
		})},
		{"odd characters", query("pay\\.ments.local.", dns.TypeA, nil)},
		{"truncated packet", query("payments.local.", dns.TypeA, nil)[:20]},
		{"trailing garbage", append(query("payments.local.", dns.TypeA, nil), 0, 0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var q fastQuery
			if _, _, _, ok := s.fastReply(tc.packet, nil, 0, &q); ok {
				t.Errorf("fast path answered; it must leave this to the slow path")
			}
		})
	}
	t.Run("before the first sync", func(t *testing.T) {
		var q fastQuery
		unsynced := NewSnapshot(fixtureZone())
		if _, _, _, ok := unsynced.fastReply(query("payments.local.", dns.TypeA, nil), nil, 0, &q); ok {
			t.Errorf("fast path answered before the first sync")
		}
	})
	t.Run("the apex NS beside a service named ns, which the slow path answers without glue", func(t *testing.T) {
		nsService := NewSnapshot(fixtureZone()).Apply(Update{Full: true, Synced: true, Services: []Service{
			{Name: "ns", Instances: []Instance{{ID: "a", Address: "198.51.100.7", Port: 53, Weight: 100}}},
		}})
		var q fastQuery
		if _, _, _, ok := nsService.fastReply(query("local.", dns.TypeNS, nil), nil, 0, &q); ok {
			t.Errorf("fast path answered with the NS glue")
		}
	})
	t.Run("a CNAME into the zone, which the slow path follows", func(t *testing.T) {
		alias := NewSnapshot(fixtureZone()).Apply(Update{Full: true, Synced: true, Services: []Service{
			{Name: "payments", Instances: []Instance{{ID: "pay-1", Address: "192.0.2.1", Port: 80, Weight: 100}}},
			{Name: "alias", Instances: []Instance{{ID: "inner", Address: "pay-1.payments.local", Port: 80, Weight: 100}}},
		}})
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT} {
			var q fastQuery
			if _, _, _, ok := alias.fastReply(query("inner.alias.local.", qtype, nil), nil, 0, &q); ok {
				t.Errorf("fast path answered %s with the bare CNAME", dns.TypeToString[qtype])
			}
		}
	})
	t.Run("EDNS0 size smaller than the whole reply", func(t *testing.T) {
		var q fastQuery
		big := bigSnapshot(60)
		packet := query("big.local.", dns.TypeSRV, func(m *dns.Msg) { m.SetEdns0(512, false) })
		if _, _, _, ok := big.fastReply(packet, nil, 0, &q); ok {
			t.Errorf("fast path answered; the slow path cuts replies to odd EDNS0 sizes")
		}
	})
}

// TestTruncationSetsTCOnlyForAnswers: a reply too large for the client
// keeps the answers that fit, then the glue that fits; TC is set only when
// answers had to go (RFC 2181 §9), since glue left out is information the
// client can ask for, and TC would send every client without EDNS0 to TCP
// for a reply that already holds the whole SRV set. Both paths, and the
// fast path's copy for clients without EDNS0, must agree.
func TestTruncationSetsTCOnlyForAnswers(t *testing.T) {
	cases := []struct {
		name      string
		instances int
		edns      uint16 // 0: no EDNS0
		wantTC    bool
	}{
		{"everything fits", 3, 0, false},
		{"every SRV fits, some glue does not, no EDNS0", 7, 0, false},
		{"every SRV fits, some glue does not, EDNS0 1232", 16, 1232, false},
		{"some SRV records do not fit, no EDNS0", 60, 0, true},
		{"some SRV records do not fit, EDNS0 1232", 60, 1232, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := new(dns.Msg).SetQuestion("big.local.", dns.TypeSRV)
			if tc.edns != 0 {
				q.SetEdns0(tc.edns, false)
			}
			packet, _ := q.Pack()
			fast, slow := fastVsSlow(t, bigSnapshot(tc.instances), packet, 0)
			for path, r := range map[string]*dns.Msg{"fast path": fast, "Answer": slow} {
				if r == nil {
					continue // the fast path may leave odd sizes to Answer
				}
				whole := len(r.Answer) == tc.instances
				if whole == tc.wantTC || r.Truncated != tc.wantTC {
					t.Errorf("%s: %d of %d SRV records, %d additional, TC %v; want TC %v",
						path, len(r.Answer), tc.instances, len(r.Extra), r.Truncated, tc.wantTC)
				}
				if whole && len(r.Extra) == 0 {
					t.Errorf("%s: whole SRV set but no glue at all; what fits must stay", path)
				}
			}
		})
	}
}

// TestFastPathTruncates checks that a reply too large for a client
// without EDNS0 is the one Answer gives: cut to 512 bytes, TC set.
func TestFastPathTruncates(t *testing.T) {
	s := bigSnapshot(60)
	for _, name := range []string{"big.local.", "_big._tcp.local."} {
		for _, qtype := range []uint16{dns.TypeSRV, dns.TypeA} {
			t.Run(name+"/"+dns.TypeToString[qtype], func(t *testing.T) {
				q := new(dns.Msg)
				q.SetQuestion(name, qtype)
				packet, _ := q.Pack()
				fast, slow := fastVsSlow(t, s, packet, 0)
				if qtype == dns.TypeA && name == "_big._tcp.local." {
					return // NODATA
				}
				if fast == nil {
					t.Fatal("fast path declined a reply it has cut to 512 bytes")
				}
				if !fast.Truncated || len(fast.Answer) == 0 || len(fast.Answer) >= 60 {
					t.Errorf("fast reply: TC %v, %d answers; want TC and some of the 60", fast.Truncated, len(fast.Answer))
				}
				if qtype == dns.TypeA {
					// Answer shuffles before it cuts, so which addresses
					// stay differs; how many, and TC, must not.
					if fast.Truncated != slow.Truncated || len(fast.Answer) != len(slow.Answer) {
						t.Errorf("fast reply TC %v with %d addresses, Answer TC %v with %d",
							fast.Truncated, len(fast.Answer), slow.Truncated, len(slow.Answer))
					}
					return
				}
				if diff := sameReply(fast, slow); diff != "" {
					t.Errorf("fast path differs from Answer: %s", diff)
				}
			})
		}
	}
}

// TestFastPathRotates checks that successive queries for a service's
// addresses start on different instances: every instance in turn for a
// set that fits 512 bytes (rotated as it is copied), maxRotations of them
// for a larger one (packed in that many orders).
func TestFastPathRotates(t *testing.T) {
	tests := []struct {
		name      string
		instances int
		qtype     uint16
		edns      bool
		starts    int // distinct first answers over that many queries
	}{
		{"two addresses", 2, dns.TypeA, false, 2},
		{"seven addresses", 7, dns.TypeA, false, 7},
		{"seven addresses, EDNS0", 7, dns.TypeA, true, 7},
		{"40 addresses, cut to 512 bytes without EDNS0", 40, dns.TypeA, false, maxRotations},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := bigSnapshot(tc.instances)
			q := new(dns.Msg)
			q.SetQuestion("big.local.", tc.qtype)
			if tc.edns {
				q.SetEdns0(1232, false)
			}
			packet, _ := q.Pack()
			firsts := map[string]bool{}
			for seq := range uint32(2 * tc.starts) {
				fast, slow := fastVsSlow(t, s, packet, seq)
				if fast == nil || len(fast.Answer) == 0 {
					t.Fatalf("seq %d: fast reply = %v", seq, fast)
				}
				switch {
				case fast.Truncated:
					// Cut replies hold different subsets of the set: Answer
					// shuffles before it cuts.
					if !slow.Truncated || len(fast.Answer) != len(slow.Answer) {
						t.Errorf("seq %d: fast reply cut to %d answers (TC %v), Answer to %d (TC %v)",
							seq, len(fast.Answer), fast.Truncated, len(slow.Answer), slow.Truncated)
					}
				default:
					if diff := sameReply(fast, slow); diff != "" {
						t.Errorf("seq %d: fast path differs from Answer: %s", seq, diff)
					}
				}
				firsts[fast.Answer[0].(*dns.A).A.String()] = true
			}
			if len(firsts) != tc.starts {
				t.Errorf("%d queries started on %d distinct addresses, want %d", 2*tc.starts, len(firsts), tc.starts)
			}
		})
	}
}

func TestFastPathAllocations(t *testing.T) {
	s := fixture()
	q := new(dns.Msg)
	q.SetQuestion("payments.local.", dns.TypeSRV)
	q.SetEdns0(1232, false)
	packet, _ := q.Pack()
	out := make([]byte, 0, dns.MaxMsgSize)
	var fq fastQuery
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, _, ok := s.fastReply(packet, out, 1, &fq); !ok {
			t.Fatal("fast path declined")
		}
	})
	if allocs != 0 {
		t.Errorf("fast path allocates %.0f times per query, want 0", allocs)
	}
}

// FuzzFastPath feeds arbitrary packets to the fast path: it must never
// panic, and whatever it answers must unpack and agree with Answer. Its
// committed corpus is FuzzAnswer's (see TestFuzzCorpusCommitted).
func FuzzFastPath(f *testing.F) {
	for _, name := range []string{"payments.local.", "PAY-1.payments.local.", "nosuch.local.", "local.", "_payments._tcp.local."} {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypeSOA} {
			q := new(dns.Msg)
			q.SetQuestion(name, qtype)
			packet, _ := q.Pack()
			f.Add(packet)
			q.SetEdns0(4096, true)
			packet, _ = q.Pack()
			f.Add(packet)
		}
	}
	s := fixture()
	f.Fuzz(func(t *testing.T, packet []byte) {
		fast, slow := fastVsSlow(t, s, packet, 0)
		if fast == nil {
			return
		}
		if diff := sameReply(fast, slow); diff != "" {
			t.Errorf("fast path differs from Answer: %s\nquery %x", diff, packet)
		}
	})
}

// TestHandPackedReplies holds every reply buildService packs by hand to
// the bytes Pack makes of the same records, whole and cut to 512 bytes.
func TestHandPackedReplies(t *testing.T) {
	v4 := func(i int) string { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String() }
	v6 := func(i int) string {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}).String()
	}
	service := func(n int, addr func(int) string, id func(int) string) Service {
		svc := Service{Name: "payments"}
		for i := range n {
			svc.Instances = append(svc.Instances, Instance{ID: id(i), Address: addr(i), Port: uint16(8000 + i), Weight: uint16(i * 7)})
		}
		return svc
	}
	short := func(i int) string { return fmt.Sprintf("pay-%d", i) }
	long := func(i int) string { return fmt.Sprintf("%s-%d", strings.Repeat("instance", 7), i) }
	mixed := func(i int) string {
		if i%3 == 0 {
			return v6(i)
		}
		return v4(i)
	}
	tests := []struct {
		name   string
		svc    Service
		origin string
	}{
		{"one IPv4 instance", service(1, v4, short), "local."},
		{"one IPv6 instance", service(1, v6, short), "local."},
		{"five instances", service(5, v4, short), "local."},
		{"ten instances: SRV past 512 bytes", service(10, v4, short), "local."},
		{"long names: additional records cut", service(6, v4, long), "local."},
		{"mixed families", service(12, mixed, short), "example.internal."},
		{"40 instances: addresses past 512 bytes", service(40, v4, short), "local."},
		{"IPv6 past 512 bytes", service(30, v6, short), "local."},
		{"300 instances: past the largest reply", service(300, mixed, long), "local."},
		{"a long origin", service(8, v4, long), strings.Repeat("z", 60) + "." + strings.Repeat("y", 60) + ".local."},
		{"the root as origin", service(3, v4, short), "."},
		{"an instance by hostname: SRV from records", service(4, func(i int) string {
			if i == 2 {
				return "db-2.example.com"
			}
			return v4(i)
		}, short), "local."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const ttl = 5
			ap := buildApex(Zone{Origin: tc.origin, TTL: ttl * time.Second}, 1)
			svc := buildService(ap, tc.svc, "payments", "payments")
			rec := buildRecords(ap.origin, ttl, tc.svc, "payments")
			owner := under("payments", ap.origin)
			samePacked(t, "SRV", svc.wire.srv, packOne(owner, dns.TypeSRV, rec.srv, rec.glue))
			for i, want := range rotationsFromRecords(owner, dns.TypeA, rec.a) {
				samePacked(t, fmt.Sprintf("A, rotation %d", i), pick(svc.wire.a, uint32(i)), want)
			}
			for i, want := range rotationsFromRecords(owner, dns.TypeAAAA, rec.aaaa) {
				samePacked(t, fmt.Sprintf("AAAA, rotation %d", i), pick(svc.wire.aaaa, uint32(i)), want)
			}
			if len(svc.wire.a) != len(rotationsFromRecords(owner, dns.TypeA, rec.a)) {
				t.Errorf("%d packed A replies, want %d", len(svc.wire.a), len(rotationsFromRecords(owner, dns.TypeA, rec.a)))
			}
			for label, inst := range rec.instances {
				r, ok := svc.instances[label]
				if !ok {
					t.Fatalf("instance %s has no packed replies", label)
				}
				name := under(label, owner)
				byType := [2][]dns.RR{inst.a, inst.aaaa}
				if inst.cname != nil {
					byType = [2][]dns.RR{inst.cname, inst.cname}
				}
				for i, rrs := range byType {
					got := svc.instanceWire[r.start : r.start+uint32(r.size[0])]
					if i == 1 {
						got = svc.instanceWire[r.start+uint32(r.size[0]) : r.start+uint32(r.size[0])+uint32(r.size[1])]
					}
					var want []byte
					if len(rrs) > 0 {
						want = packReply(name, [2]uint16{dns.TypeA, dns.TypeAAAA}[i], rrs, nil).full
					}
					if !bytes.Equal(got, want) {
						t.Errorf("%s reply %d = %x\nPack gives %x", name, i, got, want)
					}
				}
			}
		})
	}
}

// rotationsFromRecords packs an address set from records as packReply
// would: once, rotated at copy time when it can be, or in up to
// maxRotations orders.
func rotationsFromRecords(qname string, qtype uint16, rrs []dns.RR) []*packed {
	if len(rrs) == 0 {
		return nil
	}
	first := packReply(qname, qtype, rrs, nil)
	if len(rrs) == 1 || first.rotate(len(rrs)) {
		return []*packed{first}
	}
	out := []*packed{first}
	for r := 1; r < min(len(rrs), maxRotations); r++ {
		out = append(out, packReply(qname, qtype, append(slices.Clone(rrs[r:]), rrs[:r]...), nil))
	}
	return out
}

func samePacked(t *testing.T, what string, got, want *packed) {
	t.Helper()
	switch {
	case got == nil || want == nil:
		if got != want {
			t.Errorf("%s: packed %v, want %v", what, got, want)
		}
	case !bytes.Equal(got.full, want.full):
		t.Errorf("%s: whole reply = %x\nPack gives %x", what, got.full, want.full)
	case !bytes.Equal(got.small, want.small):
		t.Errorf("%s: reply cut to 512 bytes = %x\nPack gives %x", what, got.small, want.small)
	case got.rrStart != want.rrStart || got.rrLen != want.rrLen || got.rrCount != want.rrCount:
		t.Errorf("%s: rotation %d/%d/%d, want %d/%d/%d", what, got.rrStart, got.rrLen, got.rrCount, want.rrStart, want.rrLen, want.rrCount)
	}
}
