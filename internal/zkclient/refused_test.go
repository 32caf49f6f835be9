package zkclient

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// TestRefusals plays the session states go-zookeeper reports through its
// cycles (see its Conn.loop) on a clock the test moves, answers the
// probes Refusals asks for, and checks when it asks to renew the zk.Conn.
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
		name    string
		granted bool // what every probe finds
		steps   []step
		probes  []time.Duration // when probes are asked for
		renew   time.Duration   // when renewal is asked for; -1 for never
	}{
		{"refused for a session timeout, a new session granted", true, []step{
			{0, connected}, {1 * time.Second, lost}, {2 * time.Second, refused},
			{7 * time.Second, refused}, {12 * time.Second, refused}, {13 * time.Second, refused},
			{14 * time.Second, refused},
		}, []time.Duration{12 * time.Second}, 13 * time.Second},
		{"refused, no new session granted either (a proxy before dead servers)", false, []step{
			{0, connected}, {1 * time.Second, lost}, {2 * time.Second, refused},
			{12 * time.Second, refused}, {13 * time.Second, refused}, {20 * time.Second, refused},
			{23 * time.Second, refused}, {24 * time.Second, connected},
		}, []time.Duration{12 * time.Second, 23 * time.Second}, -1},
		{"refused, never a session", true, []step{
			{0, refused}, {20 * time.Second, refused}, {40 * time.Second, refused},
		}, nil, -1},
		{"unreachable for long, then refused briefly", true, []step{
			{0, connected}, {1 * time.Second, lost}, {2 * time.Second, unreachable},
			{60 * time.Second, unreachable}, {61 * time.Second, refused}, {62 * time.Second, refused},
			{63 * time.Second, connected},
		}, nil, -1},
		{"refusals end by a session", true, []step{
			{0, connected}, {1 * time.Second, lost}, {2 * time.Second, refused},
			{8 * time.Second, connected}, {9 * time.Second, lost}, {10 * time.Second, refused},
			{15 * time.Second, refused},
		}, nil, -1},
		{"refusals end by an expiry answer", true, []step{
			{0, connected}, {1 * time.Second, lost}, {2 * time.Second, refused},
			{8 * time.Second, expired}, {15 * time.Second, refused},
		}, nil, -1},
		{"unreachable members between refusals count", true, []step{
			{0, connected}, {1 * time.Second, lost}, {2 * time.Second, refused},
			{5 * time.Second, unreachable}, {9 * time.Second, unreachable}, {12 * time.Second, refused},
			{13 * time.Second, refused},
		}, []time.Duration{12 * time.Second}, 13 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Unix(1_000_000, 0)
			var now time.Time
			r := NewRefusals(timeout)
			r.now = func() time.Time { return now }
			var probes []time.Duration
			renew := time.Duration(-1)
			for _, s := range tc.steps {
				now = start.Add(s.at)
				for _, st := range s.states {
					switch r.Observe(st) {
					case Probe:
						probes = append(probes, s.at)
						r.Probed(tc.granted)
					case Renew:
						if renew >= 0 {
							t.Fatalf("asked to renew again at %v (first at %v)", s.at, renew)
						}
						renew = s.at
					}
				}
			}
			if !slices.Equal(probes, tc.probes) {
				t.Errorf("probes at %v, want %v", probes, tc.probes)
			}
			if renew != tc.renew {
				t.Errorf("renew at %v, want %v (-1: never)", renew, tc.renew)
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
