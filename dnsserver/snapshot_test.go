package dnsserver

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func inst(id, addr string) Instance {
	return Instance{ID: id, Address: addr, Port: 8080, Weight: 100}
}

// base serves a, b and c, one instance each.
func base() *Snapshot {
	return NewSnapshot(fixtureZone()).Apply(Update{Full: true, Synced: true, Services: []Service{
		{Name: "a", Instances: []Instance{inst("a1", "192.0.2.1")}},
		{Name: "b", Instances: []Instance{inst("b1", "192.0.2.2")}},
		{Name: "c", Instances: []Instance{inst("c1", "192.0.2.3")}},
	}})
}

// addrsOf returns the A records of qname as addresses, or the rcode's name
// when there is no answer.
func addrsOf(t *testing.T, s *Snapshot, qname string) []string {
	t.Helper()
	reply := Answer(s, new(dns.Msg).SetQuestion(qname, dns.TypeA), true)
	if len(reply.Answer) == 0 {
		return []string{dns.RcodeToString[reply.Rcode]}
	}
	var out []string
	for _, rr := range reply.Answer {
		out = append(out, rr.(*dns.A).A.String())
	}
	slices.Sort(out)
	return out
}

func serialOf(t *testing.T, s *Snapshot) uint32 {
	t.Helper()
	reply := Answer(s, new(dns.Msg).SetQuestion(s.Zone().Origin, dns.TypeSOA), true)
	if len(reply.Answer) != 1 {
		t.Fatalf("SOA query got %v", reply)
	}
	return reply.Answer[0].(*dns.SOA).Serial
}

func TestApply(t *testing.T) {
	cases := []struct {
		name      string
		update    Update
		want      map[string][]string // query name → addresses (or rcode)
		services  int
		shared    []string // services whose records must be shared with base
		notShared []string // services that must have been rebuilt
	}{
		{
			name:      "change one service",
			update:    Update{Services: []Service{{Name: "b", Instances: []Instance{inst("b2", "198.51.100.2")}}}},
			want:      map[string][]string{"a.local.": {"192.0.2.1"}, "b.local.": {"198.51.100.2"}, "c.local.": {"192.0.2.3"}},
			services:  3,
			shared:    []string{"a", "c"},
			notShared: []string{"b"},
		},
		{
			name:     "add one service",
			update:   Update{Services: []Service{{Name: "d", Instances: []Instance{inst("d1", "198.51.100.4")}}}},
			want:     map[string][]string{"a.local.": {"192.0.2.1"}, "d.local.": {"198.51.100.4"}},
			services: 4,
			shared:   []string{"a", "b", "c"},
		},
		{
			name:     "remove one service",
			update:   Update{Removed: []string{"b", "never-there"}},
			want:     map[string][]string{"a.local.": {"192.0.2.1"}, "b.local.": {"NXDOMAIN"}, "c.local.": {"192.0.2.3"}},
			services: 2,
			shared:   []string{"a", "c"},
		},
		{
			name: "removed wins over changed",
			update: Update{
				Services: []Service{{Name: "b", Instances: []Instance{inst("b2", "198.51.100.2")}}},
				Removed:  []string{"b"},
			},
			want:     map[string][]string{"b.local.": {"NXDOMAIN"}},
			services: 2,
		},
		{
			name: "full update replaces the set",
			update: Update{Full: true, Services: []Service{
				{Name: "a", Instances: []Instance{inst("a1", "192.0.2.1")}},
				{Name: "x", Instances: []Instance{inst("x1", "198.51.100.24")}},
			}},
			want:      map[string][]string{"a.local.": {"192.0.2.1"}, "b.local.": {"NXDOMAIN"}, "c.local.": {"NXDOMAIN"}, "x.local.": {"198.51.100.24"}},
			services:  2,
			notShared: []string{"a"},
		},
		{
			name:     "full update with nothing empties the set",
			update:   Update{Full: true},
			want:     map[string][]string{"a.local.": {"NXDOMAIN"}},
			services: 0,
		},
		{
			name: "the last of two same-named services wins",
			update: Update{Services: []Service{
				{Name: "b", Instances: []Instance{inst("b2", "198.51.100.2")}},
				{Name: "b", Instances: []Instance{inst("b3", "198.51.100.3")}},
			}},
			want:     map[string][]string{"b.local.": {"198.51.100.3"}},
			services: 3,
		},
		{
			name:     "an instance with a bad address is not served",
			update:   Update{Services: []Service{{Name: "b", Instances: []Instance{inst("bad", "not an address!"), inst("ok", "198.51.100.5")}}}},
			want:     map[string][]string{"b.local.": {"198.51.100.5"}, "bad.b.local.": {"NXDOMAIN"}},
			services: 3,
		},
		{
			name:     "the first of two same instance IDs wins",
			update:   Update{Services: []Service{{Name: "b", Instances: []Instance{inst("dup", "198.51.100.6"), inst("dup", "198.51.100.7")}}}},
			want:     map[string][]string{"b.local.": {"198.51.100.6"}, "dup.b.local.": {"198.51.100.6"}},
			services: 3,
		},
		{
			name:     "an IPv4-mapped address is served as A",
			update:   Update{Services: []Service{{Name: "b", Instances: []Instance{inst("m", "::ffff:198.51.100.8")}}}},
			want:     map[string][]string{"m.b.local.": {"198.51.100.8"}},
			services: 3,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := base()
			before := map[string][]string{}
			for _, q := range []string{"a.local.", "b.local.", "c.local."} {
				before[q] = addrsOf(t, old, q)
			}

			next := old.Apply(tc.update)

			for q, want := range tc.want {
				if got := addrsOf(t, next, q); !slices.Equal(got, want) {
					t.Errorf("%s: got %v, want %v", q, got, want)
				}
			}
			if got := next.Services(); got != tc.services {
				t.Errorf("Services() = %d, want %d", got, tc.services)
			}
			for _, name := range tc.shared {
				if next.byName.get(name) != old.byName.get(name) {
					t.Errorf("service %s was rebuilt; it should be shared with the old snapshot", name)
				}
			}
			for _, name := range tc.notShared {
				if next.byName.get(name) == old.byName.get(name) {
					t.Errorf("service %s is shared; it should have been rebuilt", name)
				}
			}
			// The old snapshot answers as before.
			for q, want := range before {
				if got := addrsOf(t, old, q); !slices.Equal(got, want) {
					t.Errorf("old snapshot changed: %s now %v, was %v", q, got, want)
				}
			}
			if old.Services() != 3 {
				t.Errorf("old snapshot now has %d services, had 3", old.Services())
			}
			if s1, s2 := serialOf(t, old), serialOf(t, next); s2 <= s1 {
				t.Errorf("serial went from %d to %d, want it to grow", s1, s2)
			}
		})
	}
}

func TestApplyRelabelsOnCollision(t *testing.T) {
	old := NewSnapshot(fixtureZone()).Apply(Update{Synced: true, Services: []Service{
		{Name: "pay_ments", Instances: []Instance{inst("p1", "192.0.2.1")}},
		{Name: "other", Instances: []Instance{inst("o1", "192.0.2.9")}},
	}})
	next := old.Apply(Update{Services: []Service{
		{Name: "pay-ments", Instances: []Instance{inst("p2", "198.51.100.1")}},
	}})
	cases := []struct {
		name  string
		snap  *Snapshot
		qname string
		want  []string
	}{
		{name: "before: the changed name has the label", snap: old, qname: "pay-ments.local.", want: []string{"192.0.2.1"}},
		{name: "after: the exact name takes the label", snap: next, qname: "pay-ments.local.", want: []string{"198.51.100.1"}},
		{name: "after: the changed name moves to a suffix", snap: next, qname: "pay-ments-b8744e.local.", want: []string{"192.0.2.1"}},
		{name: "after: its instances move with it", snap: next, qname: "p1.pay-ments-b8744e.local.", want: []string{"192.0.2.1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := addrsOf(t, tc.snap, tc.qname); !slices.Equal(got, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.qname, got, tc.want)
			}
		})
	}
	if next.byName.get("other") != old.byName.get("other") {
		t.Error("an unrelated service was rebuilt")
	}
}

// TestCaseVariantKeepsOut adds names that differ from served ones only in
// case, which sort before them: a discovered "Search" beside a configured
// "search", an instance znode "P1" beside "p1". The names served keep
// their labels and the newcomers get suffixes, so no one can take over a
// name's answers by registering its upper-case twin.
func TestCaseVariantKeepsOut(t *testing.T) {
	old := NewSnapshot(fixtureZone()).Apply(Update{Synced: true, Services: []Service{
		{Name: "search", Instances: []Instance{inst("p1", "192.0.2.1")}},
	}})
	next := old.Apply(Update{Services: []Service{
		{Name: "Search", Instances: []Instance{inst("x1", "203.0.113.66")}},
		{Name: "search", Instances: []Instance{inst("p1", "192.0.2.1"), inst("P1", "203.0.113.77")}},
	}})
	full := NewSnapshot(fixtureZone()).Apply(Update{Full: true, Synced: true, Services: []Service{
		{Name: "Search", Instances: []Instance{inst("x1", "203.0.113.66")}},
		{Name: "search", Instances: []Instance{inst("P1", "203.0.113.77"), inst("p1", "192.0.2.1")}},
	}})
	cases := []struct {
		qname string
		want  []string
	}{
		{qname: "search.local.", want: []string{"192.0.2.1", "203.0.113.77"}},
		{qname: "p1.search.local.", want: []string{"192.0.2.1"}},
		{qname: "p1-" + fmt.Sprintf("%06x", hash32("P1", 0)>>8) + ".search.local.", want: []string{"203.0.113.77"}},
		{qname: "search-" + fmt.Sprintf("%06x", hash32("Search", 0)>>8) + ".local.", want: []string{"203.0.113.66"}},
	}
	for _, snap := range []struct {
		name string
		s    *Snapshot
	}{{"applied", next}, {"full build", full}} {
		for _, tc := range cases {
			if got := addrsOf(t, snap.s, tc.qname); !slices.Equal(got, tc.want) {
				t.Errorf("%s: %s: got %v, want %v", snap.name, tc.qname, got, tc.want)
			}
		}
	}
}

func TestSnapshotSynced(t *testing.T) {
	cases := []struct {
		name    string
		updates []Update
		want    bool
	}{
		{name: "new snapshot", want: false},
		{name: "partial update without sync", updates: []Update{{Services: []Service{{Name: "a"}}}}, want: false},
		{name: "full update without sync", updates: []Update{{Full: true}}, want: false},
		{name: "synced", updates: []Update{{Full: true, Synced: true}}, want: true},
		{name: "sticky", updates: []Update{{Full: true, Synced: true}, {Removed: []string{"a"}}, {Full: true}}, want: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSnapshot(fixtureZone())
			for _, u := range tc.updates {
				s = s.Apply(u)
			}
			if got := s.Synced(); got != tc.want {
				t.Errorf("Synced() = %v, want %v", got, tc.want)
			}
			if got := s.WithZone(fixtureZone()).Synced(); got != tc.want {
				t.Errorf("after WithZone, Synced() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSnapshotSerial(t *testing.T) {
	s := NewSnapshot(fixtureZone())
	steps := []struct {
		name string
		next func(*Snapshot) *Snapshot
	}{
		{name: "empty update", next: func(s *Snapshot) *Snapshot { return s.Apply(Update{}) }},
		{name: "sync", next: func(s *Snapshot) *Snapshot { return s.Apply(Update{Full: true, Synced: true}) }},
		{name: "zone change", next: func(s *Snapshot) *Snapshot { return s.WithZone(fixtureZone()) }},
		{name: "add a service", next: func(s *Snapshot) *Snapshot { return s.Apply(Update{Services: []Service{{Name: "a"}}}) }},
	}
	prev := serialOf(t, s)
	if prev != 1 {
		t.Errorf("new snapshot has serial %d, want 1", prev)
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			s = step.next(s)
			got := serialOf(t, s)
			if got != prev+1 {
				t.Errorf("serial %d after %d, want %d", got, prev, prev+1)
			}
			prev = got
		})
	}
}

// TestApexWithSerial holds the apex an update copies with a new serial to
// the one buildApex builds from scratch for that serial: every record and
// every packed reply alike.
func TestApexWithSerial(t *testing.T) {
	zones := []Zone{
		fixtureZone(),
		{Origin: "local.", TTL: 5 * time.Second, NegativeTTL: time.Second},
		{Origin: "example.internal.", TTL: time.Hour, NegativeTTL: time.Minute, NSAddrs: []netip.Addr{
			netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::53"), netip.MustParseAddr("192.0.2.2"),
		}},
		{Origin: "."},
	}
	for _, z := range zones {
		for _, serial := range []uint32{2, 1 << 31, 1<<32 - 1} {
			z := normaliseZone(z)
			got := buildApex(z, 1).withSerial(serial)
			if want := buildApex(z, serial); !reflect.DeepEqual(got, want) {
				t.Errorf("zone %q, serial %d: the copied apex differs from a built one:\n%+v\nwant\n%+v", z.Origin, serial, got, want)
			}
		}
	}
}

func TestWithZone(t *testing.T) {
	old := base()
	next := old.WithZone(Zone{
		Origin:      "SVC.Example.",
		TTL:         30 * time.Second,
		NegativeTTL: 3 * time.Second,
		NSAddrs:     []netip.Addr{netip.MustParseAddr("198.51.100.53")},
	})
	cases := []struct {
		name  string
		snap  *Snapshot
		qname string
		qtype uint16
		rcode int
		want  string // the first answer record, if any
	}{
		{name: "service under the new origin", snap: next, qname: "a.svc.example.", qtype: dns.TypeA, want: "a.svc.example.\t30\tIN\tA\t192.0.2.1"},
		{name: "old origin is now outside the zone", snap: next, qname: "a.local.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "new NS host address", snap: next, qname: "ns.svc.example.", qtype: dns.TypeA, want: "ns.svc.example.\t30\tIN\tA\t198.51.100.53"},
		{name: "new negative TTL", snap: next, qname: "svc.example.", qtype: dns.TypeSOA,
			want: "svc.example.\t30\tIN\tSOA\tns.svc.example. hostmaster.svc.example. 3 3600 600 86400 3"},
		{name: "old snapshot keeps its zone", snap: old, qname: "a.local.", qtype: dns.TypeA, want: "a.local.\t5\tIN\tA\t192.0.2.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reply := Answer(tc.snap, new(dns.Msg).SetQuestion(tc.qname, tc.qtype), true)
			if reply.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[reply.Rcode], dns.RcodeToString[tc.rcode])
			}
			got := ""
			if len(reply.Answer) > 0 {
				got = reply.Answer[0].String()
			}
			if got != tc.want {
				t.Errorf("answer %q, want %q", got, tc.want)
			}
		})
	}
	if next.Services() != old.Services() || !next.Synced() {
		t.Errorf("WithZone kept %d of %d services, synced %v", next.Services(), old.Services(), next.Synced())
	}
	if got := next.Zone().Origin; got != "svc.example." {
		t.Errorf("Zone().Origin = %q, want it normalised to %q", got, "svc.example.")
	}
}

// TestSnapshotOwnsItsData changes everything the caller handed in or got
// back, and checks that the snapshot does not see it.
func TestSnapshotOwnsItsData(t *testing.T) {
	zone := fixtureZone()
	svc := Service{Name: "a", Instances: []Instance{{ID: "a1", Address: "192.0.2.1", Port: 1, TXT: []string{"k=v"}}}}
	s := NewSnapshot(zone).Apply(Update{Synced: true, Services: []Service{svc}})

	zone.NSAddrs[0] = netip.MustParseAddr("198.51.100.99")
	svc.Instances[0].TXT[0] = "k=changed"
	svc.Instances[0].Address = "198.51.100.98"
	s.Zone().NSAddrs[0] = netip.MustParseAddr("198.51.100.97")

	cases := []struct {
		name  string
		qname string
		qtype uint16
		want  string
	}{
		{name: "NS address", qname: "ns.local.", qtype: dns.TypeA, want: "ns.local.\t5\tIN\tA\t192.0.2.53"},
		{name: "TXT", qname: "a1.a.local.", qtype: dns.TypeTXT, want: "a1.a.local.\t5\tIN\tTXT\t\"k=v\""},
		{name: "rebuilt after a zone change", qname: "a1.a.local.", qtype: dns.TypeA, want: "a1.a.local.\t5\tIN\tA\t192.0.2.1"},
	}
	s = s.WithZone(s.Zone())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reply := Answer(s, new(dns.Msg).SetQuestion(tc.qname, tc.qtype), true)
			if len(reply.Answer) != 1 || reply.Answer[0].String() != tc.want {
				t.Errorf("answer %v, want %q", reply.Answer, tc.want)
			}
		})
	}
}

func TestSnapshotLabels(t *testing.T) {
	snap := NewSnapshot(Zone{Origin: "local.", TTL: 5 * time.Second, NegativeTTL: time.Second}).Apply(Update{
		Full: true, Synced: true,
		Services: []Service{{Name: "Pay_Ments", Instances: []Instance{
			{ID: "Node-1", Address: "192.0.2.1", Port: 80},
			{ID: "Node-1", Address: "192.0.2.9", Port: 80}, // a repeated ID: the first is served
			{ID: "node_2", Address: "web.example.", Port: 80},
			{ID: "bad", Address: "not an address", Port: 80},
			{ID: "v6", Address: "2001:db8::1", Port: 80},
		}}},
	})
	tests := []struct {
		name      string
		service   string
		wantOK    bool
		wantLabel string
		want      map[string]string
	}{
		{
			name: "served instances only", service: "Pay_Ments", wantOK: true, wantLabel: "pay-ments",
			want: map[string]string{"Node-1": "node-1", "node_2": "node-2", "v6": "v6"},
		},
		{name: "unknown service", service: "nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			label, instances, ok := snap.Labels(tc.service)
			if ok != tc.wantOK || label != tc.wantLabel || !maps.Equal(instances, tc.want) {
				t.Fatalf("Labels(%q) = %q, %v, %v; want %q, %v, %v", tc.service, label, instances, ok, tc.wantLabel, tc.want, tc.wantOK)
			}
			// Every label given is a name the snapshot answers.
			for id, l := range instances {
				if _, err := snap.lookup(l+"."+label+".local.", dns.TypeTXT); err != nil && !errors.Is(err, errNoData) {
					t.Errorf("instance %q: label %q does not resolve: %v", id, l, err)
				}
			}
		})
	}
}

// TestApplyIncrementalMatchesFull applies random updates one after
// another, over names whose labels collide, and after each one holds the
// snapshot to a full build of the same services: the same labels, the
// same answers, and the index counts right. An update rebuilds only what
// it must, so this is what keeps the shortcuts honest.
func TestApplyIncrementalMatchesFull(t *testing.T) {
	// pay_ments, pay-ments and Pay.Ments share the base label pay-ments;
	// orders and orders_ share orders.
	names := []string{"pay_ments", "pay-ments", "Pay.Ments", "orders", "orders_", "search", "cart"}
	rng := rand.New(rand.NewPCG(1, 2))
	current := map[string]Service{}
	snap := NewSnapshot(fixtureZone()).Apply(Update{Full: true, Synced: true})
	for step := range 300 {
		var u Update
		for _, name := range names {
			switch rng.IntN(6) {
			case 0:
				if _, ok := current[name]; ok {
					u.Removed = append(u.Removed, name)
					delete(current, name)
				}
			case 1, 2:
				svc := Service{Name: name}
				for i := range rng.IntN(3) + 1 {
					svc.Instances = append(svc.Instances, inst(fmt.Sprintf("i%d", i), fmt.Sprintf("192.0.2.%d", rng.IntN(250)+1)))
				}
				u.Services = append(u.Services, svc)
				current[name] = svc
			}
		}
		snap = snap.Apply(u)
		matchesFull(t, fmt.Sprintf("step %d", step), snap, current, names)
	}
}

// TestApplyLiteralSuffixedName adds a service whose name is literally the
// label another service was given to settle a collision. As in a full
// build, the literal name takes that label and the other service moves to
// its next suffix; neither may answer for the other, whichever order the
// names come in.
func TestApplyLiteralSuffixedName(t *testing.T) {
	suffixed := withSuffix("pay-ments", hash32("pay_ments", 0)) // what pay_ments gets beside pay-ments
	names := []string{"pay-ments", "pay_ments", "Pay.Ments", suffixed}
	orders := [][]string{
		{"pay-ments", "pay_ments", suffixed, "Pay.Ments"},
		{suffixed, "pay-ments", "pay_ments", "Pay.Ments"},
		{"pay_ments", suffixed, "pay-ments", "Pay.Ments"},
	}
	for _, order := range orders {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			current := map[string]Service{}
			snap := NewSnapshot(fixtureZone()).Apply(Update{Full: true, Synced: true})
			for i, name := range order {
				svc := Service{Name: name, Instances: []Instance{inst("i", fmt.Sprintf("192.0.2.%d", i+1))}}
				current[name] = svc
				snap = snap.Apply(Update{Services: []Service{svc}})
				matchesFull(t, "after adding "+name, snap, current, names)
			}
		})
	}
}

// matchesFull holds snap, built by incremental updates, to a full build of
// current: the same services, each filed under its label, under the same
// labels, answering the same addresses.
func matchesFull(t *testing.T, when string, snap *Snapshot, current map[string]Service, names []string) {
	t.Helper()
	full := NewSnapshot(fixtureZone()).Apply(Update{Full: true, Synced: true, Services: slices.Collect(maps.Values(current))})
	if snap.Services() != len(current) || snap.services.len() != len(current) || snap.byName.len() != len(current) {
		t.Fatalf("%s: %d services (indexes %d, %d), want %d", when, snap.Services(), snap.services.len(), snap.byName.len(), len(current))
	}
	for name, svc := range snap.byName.all() {
		if snap.services.get(svc.label) != svc {
			t.Fatalf("%s: %q has the label %q, which serves another service", when, name, svc.label)
		}
	}
	for _, name := range names {
		label, instances, ok := snap.Labels(name)
		wantLabel, wantInstances, wantOK := full.Labels(name)
		if ok != wantOK || label != wantLabel || !maps.Equal(instances, wantInstances) {
			t.Fatalf("%s: Labels(%q) = %q %v %v; a full build gives %q %v %v", when, name, label, instances, ok, wantLabel, wantInstances, wantOK)
		}
		if !ok {
			continue
		}
		qname := label + ".local."
		if got, want := addrsOf(t, snap, qname), addrsOf(t, full, qname); !slices.Equal(got, want) {
			t.Fatalf("%s: %s A = %v; a full build gives %v", when, qname, got, want)
		}
	}
}

// TestRelabelled: an update whose collision group is settled again
// reports each served service that moved to another label, and which
// service took the old one; every other update reports none.
func TestRelabelled(t *testing.T) {
	svc := func(name, addr string) Service { return Service{Name: name, Instances: []Instance{inst("i", addr)}} }
	moved := Relabel{Service: "payments.v2", From: "payments-v2", To: "payments-v2-" + fmt.Sprintf("%06x", hash32("payments.v2", 0)>>8), TakenBy: "payments-v2"}
	base := NewSnapshot(fixtureZone()).Apply(Update{Full: true, Synced: true, Services: []Service{svc("payments.v2", "192.0.2.1"), svc("other", "192.0.2.9")}})
	taken := base.Apply(Update{Services: []Service{svc("payments-v2", "192.0.2.2")}})
	cases := []struct {
		name string
		snap *Snapshot
		want []Relabel
	}{
		{"a first build moves nothing", base, nil},
		{"a name that is its own label takes it", taken, []Relabel{moved}},
		{"the taker going gives the label back", taken.Apply(Update{Removed: []string{"payments-v2"}}),
			[]Relabel{{Service: "payments.v2", From: moved.To, To: "payments-v2"}}},
		{"an update to another service moves nothing", taken.Apply(Update{Services: []Service{svc("other", "192.0.2.10")}}), nil},
		{"the moved service changed in the same update", base.Apply(Update{Services: []Service{svc("payments.v2", "192.0.2.3"), svc("payments-v2", "192.0.2.2")}}), []Relabel{moved}},
		{"a full sync that brings the taker", base.Apply(Update{Full: true, Synced: true, Services: []Service{svc("payments.v2", "192.0.2.1"), svc("payments-v2", "192.0.2.2")}}), []Relabel{moved}},
		{"a full sync after the move moves nothing", taken.Apply(Update{Full: true, Synced: true, Services: []Service{svc("payments.v2", "192.0.2.1"), svc("payments-v2", "192.0.2.2")}}), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.snap.Relabelled(); !slices.Equal(got, tc.want) {
				t.Errorf("Relabelled() = %+v, want %+v", got, tc.want)
			}
		})
	}
	if label, ok := taken.Label("payments.v2"); !ok || label != moved.To {
		t.Errorf("Label(payments.v2) = %q, %v; want %q", label, ok, moved.To)
	}
	if _, ok := taken.Label("nope"); ok {
		t.Error("Label of a service not served says it is")
	}
}
