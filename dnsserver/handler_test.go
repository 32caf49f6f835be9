package dnsserver

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func fixtureZone() Zone {
	return Zone{
		Origin:      "local.",
		TTL:         5 * time.Second,
		NegativeTTL: time.Second,
		NSAddrs:     []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")},
	}
}

// fixture is the synced snapshot most answer cases run against. It is
// NewSnapshot plus one Apply, so its SOA serial is 2.
func fixture() *Snapshot {
	return NewSnapshot(fixtureZone()).Apply(Update{Full: true, Synced: true, Services: []Service{
		{Name: "payments", Instances: []Instance{
			{ID: "pay-1", Address: "192.0.2.1", Port: 8080, Weight: 100, TXT: []string{"format=curator", "id=pay-1"}},
			{ID: "pay-2", Address: "2001:db8::2", Port: 8080, Weight: 50, TXT: []string{`path=C:\dir`, strings.Repeat("a", 256)}},
		}},
		{Name: "ipv4only", Instances: []Instance{{ID: "v4", Address: "192.0.2.10", Port: 80, Weight: 100}}},
		{Name: "empty"},
		{Name: "legacy", Instances: []Instance{{ID: "host-1", Address: "Backend.Example.COM", Port: 7000, Weight: 100}}},
		// Labels: "node-a" keeps its own, "Node_A" sanitises to the same
		// and gets a suffix, "!!!" sanitises to nothing and gets a hash.
		{Name: "Web-Front", Instances: []Instance{
			{ID: "node-a", Address: "198.51.100.1", Port: 80, Weight: 1},
			{ID: "Node_A", Address: "198.51.100.2", Port: 80, Weight: 2},
			{ID: "!!!", Address: "198.51.100.3", Port: 80, Weight: 3},
		}},
		// Collides with "Web-Front", whose lowercase form is its label.
		{Name: "web_front", Instances: []Instance{{ID: "only", Address: "198.51.100.9", Port: 81, Weight: 100}}},
	}})
}

const (
	soaPositive = "local. 5 IN SOA ns.local. hostmaster.local. 2 3600 600 86400 1"
	soaNegative = "local. 1 IN SOA ns.local. hostmaster.local. 2 3600 600 86400 1"
)

// answerCase is one query and the reply it must get, sections written as
// zone-file lines. Sections are compared as sets; OPT is checked apart.
type answerCase struct {
	name   string
	snap   *Snapshot // nil: fixture(), unless noSnap
	noSnap bool      // answer from a nil snapshot
	qname  string
	qtype  uint16
	qclass uint16         // 0: IN
	edns   uint16         // request OPT with this UDP size; 0: no OPT
	do     bool           // DO bit in the request OPT
	mutate func(*dns.Msg) // last changes to the request
	tcp    bool           // the query came over TCP
	rcode  int            // expected rcode (extended rcodes included)
	aa     bool           // expected AA bit
	answer []string       // expected answer section
	ns     []string       // expected authority section
	extra  []string       // expected additional section, without OPT
	noQ    bool           // the reply carries no question
	// ede names the Extended DNS Error the reply's OPT must carry (RFC
	// 8914), as dns.ExtendedErrorCodeToString does; "": none.
	ede string
}

func TestAnswer(t *testing.T) {
	unsynced := NewSnapshot(fixtureZone()).Apply(Update{Services: []Service{
		{Name: "payments", Instances: []Instance{{ID: "pay-1", Address: "192.0.2.1", Port: 8080, Weight: 100}}},
	}})
	nsService := NewSnapshot(fixtureZone()).Apply(Update{Synced: true, Services: []Service{
		{Name: "NS", Instances: []Instance{{ID: "a", Address: "198.51.100.7", Port: 53, Weight: 100}}},
	}})
	payTXT := `pay-1.payments.local. 5 IN TXT "format=curator" "id=pay-1"`
	paySRV := []string{
		"payments.local. 5 IN SRV 0 100 8080 pay-1.payments.local.",
		"payments.local. 5 IN SRV 0 50 8080 pay-2.payments.local.",
	}
	payGlue := []string{
		"pay-1.payments.local. 5 IN A 192.0.2.1",
		"pay-2.payments.local. 5 IN AAAA 2001:db8::2",
	}
	nsGlue := []string{"ns.local. 5 IN A 192.0.2.53", "ns.local. 5 IN AAAA 2001:db8::53"}
	// Instances registered by a name inside the zone.
	chain := NewSnapshot(fixtureZone()).Apply(Update{Full: true, Synced: true, Services: []Service{
		{Name: "payments", Instances: []Instance{{ID: "pay-1", Address: "192.0.2.1", Port: 8080, Weight: 100}}},
		{Name: "pool", Instances: []Instance{
			{ID: "p1", Address: "192.0.2.21", Port: 80, Weight: 100},
			{ID: "p2", Address: "192.0.2.22", Port: 80, Weight: 100},
		}},
		{Name: "alias", Instances: []Instance{
			{ID: "to-instance", Address: "pay-1.payments.local", Port: 80, Weight: 100},
			{ID: "to-service", Address: "POOL.local.", Port: 80, Weight: 100},
			{ID: "to-alias", Address: "to-instance.alias.local", Port: 80, Weight: 100},
			{ID: "dangling", Address: "gone.local", Port: 80, Weight: 100},
			{ID: "self", Address: "self.alias.local", Port: 80, Weight: 100},
			{ID: "ping", Address: "pong.alias.local", Port: 80, Weight: 100},
			{ID: "pong", Address: "ping.alias.local", Port: 80, Weight: 100},
		}},
	}})
	pay1A := "pay-1.payments.local. 5 IN A 192.0.2.1"
	hinfo := func(owner string) []string { return []string{owner + ` 5 IN HINFO "RFC8482" ""`} }

	cases := []answerCase{
		// SRV in both forms.
		{name: "service SRV", qname: "payments.local.", qtype: dns.TypeSRV, aa: true, answer: paySRV, extra: payGlue},
		{name: "RFC 2782 SRV", qname: "_payments._tcp.local.", qtype: dns.TypeSRV, aa: true,
			answer: []string{
				"_payments._tcp.local. 5 IN SRV 0 100 8080 pay-1.payments.local.",
				"_payments._tcp.local. 5 IN SRV 0 50 8080 pay-2.payments.local.",
			}, extra: payGlue},
		{name: "SRV keeps the question's case", qname: "PayMents.LOCAL.", qtype: dns.TypeSRV, aa: true,
			answer: []string{
				"PayMents.LOCAL. 5 IN SRV 0 100 8080 pay-1.payments.local.",
				"PayMents.LOCAL. 5 IN SRV 0 50 8080 pay-2.payments.local.",
			}, extra: payGlue},
		{name: "RFC 2782 SRV in upper case", qname: "_PAYMENTS._TCP.LOCAL.", qtype: dns.TypeSRV, aa: true,
			answer: []string{
				"_PAYMENTS._TCP.LOCAL. 5 IN SRV 0 100 8080 pay-1.payments.local.",
				"_PAYMENTS._TCP.LOCAL. 5 IN SRV 0 50 8080 pay-2.payments.local.",
			}, extra: payGlue},
		{name: "SRV to a hostname has no glue", qname: "legacy.local.", qtype: dns.TypeSRV, aa: true,
			answer: []string{"legacy.local. 5 IN SRV 0 100 7000 backend.example.com."}},

		// Addresses of a service and of an instance.
		{name: "service A", qname: "payments.local.", qtype: dns.TypeA, aa: true,
			answer: []string{"payments.local. 5 IN A 192.0.2.1"}},
		{name: "service AAAA", qname: "payments.local.", qtype: dns.TypeAAAA, aa: true,
			answer: []string{"payments.local. 5 IN AAAA 2001:db8::2"}},
		{name: "service A in mixed case", qname: "PayMents.LOCAL.", qtype: dns.TypeA, aa: true,
			answer: []string{"PayMents.LOCAL. 5 IN A 192.0.2.1"}},
		{name: "instance A", qname: "pay-1.payments.local.", qtype: dns.TypeA, aa: true,
			answer: []string{"pay-1.payments.local. 5 IN A 192.0.2.1"}},
		{name: "instance AAAA", qname: "pay-2.payments.local.", qtype: dns.TypeAAAA, aa: true,
			answer: []string{"pay-2.payments.local. 5 IN AAAA 2001:db8::2"}},
		{name: "instance TXT", qname: "pay-1.payments.local.", qtype: dns.TypeTXT, aa: true, answer: []string{payTXT}},
		{name: "instance TXT in upper case", qname: "PAY-1.PAYMENTS.LOCAL.", qtype: dns.TypeTXT, aa: true,
			answer: []string{`PAY-1.PAYMENTS.LOCAL. 5 IN TXT "format=curator" "id=pay-1"`}},
		{name: "TXT keeps a backslash and skips a string over 255 bytes", qname: "pay-2.payments.local.", qtype: dns.TypeTXT, aa: true,
			answer: []string{`pay-2.payments.local. 5 IN TXT "path=C:\\dir"`}},
		{name: "hostname instance A is a CNAME", qname: "host-1.legacy.local.", qtype: dns.TypeA, aa: true,
			answer: []string{"host-1.legacy.local. 5 IN CNAME backend.example.com."}},
		{name: "hostname instance AAAA is a CNAME", qname: "host-1.legacy.local.", qtype: dns.TypeAAAA, aa: true,
			answer: []string{"host-1.legacy.local. 5 IN CNAME backend.example.com."}},
		{name: "hostname instance CNAME", qname: "host-1.legacy.local.", qtype: dns.TypeCNAME, aa: true,
			answer: []string{"host-1.legacy.local. 5 IN CNAME backend.example.com."}},
		{name: "CNAME of an IP instance", qname: "pay-1.payments.local.", qtype: dns.TypeCNAME, aa: true, ns: []string{soaNegative}},
		// A name with a CNAME has no other data (RFC 2181 §10.1).
		{name: "hostname instance TXT is the CNAME", qname: "host-1.legacy.local.", qtype: dns.TypeTXT, aa: true,
			answer: []string{"host-1.legacy.local. 5 IN CNAME backend.example.com."}},
		{name: "hostname instance SRV is the CNAME", qname: "host-1.legacy.local.", qtype: dns.TypeSRV, aa: true,
			answer: []string{"host-1.legacy.local. 5 IN CNAME backend.example.com."}},
		{name: "hostname instance ANY is the CNAME", qname: "host-1.legacy.local.", qtype: dns.TypeANY, aa: true,
			answer: []string{"host-1.legacy.local. 5 IN CNAME backend.example.com."}},
		// A CNAME into the zone is followed (RFC 1034 §4.3.2 step 3a).
		{name: "CNAME to an instance is followed", snap: chain, qname: "To-Instance.alias.local.", qtype: dns.TypeA, aa: true,
			answer: []string{"To-Instance.alias.local. 5 IN CNAME pay-1.payments.local.", pay1A}},
		{name: "CNAME to a service is followed to its whole set", snap: chain, qname: "to-service.alias.local.", qtype: dns.TypeA, aa: true,
			answer: []string{"to-service.alias.local. 5 IN CNAME pool.local.", "pool.local. 5 IN A 192.0.2.21", "pool.local. 5 IN A 192.0.2.22"}},
		{name: "a chain of two CNAMEs is followed", snap: chain, qname: "to-alias.alias.local.", qtype: dns.TypeA, aa: true,
			answer: []string{"to-alias.alias.local. 5 IN CNAME to-instance.alias.local.", "to-instance.alias.local. 5 IN CNAME pay-1.payments.local.", pay1A}},
		{name: "CNAME to a name without the type: the chain, NODATA", snap: chain, qname: "to-instance.alias.local.", qtype: dns.TypeAAAA, aa: true,
			answer: []string{"to-instance.alias.local. 5 IN CNAME pay-1.payments.local."}, ns: []string{soaNegative}},
		{name: "CNAME to a name that does not exist: the chain, NXDOMAIN", snap: chain, qname: "dangling.alias.local.", qtype: dns.TypeA, aa: true,
			rcode: dns.RcodeNameError, answer: []string{"dangling.alias.local. 5 IN CNAME gone.local."}, ns: []string{soaNegative}},
		{name: "CNAME to itself ends at once", snap: chain, qname: "self.alias.local.", qtype: dns.TypeA, aa: true,
			answer: []string{"self.alias.local. 5 IN CNAME self.alias.local."}},
		{name: "a CNAME loop ends where it comes back", snap: chain, qname: "ping.alias.local.", qtype: dns.TypeA, aa: true,
			answer: []string{"ping.alias.local. 5 IN CNAME pong.alias.local.", "pong.alias.local. 5 IN CNAME ping.alias.local."}},
		{name: "a CNAME query is not followed", snap: chain, qname: "to-instance.alias.local.", qtype: dns.TypeCNAME, aa: true,
			answer: []string{"to-instance.alias.local. 5 IN CNAME pay-1.payments.local."}},

		// NODATA: the name exists, the type does not.
		{name: "AAAA of an IPv4-only service", qname: "ipv4only.local.", qtype: dns.TypeAAAA, aa: true, ns: []string{soaNegative}},
		{name: "MX of a service", qname: "payments.local.", qtype: dns.TypeMX, aa: true, ns: []string{soaNegative}},
		{name: "SRV of a service with no instances", qname: "empty.local.", qtype: dns.TypeSRV, aa: true, ns: []string{soaNegative}},
		{name: "A of a service with no instances", qname: "empty.local.", qtype: dns.TypeA, aa: true, ns: []string{soaNegative}},
		{name: "A of a service with only hostnames", qname: "legacy.local.", qtype: dns.TypeA, aa: true, ns: []string{soaNegative}},
		{name: "AAAA of an IPv4 instance", qname: "pay-1.payments.local.", qtype: dns.TypeAAAA, aa: true, ns: []string{soaNegative}},
		{name: "TXT of an instance without strings", qname: "v4.ipv4only.local.", qtype: dns.TypeTXT, aa: true, ns: []string{soaNegative}},
		{name: "A of the RFC 2782 name", qname: "_payments._tcp.local.", qtype: dns.TypeA, aa: true, ns: []string{soaNegative}},
		{name: "_tcp is an empty non-terminal", qname: "_tcp.local.", qtype: dns.TypeSRV, aa: true, ns: []string{soaNegative}},
		{name: "apex A", qname: "local.", qtype: dns.TypeA, aa: true, ns: []string{soaNegative}},

		// NXDOMAIN: the name does not exist.
		{name: "unknown service", qname: "nope.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, ns: []string{soaNegative}},
		{name: "unknown service in upper case", qname: "NOPE.LOCAL.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, aa: true, ns: []string{soaNegative}},
		{name: "unknown instance", qname: "pay-9.payments.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, ns: []string{soaNegative}},
		{name: "below an instance", qname: "x.pay-1.payments.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, ns: []string{soaNegative}},
		{name: "RFC 2782 name of an unknown service", qname: "_nope._tcp.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, aa: true, ns: []string{soaNegative}},
		{name: "RFC 2782 name with _udp", qname: "_payments._udp.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, aa: true, ns: []string{soaNegative}},
		{name: "raw name instead of label", qname: "web_front.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, ns: []string{soaNegative}},

		// Outside the zone.
		{name: "outside the zone", qname: "example.com.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "suffix that is not a label boundary", qname: "xlocal.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "root", qname: ".", qtype: dns.TypeNS, rcode: dns.RcodeRefused},
		{name: "escaped dot is not a label boundary", qname: `payments\.local.`, qtype: dns.TypeA, rcode: dns.RcodeRefused},

		// The apex and its NS host.
		{name: "apex SOA", qname: "local.", qtype: dns.TypeSOA, aa: true, answer: []string{soaPositive}},
		{name: "apex NS with glue", qname: "local.", qtype: dns.TypeNS, aa: true,
			answer: []string{"local. 5 IN NS ns.local."}, extra: nsGlue},
		{name: "apex SOA in upper case", qname: "LOCAL.", qtype: dns.TypeSOA, aa: true,
			answer: []string{"LOCAL. 5 IN SOA ns.local. hostmaster.local. 2 3600 600 86400 1"}},
		{name: "NS host A", qname: "ns.local.", qtype: dns.TypeA, aa: true, answer: []string{"ns.local. 5 IN A 192.0.2.53"}},
		{name: "NS host AAAA", qname: "ns.local.", qtype: dns.TypeAAAA, aa: true, answer: []string{"ns.local. 5 IN AAAA 2001:db8::53"}},
		{name: "NS host TXT", qname: "ns.local.", qtype: dns.TypeTXT, aa: true, ns: []string{soaNegative}},
		{name: "a service named ns wins over the NS host", snap: nsService, qname: "ns.local.", qtype: dns.TypeA, aa: true,
			answer: []string{"ns.local. 5 IN A 198.51.100.7"}},
		{name: "a service named ns keeps the apex NS, without the glue its own answer contradicts", snap: nsService, qname: "local.", qtype: dns.TypeNS, aa: true,
			answer: []string{"local. 5 IN NS ns.local."}},

		// ANY (RFC 8482).
		{name: "ANY of a service", qname: "payments.local.", qtype: dns.TypeANY, aa: true, answer: hinfo("payments.local.")},
		{name: "ANY of an instance", qname: "Pay-1.Payments.Local.", qtype: dns.TypeANY, aa: true, answer: hinfo("Pay-1.Payments.Local.")},
		{name: "ANY of the apex", qname: "local.", qtype: dns.TypeANY, aa: true, answer: hinfo("local.")},
		{name: "ANY of a missing name", qname: "nope.local.", qtype: dns.TypeANY, rcode: dns.RcodeNameError, aa: true, ns: []string{soaNegative}},

		// Before the first sync.
		{name: "unsynced service", snap: unsynced, qname: "payments.local.", qtype: dns.TypeSRV, rcode: dns.RcodeServerFailure},
		{name: "unsynced missing name", snap: unsynced, qname: "nope.local.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
		{name: "unsynced NS host", snap: unsynced, qname: "ns.local.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
		{name: "unsynced apex A", snap: unsynced, qname: "local.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
		{name: "unsynced apex SOA", snap: unsynced, qname: "local.", qtype: dns.TypeSOA, aa: true,
			answer: []string{"local. 5 IN SOA ns.local. hostmaster.local. 2 3600 600 86400 1"}},
		{name: "unsynced apex NS", snap: unsynced, qname: "local.", qtype: dns.TypeNS, aa: true,
			answer: []string{"local. 5 IN NS ns.local."}, extra: nsGlue},
		{name: "unsynced outside the zone", snap: unsynced, qname: "example.com.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "no snapshot", noSnap: true, qname: "local.", qtype: dns.TypeSOA, rcode: dns.RcodeServerFailure},

		// EDNS0.
		{name: "EDNS query gets OPT", qname: "payments.local.", qtype: dns.TypeSRV, edns: 1232, aa: true, answer: paySRV, extra: payGlue},
		{name: "EDNS DO bit is copied (RFC 3225 §3)", qname: "payments.local.", qtype: dns.TypeA, edns: 4096, do: true, aa: true,
			answer: []string{"payments.local. 5 IN A 192.0.2.1"}},
		{name: "EDNS version 1 is BADVERS", qname: "payments.local.", qtype: dns.TypeSRV, edns: 1232,
			mutate: func(m *dns.Msg) { m.IsEdns0().SetVersion(1) }, rcode: dns.RcodeBadVers},
		{name: "two OPT records", qname: "payments.local.", qtype: dns.TypeSRV, edns: 1232,
			mutate: func(m *dns.Msg) { m.Extra = append(m.Extra, dns.Copy(m.Extra[0])) }, rcode: dns.RcodeFormatError, noQ: true},
		{name: "NXDOMAIN over EDNS", qname: "nope.local.", qtype: dns.TypeA, edns: 1232, rcode: dns.RcodeNameError, aa: true, ns: []string{soaNegative}},
		{name: "unsynced over EDNS says Not Ready", snap: unsynced, qname: "payments.local.", qtype: dns.TypeSRV, edns: 1232,
			rcode: dns.RcodeServerFailure, ede: "Not Ready"},
		{name: "no snapshot over EDNS says Not Ready", noSnap: true, qname: "payments.local.", qtype: dns.TypeA, edns: 1232,
			rcode: dns.RcodeServerFailure, ede: "Not Ready"},
		{name: "outside the zone over EDNS says Not Authoritative", qname: "example.com.", qtype: dns.TypeA, edns: 1232,
			rcode: dns.RcodeRefused, ede: "Not Authoritative"},
		{name: "class CH over EDNS says Not Supported", qname: "payments.local.", qtype: dns.TypeA, qclass: dns.ClassCHAOS, edns: 1232,
			rcode: dns.RcodeRefused, ede: "Not Supported"},
		{name: "AXFR over EDNS says Not Supported", qname: "local.", qtype: dns.TypeAXFR, tcp: true, edns: 1232,
			rcode: dns.RcodeRefused, ede: "Not Supported"},

		// Header checks and classes.
		{name: "NOTIFY is not implemented", qname: "local.", qtype: dns.TypeSOA,
			mutate: func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }, rcode: dns.RcodeNotImplemented},
		{name: "UPDATE is not implemented", qname: "local.", qtype: dns.TypeSOA,
			mutate: func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }, rcode: dns.RcodeNotImplemented},
		{name: "no question", qname: "local.", qtype: dns.TypeSOA,
			mutate: func(m *dns.Msg) { m.Question = nil }, rcode: dns.RcodeFormatError, noQ: true},
		{name: "two questions", qname: "local.", qtype: dns.TypeSOA,
			mutate: func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }, rcode: dns.RcodeFormatError, noQ: true},
		{name: "class CH is refused", qname: "payments.local.", qtype: dns.TypeA, qclass: dns.ClassCHAOS, rcode: dns.RcodeRefused},
		{name: "class ANY is served as IN", qname: "payments.local.", qtype: dns.TypeA, qclass: dns.ClassANY, aa: true,
			answer: []string{"payments.local. 5 IN A 192.0.2.1"}},
		{name: "AXFR is refused", qname: "local.", qtype: dns.TypeAXFR, tcp: true, rcode: dns.RcodeRefused},
		{name: "RD clear stays clear", qname: "payments.local.", qtype: dns.TypeA,
			mutate: func(m *dns.Msg) { m.RecursionDesired = false }, aa: true,
			answer: []string{"payments.local. 5 IN A 192.0.2.1"}},

		// Labels made from raw names.
		{name: "sanitised and colliding instance labels", qname: "web-front.local.", qtype: dns.TypeSRV, aa: true,
			answer: []string{
				"web-front.local. 5 IN SRV 0 1 80 node-a.web-front.local.",
				"web-front.local. 5 IN SRV 0 2 80 node-a-c4315a.web-front.local.",
				"web-front.local. 5 IN SRV 0 3 80 x2d53a722.web-front.local.",
			},
			extra: []string{
				"node-a.web-front.local. 5 IN A 198.51.100.1",
				"node-a-c4315a.web-front.local. 5 IN A 198.51.100.2",
				"x2d53a722.web-front.local. 5 IN A 198.51.100.3",
			}},
		{name: "suffixed instance label", qname: "node-a-c4315a.web-front.local.", qtype: dns.TypeA, aa: true,
			answer: []string{"node-a-c4315a.web-front.local. 5 IN A 198.51.100.2"}},
		{name: "suffixed service label", qname: "web-front-b9b2ad.local.", qtype: dns.TypeA, aa: true,
			answer: []string{"web-front-b9b2ad.local. 5 IN A 198.51.100.9"}},
		{name: "instance of a suffixed service", qname: "only.web-front-b9b2ad.local.", qtype: dns.TypeA, aa: true,
			answer: []string{"only.web-front-b9b2ad.local. 5 IN A 198.51.100.9"}},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runAnswerCase(t, tc) })
	}
}

func runAnswerCase(t *testing.T, tc answerCase) {
	t.Helper()
	snap := tc.snap
	if snap == nil && !tc.noSnap {
		snap = fixture()
	}
	req := new(dns.Msg)
	req.SetQuestion(tc.qname, tc.qtype)
	req.Id = 4242
	if tc.qclass != 0 {
		req.Question[0].Qclass = tc.qclass
	}
	if tc.edns != 0 {
		req.SetEdns0(tc.edns, tc.do)
	}
	if tc.mutate != nil {
		tc.mutate(req)
	}

	reply := Answer(snap, req, tc.tcp)
	if !reply.Compress {
		t.Error("name compression is off")
	}
	got := roundTrip(t, reply)

	if got.Id != req.Id || !got.Response {
		t.Errorf("reply id %d response %v, want id %d response true", got.Id, got.Response, req.Id)
	}
	if got.Rcode != tc.rcode {
		t.Errorf("rcode %s, want %s", dns.RcodeToString[got.Rcode], dns.RcodeToString[tc.rcode])
	}
	if got.Authoritative != tc.aa {
		t.Errorf("AA %v, want %v", got.Authoritative, tc.aa)
	}
	if got.RecursionAvailable {
		t.Error("RA set, want clear: zkdns does not recurse")
	}
	if tc.rcode != dns.RcodeNotImplemented && got.RecursionDesired != req.RecursionDesired {
		t.Errorf("RD %v, want it copied from the request (%v)", got.RecursionDesired, req.RecursionDesired)
	}
	if got.Truncated {
		t.Error("TC set on a small reply")
	}
	wantQ := req.Question
	if tc.noQ {
		wantQ = nil
	}
	if !slices.Equal(got.Question, wantQ) {
		t.Errorf("question %v, want %v", got.Question, wantQ)
	}

	sameRRs(t, "answer", got.Answer, tc.answer)
	sameRRs(t, "authority", got.Ns, tc.ns)
	var extra []dns.RR
	for _, rr := range got.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	sameRRs(t, "additional", extra, tc.extra)

	opt := got.IsEdns0()
	switch {
	case tc.edns == 0 && opt != nil:
		t.Errorf("reply has OPT %v to a request without one", opt)
	case tc.edns != 0 && opt == nil:
		t.Error("reply has no OPT; the request had one")
	case opt != nil:
		if opt.UDPSize() != ednsSize || opt.Version() != 0 || opt.Do() != tc.do {
			t.Errorf("reply OPT size %d version %d DO %v, want %d 0 %v (DO as asked)", opt.UDPSize(), opt.Version(), opt.Do(), ednsSize, tc.do)
		}
		checkEDE(t, opt, tc.ede)
	}
}

// checkEDE holds opt to carry one Extended DNS Error, the one named code
// in dns.ExtendedErrorCodeToString, with a reason in its text; or none
// when code is "".
func checkEDE(t testing.TB, opt *dns.OPT, code string) {
	t.Helper()
	var got []*dns.EDNS0_EDE
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok {
			got = append(got, e)
		}
	}
	switch {
	case code == "" && len(got) != 0:
		t.Errorf("reply carries %v, want no Extended DNS Error", got)
	case code != "" && (len(got) != 1 || dns.ExtendedErrorCodeToString[got[0].InfoCode] != code || got[0].ExtraText == ""):
		t.Errorf("reply carries Extended DNS Errors %v, want one %s with a reason", got, code)
	}
}

// roundTrip packs m and unpacks it again, so tests see what a client sees.
func roundTrip(t testing.TB, m *dns.Msg) *dns.Msg {
	t.Helper()
	wire, err := m.Pack()
	if err != nil {
		t.Fatalf("pack reply: %v\n%v", err, m)
	}
	got := new(dns.Msg)
	if err := got.Unpack(wire); err != nil {
		t.Fatalf("unpack reply: %v", err)
	}
	return got
}

// sameRRs compares a section with zone-file lines, ignoring order.
func sameRRs(t testing.TB, section string, got []dns.RR, want []string) {
	t.Helper()
	gotS := make([]string, 0, len(got))
	for _, rr := range got {
		gotS = append(gotS, rr.String())
	}
	wantS := make([]string, 0, len(want))
	for _, line := range want {
		rr, err := dns.NewRR(line)
		if err != nil {
			t.Fatalf("bad expected record %q: %v", line, err)
		}
		wantS = append(wantS, rr.String())
	}
	slices.Sort(gotS)
	slices.Sort(wantS)
	if !slices.Equal(gotS, wantS) {
		t.Errorf("%s section:\n got %q\nwant %q", section, gotS, wantS)
	}
}

// bigSnapshot serves one service, "big", with n IPv4 instances.
func bigSnapshot(n int) *Snapshot {
	svc := Service{Name: "big"}
	for i := range n {
		svc.Instances = append(svc.Instances, Instance{
			ID:      "instance-" + strings.Repeat("x", 20) + "-" + string(rune('a'+i%26)) + string(rune('a'+i/26)),
			Address: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}).String(),
			Port:    8080,
			Weight:  100,
		})
	}
	return NewSnapshot(fixtureZone()).Apply(Update{Full: true, Synced: true, Services: []Service{svc}})
}

func TestAnswerSize(t *testing.T) {
	const instances = 60
	snap := bigSnapshot(instances)
	cases := []struct {
		name      string
		tcp       bool
		edns      uint16 // 0: no OPT
		limit     int    // the reply must pack to at most this many bytes
		truncated bool
	}{
		{name: "UDP without EDNS is cut to 512 bytes", limit: 512, truncated: true},
		{name: "UDP with a small EDNS size still gets 512", edns: 100, limit: 512, truncated: true},
		{name: "UDP with EDNS 1232", edns: 1232, limit: 1232, truncated: true},
		{name: "UDP with a huge EDNS size is capped at 1232", edns: 65000, limit: 1232, truncated: true},
		{name: "UDP with EDNS 4096 is capped at 1232", edns: 4096, limit: 1232, truncated: true},
		{name: "TCP gets the whole set", tcp: true, limit: dns.MaxMsgSize},
		{name: "TCP with EDNS gets the whole set", tcp: true, edns: 512, limit: dns.MaxMsgSize},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := new(dns.Msg).SetQuestion("big.local.", dns.TypeSRV)
			if tc.edns != 0 {
				req.SetEdns0(tc.edns, false)
			}
			reply := Answer(snap, req, tc.tcp)
			wire, err := reply.Pack()
			if err != nil {
				t.Fatalf("pack: %v", err)
			}
			if len(wire) > tc.limit {
				t.Errorf("reply is %d bytes, limit %d", len(wire), tc.limit)
			}
			got := roundTrip(t, reply)
			if got.Truncated != tc.truncated {
				t.Errorf("TC %v, want %v", got.Truncated, tc.truncated)
			}
			if got.Rcode != dns.RcodeSuccess {
				t.Errorf("rcode %s, want NOERROR", dns.RcodeToString[got.Rcode])
			}
			if tc.truncated {
				kept := len(got.Answer) + len(got.Extra) - boolInt(tc.edns != 0)
				if len(got.Answer) == 0 || kept >= 2*instances {
					t.Errorf("truncated reply keeps %d SRV and %d records in all, want some SRV and fewer than %d records",
						len(got.Answer), kept, 2*instances)
				}
			} else if len(got.Answer) != instances || len(got.Extra) != instances+boolInt(tc.edns != 0) {
				t.Errorf("got %d SRV and %d additional records, want %d of each (plus OPT)", len(got.Answer), len(got.Extra), instances)
			}
			if (tc.edns != 0) != (got.IsEdns0() != nil) {
				t.Errorf("OPT in reply: %v, want %v", got.IsEdns0() != nil, tc.edns != 0)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestAnswerShufflesAddresses(t *testing.T) {
	svc := Service{Name: "rr"}
	var want []string
	for i := range 5 {
		addr := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)}).String()
		svc.Instances = append(svc.Instances, Instance{ID: "i" + addr, Address: addr, Port: 80})
		want = append(want, addr)
	}
	snap := NewSnapshot(fixtureZone()).Apply(Update{Synced: true, Services: []Service{svc}})

	orders := map[string]bool{}
	for range 200 {
		reply := Answer(snap, new(dns.Msg).SetQuestion("rr.local.", dns.TypeA), false)
		var got []string
		for _, rr := range reply.Answer {
			got = append(got, rr.(*dns.A).A.String())
		}
		orders[strings.Join(got, ",")] = true
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("answer holds %v, want each of %v once", got, want)
		}
	}
	if len(orders) < 2 {
		t.Errorf("200 queries saw %d order(s) of the addresses, want the order to vary", len(orders))
	}
	// The snapshot's own records must keep their order: shuffling works on
	// a copy.
	for i, rr := range snap.services.get("rr").records().a {
		if got := rr.(*dns.A).A.String(); got != want[i] {
			t.Fatalf("snapshot record %d is %s, want %s: the snapshot was reordered", i, got, want[i])
		}
	}
}

// recorder is a dns.ResponseWriter that keeps the reply.
type recorder struct {
	remote net.Addr
	reply  *dns.Msg
}

func (r *recorder) LocalAddr() net.Addr       { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr      { return r.remote }
func (r *recorder) WriteMsg(m *dns.Msg) error { r.reply = m; return nil }
func (r *recorder) Write([]byte) (int, error) { return 0, nil }
func (r *recorder) Close() error              { return nil }
func (r *recorder) TsigStatus() error         { return nil }
func (r *recorder) TsigTimersOnly(bool)       {}
func (r *recorder) Hijack()                   {}

func TestHandler(t *testing.T) {
	big := bigSnapshot(60)
	cases := []struct {
		name      string
		remote    net.Addr
		publish   *Snapshot
		qname     string
		rcode     int
		truncated bool
	}{
		{name: "nil snapshot answers SERVFAIL", remote: &net.UDPAddr{}, qname: "big.local.", rcode: dns.RcodeServerFailure},
		{name: "UDP query is cut to 512 bytes", remote: &net.UDPAddr{}, publish: big, qname: "big.local.", truncated: true},
		{name: "TCP query is answered whole", remote: &net.TCPAddr{}, publish: big, qname: "big.local."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHandler(nil, nil)
			if tc.publish != nil {
				h.Publish(tc.publish)
			}
			if h.Current() != tc.publish {
				t.Fatal("Current does not return the published snapshot")
			}
			w := &recorder{remote: tc.remote}
			h.ServeDNS(w, new(dns.Msg).SetQuestion(tc.qname, dns.TypeSRV))
			if w.reply == nil {
				t.Fatal("no reply written")
			}
			if w.reply.Rcode != tc.rcode || w.reply.Truncated != tc.truncated {
				t.Errorf("rcode %s TC %v, want %s TC %v", dns.RcodeToString[w.reply.Rcode], w.reply.Truncated,
					dns.RcodeToString[tc.rcode], tc.truncated)
			}
		})
	}
}

// TestHandlerConcurrent queries while snapshots are published, so that the
// race detector sees any write to shared snapshot data on the query path.
func TestHandlerConcurrent(t *testing.T) {
	h := NewHandler(fixture(), nil)
	questions := []struct {
		name  string
		qtype uint16
	}{
		{"PayMents.Local.", dns.TypeSRV}, {"payments.local.", dns.TypeA}, {"PAYMENTS.LOCAL.", dns.TypeAAAA},
		{"Pay-1.Payments.Local.", dns.TypeTXT}, {"local.", dns.TypeSOA}, {"nope.local.", dns.TypeA},
		{"Host-1.Legacy.Local.", dns.TypeA}, {"payments.local.", dns.TypeANY},
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				q := questions[(g+i)%len(questions)]
				req := new(dns.Msg).SetQuestion(q.name, q.qtype)
				req.SetEdns0(512, true)
				w := &recorder{remote: &net.UDPAddr{}}
				h.ServeDNS(w, req)
				if _, err := w.reply.Pack(); err != nil {
					t.Errorf("pack reply to %s: %v", q.name, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		snap := h.Current()
		for i := range 50 {
			snap = snap.Apply(Update{Services: []Service{{Name: "churn", Instances: []Instance{
				{ID: "c", Address: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String(), Port: 1},
			}}}})
			h.Publish(snap)
		}
	})
	wg.Wait()
}

// TestAnswerPastTCPLimit: an SRV set too large for one TCP message (64
// KiB) is cut to what fits without TC, which resolvers take for a failure
// over TCP, and each reply holds another part of the set.
func TestAnswerPastTCPLimit(t *testing.T) {
	const instances = 2000
	svc := Service{Name: "huge"}
	for i := range instances {
		svc.Instances = append(svc.Instances, Instance{
			ID:      fmt.Sprintf("0b7d1f3c-6a2e-4c9b-8f1d-%012d", i), // a Curator UUID's length
			Address: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String(),
			Port:    8080,
			Weight:  100,
		})
	}
	snap := NewSnapshot(fixtureZone()).Apply(Update{Full: true, Synced: true, Services: []Service{svc}})
	var parts [2]map[string]bool
	for i := range parts {
		reply := Answer(snap, new(dns.Msg).SetQuestion("huge.local.", dns.TypeSRV), true)
		wire, err := reply.Pack()
		if err != nil {
			t.Fatalf("pack: %v", err)
		}
		if len(wire) > dns.MaxMsgSize {
			t.Fatalf("reply is %d bytes, past a TCP message", len(wire))
		}
		got := roundTrip(t, reply)
		if got.Truncated || got.Rcode != dns.RcodeSuccess {
			t.Fatalf("TC %v, rcode %s; want a NOERROR reply without TC", got.Truncated, dns.RcodeToString[got.Rcode])
		}
		if len(got.Answer) < instances/4 || len(got.Answer) >= instances {
			t.Fatalf("%d SRV records of %d, want a part of the set", len(got.Answer), instances)
		}
		// What the READMEs say a TCP message holds.
		if n := len(got.Answer); n < 800 || n > 1200 {
			t.Errorf("%d SRV records of Curator-length IDs in a TCP message, want about a thousand", n)
		}
		parts[i] = map[string]bool{}
		for _, rr := range got.Answer {
			parts[i][rr.(*dns.SRV).Target] = true
		}
		if len(parts[i]) != len(got.Answer) {
			t.Errorf("%d SRV records name %d targets: a record repeated", len(got.Answer), len(parts[i]))
		}
	}
	if maps.Equal(parts[0], parts[1]) {
		t.Error("two replies hold the same part of the set: every client would use the same instances")
	}
}
