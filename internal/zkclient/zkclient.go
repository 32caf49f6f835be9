// Package zkclient holds what every ZooKeeper client in zkdns sets up the
// same way: a dialer that keeps a hung server from stalling the client
// past its session, and a logger adapter for the client's chatter.
package zkclient

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/go-zookeeper/zk"
)

// CappedDialer returns a dialer whose connections never wait longer than
// limit for a read. The client waits for a server's handshake for ten read
// timeouts, so a server that accepts but hangs (stopped, in a long GC
// pause, or just restarted) would hold it long enough to lose the session;
// with the cap it moves on to the next ensemble member in time. About 2/3
// of the session timeout works; much less causes spurious disconnects.
func CappedDialer(limit time.Duration) zk.Dialer {
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		c, err := net.DialTimeout(network, address, timeout)
		if err != nil {
			return nil, err
		}
		return &cappedConn{Conn: c, limit: limit}, nil
	}
}

type cappedConn struct {
	net.Conn
	limit time.Duration
}

func (c *cappedConn) SetReadDeadline(t time.Time) error {
	if latest := time.Now().Add(c.limit); t.IsZero() || t.After(latest) {
		t = latest
	}
	return c.Conn.SetReadDeadline(t)
}

// Logger sends the client's connection chatter to debug level: the
// session changes that matter are logged by the code using the client.
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
}

// setWatchesFailed is the message go-zookeeper/zk v1.0.4 logs when the
// setWatches it sends after a reconnect fails. zkwatch's
// TestWatcherWatchesLostOnReconnect fails if a new client version logs
// it differently.
const setWatchesFailed = "Failed to set previous watches: %v"

// Printf implements zk.Logger.
func (z Logger) Printf(format string, args ...any) {
	if format == setWatchesFailed && z.WatchesLost != nil && len(args) == 1 {
		if err, _ := args[0].(error); !connectionEnded(err) {
			z.WatchesLost()
		}
	}
	z.L.Debug(fmt.Sprintf(format, args...), "source", "zk-client")
}

// connectionEnded reports whether err means a request failed because its
// connection or session ended, not because ZooKeeper refused it.
func connectionEnded(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrClosing) ||
		errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrNoServer)
}
