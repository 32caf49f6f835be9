package zkwatch

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdns/zkdns/internal/testutil"
)

// nearMaxBuffer is a payload size just under ZooKeeper's default
// jute.maxbuffer (0xfffff bytes), which bounds a whole request, path and
// ACL included.
const nearMaxBuffer = 1<<20 - 8<<10

// curatorJSON is a minimal valid curator payload around extra fields.
func curatorJSON(address, port, extra string) string {
	return `{"name":"hostile","address":"` + address + `","port":` + port + `,"serviceType":"DYNAMIC"` + extra + `}`
}

// hostileZnode is one child of the hostile service and what the watcher
// must make of it.
type hostileZnode struct {
	name   string
	data   string
	served bool // decoded and served; otherwise skipped and counted
}

func hostileZnodes() []hostileZnode {
	deep := strings.Repeat("[", 200_000) + strings.Repeat("]", 200_000)
	return []hostileZnode{
		{"good-hostport", "192.0.2.50:80", true},
		{"good-curator", curatorJSON("192.0.2.51", "8080", ""), true},
		{"megabyte-of-garbage", strings.Repeat("x", nearMaxBuffer), false},
		{"megabyte-of-metadata", curatorJSON("192.0.2.52", "8080",
			`,"payload":{"metadata":{"blob":"`+strings.Repeat("b", nearMaxBuffer-200)+`"}}`), true},
		{"deep-json", curatorJSON("192.0.2.53", "80", `,"payload":`+deep), false},
		{"not-utf8-bytes", "\xff\xfe\xfd\x00\x80", false},
		{"not-utf8-in-json", curatorJSON("192.0.2.54", "80", `,"payload":{"metadata":{"k":"`+"\xc3\x28"+`"}}`), false},
		{"address-not-ip", "300.1.2.3:80", false},
		{"address-garbage", curatorJSON("not an address!", "80", ""), false},
		{"port-70000", "192.0.2.55:70000", false},
		{"port-70000-json", curatorJSON("192.0.2.56", "70000", ""), false},
		{"port-negative", curatorJSON("192.0.2.57", "-1", ""), false},
		// Names that are not DNS labels are served under a sanitised label
		// (the DNS side makes them labels); the watcher keeps the name.
		{"Web_Server.01", "192.0.2.60:80", true},
		{"___", "192.0.2.61:80", true},
		{strings.Repeat("long", 60), "192.0.2.62:80", true},
		// Two names that sanitise to the same label "web-1".
		{"web_1", "192.0.2.63:80", true},
		{"web.1", "192.0.2.64:80", true},
	}
}

// TestWatcherHostileData feeds the real watcher, through a real ZooKeeper,
// znodes built to hurt: each bad one is skipped, logged once and counted
// once, re-reads (a new listing, a whole new session) log and count
// nothing again, a new version of a bad payload is logged once more, and
// the good instances of the same service keep serving throughout.
func TestWatcherHostileData(t *testing.T) {
	proxy := testutil.ProxyTo(t, zkServer.Addr())
	admin := testutil.ConnectZK(t, zkServer.Addr(), 20*time.Second)
	base := testutil.TestRoot(t, admin)
	znodes := hostileZnodes()
	var servedIDs []string
	bad := 0
	for _, z := range znodes {
		// Persistent, so that they outlive the session expiry below.
		testutil.CreateZnode(t, admin, base+"/hostile/"+z.name, z.data, 0)
		if z.served {
			servedIDs = append(servedIDs, z.name)
		} else {
			bad++
		}
	}
	sort.Strings(servedIDs)
	wantIDs := strings.Join(servedIDs, ",")

	sw := startSecuredWatcher(t, Options{Servers: []string{proxy.Addr()}, SessionTimeout: time.Second},
		Spec{Services: []ServiceSpec{{Name: "hostile", Path: base + "/hostile"}}}, nil)
	sw.rec.waitFor(t, "first sync", hasIDs("hostile", wantIDs))
	var shrank []string
	sw.rec.mu.Lock()
	sw.rec.onView = func(m map[string]ServiceState) {
		if len(m["hostile"].Instances) < len(servedIDs) {
			shrank = append(shrank, ids(m["hostile"]))
		}
	}
	sw.rec.mu.Unlock()

	decodeErrors := func() float64 { return counterValue(t, sw.metrics.decodeErrors.WithLabelValues("hostile")) }
	checkOnce := func(t *testing.T, stage string, extra map[string]int) {
		t.Helper()
		sw.rec.mu.Lock()
		s := sw.rec.services["hostile"]
		sw.rec.mu.Unlock()
		if s.Invalid != bad {
			t.Errorf("%s: Invalid = %d, want %d", stage, s.Invalid, bad)
		}
		total := 0
		for _, z := range znodes {
			want := extra[z.name]
			if !z.served {
				want++
			}
			total += want
			if n := sw.logs.count("skipping instance", "znode="+base+"/hostile/"+z.name+" "); n != want {
				t.Errorf("%s: %s logged %d times, want %d", stage, z.name, n, want)
			}
		}
		if got := decodeErrors(); got != float64(total) {
			t.Errorf("%s: zkdns_zookeeper_payload_decode_errors_total{service=hostile} = %v, want %d", stage, got, total)
		}
	}

	t.Run("decoded instances", func(t *testing.T) {
		sw.rec.mu.Lock()
		s := sw.rec.services["hostile"]
		sw.rec.mu.Unlock()
		byID := map[string]Instance{}
		for _, in := range s.Instances {
			byID[in.ID] = in
		}
		cases := []struct {
			id      string
			address string
			port    uint16
		}{
			{"good-hostport", "192.0.2.50", 80},
			{"good-curator", "192.0.2.51", 8080},
			{"megabyte-of-metadata", "192.0.2.52", 8080},
			{"Web_Server.01", "192.0.2.60", 80},
			{"___", "192.0.2.61", 80},
			{"web_1", "192.0.2.63", 80},
			{"web.1", "192.0.2.64", 80},
		}
		for _, tc := range cases {
			t.Run(tc.id, func(t *testing.T) {
				in, ok := byID[tc.id]
				if !ok || in.Address != tc.address || in.Port != tc.port || !in.Healthy {
					t.Errorf("instance %q = %+v (present %v), want healthy %s:%d", tc.id, in, ok, tc.address, tc.port)
				}
			})
		}
		if blob := byID["megabyte-of-metadata"].Meta["blob"]; len(blob) != nearMaxBuffer-200 {
			t.Errorf("megabyte-of-metadata kept %d bytes of metadata, want %d", len(blob), nearMaxBuffer-200)
		}
	})

	t.Run("each bad znode logged and counted once", func(t *testing.T) {
		checkOnce(t, "first sync", nil)
		for line := range strings.SplitSeq(sw.logs.String(), "\n") {
			if len(line) > 2000 {
				t.Errorf("a log line of %d bytes: payloads must not be copied into logs: %.200s…", len(line), line)
			}
		}
	})

	t.Run("a re-listing reads nothing bad again", func(t *testing.T) {
		testutil.CreateZnode(t, admin, base+"/hostile/newcomer", "192.0.2.70:80", zk.FlagEphemeral)
		sw.rec.waitFor(t, "newcomer", func(m map[string]ServiceState) bool {
			return len(m["hostile"].Instances) == len(servedIDs)+1
		})
		checkOnce(t, "after a re-listing", nil)
		if err := admin.Delete(base+"/hostile/newcomer", -1); err != nil {
			t.Fatal(err)
		}
		sw.rec.waitFor(t, "newcomer gone", hasIDs("hostile", wantIDs))
	})

	t.Run("a new session re-reads everything and logs nothing again", func(t *testing.T) {
		first := sw.w.Status().SessionID
		sw.rec.mu.Lock()
		before := len(sw.rec.updates)
		sw.rec.mu.Unlock()
		proxy.Cut()
		time.Sleep(3 * time.Second) // well past the 1 s session
		proxy.Restore()
		eventually(t, "a new session, synced", func() bool {
			st := sw.w.Status()
			return st.SessionID != first && st.SessionID != 0 && st.State == zk.StateHasSession
		})
		sw.rec.waitFor(t, "a full resync", func(map[string]ServiceState) bool {
			// waitFor holds the recorder's lock while it asks.
			for _, u := range sw.rec.updates[before:] {
				if u.Full {
					return true
				}
			}
			return false
		})
		sw.rec.waitFor(t, "the same instances after the resync", hasIDs("hostile", wantIDs))
		checkOnce(t, "after a new session", nil)
	})

	t.Run("a new version of a bad payload is logged once more", func(t *testing.T) {
		if _, err := admin.Set(base+"/hostile/port-70000", []byte("192.0.2.55:70001"), -1); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the new version's decode error", func() bool {
			return sw.logs.count("skipping instance", "znode="+base+"/hostile/port-70000 ") == 2
		})
		checkOnce(t, "after a new version", map[string]int{"port-70000": 1})
	})

	sw.rec.mu.Lock()
	defer sw.rec.mu.Unlock()
	if len(shrank) > 0 {
		t.Errorf("the good instances did not keep serving; views with fewer: %q", shrank)
	}
}
