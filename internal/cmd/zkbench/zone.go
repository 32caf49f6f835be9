package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"strings"
)

// benchAddrBase starts the range instance addresses come from: RFC 2544's
// 198.18.0.0/15, set aside for benchmarking. Its 131,072 addresses cover
// the largest data set; beyond that they wrap, which DNS does not mind.
var benchAddrBase = netip.MustParseAddr("198.18.0.0")

const benchAddrCount = 1 << 17

// basePort is every instance's port until a change moves it.
const basePort = 8080

// dataset is a synthetic registry: services svc0…svc(services-1) under
// root, each with instances inst0…inst(instances-1), registered as
// Curator ServiceInstance payloads. zkdns discovers them under a
// [[discover]] root, so svcN.<zone> is a service.
type dataset struct {
	root      string
	services  int
	instances int
}

func (d dataset) total() int { return d.services * d.instances }

func (d dataset) servicePath(s int) string { return fmt.Sprintf("%s/svc%d", d.root, s) }

func (d dataset) instancePath(s, i int) string {
	return fmt.Sprintf("%s/svc%d/inst%d", d.root, s, i)
}

// addr is instance i of service s's address. Instance numbers beyond
// d.instances (the extra instances churn adds) get addresses too.
func (d dataset) addr(s, i int) netip.Addr {
	a := benchAddrBase.As4()
	n := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) +
		uint32((s*d.instances+i+1)%benchAddrCount)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// payload is the Curator ServiceInstance JSON of instance i of service s
// on port, about 200 bytes as Curator writes them. registered is the
// registration time in Unix milliseconds; a fixed value keeps payloads
// reproducible, and zkdns's warm-up is off in the bench config.
func (d dataset) payload(s, i, port int) []byte {
	b, err := json.Marshal(curatorInstance{
		Name:         fmt.Sprintf("svc%d", s),
		ID:           fmt.Sprintf("inst%d", i),
		Address:      d.addr(s, i).String(),
		Port:         port,
		Registration: 1767225600000,
		ServiceType:  "DYNAMIC",
		URISpec:      uriSpec{Parts: []uriPart{{Value: "address", Variable: true}}},
	})
	if err != nil {
		panic(fmt.Sprintf("zkbench: a fixed struct failed to marshal: %v", err)) // cannot happen
	}
	return b
}

// curatorInstance mirrors the JSON Apache Curator's JsonInstanceSerializer
// writes, in its field order.
type curatorInstance struct {
	Name         string  `json:"name"`
	ID           string  `json:"id"`
	Address      string  `json:"address"`
	Port         int     `json:"port"`
	SSLPort      *int    `json:"sslPort"`
	Payload      any     `json:"payload"`
	Registration int64   `json:"registrationTimeUTC"`
	ServiceType  string  `json:"serviceType"`
	URISpec      uriSpec `json:"uriSpec"`
}

type uriSpec struct {
	Parts []uriPart `json:"parts"`
}

type uriPart struct {
	Value    string `json:"value"`
	Variable bool   `json:"variable"`
}

// zoneTTL and zoneNegativeTTL are what the bench config gives zkdns, so
// the peers' zone answers with the same TTLs.
const (
	zoneTTL         = 5
	zoneNegativeTTL = 1
)

// writeZone writes a zone file for zone (say "local.") holding the records
// zkdns serves for d: the apex SOA and NS with the NS host's address, and
// per service its SRV set (under both svcN and _svcN._tcp), its A set and
// each instance's own A record. Peers serve this file, so every server
// under test answers the same questions with the same records.
func writeZone(w io.Writer, d dataset, zone string) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "$ORIGIN %s\n$TTL %d\n", zone, zoneTTL)
	fmt.Fprintf(bw, "@ IN SOA ns.%s hostmaster.%s 1 3600 600 86400 %d\n", zone, zone, zoneNegativeTTL)
	fmt.Fprintf(bw, "@ IN NS ns.%s\n", zone)
	fmt.Fprintf(bw, "ns IN A 127.0.0.1\n")
	for s := range d.services {
		svc := fmt.Sprintf("svc%d", s)
		for i := range d.instances {
			fmt.Fprintf(bw, "%s IN SRV 0 100 %d inst%d.%s.%s\n", svc, basePort, i, svc, zone)
		}
		for i := range d.instances {
			fmt.Fprintf(bw, "_%s._tcp IN SRV 0 100 %d inst%d.%s.%s\n", svc, basePort, i, svc, zone)
		}
		for i := range d.instances {
			fmt.Fprintf(bw, "%s IN A %s\n", svc, d.addr(s, i))
		}
		for i := range d.instances {
			fmt.Fprintf(bw, "inst%d.%s IN A %s\n", i, svc, d.addr(s, i))
		}
	}
	return bw.Flush()
}

// queryMix is the query mix, in tenths: 4 service SRV, 4 service
// A, 1 instance A, 1 name that does not exist.
const queryMixDescription = "40% `svcN.local SRV`, 40% `svcN.local A`, 10% `instI.svcN.local A`, 10% nonexistent `nxN.local A`"

// writeQueries writes n queries in dnsperf's "name type" format for d in
// zone, following the query mix exactly per ten lines, with services and
// instances drawn from a generator seeded by seed so runs are comparable.
func writeQueries(w io.Writer, d dataset, zone string, n int, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	zone = strings.TrimSuffix(zone, ".")
	bw := bufio.NewWriter(w)
	for q := range n {
		s := rng.IntN(d.services)
		switch q % 10 {
		case 0, 1, 2, 3:
			fmt.Fprintf(bw, "svc%d.%s SRV\n", s, zone)
		case 4, 5, 6, 7:
			fmt.Fprintf(bw, "svc%d.%s A\n", s, zone)
		case 8:
			fmt.Fprintf(bw, "inst%d.svc%d.%s A\n", rng.IntN(d.instances), s, zone)
		default:
			fmt.Fprintf(bw, "nx%d.%s A\n", s, zone)
		}
	}
	return bw.Flush()
}
