package registrar

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkdns/zkdns/internal/testutil"
)

// TestCyclesLeaveNoLeak runs one registrar through many health flaps
// (rise → registered, fall → deregistered) and several ZooKeeper session
// expiries followed by re-registration, and checks that it holds no more
// afterwards than after one cycle of each: goroutines, file descriptors,
// live heap, watches in ZooKeeper, and credentials the client re-sends on
// every reconnect. A registrar runs for months, flapping with its service
// and outliving sessions; anything a cycle leaves behind adds up.
func TestCyclesLeaveNoLeak(t *testing.T) {
	const (
		flaps    = 30
		expiries = 3
	)
	proxy := testutil.ProxyTo(t, zkServer.Addr())
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn) + "/svc"
	node := base + "/web-1"
	health, url := newHealthEndpoint(t, true)
	logs := newTailLog()
	r, err := New(Options{
		Servers:        []string{proxy.Addr()},
		SessionTimeout: time.Second, // expires soon after the proxy cuts it off
		// The client keeps the credentials and sends them again on every
		// new connection: adding them anew per registration would grow
		// that list.
		Auth:     &Auth{Credentials: "registrar:s3cret"},
		Path:     base,
		ID:       "web-1",
		Address:  "192.0.2.90",
		Port:     8080,
		Check:    url,
		Interval: 10 * time.Millisecond,
		Rise:     2,
		Fall:     2,
		Drain:    NoDrain,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLimit):
			t.Errorf("Run did not return within %v of the cancel; logs:\n%s", waitLimit, logs)
		}
	})

	// owner is the session that owns the znode; 0 while there is none.
	owner := func() int64 {
		ok, st, err := conn.Exists(node)
		if err != nil || !ok {
			return 0
		}
		return st.EphemeralOwner
	}
	flap := func() {
		t.Helper()
		registrations := logs.n("re-registered")
		health.healthy.Store(false)
		waitFor(t, "the znode deregistered", func() (bool, string) { return owner() == 0, logs.String() })
		health.healthy.Store(true)
		waitFor(t, "the znode registered again", func() (bool, string) {
			return owner() != 0 && logs.n("re-registered") > registrations, logs.String()
		})
	}
	expire := func() {
		t.Helper()
		before := owner()
		proxy.Cut()
		waitFor(t, "the znode to go with the expired session", func() (bool, string) { return owner() == 0, logs.String() })
		proxy.Restore()
		waitFor(t, "the znode registered under a new session", func() (bool, string) {
			o := owner()
			return o != 0 && o != before, logs.String()
		})
	}

	waitFor(t, "the first registration", func() (bool, string) { return owner() != 0, logs.String() })
	// One cycle of each first: whatever a cycle starts once and keeps
	// (the first reconnect, the first expiry) is in the baseline.
	flap()
	expire()
	baseline := steadyFootprint(t, owner())
	t.Logf("after one flap and one expiry: %v", baseline)

	// Heap the measurement itself and the test's bookkeeping may take:
	// far less than a ZooKeeper connection (its read buffer alone is
	// 1.5 MiB), or than a few KiB kept per cycle.
	const heapSlack = 256 << 10
	settled := func(what string) {
		t.Helper()
		session := owner()
		want := []string{node}
		bound := baseline
		bound.heap += heapSlack
		got := settle(t, session, bound, want)
		t.Logf("after %s: %v", what, got)
		if got.goroutines > baseline.goroutines || got.zk > baseline.zk {
			t.Errorf("after %s: never fewer than %d goroutines (%d in the ZooKeeper client or the registrar) in 10 s, %d (%d) after one cycle of each; "+
				"those in the client or the registrar now:\n\n%s", what, got.goroutines, got.zk, baseline.goroutines, baseline.zk,
				strings.Join(testutil.Goroutines(zkGoroutineMarks...), "\n\n"))
		}
		if got.fds > baseline.fds {
			t.Errorf("after %s: never fewer than %d open file descriptors in 10 s, %d after one cycle of each", what, got.fds, baseline.fds)
		}
		if !slices.Equal(got.watches, want) {
			t.Errorf("after %s: ZooKeeper holds watches of the registrar's session 0x%x on %v, want exactly %v",
				what, session, got.watches, want)
		}
		if got.heap > baseline.heap+heapSlack {
			t.Errorf("after %s: live heap never below %d KiB in 10 s, %d KiB after one cycle of each (slack %d KiB)",
				what, got.heap>>10, baseline.heap>>10, heapSlack>>10)
		}
	}

	for range flaps {
		flap()
	}
	settled(fmt.Sprint(flaps, " more flaps"))

	// Deregistered, the session watches nothing: deleting its znode fired
	// the watch on it.
	session := owner()
	health.healthy.Store(false)
	waitFor(t, "the znode deregistered", func() (bool, string) { return owner() == 0, logs.String() })
	waitFor(t, "no watch while deregistered", func() (bool, string) {
		w := testutil.DataWatches(t, zkServer.Addr(), session)
		return len(w) == 0, fmt.Sprintf("session %#x watches %v", session, w)
	})
	health.healthy.Store(true)
	waitFor(t, "the znode registered again", func() (bool, string) { return owner() != 0, logs.String() })

	for range expiries {
		expire()
	}
	settled(fmt.Sprint(expiries, " more expiries"))

	// The client logs how many credentials it sends again on each new
	// connection: none before Auth was added (the first connection, and
	// any reconnect before the first registration), then the one Auth,
	// whatever the sessions before.
	resent := logs.matching("re-submitting `")
	ones := resent["re-submitting `1` credentials after reconnect"]
	delete(resent, "re-submitting `0` credentials after reconnect")
	delete(resent, "re-submitting `1` credentials after reconnect")
	if ones < 1+expiries || len(resent) > 0 {
		t.Errorf("over %d expiries the client sent the one Auth again %d times, want at least %d; and other credential counts (message: times) %v, want none",
			1+expiries, ones, 1+expiries, resent)
	}
}

// tailLog is a registrar's log for a long test: it counts each message
// and keeps only the last lines, so that the log does not grow the heap
// with every cycle. It is safe for concurrent use.
type tailLog struct {
	tail  *testutil.LogTail
	mu    sync.Mutex
	count map[string]int
}

func newTailLog() *tailLog {
	return &tailLog{tail: testutil.NewLogTail(60), count: map[string]int{}}
}

func (l *tailLog) Write(p []byte) (int, error) {
	msg := msgOf(string(bytes.TrimSpace(p)))
	l.mu.Lock()
	l.count[msg]++
	l.mu.Unlock()
	return l.tail.Write(p)
}

// msgOf returns the message of a line in slog's text format.
func msgOf(line string) string {
	_, v, ok := strings.Cut(line, " msg=")
	if !ok {
		return ""
	}
	if q, err := strconv.QuotedPrefix(v); err == nil {
		s, _ := strconv.Unquote(q)
		return s
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

// n is how often msg was logged.
func (l *tailLog) n(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count[msg]
}

// matching returns the counts of the messages that start with prefix.
func (l *tailLog) matching(prefix string) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for msg, n := range l.count {
		if strings.HasPrefix(msg, prefix) {
			out[msg] = n
		}
	}
	return out
}

func (l *tailLog) String() string {
	return "(last lines)\n" + l.tail.String()
}

// footprint is what a running registrar holds, in this process and in
// ZooKeeper.
type footprint struct {
	goroutines int      // all of this process's
	zk         int      // those running ZooKeeper client or registrar code
	fds        int      // this process's open file descriptors
	watches    []string // the paths the registrar's session watches
	heap       uint64   // live heap after a collection
}

func (f footprint) String() string {
	return fmt.Sprintf("%d goroutines (%d in the ZooKeeper client or the registrar), %d fds, watches %v, live heap %d KiB",
		f.goroutines, f.zk, f.fds, f.watches, f.heap>>10)
}

// zkGoroutineMarks name the code whose goroutines a registrar runs. The
// test's own ZooKeeper session and its goroutine count too, the same
// before and after.
var zkGoroutineMarks = []string{
	"github.com/go-zookeeper/zk.",
	"github.com/zkdns/zkdns/registrar.",
	"github.com/zkdns/zkdns/internal/zkclient.",
}

func measure(t *testing.T, session int64) footprint {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("count open files: %v", err)
	}
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return footprint{
		goroutines: runtime.NumGoroutine(),
		zk:         len(testutil.Goroutines(zkGoroutineMarks...)),
		fds:        len(entries),
		watches:    testutil.DataWatches(t, zkServer.Addr(), session),
		heap:       m.HeapAlloc,
	}
}

// least returns the smaller of each count of f and g, and the watches of
// g unless f's are want.
func (f footprint) least(g footprint, want []string) footprint {
	f.goroutines = min(f.goroutines, g.goroutines)
	f.zk = min(f.zk, g.zk)
	f.fds = min(f.fds, g.fds)
	f.heap = min(f.heap, g.heap)
	if !slices.Equal(f.watches, want) {
		f.watches = g.watches
	}
	return f
}

// steadyFootprint measures for a moment and returns the least of each
// count: a health check in flight holds a connection and a goroutine or
// two for a moment.
func steadyFootprint(t *testing.T, session int64) footprint {
	t.Helper()
	f := measure(t, session)
	for range 10 {
		time.Sleep(30 * time.Millisecond)
		f = f.least(measure(t, session), nil)
	}
	return f
}

// settle measures until each count has been down to at most bound's and
// the watches have been want, or 10 s have passed, and returns the least
// of each count seen, with want if it was seen: what a cycle holds for a
// moment (a check's connection, a session probe) is not a leak, what
// stays for 10 s is.
func settle(t *testing.T, session int64, bound footprint, want []string) footprint {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	f := measure(t, session)
	for {
		if f.goroutines <= bound.goroutines && f.zk <= bound.zk && f.fds <= bound.fds && f.heap <= bound.heap &&
			slices.Equal(f.watches, want) || time.Now().After(deadline) {
			return f
		}
		time.Sleep(50 * time.Millisecond)
		f = f.least(measure(t, session), want)
	}
}
