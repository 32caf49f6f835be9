package testutil

import (
	"context"
	"errors"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/zkdns/zkdns/internal/zkclient"
)

type discardZKLogger struct{}

func (discardZKLogger) Printf(string, ...any) {}

// sessionWait bounds how long ConnectZK waits for a session: a JVM that
// has just started, on a host busy with other test packages, may take
// seconds to set up its first one.
const sessionWait = 30 * time.Second

// ConnectZK opens a client session to addr (comma-separated for several
// servers) that is closed when the test ends, and returns once the session
// is set up (see zkclient.AwaitSession). The client's connection chatter
// is discarded.
func ConnectZK(t testing.TB, addr string, sessionTimeout time.Duration) *zk.Conn {
	t.Helper()
	conn, _, err := zk.Connect(strings.Split(addr, ","), sessionTimeout, zk.WithLogger(discardZKLogger{}),
		zk.WithDialer(zkclient.CappedDialer(sessionTimeout*2/3)))
	if err != nil {
		t.Fatalf("connect to ZooKeeper %s: %v", addr, err)
	}
	t.Cleanup(conn.Close)
	ctx, cancel := context.WithTimeout(context.Background(), sessionWait)
	defer cancel()
	if err := zkclient.AwaitSession(ctx, conn); err != nil {
		t.Fatalf("connect to ZooKeeper %s: %v", addr, err)
	}
	return conn
}

// MkdirAll creates p and its missing parents as persistent znodes.
func MkdirAll(t testing.TB, conn *zk.Conn, p string) {
	t.Helper()
	if err := zkclient.CreatePath(conn, p); err != nil {
		t.Fatal(err)
	}
}

// CreateZnode creates p holding data with the given flags (0, or
// zk.FlagEphemeral), and its missing parents as persistent znodes.
func CreateZnode(t testing.TB, conn *zk.Conn, p, data string, flags int32) {
	t.Helper()
	MkdirAll(t, conn, path.Dir(p))
	if _, err := conn.Create(p, []byte(data), flags, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
}

// TestRoot returns /<test name>, the znode under which a test keeps its
// znodes, after deleting whatever an earlier run of the same test left
// there: a package's tests share one ZooKeeper, and go test -count=N runs
// each test N times against it. conn deletes, so a test whose znodes have
// restrictive ACLs passes a session holding the credentials they need.
func TestRoot(t testing.TB, conn *zk.Conn) string {
	t.Helper()
	root := "/" + t.Name()
	if err := deleteTree(conn, root); err != nil {
		t.Fatalf("clear %s left by an earlier run: %v", root, err)
	}
	return root
}

// deleteTree deletes p and everything under it; a missing p is no error.
func deleteTree(conn *zk.Conn, p string) error {
	children, _, err := conn.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := deleteTree(conn, path.Join(p, c)); err != nil {
			return err
		}
	}
	if err := conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	return nil
}
