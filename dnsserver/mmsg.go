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
)

// batchReader reads batches of datagrams with recvmmsg into buffers it
// owns, keeping each source address as the raw sockaddr the kernel wrote.
// x/net's ReadBatch parses every source into a new net.UDPAddr: two
// allocations per query, which at tens of thousands of queries a second
// make a garbage collection every second or two, and its pauses show in
// the latency tail. The zero value is not usable; newBatchReader makes
// one.
type batchReader struct {
	raw   syscall.RawConn
	hdrs  []mmsghdr
	iovs  []syscall.Iovec
	names []syscall.RawSockaddrInet6 // large enough for either family
	bufs  [][]byte
	// addrs are the sources as net.Addr, one reused value per slot, for
	// the batch writer: filling one in place allocates nothing.
	addrs []net.UDPAddr
	ips   [][net.IPv6len]byte

	// recv is recvmmsg as a func value made once: a closure made per
	// read would be an allocation per batch. n and errno are its results.
	recv  func(fd uintptr) bool
	n     int
	errno syscall.Errno
}

// mmsghdr is struct mmsghdr: a msghdr and the length the kernel received
// into it. Go pads it as C does.
type mmsghdr struct {
	hdr syscall.Msghdr
	len uint32
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
		addrs: make([]net.UDPAddr, batch),
		ips:   make([][net.IPv6len]byte, batch),
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
		got, _, e := syscall.Syscall6(syscall.SYS_RECVMMSG, fd,
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

// addr is the i-th datagram's sender as a net.Addr, in storage reused by
// the next read: good for the batch written before then.
func (r *batchReader) addr(i int, src netip.AddrPort) net.Addr {
	a := &r.addrs[i]
	ip := src.Addr()
	if ip.Is4() {
		b := ip.As4()
		a.IP = append(r.ips[i][:0], b[:]...)
	} else {
		b := ip.As16()
		a.IP = append(r.ips[i][:0], b[:]...)
	}
	a.Port, a.Zone = int(src.Port()), ip.Zone()
	return a
}
