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

	// recv is recvmmsg as a func value made once: a closure made per
	// read would be an allocation per batch. n and errno are its results.
	recv  func(fd uintptr) bool
	n     int
	errno syscall.Errno
}

func newBatchReader(uc *net.UDPConn, batch, size int) (*batchReader, error) {
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
