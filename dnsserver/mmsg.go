package dnsserver

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The UDP fast path reads and writes batches of datagrams with its own
// recvmmsg and sendmmsg calls, for two reasons.
//
// Allocation: x/net's ReadBatch parses every source into a new
// net.UDPAddr, two allocations per query, which at tens of thousands of
// queries a second make a garbage collection every second or two. Here
// the sources stay the raw sockaddrs the kernel wrote, and each reply is
// sent back to its query's sockaddr as it is.
//
// Scheduling: both calls are made with RawSyscall, holding the P. With a
// plain Syscall the thread is marked as in a system call, and with one P
// (zkdns pinned to one core, as it is beside other work) the runtime's
// monitor takes the P from any sendmmsg that runs past its 20 µs tick and
// wakes another thread to look for work: three context switches on that
// one core per batch, about a tenth of the CPU per query. These calls
// never block (the socket is non-blocking; an empty or full socket
// returns EAGAIN and the reader waits in the poller), so holding the P
// costs nothing.

// mmsghdr is struct mmsghdr: a msghdr and the length the kernel received
// or sent with it. Go pads it as C does.
type mmsghdr struct {
	hdr syscall.Msghdr
	len uint32
}

// batchReader reads up to a batch of datagrams per recvmmsg into buffers
// it owns. The zero value is not usable; newBatchReader makes one.
type batchReader struct {
	raw   syscall.RawConn
	hdrs  []mmsghdr
	iovs  []syscall.Iovec
	names []syscall.RawSockaddrInet6 // large enough for either family
	bufs  [][]byte

	// ctrl holds each datagram's destination (see enablePktinfo), made a
	// control message to send its reply with; nil when the socket is bound
	// to one address, whose replies leave from it anyway.
	ctrl [][]byte

	// recv is recvmmsg as a func value made once: a closure made per
	// read would be an allocation per batch. n and errno are its results.
	recv  func(fd uintptr) bool
	n     int
	errno syscall.Errno
}

// newBatchReader makes a reader of uc. With pktinfo (see enablePktinfo)
// it also keeps each datagram's destination for its reply.
func newBatchReader(uc *net.UDPConn, batch, size int, pktinfo bool) (*batchReader, error) {
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("dnsserver: %w", err)
	}
	r := &batchReader{
		raw:   raw,
		hdrs:  make([]mmsghdr, batch),
		iovs:  make([]syscall.Iovec, batch),
		names: make([]syscall.RawSockaddrInet6, batch),
		bufs:  make([][]byte, batch),
	}
	r.recv = r.recvmmsg
	if pktinfo {
		// One allocation, cut at multiples of pktinfoSpace: each control
		// buffer stays aligned as the kernel's cmsghdr needs.
		all := make([]byte, batch*pktinfoSpace)
		r.ctrl = make([][]byte, batch)
		for i := range batch {
			r.ctrl[i] = all[i*pktinfoSpace : (i+1)*pktinfoSpace : (i+1)*pktinfoSpace]
		}
	}
	for i := range batch {
		r.bufs[i] = make([]byte, size)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		r.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		r.hdrs[i].hdr.Iov = &r.iovs[i]
		r.hdrs[i].hdr.Iovlen = 1
	}
	return r, nil
}

// read waits for datagrams and reads up to a batch of them, returning how
// many. It returns the socket's error when its read deadline passes.
func (r *batchReader) read() (int, error) {
	for i := range r.hdrs {
		r.hdrs[i].hdr.Namelen = uint32(unsafe.Sizeof(r.names[i]))
		r.hdrs[i].hdr.Flags = 0
		r.hdrs[i].len = 0
		if r.ctrl != nil {
			r.hdrs[i].hdr.Control = &r.ctrl[i][0]
			r.hdrs[i].hdr.SetControllen(pktinfoSpace)
		}
	}
	r.n, r.errno = 0, 0
	if err := r.raw.Read(r.recv); err != nil {
		return 0, err
	}
	if r.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", r.errno)
	}
	return r.n, nil
}

// recvmmsg is one attempt to read a batch from fd, for RawConn.Read: it
// returns false to wait until the socket is readable.
func (r *batchReader) recvmmsg(fd uintptr) bool {
	for {
		got, _, e := syscall.RawSyscall6(unix.SYS_RECVMMSG, fd,
			uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), 0, 0, 0)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		r.n, r.errno = int(got), e
		return true
	}
}

// packet is the i-th datagram of the last read, cut to the buffer when it
// was longer.
func (r *batchReader) packet(i int) []byte {
	return r.bufs[i][:min(int(r.hdrs[i].len), len(r.bufs[i]))]
}

// source is the i-th datagram's sender. An IPv6 source with a scope (a
// link-local address) gets its interface index as its zone.
func (r *batchReader) source(i int) netip.AddrPort {
	sa := &r.names[i]
	b := (*[unsafe.Sizeof(*sa)]byte)(unsafe.Pointer(sa))
	port := binary.BigEndian.Uint16(b[2:4])
	switch sa.Family {
	case syscall.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	case syscall.AF_INET6:
		addr := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			addr = addr.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return netip.AddrPortFrom(addr, port)
	}
	return netip.AddrPort{}
}

// replyControl is the control message to send the reply to the i-th
// datagram of the last read with, so that the reply leaves from the
// address the query was sent to; nil when the reader keeps no
// destinations. It is the datagram's own IP_PKTINFO or IPV6_PKTINFO,
// rewritten in place for sending (so call it once per datagram): the
// destination becomes the source, and the interface index is cleared so
// that the reply is routed as any other packet to the client would be.
func (r *batchReader) replyControl(i int) []byte {
	if r.ctrl == nil {
		return nil
	}
	return pktinfoReply(r.ctrl[i][:r.hdrs[i].hdr.Controllen])
}

// batchWriter sends up to a batch of replies per sendmmsg, each to the
// sockaddr its query came from. The zero value is not usable;
// newBatchWriter makes one.
type batchWriter struct {
	raw  syscall.RawConn
	hdrs []mmsghdr
	iovs []syscall.Iovec
	bufs [][]byte // storage for each reply of a batch
	n    int      // replies queued

	// send is sendmmsg as a func value made once (see batchReader.recv);
	// sent counts the replies of the batch that are done with.
	send func(fd uintptr) bool
	sent int
}

func newBatchWriter(uc *net.UDPConn, batch, size int) (*batchWriter, error) {
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("dnsserver: %w", err)
	}
	w := &batchWriter{raw: raw, hdrs: make([]mmsghdr, batch), iovs: make([]syscall.Iovec, batch), bufs: make([][]byte, batch)}
	w.send = w.sendmmsg
	for i := range batch {
		w.bufs[i] = make([]byte, 0, size)
		w.hdrs[i].hdr.Iov = &w.iovs[i]
		w.hdrs[i].hdr.Iovlen = 1
	}
	return w, nil
}

// next is empty storage, of the capacity the writer was made with, for
// the next reply to add.
func (w *batchWriter) next() []byte { return w.bufs[w.n][:0] }

// add queues reply, a non-empty slice (normally built in next's storage)
// that must stay unchanged until the next flush, to the sender of r's
// i-th datagram. r must not read again before that flush either: the
// address is r's.
func (w *batchWriter) add(reply []byte, r *batchReader, i int) {
	w.iovs[w.n].Base = &reply[0]
	w.iovs[w.n].SetLen(len(reply))
	w.hdrs[w.n].hdr.Name = r.hdrs[i].hdr.Name
	w.hdrs[w.n].hdr.Namelen = r.hdrs[i].hdr.Namelen
	if ctrl := r.replyControl(i); len(ctrl) > 0 {
		w.hdrs[w.n].hdr.Control = &ctrl[0]
		w.hdrs[w.n].hdr.SetControllen(len(ctrl))
	} else {
		w.hdrs[w.n].hdr.Control = nil
		w.hdrs[w.n].hdr.Controllen = 0
	}
	w.n++
}

// flush sends the queued replies, empties the queue and returns how many
// replies it held. A reply the kernel refuses (an unreachable client) is
// that client's loss: the rest still go. It returns early only when the
// socket is closed.
func (w *batchWriter) flush() int {
	for w.sent = 0; w.sent < w.n; {
		if err := w.raw.Write(w.send); err != nil {
			break
		}
	}
	n := w.n
	w.n = 0
	return n
}

// sendmmsg is one attempt to send the rest of the batch on fd, for
// RawConn.Write: it returns false to wait until the socket is writable.
func (w *batchWriter) sendmmsg(fd uintptr) bool {
	for {
		got, _, e := syscall.RawSyscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&w.hdrs[w.sent])), uintptr(w.n-w.sent), 0, 0, 0)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			w.sent += int(got)
		default:
			w.sent++ // the first unsent reply failed
		}
		return true
	}
}

// A socket bound to a wildcard address (0.0.0.0, ::) answers queries sent
// to any of the host's addresses, and a reply sent with no more said
// leaves from whichever address the route to the client prefers. A
// resolver accepts a reply only from the address it asked, so on a host
// with more than one (a secondary or floating IP, 127.0.0.2, several IPv6
// addresses) such replies are dropped and lookups time out. Asked to, the
// kernel hands over each datagram's destination (IP_PKTINFO,
// IPV6_RECVPKTINFO: on a dual-stack socket that covers IPv4 too, as
// mapped addresses), and a reply sent with it as a control message
// leaves from there.

// pktinfoSpace is room for one IPV6_PKTINFO control message (40 bytes with
// its header) or one IP_PKTINFO (32).
const pktinfoSpace = 64

// enablePktinfo asks the kernel for the destination of each datagram on
// uc, when uc is bound to a wildcard address, and reports whether it did.
func enablePktinfo(uc *net.UDPConn) (bool, error) {
	la, ok := uc.LocalAddr().(*net.UDPAddr)
	if !ok || !la.IP.IsUnspecified() {
		return false, nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return false, fmt.Errorf("dnsserver: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		var sa unix.Sockaddr
		if sa, serr = unix.Getsockname(int(fd)); serr != nil {
			return
		}
		if _, v4 := sa.(*unix.SockaddrInet4); v4 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		}
	}); err != nil {
		return false, fmt.Errorf("dnsserver: %w", err)
	}
	if serr != nil {
		return false, fmt.Errorf("dnsserver: ask for the destination of each datagram on %s, to answer from it: %w", la, serr)
	}
	return true, nil
}

// pktinfoReply rewrites ctrl, the control data received with a datagram,
// into the control message to send its reply with (see
// batchReader.replyControl), and returns it; nil if ctrl holds no packet
// information. It allocates nothing: it runs once per query.
func pktinfoReply(ctrl []byte) []byte {
	const hdrLen = unix.SizeofCmsghdr
	if len(ctrl) < hdrLen {
		return nil
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
	if h.Len < hdrLen || h.Len > uint64(len(ctrl)) {
		return nil
	}
	data := ctrl[hdrLen:h.Len]
	switch {
	case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
		// struct in6_pktinfo: the address, then the interface index.
		clear(data[16:20])
	case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
		// struct in_pktinfo: the interface index, the local address to
		// send from (ipi_spec_dst), the header's destination (ipi_addr).
		clear(data[0:4])
		copy(data[4:8], data[8:12])
	default:
		return nil
	}
	return ctrl[:unix.CmsgSpace(len(data))]
}
