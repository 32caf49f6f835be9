package zkclient_test

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/zkdns/zkdns/internal/testutil"
	"github.com/zkdns/zkdns/internal/zkclient"
)

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// TestCapLeavesAGrantedTimeoutAlone asks a server with 3 s ticks for a
// 600 ms session. ZooKeeper grants at least two ticks, 6 s, and the client
// then pings every 2 s and waits up to 4 s for a reply; a cap of 2/3 of
// the 600 ms asked for, kept past the handshake, cut every wait between
// pings at 400 ms and dropped the connection again and again. The long
// ticks leave a loaded machine's ZooKeeper seconds to answer a ping.
func TestCapLeavesAGrantedTimeoutAlone(t *testing.T) {
	server := testutil.StartZooKeeperFor(t, testutil.ZooKeeperOptions{TickTime: 3 * time.Second})

	const asked = 600 * time.Millisecond
	var disconnects atomic.Int32
	session := make(chan struct{}, 1)
	conn, _, err := zk.Connect([]string{server.Addr()}, asked,
		zk.WithLogger(quiet{}),
		zk.WithDialer(zkclient.CappedDialer(asked*2/3)),
		zk.WithEventCallback(func(ev zk.Event) {
			switch ev.State {
			case zk.StateHasSession:
				select {
				case session <- struct{}{}:
				default:
				}
			case zk.StateDisconnected:
				disconnects.Add(1)
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	select {
	case <-session:
	case <-time.After(time.Minute):
		t.Fatal("no session within a minute")
	}
	// Two ping intervals of the granted session, with nothing but pings:
	// seven of the waits a kept cap would cut.
	time.Sleep(3 * time.Second)
	if _, _, err := conn.Exists("/"); err != nil {
		t.Fatalf("exists /: %v", err)
	}
	if n := disconnects.Load(); n != 0 {
		t.Errorf("the connection dropped %d times in 3 s with a granted 6 s session", n)
	}
}

// TestCapHandshakeCountsTheFirstFrame feeds a connection the first frame
// in pieces, the length split across reads: reads are capped until its
// last byte and left to the deadline asked for after it.
func TestCapHandshakeCountsTheFirstFrame(t *testing.T) {
	const limit = 50 * time.Millisecond
	client, server := net.Pipe()
	defer server.Close()
	dial := zkclient.CapHandshake(func(string, string, time.Duration) (net.Conn, error) { return client, nil }, limit)
	conn, err := dial("tcp", "zookeeper", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	capped := func(when string) {
		t.Helper()
		if err := conn.SetReadDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: a read with no deadline asked for ended by %v, want the cap's deadline", when, err)
		}
	}
	feed := func(b []byte) {
		t.Helper()
		go server.Write(b)
		if err := conn.SetReadDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(conn, make([]byte, len(b))); err != nil {
			t.Fatalf("read %d bytes: %v", len(b), err)
		}
	}

	capped("before the handshake")
	feed([]byte{0, 0})
	capped("inside the length")
	feed([]byte{0, 3, 'a', 'b'})
	capped("one byte short of the frame")
	feed([]byte{'c'})

	// Past the frame a read waits as long as asked: the peer writes after
	// several caps' time.
	go func() {
		time.Sleep(6 * limit)
		server.Write([]byte{'d'})
	}()
	if err := conn.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		t.Fatalf("after the handshake a read with a minute's deadline ended by %v", err)
	}
}

// TestLoggerWarnsOfAServerThatDoesNotAnswer connects to a stopped
// (SIGSTOP) server: the kernel takes the connection, nothing answers the
// handshake, and the read cap ends each attempt. That must warn as a
// refused connection does, naming the server, not stay at debug level.
func TestLoggerWarnsOfAServerThatDoesNotAnswer(t *testing.T) {
	server := testutil.StartZooKeeperFor(t, testutil.ZooKeeperOptions{})
	if err := server.Pause(); err != nil {
		t.Fatal(err)
	}
	defer server.Resume()

	logs := &testutil.LogBuffer{}
	const session = 900 * time.Millisecond
	conn, _, err := zk.Connect([]string{server.Addr()}, session,
		zk.WithLogger(zkclient.Logger{L: slog.New(slog.NewTextHandler(logs, nil)), Warnings: zkclient.NewConnectWarnings()}),
		zk.WithDialer(zkclient.CappedDialer(session*2/3)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	testutil.Eventually(t, 30*time.Second, "a warning about the silent server", func() (bool, string) {
		out := logs.String()
		return strings.Contains(out, "level=WARN") && strings.Contains(out, "did not answer the session handshake") &&
			strings.Contains(out, "server="+server.Addr()), out
	})
}
