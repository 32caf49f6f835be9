package zkwatch

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/zkdns/zkdns/internal/testutil"
	"github.com/zkdns/zkdns/internal/zkclient"
)

// servicesCounted returns the service label of every series c exports.
func servicesCounted(t *testing.T, c prometheus.Collector) []string {
	t.Helper()
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	var out []string
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		for _, l := range d.GetLabel() {
			if l.GetName() == "service" {
				out = append(out, l.GetValue())
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestWatcherForgetsServiceMetrics holds the per-service counters
// (zkdns_zookeeper_payload_decode_errors_total and
// zkdns_zookeeper_acl_denied_total) to the services watched: a service
// that leaves, whichever way, takes its series with it, so discover roots
// whose services come and go do not export every name ever seen.
func TestWatcherForgetsServiceMetrics(t *testing.T) {
	const password = "pw-of-owner"
	admin := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	// The test's session may read the locked znodes, and so delete them.
	if err := admin.AddAuth("digest", []byte("owner:"+password)); err != nil {
		t.Fatal(err)
	}
	ownerOnly := zk.DigestACL(zk.PermAll, "owner", password)
	base := testutil.TestRoot(t, admin)

	// populate lays out parent/<name> for each name: one good instance,
	// one whose payload does not decode and one the watcher may not read.
	populate := func(t *testing.T, parent string, names ...string) {
		t.Helper()
		for i, name := range names {
			p := parent + "/" + name
			testutil.CreateZnode(t, admin, p+"/good", fmt.Sprintf("192.0.2.%d:80", i+1), 0)
			testutil.CreateZnode(t, admin, p+"/garbage", "not an address", 0)
			if _, err := admin.Create(p+"/locked", []byte("192.0.2.99:80"), 0, ownerOnly); err != nil {
				t.Fatalf("create %s/locked: %v", p, err)
			}
		}
	}
	removeTree := func(t *testing.T, p string) {
		t.Helper()
		for _, c := range []string{"good", "garbage", "locked"} {
			if err := admin.Delete(p+"/"+c, -1); err != nil {
				t.Fatalf("delete %s/%s: %v", p, c, err)
			}
		}
		if err := admin.Delete(p, -1); err != nil {
			t.Fatalf("delete %s: %v", p, err)
		}
	}

	cases := []struct {
		name     string
		discover bool // the services are discovered under dir rather than configured
		proxied  bool // the watcher reaches ZooKeeper through a proxy the test can cut
		// leave makes service gone under dir leave while stays stays.
		leave func(t *testing.T, w *Watcher, dir string, proxy *testutil.TCPProxy)
	}{
		{
			name: "configured service removed from the spec",
			leave: func(t *testing.T, w *Watcher, dir string, _ *testutil.TCPProxy) {
				w.SetSpec(Spec{Services: []ServiceSpec{{Name: "stays", Path: dir + "/stays", Format: "hostport"}}})
			},
		},
		{
			name:     "discovered service deleted",
			discover: true,
			leave: func(t *testing.T, _ *Watcher, dir string, _ *testutil.TCPProxy) {
				removeTree(t, dir+"/gone")
			},
		},
		{
			name:     "discovered service deleted while the session expired",
			discover: true,
			proxied:  true,
			leave: func(t *testing.T, w *Watcher, dir string, proxy *testutil.TCPProxy) {
				first := w.Status().SessionID
				proxy.Cut()
				removeTree(t, dir+"/gone")
				// Cut off well past its 1 s session, so that ZooKeeper
				// expires it and the watcher resyncs on a new one.
				time.Sleep(3 * time.Second)
				proxy.Restore()
				eventually(t, "a new session", func() bool {
					st := w.Status()
					return st.SessionID != 0 && st.SessionID != first
				})
			},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := fmt.Sprintf("%s/case%d", base, i)
			populate(t, dir, "gone", "stays")
			spec := Spec{Discover: []DiscoverSpec{{Path: dir, Format: "hostport"}}}
			if !tc.discover {
				spec = Spec{Services: []ServiceSpec{
					{Name: "gone", Path: dir + "/gone", Format: "hostport"},
					{Name: "stays", Path: dir + "/stays", Format: "hostport"},
				}}
			}
			addr := zkServer.Addr()
			var proxy *testutil.TCPProxy
			timeout := 5 * time.Second
			if tc.proxied {
				proxy = testutil.ProxyTo(t, addr)
				addr, timeout = proxy.Addr(), time.Second
			}
			sw := startSecuredWatcher(t, Options{Servers: []string{addr}, SessionTimeout: timeout}, spec, nil)
			both := func(m map[string]ServiceState) bool {
				return m["gone"].Invalid == 1 && m["gone"].Denied == 1 && m["stays"].Invalid == 1 && m["stays"].Denied == 1
			}
			sw.rec.waitFor(t, "both services with a bad and a refused znode", both)
			counters := map[string]prometheus.Collector{
				"zkdns_zookeeper_payload_decode_errors_total": sw.metrics.decodeErrors,
				"zkdns_zookeeper_acl_denied_total":            sw.metrics.aclDenials,
			}
			for name, c := range counters {
				if got := servicesCounted(t, c); !slices.Equal(got, []string{"gone", "stays"}) {
					t.Fatalf("%s has series for %q before, want gone and stays", name, got)
				}
			}

			tc.leave(t, sw.w, dir, proxy)
			sw.rec.waitFor(t, "gone to leave", func(m map[string]ServiceState) bool {
				_, ok := m["gone"]
				return !ok && m["stays"].Invalid == 1
			})
			for name, c := range counters {
				if got := servicesCounted(t, c); !slices.Equal(got, []string{"stays"}) {
					t.Errorf("%s has series for %q after gone left, want stays only", name, got)
				}
			}
			if v := counterValue(t, sw.metrics.decodeErrors.WithLabelValues("stays")); v != 1 {
				t.Errorf("stays's decode errors = %v after gone left, want 1 (kept)", v)
			}
		})
	}
}

// TestWatcherReaddedServiceArmsNoNewWatches removes a service from the
// spec and adds it back, again and again, while its znodes do not
// change. Their watches stay armed in the client all along (it cannot
// remove them), and each watching read would leave one more channel per
// znode in it for as long as the znode stays unchanged: the service is
// read again without watches, and the watches it has still fire.
func TestWatcherReaddedServiceArmsNoNewWatches(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 5*time.Second)
	base := testutil.TestRoot(t, conn)
	for _, id := range []string{"a", "b", "c"} {
		testutil.CreateZnode(t, conn, base+"/churn/"+id, "192.0.2.1:80", 0)
	}
	testutil.CreateZnode(t, conn, base+"/keep/k", "192.0.2.2:80", 0)
	keep := ServiceSpec{Name: "keep", Path: base + "/keep", Format: "hostport"}
	churn := ServiceSpec{Name: "churn", Path: base + "/churn", Format: "hostport"}
	with := Spec{Services: []ServiceSpec{keep, churn}}
	without := Spec{Services: []ServiceSpec{keep}}
	sw := startSecuredWatcher(t, Options{Servers: []string{zkServer.Addr()}, SessionTimeout: 5 * time.Second}, with, nil)
	sw.rec.waitFor(t, "churn listed", hasIDs("churn", "a,b,c"))
	watching := func() (children, get float64) {
		return counterValue(t, sw.metrics.requestsByOp[opChildrenWatch]), counterValue(t, sw.metrics.requestsByOp[opGetWatch])
	}
	children0, get0 := watching()

	const cycles = 20
	for i := range cycles {
		sw.w.SetSpec(without)
		sw.rec.waitFor(t, fmt.Sprintf("churn removed (cycle %d)", i), func(m map[string]ServiceState) bool {
			_, ok := m["churn"]
			return !ok
		})
		sw.w.SetSpec(with)
		sw.rec.waitFor(t, fmt.Sprintf("churn back (cycle %d)", i), hasIDs("churn", "a,b,c"))
	}
	if children, get := watching(); children != children0 || get != get0 {
		t.Errorf("after %d removals and re-adds of an unchanged service: %v children and %v data watches set, want 0 and 0 (its watches are still armed)",
			cycles, children-children0, get-get0)
	}

	// The watches armed before the cycles still follow the service.
	if _, err := conn.Set(base+"/churn/b", []byte("192.0.2.3:80"), -1); err != nil {
		t.Fatal(err)
	}
	address := func(s ServiceState, id string) string {
		for _, in := range s.Instances {
			if in.ID == id {
				return in.Address
			}
		}
		return ""
	}
	sw.rec.waitFor(t, "b's new address", func(m map[string]ServiceState) bool {
		return address(m["churn"], "b") == "192.0.2.3"
	})
	if err := conn.Delete(base+"/churn/a", -1); err != nil {
		t.Fatal(err)
	}
	testutil.CreateZnode(t, conn, base+"/churn/d", "192.0.2.4:80", 0)
	sw.rec.waitFor(t, "a gone and d added", hasIDs("churn", "b,c,d"))
	// And those the changes fired are armed again.
	if err := conn.Delete(base+"/churn/b", -1); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Set(base+"/churn/d", []byte("192.0.2.5:80"), -1); err != nil {
		t.Fatal(err)
	}
	sw.rec.waitFor(t, "b gone and d's new address", func(m map[string]ServiceState) bool {
		s := m["churn"]
		return ids(s) == "c,d" && address(s, "d") == "192.0.2.5"
	})
}

// TestPersistentWatchRefusalsLogOncePerConnection refuses every service's
// persistent watch on two connections: a line for the first refusal of
// each, not one per service; and a server without such watches is
// reported once in all.
func TestPersistentWatchRefusalsLogOncePerConnection(t *testing.T) {
	logs := &logBuffer{}
	w, err := New(Options{Servers: []string{"192.0.2.1:2181"}, Publish: func(Update) {}, Logger: logs.logger()}, Spec{})
	if err != nil {
		t.Fatal(err)
	}
	for gen := int64(1); gen <= 2; gen++ {
		w.connGen.Store(gen)
		for i := range 100 {
			w.persistentReply(gen, fmt.Sprintf("/svc-%d", i), zk.ErrNoAuth)
			w.persistentReply(gen, fmt.Sprintf("/svc-%d", i), zkclient.ErrPersistentWatchesUnsupported)
		}
	}
	if n := logs.count("refused a persistent watch"); n != 2 {
		t.Errorf("%d lines for 200 refusals on 2 connections, want 2:\n%s", n, logs.String())
	}
	if n := logs.count("no persistent watches"); n != 1 {
		t.Errorf("%d lines for a server without persistent watches, want 1", n)
	}
}
