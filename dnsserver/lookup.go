package dnsserver

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Why a query gets no positive answer. Answer maps each to an rcode in one
// switch; nothing else decides rcodes.
var (
	errFormat         = errors.New("dnsserver: malformed query")
	errNotImplemented = errors.New("dnsserver: opcode not implemented")
	errBadVersion     = errors.New("dnsserver: unsupported EDNS version")
	errRefused        = errors.New("dnsserver: query refused")
	errTransfer       = refusal{dns.ExtendedErrorCodeNotSupported, "zone transfers are not offered"}
	errClass          = refusal{dns.ExtendedErrorCodeNotSupported, "only class IN is served"}
	errNotInZone      = errors.New("dnsserver: name is outside the zone")
	errNotSynced      = errors.New("dnsserver: first sync from ZooKeeper not done yet")
	errNameNotFound   = errors.New("dnsserver: name does not exist")
	errNoData         = errors.New("dnsserver: name has no records of this type")
	errBadKey         = errors.New("dnsserver: query signed with a TSIG key zkdns does not hold")
)

// refusal is errRefused with the reason the client is told, as an
// Extended DNS Error (RFC 8914) of code.
type refusal struct {
	code   uint16
	reason string
}

func (r refusal) Error() string { return errRefused.Error() + ": " + r.reason }
func (r refusal) Unwrap() error { return errRefused }

// records is a positive answer. Its slices belong to the snapshot (or, for
// ANY, were made for this query) and must be copied before they are changed.
type records struct {
	answer []dns.RR // every owner name is the query name, lowercased
	// chased follows answer in the answer section: the records of the
	// names a CNAME in answer leads to inside the zone, owned by those
	// names (see follow).
	chased []dns.RR
	extra  []dns.RR
	// shuffle says answer is a set of addresses to hand out in a fresh
	// random order on every query, to spread load across instances.
	shuffle bool
}

// maxChain bounds the CNAMEs follow goes through, well past any chain
// that registrations would make on purpose.
const maxChain = 8

// follow continues found, when it is a CNAME to a name inside the zone, as
// RFC 1034 §4.3.2 step 3a has an authoritative server do: the records of
// the target for qtype are added in chased, and the outcome there (NODATA,
// NXDOMAIN) becomes the reply's (RFC 6604 §2). A stub resolver (glibc's,
// Go's) asks zkdns alone and follows no CNAME itself, and nobody else
// answers for a name in zkdns's zone. A chain that comes back to a name
// already in it, or grows past maxChain, ends there: the client sees the
// loop.
func (s *Snapshot) follow(found records, qtype uint16) (records, error) {
	last := found.answer
	if len(last) != 1 {
		return found, nil
	}
	visited := []string{strings.ToLower(last[0].Header().Name)}
	for range maxChain {
		cname, ok := last[0].(*dns.CNAME)
		if !ok {
			return found, nil
		}
		target := strings.ToLower(cname.Target)
		if _, inZone := s.apex.relative(target); !inZone || slices.Contains(visited, target) {
			return found, nil
		}
		visited = append(visited, target)
		next, err := s.lookup(target, qtype)
		if errors.Is(err, errNoData) || errors.Is(err, errNameNotFound) {
			return found, err
		}
		if err != nil {
			return found, nil
		}
		part := next.answer
		if next.shuffle {
			part = slices.Clone(part)
			rand.Shuffle(len(part), func(i, j int) { part[i], part[j] = part[j], part[i] })
		}
		// Both may be the snapshot's own slices: never append to them.
		found.chased = slices.Concat(found.chased, part)
		found.extra = slices.Concat(found.extra, next.extra)
		if last = next.answer; len(last) != 1 {
			return found, nil
		}
	}
	return found, nil
}

// lookup finds the records of qname, a lowercase FQDN, for qtype.
func (s *Snapshot) lookup(qname string, qtype uint16) (records, error) {
	rel, ok := s.apex.relative(qname)
	if !ok {
		return records{}, errNotInZone
	}
	if qtype == dns.TypeAXFR || qtype == dns.TypeIXFR {
		// The zone is rebuilt on every ZooKeeper event; a copy of it would
		// be stale at once, so transfers are not offered.
		return records{}, errTransfer
	}
	if len(rel) == 0 {
		switch qtype {
		case dns.TypeSOA:
			return records{answer: []dns.RR{s.apex.soa}}, nil
		case dns.TypeNS:
			if s.services.get("ns") != nil {
				// The NS host's name is a service's now, and answers
				// with its instances: glue saying otherwise would
				// contradict that answer.
				return records{answer: s.apex.ns}, nil
			}
			return records{answer: s.apex.ns, extra: s.apex.nsGlue}, nil
		}
	}
	if !s.synced {
		return records{}, errNotSynced
	}

	switch len(rel) {
	case 0:
		return existing(s.apex, qname, qtype, nil)
	case 1:
		if svc := s.services.get(rel[0]); svc != nil {
			return svc.lookup(s.apex, qname, qtype)
		}
		if rel[0] == "ns" {
			return s.apex.nsHost(qname, qtype)
		}
		if rel[0] == "_tcp" && s.services.len() > 0 {
			// An empty non-terminal above the _<service>._tcp names: it
			// exists, with no records (RFC 8020 §2).
			return existing(s.apex, qname, qtype, nil)
		}
	case 2:
		if rel[1] == "_tcp" && len(rel[0]) > 1 && rel[0][0] == '_' {
			if svc := s.services.get(rel[0][1:]); svc != nil {
				return svc.lookupTCP(s.apex, qname, qtype)
			}
			break
		}
		if svc := s.services.get(rel[1]); svc != nil {
			if inst := svc.records().instances[rel[0]]; inst != nil {
				return inst.lookup(s.apex, qname, qtype)
			}
		}
	}
	return records{}, errNameNotFound
}

// relative returns the labels of qname below the origin, leftmost first, or
// false when qname is not in the zone.
func (a *apex) relative(qname string) ([]string, bool) {
	labels := dns.SplitDomainName(qname)
	below := len(labels) - len(a.labels)
	if below < 0 {
		return nil, false
	}
	for i, l := range a.labels {
		if labels[below+i] != l {
			return nil, false
		}
	}
	return labels[:below], true
}

// nsHost answers ns.<origin>, the host the apex NS record names.
func (a *apex) nsHost(qname string, qtype uint16) (records, error) {
	switch qtype {
	case dns.TypeA:
		return existing(a, qname, qtype, a.nsA)
	case dns.TypeAAAA:
		return existing(a, qname, qtype, a.nsAAAA)
	}
	return existing(a, qname, qtype, nil)
}

// lookup answers <service>.<origin>.
func (svc *service) lookup(a *apex, qname string, qtype uint16) (records, error) {
	switch qtype {
	case dns.TypeSRV:
		return svc.srvAnswer(a, qname, qtype, svc.records().srv)
	case dns.TypeA:
		return shuffled(existing(a, qname, qtype, svc.records().a))
	case dns.TypeAAAA:
		return shuffled(existing(a, qname, qtype, svc.records().aaaa))
	}
	return existing(a, qname, qtype, nil)
}

// shuffled marks a found address set for shuffling.
func shuffled(r records, err error) (records, error) {
	if err == nil {
		r.shuffle = true
	}
	return r, err
}

// lookupTCP answers _<service>._tcp.<origin>, the RFC 2782 form.
func (svc *service) lookupTCP(a *apex, qname string, qtype uint16) (records, error) {
	if qtype == dns.TypeSRV {
		return svc.srvAnswer(a, qname, qtype, svc.records().srvTCP)
	}
	return existing(a, qname, qtype, nil)
}

func (svc *service) srvAnswer(a *apex, qname string, qtype uint16, srv []dns.RR) (records, error) {
	r, err := existing(a, qname, qtype, srv)
	if err == nil {
		r.extra = svc.records().glue
	}
	return r, err
}

// lookup answers <instance>.<service>.<origin>.
func (inst *instance) lookup(a *apex, qname string, qtype uint16) (records, error) {
	if inst.cname != nil {
		// The address is a hostname: point at it, for every type, since
		// a name with a CNAME has no other data (RFC 2181 §10.1). A
		// resolver that met the CNAME asking for the address follows it
		// for every other type too, so a TXT of the instance's own could
		// not be reached through it anyway.
		return records{answer: inst.cname}, nil
	}
	switch qtype {
	case dns.TypeA:
		return existing(a, qname, qtype, inst.a)
	case dns.TypeAAAA:
		return existing(a, qname, qtype, inst.aaaa)
	case dns.TypeTXT:
		return existing(a, qname, qtype, inst.txt)
	}
	return existing(a, qname, qtype, nil)
}

// existing answers a name that exists: rrs when there are any, RFC 8482's
// HINFO for ANY, and NODATA otherwise.
func existing(a *apex, qname string, qtype uint16, rrs []dns.RR) (records, error) {
	if len(rrs) > 0 {
		return records{answer: rrs}, nil
	}
	if qtype == dns.TypeANY {
		return records{answer: []dns.RR{&dns.HINFO{
			Hdr: dns.RR_Header{Name: qname, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: a.ttl},
			Cpu: "RFC8482",
			Os:  "",
		}}}, nil
	}
	return records{}, errNoData
}
