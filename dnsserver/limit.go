package dnsserver

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// connLimiter caps the TCP connections one Serve holds open. At the cap,
// a new connection replaces the idle connection that has been idle the
// longest (connected or answered earliest, with no whole query awaiting
// its answer): a flood of connections that never ask anything then only
// displaces itself, while a client that connects to ask gets in. A query
// still arriving does not make a connection busy: connections that each
// send a byte and stall would otherwise hold every place until their
// read timeout, and could keep TCP, which truncated answers need, shut
// for as long as they kept at it. When every connection has a whole query
// in hand the newcomer is closed at once. The read and idle timeouts of
// the server bound how long a connection stays busy or idle in the first
// place.
type connLimiter struct {
	max     int
	metrics *Metrics
	// clock orders activity on the connections: each accept and each
	// reply written takes the next tick. Accessed atomically.
	clock atomic.Uint64

	mu sync.Mutex
	// open holds the connections counted against max. Guarded by mu.
	open map[*limitedConn]struct{}
}

func newConnLimiter(max int, m *Metrics) *connLimiter {
	return &connLimiter{max: max, metrics: m, open: make(map[*limitedConn]struct{}, max)}
}

// wrap returns ln with every accepted connection counted against the cap.
func (l *connLimiter) wrap(ln net.Listener) net.Listener {
	return &limitedListener{Listener: ln, limiter: l}
}

// admit counts c in, making room when the cap is reached. It returns nil
// when c was closed instead.
func (l *connLimiter) admit(c net.Conn) *limitedConn {
	lc := &limitedConn{Conn: c, limiter: l}
	lc.last.Store(l.clock.Add(1))

	l.mu.Lock()
	var victim *limitedConn
	if len(l.open) >= l.max {
		victim = l.longestIdleLocked()
		if victim == nil {
			l.mu.Unlock()
			c.Close()
			l.metrics.observeShed(shedNew)
			return nil
		}
		delete(l.open, victim)
		victim.counted = false
	}
	l.open[lc] = struct{}{}
	lc.counted = true
	l.mu.Unlock()

	if victim != nil {
		// Closing the socket fails the server's pending read on it; the
		// server then closes it again through the wrapper, which finds it
		// no longer counted.
		victim.Conn.Close()
		l.metrics.observeShed(shedIdle)
	} else {
		l.metrics.tcpOpened()
	}
	return lc
}

// longestIdleLocked returns the open connection with no query in progress
// whose last activity is oldest, or nil when all are busy. l.mu is held.
func (l *connLimiter) longestIdleLocked() *limitedConn {
	var oldest *limitedConn
	var oldestTick uint64
	for c := range l.open {
		if c.busy.Load() {
			continue
		}
		if tick := c.last.Load(); oldest == nil || tick < oldestTick {
			oldest, oldestTick = c, tick
		}
	}
	return oldest
}

// release stops counting c, if it still is.
func (l *connLimiter) release(c *limitedConn) {
	l.mu.Lock()
	counted := c.counted
	if counted {
		delete(l.open, c)
		c.counted = false
	}
	l.mu.Unlock()
	if counted {
		l.metrics.tcpClosed()
	}
}

// limitedListener admits each accepted connection through its limiter.
type limitedListener struct {
	net.Listener
	limiter *connLimiter
}

// Accept returns the next connection the limiter admits; connections it
// closes at once are never returned.
func (ln *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc := ln.limiter.admit(c); lc != nil {
			return lc, nil
		}
	}
}

// limitedConn is a connection counted against the cap. It follows the
// length-prefixed messages it reads to tell when a whole query is in
// hand and not yet answered.
type limitedConn struct {
	net.Conn
	limiter *connLimiter
	busy    atomic.Bool   // a whole query has been read and not answered
	last    atomic.Uint64 // limiter tick of the accept or the last reply

	// The framing of the messages read, touched only by Read, which the
	// connection's one server goroutine calls: need is how many bytes of
	// the current message are still to come, 0 while its two-byte length
	// is; prefix holds the length's bytes read so far, have of them.
	need   int
	prefix [2]byte
	have   int

	// counted says the connection is in limiter.open. Guarded by
	// limiter.mu.
	counted bool
	once    sync.Once
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.need == 0 && c.have == 0 {
		// The server reads the next message only when it is done with
		// the last, whether it answered it or not: a message it drops
		// unanswered (empty, shorter than a header, or itself a
		// response) must not leave the connection busy, or connections
		// that each send one and wait would hold every place.
		c.busy.Store(false)
	}
	n, err := c.Conn.Read(p)
	c.follow(p[:n])
	return n, err
}

// follow moves the framing past b, the bytes just read, and marks the
// connection busy when they complete a message.
func (c *limitedConn) follow(b []byte) {
	for len(b) > 0 {
		if c.need == 0 {
			c.prefix[c.have] = b[0]
			c.have++
			b = b[1:]
			if c.have < len(c.prefix) {
				continue
			}
			c.need = int(binary.BigEndian.Uint16(c.prefix[:]))
			c.have = 0
			if c.need == 0 {
				c.busy.Store(true) // an empty message, whole
			}
			continue
		}
		k := min(len(b), c.need)
		c.need -= k
		b = b[k:]
		if c.need == 0 {
			c.busy.Store(true)
		}
	}
}

// Write writes one reply within ioTimeout. The miekg/dns server sets no
// write deadline (its WriteTimeout is never applied), so without this a
// client that stops reading once the socket buffers are full blocks the
// write forever: the connection stays busy, so the limiter can never
// make room from it, and Serve, which waits for every connection, never
// returns. A write that fails or times out closes the connection, since
// part of a reply may have gone out and whatever followed it would be
// read as garbage.
func (c *limitedConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	n, err := c.Conn.Write(p)
	if err != nil {
		_ = c.Close()
	}
	c.last.Store(c.limiter.clock.Add(1))
	c.busy.Store(false)
	return n, err
}

// Close closes the connection after dropping what the client sent that
// the server has not read: queries pipelined past MaxTCPQueries, or after
// a refusal. Closing a TCP socket with unread data makes the kernel reset
// the connection instead of closing it (RFC 2525 §2.17), and the reset
// throws away the replies still queued to be sent, so the client would
// lose answers to queries it was already counted for. With nothing
// unread, the replies go out followed by an orderly close, and the client
// asks again what was left unanswered (RFC 7766 §6.2.4).
func (c *limitedConn) Close() error {
	c.once.Do(func() {
		discardUnread(c.Conn)
		c.limiter.release(c)
	})
	return c.Conn.Close()
}

// maxDiscard bounds what discardUnread drops: thousands of pipelined
// queries, and a client sending without end cannot keep it going.
const maxDiscard = 64 << 10

// discardUnread reads and drops, without waiting, up to maxDiscard bytes
// that have arrived on conn and were not read.
func discardUnread(conn net.Conn) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var buf [4096]byte
	_ = raw.Read(func(fd uintptr) bool {
		for dropped := 0; dropped < maxDiscard; {
			n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_DONTWAIT)
			if err != nil || n <= 0 {
				break
			}
			dropped += n
		}
		return true // never wait for more
	})
}
