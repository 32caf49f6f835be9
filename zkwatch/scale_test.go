package zkwatch

// Watch hygiene at scale: thousands of create/delete cycles and spec
// changes must leave no goroutine, memory or ZooKeeper watch behind; a
// service of 10,000 instances must be listed whole; and a burst of changes
// to one service must be coalesced into few updates that touch no other
// service.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/zkdns/zkdns/internal/testutil"
)

// describe summarises a view, sorted by service: each service's instance
// ids, or only how many it has when they are too many to list.
func describe(view map[string]ServiceState) string {
	var out []string
	for name, s := range view {
		if len(s.Instances) > 20 {
			out = append(out, fmt.Sprintf("%s=%d instances", name, len(s.Instances)))
			continue
		}
		out = append(out, fmt.Sprintf("%s=[%s]", name, ids(s)))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// runScaleWatcher runs a Watcher on the shared server until the returned
// stop is called (or the test ends), and fails the test if Run does not
// return nil promptly on stop.
func runScaleWatcher(t *testing.T, spec Spec) (*Watcher, *recorder, func()) {
	t.Helper()
	view := newLightRecorder()
	w, err := New(Options{
		Servers:        []string{zkServer.Addr()},
		SessionTimeout: 10 * time.Second,
		Publish:        view.publish,
	}, spec)
	if err != nil {
		t.Fatal(err)
	}
	return w, view, runWatcher(t, w)
}

// pipelined runs f(0..n-1) on 64 goroutines, which the ZooKeeper client
// pipelines over its one connection.
func pipelined(n int, f func(i int) error) error {
	var g errgroup.Group
	g.SetLimit(64)
	for i := range n {
		g.Go(func() error { return f(i) })
	}
	return g.Wait()
}

// heapAfterGC returns the live heap after a full collection.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// settleGoroutines waits up to 10 s for the goroutine count to drop to at
// most limit, and returns the last count seen.
func settleGoroutines(limit int) int {
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= limit || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// steadyGoroutines returns the goroutine count once two samples 100 ms
// apart agree (at most 2 s), so a baseline is not taken mid-start-up.
func steadyGoroutines() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			break
		}
		n = m
	}
	return n
}

// The churn test's layout: churnServices configured services under
// base/svc, and under base/disc services that come and go.
const (
	churnServices = 10
	churnWorkers  = 8
	churnCycles   = 3000 // create/delete cycles in all
)

// TestChurnLeavesNoLeak runs thousands of create/delete cycles of
// instances and of discovered services while the spec keeps changing
// (services and the discover root dropped and added again), then settles
// on a known final state. Afterwards the watcher must show exactly that
// state, ZooKeeper must hold exactly the watches that state needs (none
// for dropped services once their paths have changed), and goroutines and
// heap must be back near where they were before the churn; stopping the
// watcher must bring goroutines back to where they were before it ran.
func TestChurnLeavesNoLeak(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 20*time.Second)
	base := testutil.TestRoot(t, conn)
	svcPath := func(i int) string { return fmt.Sprintf("%s/svc/svc-%d", base, i) }
	allServices := make([]ServiceSpec, churnServices)
	for i := range allServices {
		allServices[i] = ServiceSpec{Name: fmt.Sprintf("svc-%d", i), Path: svcPath(i), Format: "hostport"}
		testutil.MkdirAll(t, conn, svcPath(i))
	}
	testutil.MkdirAll(t, conn, base+"/disc")
	root := DiscoverSpec{Path: base + "/disc", Format: "hostport"}
	// The spec flips between these two during the churn; the final spec
	// keeps the first half and the root, and drops the second half.
	first := Spec{Services: allServices[:churnServices/2], Discover: []DiscoverSpec{root}}
	second := Spec{Services: allServices[churnServices/2:]}
	final := first

	goroutinesBefore := runtime.NumGoroutine()
	w, view, stop := runScaleWatcher(t, first)
	view.waitWithin(t, "first sync", waitLimit, func(m map[string]ServiceState) bool { return len(m) == churnServices/2 })
	goroutines0, heap0 := steadyGoroutines(), heapAfterGC()

	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	flips := make(chan int, 1)
	go func() {
		// Ends when the churn is over; SetSpec never blocks.
		n := 0
		defer func() { flips <- n }()
		for ctx.Err() == nil {
			n++
			if n%2 == 1 {
				w.SetSpec(second)
			} else {
				w.SetSpec(first)
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var g errgroup.Group
	for worker := range churnWorkers {
		g.Go(func() error {
			// Each worker owns its znode names, so its creates and deletes
			// cannot collide with another's.
			disc := fmt.Sprintf("%s/disc/d-%d", base, worker)
			for cycle := range churnCycles / churnWorkers {
				parent := svcPath((worker + cycle) % churnServices)
				if cycle%4 == 0 {
					parent = disc
					if _, err := conn.Create(disc, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
						return fmt.Errorf("create %s: %w", disc, err)
					}
				}
				p := fmt.Sprintf("%s/w%d-%d", parent, worker, cycle)
				if _, err := conn.Create(p, []byte(fmt.Sprintf("192.0.2.%d:%d", 1+worker, 1000+cycle)), 0, zk.WorldACL(zk.PermAll)); err != nil {
					return fmt.Errorf("create %s: %w", p, err)
				}
				if err := conn.Delete(p, -1); err != nil {
					return fmt.Errorf("delete %s: %w", p, err)
				}
				if parent == disc && cycle%8 == 0 {
					if err := conn.Delete(disc, -1); err != nil {
						return fmt.Errorf("delete %s: %w", disc, err)
					}
				}
			}
			return nil
		})
	}
	err := g.Wait()
	cancel()
	specFlips := <-flips
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d create/delete cycles and %d spec changes in %s", churnCycles, specFlips, time.Since(start).Round(time.Millisecond))

	// The known final state: one instance per configured service, and
	// exactly two discovered services with one instance each.
	for i := range churnServices {
		testutil.CreateZnode(t, conn, svcPath(i)+"/final", fmt.Sprintf("198.51.100.%d:80", 1+i), 0)
	}
	for worker := range churnWorkers {
		disc := fmt.Sprintf("%s/disc/d-%d", base, worker)
		if worker < 2 {
			testutil.CreateZnode(t, conn, disc+"/final", fmt.Sprintf("198.51.100.%d:80", 100+worker), 0)
		} else if err := conn.Delete(disc, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			t.Fatal(err)
		}
	}
	w.SetSpec(final)
	view.waitWithin(t, "the final state", waitLimit, func(m map[string]ServiceState) bool {
		if len(m) != churnServices/2+2 {
			return false
		}
		for _, s := range m {
			if len(s.Instances) != 1 || s.Instances[0].ID != "final" {
				return false
			}
		}
		return true
	})
	// The dropped services' watches fire once more when their paths
	// change; the watcher must not set them again.
	for i := churnServices / 2; i < churnServices; i++ {
		if _, err := conn.Set(svcPath(i)+"/final", []byte("198.51.100.200:80"), -1); err != nil {
			t.Fatal(err)
		}
		testutil.CreateZnode(t, conn, svcPath(i)+"/touch", "198.51.100.201:80", 0)
	}

	// An instance's data watch, and the persistent watch of each
	// service path watched (which wchc lists with data watches).
	var want []string
	for i := range churnServices / 2 {
		want = append(want, svcPath(i), svcPath(i)+"/final")
	}
	for worker := range 2 {
		want = append(want, fmt.Sprintf("%s/disc/d-%d", base, worker), fmt.Sprintf("%s/disc/d-%d/final", base, worker))
	}
	sort.Strings(want)
	session := w.Status().SessionID
	var watches []string
	for deadline := time.Now().Add(waitLimit); ; {
		if watches = testutil.DataWatches(t, zkServer.Addr(), session); slices.Equal(watches, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !slices.Equal(watches, want) {
		t.Errorf("ZooKeeper holds data watches of the watcher's session on\n  %s\nwant exactly\n  %s",
			strings.Join(watches, "\n  "), strings.Join(want, "\n  "))
	}

	// A few goroutines may come and go (the client's reconnect machinery,
	// timers); a leak per cycle or per spec change would be thousands.
	const goroutineSlack = 5
	goroutines1 := settleGoroutines(goroutines0 + goroutineSlack)
	// The watcher keeps per-service and per-instance state that is the
	// same before and after; a leak of even a few hundred bytes per cycle
	// would exceed this.
	const heapSlack = 1 << 20
	heap1 := heapAfterGC()
	t.Logf("goroutines %d before the churn, %d after (slack %d); heap %d KiB before, %d KiB after (slack %d KiB)",
		goroutines0, goroutines1, goroutineSlack, heap0>>10, heap1>>10, heapSlack>>10)
	if goroutines1 > goroutines0+goroutineSlack {
		t.Errorf("goroutines grew from %d to %d over the churn", goroutines0, goroutines1)
	}
	if heap1 > heap0+heapSlack {
		t.Errorf("live heap grew from %d KiB to %d KiB over the churn", heap0>>10, heap1>>10)
	}

	stop()
	if n := settleGoroutines(goroutinesBefore); n > goroutinesBefore {
		t.Errorf("%d goroutines after the watcher stopped, %d before it ran", n, goroutinesBefore)
	}
}

// largeChildren is the size of the large child list; with names of ~100
// bytes its listing is over 1 MiB, past what a client limited to ZooKeeper's
// own 1 MiB default (jute.maxbuffer) accepts.
const largeChildren = 10_000

// TestLargeChildList lists a service of 10,000 instances whole, and
// follows them all leaving at once when their owner's session closes.
func TestLargeChildList(t *testing.T) {
	owner, _, err := zk.Connect([]string{zkServer.Addr()}, 20*time.Second, zk.WithLogger(log.New(io.Discard, "", 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	base := testutil.TestRoot(t, owner)
	testutil.MkdirAll(t, owner, base+"/big")
	padding := strings.Repeat("x", 90)
	start := time.Now()
	if err := pipelined(largeChildren, func(i int) error {
		p := fmt.Sprintf("%s/big/i%05d-%s", base, i, padding)
		data := fmt.Sprintf("192.0.2.%d:%d", 1+i%250, 1024+i)
		_, err := owner.Create(p, []byte(data), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("created %d instances in %s", largeChildren, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	_, view, _ := runScaleWatcher(t, Spec{Services: []ServiceSpec{{Name: "big", Path: base + "/big", Format: "hostport"}}})
	view.waitWithin(t, "every instance listed", time.Minute, func(m map[string]ServiceState) bool {
		return len(m["big"].Instances) == largeChildren
	})
	t.Logf("the watcher listed all %d in %s", largeChildren, time.Since(start).Round(time.Millisecond))
	view.mu.Lock()
	big := view.services["big"]
	view.mu.Unlock()
	if big.Invalid != 0 {
		t.Errorf("%d instances did not decode", big.Invalid)
	}
	if in := big.Instances[largeChildren-1]; in.Port != 1024+largeChildren-1 || in.Address != fmt.Sprintf("192.0.2.%d", 1+(largeChildren-1)%250) {
		t.Errorf("last instance = %+v, want its own address and port", in)
	}

	before := view.count("big")
	owner.Close() // the server deletes all 10,000 ephemerals at once
	view.waitWithin(t, "every instance gone", time.Minute, func(m map[string]ServiceState) bool {
		return len(m["big"].Instances) == 0
	})
	updates := view.count("big") - before
	t.Logf("%d departures published in %d updates", largeChildren, updates)
	if updates > largeChildren/10 {
		t.Errorf("%d departures took %d updates, want them coalesced into far fewer", largeChildren, updates)
	}
}

// TestEventStormCoalesced changes every instance of one service, and adds
// as many again, in one burst: the watcher must publish far fewer updates
// than there were changes, end with the right state, and never re-publish
// the other service.
func TestEventStormCoalesced(t *testing.T) {
	const instances = 500
	conn := testutil.ConnectZK(t, zkServer.Addr(), 20*time.Second)
	base := testutil.TestRoot(t, conn)
	testutil.MkdirAll(t, conn, base+"/storm")
	testutil.CreateZnode(t, conn, base+"/calm/c1", "198.51.100.1:80", 0)
	name := func(i int) string { return fmt.Sprintf("%s/storm/s%04d", base, i) }
	if err := pipelined(instances, func(i int) error {
		_, err := conn.Create(name(i), []byte(fmt.Sprintf("192.0.2.%d:80", 1+i%250)), 0, zk.WorldACL(zk.PermAll))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_, view, _ := runScaleWatcher(t, Spec{Services: []ServiceSpec{
		{Name: "storm", Path: base + "/storm", Format: "hostport"},
		{Name: "calm", Path: base + "/calm", Format: "hostport"},
	}})
	view.waitWithin(t, "first sync", waitLimit, func(m map[string]ServiceState) bool {
		return len(m["storm"].Instances) == instances && len(m["calm"].Instances) == 1
	})
	stormBefore, calmBefore := view.count("storm"), view.count("calm")

	// Every instance moves to port 81 (one data event each) and as many
	// new instances join, all at once.
	changes := 2 * instances
	start := time.Now()
	if err := pipelined(changes, func(i int) error {
		if i < instances {
			_, err := conn.Set(name(i), []byte(fmt.Sprintf("192.0.2.%d:81", 1+i%250)), -1)
			return err
		}
		_, err := conn.Create(name(i), []byte(fmt.Sprintf("192.0.2.%d:81", 1+i%250)), 0, zk.WorldACL(zk.PermAll))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	view.waitWithin(t, "the storm's final state", waitLimit, func(m map[string]ServiceState) bool {
		s := m["storm"]
		if len(s.Instances) != changes {
			return false
		}
		for _, in := range s.Instances {
			if in.Port != 81 {
				return false
			}
		}
		return true
	})
	updates := view.count("storm") - stormBefore
	t.Logf("%d changes in %s published in %d updates", changes, time.Since(start).Round(time.Millisecond), updates)
	if updates > changes/10 {
		t.Errorf("%d changes took %d updates, want them coalesced into far fewer", changes, updates)
	}
	if n := view.count("calm") - calmBefore; n != 0 {
		t.Errorf("the calm service was re-published %d times by changes to another service", n)
	}
}

// TestDiscoveredServiceComesBack deletes a discovered service's path and
// creates it again at once, over and over: each time the watcher must
// follow it back, though it keeps no watch on the missing path of a
// discovered service (its root's child watch covers that), and must leave
// no watch behind on the paths of services that are gone.
func TestDiscoveredServiceComesBack(t *testing.T) {
	const rounds = 50
	conn := testutil.ConnectZK(t, zkServer.Addr(), 20*time.Second)
	base := testutil.TestRoot(t, conn)
	testutil.CreateZnode(t, conn, base+"/root/back/i0", "192.0.2.1:80", 0)
	testutil.CreateZnode(t, conn, base+"/root/other/o", "192.0.2.2:80", 0)
	w, view, _ := runScaleWatcher(t, Spec{Discover: []DiscoverSpec{{Path: base + "/root", Format: "hostport"}}})
	view.waitWithin(t, "first sync", waitLimit, func(m map[string]ServiceState) bool {
		return len(m["back"].Instances) == 1 && len(m["other"].Instances) == 1
	})
	for round := 1; round <= rounds; round++ {
		prev := fmt.Sprintf("%s/root/back/i%d", base, round-1)
		next := fmt.Sprintf("%s/root/back/i%d", base, round)
		// Back to back, so the watcher may see the path missing and then
		// present again in any order of events.
		ops := []any{
			&zk.DeleteRequest{Path: prev, Version: -1},
			&zk.DeleteRequest{Path: base + "/root/back", Version: -1},
		}
		if _, err := conn.Multi(ops...); err != nil {
			t.Fatalf("round %d: delete: %v", round, err)
		}
		testutil.CreateZnode(t, conn, next, fmt.Sprintf("192.0.2.%d:80", 10+round), 0)
		want := fmt.Sprintf("i%d", round)
		view.waitWithin(t, fmt.Sprintf("round %d: the service back with %s", round, want), waitLimit, func(m map[string]ServiceState) bool {
			s := m["back"]
			return s.Exists && len(s.Instances) == 1 && s.Instances[0].ID == want
		})
	}
	if err := conn.Delete(fmt.Sprintf("%s/root/back/i%d", base, rounds), -1); err != nil {
		t.Fatal(err)
	}
	if err := conn.Delete(base+"/root/back", -1); err != nil {
		t.Fatal(err)
	}
	view.waitWithin(t, "the service gone", waitLimit, func(m map[string]ServiceState) bool {
		_, ok := m["back"]
		return !ok
	})
	// The instance's data watch and its service's persistent watch. The
	// gone service's persistent watch was taken off as it went; ZooKeeper
	// may not have read that request yet.
	want := []string{base + "/root/other", base + "/root/other/o"}
	testutil.Eventually(t, waitLimit, fmt.Sprintf("data, exists and persistent watches after the service left to be only %v", want), func() (bool, string) {
		got := testutil.DataWatches(t, zkServer.Addr(), w.Status().SessionID)
		return slices.Equal(got, want), fmt.Sprint(got)
	})
}
