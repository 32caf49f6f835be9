package zkclient_test

import (
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/zkdns/zkdns/internal/testutil"
	"github.com/zkdns/zkdns/internal/zkclient"
)

// watchRecorder collects what a connection with PersistentWatches reports.
type watchRecorder struct {
	mu      sync.Mutex
	events  []zk.Event
	replies []string // "op path: err"
	session chan struct{}
}

func (r *watchRecorder) event(ev zk.Event) {
	if ev.Type == zk.EventSession {
		if ev.State == zk.StateHasSession {
			select {
			case r.session <- struct{}{}:
			default:
			}
		}
		return
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *watchRecorder) reply(path string, err error) {
	r.mu.Lock()
	r.replies = append(r.replies, "addWatch "+path+": "+errString(err))
	r.mu.Unlock()
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// take returns what was recorded and forgets it.
func (r *watchRecorder) take() (events []zk.Event, replies []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	events, replies = r.events, r.replies
	r.events, r.replies = nil, nil
	return events, replies
}

// watchRecorder.awaitSession waits for the watching session to be
// (re)established.
func (r *watchRecorder) awaitSession(t *testing.T) {
	t.Helper()
	select {
	case <-r.session:
	case <-time.After(time.Minute):
		t.Fatal("no session within a minute")
	}
}

// lastConn keeps the latest connection a dialer made, to cut it.
type lastConn struct {
	mu   sync.Mutex
	conn net.Conn
}

func (l *lastConn) dialer(dial zk.Dialer) zk.Dialer {
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		c, err := dial(network, address, timeout)
		if err == nil {
			l.mu.Lock()
			l.conn = c
			l.mu.Unlock()
		}
		return c, err
	}
}

// cut closes the latest connection: the client reconnects, keeping its
// session.
func (l *lastConn) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.conn.Close()
}

// startPersistentWatching starts a ZooKeeper with a service path, and
// returns a session to write with, the path, and a session whose
// connection carries PersistentWatches and whose events and replies rec
// collects, and which conns can cut. The sessions close when the test ends.
func startPersistentWatching(t *testing.T) (writer *zk.Conn, svc string, conn *zk.Conn, pw *zkclient.PersistentWatches, rec *watchRecorder, conns *lastConn) {
	t.Helper()
	server := testutil.StartZooKeeperFor(t, testutil.ZooKeeperOptions{})
	writer = testutil.ConnectZK(t, server.Addr(), 10*time.Second)
	svc = testutil.TestRoot(t, writer) + "/svc"
	testutil.MkdirAll(t, writer, svc)
	rec = &watchRecorder{session: make(chan struct{}, 1)}
	pw = &zkclient.PersistentWatches{Reply: rec.reply}
	conns = &lastConn{}
	conn, _, err := zk.Connect([]string{server.Addr()}, 10*time.Second,
		zk.WithLogger(quiet{}),
		zk.WithEventCallback(rec.event),
		zk.WithDialer(pw.Dialer(conns.dialer(zkclient.CappedDialer(time.Second)))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	rec.awaitSession(t)
	return writer, svc, conn, pw, rec, conns
}

// watchBoth sets a persistent watch on svc, and then a child watch of the
// client's own, which keeps its mode, and returns the child watch's events.
func watchBoth(t *testing.T, conn *zk.Conn, pw *zkclient.PersistentWatches, svc string) <-chan zk.Event {
	t.Helper()
	if _, err := pw.Add(svc); err != nil {
		t.Fatal(err)
	}
	_, _, events, err := conn.ChildrenW(svc)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// TestPersistentWatches sets a persistent recursive watch through the
// client's connection on a real ZooKeeper, and checks that its events
// name the znode that changed and that the client's own requests and
// watches carry on beside it.
func TestPersistentWatches(t *testing.T) {
	writer, svc, conn, pw, rec, _ := startPersistentWatching(t)
	childEvents := watchBoth(t, conn, pw, svc)
	testutil.CreateZnode(t, writer, svc+"/a", "one", 0)
	if _, err := writer.Set(svc+"/a", []byte("two"), -1); err != nil {
		t.Fatal(err)
	}
	testutil.CreateZnode(t, writer, svc+"/a/deep", "", 0)
	if err := writer.Delete(svc+"/a/deep", -1); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-childEvents:
		if ev.Type != zk.EventNodeChildrenChanged || ev.Path != svc {
			t.Errorf("the client's own child watch fired %+v", ev)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the client's own child watch did not fire")
	}
	// The client's requests still get their own replies.
	if data, _, err := conn.Get(svc + "/a"); err != nil || string(data) != "two" {
		t.Fatalf("Get beside the persistent watch: %q, %v", data, err)
	}
	want := []zk.Event{
		{Type: zk.EventNodeCreated, Path: svc + "/a"},
		{Type: zk.EventNodeChildrenChanged, Path: svc},
		{Type: zk.EventNodeDataChanged, Path: svc + "/a"},
		{Type: zk.EventNodeCreated, Path: svc + "/a/deep"},
		{Type: zk.EventNodeDeleted, Path: svc + "/a/deep"},
	}
	events, replies := rec.take()
	if got := summarize(events); !containsInOrder(got, summarize(want)) {
		t.Errorf("events %v, want %v among them in order", got, summarize(want))
	}
	if len(replies) != 1 || replies[0] != "addWatch "+svc+": ok" {
		t.Errorf("replies %q, want one addWatch ok", replies)
	}
}

// TestPersistentWatchTakesTheChildWatchsMode shows why zkwatch sets its
// persistent watches before its child watches (see SCALING.md): the
// ZooKeeper the tests run keeps one watch mode per session and path, so a
// persistent recursive watch set after the session's child watch on a path
// silences that child watch, and a child watch set after it takes the mode
// back. Each creation is followed by a request of the watching session,
// whose reply comes after any event of that creation on the same
// connection.
func TestPersistentWatchTakesTheChildWatchsMode(t *testing.T) {
	writer, svc, conn, pw, rec, _ := startPersistentWatching(t)
	create := func(name string) {
		testutil.CreateZnode(t, writer, svc+"/"+name, "", 0)
		if _, _, err := conn.Exists(svc); err != nil {
			t.Fatal(err)
		}
	}
	namedByPersistentWatch := func(name string) bool {
		events, _ := rec.take()
		return slices.Contains(summarize(events), "EventNodeCreated "+svc+"/"+name)
	}

	_, _, before, err := conn.ChildrenW(svc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Add(svc); err != nil {
		t.Fatal(err)
	}
	create("a")
	if !namedByPersistentWatch("a") {
		t.Fatal("the persistent watch did not name the new child")
	}
	select {
	case ev := <-before:
		t.Errorf("the child watch set before the persistent watch fired (%v): this ZooKeeper keeps both modes on a path, "+
			"and zkwatch need not order its persistent watches before its child watches (see SCALING.md)", ev.Type)
	default:
	}

	_, _, after, err := conn.ChildrenW(svc)
	if err != nil {
		t.Fatal(err)
	}
	create("b")
	select {
	case <-after:
	default:
		t.Error("the child watch set after the persistent watch did not fire")
	}
	if !namedByPersistentWatch("b") {
		t.Error("the persistent watch no longer names new children once a child watch is set after it")
	}
}

// TestPersistentWatchesComeBackOnEveryConnection cuts the watching
// session's connection: the client reconnects to the same session, and
// ZooKeeper, which dropped the connection's watches with it, gets the
// persistent watch again at the handshake, before the client gives back
// its own child watch. So both name what happens next: the persistent
// watch did not silence the child watch.
func TestPersistentWatchesComeBackOnEveryConnection(t *testing.T) {
	writer, svc, conn, pw, rec, conns := startPersistentWatching(t)
	childEvents := watchBoth(t, conn, pw, svc)
	conns.cut()
	rec.awaitSession(t)
	testutil.CreateZnode(t, writer, svc+"/a", "", 0)
	select {
	case ev := <-childEvents:
		if ev.Type != zk.EventNodeChildrenChanged {
			t.Errorf("the child watch given back after the reconnect fired %v", ev.Type)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the child watch given back after the reconnect did not fire")
	}
	// A request after the creation: its reply comes after any event of it.
	if _, _, err := conn.Exists(svc); err != nil {
		t.Fatal(err)
	}
	events, replies := rec.take()
	if !slices.Contains(summarize(events), "EventNodeCreated "+svc+"/a") {
		t.Errorf("events %v after the reconnect, want the persistent watch naming %s/a", summarize(events), svc)
	}
	if want := []string{"addWatch " + svc + ": ok", "addWatch " + svc + ": ok"}; !slices.Equal(replies, want) {
		t.Errorf("replies %q, want %q: one per connection", replies, want)
	}
}

func summarize(events []zk.Event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.Type.String() + " " + ev.Path
	}
	return out
}

// containsInOrder reports whether want is a subsequence of got.
func containsInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}
