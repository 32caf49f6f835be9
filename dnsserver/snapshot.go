package dnsserver

import (
	"bytes"
	"encoding/binary"
	"iter"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Zone holds the settings that apply to every answer.
type Zone struct {
	// Origin is the zone apex as a fully qualified name, e.g. "local.".
	// The snapshot lowercases it and adds a missing trailing dot; an empty
	// Origin means the root, which puts every name in the zone, so the
	// config layer is expected to reject it.
	Origin string
	// TTL is the TTL of positive answers. It is served in whole seconds,
	// rounded down.
	TTL time.Duration
	// NegativeTTL is the SOA minimum, and the TTL of the SOA served in the
	// authority section of NXDOMAIN and NODATA answers (RFC 2308 §5).
	NegativeTTL time.Duration
	// NSAddrs are the addresses served for "ns.<Origin>", the host the apex
	// NS record names. Empty is allowed: the NS host then has no addresses.
	NSAddrs []netip.Addr
}

// Service is one service to serve.
type Service struct {
	// Name is the raw name: a config name or a discovered znode name. The
	// snapshot makes it into a DNS label (see Label).
	Name string
	// Instances are the healthy instances to serve, in the order their SRV
	// records are served. Empty means the name exists with no records
	// (NODATA). Of two instances with the same ID only the first is served.
	Instances []Instance
}

// Instance is one instance of a Service.
type Instance struct {
	// ID is the znode name. The snapshot makes it into a DNS label.
	ID string
	// Address is an IP literal or a hostname. An instance whose Address is
	// neither (or whose hostname is not a valid DNS name) is not served.
	Address string
	// Port is the SRV port.
	Port uint16
	// Weight is the SRV weight to serve.
	Weight uint16
	// TXT holds "key=value" strings, served in this order. A string longer
	// than 255 bytes does not fit a TXT character-string and is skipped.
	TXT []string
}

// Update describes a change to the served set.
type Update struct {
	// Services are the added or changed services. Each replaces any earlier
	// service of the same Name; if a Name appears twice, the last one wins.
	Services []Service
	// Removed names services that are no longer served. A name in both
	// Services and Removed is removed.
	Removed []string
	// Full says Services is the whole set: every service not in it is
	// removed.
	Full bool
	// Synced says the first full sync from ZooKeeper has happened. It is
	// sticky: once a snapshot is synced, every snapshot derived from it is.
	Synced bool
}

// SOA timers. zkdns serves no zone transfers, so secondaries never use
// them; they only need to be plausible to tools that print the SOA.
const (
	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 86400
)

// Snapshot is an immutable view of everything zkdns serves: the zone
// settings and, for each service, the DNS records built from its instances.
// Every method is safe for concurrent use; nothing changes a Snapshot after
// it is built. Apply and WithZone return new snapshots.
type Snapshot struct {
	zone   Zone // normalised; NSAddrs is owned by the snapshot
	serial uint32
	synced bool
	apex   *apex

	// services maps a service's final DNS label to its records.
	services *index[*service]
	// byName maps a service's raw name to the same records as services.
	byName *index[*service]
	// byBase maps a base label (Label of a raw name) to the raw names that
	// have it: the collision groups, settled one at a time by Apply.
	byBase *index[[]string]

	// relabelled lists the services the Apply that made this snapshot
	// moved to another label (see Relabelled).
	relabelled []Relabel
}

// Relabel is a service served before and after an update under different
// labels: another name took its label (or gave one back) when the update
// settled their collision group again. Whoever resolved the old name
// reaches TakenBy now, or nothing.
type Relabel struct {
	Service  string // the service's raw name
	From, To string // its label before and after
	TakenBy  string // the service now served under From; "" for none
}

// Relabelled returns the services that the Apply which made s moved to
// another label, in name order; nil for almost every update, which moves
// none.
func (s *Snapshot) Relabelled() []Relabel { return s.relabelled }

// Label returns the label service is served under, and false for a
// service the snapshot does not hold.
func (s *Snapshot) Label(service string) (string, bool) {
	if svc := s.byName.get(service); svc != nil {
		return svc.label, true
	}
	return "", false
}

// noteRelabels records in s, just built from prev, the services among
// names whose label moved. prev's indexes are as they were: an edit
// copies what it changes.
func (s *Snapshot) noteRelabels(prev *Snapshot, names iter.Seq[string]) {
	var seen map[string]bool // a group may be settled twice
	for name := range names {
		svc, old := s.byName.get(name), prev.byName.get(name)
		if svc == nil || old == nil || seen[name] || old.label == svc.label {
			continue
		}
		if seen == nil {
			seen = map[string]bool{}
		}
		seen[name] = true
		r := Relabel{Service: name, From: old.label, To: svc.label}
		if holder := s.services.get(old.label); holder != nil {
			r.TakenBy = holder.src.Name
		}
		s.relabelled = append(s.relabelled, r)
	}
	slices.SortFunc(s.relabelled, func(a, b Relabel) int { return strings.Compare(a.Service, b.Service) })
}

// apex holds the records of the zone apex and of its NS host, and what a
// query needs to tell whether a name is in the zone.
type apex struct {
	origin string   // lowercase FQDN
	labels []string // origin split into labels, for matching names
	ttl    uint32   // positive TTL, in seconds

	soa    dns.RR   // SOA with the positive TTL, the answer to an SOA query
	negSOA dns.RR   // the same SOA with the negative TTL, for NXDOMAIN and NODATA
	ns     []dns.RR // the apex NS record
	nsA    []dns.RR // A records of ns.<origin>
	nsAAAA []dns.RR // AAAA records of ns.<origin>
	nsGlue []dns.RR // nsA then nsAAAA, the additional section of an NS answer

	wire     []byte     // origin in lowercase wire form, for the fast path
	negTail  []byte     // negSOA packed without its owner name
	wireApex packedName // packed SOA and NS replies
	wireNS   packedName // packed replies for ns.<origin>
}

// service holds one service's packed replies, built at snapshot time, and
// what its records are built from. The fast path answers almost every
// query from the packed replies, so the records themselves (dns.RR values,
// several times their wire size) are built only when the slow path first
// needs them, and kept from then on.
type service struct {
	src    Service // deep copy of the input, for rebuilding on relabel or zone change
	base   string  // Label(src.Name), before collisions are broken
	label  string  // the label the service is served under
	origin string  // the zone's origin and positive TTL, which the records are built with
	ttl    uint32

	// instances maps an instance's final label to its packed replies.
	instances map[string]instanceReplies
	// instanceWire holds every instance's packed address replies, back to
	// back: one allocation per service instead of several per instance.
	instanceWire []byte

	wire packedName // packed replies for <label>.<origin>
	// wireTCP holds the packed replies for _<label>._tcp.<origin>, packed
	// on the first query for that name: most clients ask for the plain
	// name, and the two SRV replies would double the service's share.
	wireTCP atomic.Pointer[packedName]

	built atomic.Pointer[serviceRecords] // nil until records first runs
}

// instanceReplies locates an instance's packed replies in its service's
// instanceWire: the A reply, then the AAAA reply (both CNAME replies for
// an instance registered by hostname); a zero length is NODATA.
type instanceReplies struct {
	start  uint32
	size   [2]uint16 // A, AAAA
	hasTXT bool      // it has a TXT record, which the slow path serves
	// slow sends every query to the slow path: a reply does not fit 512
	// bytes, or the CNAME leads into the zone, to be followed there.
	slow bool
	// byHostname: every type is answered with the CNAME, of which only
	// the replies to A and AAAA are packed.
	byHostname bool
}

// serviceRecords are one service's records.
type serviceRecords struct {
	srv    []dns.RR // SRV records owned by <label>.<origin>
	srvTCP []dns.RR // the same SRV records owned by _<label>._tcp.<origin>
	glue   []dns.RR // A/AAAA of the IP instances, the additional section of SRV answers
	a      []dns.RR // A records owned by <label>.<origin>
	aaaa   []dns.RR // AAAA records owned by <label>.<origin>

	// instances maps an instance's final label to its records.
	instances map[string]*instance
}

// instance holds one instance's records, owned by <instance>.<service>.<origin>.
type instance struct {
	a     []dns.RR // its A record, when its address is IPv4
	aaaa  []dns.RR // its AAAA record, when its address is IPv6
	cname []dns.RR // a CNAME to its address, when that is a hostname
	txt   []dns.RR // its TXT record, when it has strings that fit
}

// records returns the service's records, building them on first use. Two
// queries that race to build them both build the same thing; one result
// is kept.
func (svc *service) records() *serviceRecords {
	if r := svc.built.Load(); r != nil {
		return r
	}
	r := buildRecords(svc.origin, svc.ttl, svc.src, svc.label)
	if !svc.built.CompareAndSwap(nil, r) {
		return svc.built.Load()
	}
	return r
}

// NewSnapshot returns a snapshot with no services that is not synced. Its
// SOA serial is 1; every snapshot derived from it has the serial of its
// parent plus one. zkdns serves no zone transfers, so the serial only has to
// grow while the daemon runs.
func NewSnapshot(z Zone) *Snapshot {
	z = normaliseZone(z)
	const serial = 1
	return &Snapshot{
		zone:     z,
		serial:   serial,
		apex:     buildApex(z, serial),
		services: newIndex[*service](),
		byName:   newIndex[*service](),
		byBase:   newIndex[[]string](),
	}
}

// Apply returns a new snapshot with u applied; s itself is not changed.
// Only the services that u names are rebuilt; the new snapshot shares the
// records of every other service with s. The one exception is a service
// whose label changes because a newly added name collides with it: that
// service is rebuilt under its new label. Labels are settled only within
// the collision groups the update touches (and those evicted from a base
// label a new name takes), so a suffixed label that stepped aside for
// another name keeps its new value after that name goes, where a full
// build would give back the first; the service indexes are
// copied only in the shards the update touches, so the cost of an update
// is the rebuild of what changed, however many services there are.
func (s *Snapshot) Apply(u Update) *Snapshot {
	changed := make(map[string]Service, len(u.Services))
	for _, svc := range u.Services {
		changed[svc.Name] = svc
	}
	for _, name := range u.Removed {
		delete(changed, name)
	}
	next := s.derive(nil)
	next.synced = s.synced || u.Synced
	if u.Full {
		e := newEdit()
		bases := make(map[string]string, len(changed))
		for name := range changed {
			bases[name] = Label(name)
		}
		for name, label := range resolveLabels(bases) {
			e.add(buildService(next.apex, cloneService(changed[name]), bases[name], label))
		}
		e.finish(next)
		next.noteRelabels(s, maps.Keys(changed))
		return next
	}

	e := s.edit()
	affected := map[string]bool{} // base labels whose groups must be settled again
	for _, name := range u.Removed {
		e.remove(name, affected)
	}
	for name, svc := range changed {
		// A service already served under the same name keeps its base
		// label, so its collision group and label stay as they are unless
		// another change moves the group: rebuild it in place. This is
		// almost every update.
		if old := e.byName.get(name); old != nil && !affected[old.base] && e.services.get(old.label) == old {
			e.replace(old, buildService(next.apex, cloneService(svc), old.base, old.label))
			continue
		}
		e.remove(name, affected)
		base := Label(name)
		affected[base] = true
		e.byBase.set(base, append(slices.Clone(e.byBase.get(base)), name))
	}
	// A group settled may evict another from its base label (see below),
	// which then needs settling too: a worklist, not one pass.
	work := make([]string, 0, len(affected))
	for base := range affected {
		work = append(work, base)
	}
	var settled []string // names whose groups were settled again
	for len(work) > 0 {
		base := work[len(work)-1]
		work = work[:len(work)-1]
		group := e.byBase.get(base)
		bases := make(map[string]string, len(group))
		for _, name := range group {
			bases[name] = base
			if old := e.byName.get(name); old != nil && e.services.get(old.label) == old {
				e.services.del(old.label) // free the label while the group is settled
			}
		}
		// A base label belongs to its group, as in a full build: a name
		// that is literally another's suffixed label takes it, and the
		// service that held it moves to its next suffix.
		if holder := e.services.get(base); holder != nil && holder.base != base && len(group) > 0 {
			e.services.del(base)
			work = append(work, holder.base)
		}
		labels := resolveLabelsBeside(bases, func(l string) bool { return e.services.get(l) != nil || e.byBase.get(l) != nil })
		settled = append(settled, group...)
		for _, name := range group {
			label := labels[name]
			old := e.byName.get(name)
			var svc *service
			switch {
			case old == nil:
				svc = buildService(next.apex, cloneService(changed[name]), base, label)
			case old.label != label:
				svc = buildService(next.apex, old.src, base, label)
			default:
				svc = old
			}
			e.add(svc)
		}
	}
	e.finish(next)
	next.noteRelabels(s, slices.Values(settled))
	return next
}

// WithZone returns a snapshot with the same services and synced state as s,
// served under the zone settings z. Every record is rebuilt.
func (s *Snapshot) WithZone(z Zone) *Snapshot {
	z = normaliseZone(z)
	next := s.derive(&z)
	next.synced = s.synced
	e := newEdit()
	for _, svc := range s.byName.all() {
		e.add(buildService(next.apex, svc.src, svc.base, svc.label))
	}
	e.finish(next)
	return next
}

// snapshotEdit holds the service indexes of a snapshot being built, before
// anyone else can see it.
type snapshotEdit struct {
	services, byName *indexEdit[*service]
	byBase           *indexEdit[[]string]
}

// newEdit starts indexes with no services.
func newEdit() *snapshotEdit {
	return &snapshotEdit{
		services: newIndex[*service]().edit(),
		byName:   newIndex[*service]().edit(),
		byBase:   newIndex[[]string]().edit(),
	}
}

// edit starts new versions of s's indexes.
func (s *Snapshot) edit() *snapshotEdit {
	return &snapshotEdit{services: s.services.edit(), byName: s.byName.edit(), byBase: s.byBase.edit()}
}

// finish gives next the indexes built.
func (e *snapshotEdit) finish(next *Snapshot) {
	next.services, next.byName, next.byBase = e.services.done(), e.byName.done(), e.byBase.done()
}

// remove drops the service of that raw name, if any, noting its base label
// as affected.
func (e *snapshotEdit) remove(name string, affected map[string]bool) {
	old := e.byName.get(name)
	if old == nil {
		return
	}
	affected[old.base] = true
	e.byName.del(name)
	if e.services.get(old.label) == old {
		e.services.del(old.label)
	}
	rest := slices.DeleteFunc(slices.Clone(e.byBase.get(old.base)), func(n string) bool { return n == name })
	if len(rest) == 0 {
		e.byBase.del(old.base)
	} else {
		e.byBase.set(old.base, rest)
	}
}

// replace files svc in place of old, which has the same name, base and
// label.
func (e *snapshotEdit) replace(old, svc *service) {
	e.services.set(old.label, svc)
	e.byName.set(old.src.Name, svc)
}

// add files svc under its label and raw name (and, when new, its base
// label's group).
func (e *snapshotEdit) add(svc *service) {
	e.services.set(svc.label, svc)
	e.byName.set(svc.src.Name, svc)
	if group := e.byBase.get(svc.base); !slices.Contains(group, svc.src.Name) {
		e.byBase.set(svc.base, append(slices.Clone(group), svc.src.Name))
	}
}

// Synced reports whether the first full sync has happened. Until it has,
// every name in the zone but the apex SOA and NS answers SERVFAIL.
func (s *Snapshot) Synced() bool { return s.synced }

// Zone returns the zone settings, normalised: Origin is lowercase and fully
// qualified. The caller may keep and change the result.
func (s *Snapshot) Zone() Zone {
	z := s.zone
	z.NSAddrs = slices.Clone(z.NSAddrs)
	return z
}

// Labels returns the label a service is served under and, for each of
// its served instances, the instance ID's label. ok is false for a service
// the snapshot does not hold. The map is made for the caller: snapshots
// do not keep one, as only the admin API asks.
func (s *Snapshot) Labels(service string) (label string, instances map[string]string, ok bool) {
	svc := s.byName.get(service)
	if svc == nil {
		return "", nil, false
	}
	served := servedInstances(svc.origin, svc.src, svc.label)
	instances = make(map[string]string, len(served))
	for _, in := range served {
		instances[in.ID] = in.label
	}
	return svc.label, instances, true
}

// Services returns the number of services served.
func (s *Snapshot) Services() int { return s.byName.len() }

// derive returns a snapshot whose serial follows s's, without service
// indexes: the caller gives it those. It keeps s's zone when z is nil,
// and then copies s's apex with the new serial rather than building it.
func (s *Snapshot) derive(z *Zone) *Snapshot {
	serial := s.serial + 1
	if serial == 0 {
		// Skip 0 on wrap-around: some tools read serial 0 as "unset".
		serial = 1
	}
	if z == nil {
		return &Snapshot{zone: s.zone, serial: serial, apex: s.apex.withSerial(serial)}
	}
	return &Snapshot{zone: *z, serial: serial, apex: buildApex(*z, serial)}
}

func normaliseZone(z Zone) Zone {
	z.Origin = dns.CanonicalName(z.Origin)
	z.NSAddrs = slices.Clone(z.NSAddrs)
	return z
}

func buildApex(z Zone, serial uint32) *apex {
	ttl := seconds(z.TTL)
	negTTL := seconds(z.NegativeTTL)
	a := &apex{
		origin: z.Origin,
		labels: dns.SplitDomainName(z.Origin),
		ttl:    ttl,
	}
	nsHost := under("ns", z.Origin)
	soa := &dns.SOA{
		Hdr:     dns.RR_Header{Name: z.Origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:      nsHost,
		Mbox:    under("hostmaster", z.Origin),
		Serial:  serial,
		Refresh: soaRefresh,
		Retry:   soaRetry,
		Expire:  soaExpire,
		Minttl:  negTTL,
	}
	neg := *soa
	neg.Hdr.Ttl = negTTL
	a.soa, a.negSOA = soa, &neg
	a.ns = []dns.RR{&dns.NS{
		Hdr: dns.RR_Header{Name: z.Origin, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: ttl},
		Ns:  nsHost,
	}}
	var v4, v6 []netip.Addr
	for _, addr := range z.NSAddrs {
		if !addr.IsValid() {
			continue
		}
		addr = addr.Unmap()
		rr := addressRR(nsHost, addr, ttl)
		if addr.Is4() {
			a.nsA = append(a.nsA, rr)
			v4 = append(v4, addr)
		} else {
			a.nsAAAA = append(a.nsAAAA, rr)
			v6 = append(v6, addr)
		}
	}
	a.nsGlue = slices.Concat(a.nsA, a.nsAAAA)
	a.wire = wireNameOf(z.Origin)
	a.negTail = negativeTail(a.negSOA, a.wire)
	a.wireApex = packedName{
		soa: packOne(z.Origin, dns.TypeSOA, []dns.RR{a.soa}, nil),
		ns:  packOne(z.Origin, dns.TypeNS, a.ns, a.nsGlue),
	}
	if nsWire := wireNameOf(nsHost); nsWire != nil {
		a.wireNS = packedName{
			a:    packAddressSet(nil, nsWire, dns.TypeA, v4, ttl),
			aaaa: packAddressSet(nil, nsWire, dns.TypeAAAA, v6, ttl),
		}
	}
	return a
}

// withSerial returns the apex a with its SOA serial changed: what
// buildApex would build for the same zone and serial, for the price of
// copying what holds the serial. Every update changes the serial.
func (a *apex) withSerial(serial uint32) *apex {
	next := *a
	soa, neg := *a.soa.(*dns.SOA), *a.negSOA.(*dns.SOA)
	soa.Serial, neg.Serial = serial, serial
	next.soa, next.negSOA = &soa, &neg
	next.negTail = patchSerial(a.negTail, serial)
	if p := a.wireApex.soa; p != nil {
		cp := *p
		cp.full = patchSerial(p.full, serial)
		cp.small = cp.full // one slice, as packReply leaves a reply that fits
		if len(p.small) != len(p.full) {
			cp.small = patchSerial(p.small, serial)
		}
		next.wireApex.soa = &cp
	}
	return &next
}

// patchSerial copies wire, which ends with SOA rdata, with its serial
// changed: the serial is followed by four more 32-bit fields.
func patchSerial(wire []byte, serial uint32) []byte {
	if len(wire) < 20 {
		return wire
	}
	out := bytes.Clone(wire)
	binary.BigEndian.PutUint32(out[len(out)-20:], serial)
	return out
}

// buildService builds the packed replies of src, served under label.
// They are packed by hand (see handReply) except where an instance is
// registered by hostname: that rare service's SRV reply and that
// instance's CNAME replies are packed from records.
func buildService(ap *apex, src Service, base, label string) *service {
	svc := &service{src: src, base: base, label: label, origin: ap.origin, ttl: ap.ttl}
	served := servedInstances(ap.origin, src, label)
	owner := under(label, ap.origin)
	ownerWire := wireNameOf(owner)
	svc.instances = make(map[string]instanceReplies, len(served))
	wire := make([]byte, 0, 64*len(served))
	scratch := make([]byte, 0, maxUDPReply+512) // a reply being packed
	var qname []byte                            // an instance's name in wire form
	// Most services are all IPv4: room for every address up front.
	v4 := make([]netip.Addr, 0, len(served))
	var v6 []netip.Addr
	byHostname := false
	for _, in := range served {
		r := instanceReplies{
			start:  uint32(len(wire)),
			hasTXT: slices.ContainsFunc(in.TXT, fitsTXT),
		}
		if !in.addr.IsValid() {
			byHostname = true
			r.byHostname = true
			if _, inZone := ap.relative(in.target); inZone {
				r.slow = true
				svc.instances[in.label] = r
				continue
			}
			cname := []dns.RR{cnameRR(in.name, in.target, ap.ttl)}
			for i, qtype := range [2]uint16{dns.TypeA, dns.TypeAAAA} {
				p := packOne(in.name, qtype, cname, nil)
				if p.full == nil || len(p.small) != len(p.full) {
					r.slow = true // too long for 512 bytes: rare, and left to Answer
					continue
				}
				wire = append(wire, p.full...)
				r.size[i] = uint16(len(p.full))
			}
			svc.instances[in.label] = r
			continue
		}
		qname = append(append(append(qname[:0], byte(len(in.label))), in.label...), ownerWire...)
		reply := appendAddressReply(scratch[:0], qname, in.addr, ap.ttl)
		wire = append(wire, reply...)
		if in.addr.Is4() {
			r.size[0] = uint16(len(reply))
			v4 = append(v4, in.addr)
		} else {
			r.size[1] = uint16(len(reply))
			v6 = append(v6, in.addr)
		}
		svc.instances[in.label] = r
	}
	svc.instanceWire = bytes.Clone(wire)
	svc.wire = packedName{
		a:    packAddressSet(scratch, ownerWire, dns.TypeA, v4, ap.ttl),
		aaaa: packAddressSet(scratch, ownerWire, dns.TypeAAAA, v6, ap.ttl),
	}
	if byHostname {
		rec := svc.records()
		svc.wire.srv = packOne(owner, dns.TypeSRV, rec.srv, rec.glue)
	} else {
		svc.wire.srv = packSRVSet(scratch, ownerWire, served, ap.ttl)
	}
	return svc
}

// tcpWire returns the packed replies for _<label>._tcp.<origin>, packing
// them on first use. The records they are packed from are not kept (see
// records). Two queries that race to pack them both pack the same thing;
// one result is kept.
func (svc *service) tcpWire() *packedName {
	if w := svc.wireTCP.Load(); w != nil {
		return w
	}
	w := new(packedName)
	if rec := svc.built.Load(); rec != nil || len(svc.instances) > 0 {
		if rec == nil {
			rec = buildRecords(svc.origin, svc.ttl, svc.src, svc.label)
		}
		w.srv = packOne(under("_"+svc.label+"._tcp", svc.origin), dns.TypeSRV, rec.srvTCP, rec.glue)
	}
	if !svc.wireTCP.CompareAndSwap(nil, w) {
		return svc.wireTCP.Load()
	}
	return w
}

// servedInstance is one instance that is served, with the names it gets.
type servedInstance struct {
	Instance
	label  string     // its instance label
	name   string     // <label>.<service label>.<origin>
	addr   netip.Addr // its address when that is an IP
	target string     // its SRV target: name, or its hostname address
}

// servedInstances returns the instances of src that are served under
// label in the zone origin, in src's order: the first of each ID, with a
// name that fits and an address that is an IP or a hostname.
func servedInstances(origin string, src Service, label string) []servedInstance {
	owner := under(label, origin)
	if _, ok := dns.IsDomainName(owner); !ok {
		// The origin is too long to hold this label. The name could not be
		// asked for either, so serving nothing under it loses nothing.
		return nil
	}
	first := make([]int, 0, len(src.Instances)) // indexes into src.Instances
	bases := make(map[string]string, len(src.Instances))
	for i, inst := range src.Instances {
		if _, dup := bases[inst.ID]; dup {
			continue
		}
		first = append(first, i)
		bases[inst.ID] = Label(inst.ID)
	}
	labels := resolveLabels(bases)
	out := make([]servedInstance, 0, len(first))
	for _, i := range first {
		inst := src.Instances[i]
		in := servedInstance{Instance: inst, label: labels[inst.ID]}
		in.name = under(in.label, owner)
		if _, ok := dns.IsDomainName(in.name); !ok {
			continue
		}
		in.target = in.name
		if addr, err := netip.ParseAddr(inst.Address); err == nil {
			in.addr = addr.Unmap().WithZone("")
		} else if host, ok := hostname(inst.Address); ok {
			in.target = host
		} else {
			continue
		}
		out = append(out, in)
	}
	return out
}

// buildRecords builds the records of src, served under label in the zone
// origin.
func buildRecords(origin string, ttl uint32, src Service, label string) *serviceRecords {
	owner := under(label, origin)
	srvOwner := under("_"+label+"._tcp", origin)
	if _, ok := dns.IsDomainName(srvOwner); !ok {
		srvOwner = ""
	}
	instances := servedInstances(origin, src, label)
	rec := &serviceRecords{instances: make(map[string]*instance, len(instances))}
	for _, in := range instances {
		built := &instance{}
		switch {
		case in.addr.Is4():
			rr := addressRR(in.name, in.addr, ttl)
			rec.glue = append(rec.glue, rr)
			built.a = []dns.RR{rr}
			rec.a = append(rec.a, addressRR(owner, in.addr, ttl))
		case in.addr.IsValid():
			rr := addressRR(in.name, in.addr, ttl)
			rec.glue = append(rec.glue, rr)
			built.aaaa = []dns.RR{rr}
			rec.aaaa = append(rec.aaaa, addressRR(owner, in.addr, ttl))
		default:
			built.cname = []dns.RR{cnameRR(in.name, in.target, ttl)}
		}
		if built.cname == nil {
			// A name with a CNAME has no TXT (see instance.lookup).
			built.txt = txtRR(in.name, in.TXT, ttl)
		}
		rec.instances[in.label] = built
		rec.srv = append(rec.srv, srvRR(owner, in.target, in.Instance, ttl))
		if srvOwner != "" {
			rec.srvTCP = append(rec.srvTCP, srvRR(srvOwner, in.target, in.Instance, ttl))
		}
	}
	return rec
}

// under returns the name of label (one or more labels) below the FQDN
// parent.
func under(label, parent string) string {
	if parent == "." {
		return label + "."
	}
	return label + "." + parent
}

func srvRR(owner, target string, inst Instance, ttl uint32) dns.RR {
	return &dns.SRV{
		Hdr:      dns.RR_Header{Name: owner, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: ttl},
		Priority: 0,
		Weight:   inst.Weight,
		Port:     inst.Port,
		Target:   target,
	}
}

// addressRR returns an A or AAAA record for addr.
func addressRR(owner string, addr netip.Addr, ttl uint32) dns.RR {
	addr = addr.Unmap()
	if addr.Is4() {
		return &dns.A{
			Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
			A:   addr.AsSlice(),
		}
	}
	return &dns.AAAA{
		Hdr:  dns.RR_Header{Name: owner, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl},
		AAAA: addr.AsSlice(),
	}
}

func cnameRR(owner, target string, ttl uint32) dns.RR {
	return &dns.CNAME{
		Hdr:    dns.RR_Header{Name: owner, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl},
		Target: target,
	}
}

// fitsTXT reports whether s fits one character-string of a TXT record.
func fitsTXT(s string) bool { return len(s) <= 255 }

// txtRR returns a TXT record with the strings that fit one
// character-string, or nil when none do.
func txtRR(owner string, strs []string, ttl uint32) []dns.RR {
	txt := make([]string, 0, len(strs))
	for _, s := range strs {
		if !fitsTXT(s) {
			continue
		}
		// miekg/dns reads a backslash in TXT data as the start of an
		// escape when packing; double it so the bytes go out as given.
		txt = append(txt, strings.ReplaceAll(s, `\`, `\\`))
	}
	if len(txt) == 0 {
		return nil
	}
	return []dns.RR{&dns.TXT{
		Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl},
		Txt: txt,
	}}
}

// hostname returns s as a lowercase FQDN if it is a plain hostname: dot
// separated labels of 1 to 63 letters, digits, '-' or '_' (the last for the
// service-style names some registries use), 253 bytes at most. Anything
// else could carry presentation-format escapes into the wire format.
func hostname(s string) (string, bool) {
	s = strings.TrimSuffix(strings.ToLower(s), ".")
	if s == "" || len(s) > 253 {
		return "", false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > maxLabel {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return s + ".", true
}

func cloneService(s Service) Service {
	s.Instances = slices.Clone(s.Instances)
	for i := range s.Instances {
		s.Instances[i].TXT = slices.Clone(s.Instances[i].TXT)
	}
	return s
}

// seconds converts d to a TTL, clamped to [0, 2^31-1] (RFC 2181 §8).
func seconds(d time.Duration) uint32 {
	const maxTTL = 1<<31 - 1
	s := int64(d / time.Second)
	return uint32(min(max(s, 0), maxTTL))
}
