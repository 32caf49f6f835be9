package dnsserver

import (
	"bytes"
	"encoding/binary"
	"net/netip"

	"github.com/miekg/dns"
)

// The fast path: the common UDP queries (A, AAAA, SRV, SOA, NS for a
// name in the zone, TXT for a name that has none, or a name that does not
// exist) are answered from
// replies packed when the snapshot was built. Per query it reads the
// question straight from the wire, finds the packed reply with map
// lookups, copies it and patches the ID, the RD bit, the name's case and
// the OPT record: no unpacking, no allocation, no locks. Anything it does
// not recognise as plain falls back to Answer, which handles every case.

// maxRotations is how many orders of an address set are packed when the
// reply cannot be rotated as it is copied (it does not fit 512 bytes, so
// its cut form differs): each query takes the next one, so successive
// clients start on different instances without a shuffle per query.
const maxRotations = 4

// packedName holds the packed replies for one name, for the query types the
// fast path serves. A nil entry means the name has no records of that
// type (NODATA), which is built per query with the snapshot's SOA.
type packedName struct {
	a, aaaa []*packed // the address set, packed once or in rotations
	srv     *packed
	soa, ns *packed // the zone apex only
}

// packed is one reply, whole and as a client without EDNS0 may get it.
type packed struct {
	// full is the whole reply; nil when it is larger than any UDP reply
	// zkdns sends, so only the slow path (or TCP) can give it.
	full []byte
	// small is the reply cut to 512 bytes the way Answer cuts it, TC set
	// when answers had to go: for clients without EDNS0. It is full itself
	// when full fits.
	small []byte
	// An address set that fits 512 bytes is packed once, and rotated as
	// it is copied: its answers are rrCount records of rrLen bytes each
	// from rrStart on (every owner is a pointer to the question), so
	// moving whole records keeps the reply valid. rrCount is 0 for a reply
	// that is copied as it is.
	rrStart, rrLen, rrCount uint16
}

// rotate marks p, a reply to an address query, for rotation at copy time
// when its answers are records of one size, each owned by a pointer to the
// question name, and nothing follows them. It reports whether it did.
func (p *packed) rotate(count int) bool {
	if count < 2 || p.full == nil || len(p.small) != len(p.full) {
		return false
	}
	start := 12 // past the header and the question: name, type, class
	for start < len(p.full) && p.full[start] != 0 {
		start += 1 + int(p.full[start])
	}
	start += 1 + 4
	rest := len(p.full) - start
	if rest <= 0 || rest%count != 0 || binary.BigEndian.Uint16(p.full[6:]) != uint16(count) ||
		binary.BigEndian.Uint16(p.full[8:]) != 0 || binary.BigEndian.Uint16(p.full[10:]) != 0 {
		return false
	}
	size := rest / count
	for i := range count {
		if rr := p.full[start+i*size:]; rr[0] != 0xC0 || rr[1] != 12 {
			return false
		}
	}
	p.rrStart, p.rrLen, p.rrCount = uint16(start), uint16(size), uint16(count)
	return true
}

// copyTo appends the reply in wire, rotated by seq when p is rotatable.
func (p *packed) copyTo(out, wire []byte, seq uint32) []byte {
	if p.rrCount == 0 {
		return append(out, wire...)
	}
	cut := int(p.rrStart) + int(seq%uint32(p.rrCount))*int(p.rrLen)
	out = append(out, wire[:p.rrStart]...)
	out = append(out, wire[cut:]...)
	return append(out, wire[p.rrStart:cut]...)
}

// fastOPT is the OPT record of a fast reply: root owner, our UDP size,
// extended rcode 0, version 0, no flags, no options.
var fastOPT = []byte{0, 0, 41, byte(ednsSize >> 8), byte(ednsSize & 0xff), 0, 0, 0, 0, 0, 0}

// packReply packs a positive reply to (qname, qtype) with the question in
// lowercase; the fast path patches in the client's case.
func packReply(qname string, qtype uint16, answer, extra []dns.RR) *packed {
	msg := func() *dns.Msg {
		return &dns.Msg{
			MsgHdr:   dns.MsgHdr{Response: true, Authoritative: true},
			Compress: true,
			Question: []dns.Question{{Name: qname, Qtype: qtype, Qclass: dns.ClassINET}},
			Answer:   answer,
			Extra:    extra,
		}
	}
	p := new(packed)
	// Pack sizes its buffer for the reply uncompressed; the clones keep
	// only the bytes, which with compression are about half.
	if wire, err := msg().Pack(); err == nil && len(wire)+len(fastOPT) <= maxUDPReply {
		p.full = bytes.Clone(wire)
	}
	if p.full != nil && len(p.full) <= dns.MinMsgSize {
		p.small = p.full
		return p
	}
	// As Answer cuts a reply for a client without EDNS0.
	m := msg()
	truncate(m, dns.MinMsgSize)
	if wire, err := m.Pack(); err == nil && len(wire) <= dns.MinMsgSize {
		p.small = bytes.Clone(wire)
	}
	return p
}

// appendAddressReply appends the reply to an A or AAAA query for qname (in
// lowercase wire form) that holds the one address addr, byte for byte as
// packReply packs it: QR and AA set, the question, and the record with its
// owner a pointer to the question.
func appendAddressReply(dst, qname []byte, addr netip.Addr, ttl uint32) []byte {
	h := startReply(dst, qname, addressType(addr))
	h.addAddress(12, addr, ttl)
	h.answers = 1
	h.setCounts()
	return h.buf
}

// handReply is a reply packed by hand, byte for byte as packReply packs
// the same records, for the shapes a service's own replies take: answers
// owned by the question name, then additional records owned by names the
// answers spelled out before them. A rebuild packs several per service,
// and this costs a fraction of building records and packing them.
type handReply struct {
	buf     []byte
	qEnd    int   // the end of the question
	ends    []int // where each record ends
	answers int   // how many of the records are answers
	// dropped is set once a record was left out because the reply was
	// already longer than any reply served: only its cut form is used.
	dropped bool
}

// startReply starts a reply in buf's storage with the question (qname,
// qtype), its ID 0 and QR and AA set.
func startReply(buf, qname []byte, qtype uint16) handReply {
	buf = append(buf[:0], 0, 0, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0)
	buf = append(buf, qname...)
	buf = binary.BigEndian.AppendUint16(buf, qtype)
	buf = binary.BigEndian.AppendUint16(buf, dns.ClassINET)
	return handReply{buf: buf, qEnd: len(buf)}
}

// room reports whether another record could still be part of a reply
// served; when not, the record is noted as dropped.
func (h *handReply) room() bool {
	if len(h.buf) > maxUDPReply {
		h.dropped = true
		return false
	}
	return true
}

// addAddress adds an A or AAAA record for addr owned by the name at
// offset owner.
func (h *handReply) addAddress(owner int, addr netip.Addr, ttl uint32) {
	if !h.room() {
		return
	}
	h.buf = append(h.buf, 0xC0|byte(owner>>8), byte(owner))
	h.buf = binary.BigEndian.AppendUint16(h.buf, addressType(addr))
	h.buf = binary.BigEndian.AppendUint16(h.buf, dns.ClassINET)
	h.buf = binary.BigEndian.AppendUint32(h.buf, ttl)
	if addr.Is4() {
		ip := addr.As4()
		h.buf = append(append(h.buf, 0, 4), ip[:]...)
	} else {
		ip := addr.As16()
		h.buf = append(append(h.buf, 0, 16), ip[:]...)
	}
	h.ends = append(h.ends, len(h.buf))
}

// addSRV adds an SRV record owned by the question name whose target is
// label under the question name, and returns the offset of the target
// (0 when the record was dropped). The target is not compressed (RFC
// 2782), but later names may point to it.
func (h *handReply) addSRV(label string, weight, port uint16, ttl uint32) int {
	if !h.room() {
		return 0
	}
	qname := h.buf[12 : h.qEnd-4]
	h.buf = append(h.buf, 0xC0, 12)
	h.buf = binary.BigEndian.AppendUint16(h.buf, dns.TypeSRV)
	h.buf = binary.BigEndian.AppendUint16(h.buf, dns.ClassINET)
	h.buf = binary.BigEndian.AppendUint32(h.buf, ttl)
	h.buf = binary.BigEndian.AppendUint16(h.buf, uint16(6+1+len(label)+len(qname)))
	h.buf = append(h.buf, 0, 0) // priority
	h.buf = binary.BigEndian.AppendUint16(h.buf, weight)
	h.buf = binary.BigEndian.AppendUint16(h.buf, port)
	target := len(h.buf)
	h.buf = append(h.buf, byte(len(label)))
	h.buf = append(h.buf, label...)
	h.buf = append(h.buf, qname...) // safe: append copies before it can overwrite
	h.ends = append(h.ends, len(h.buf))
	return target
}

// setCounts writes the answer and additional counts into the header.
func (h *handReply) setCounts() {
	binary.BigEndian.PutUint16(h.buf[6:], uint16(h.answers))
	binary.BigEndian.PutUint16(h.buf[10:], uint16(max(len(h.ends)-h.answers, 0)))
}

// finish returns the reply, whole and cut to 512 bytes as packReply makes
// them: the cut form keeps the answers that fit and, only when they all
// do, the additional records that fit after them, with TC set when
// answers had to go (truncate's rule). With every owner a pointer to an
// earlier name, the cut form is a prefix of the whole.
func (h *handReply) finish() *packed {
	h.setCounts()
	p := new(packed)
	if !h.dropped && len(h.buf)+len(fastOPT) <= maxUDPReply {
		p.full = bytes.Clone(h.buf)
	}
	if p.full != nil && len(p.full) <= dns.MinMsgSize {
		p.small = p.full
		return p
	}
	cut, an, ar := h.qEnd, 0, 0
	answers := h.ends[:min(h.answers, len(h.ends))] // fewer when some were dropped
	for _, end := range answers {
		if end > dns.MinMsgSize {
			break
		}
		cut, an = end, an+1
	}
	if an == h.answers && cut < dns.MinMsgSize {
		for _, end := range h.ends[len(answers):] {
			if end > dns.MinMsgSize {
				break
			}
			cut, ar = end, ar+1
		}
	}
	small := bytes.Clone(h.buf[:cut])
	binary.BigEndian.PutUint16(small[6:], uint16(an))
	binary.BigEndian.PutUint16(small[10:], uint16(ar))
	if an < h.answers {
		small[2] |= 0x02 // TC
	}
	p.small = small
	return p
}

// packAddressSet packs the reply to (qname, qtype) that holds addrs, all of
// that type, once, rotated as it is copied when it can be, or else in up
// to maxRotations orders. scratch is storage to pack in.
func packAddressSet(scratch, qname []byte, qtype uint16, addrs []netip.Addr, ttl uint32) []*packed {
	if len(addrs) == 0 {
		return nil
	}
	pack := func(rotation int) *packed {
		h := startReply(scratch, qname, qtype)
		for i := range addrs {
			h.addAddress(12, addrs[(rotation+i)%len(addrs)], ttl)
		}
		h.answers = len(addrs)
		return h.finish()
	}
	first := pack(0)
	if len(addrs) == 1 || first.rotate(len(addrs)) {
		return []*packed{first}
	}
	out := make([]*packed, 0, min(len(addrs), maxRotations))
	out = append(out, first)
	for r := 1; r < cap(out); r++ {
		out = append(out, pack(r))
	}
	return out
}

// packSRVSet packs the SRV reply to qname for instances that all have IP
// addresses: one SRV record per instance, its target the instance's name,
// and the instances' address records as additional records.
func packSRVSet(scratch, qname []byte, instances []servedInstance, ttl uint32) *packed {
	if len(instances) == 0 {
		return nil
	}
	h := startReply(scratch, qname, dns.TypeSRV)
	targets := make([]int, len(instances))
	for i, in := range instances {
		targets[i] = h.addSRV(in.label, in.Weight, in.Port, ttl)
	}
	h.answers = len(instances)
	for i, in := range instances {
		if targets[i] != 0 {
			h.addAddress(targets[i], in.addr, ttl)
		}
	}
	return h.finish()
}

// addressType is the record type that holds addr: A or AAAA.
func addressType(addr netip.Addr) uint16 {
	if addr.Is4() {
		return dns.TypeA
	}
	return dns.TypeAAAA
}

// packOne is packReply for a record set that may be empty (nil: NODATA).
func packOne(qname string, qtype uint16, answer, extra []dns.RR) *packed {
	if len(answer) == 0 {
		return nil
	}
	return packReply(qname, qtype, answer, extra)
}

// wireNameOf is the lowercase wire form of a fully qualified name.
func wireNameOf(name string) []byte {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.CanonicalName(name), buf, 0, nil, false)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// negativeTail packs the negative-answer SOA without its owner name: the
// fast path writes the owner as a pointer into the question instead.
func negativeTail(soa dns.RR, origin []byte) []byte {
	buf := make([]byte, 512)
	n, err := dns.PackRR(soa, buf, 0, nil, false)
	if err != nil || n < len(origin) {
		return nil
	}
	return bytes.Clone(buf[len(origin):n])
}

// fastQuery is what the fast path reads of a query.
type fastQuery struct {
	name     [255]byte // the question name, lowercased, wire form
	nameLen  int
	labels   [128]uint8 // offset of each label's length byte in name
	nlabels  int
	qtype    uint16
	qEnd     int // offset just past the question in the packet
	edns     bool
	do       bool // the query's DNSSEC OK bit, copied into the reply's OPT (RFC 3225 §3)
	udpLimit int
}

// parseFast reads a query that the fast path can answer: a plain QUERY
// with one IN question, no compression in it, names of letters, digits,
// '-' and '_', and at most an OPT record (version 0, no options) after it.
// Anything else returns false and is answered the slow way.
func parseFast(p []byte, q *fastQuery) bool {
	if len(p) < 12 || p[2]&0xF8 != 0 { // QR set, or an opcode other than QUERY
		return false
	}
	if binary.BigEndian.Uint16(p[4:]) != 1 || binary.BigEndian.Uint16(p[6:]) != 0 || binary.BigEndian.Uint16(p[8:]) != 0 {
		return false
	}
	ar := binary.BigEndian.Uint16(p[10:])
	if ar > 1 {
		return false
	}
	off, n := 12, 0
	q.nlabels = 0
	for {
		if off >= len(p) {
			return false
		}
		l := int(p[off])
		if l == 0 {
			q.name[n] = 0
			n++
			off++
			break
		}
		if l > 63 || off+1+l > len(p) || n+1+l+1 > len(q.name) || q.nlabels == len(q.labels) {
			return false // a compression pointer, or too long
		}
		q.labels[q.nlabels] = uint8(n)
		q.nlabels++
		q.name[n] = byte(l)
		for i, c := range p[off+1 : off+1+l] {
			switch {
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			default:
				return false
			}
			q.name[n+1+i] = c
		}
		n += 1 + l
		off += 1 + l
	}
	q.nameLen = n
	if off+4 > len(p) || binary.BigEndian.Uint16(p[off+2:]) != dns.ClassINET {
		return false
	}
	q.qtype = binary.BigEndian.Uint16(p[off:])
	off += 4
	q.qEnd = off
	q.edns, q.do = false, false
	q.udpLimit = dns.MinMsgSize
	if ar == 1 {
		// The OPT record: root owner, type 41, class = UDP size, TTL =
		// extended rcode, version, flags; then the length of its options.
		if off+11 > len(p) || p[off] != 0 || binary.BigEndian.Uint16(p[off+1:]) != dns.TypeOPT || p[off+6] != 0 {
			return false
		}
		// Options (a cookie, a client subnet) go the slow way: each has
		// rules of its own that a query breaking them must be answered
		// FORMERR for, and the fast path would echo none of them anyway.
		if binary.BigEndian.Uint16(p[off+9:]) != 0 || off+11 != len(p) {
			return false
		}
		q.edns = true
		q.do = p[off+7]&0x80 != 0
		q.udpLimit = max(dns.MinMsgSize, min(int(binary.BigEndian.Uint16(p[off+3:])), maxUDPReply))
		return true
	}
	return off == len(p)
}

// fastReply answers the query in p from s into out, when it can: it
// returns the reply (out's storage), the query type and the rcode. seq
// picks the rotation of an address set. ok is false when the query needs
// the slow path.
func (s *Snapshot) fastReply(p []byte, out []byte, seq uint32, q *fastQuery) (reply []byte, qtype uint16, rcode int, ok bool) {
	if s == nil || !s.synced || !parseFast(p, q) || !fastType(q.qtype) {
		return nil, 0, 0, false
	}
	name := q.name[:q.nameLen]
	origin := s.apex.wire
	below := q.nameLen - len(origin)
	if below < 0 || !bytes.Equal(name[below:], origin) || !q.atLabel(below) {
		return nil, 0, 0, false // outside the zone: refused or forwarded
	}
	rel := 0
	for rel < q.nlabels && int(q.labels[rel]) < below {
		rel++
	}
	if rel == 2 {
		if svc, r, ok := s.instanceEntry(q); ok {
			return s.instanceReply(p, out, q, svc, r)
		}
	}
	entry, exists := s.wireEntry(name, q, rel)
	switch {
	case !exists:
		return s.negative(p, out, q, dns.RcodeNameError)
	case entry == nil:
		return nil, 0, 0, false
	}
	var found *packed
	switch q.qtype {
	case dns.TypeA:
		found = pick(entry.a, seq)
	case dns.TypeAAAA:
		found = pick(entry.aaaa, seq)
	case dns.TypeSRV:
		found = entry.srv
	case dns.TypeSOA:
		found = entry.soa
	case dns.TypeNS:
		found = entry.ns
	}
	if found == nil {
		return s.negative(p, out, q, dns.RcodeSuccess)
	}
	// The whole reply if the client takes it; without EDNS0, the reply cut
	// to 512 bytes; else (a client with a small EDNS0 size) the slow path.
	wire := found.full
	switch {
	case q.edns && wire != nil && len(wire)+len(fastOPT) <= q.udpLimit:
	case !q.edns && found.small != nil:
		wire = found.small
	default:
		return nil, 0, 0, false
	}
	return finishReply(found.copyTo(out[:0], wire, seq), p, q)
}

// finishReply patches a copied reply for the query in p: its ID, RD and
// CD as asked, the question in the client's own case, and the OPT record.
func finishReply(out, p []byte, q *fastQuery) ([]byte, uint16, int, bool) {
	out[0], out[1] = p[0], p[1]
	out[2] |= p[2] & 0x01                          // RD, as asked
	out[3] |= p[3] & 0x10                          // CD, as asked (RFC 4035 §3.1.6)
	copy(out[12:12+q.nameLen], p[12:12+q.nameLen]) // the client's own case
	if q.edns {
		out = appendOPT(out, q)
		binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(out[10:])+1)
	}
	return out, q.qtype, dns.RcodeSuccess, true
}

// appendOPT appends the reply's OPT record, with the query's DO bit.
func appendOPT(out []byte, q *fastQuery) []byte {
	out = append(out, fastOPT...)
	if q.do {
		out[len(out)-4] |= 0x80 // the flags' high bit, after the version
	}
	return out
}

// instanceEntry finds the instance a two-label name below the origin
// names: <instance>.<service>.
func (s *Snapshot) instanceEntry(q *fastQuery) (*service, instanceReplies, bool) {
	svc := s.services.getBytes(q.label(1))
	if svc == nil {
		return nil, instanceReplies{}, false
	}
	r, ok := svc.instances[string(q.label(0))]
	return svc, r, ok
}

// instanceReply answers a query for an instance's name. An instance's TXT
// record is left to the slow path: its metadata is asked for far less
// often than its address, and packing it for every instance would cost
// more memory than all of its other replies.
func (s *Snapshot) instanceReply(p, out []byte, q *fastQuery, svc *service, r instanceReplies) ([]byte, uint16, int, bool) {
	if r.slow || q.qtype == dns.TypeTXT && r.hasTXT ||
		r.byHostname && q.qtype != dns.TypeA && q.qtype != dns.TypeAAAA {
		return nil, 0, 0, false
	}
	var wire []byte
	switch q.qtype {
	case dns.TypeA:
		wire = svc.instanceWire[r.start : r.start+uint32(r.size[0])]
	case dns.TypeAAAA:
		start := r.start + uint32(r.size[0])
		wire = svc.instanceWire[start : start+uint32(r.size[1])]
	}
	switch {
	case len(wire) == 0:
		return s.negative(p, out, q, dns.RcodeSuccess)
	case q.edns && len(wire)+len(fastOPT) > q.udpLimit:
		return nil, 0, 0, false
	}
	return finishReply(append(out[:0], wire...), p, q)
}

// fastType reports whether the fast path serves qtype. Every other type
// (ANY, zone transfers, which are refused even for names that do not
// exist, and the rest) goes the slow way.
func fastType(qtype uint16) bool {
	switch qtype {
	case dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypeSOA, dns.TypeNS:
		return true
	}
	return false
}

// pick chooses the packed A or AAAA reply: the one packed, or the next
// of its rotations.
func pick(set []*packed, seq uint32) *packed {
	if len(set) == 0 {
		return nil
	}
	return set[seq%uint32(len(set))]
}

// atLabel reports whether off is where a label of the name begins.
func (q *fastQuery) atLabel(off int) bool {
	for i := range q.nlabels {
		if int(q.labels[i]) == off {
			return true
		}
	}
	return off == q.nameLen-1 // the root label
}

// label is the i-th label of the query name.
func (q *fastQuery) label(i int) []byte {
	start := int(q.labels[i])
	return q.name[start+1 : start+1+int(q.name[start])]
}

// wireEntry finds the packed replies of the name with rel labels below
// the origin, following Snapshot.lookup: exists is false for a name that
// does not exist (NXDOMAIN); a nil entry with exists true means a name the
// fast path leaves to the slow one.
func (s *Snapshot) wireEntry(name []byte, q *fastQuery, rel int) (entry *packedName, exists bool) {
	switch rel {
	case 0:
		if q.qtype == dns.TypeNS && s.services.get("ns") != nil {
			return nil, true // its glue is left out: see Snapshot.lookup
		}
		return &s.apex.wireApex, true
	case 1:
		l := q.label(0)
		if svc := s.services.getBytes(l); svc != nil {
			return &svc.wire, true
		}
		if string(l) == "ns" {
			return &s.apex.wireNS, true
		}
		if string(l) == "_tcp" && s.services.len() > 0 {
			return nil, true
		}
	case 2:
		l0, l1 := q.label(0), q.label(1)
		if string(l1) == "_tcp" && len(l0) > 1 && l0[0] == '_' {
			if svc := s.services.getBytes(l0[1:]); svc != nil {
				return svc.tcpWire(), true
			}
			return nil, false
		}
	}
	return nil, false
}

// negative builds NXDOMAIN or NODATA: the question as asked, and the SOA
// with the negative TTL, its owner a pointer to the origin in the question.
func (s *Snapshot) negative(p, out []byte, q *fastQuery, rcode int) ([]byte, uint16, int, bool) {
	tail := s.apex.negTail
	size := q.qEnd + 2 + len(tail)
	if q.edns {
		size += len(fastOPT)
	}
	if tail == nil || size > q.udpLimit {
		return nil, 0, 0, false
	}
	out = append(out[:0], p[:q.qEnd]...)
	out[2] = 0x84 | p[2]&0x01               // QR, AA, and RD as asked
	out[3] = byte(rcode) | p[3]&0x10        // CD as asked
	binary.BigEndian.PutUint16(out[6:], 0)  // answers
	binary.BigEndian.PutUint16(out[8:], 1)  // authority: the SOA
	binary.BigEndian.PutUint16(out[10:], 0) // additional
	ptr := 12 + q.nameLen - len(s.apex.wire)
	out = append(out, 0xC0|byte(ptr>>8), byte(ptr))
	out = append(out, tail...)
	if q.edns {
		out = appendOPT(out, q)
		binary.BigEndian.PutUint16(out[10:], 1)
	}
	return out, q.qtype, rcode, true
}
