package zkclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// TestLoggerWatchesLost: only a setWatches that ZooKeeper refused loses
// watches; one cut short with its connection is sent again by the client
// on the next connection, and other log lines mean nothing here.
func TestLoggerWatchesLost(t *testing.T) {
	cases := []struct {
		name   string
		format string
		args   []any
		lost   bool
	}{
		{"refused by the server", setWatchesFailed, []any{zk.ErrAPIError}, true},
		{"an error the client does not know", setWatchesFailed, []any{errors.New("zk: unknown error")}, true},
		{"connection closed", setWatchesFailed, []any{zk.ErrConnectionClosed}, false},
		{"connection closed, wrapped", setWatchesFailed, []any{fmt.Errorf("send: %w", zk.ErrConnectionClosed)}, false},
		{"client closing", setWatchesFailed, []any{zk.ErrClosing}, false},
		{"session expired", setWatchesFailed, []any{zk.ErrSessionExpired}, false},
		{"no server", setWatchesFailed, []any{zk.ErrNoServer}, false},
		{"session moved", setWatchesFailed, []any{zk.ErrSessionMoved}, false},
		// Written to a connection that had just failed: it never reached
		// ZooKeeper, and the client sends it again on the next one.
		{"socket write failed", setWatchesFailed, []any{&net.OpError{Op: "write", Net: "tcp", Err: syscall.EPIPE}}, false},
		{"other chatter", "recv loop terminated: %v", []any{zk.ErrAPIError}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lost := false
			l := Logger{L: slog.New(slog.DiscardHandler), WatchesLost: func() { lost = true }}
			l.Printf(tc.format, tc.args...)
			if lost != tc.lost {
				t.Errorf("WatchesLost called: %v, want %v", lost, tc.lost)
			}
		})
	}
	// Without a callback, logging is all it does.
	Logger{L: slog.New(slog.DiscardHandler)}.Printf(setWatchesFailed, zk.ErrAPIError)
}

// records keeps what a logger was given, for tests to look at.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *records) WithGroup(string) slog.Handler            { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}

// at returns the records of level l.
func (r *records) at(l slog.Level) []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []slog.Record
	for _, rec := range r.recs {
		if rec.Level == l {
			out = append(out, rec)
		}
	}
	return out
}

func attrs(rec slog.Record) map[string]string {
	m := map[string]string{}
	rec.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	return m
}

// closedPort returns a loopback address nothing listens on: a port just
// bound and released.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestLoggerConnectFailureClosedPort: a client that cannot reach its
// server warns once, naming the server and the error, while it keeps
// retrying at debug level; before, every failure was at debug and a
// zkdns started with ZooKeeper down logged nothing at all. The pacer's
// clock stands still, so the minute between warnings never passes.
func TestLoggerConnectFailureClosedPort(t *testing.T) {
	addr := closedPort(t)
	rec := &records{}
	frozen := time.Now()
	l := Logger{L: slog.New(rec), Warnings: newConnectWarnings(func() time.Time { return frozen })}
	conn, _, err := zk.Connect([]string{addr}, 2*time.Second, zk.WithLogger(l))
	if err != nil {
		t.Fatalf("zk.Connect: %v", err)
	}
	// testutil.Eventually's loop; testutil imports this package.
	for deadline := time.Now().Add(30 * time.Second); len(rec.at(slog.LevelDebug))+len(rec.at(slog.LevelWarn)) < 3; {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for three failed connection attempts")
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn.Close()

	warns := rec.at(slog.LevelWarn)
	if len(warns) != 1 {
		t.Fatalf("%d warnings for one unreachable server within a minute, want 1: %v", len(warns), warns)
	}
	a := attrs(warns[0])
	if a["server"] != addr || !strings.Contains(a["err"], "connection refused") || a["failures"] != "1" {
		t.Errorf("warning %q %v: want server=%s, err naming the refusal, failures=1", warns[0].Message, a, addr)
	}
	for _, d := range rec.at(slog.LevelDebug) {
		if strings.HasPrefix(d.Message, "failed to connect to "+addr) {
			return
		}
	}
	t.Errorf("the retries after the warning are not logged at debug: %v", rec.at(slog.LevelDebug))
}

// TestFailurePacer: per server, the first failure is warned about, then
// the first after a minute has passed since the last warning, with the
// failures in between counted.
func TestFailurePacer(t *testing.T) {
	type step struct {
		after  time.Duration // since the previous step
		server string
		warn   bool
		count  int // failures reported when warn
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"first failure warns", []step{{0, "a:2181", true, 1}}},
		{"retries within the minute do not", []step{
			{0, "a:2181", true, 1}, {time.Second, "a:2181", false, 0}, {58 * time.Second, "a:2181", false, 0},
		}},
		{"a minute later warns with the count", []step{
			{0, "a:2181", true, 1}, {time.Second, "a:2181", false, 0}, {time.Second, "a:2181", false, 0},
			{58 * time.Second, "a:2181", true, 3}, {time.Second, "a:2181", false, 0},
		}},
		{"each server its own", []step{
			{0, "a:2181", true, 1}, {time.Second, "b:2181", true, 1}, {time.Second, "a:2181", false, 0}, {time.Second, "b:2181", false, 0},
		}},
		{"a new outage long after warns at once", []step{
			{0, "a:2181", true, 1}, {time.Hour, "a:2181", true, 1},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			p := newConnectWarnings(func() time.Time { return now })
			for i, s := range tc.steps {
				now = now.Add(s.after)
				count, warn := p.failed(s.server)
				if warn != s.warn || (warn && count != s.count) {
					t.Errorf("step %d (%s): warn %v with %d failures, want warn %v with %d", i, s.server, warn, count, s.warn, s.count)
				}
			}
		})
	}
}

// TestLoggerChatterStaysDebug: nothing else the client says is raised
// above debug.
func TestLoggerChatterStaysDebug(t *testing.T) {
	rec := &records{}
	l := Logger{L: slog.New(rec), Warnings: newConnectWarnings(time.Now)}
	l.Printf("connected to %s", "192.0.2.1:2181")
	l.Printf("authentication failed: %s", zk.ErrConnectionClosed)
	l.Printf("recv loop terminated: %v", io.EOF)
	if n := len(rec.at(slog.LevelDebug)); n != 3 || len(rec.recs) != 3 {
		t.Errorf("records %v: want three at debug", rec.recs)
	}
}
