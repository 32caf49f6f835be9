package zkclient

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// TestRefusals plays the session states go-zookeeper reports through its
// cycles (see its Conn.loop) on a clock the test moves, and checks when
// Refusals asks for a new zk.Conn.
func TestRefusals(t *testing.T) {
	const timeout = 10 * time.Second
	var (
		connected = []zk.State{zk.StateConnecting, zk.StateConnected, zk.StateHasSession}
		refused   = []zk.State{zk.StateConnecting, zk.StateConnected, zk.StateDisconnected}
		// Nothing listens: the client cycles Connecting without ever
		// reporting Connected.
		unreachable = []zk.State{zk.StateConnecting, zk.StateConnecting}
		expired     = []zk.State{zk.StateConnecting, zk.StateConnected, zk.StateExpired, zk.StateDisconnected}
		lost        = []zk.State{zk.StateDisconnected}
	)
	type step struct {
		at     time.Duration // since the start
		states []zk.State
	}
	cases := []struct {
		name  string
		steps []step
		fires time.Duration // the step at which it fires; -1 for never
	}{
		{"refused for a session timeout after a session", []step{
			{0, connected}, {1 * time.Second, lost}, {2 * time.Second, refused},
			{7 * time.Second, refused}, {12 * time.Second, refused}, {13 * time.Second, refused},
		}, 12 * time.Second},
		{"refused, never a session", []step{
			{0, refused}, {20 * time.Second, refused}, {40 * time.Second, refused},
		}, -1},
		{"unreachable for long, then refused briefly", []step{
			{0, connected}, {1 * time.Second, lost}, {2 * time.Second, unreachable},
			{60 * time.Second, unreachable}, {61 * time.Second, refused}, {62 * time.Second, refused},
			{63 * time.Second, connected},
		}, -1},
		{"refusals end by a session", []step{
			{0, connected}, {1 * time.Second, lost}, {2 * time.Second, refused},
			{8 * time.Second, connected}, {9 * time.Second, lost}, {10 * time.Second, refused},
			{15 * time.Second, refused},
		}, -1},
		{"refusals end by an expiry answer", []step{
			{0, connected}, {1 * time.Second, lost}, {2 * time.Second, refused},
			{8 * time.Second, expired}, {15 * time.Second, refused},
		}, -1},
		{"unreachable members between refusals count", []step{
			{0, connected}, {1 * time.Second, lost}, {2 * time.Second, refused},
			{5 * time.Second, unreachable}, {9 * time.Second, unreachable}, {12 * time.Second, refused},
		}, 12 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Unix(1_000_000, 0)
			var now time.Time
			r := NewRefusals(timeout)
			r.now = func() time.Time { return now }
			fired := time.Duration(-1)
			for _, s := range tc.steps {
				now = start.Add(s.at)
				for _, st := range s.states {
					if r.Observe(st) {
						if fired >= 0 {
							t.Fatalf("fired again at %v (first at %v)", s.at, fired)
						}
						fired = s.at
					}
				}
			}
			if fired != tc.fires {
				t.Errorf("fired at %v, want %v (-1: never)", fired, tc.fires)
			}
		})
	}
}

// TestLoggerHandshakeFailed: the client's log line about a failed
// handshake gives Refusals its reason; an expiry answer, logged the same
// way, is none.
func TestLoggerHandshakeFailed(t *testing.T) {
	r := NewRefusals(time.Second)
	l := Logger{L: slog.New(slog.DiscardHandler), HandshakeFailed: r.HandshakeFailed}
	l.Printf(handshakeFailed, io.EOF)
	if _, reason := r.Refused(); !errors.Is(reason, io.EOF) {
		t.Errorf("reason = %v, want EOF", reason)
	}
	l.Printf(handshakeFailed, zk.ErrSessionExpired)
	l.Printf("recv loop terminated: %v", zk.ErrAPIError)
	if _, reason := r.Refused(); !errors.Is(reason, io.EOF) {
		t.Errorf("reason = %v after an expiry and other chatter, want EOF still", reason)
	}
}
