// Package zkclient holds what every ZooKeeper client in zkdns sets up the
// same way: a dialer that keeps a hung server from stalling the client
// past its session, a logger adapter for the client's chatter, Refusals,
// which tells when no server will take the session back, AwaitSession,
// for tools that must not send before there is a session, CreatePath,
// which makes the persistent znodes a registration goes under, and
// PersistentWatches, which sends the persistent recursive watches the
// client has no call for.
package zkclient

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// CappedDialer returns a dialer over TCP whose connections wait at most
// limit for a read until ZooKeeper has answered the session handshake (see
// CapHandshake).
func CappedDialer(limit time.Duration) zk.Dialer {
	return CapHandshake(func(network, address string, timeout time.Duration) (net.Conn, error) {
		return net.DialTimeout(network, address, timeout)
	}, limit)
}

// CapHandshake returns dial with every read deadline of its connections
// capped at limit from the moment it is set, until the server's answer to
// the session handshake (the connection's first frame) has been read. The
// client waits for that answer for ten read timeouts, so a server that
// accepts but hangs (stopped, in a long GC pause, or just restarted) would
// hold it long enough to lose the session; with the cap it moves on to
// the next ensemble member in time. About 2/3 of the session timeout
// works; much less causes spurious disconnects.
//
// After the handshake the client's own deadlines stand: they follow the
// session timeout the server granted, which may be longer than the one
// asked for (ZooKeeper grants at least two ticks), and a cap from the one
// asked for would cut the reads between the client's pings short and drop
// the connection again and again.
//
// The frame is counted in the bytes the client reads, so dial may return
// any connection that carries the protocol as it is, TLS included.
func CapHandshake(dial zk.Dialer, limit time.Duration) zk.Dialer {
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		c, err := dial(network, address, timeout)
		if err != nil {
			return nil, err
		}
		return &cappedConn{Conn: c, limit: limit}, nil
	}
}

type cappedConn struct {
	net.Conn
	limit time.Duration

	// handshook is set once the first frame has been read. Reads are made
	// by one goroutine at a time (the client's connect loop, then its
	// receive loop), which also keeps the counting below.
	handshook atomic.Bool
	header    [4]byte // the first frame's length, as it is read
	seen      int     // bytes of the first frame read so far, length included
}

func (c *cappedConn) SetReadDeadline(t time.Time) error {
	if c.handshook.Load() {
		return c.Conn.SetReadDeadline(t)
	}
	if latest := time.Now().Add(c.limit); t.IsZero() || t.After(latest) {
		t = latest
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *cappedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.handshook.Load() {
		c.count(p[:n])
	}
	return n, err
}

// count follows the first frame through the bytes read: a 4-byte
// big-endian length, then that many bytes.
func (c *cappedConn) count(b []byte) {
	for len(b) > 0 && c.seen < len(c.header) {
		c.header[c.seen] = b[0]
		c.seen++
		b = b[1:]
	}
	if c.seen < len(c.header) {
		return
	}
	c.seen += len(b)
	if c.seen >= len(c.header)+int(binary.BigEndian.Uint32(c.header[:])) {
		c.handshook.Store(true)
	}
}

// Logger sends the client's connection chatter to debug level: the
// session changes that matter are logged by the code using the client.
// The exception is a server that cannot be reached, or that takes the
// connection and never answers its handshake: the client retries it every
// second or so and says so only in its log, and a zkdns that
// starts with ZooKeeper down would otherwise be silent until systemd's
// start timeout. That failure is a warning: at its first occurrence,
// then at most once every connectWarnEvery per server, with the count
// of failures since; the retries in between stay at debug.
type Logger struct {
	L *slog.Logger
	// WatchesLost, when set, is called when the client reports that
	// ZooKeeper did not take a reconnected session's watches back (its
	// setWatches request failed other than by losing the connection):
	// some of them may be gone from the server, and only re-reading under
	// new watches restores them. The client reports this in its log and
	// no other way. A setWatches cut short by the connection is not
	// reported: the client sends it again on the next connection.
	WatchesLost func()

	// Warnings paces the warnings about servers that cannot be reached:
	// per server the first failure, then one a minute. A component keeps
	// one for all its sessions, so that a new session does not warn again
	// about a server the last one could not reach either. Nil leaves every
	// such failure at debug level.
	Warnings *ConnectWarnings
	// HandshakeFailed, when set, receives the error of every session
	// handshake that failed other than by an expiry answer (see
	// Refusals): the client reports these in its log and no other way.
	HandshakeFailed func(error)
}

// setWatchesFailed is the message go-zookeeper/zk v1.0.4 logs when the
// setWatches it sends after a reconnect fails. zkwatch's
// TestWatcherWatchesLostOnReconnect fails if a new client version logs
// it differently.
const setWatchesFailed = "Failed to set previous watches: %v"

// connectFailed is the message go-zookeeper/zk v1.0.4 logs each time it
// cannot dial a server: its arguments are the server and the error.
// TestLoggerConnectFailureClosedPort fails if a new client version logs
// it differently.
const connectFailed = "failed to connect to %s: %v"

// connectWarnEvery is how often one unreachable server is warned about.
const connectWarnEvery = time.Minute

// handshakeFailed is the message go-zookeeper/zk v1.0.4 logs when a
// session handshake fails. Only the reason Refusals reports depends on
// it: the refusals themselves are seen in the session states.
const handshakeFailed = "authentication failed: %s"

// Printf implements zk.Logger.
func (z Logger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	switch {
	case format == setWatchesFailed && z.WatchesLost != nil && len(args) == 1:
		if err, _ := args[0].(error); !ConnectionEnded(err) {
			z.WatchesLost()
		}
	case format == connectFailed && z.Warnings != nil && len(args) == 2:
		server := fmt.Sprint(args[0])
		if failures, warn := z.Warnings.failed(server); warn {
			z.L.Warn("cannot connect to ZooKeeper server; retrying (check that the address is right and ZooKeeper is up and reachable from here)",
				"server", server, "err", fmt.Sprint(args[1]), "failures", failures, "source", "zk-client")
			return
		}
	case format == handshakeFailed && len(args) == 1:
		// An expiry answer is logged the same way; it is no refusal.
		err, _ := args[0].(error)
		if err == nil || errors.Is(err, zk.ErrSessionExpired) {
			break
		}
		if z.HandshakeFailed != nil {
			z.HandshakeFailed(err)
		}
		// A server that accepts the connection and then says nothing
		// (stopped with SIGSTOP, in a long GC pause, a proxy in front of a
		// dead one) fails here by the read cap, not in the dial, and
		// deserves the same warning as a server that refuses.
		var ne net.Error
		var op *net.OpError
		if z.Warnings == nil || !errors.As(err, &ne) || !ne.Timeout() || !errors.As(err, &op) || op.Addr == nil {
			break
		}
		server := op.Addr.String()
		if failures, warn := z.Warnings.failed(server); warn {
			z.L.Warn("ZooKeeper server took the connection but did not answer the session handshake in time; trying the next one (is it stopped, overloaded or in a long pause?)",
				"server", server, "err", err.Error(), "failures", failures, "source", "zk-client")
			return
		}
	}
	z.L.Debug(msg, "source", "zk-client")
}

// ConnectWarnings decides which connection failures are warned about:
// per server, the first, and then the first after connectWarnEvery has
// passed since the last warning. Make one with NewConnectWarnings.
type ConnectWarnings struct {
	now func() time.Time

	// mu guards servers, which holds per server the time of the last
	// warning and the failures since it, the warned one included.
	mu      sync.Mutex
	servers map[string]*serverFailures
}

type serverFailures struct {
	warned time.Time
	count  int
}

// maxPacedServers bounds the servers remembered; past it, those not
// warned about for connectWarnEvery are forgotten (they would be warned
// about at their next failure anyway).
const maxPacedServers = 256

// NewConnectWarnings returns pacing with no failure seen yet.
func NewConnectWarnings() *ConnectWarnings { return newConnectWarnings(time.Now) }

func newConnectWarnings(now func() time.Time) *ConnectWarnings {
	return &ConnectWarnings{now: now, servers: map[string]*serverFailures{}}
}

// failed counts a failure to reach server and reports whether to warn
// about it, with the failures the warning covers: this one and those
// not warned about since the last warning.
func (p *ConnectWarnings) failed(server string) (failures int, warn bool) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.servers[server]
	if f == nil {
		if len(p.servers) >= maxPacedServers {
			for s, old := range p.servers {
				if now.Sub(old.warned) >= connectWarnEvery {
					delete(p.servers, s)
				}
			}
		}
		f = &serverFailures{}
		p.servers[server] = f
	}
	f.count++
	if !f.warned.IsZero() && now.Sub(f.warned) < connectWarnEvery {
		return f.count, false
	}
	failures = f.count
	f.warned, f.count = now, 0
	return failures, true
}

// ConnectionEnded reports whether err means a request failed because its
// connection or session ended, not because ZooKeeper refused it: the
// request may not have reached ZooKeeper, and a reconnect may cure it.
func ConnectionEnded(err error) bool {
	for _, e := range []error{zk.ErrConnectionClosed, zk.ErrNoServer, zk.ErrSessionExpired, zk.ErrSessionMoved, zk.ErrClosing} {
		if errors.Is(err, e) {
			return true
		}
	}
	// A request written to a connection that has just failed, before the
	// client noticed, fails with the socket's own error (a broken pipe, a
	// reset, a write timeout), not ErrConnectionClosed: go-zookeeper/zk
	// v1.0.4 returns a failed write as it is. The request never reached
	// ZooKeeper. ZooKeeper's own refusals are never network errors.
	var netErr net.Error
	return errors.As(err, &netErr)
}

// AwaitSession waits until conn has a session, or ctx ends (its error,
// wrapped). A tool that sends requests as soon as zk.Connect returns
// needs it: the client fails every request queued while it connects as
// soon as one connection attempt fails, as one does when a busy server
// answers the handshake after the read cap, so a first create fails with
// "could not connect to a server" where a moment later it would succeed.
// It polls State, not the event channel, whose small buffer drops what
// failed attempts fill it with.
func AwaitSession(ctx context.Context, conn *zk.Conn) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for conn.State() != zk.StateHasSession {
		select {
		case <-ctx.Done():
			return fmt.Errorf("zkclient: no ZooKeeper session yet (state %v): %w", conn.State(), ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}
