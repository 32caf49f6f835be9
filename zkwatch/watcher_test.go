package zkwatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdns/zkdns/internal/testutil"
)

var zkServer *testutil.ZooKeeper

func TestMain(m *testing.M) {
	os.Exit(testutil.MainWithZooKeeper(m, &zkServer))
}

// waitLimit bounds every wait for an expected change; changes normally
// arrive within milliseconds.
const waitLimit = 15 * time.Second

// recorder applies published updates the way the daemon does and keeps
// every update, so tests can assert on the whole history; a light one
// keeps only the current view and how many updates carried each service,
// so its memory stays flat however many updates arrive.
type recorder struct {
	mu        sync.Mutex
	services  map[string]ServiceState
	synced    bool
	light     bool
	updates   []Update       // every update, unless light
	published map[string]int // service name → updates that carried it
	changed   chan struct{}
	// onView, if set, sees every view after an update, under mu.
	onView func(map[string]ServiceState)
}

func newRecorder() *recorder {
	return &recorder{services: map[string]ServiceState{}, published: map[string]int{}, changed: make(chan struct{}, 1)}
}

func newLightRecorder() *recorder {
	r := newRecorder()
	r.light = true
	return r
}

// count returns how many updates have carried service name so far.
func (r *recorder) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.published[name]
}

func (r *recorder) publish(u Update) {
	r.mu.Lock()
	if u.Full {
		r.services = map[string]ServiceState{}
	}
	for _, s := range u.Services {
		r.services[s.Name] = s
		r.published[s.Name]++
	}
	for _, n := range u.Removed {
		delete(r.services, n)
	}
	r.synced = r.synced || u.Synced
	if !r.light {
		r.updates = append(r.updates, u)
	}
	if r.onView != nil {
		r.onView(r.services)
	}
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds for the current view.
func (r *recorder) waitFor(t *testing.T, what string, cond func(map[string]ServiceState) bool) {
	t.Helper()
	r.waitWithin(t, what, waitLimit, cond)
}

// waitWithin waits up to limit until cond holds for the synced view.
func (r *recorder) waitWithin(t *testing.T, what string, limit time.Duration, cond func(map[string]ServiceState) bool) {
	t.Helper()
	deadline := time.After(limit)
	for {
		r.mu.Lock()
		ok := r.synced && cond(r.services)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("timed out after %s waiting for %s; view: %s", limit, what, describe(r.services))
		}
	}
}

func ids(s ServiceState) string {
	var out []string
	for _, in := range s.Instances {
		mark := ""
		if !in.Healthy {
			mark = "(unhealthy)"
		}
		out = append(out, in.ID+mark)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func hasIDs(name, want string) func(map[string]ServiceState) bool {
	return func(m map[string]ServiceState) bool {
		s, ok := m[name]
		return ok && ids(s) == want
	}
}

func startWatcher(t *testing.T, addr string, timeout time.Duration, spec Spec) (*Watcher, *recorder) {
	t.Helper()
	rec := newRecorder()
	w, err := New(Options{
		Servers:        []string{addr},
		SessionTimeout: timeout,
		Publish:        rec.publish,
	}, spec)
	if err != nil {
		t.Fatal(err)
	}
	runWatcher(t, w)
	return w, rec
}

// runWatcher runs w until the returned stop is called or the test ends,
// and fails the test if Run does not return nil within waitLimit of the
// stop. stop may be called more than once.
func runWatcher(t *testing.T, w *Watcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v after cancel, want nil", err)
				}
			case <-time.After(waitLimit):
				t.Errorf("Run did not return within %s of cancel", waitLimit)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func serverset(status string) string {
	return `{"serviceEndpoint":{"host":"192.0.2.7","port":31010},"additionalEndpoints":{},"status":"` + status + `"}`
}

// TestWatcherFollowsInstances makes each kind of change and checks that
// it is published, once: a deletion is published from the instance's own
// watch, and the child event that follows re-lists the service, finds
// nothing new and publishes nothing. A change to a third service after
// each step marks when the step's events are all handled, as events are
// handled in the order they arrive.
func TestWatcherFollowsInstances(t *testing.T) {
	owner := testutil.ConnectZK(t, zkServer.Addr(), 5*time.Second)
	base := testutil.TestRoot(t, owner)
	testutil.CreateZnode(t, owner, base+"/hp/a", "192.0.2.1:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, owner, base+"/ss/member_0000000001", serverset("ALIVE"), zk.FlagEphemeral)
	testutil.CreateZnode(t, owner, base+"/marks/start", "192.0.2.9:80", zk.FlagEphemeral)

	_, rec := startWatcher(t, zkServer.Addr(), 5*time.Second, Spec{Services: []ServiceSpec{
		{Name: "hp", Path: base + "/hp", Format: "hostport"},
		{Name: "ss", Path: base + "/ss", Format: "auto"},
		{Name: "marks", Path: base + "/marks", Format: "hostport"},
	}})
	rec.waitFor(t, "first sync", hasIDs("hp", "a"))

	steps := []struct {
		name    string
		act     func()
		service string
		want    string
	}{
		{"instance joins", func() { testutil.CreateZnode(t, owner, base+"/hp/b", "192.0.2.2:80", zk.FlagEphemeral) }, "hp", "a,b"},
		{"instance leaves", func() {
			if err := owner.Delete(base+"/hp/a", -1); err != nil {
				t.Fatal(err)
			}
		}, "hp", "b"},
		{"status turns STOPPING", func() {
			if _, err := owner.Set(base+"/ss/member_0000000001", []byte(serverset("STOPPING")), -1); err != nil {
				t.Fatal(err)
			}
		}, "ss", "member_0000000001(unhealthy)"},
		{"status back to ALIVE", func() {
			if _, err := owner.Set(base+"/ss/member_0000000001", []byte(serverset("ALIVE")), -1); err != nil {
				t.Fatal(err)
			}
		}, "ss", "member_0000000001"},
		{"bad payload is skipped and counted", func() {
			testutil.CreateZnode(t, owner, base+"/hp/bad", "not an address", zk.FlagEphemeral)
		}, "hp", "b"},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := rec.count(st.service)
			st.act()
			rec.waitFor(t, st.name, hasIDs(st.service, st.want))
			mark := fmt.Sprintf("m%d", i)
			testutil.CreateZnode(t, owner, base+"/marks/"+mark, "192.0.2.9:80", zk.FlagEphemeral)
			rec.waitFor(t, "mark "+mark, func(m map[string]ServiceState) bool { return strings.Contains(ids(m["marks"]), mark) })
			if n := rec.count(st.service) - before; n != 1 {
				t.Errorf("%s was published %d times, want once", st.service, n)
			}
		})
	}
	rec.waitFor(t, "invalid count", func(m map[string]ServiceState) bool { return m["hp"].Invalid == 1 })
	instance := rec.services["hp"].Instances[0]
	if instance.Address != "192.0.2.2" || instance.Port != 80 || instance.Format != "hostport" {
		t.Errorf("decoded instance = %+v, want 192.0.2.2:80 hostport", instance)
	}

	// Every update an event caused carries when the event arrived and when
	// its reads returned, in that order; the sync carries neither.
	rec.mu.Lock()
	defer rec.mu.Unlock()
	caused := 0
	for i, u := range rec.updates {
		switch {
		case u.EventTime.IsZero() && !u.ReadTime.IsZero():
			t.Errorf("update %d has a ReadTime but no EventTime", i)
		case u.EventTime.IsZero():
		case u.ReadTime.Before(u.EventTime) || u.ReadTime.After(time.Now()):
			t.Errorf("update %d: ReadTime %v is not between EventTime %v and now", i, u.ReadTime, u.EventTime)
		default:
			caused++
		}
		if u.Full && !u.EventTime.IsZero() {
			t.Errorf("update %d is a full sync with an EventTime", i)
		}
	}
	if caused < len(steps) {
		t.Errorf("%d updates carry event and read times, want at least one per step (%d)", caused, len(steps))
	}
}

// TestWatcherDeletionOnArrival deletes an instance while the run loop is
// idle, and then while it is busy publishing another change. Idle, the
// deletion must be applied and published by the ZooKeeper client's
// receive goroutine as the event arrives (applyDeletion), not by waking
// the loop; busy, it must wait for the loop, which then publishes it in
// order after the change it was busy with.
func TestWatcherDeletionOnArrival(t *testing.T) {
	owner := testutil.ConnectZK(t, zkServer.Addr(), 5*time.Second)
	base := testutil.TestRoot(t, owner)
	for _, id := range []string{"a", "b", "c"} {
		testutil.CreateZnode(t, owner, base+"/svc/"+id, "192.0.2.1:80", zk.FlagEphemeral)
	}
	testutil.CreateZnode(t, owner, base+"/other/x", "192.0.2.9:80", zk.FlagEphemeral)

	type published struct {
		u         Update
		onArrival bool // published from applyDeletion
	}
	rec := newRecorder()
	var (
		mu        sync.Mutex
		seen      []published
		hold      = make(chan struct{}) // closed to let a held publish go on
		held      = make(chan struct{}, 1)
		holdOther atomic.Bool
	)
	publish := func(u Update) {
		stack := make([]byte, 64<<10)
		stack = stack[:runtime.Stack(stack, false)]
		mu.Lock()
		seen = append(seen, published{u, bytes.Contains(stack, []byte("(*Watcher).applyDeletion"))})
		mu.Unlock()
		if holdOther.Load() && slices.ContainsFunc(u.Services, func(s ServiceState) bool { return s.Name == "other" }) {
			held <- struct{}{}
			<-hold
		}
		rec.publish(u)
	}
	w, err := New(Options{Servers: []string{zkServer.Addr()}, SessionTimeout: 5 * time.Second, Publish: publish}, Spec{Services: []ServiceSpec{
		{Name: "svc", Path: base + "/svc", Format: "hostport"},
		{Name: "other", Path: base + "/other", Format: "hostport"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	runWatcher(t, w)
	rec.waitFor(t, "first sync", hasIDs("svc", "a,b,c"))
	// The first sync is seen from inside the step that publishes it; the
	// loop is idle once that step lets stepMu go.
	w.stepMu.Lock()
	//lint:ignore SA2001 taking the lock is the wait; nothing runs under it
	w.stepMu.Unlock()

	// deletedBy returns whether the update that dropped id from svc was
	// published on arrival.
	deletedBy := func(id string) (onArrival, found bool) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range seen {
			for _, s := range p.u.Services {
				if s.Name == "svc" && !strings.Contains(","+ids(s)+",", ","+id+",") {
					return p.onArrival, true
				}
			}
		}
		return false, false
	}

	if err := owner.Delete(base+"/svc/a", -1); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "a gone", hasIDs("svc", "b,c"))
	if onArrival, found := deletedBy("a"); !found || !onArrival {
		t.Errorf("deletion of a while the run loop was idle: published on arrival = %v (found %v), want true", onArrival, found)
	}

	// Hold the run loop in its publish of a change to other, and delete b
	// meanwhile.
	holdOther.Store(true)
	testutil.CreateZnode(t, owner, base+"/other/y", "192.0.2.9:80", zk.FlagEphemeral)
	select {
	case <-held:
	case <-time.After(waitLimit):
		t.Fatal("the change to other was not published")
	}
	holdOther.Store(false)
	if err := owner.Delete(base+"/svc/b", -1); err != nil {
		t.Fatal(err)
	}
	// The deletion's event has arrived once a read on the watcher's own
	// session returns after it: ZooKeeper sends a session's events and
	// replies in order.
	if _, _, err := w.conn.Exists(base + "/svc"); err != nil {
		t.Fatal(err)
	}
	if _, found := deletedBy("b"); found {
		t.Error("deletion of b was published while the run loop was busy")
	}
	close(hold)
	rec.waitFor(t, "b gone", hasIDs("svc", "c"))
	if onArrival, _ := deletedBy("b"); onArrival {
		t.Error("deletion of b, which arrived while the run loop was busy, was published on arrival, not by the loop")
	}
	rec.waitFor(t, "other", hasIDs("other", "x,y"))
}

// TestWatcherNoPublishAfterRun stops the watcher while a deletion is
// being published on the client's receive goroutine: Run must wait for
// that publish before it returns, and nothing may be published after.
func TestWatcherNoPublishAfterRun(t *testing.T) {
	owner := testutil.ConnectZK(t, zkServer.Addr(), 5*time.Second)
	base := testutil.TestRoot(t, owner)
	for _, id := range []string{"a", "b"} {
		testutil.CreateZnode(t, owner, base+"/svc/"+id, "192.0.2.1:80", zk.FlagEphemeral)
	}
	rec := newRecorder()
	var (
		returned atomic.Bool // Run has returned
		late     atomic.Bool // a publish began after that
		held     = make(chan struct{})
		release  = make(chan struct{})
		once     sync.Once
	)
	publish := func(u Update) {
		if returned.Load() {
			late.Store(true)
		}
		if !u.Full && len(u.Services) == 1 && ids(u.Services[0]) == "b" {
			once.Do(func() { close(held); <-release })
		}
		rec.publish(u)
	}
	w, err := New(Options{Servers: []string{zkServer.Addr()}, SessionTimeout: 5 * time.Second, Publish: publish}, Spec{Services: []ServiceSpec{
		{Name: "svc", Path: base + "/svc", Format: "hostport"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		err := w.Run(ctx)
		returned.Store(true)
		done <- err
	}()
	rec.waitFor(t, "first sync", hasIDs("svc", "a,b"))
	if err := owner.Delete(base+"/svc/a", -1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(waitLimit):
		t.Fatal("the deletion was not published")
	}
	cancel()
	// The client's Close waits up to a second for the answer to its close
	// request, which the held receive goroutine cannot read: wait past
	// that, or Run would be held by Close alone.
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while a deletion was still being published", err)
	case <-time.After(1500 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return once the publish was done")
	}
	if late.Load() {
		t.Error("an update was published after Run returned")
	}
}

func TestWatcherOwnerSessionEnds(t *testing.T) {
	owner, _, err := zk.Connect([]string{zkServer.Addr()}, 5*time.Second, zk.WithLogger(log.New(io.Discard, "", 0)))
	if err != nil {
		t.Fatal(err)
	}
	stayer := testutil.ConnectZK(t, zkServer.Addr(), 5*time.Second)
	base := testutil.TestRoot(t, stayer)
	testutil.CreateZnode(t, owner, base+"/svc/leaving", "192.0.2.1:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, stayer, base+"/svc/staying", "192.0.2.2:80", zk.FlagEphemeral)
	_, rec := startWatcher(t, zkServer.Addr(), 5*time.Second, Spec{Services: []ServiceSpec{
		{Name: "svc", Path: base + "/svc"},
	}})
	rec.waitFor(t, "both instances", hasIDs("svc", "leaving,staying"))
	owner.Close() // a clean exit ends the session and its ephemeral znodes
	rec.waitFor(t, "owner's instance gone", hasIDs("svc", "staying"))
}

func TestWatcherPathAppearsAndVanishes(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 5*time.Second)
	base := testutil.TestRoot(t, conn)
	_, rec := startWatcher(t, zkServer.Addr(), 5*time.Second, Spec{Services: []ServiceSpec{
		{Name: "later", Path: base + "/later"},
	}})
	rec.waitFor(t, "service known but absent", func(m map[string]ServiceState) bool {
		s, ok := m["later"]
		return ok && !s.Exists && len(s.Instances) == 0
	})
	testutil.CreateZnode(t, conn, base+"/later/x", "192.0.2.9:9", zk.FlagEphemeral)
	rec.waitFor(t, "path created with an instance", func(m map[string]ServiceState) bool {
		return m["later"].Exists && ids(m["later"]) == "x"
	})
	if err := conn.Delete(base+"/later/x", -1); err != nil {
		t.Fatal(err)
	}
	if err := conn.Delete(base+"/later", -1); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "path deleted", func(m map[string]ServiceState) bool {
		s, ok := m["later"]
		return ok && !s.Exists && len(s.Instances) == 0
	})
	testutil.CreateZnode(t, conn, base+"/later/y", "192.0.2.10:9", zk.FlagEphemeral)
	rec.waitFor(t, "path re-created", hasIDs("later", "y"))
}

func TestWatcherDiscover(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 5*time.Second)
	base := testutil.TestRoot(t, conn)
	testutil.CreateZnode(t, conn, base+"/root/alpha/a1", "192.0.2.1:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/root/shadowed/s1", "192.0.2.3:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/elsewhere/s2", "192.0.2.4:80", zk.FlagEphemeral)
	_, rec := startWatcher(t, zkServer.Addr(), 5*time.Second, Spec{
		Services: []ServiceSpec{{Name: "shadowed", Path: base + "/elsewhere"}},
		Discover: []DiscoverSpec{{Path: base + "/root", Format: "hostport"}},
	})
	rec.waitFor(t, "discovered alpha", hasIDs("alpha", "a1"))
	rec.mu.Lock()
	alpha, shadowed := rec.services["alpha"], rec.services["shadowed"]
	rec.mu.Unlock()
	if alpha.DiscoveredBy != base+"/root" || alpha.Path != base+"/root/alpha" || alpha.Format != "hostport" {
		t.Errorf("alpha = %+v, want discovered under %s/root with its format", alpha.ServiceSpec, base)
	}
	if ids(shadowed) != "s2" || shadowed.DiscoveredBy != "" {
		t.Errorf("configured service must win over a discovered one of the same name; got %+v", shadowed)
	}

	testutil.CreateZnode(t, conn, base+"/root/beta/b1", "192.0.2.2:80", zk.FlagEphemeral)
	rec.waitFor(t, "beta appears", hasIDs("beta", "b1"))
	if err := conn.Delete(base+"/root/beta/b1", -1); err != nil {
		t.Fatal(err)
	}
	if err := conn.Delete(base+"/root/beta", -1); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "beta removed", func(m map[string]ServiceState) bool {
		_, ok := m["beta"]
		return !ok
	})
	if _, ok := rec.services["alpha"]; !ok {
		t.Error("alpha vanished when beta was removed")
	}
}

func TestWatcherSetSpec(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 5*time.Second)
	base := testutil.TestRoot(t, conn)
	testutil.CreateZnode(t, conn, base+"/one/i", "192.0.2.1:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/two/j", "192.0.2.2:80", zk.FlagEphemeral)
	w, rec := startWatcher(t, zkServer.Addr(), 5*time.Second, Spec{Services: []ServiceSpec{
		{Name: "one", Path: base + "/one"},
	}})
	rec.waitFor(t, "one", hasIDs("one", "i"))
	rec.mu.Lock()
	before := len(rec.updates)
	rec.mu.Unlock()

	w.SetSpec(Spec{Services: []ServiceSpec{
		{Name: "one", Path: base + "/one"},
		{Name: "two", Path: base + "/two"},
	}})
	rec.waitFor(t, "two added", hasIDs("two", "j"))
	rec.mu.Lock()
	for _, u := range rec.updates[before:] {
		for _, s := range u.Services {
			if s.Name == "one" {
				t.Errorf("unchanged service one was re-published by a spec change: %+v", u)
			}
		}
		if u.Full {
			t.Errorf("spec change published a full update: %+v", u)
		}
	}
	rec.mu.Unlock()

	w.SetSpec(Spec{Services: []ServiceSpec{{Name: "two", Path: base + "/two"}}})
	rec.waitFor(t, "one removed", func(m map[string]ServiceState) bool {
		_, ok := m["one"]
		return !ok && ids(m["two"]) == "j"
	})
	// A change under a dropped service must not bring it back.
	testutil.CreateZnode(t, conn, base+"/one/k", "192.0.2.3:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/two/l", "192.0.2.4:80", zk.FlagEphemeral)
	rec.waitFor(t, "two follows changes", hasIDs("two", "j,l"))
	if _, ok := rec.services["one"]; ok {
		t.Error("dropped service one came back after a change under its path")
	}
}

// TestWatcherSessionExpiry cuts the watcher off from a running ZooKeeper
// past its session timeout, so the server expires the session: the view
// must stay as it was while cut off, and the new session must resync and
// swap once, never showing an empty set for a service that has instances.
func TestWatcherSessionExpiry(t *testing.T) {
	// The proxy notes the opcode of every request, to check that the new
	// session syncs its server before reading from it.
	var (
		opsMu sync.Mutex
		ops   []int32
	)
	proxy, err := testutil.NewTCPProxyWith(zkServer.Addr(), testutil.ZKRelay(func(frame []byte, toServer bool, _ io.Writer) (bool, error) {
		if req, ok := testutil.ParseZKRequest(frame); ok && toServer {
			opsMu.Lock()
			ops = append(ops, req.Op)
			opsMu.Unlock()
		}
		return true, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	admin := testutil.ConnectZK(t, zkServer.Addr(), 20*time.Second)
	base := testutil.TestRoot(t, admin)
	testutil.CreateZnode(t, admin, base+"/svc/persistent", "192.0.2.1:80", 0)
	mortal, _, err := zk.Connect([]string{zkServer.Addr()}, time.Second, zk.WithLogger(log.New(io.Discard, "", 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer mortal.Close()
	testutil.CreateZnode(t, mortal, base+"/svc/mortal", "192.0.2.2:80", zk.FlagEphemeral)

	w, rec := startWatcher(t, proxy.Addr(), time.Second, Spec{Services: []ServiceSpec{{Name: "svc", Path: base + "/svc"}}})
	rec.waitFor(t, "first sync", hasIDs("svc", "mortal,persistent"))
	firstSession := w.Status().SessionID
	var emptied bool
	rec.mu.Lock()
	rec.onView = func(m map[string]ServiceState) {
		if len(m["svc"].Instances) == 0 {
			emptied = true
		}
	}
	rec.mu.Unlock()

	proxy.Cut()
	mortal.Close() // leaves while the watcher cannot see it
	testutil.CreateZnode(t, admin, base+"/svc/newcomer", "192.0.2.3:80", zk.FlagEphemeral)
	time.Sleep(3 * time.Second) // well past the 1 s session
	if st := w.Status(); st.State == zk.StateHasSession || st.DisconnectedSince.IsZero() {
		t.Errorf("status while cut off = %+v, want disconnected with a time", st)
	}
	rec.mu.Lock()
	if got := ids(rec.services["svc"]); got != "mortal,persistent" {
		t.Errorf("while cut off the view changed to %q", got)
	}
	rec.mu.Unlock()
	opsMu.Lock()
	ops = nil
	opsMu.Unlock()
	proxy.Restore()

	rec.waitFor(t, "resync after expiry", hasIDs("svc", "newcomer,persistent"))
	opsMu.Lock()
	const opSync, opExists, opGetData, opGetChildren, opGetChildren2 = 9, 3, 4, 8, 12
	var reads []int32
	for _, op := range ops {
		switch op {
		case opSync, opExists, opGetData, opGetChildren, opGetChildren2:
			reads = append(reads, op)
		}
	}
	if len(reads) == 0 || reads[0] != opSync {
		t.Errorf("requests of the new session %v (sync is %d): want a sync before the first read", reads, opSync)
	}
	opsMu.Unlock()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if emptied {
		t.Error("the service was published empty during the resync")
	}
	last := rec.updates[len(rec.updates)-1]
	if !last.Full {
		t.Errorf("last update after expiry = %+v, want one full resync", last)
	}
	if st := w.Status(); st.State != zk.StateHasSession || !st.Synced || st.SessionID == firstSession {
		t.Errorf("status after resync = %+v, want synced on a new session (old %x)", st, firstSession)
	}
}

// TestWatcherReconnectSameSession cuts the watcher off for less than its
// session timeout while instances change: it must keep its session, keep
// the view unchanged while cut off, and catch up with what changed
// through the watches the client re-sends, without a full resync.
func TestWatcherReconnectSameSession(t *testing.T) {
	proxy := testutil.ProxyTo(t, zkServer.Addr())
	c := startReconnectCase(t, proxy.Addr(), serverset("ALIVE"))

	proxy.Cut()
	if err := c.conn.Delete(c.svc+"/a", -1); err != nil {
		t.Fatal(err)
	}
	testutil.CreateZnode(t, c.conn, c.svc+"/c", "192.0.2.3:80", zk.FlagEphemeral)
	if _, err := c.conn.Set(c.svc+"/b", []byte(serverset("STOPPING")), -1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	c.rec.mu.Lock()
	if got := ids(c.rec.services["svc"]); got != "a,b" {
		t.Errorf("while cut off the view changed to %q", got)
	}
	c.rec.mu.Unlock()
	proxy.Restore()

	c.rec.waitFor(t, "changes made while cut off", hasIDs("svc", "b(unhealthy),c"))
	c.checkSession(t)
	if n := c.fullUpdates(); n != 0 {
		t.Errorf("a reconnect within the session published %d full resyncs, want none", n)
	}
}

// TestWatcherWatchesLostOnReconnect: after a reconnect within the
// session the client gives its watches back to ZooKeeper with setWatches.
// When that fails ZooKeeper holds none of them, and the client only logs
// it. zkdns must notice and re-read everything under new watches, so that
// both the changes made during the cut and the later changes to znodes
// that did not change are seen. The proxy drops the setWatches and answers
// it with an error itself, as a server refusing it would.
func TestWatcherWatchesLostOnReconnect(t *testing.T) {
	refuser := &setWatchesRefuser{}
	proxy, err := testutil.NewTCPProxyWith(zkServer.Addr(), refuser.relay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	c := startReconnectCase(t, proxy.Addr(), "192.0.2.2:80")

	refuser.refuse.Store(true)
	proxy.Cut()
	if err := c.conn.Delete(c.svc+"/a", -1); err != nil {
		t.Fatal(err)
	}
	testutil.CreateZnode(t, c.conn, c.svc+"/c", "192.0.2.3:80", zk.FlagEphemeral)
	proxy.Restore()
	c.rec.waitFor(t, "changes made while cut off", hasIDs("svc", "b,c"))
	if refuser.refused.Load() == 0 {
		t.Fatal("no setWatches was refused: the test did not test anything")
	}

	// b did not change during the cut; its watch must be armed again.
	if _, err := c.conn.Set(c.svc+"/b", []byte("192.0.2.2:81"), -1); err != nil {
		t.Fatal(err)
	}
	c.rec.waitFor(t, "a change to b after the reconnect", func(m map[string]ServiceState) bool {
		for _, in := range m["svc"].Instances {
			if in.ID == "b" {
				return in.Port == 81
			}
		}
		return false
	})
	c.checkSession(t)
	if n := c.fullUpdates(); n != 1 {
		t.Errorf("%d full resyncs after the refused setWatches, want 1", n)
	}
}

// TestWatcherReadWriteFailsAsConnectionDrops lists a service added by a
// reload in the instant the connection is dropped: the client has not
// noticed yet (its session state is still "has session"), so the listing
// is written to a socket the server has reset, and the client returns
// the socket's own error (a broken pipe), not ErrConnectionClosed. The
// listing must still be kept for the reconnect: dropped, the service
// would never be published (it was never listed), and with no watch set
// on its path no later event would bring it. The client's receive loop
// logs that the connection ended before it reports the disconnection:
// holding that log line keeps the instant open.
func TestWatcherReadWriteFailsAsConnectionDrops(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn)
	testutil.CreateZnode(t, conn, base+"/one/i", "192.0.2.1:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/two/j", "192.0.2.2:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/three/k", "192.0.2.3:80", zk.FlagEphemeral)
	var client atomic.Pointer[net.TCPConn] // the watcher's end of the proxy
	proxy, err := testutil.NewTCPProxyWith(zkServer.Addr(), func(dst io.Writer, src io.Reader, toServer bool) error {
		if c, ok := src.(*net.TCPConn); ok && toServer {
			client.Store(c)
		}
		_, err := io.Copy(dst, src)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	hold := &recvEndHolder{held: make(chan struct{}), release: make(chan struct{})}
	one := ServiceSpec{Name: "one", Path: base + "/one", Format: "hostport"}
	two := ServiceSpec{Name: "two", Path: base + "/two", Format: "hostport"}
	three := ServiceSpec{Name: "three", Path: base + "/three", Format: "hostport"}
	rec := newRecorder()
	w, err := New(Options{
		Servers:        []string{proxy.Addr()},
		SessionTimeout: 10 * time.Second,
		Publish:        rec.publish,
		Logger:         slog.New(hold),
	}, Spec{Services: []ServiceSpec{one, three}})
	if err != nil {
		t.Fatal(err)
	}
	runWatcher(t, w)
	rec.waitFor(t, "first sync", func(m map[string]ServiceState) bool { return ids(m["one"]) == "i" && ids(m["three"]) == "k" })

	hold.armed.Store(true)
	// A reset, not a close: the client's next write fails at once.
	if err := client.Load().SetLinger(0); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	select {
	case <-hold.held:
	case <-time.After(waitLimit):
		t.Fatal("the client did not report its connection reset")
	}
	if st := w.Status(); st.State != zk.StateHasSession {
		close(hold.release)
		t.Fatalf("state %v while the client's receive loop is held, want %v: the test cannot test anything", st.State, zk.StateHasSession)
	}
	// Two is listed on the reset connection; three's removal, published
	// in the same update, marks when that is done.
	w.SetSpec(Spec{Services: []ServiceSpec{one, two}})
	rec.waitFor(t, "three removed by the reload", func(m map[string]ServiceState) bool {
		_, ok := m["three"]
		return !ok
	})
	close(hold.release)
	proxy.Restore()
	rec.waitFor(t, "two listed after the reconnect", func(m map[string]ServiceState) bool {
		return ids(m["two"]) == "j" && ids(m["one"]) == "i"
	})
}

// recvEndHolder is a slog.Handler that, once armed, holds the ZooKeeper
// client's report that its receive loop ended until release is closed
// (held is closed when it is caught). It discards every record.
type recvEndHolder struct {
	armed   atomic.Bool
	held    chan struct{}
	release chan struct{}
}

func (h *recvEndHolder) Enabled(context.Context, slog.Level) bool { return true }

func (h *recvEndHolder) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "recv loop terminated") && h.armed.CompareAndSwap(true, false) {
		close(h.held)
		select {
		case <-h.release:
		case <-time.After(waitLimit):
		}
	}
	return nil
}

func (h *recvEndHolder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recvEndHolder) WithGroup(string) slog.Handler      { return h }

// reconnectCase is a watcher synced, through a proxy, to one service
// "svc" with the instances a and b, for tests that cut the proxy.
type reconnectCase struct {
	w       *Watcher
	rec     *recorder
	conn    *zk.Conn // owns the instances
	svc     string   // the service's path
	session int64    // the watcher's session after the first sync
	before  int      // updates up to the first sync
}

// startReconnectCase registers a, and b with payload b, and waits for the
// watcher's first sync through proxyAddr.
func startReconnectCase(t *testing.T, proxyAddr, b string) reconnectCase {
	t.Helper()
	c := reconnectCase{conn: testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)}
	c.svc = testutil.TestRoot(t, c.conn) + "/svc"
	testutil.CreateZnode(t, c.conn, c.svc+"/a", "192.0.2.1:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, c.conn, c.svc+"/b", b, zk.FlagEphemeral)
	c.w, c.rec = startWatcher(t, proxyAddr, 8*time.Second, Spec{Services: []ServiceSpec{{Name: "svc", Path: c.svc}}})
	c.rec.waitFor(t, "first sync", hasIDs("svc", "a,b"))
	c.session = c.w.Status().SessionID
	c.rec.mu.Lock()
	c.before = len(c.rec.updates)
	c.rec.mu.Unlock()
	return c
}

// checkSession fails t if the watcher's session changed: a short cut
// must keep it.
func (c reconnectCase) checkSession(t *testing.T) {
	t.Helper()
	if st := c.w.Status(); st.SessionID != c.session {
		t.Errorf("session changed from %x to %x; a short cut must keep it", c.session, st.SessionID)
	}
}

// fullUpdates counts the full updates published since the first sync.
func (c reconnectCase) fullUpdates() int {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	n := 0
	for _, u := range c.rec.updates[c.before:] {
		if u.Full {
			n++
		}
	}
	return n
}

// setWatchesRefuser relays ZooKeeper frames. While refuse is set, it
// keeps every setWatches request from the server and answers it itself
// with an error.
type setWatchesRefuser struct {
	refuse  atomic.Bool
	refused atomic.Int32
}

func (r *setWatchesRefuser) relay(dst io.Writer, src io.Reader, toServer bool) error {
	const (
		opSetWatches   = 101
		errSystemError = -1
	)
	return testutil.ZKRelay(func(frame []byte, toServer bool, back io.Writer) (bool, error) {
		req, ok := testutil.ParseZKRequest(frame)
		if !toServer || !ok || !r.refuse.Load() || req.Op != opSetWatches {
			return true, nil
		}
		r.refused.Add(1)
		// back is the client's connection: the reply goes back on it.
		_, err := back.Write(testutil.ZKFrame(req.Xid, int64(0), int32(errSystemError)))
		return false, err
	})(dst, src, toServer)
}

// TestWatcherInstanceRecreatedDuringListing deletes and re-creates an
// instance under the same name (a restart under a fixed ID) while the
// watcher's re-listing of its service, asked for by another instance
// joining, is on its way to ZooKeeper. The listing then shows the new
// znode under a name the watcher holds, and the old znode's deletion
// event comes after it with no child event to follow: the new instance
// must still be served, with its new data.
func TestWatcherInstanceRecreatedDuringListing(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	svc := testutil.TestRoot(t, conn) + "/svc"
	testutil.CreateZnode(t, conn, svc+"/a", "192.0.2.1:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, svc+"/b", "192.0.2.2:80", zk.FlagEphemeral)
	hold := newListingHolder(svc)
	proxyAddr := hold.proxy(t)
	_, rec := startWatcher(t, proxyAddr, 8*time.Second, Spec{Services: []ServiceSpec{{Name: "svc", Path: svc}}})
	rec.waitFor(t, "first sync", hasIDs("svc", "a,b"))

	hold.armed.Store(true)
	testutil.CreateZnode(t, conn, svc+"/c", "192.0.2.3:80", zk.FlagEphemeral)
	hold.waitHeld(t, "c joined")
	if err := conn.Delete(svc+"/a", -1); err != nil {
		t.Fatal(err)
	}
	testutil.CreateZnode(t, conn, svc+"/a", "192.0.2.1:81", zk.FlagEphemeral)
	// ZooKeeper queued the deletion's event for the watcher before it
	// answered the Delete: on the watcher's connection it comes ahead of
	// the listing's reply.
	close(hold.release)

	rec.waitFor(t, "a re-created, with its new port, beside b and c", func(m map[string]ServiceState) bool {
		if ids(m["svc"]) != "a,b,c" {
			return false
		}
		for _, in := range m["svc"].Instances {
			if in.ID == "a" {
				return in.Port == 81
			}
		}
		return false
	})
	// And it stays: the old znode's deletion must not take it away later.
	time.Sleep(500 * time.Millisecond)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if got := ids(rec.services["svc"]); got != "a,b,c" {
		t.Errorf("view = %q after the old a's deletion event, want a,b,c", got)
	}
}

// TestWatcherRecreatedWhileReaddedServiceIsListed: a reload adds a
// service again (its format changed) in the step that also handles its
// child event, and while the new service's listing is in flight an
// instance is deleted and re-created under the same name. The data watch
// set for the service replaced reports the deletion; the listing shows
// the new znode, new to the new service. That deletion is older than the
// znode listed and must not drop it afterwards, when no child event is
// left to bring it back.
func TestWatcherRecreatedWhileReaddedServiceIsListed(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn)
	svc, other := base+"/svc", base+"/other"
	testutil.CreateZnode(t, conn, svc+"/a", "192.0.2.1:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, svc+"/b", "192.0.2.2:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, other+"/x", "192.0.2.9:80", zk.FlagEphemeral)
	holdOther, holdSvc := newListingHolder(other), newListingHolder(svc)
	spec := func(format string) Spec {
		return Spec{Services: []ServiceSpec{
			{Name: "svc", Path: svc, Format: format},
			{Name: "other", Path: other, Format: "hostport"},
		}}
	}
	w, rec := startWatcher(t, proxyThrough(t, holdOther, holdSvc), 8*time.Second, spec("hostport"))
	rec.waitFor(t, "first sync", hasIDs("svc", "a,b"))

	// The run loop waits on a listing of other, so that the reload and
	// svc's child event are handled in one step.
	holdOther.armed.Store(true)
	testutil.CreateZnode(t, conn, other+"/y", "192.0.2.10:80", zk.FlagEphemeral)
	holdOther.waitHeld(t, "other/y joined")
	w.SetSpec(spec("auto"))
	testutil.CreateZnode(t, conn, svc+"/c", "192.0.2.3:80", zk.FlagEphemeral)
	waitPending(t, w, svc)
	holdSvc.armed.Store(true)
	close(holdOther.release)
	holdSvc.waitHeld(t, "the reload")

	if err := conn.Delete(svc+"/a", -1); err != nil {
		t.Fatal(err)
	}
	testutil.CreateZnode(t, conn, svc+"/a", "192.0.2.1:81", zk.FlagEphemeral)
	waitPending(t, w, svc+"/a")
	close(holdSvc.release)

	rec.waitFor(t, "a re-created, beside b and c", hasIDs("svc", "a,b,c"))
	// And it stays: the old znode's deletion must not take it away in the
	// step after.
	time.Sleep(time.Second)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if got := ids(rec.services["svc"]); got != "a,b,c" {
		t.Errorf("svc = %q after the old a's deletion event, while znode a exists; want a,b,c", got)
	}
}

// waitPending waits until an event for p waits for the run loop.
func waitPending(t *testing.T, w *Watcher, p string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		_, ok := w.pending[p]
		w.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no event pending for %s", p)
}

// TestWatcherDeletionDuringRead deletes instances while the watcher waits
// for ZooKeeper to answer its re-listing of another service: a deletion
// in a service that listing leaves alone must be published as it
// arrives, not after the listing; one in the service being listed must
// wait for the listing, whose answer then settles that service.
func TestWatcherDeletionDuringRead(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn)
	a, b := base+"/a", base+"/b"
	testutil.CreateZnode(t, conn, a+"/1", "192.0.2.1:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, a+"/2", "192.0.2.2:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, b+"/1", "192.0.2.3:80", zk.FlagEphemeral)
	hold := newListingHolder(b)
	proxyAddr := hold.proxy(t)
	_, rec := startWatcher(t, proxyAddr, 8*time.Second, Spec{Services: []ServiceSpec{
		{Name: "a", Path: a, Format: "hostport"},
		{Name: "b", Path: b, Format: "hostport"},
	}})
	rec.waitFor(t, "first sync", func(m map[string]ServiceState) bool {
		return ids(m["a"]) == "1,2" && ids(m["b"]) == "1"
	})

	hold.armed.Store(true)
	testutil.CreateZnode(t, conn, b+"/2", "192.0.2.4:80", zk.FlagEphemeral)
	hold.waitHeld(t, "b/2 joined")
	// b/1 first: its event arrives before a/1's, so it has been seen by
	// the time a/1's deletion shows.
	for _, p := range []string{b + "/1", a + "/1"} {
		if err := conn.Delete(p, -1); err != nil {
			t.Fatal(err)
		}
	}
	// Well within the hold, which lasts until release (or waitLimit).
	rec.waitWithin(t, "a/1 gone while b's listing is held", 3*time.Second, hasIDs("a", "2"))
	rec.mu.Lock()
	got := ids(rec.services["b"])
	rec.mu.Unlock()
	// b/2 was read as its persistent watch named it, before the listing.
	if got != "1,2" {
		t.Errorf("b = %q while its listing was held, want 1,2: a deletion in the service being listed must wait for the listing", got)
	}
	close(hold.release)
	rec.waitFor(t, "b settled by its listing", hasIDs("b", "2"))
}

// TestWatcherReadsANewInstanceBeforeItsListing holds every listing of a
// service while instances join it: each must be served as its service's
// persistent watch names it, one round trip after it joined, and not wait
// for the listing its child watch asks for, which then only sets the child
// watch again. That holds too for a service whose path did not exist when
// it was first listed: the exists watch set on it then took the path's
// place from the persistent watch, which must be set again before the
// path's listing. A new instance still costs two requests, the child
// watch's and the read's.
func TestWatcherReadsANewInstanceBeforeItsListing(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn)
	a, late := base+"/a", base+"/late"
	testutil.CreateZnode(t, conn, a+"/1", "192.0.2.1:80", zk.FlagEphemeral)
	holdA, holdLate := newListingHolder(a), newListingHolder(late)
	proxyAddr := proxyThrough(t, holdA, holdLate)
	sw := startSecuredWatcher(t, Options{Servers: []string{proxyAddr}, SessionTimeout: 8 * time.Second}, Spec{Services: []ServiceSpec{
		{Name: "a", Path: a, Format: "hostport"},
		{Name: "late", Path: late, Format: "hostport"},
	}}, nil)
	sw.rec.waitFor(t, "first sync", func(m map[string]ServiceState) bool {
		return ids(m["a"]) == "1" && m["late"].Instances != nil && !m["late"].Exists
	})
	if n := counterValue(t, sw.metrics.requestsByOp[opAddWatch]); n != 2 {
		t.Errorf("%v persistent watches set at the first sync, want 2: one per service path", n)
	}

	requests := func() map[string]float64 {
		out := map[string]float64{}
		for op, c := range sw.metrics.requestsByOp {
			if v := counterValue(t, c); v != 0 {
				out[op] = v
			}
		}
		return out
	}
	before := requests()
	holdA.armed.Store(true)
	testutil.CreateZnode(t, conn, a+"/2", "192.0.2.2:80", zk.FlagEphemeral)
	holdA.waitHeld(t, "a/2 joined")
	sw.rec.waitWithin(t, "a/2 served while a's listing is held", 3*time.Second, hasIDs("a", "1,2"))
	close(holdA.release)

	// The late service's path appears. Its listing runs in a step after
	// the one that lists a, and sets the persistent watch again before
	// the child watch; once it is published, every request that a/2
	// cost has been counted.
	testutil.MkdirAll(t, conn, late)
	sw.rec.waitFor(t, "late's path seen", func(m map[string]ServiceState) bool { return m["late"].Exists })
	after := requests()
	for op := range after {
		after[op] -= before[op]
		if after[op] == 0 {
			delete(after, op)
		}
	}
	// a/2: its read and a's child watch; late: its persistent watch and
	// its child watch.
	if want := map[string]float64{opChildrenWatch: 2, opGetWatch: 1, opAddWatch: 1}; !maps.Equal(after, want) {
		t.Errorf("requests for a new instance and a path that appeared: %v, want %v", after, want)
	}

	holdLate.armed.Store(true)
	testutil.CreateZnode(t, conn, late+"/1", "192.0.2.3:80", zk.FlagEphemeral)
	holdLate.waitHeld(t, "late/1 joined")
	sw.rec.waitWithin(t, "late/1 served while late's listing is held", 3*time.Second, hasIDs("late", "1"))
	close(holdLate.release)
}

// listingTrap relays ZooKeeper frames. Once armed, it catches the next
// getChildren2 request for path: with drop set it drops the connection
// with it; otherwise it holds it until release is closed, so ZooKeeper
// answers it only after whatever the test does meanwhile (held is closed
// when it is caught).
type listingTrap struct {
	armed   atomic.Bool
	path    string
	drop    bool
	held    chan struct{}
	release chan struct{}
}

func newListingHolder(path string) *listingTrap {
	return &listingTrap{path: path, held: make(chan struct{}), release: make(chan struct{})}
}

// proxy starts a proxy to the test ZooKeeper that relays through h,
// closed when the test ends, and returns its address.
func (h *listingTrap) proxy(t *testing.T) string {
	t.Helper()
	return proxyThrough(t, h)
}

// proxyThrough is proxy for several traps on one connection: the first
// armed one whose path a listing names catches it.
func proxyThrough(t *testing.T, traps ...*listingTrap) string {
	t.Helper()
	p, err := testutil.NewTCPProxyWith(zkServer.Addr(), trapListings(traps))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p.Addr()
}

// waitHeld waits until h holds the listing it was armed for, which
// what, the change the test made, should have asked for.
func (h *listingTrap) waitHeld(t *testing.T, what string) {
	t.Helper()
	select {
	case <-h.held:
	case <-time.After(waitLimit):
		t.Fatalf("no listing of %s after %s", h.path, what)
	}
}

// trapListings relays ZooKeeper frames through traps.
func trapListings(traps []*listingTrap) func(dst io.Writer, src io.Reader, toServer bool) error {
	const opGetChildren2 = 12
	return func(dst io.Writer, src io.Reader, toServer bool) error {
		return testutil.ZKRelay(func(frame []byte, toServer bool, _ io.Writer) (bool, error) {
			req, ok := testutil.ParseZKRequest(frame)
			if !toServer || !ok || req.Op != opGetChildren2 {
				return true, nil
			}
			for _, h := range traps {
				if req.Path != h.path || !h.armed.CompareAndSwap(true, false) {
					continue
				}
				if h.drop {
					return false, errors.New("connection dropped with the listing")
				}
				close(h.held)
				select {
				case <-h.release:
				case <-time.After(waitLimit):
				}
				return true, nil
			}
			return true, nil
		})(dst, src, toServer)
	}
}

// TestWatcherSpecChangeWhileDisconnected adds services while ZooKeeper
// is unreachable: they must be published at once as services with no
// instances (NODATA, never NXDOMAIN), one removed again before the
// reconnect must go, and the reconnect must list the rest, while the
// service watched all along keeps its instances throughout.
func TestWatcherSpecChangeWhileDisconnected(t *testing.T) {
	proxy := testutil.ProxyTo(t, zkServer.Addr())
	conn := testutil.ConnectZK(t, zkServer.Addr(), 20*time.Second)
	base := testutil.TestRoot(t, conn)
	testutil.CreateZnode(t, conn, base+"/one/i", "192.0.2.1:80", 0)
	testutil.CreateZnode(t, conn, base+"/two/j", "192.0.2.2:80", 0)
	one := ServiceSpec{Name: "one", Path: base + "/one"}
	two := ServiceSpec{Name: "two", Path: base + "/two"}
	three := ServiceSpec{Name: "three", Path: base + "/three"}
	w, rec := startWatcher(t, proxy.Addr(), 5*time.Second, Spec{Services: []ServiceSpec{one}})
	rec.waitFor(t, "first sync", hasIDs("one", "i"))

	proxy.Cut()
	testutil.Eventually(t, waitLimit, "the watcher sees the connection lost", func() (bool, string) {
		st := w.Status()
		return st.State != zk.StateHasSession, fmt.Sprint(st)
	})
	w.SetSpec(Spec{Services: []ServiceSpec{one, two, three}})
	rec.waitFor(t, "added services published with no instances", func(m map[string]ServiceState) bool {
		s2, ok2 := m["two"]
		s3, ok3 := m["three"]
		return ok2 && ok3 && len(s2.Instances) == 0 && !s2.Exists && len(s3.Instances) == 0 && ids(m["one"]) == "i"
	})
	w.SetSpec(Spec{Services: []ServiceSpec{one, two}})
	rec.waitFor(t, "a service removed again goes", func(m map[string]ServiceState) bool {
		_, ok3 := m["three"]
		_, ok2 := m["two"]
		return ok2 && !ok3 && ids(m["one"]) == "i"
	})

	proxy.Restore()
	rec.waitFor(t, "the added service listed after the reconnect", func(m map[string]ServiceState) bool {
		_, ok3 := m["three"]
		return ids(m["two"]) == "j" && m["two"].Exists && !ok3 && ids(m["one"]) == "i"
	})
}

// TestWatcherStartsWithAServerNameThatDoesNotResolve: a server listed by
// a name that does not resolve (".invalid" never does, RFC 6761) leaves
// the others to serve, where the client's own host provider failed the
// connection for it.
func TestWatcherStartsWithAServerNameThatDoesNotResolve(t *testing.T) {
	owner := testutil.ConnectZK(t, zkServer.Addr(), 5*time.Second)
	base := testutil.TestRoot(t, owner)
	testutil.CreateZnode(t, owner, base+"/hp/a", "192.0.2.1:80", zk.FlagEphemeral)
	rec := newRecorder()
	w, err := New(Options{
		Servers:        []string{"zk-gone.invalid:2181", zkServer.Addr()},
		SessionTimeout: 5 * time.Second,
		Publish:        rec.publish,
	}, Spec{Services: []ServiceSpec{{Name: "hp", Path: base + "/hp", Format: "hostport"}}})
	if err != nil {
		t.Fatal(err)
	}
	runWatcher(t, w)
	rec.waitFor(t, "first sync", hasIDs("hp", "a"))
}

// TestWatcherSpecChangeWhileListingHangs changes the spec while ZooKeeper
// still looks connected but does not answer the listing it asks for (a
// server that stopped, until the client's read timeout notices). A service
// removed must go at once, not after that listing; a service added whose
// listing then fails with the connection must answer NODATA, never
// NXDOMAIN, until the reconnect lists it.
func TestWatcherSpecChangeWhileListingHangs(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 20*time.Second)
	base := testutil.TestRoot(t, conn)
	for _, n := range []string{"one/i", "two/j", "three/k", "four/l"} {
		testutil.CreateZnode(t, conn, base+"/"+n, "192.0.2.1:80", 0)
	}
	spec := func(names ...string) Spec {
		var s Spec
		for _, n := range names {
			s.Services = append(s.Services, ServiceSpec{Name: n, Path: base + "/" + n})
		}
		return s
	}
	// The listing of three is held; the listing of four cuts the
	// connection and refuses new ones until Restore.
	hold := newListingHolder(base + "/three")
	var proxy *testutil.TCPProxy
	var cutArmed atomic.Bool
	p, err := testutil.NewTCPProxyWith(zkServer.Addr(), func(dst io.Writer, src io.Reader, toServer bool) error {
		const opGetChildren2 = 12
		return testutil.ZKRelay(func(frame []byte, toServer bool, _ io.Writer) (bool, error) {
			req, ok := testutil.ParseZKRequest(frame)
			if !toServer || !ok || req.Op != opGetChildren2 {
				return true, nil
			}
			switch {
			case req.Path == hold.path && hold.armed.CompareAndSwap(true, false):
				close(hold.held)
				select {
				case <-hold.release:
				case <-time.After(waitLimit):
				}
			case req.Path == base+"/four" && cutArmed.CompareAndSwap(true, false):
				proxy.Cut()
				return false, errors.New("connection cut with the listing")
			}
			return true, nil
		})(dst, src, toServer)
	})
	if err != nil {
		t.Fatal(err)
	}
	proxy = p
	t.Cleanup(func() { _ = p.Close() })

	w, rec := startWatcher(t, p.Addr(), 5*time.Second, spec("one", "two"))
	rec.waitFor(t, "first sync", func(m map[string]ServiceState) bool { return ids(m["one"]) == "i" && ids(m["two"]) == "j" })

	hold.armed.Store(true)
	w.SetSpec(spec("one", "three"))
	hold.waitHeld(t, "three added")
	// Well within the hold, which lasts until release (or waitLimit).
	rec.waitWithin(t, "two removed while three's listing is held", 3*time.Second, func(m map[string]ServiceState) bool {
		_, two := m["two"]
		return !two && ids(m["one"]) == "i"
	})
	close(hold.release)
	rec.waitFor(t, "three listed", hasIDs("three", "k"))

	cutArmed.Store(true)
	w.SetSpec(spec("one", "three", "four"))
	rec.waitFor(t, "four, whose listing failed with the connection, answers with no instances", func(m map[string]ServiceState) bool {
		s4, ok := m["four"]
		return ok && len(s4.Instances) == 0 && ids(m["one"]) == "i" && ids(m["three"]) == "k" && w.Status().State != zk.StateHasSession
	})
	p.Restore()
	rec.waitFor(t, "four listed after the reconnect", hasIDs("four", "l"))
}

// TestWatcherWarnsOfAMissingDiscoverPath: a [[discover]] path that does
// not exist serves nothing, so a typo in it would pass unnoticed; it is
// warned about once, however often it is listed, and its creation is
// logged when its services appear.
func TestWatcherWarnsOfAMissingDiscoverPath(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 5*time.Second)
	base := testutil.TestRoot(t, conn)
	logs := &testutil.LogBuffer{}
	rec := newRecorder()
	w, err := New(Options{
		Servers:        []string{zkServer.Addr()},
		SessionTimeout: 5 * time.Second,
		Publish:        rec.publish,
		Logger:         slog.New(slog.NewTextHandler(logs, nil)),
	}, Spec{
		Services: []ServiceSpec{{Name: "mark", Path: base + "/mark", Format: "hostport"}},
		Discover: []DiscoverSpec{{Path: base + "/root", Format: "hostport"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	runWatcher(t, w)
	testutil.Eventually(t, waitLimit, "the warning", func() (bool, string) {
		return strings.Contains(logs.String(), `level=WARN msg="discover path does not exist`) &&
			strings.Contains(logs.String(), "path="+base+"/root"), logs.String()
	})
	// Something else happens meanwhile: the warning stays one.
	testutil.CreateZnode(t, conn, base+"/mark/m", "192.0.2.9:80", zk.FlagEphemeral)
	rec.waitFor(t, "the marker", hasIDs("mark", "m"))
	testutil.CreateZnode(t, conn, base+"/root/svc/i", "192.0.2.1:80", zk.FlagEphemeral)
	rec.waitFor(t, "the discovered service", hasIDs("svc", "i"))
	out := logs.String()
	if n := strings.Count(out, "discover path does not exist"); n != 1 {
		t.Errorf("%d warnings about the missing path, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, `level=INFO msg="discover path exists now"`) || strings.Count(out, "path="+base+"/root") != 2 {
		t.Errorf("no line saying the path exists now:\n%s", out)
	}
}
