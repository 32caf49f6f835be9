package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Defaults of the forwarding limits in ServeOptions.
const (
	// DefaultForwardTimeout bounds the forwarding of one query, every
	// upstream tried included: well inside the 2 to 5 s that stub
	// resolvers wait before they retry, so the client hears SERVFAIL
	// rather than nothing.
	DefaultForwardTimeout = 1500 * time.Millisecond
	// DefaultForwardTryTimeout bounds the wait for one upstream before the
	// next is tried.
	DefaultForwardTryTimeout = 500 * time.Millisecond
	// DefaultMaxForwards caps the queries being forwarded at once.
	DefaultMaxForwards = 64
)

// upstreamReadSize is the buffer a reply from an upstream is read into
// over UDP. zkdns advertises at most maxUDPReply to upstreams, so a larger
// datagram is a broken or hostile upstream: it is cut, fails to unpack and
// is ignored.
const upstreamReadSize = 4096

// errUpstreamFailed says no upstream gave a usable reply; the client gets
// SERVFAIL.
var errUpstreamFailed = errors.New("dnsserver: no upstream answered")

// forwardable reports whether r, a query for a name outside the zone, may
// be forwarded. Zone transfers are not: a transfer is a stream of
// messages, and only the first would be relayed. Nor are TSIG-signed
// queries: the forward is packed afresh and its reply gets RA, so neither
// signature would verify, and zkdns holds no keys to sign them anew.
func forwardable(r *dns.Msg) bool {
	qtype := r.Question[0].Qtype
	return qtype != dns.TypeAXFR && qtype != dns.TypeIXFR && r.IsTsig() == nil
}

// forward answers r, whose name is outside the zone, from the upstreams of
// pol. Over UDP under Serve it runs off the reader goroutine, so a slow
// upstream delays only the queries sent to it; over TCP it runs in the
// connection's own goroutine. Either way at most env.forwardSlots forwards
// are in flight; beyond that the query is answered SERVFAIL at once.
func (h *Handler) forward(env *serveEnv, pol *policy, w dns.ResponseWriter, r *dns.Msg, src netip.AddrPort, tcp bool, start time.Time) {
	if h.outbound.has(src) {
		// The query comes from a socket this handler forwards on: an
		// upstream, or a path to one, leads back here. Refusing it ends
		// the loop, and the forward that sent it moves on.
		h.replyFailure(w, r, tcp, dns.RcodeRefused, forwardLoop, start)
		return
	}
	if env == nil {
		env = directEnv()
	}
	if env.forwardSlots != nil {
		select {
		case env.forwardSlots <- struct{}{}:
		default:
			h.replyFailure(w, r, tcp, dns.RcodeServerFailure, forwardBusy, start)
			return
		}
	}
	run := func(w dns.ResponseWriter) {
		if env.forwardSlots != nil {
			defer func() { <-env.forwardSlots }()
		}
		h.relay(env, pol, w, r, tcp, start)
	}
	if uw, ok := w.(*udpResponseWriter); ok && env.offload {
		// The reader's writer is reused for its next packet; the forward
		// gets one of its own.
		detached := uw.detach()
		env.forwards.Go(func() { run(detached) })
		return
	}
	run(w)
}

// relay asks the upstreams and writes what the first usable one answered,
// with the client's ID and the RA bit, or SERVFAIL when none did.
func (h *Handler) relay(env *serveEnv, pol *policy, w dns.ResponseWriter, r *dns.Msg, tcp bool, start time.Time) {
	raw, reply, err := h.exchange(env, pol, r, tcp)
	if err == nil {
		raw, err = relayed(r, raw, reply, tcp)
	}
	if err != nil {
		h.replyFailure(w, r, tcp, dns.RcodeServerFailure, forwardFailed, start)
		return
	}
	// Counted before the write, so that whoever holds the reply can see
	// it counted.
	h.metrics.observeForward(forwardAnswered, time.Since(start))
	h.metrics.countQuery(firstQtype(r), reply.Rcode, raw[2]&0x02 != 0, tcp)
	_, _ = w.Write(raw)
}

// relayed makes raw, an upstream's reply to r (unpacked as reply), into
// the reply to r's client: as the upstream wrote it, but for the ID, which
// is the client's again, and RA, since zkdns recursed on the client's
// behalf. It may change raw and reply. A reply larger than the client
// takes (the upstream was never asked for more, but may not listen) is
// cut as Answer cuts.
func relayed(r *dns.Msg, raw []byte, reply *dns.Msg, tcp bool) ([]byte, error) {
	if limit := maxReplySize(r, tcp); len(raw) > limit {
		reply.Id = r.Id
		reply.RecursionAvailable = true
		truncate(reply, limit)
		out, err := reply.Pack()
		if err != nil {
			return nil, fmt.Errorf("dnsserver: forward: repack a reply cut to %d bytes: %w", limit, err)
		}
		return out, nil
	}
	binary.BigEndian.PutUint16(raw, r.Id)
	raw[3] |= 0x80
	return raw, nil
}

// replyFailure answers r with rcode on behalf of a forward that did not
// happen or did not succeed.
func (h *Handler) replyFailure(w dns.ResponseWriter, r *dns.Msg, tcp bool, rcode int, result forwardResult, start time.Time) {
	reply := new(dns.Msg)
	reply.SetRcode(r, rcode)
	reply.RecursionAvailable = true
	if r.IsEdns0() != nil {
		reply.Extra = append(reply.Extra, newOPT(r, result.extendedError()))
	}
	h.metrics.observeForward(result, time.Since(start))
	h.metrics.countQuery(firstQtype(r), reply.Rcode, false, tcp)
	_ = w.WriteMsg(reply)
}

// extendedError says why the client got no upstream's reply (RFC 8914),
// or nil for an answered forward.
func (r forwardResult) extendedError() *dns.EDNS0_EDE {
	switch r {
	case forwardFailed:
		return ede(dns.ExtendedErrorCodeNoReachableAuthority, "no upstream answered")
	case forwardBusy:
		return ede(dns.ExtendedErrorCodeOther, "too many queries being forwarded at once")
	case forwardLoop:
		return ede(dns.ExtendedErrorCodeOther, "forwarding loop: the query came from zkdns's own forward")
	}
	return nil
}

// exchange sends r to the upstreams of pol in turn until one gives a
// usable reply, within env's timeouts. It returns that reply as received
// and unpacked. Upstreams that are this server's own listeners are
// skipped.
//
// While the forward's time lasts, the list is gone round again: one
// upstream, or a few, must not leave most of ForwardTimeout unused, and a
// datagram lost on the way is sent again. Each upstream keeps its socket
// for the whole forward, so a reply to an earlier send that comes late is
// still taken.
func (h *Handler) exchange(env *serveEnv, pol *policy, r *dns.Msg, tcp bool) ([]byte, *dns.Msg, error) {
	q := r.Copy()
	// A fresh ID, which the upstream's reply must carry: a forged reply
	// has to guess it as well as the socket's random port.
	q.Id = dns.Id()
	if opt := q.IsEdns0(); opt != nil && !tcp && opt.UDPSize() > maxUDPReply {
		// The upstream is asked for no more than the client may get.
		opt.SetUDPSize(maxUDPReply)
	}
	wire, err := q.Pack()
	if err != nil {
		return nil, nil, fmt.Errorf("dnsserver: forward: pack query: %w", err)
	}
	ctx, cancel := context.WithTimeout(env.ctx, env.forwardTimeout)
	defer cancel()
	tries := make([]upstreamTry, 0, len(pol.upstreams))
	for _, up := range pol.upstreams {
		if !env.isSelf(up) {
			tries = append(tries, upstreamTry{outbound: &h.outbound, up: up, tcp: tcp})
		}
	}
	defer func() {
		for i := range tries {
			tries[i].close()
		}
	}()
	errs := []error{errUpstreamFailed}
	for ctx.Err() == nil {
		asked := false
		for i := range tries {
			t := &tries[i]
			if t.done || ctx.Err() != nil {
				continue
			}
			asked = true
			raw, reply, err := t.ask(ctx, env.forwardTryTimeout, wire, q)
			if err == nil {
				return raw, reply, nil
			}
			if t.done || ctx.Err() != nil {
				// Only an upstream's final word, or the last wait, is
				// worth reporting; a wait that ran out with time left
				// says nothing the next round will not.
				errs = append(errs, err)
			}
		}
		if !asked {
			break
		}
	}
	return nil, nil, errors.Join(errs...)
}

// upstreamTry is one upstream during one forward: the socket it is asked
// on, kept until the forward ends, and whether it has given its final
// word (an answer of SERVFAIL or REFUSED, or a socket that failed).
type upstreamTry struct {
	outbound *outboundSet // the handler's: where the socket's address is filed
	up       netip.AddrPort
	tcp      bool
	conn     *dns.Conn
	local    netip.AddrPort
	done     bool
	// unhook removes the hook that ends a wait on conn when the forward
	// ends (Serve stopping): one per socket, not per try, so that no
	// earlier try's hook can cut a later wait short.
	unhook func() bool
}

// ask sends wire, the packed q, to the upstream over the client's
// transport and waits at most timeout for its reply, or for the reply to
// an earlier send on the same socket. A reply that answers SERVFAIL or
// REFUSED is an error, and final: the next upstream may do better.
// ctx is the whole forward's; the wait ends at timeout or at ctx's
// deadline, whichever comes first.
func (t *upstreamTry) ask(ctx context.Context, timeout time.Duration, wire []byte, q *dns.Msg) ([]byte, *dns.Msg, error) {
	now := time.Now()
	deadline := now.Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if !now.Before(deadline) {
		// The forward's time is up, though its timer has not said so yet.
		return nil, nil, t.failed(ctx, os.ErrDeadlineExceeded)
	}
	if t.conn == nil {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		err := t.dial(ctx, dctx)
		cancel()
		if err != nil {
			// A connect that ran out of this try's time (a TCP
			// upstream with a full accept queue, or a dial that lost
			// its core for longer than a try) is a wait like any
			// other: the next round dials again.
			return nil, nil, t.failed(ctx, err)
		}
	}
	conn := t.conn // failed may close t's and forget it
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write(wire); err != nil {
		return nil, nil, t.failed(ctx, err)
	}
	for {
		raw, err := conn.ReadMsgHeader(nil)
		if errors.Is(err, dns.ErrShortRead) && !t.tcp {
			continue // a datagram too short to be a reply
		}
		if err != nil {
			return nil, nil, t.failed(ctx, err)
		}
		reply, err := replyTo(q, raw)
		if err != nil {
			if !t.tcp {
				// A stray or forged datagram: keep waiting for the
				// real reply until the deadline.
				continue
			}
			t.done = true
			return nil, nil, fmt.Errorf("dnsserver: forward to %s: %w", t.up, err)
		}
		if reply.Rcode == dns.RcodeServerFailure || reply.Rcode == dns.RcodeRefused {
			t.done = true
			return nil, nil, fmt.Errorf("dnsserver: forward to %s: answered %s", t.up, dns.RcodeToString[reply.Rcode])
		}
		return raw, reply, nil
	}
}

// dial opens the socket to the upstream within dialCtx, and hooks it to
// ctx, the forward's: when the forward ends early (Serve stopping), a wait
// on the socket ends at once, not at its deadline.
func (t *upstreamTry) dial(ctx, dialCtx context.Context) error {
	network := "udp"
	if t.tcp {
		network = "tcp"
	}
	var d net.Dialer
	conn, err := d.DialContext(dialCtx, network, t.up.String())
	if err != nil {
		return err
	}
	t.local = sourceOf(conn.LocalAddr())
	t.outbound.add(t.local)
	t.conn = &dns.Conn{Conn: conn, UDPSize: upstreamReadSize}
	t.unhook = context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return nil
}

// failed turns a socket error into the error of this try. A wait that
// ran out leaves the upstream for the next round: over UDP on the same
// socket; over TCP on a new connection, since the wait may have ended in
// the middle of a message. Any other failure ends the upstream's part in
// this forward.
func (t *upstreamTry) failed(ctx context.Context, err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout() || ctx.Err() != nil:
		if t.tcp {
			t.close()
		}
	default:
		t.done = true
	}
	return fmt.Errorf("dnsserver: forward to %s: %w", t.up, err)
}

func (t *upstreamTry) close() {
	if t.conn != nil {
		t.unhook()
		t.conn.Close()
		t.outbound.remove(t.local)
		t.conn = nil
	}
}

// replyTo unpacks raw and checks that it is a reply to q: a response with
// q's ID and opcode, and q's question when it carries one.
func replyTo(q *dns.Msg, raw []byte) (*dns.Msg, error) {
	reply := new(dns.Msg)
	if err := reply.Unpack(raw); err != nil {
		return nil, fmt.Errorf("reply does not parse: %w", err)
	}
	if !reply.Response || reply.Id != q.Id || reply.Opcode != q.Opcode {
		return nil, errors.New("reply is not a response to the query sent")
	}
	if len(reply.Question) > 0 {
		got, want := reply.Question[0], q.Question[0]
		if got.Qtype != want.Qtype || got.Qclass != want.Qclass || !strings.EqualFold(got.Name, want.Name) {
			return nil, fmt.Errorf("reply is for another question (%s)", got.String())
		}
	}
	return reply, nil
}

// outboundSet is the set of local addresses of the sockets forwards wait
// on. The zero value is empty and ready to use.
type outboundSet struct {
	mu sync.Mutex
	// addrs counts the sockets on each address: a UDP and a TCP socket
	// may share one. Guarded by mu.
	addrs map[netip.AddrPort]int
}

func (s *outboundSet) add(a netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addrs == nil {
		s.addrs = make(map[netip.AddrPort]int)
	}
	s.addrs[a]++
}

func (s *outboundSet) remove(a netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addrs[a] <= 1 {
		delete(s.addrs, a)
		return
	}
	s.addrs[a]--
}

func (s *outboundSet) has(a netip.AddrPort) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[a] > 0
}
