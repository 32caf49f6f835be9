package zkwatch

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdns/zkdns/internal/testutil"
)

// TestWatcherServiceAtDiscoveredPath configures a service at a path that
// is also a child of a [[discover]] root, under another name: the
// configured service is watched and follows every change, and the
// discovered twin is not created beside it (one path, one service: the
// events of a path reach one service only).
func TestWatcherServiceAtDiscoveredPath(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 5*time.Second)
	base := testutil.TestRoot(t, conn)
	testutil.CreateZnode(t, conn, base+"/services/payments/a", "192.0.2.1:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/services/orders/o", "192.0.2.9:80", zk.FlagEphemeral)
	_, rec := startWatcher(t, zkServer.Addr(), 5*time.Second, Spec{
		Services: []ServiceSpec{{Name: "pay", Path: base + "/services/payments", Format: "hostport"}},
		Discover: []DiscoverSpec{{Path: base + "/services", Format: "hostport"}},
	})
	rec.waitFor(t, "first sync", func(m map[string]ServiceState) bool {
		_, twin := m["payments"]
		return ids(m["pay"]) == "a" && ids(m["orders"]) == "o" && !twin
	})
	testutil.CreateZnode(t, conn, base+"/services/payments/b", "192.0.2.2:80", zk.FlagEphemeral)
	if err := conn.Delete(base+"/services/payments/a", -1); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "pay follows: a gone, b joined", func(m map[string]ServiceState) bool {
		_, twin := m["payments"]
		return ids(m["pay"]) == "b" && !twin
	})
}

// TestWatcherSpecChangeAndRootEventInOneStep drops configured service x
// in a reload while a child x appears under a discover root, both handled
// in one step (the run loop is held in a listing meanwhile): x must end up
// served, as the discovered service, not published as both removed and
// changed in one update (which reads as removed).
func TestWatcherSpecChangeAndRootEventInOneStep(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn)
	testutil.CreateZnode(t, conn, base+"/cfgx/c1", "192.0.2.1:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/trig/t1", "192.0.2.2:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/root/other/o1", "192.0.2.3:80", zk.FlagEphemeral)
	hold := newListingHolder(base + "/trig")
	proxyAddr := hold.proxy(t)
	trig := ServiceSpec{Name: "trig", Path: base + "/trig", Format: "hostport"}
	root := DiscoverSpec{Path: base + "/root", Format: "hostport"}
	w, rec := startWatcher(t, proxyAddr, 8*time.Second, Spec{
		Services: []ServiceSpec{{Name: "x", Path: base + "/cfgx", Format: "hostport"}, trig},
		Discover: []DiscoverSpec{root},
	})
	rec.waitFor(t, "first sync", func(m map[string]ServiceState) bool {
		return ids(m["x"]) == "c1" && ids(m["trig"]) == "t1" && ids(m["other"]) == "o1"
	})

	hold.armed.Store(true)
	testutil.CreateZnode(t, conn, base+"/trig/t2", "192.0.2.4:80", zk.FlagEphemeral)
	hold.waitHeld(t, "t2 joined trig")
	w.SetSpec(Spec{Services: []ServiceSpec{trig}, Discover: []DiscoverSpec{root}})
	testutil.CreateZnode(t, conn, base+"/root/x/i1", "192.0.2.5:80", zk.FlagEphemeral)
	// The root's child event reaches the watcher's client while the run
	// loop is held: both changes are pending for its next step.
	if _, err := conn.Sync(base + "/root"); err != nil {
		t.Fatal(err)
	}
	close(hold.release)
	rec.waitFor(t, "x served as the discovered service with i1", func(m map[string]ServiceState) bool {
		return ids(m["x"]) == "i1" && m["x"].DiscoveredBy == root.Path
	})
}

// TestWatcherRootRelistLostOnReload changes a discover root's format in a
// reload, and loses the root's re-listing with the connection: its
// services must keep serving (a lost connection keeps the last known
// set), not be published as removed until the reconnect.
func TestWatcherRootRelistLostOnReload(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn)
	testutil.CreateZnode(t, conn, base+"/root/a/i1", "192.0.2.1:80", zk.FlagEphemeral)
	drop := &listingTrap{path: base + "/root", drop: true}
	proxyAddr := drop.proxy(t)
	w, rec := startWatcher(t, proxyAddr, 8*time.Second, Spec{Discover: []DiscoverSpec{{Path: base + "/root", Format: "hostport"}}})
	rec.waitFor(t, "first sync", hasIDs("a", "i1"))
	var vanished atomic.Bool
	rec.mu.Lock()
	rec.onView = func(m map[string]ServiceState) {
		if _, ok := m["a"]; !ok {
			vanished.Store(true)
		}
	}
	rec.mu.Unlock()
	drop.armed.Store(true)
	w.SetSpec(Spec{Discover: []DiscoverSpec{{Path: base + "/root", Format: "auto"}}})
	rec.waitFor(t, "a under the new format", func(m map[string]ServiceState) bool {
		return ids(m["a"]) == "i1" && m["a"].Format == "auto"
	})
	if vanished.Load() {
		t.Error("service a was published as removed while its root's listing was lost with the connection")
	}
}

// TestWatcherDeniedRecheckPublishesNothing re-checks an instance whose
// ACL refuses zkdns: while it is still refused, its service must not be
// published again, unchanged, at every re-check.
func TestWatcherDeniedRecheckPublishesNothing(t *testing.T) {
	admin := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	if err := admin.AddAuth("digest", []byte("bob:pw")); err != nil {
		t.Fatal(err)
	}
	base := testutil.TestRoot(t, admin)
	testutil.MkdirAll(t, admin, base+"/mixed")
	if _, err := admin.Create(base+"/mixed/ok", []byte("192.0.2.4:80"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Create(base+"/mixed/locked", []byte("192.0.2.5:80"), 0, zk.DigestACL(zk.PermAll, "bob", "pw")); err != nil {
		t.Fatal(err)
	}
	sw := startSecuredWatcher(t, Options{Servers: []string{zkServer.Addr()}, SessionTimeout: 5 * time.Second},
		Spec{Services: []ServiceSpec{{Name: "mixed", Path: base + "/mixed"}}},
		func(w *Watcher) { w.access.recheck = 100 * time.Millisecond })
	sw.rec.waitFor(t, "first sync", hasIDs("mixed", "ok"))
	time.Sleep(time.Second) // about ten re-checks
	if n := sw.rec.count("mixed"); n != 1 {
		t.Errorf("service mixed published %d times; nothing changed after the first sync", n)
	}
}
