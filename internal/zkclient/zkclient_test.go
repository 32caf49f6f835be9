package zkclient

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"

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
