package registrar

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/go-zookeeper/zk"
)

// zkLogger sends the ZooKeeper client's connection chatter to debug level;
// the registrar logs the session changes that matter itself.
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) {
	z.l.Debug(fmt.Sprintf(format, args...), "source", "zk-client")
}

// cappedDialer returns a dialer whose connections never wait longer than
// limit for a read. The client waits for a server's handshake for many
// read timeouts, so a server that accepts but hangs would hold it until
// the session is lost; with the cap it moves on to the next ensemble
// member while the session can still be saved.
func cappedDialer(limit time.Duration) zk.Dialer {
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
