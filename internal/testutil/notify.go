package testutil

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// NotifySocket stands in for systemd: a NOTIFY_SOCKET of the test's own
// that collects the sd_notify lines sent to Path. It is closed when the
// test ends.
type NotifySocket struct {
	Path string

	conn *net.UnixConn
	done chan struct{}

	mu    sync.Mutex // guards lines
	lines []string
}

// ListenNotify opens a NotifySocket in the test's temporary directory.
// Pass its Path to zkdns as NOTIFY_SOCKET.
func ListenNotify(t testing.TB) *NotifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &NotifySocket{Path: path, conn: conn, done: make(chan struct{})}
	go func() {
		// Ends when the socket is closed at cleanup.
		defer close(n.done)
		buf := make([]byte, 4096)
		for {
			size, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.lines = append(n.lines, strings.Split(string(buf[:size]), "\n")...)
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-n.done
	})
	return n
}

// Count is how many lines have been received so far: a mark for
// StatusSince.
func (n *NotifySocket) Count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.lines)
}

// StatusSince returns the STATUS= values received after the first skip
// lines.
func (n *NotifySocket) StatusSince(skip int) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, l := range n.lines[min(skip, len(n.lines)):] {
		if s, ok := strings.CutPrefix(l, "STATUS="); ok {
			out = append(out, s)
		}
	}
	return out
}
