package main

import (
	"bufio"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/zkdns/zkdns/zkwatch"
)

func TestWriteZone(t *testing.T) {
	tests := []struct {
		name string
		data dataset
	}{
		{"one service, one instance", dataset{root: "/b", services: 1, instances: 1}},
		{"throughput shape", dataset{root: "/b", services: 20, instances: 5}},
		{"big services", dataset{root: "/b", services: 3, instances: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := writeZone(&b, tt.data, zone); err != nil {
				t.Fatal(err)
			}
			records := map[string][]dns.RR{} // by "owner TYPE"
			zp := dns.NewZoneParser(strings.NewReader(b.String()), zone, "test.zone")
			count := 0
			for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
				key := rr.Header().Name + " " + dns.TypeToString[rr.Header().Rrtype]
				records[key] = append(records[key], rr)
				count++
			}
			if err := zp.Err(); err != nil {
				t.Fatalf("the zone does not parse: %v\n%s", err, b.String())
			}
			if want := 3 + 4*tt.data.total(); count != want {
				t.Errorf("%d records, want %d (SOA, NS, ns A and four per instance)", count, want)
			}
			soa, ok := records["local. SOA"]
			if !ok || soa[0].(*dns.SOA).Minttl != zoneNegativeTTL || soa[0].Header().Ttl != zoneTTL {
				t.Errorf("apex SOA = %v, want negative TTL %d and TTL %d", soa, zoneNegativeTTL, zoneTTL)
			}
			for s := range tt.data.services {
				for _, owner := range []string{fmt.Sprintf("svc%d.local.", s), fmt.Sprintf("_svc%d._tcp.local.", s)} {
					srvs := records[owner+" SRV"]
					if len(srvs) != tt.data.instances {
						t.Fatalf("%s has %d SRV records, want %d", owner, len(srvs), tt.data.instances)
					}
					for i, rr := range srvs {
						srv := rr.(*dns.SRV)
						if want := fmt.Sprintf("inst%d.svc%d.local.", i, s); srv.Target != want || srv.Port != basePort || srv.Weight != 100 || srv.Priority != 0 {
							t.Errorf("%s SRV %d = %v, want 0 100 %d %s", owner, i, srv, basePort, want)
						}
					}
				}
				as := records[fmt.Sprintf("svc%d.local. A", s)]
				if len(as) != tt.data.instances {
					t.Fatalf("svc%d has %d A records, want %d", s, len(as), tt.data.instances)
				}
				for i := range tt.data.instances {
					inst := records[fmt.Sprintf("inst%d.svc%d.local. A", i, s)]
					want := tt.data.addr(s, i)
					if len(inst) != 1 || inst[0].(*dns.A).A.String() != want.String() {
						t.Errorf("inst%d.svc%d A = %v, want %s", i, s, inst, want)
					}
					if as[i].(*dns.A).A.String() != want.String() {
						t.Errorf("svc%d A %d = %v, want %s", s, i, as[i], want)
					}
				}
			}
		})
	}
}

func TestDatasetAddr(t *testing.T) {
	d := dataset{services: 10000, instances: 10}
	bench := netip.MustParsePrefix("198.18.0.0/15")
	seen := map[netip.Addr]bool{}
	for s := range d.services {
		for i := range d.instances {
			a := d.addr(s, i)
			if !bench.Contains(a) {
				t.Fatalf("addr(%d, %d) = %s, outside %s", s, i, a, bench)
			}
			if seen[a] {
				t.Fatalf("addr(%d, %d) = %s twice", s, i, a)
			}
			seen[a] = true
		}
	}
	tests := []struct {
		name string
		s, i int
		want string
	}{
		{"first instance skips the network address", 0, 0, "198.18.0.1"},
		{"next service follows on", 1, 0, "198.18.0.11"},
		{"crosses into the next /16", 6553, 6, "198.19.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := d.addr(tt.s, tt.i).String(); got != tt.want {
				t.Errorf("addr(%d, %d) = %s, want %s", tt.s, tt.i, got, tt.want)
			}
		})
	}
}

func TestPayloadDecodesAsCurator(t *testing.T) {
	d := dataset{root: "/cold", services: 10000, instances: 10}
	tests := []struct {
		name    string
		s, i    int
		port    int
		address string
	}{
		{"first instance", 0, 0, basePort, "198.18.0.1"},
		{"last instance of the cold set", 9999, 9, basePort, "198.19.134.160"},
		{"moved port", 12, 3, 10042, "198.18.0.124"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := d.payload(tt.s, tt.i, tt.port)
			if n := len(data); n < 170 || n > 240 {
				t.Errorf("payload is %d bytes, want about 200:\n%s", n, data)
			}
			inst, err := zkwatch.Decode("curator", "", zkwatch.Node{Name: fmt.Sprintf("inst%d", tt.i), Data: data})
			if err != nil {
				t.Fatalf("zkwatch does not decode the payload: %v\n%s", err, data)
			}
			if inst.Address != tt.address || int(inst.Port) != tt.port || !inst.Healthy {
				t.Errorf("decoded %+v, want %s:%d healthy", inst, tt.address, tt.port)
			}
		})
	}
}

func TestWriteQueries(t *testing.T) {
	d := dataset{services: 50, instances: 4}
	tests := []struct {
		name string
		n    int
		seed uint64
	}{
		{"a thousand lines", 1000, 1},
		{"another seed", 1000, 2},
		{"not a multiple of ten", 25, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := writeQueries(&b, d, zone, tt.n, tt.seed); err != nil {
				t.Fatal(err)
			}
			kinds := map[string]int{}
			sc := bufio.NewScanner(strings.NewReader(b.String()))
			lines := 0
			for sc.Scan() {
				lines++
				var name, qtype string
				if _, err := fmt.Sscan(sc.Text(), &name, &qtype); err != nil {
					t.Fatalf("line %q: %v", sc.Text(), err)
				}
				var s, i int
				switch {
				case qtype == "SRV":
					if _, err := fmt.Sscanf(name, "svc%d.local", &s); err != nil {
						t.Fatalf("SRV query for %q", name)
					}
					kinds["service SRV"]++
				case strings.HasPrefix(name, "inst"):
					if _, err := fmt.Sscanf(name, "inst%d.svc%d.local", &i, &s); err != nil || i >= d.instances {
						t.Fatalf("instance query for %q", name)
					}
					kinds["instance A"]++
				case strings.HasPrefix(name, "nx"):
					if _, err := fmt.Sscanf(name, "nx%d.local", &s); err != nil {
						t.Fatalf("nonexistent query for %q", name)
					}
					kinds["nonexistent"]++
				default:
					if _, err := fmt.Sscanf(name, "svc%d.local", &s); err != nil || qtype != "A" {
						t.Fatalf("service A query for %q %s", name, qtype)
					}
					kinds["service A"]++
				}
				if s < 0 || s >= d.services {
					t.Fatalf("%q names a service outside the data set", name)
				}
			}
			if lines != tt.n {
				t.Fatalf("%d lines, want %d", lines, tt.n)
			}
			if tt.n%10 == 0 {
				for kind, tenths := range map[string]int{"service SRV": 4, "service A": 4, "instance A": 1, "nonexistent": 1} {
					if want := tt.n / 10 * tenths; kinds[kind] != want {
						t.Errorf("%d %s queries, want %d", kinds[kind], kind, want)
					}
				}
			}
			var again strings.Builder
			if err := writeQueries(&again, d, zone, tt.n, tt.seed); err != nil {
				t.Fatal(err)
			}
			if again.String() != b.String() {
				t.Error("the same seed gave different queries")
			}
		})
	}
}
