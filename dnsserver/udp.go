package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/errgroup"
)

// maxUDPQuery is the largest UDP query read whole; a longer datagram is
// cut and so fails to unpack (FORMERR). Real queries are far smaller.
const maxUDPQuery = 4096

// serveUDP answers the queries arriving on pc with a few long-lived
// readers, each reusing its buffers. The miekg/dns server starts a
// goroutine per packet, whose stack grows afresh for every query; on one
// core that costs more than the answer itself. The fixed pool is also the
// bound on UDP work: a flood queues in the kernel and is dropped there.
// When ctx ends, an expired read deadline stops the readers after the
// query each has in hand; then pc is closed and serveUDP returns nil. A
// broken socket returns its error. Packets that never reach h (from
// sources the policy does not admit, or not parsing) are counted here.
func serveUDP(ctx context.Context, pc net.PacketConn, h *Handler, env *serveEnv) error {
	stop := context.AfterFunc(ctx, func() { _ = pc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	defer pc.Close()
	growReceiveBuffer(pc)
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return fmt.Errorf("dnsserver: %T is not a UDP socket", pc)
	}
	pktinfo, err := enablePktinfo(uc)
	if err != nil {
		return err
	}
	g := new(errgroup.Group)
	for range max(2, runtime.GOMAXPROCS(0)) {
		g.Go(func() error { return readUDP(ctx, uc, pktinfo, h, env) })
	}
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("dnsserver: serving udp %s: %w", pc.LocalAddr(), err)
}

// udpReceiveBuffer is the socket receive buffer zkdns asks for. The
// kernel's default (about 200 KiB, some 250 queries as the kernel counts
// them) overflows when the reader loses its core for a few milliseconds
// at tens of thousands of queries a second, and every overflow is a lost
// query that the client only retries after its timeout. The kernel
// doubles what is asked for and charges each small datagram about 830
// bytes, so 16 MiB holds some 40,000 queries (TestUDPReceiveBufferHoldsAStall
// sends 36,000 unread; 4 MiB holds 10,000): 200 ms of a stall at 200,000
// a second, still well inside a stub resolver's timeout. 4 MiB overflowed
// in make bench at 89,000 a second while the hypervisor held zkdns's
// core. The memory is only taken while queries wait.
const udpReceiveBuffer = 16 << 20

// growReceiveBuffer asks for udpReceiveBuffer. SO_RCVBUFFORCE goes past
// the net.core.rmem_max limit, when the process may (CAP_NET_ADMIN);
// otherwise the kernel caps SO_RCVBUF at that limit, which an operator can
// raise. Either way a smaller buffer still works, so failures are ignored.
func growReceiveBuffer(pc net.PacketConn) {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return
	}
	var forced error
	if err := raw.Control(func(fd uintptr) {
		forced = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, udpReceiveBuffer)
	}); err != nil || forced != nil {
		_ = uc.SetReadBuffer(udpReceiveBuffer)
	}
}

// batchSize is how many datagrams one recvmmsg may return, and one
// sendmmsg send: under load a reader pays the system call once per batch
// instead of twice per query.
const batchSize = 32

// readUDP is one reader: it reads a batch of queries, answers those the
// fast path can into one batch of replies, and the rest one by one. On
// the fast path nothing is allocated.
func readUDP(ctx context.Context, uc *net.UDPConn, pktinfo bool, h *Handler, env *serveEnv) error {
	in, err := newBatchReader(uc, batchSize, maxUDPQuery, pktinfo)
	if err != nil {
		return err
	}
	out, err := newBatchWriter(uc, batchSize, maxUDPReply)
	if err != nil {
		return err
	}
	w := &udpResponseWriter{uc: uc, out: make([]byte, 0, dns.MaxMsgSize)}
	var (
		fq  fastQuery // reused: the fast path allocates nothing
		seq uint32    // picks the rotation of address sets
	)
	for {
		n, err := in.read()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		// One clock reading on each side of the batch: the fast replies
		// go out together at the flush, so the batch's time is each one's
		// time from being read to being sent, and two readings per query
		// would cost more than a fast answer's own work does.
		start := time.Now()
		snap := h.snap.Load()
		pol := h.policy.Load()
		for i := range n {
			packet, src := in.packet(i), in.source(i)
			if !pol.admits(src.Addr(), env) {
				// Dropped before it is parsed: no reply to a source that
				// may be forged, and no work for one that is not welcome.
				h.metrics.observeDenied(false)
				continue
			}
			if reply, qtype, rcode, ok := snap.fastReply(packet, out.next(), seq, &fq); ok {
				seq++
				out.add(reply, in, i)
				truncated := reply[2]&0x02 != 0 // TC
				h.metrics.countQuery(qtype, rcode, truncated, false)
				continue
			}
			w.remote = net.UDPAddrFromAddrPort(src)
			w.ctrl = in.replyControl(i)
			req := new(dns.Msg)
			if err := req.Unpack(packet); err != nil {
				h.metrics.observeMalformed(false)
				w.formatError(packet, req)
				continue
			}
			if req.Response {
				continue // never answer an answer: that is how reflection loops start
			}
			h.serve(env, w, req)
		}
		fast := out.flush()
		h.metrics.observeDurations(false, time.Since(start), fast)
	}
}

// udpResponseWriter is the dns.ResponseWriter of one reader: it packs a
// reply into the reader's own buffer and sends it to the current client,
// from the address that client sent its query to (ctrl, when the socket
// is bound to a wildcard address; see enablePktinfo).
type udpResponseWriter struct {
	uc     *net.UDPConn
	remote *net.UDPAddr
	ctrl   []byte
	out    []byte
}

var _ dns.ResponseWriter = (*udpResponseWriter)(nil)

func (w *udpResponseWriter) LocalAddr() net.Addr  { return w.uc.LocalAddr() }
func (w *udpResponseWriter) RemoteAddr() net.Addr { return w.remote }

func (w *udpResponseWriter) WriteMsg(m *dns.Msg) error {
	wire, err := m.PackBuffer(w.out)
	if err != nil {
		return err
	}
	_, err = w.Write(wire)
	return err
}

func (w *udpResponseWriter) Write(b []byte) (int, error) {
	n, _, err := w.uc.WriteMsgUDP(b, w.ctrl, w.remote)
	return n, err
}

// detach returns a writer to the current client that stays valid after
// the reader moves on to its next packet, for a reply written later.
func (w *udpResponseWriter) detach() *udpResponseWriter {
	return &udpResponseWriter{uc: w.uc, remote: w.remote, ctrl: slices.Clone(w.ctrl)}
}

// Close, TsigStatus, TsigTimersOnly and Hijack have nothing to act on: the
// socket is shared and belongs to serveUDP, and zkdns does no TSIG.
func (w *udpResponseWriter) Close() error        { return nil }
func (w *udpResponseWriter) TsigStatus() error   { return nil }
func (w *udpResponseWriter) TsigTimersOnly(bool) {}
func (w *udpResponseWriter) Hijack()             {}

// formatError answers FORMERR to a query that does not unpack, when its
// header can be read and it is not itself a response; anything shorter is
// dropped. req is what unpacking got through: its one question, when it
// had one that parsed, is echoed, so that a client matching replies to
// questions (most stubs do) takes the FORMERR instead of timing out.
func (w *udpResponseWriter) formatError(packet []byte, req *dns.Msg) {
	const headerLen = 12
	if len(packet) < headerLen || packet[2]&0x80 != 0 {
		return
	}
	reply := new(dns.Msg)
	reply.Id = uint16(packet[0])<<8 | uint16(packet[1])
	reply.Response = true
	reply.Opcode = int(packet[2]>>3) & 0xF
	reply.RecursionDesired = packet[2]&0x01 != 0
	reply.CheckingDisabled = packet[3]&0x10 != 0
	reply.Rcode = dns.RcodeFormatError
	if len(req.Question) == 1 {
		reply.Question = req.Question
	}
	_ = w.WriteMsg(reply)
}
