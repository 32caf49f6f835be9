package dnsserver

import (
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// ednsSize is the UDP payload size zkdns advertises in its OPT record and
// the largest UDP query it reads: the DNS Flag Day 2020 value, which avoids
// IP fragmentation on common paths.
const ednsSize = 1232

// maxUDPReply caps the reply size a client may ask for over UDP, whatever
// EDNS0 size it advertises: the DNS Flag Day 2020 value again. Larger UDP
// replies fragment, and they are what a reflection attack amplifies with;
// a client that needs more retries over TCP when it sees TC.
const maxUDPReply = ednsSize

// Handler answers DNS queries from the snapshot most recently published on
// it, under the Policy most recently set on it. The zero Handler answers
// SERVFAIL until a snapshot is published, has the zero Policy and records
// no metrics. It is safe for concurrent use.
type Handler struct {
	snap atomic.Pointer[Snapshot]
	// policy is the Policy in force, replaced whole by SetPolicy; nil is
	// the zero Policy.
	policy atomic.Pointer[policy]
	// metrics is set once by NewHandler; nil records nothing. Serve also
	// counts into it the packets that never reach the handler.
	metrics *Metrics
	// outbound holds the local addresses of the sockets forwards are
	// waiting on, to recognise a query that an upstream sent back here.
	outbound outboundSet
}

var _ dns.Handler = (*Handler)(nil)

// NewHandler returns a Handler serving s and recording each query in m.
// A nil s answers SERVFAIL to every query until Publish is called; a nil m
// records nothing.
func NewHandler(s *Snapshot, m *Metrics) *Handler {
	h := &Handler{metrics: m}
	h.Publish(s)
	return h
}

// Publish makes s the snapshot that queries from now on are answered from.
// Queries already running finish with the snapshot they started with.
// Publish is meant to be called from one goroutine: concurrent calls may
// leave the snapshot gauges describing a snapshot other than the current.
func (h *Handler) Publish(s *Snapshot) {
	h.snap.Store(s)
	h.metrics.observeSnapshot(s)
}

// Current returns the snapshot queries are answered from.
func (h *Handler) Current() *Snapshot { return h.snap.Load() }

// ServeDNS answers r from the current snapshot, under the current Policy:
// a source outside Policy.Allow is refused (see Allow), and a name outside
// the zone is forwarded when Policy.Upstreams lists any, in the calling
// goroutine. Queries for the zone take no locks and write no logs; a failed
// write is the client's loss and is not reported, though the query is
// still counted. Serve calls the same logic with the limits of its
// ServeOptions.
func (h *Handler) ServeDNS(w dns.ResponseWriter, r *dns.Msg) { h.serve(nil, w, r) }

// serve answers r; env describes the Serve it came through, or is nil for
// a direct ServeDNS call.
func (h *Handler) serve(env *serveEnv, w dns.ResponseWriter, r *dns.Msg) {
	start := time.Now()
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	src := sourceOf(w.RemoteAddr())
	pol := h.policy.Load()
	if !pol.admits(src.Addr(), env) {
		h.deny(w, r, tcp, start)
		return
	}
	reply, err := answer(h.snap.Load(), r, tcp)
	if errors.Is(err, errNotInZone) && pol.forwarding() && forwardable(r) {
		h.forward(env, pol, w, r, src, tcp, start)
		return
	}
	_ = w.WriteMsg(reply)
	h.metrics.observeQuery(firstQtype(r), reply.Rcode, reply.Truncated, tcp, time.Since(start))
}

// deny turns away a query from a source the policy does not admit: over
// UDP with silence, since the source may be forged and the reply would go
// to whoever it names; over TCP with REFUSED, and the connection is closed
// so that it holds no server resources.
func (h *Handler) deny(w dns.ResponseWriter, r *dns.Msg, tcp bool, start time.Time) {
	h.metrics.observeDenied(tcp)
	if !tcp {
		return
	}
	reply := new(dns.Msg)
	reply.SetRcode(r, dns.RcodeRefused)
	if r.IsEdns0() != nil {
		reply.Extra = append(reply.Extra, newOPT(r, ede(dns.ExtendedErrorCodeProhibited, "source address not among the allowed networks")))
	}
	_ = w.WriteMsg(reply)
	_ = w.Close()
	h.metrics.observeQuery(firstQtype(r), reply.Rcode, false, tcp, time.Since(start))
}

// firstQtype is the type asked for in r's first question, or TypeNone when
// it has none; a query with more than one is FORMERR anyway.
func firstQtype(r *dns.Msg) uint16 {
	if len(r.Question) == 0 {
		return dns.TypeNone
	}
	return r.Question[0].Qtype
}

// Answer returns the reply to req from snapshot s; tcp says whether req came
// over TCP, which decides how large the reply may be. Answer has no side
// effects and never changes s or req. It always returns a reply; a nil s
// answers SERVFAIL to everything.
//
// Policy choices the DNS leaves open:
//   - A query of class ANY is answered like class IN; every other class is
//     REFUSED, since zkdns is authoritative for no zone in them, but for
//     the reserved class 0, which is FORMERR.
//   - AXFR and IXFR are REFUSED.
//   - An opcode other than QUERY is NOTIMP; a question count other than one
//     is FORMERR, with the question section left empty.
//   - A name outside the zone is REFUSED, without the AA bit. (A Handler
//     whose Policy lists upstreams forwards it instead.)
//   - RA is never set: the answers are authoritative or refusals.
func Answer(s *Snapshot, req *dns.Msg, tcp bool) *dns.Msg {
	reply, _ := answer(s, req, tcp)
	return reply
}

// answer is Answer that also says why the reply is not a positive one, so
// that the caller can tell a name outside the zone from other refusals.
func answer(s *Snapshot, req *dns.Msg, tcp bool) (*dns.Msg, error) {
	reply := new(dns.Msg)
	reply.SetReply(req)

	var qname string
	if len(req.Question) == 1 {
		qname = req.Question[0].Name
	}
	found, err := resolve(s, req)
	if err == nil && req.Question[0].Qtype != dns.TypeCNAME {
		found, err = s.follow(found, req.Question[0].Qtype)
	}
	if len(found.answer) > 0 {
		reply.Answer = ownedBy(found.answer, qname)
		if found.shuffle {
			rand.Shuffle(len(reply.Answer), func(i, j int) {
				reply.Answer[i], reply.Answer[j] = reply.Answer[j], reply.Answer[i]
			})
		}
		reply.Answer = append(reply.Answer, found.chased...)
	}
	switch {
	case err == nil:
		reply.Authoritative = true
		reply.Extra = append(reply.Extra, found.extra...)
	case errors.Is(err, errNoData):
		// Also the end of a CNAME chain in found.answer.
		reply.Authoritative = true
		reply.Ns = []dns.RR{s.apex.negSOA}
	case errors.Is(err, errNameNotFound):
		reply.Authoritative = true
		reply.Rcode = dns.RcodeNameError
		reply.Ns = []dns.RR{s.apex.negSOA}
	case errors.Is(err, errNotInZone):
		// zkdns is no open resolver: without upstreams it answers only
		// for its own zone.
		reply.Rcode = dns.RcodeRefused
	case errors.Is(err, errRefused):
		reply.Rcode = dns.RcodeRefused
	case errors.Is(err, errNotSynced):
		reply.Rcode = dns.RcodeServerFailure
	case errors.Is(err, errBadVersion):
		reply.Rcode = dns.RcodeBadVers
	case errors.Is(err, errNotImplemented):
		reply.Rcode = dns.RcodeNotImplemented
	case errors.Is(err, errBadKey):
		reply.Rcode = dns.RcodeNotAuth
	case errors.Is(err, errFormat):
		reply.Rcode = dns.RcodeFormatError
		reply.Question = nil
	default:
		reply.Rcode = dns.RcodeServerFailure
	}

	if req.IsEdns0() != nil {
		reply.Extra = append(reply.Extra, newOPT(req, extendedError(err)))
	}
	if errors.Is(err, errBadKey) {
		reply.Extra = append(reply.Extra, badKey(req.IsTsig()))
	}
	if tcp {
		fitTCP(reply)
	} else {
		truncate(reply, maxReplySize(req, tcp))
	}
	return reply, err
}

// fitTCP cuts a reply that does not fit a TCP message (64 KiB: about a
// thousand SRV records), leaving TC as it was. Over TCP no larger
// transport is left to retry on, and resolvers take TC there for a
// failure (unbound answers SERVFAIL for the whole service), so the client
// gets a part of the set instead; the set is shuffled first, so that each
// reply holds another part and clients spread over all of it. A CNAME
// chain is kept in its order.
func fitTCP(reply *dns.Msg) {
	reply.Compress = true
	if oneRRset(reply.Answer) && reply.Len() > dns.MaxMsgSize {
		rand.Shuffle(len(reply.Answer), func(i, j int) {
			reply.Answer[i], reply.Answer[j] = reply.Answer[j], reply.Answer[i]
		})
	}
	tc := reply.Truncated
	truncate(reply, dns.MaxMsgSize)
	reply.Truncated = tc
}

// oneRRset reports whether rrs are two or more records of one owner and
// type.
func oneRRset(rrs []dns.RR) bool {
	if len(rrs) < 2 {
		return false
	}
	for _, rr := range rrs[1:] {
		if rr.Header().Rrtype != rrs[0].Header().Rrtype || rr.Header().Name != rrs[0].Header().Name {
			return false
		}
	}
	return true
}

// badKey is the TSIG record of the reply to a query signed with the key
// of sig, which zkdns does not hold: RFC 8945 §5.2.2 asks for NOTAUTH with
// TSIG error BADKEY, unsigned (no MAC), so that the client learns why
// instead of discarding an unsigned answer as forged and timing out.
func badKey(sig *dns.TSIG) *dns.TSIG {
	return &dns.TSIG{
		Hdr:        dns.RR_Header{Name: sig.Hdr.Name, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
		Algorithm:  sig.Algorithm,
		TimeSigned: sig.TimeSigned,
		Fudge:      sig.Fudge,
		OrigId:     sig.OrigId,
		Error:      dns.RcodeBadKey,
	}
}

// truncate cuts reply to size bytes as Msg.Truncate does (answers first,
// then authority, then additional records, as many as fit), but sets TC
// only when answer or authority records had to go. RFC 2181 §9: TC is
// not for "extra information" left out for lack of room, such as the
// address records of SRV targets, which a client can ask for; set then,
// it would send every client without EDNS0 to TCP for a reply already
// whole. An upstream's TC is kept.
func truncate(reply *dns.Msg, size int) {
	tc, answers, authority := reply.Truncated, len(reply.Answer), len(reply.Ns)
	reply.Truncate(size)
	reply.Truncated = tc || len(reply.Answer) < answers || len(reply.Ns) < authority
	// Truncate turns compression off when the reply fits without it.
	reply.Compress = true
}

// maxReplySize is the largest reply req's client can take: a whole message
// over TCP; over UDP 512 bytes without EDNS0, or the EDNS0 size it
// advertises kept within 512 and maxUDPReply.
func maxReplySize(req *dns.Msg, tcp bool) int {
	switch opt := req.IsEdns0(); {
	case tcp:
		return dns.MaxMsgSize
	case opt == nil:
		return dns.MinMsgSize
	default:
		return max(dns.MinMsgSize, min(int(opt.UDPSize()), maxUDPReply))
	}
}

// resolve checks the header of req and looks its question up in s.
func resolve(s *Snapshot, req *dns.Msg) (records, error) {
	if req.Opcode != dns.OpcodeQuery {
		return records{}, errNotImplemented
	}
	if len(req.Question) != 1 {
		return records{}, errFormat
	}
	// OPT and TSIG are pseudo-records of the additional section alone
	// (RFC 6891 §6.1.1, RFC 8945 §5.1); anywhere else the message is
	// malformed.
	if slices.ContainsFunc(req.Answer, isPseudo) || slices.ContainsFunc(req.Ns, isPseudo) {
		return records{}, errFormat
	}
	opts := 0
	for i, rr := range req.Extra {
		switch rr := rr.(type) {
		case *dns.OPT:
			opts++
			if rr.Version() != 0 {
				return records{}, errBadVersion
			}
		case *dns.TSIG:
			// RFC 8945 §4.2, §5.1: one TSIG, the last record, of class
			// ANY and TTL 0, naming its algorithm (an empty RDATA, which
			// unpacks, names none).
			if i != len(req.Extra)-1 || rr.Hdr.Class != dns.ClassANY || rr.Hdr.Ttl != 0 || rr.Algorithm == "" {
				return records{}, errFormat
			}
		}
	}
	if opts > 1 {
		// RFC 6891 §6.1.1.
		return records{}, errFormat
	}
	q := req.Question[0]
	if q.Qclass == 0 {
		// The reserved class 0 (RFC 6895 §3.2) is also what the DNS
		// library reads for a question cut after its name or its type.
		return records{}, errFormat
	}
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return records{}, errClass
	}
	if s == nil {
		return records{}, errNotSynced
	}
	found, err := s.lookup(strings.ToLower(q.Name), q.Qtype)
	if req.IsTsig() != nil && !errors.Is(err, errNotInZone) {
		// zkdns holds no TSIG keys. A signed query for a name outside the
		// zone is refused as any other is (see forwardable).
		return records{}, errBadKey
	}
	return found, err
}

// isPseudo reports whether rr is an OPT or TSIG record.
func isPseudo(rr dns.RR) bool {
	t := rr.Header().Rrtype
	return t == dns.TypeOPT || t == dns.TypeTSIG
}

// ownedBy returns a fresh copy of rrs, whose owner is the lowercase form of
// qname, with qname's own case restored, as clients expect to see the name
// they asked. Records already spelled like qname are shared, not copied.
func ownedBy(rrs []dns.RR, qname string) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		if rr.Header().Name != qname {
			rr = dns.Copy(rr)
			rr.Header().Name = qname
		}
		out[i] = rr
	}
	return out
}

// newOPT returns the OPT record of a reply to req: version 0, our size,
// req's DO bit (RFC 3225 §3), and ede when it is not nil. It is made per
// reply because packing writes the extended rcode into it.
func newOPT(req *dns.Msg, ede *dns.EDNS0_EDE) *dns.OPT {
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	opt.SetUDPSize(ednsSize)
	if o := req.IsEdns0(); o != nil && o.Do() {
		opt.SetDo()
	}
	if ede != nil {
		opt.Option = append(opt.Option, ede)
	}
	return opt
}

// extendedError is the Extended DNS Error (RFC 8914) that says why zkdns
// refused or failed a query itself, so that whoever sees the rcode (dig
// prints it as "EDE:") learns the reason without zkdns's logs; nil when
// the rcode says it all.
func extendedError(err error) *dns.EDNS0_EDE {
	var r refusal
	switch {
	case errors.Is(err, errNotSynced):
		return ede(dns.ExtendedErrorCodeNotReady, "zkdns has not finished its first sync from ZooKeeper")
	case errors.Is(err, errNotInZone):
		return ede(dns.ExtendedErrorCodeNotAuthoritative, "name outside zkdns's zone, and not forwarded")
	case errors.As(err, &r):
		return ede(r.code, r.reason)
	}
	return nil
}

// ede is an Extended DNS Error of code, with text as its reason.
func ede(code uint16, text string) *dns.EDNS0_EDE {
	return &dns.EDNS0_EDE{InfoCode: code, ExtraText: text}
}
