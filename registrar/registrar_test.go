package registrar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdns/zkdns/internal/testutil"
	"github.com/zkdns/zkdns/zkwatch"
)

var zkServer *testutil.ZooKeeper

func TestMain(m *testing.M) {
	os.Exit(testutil.MainWithZooKeeper(m, &zkServer))
}

// waitLimit bounds every wait for an expected change.
const waitLimit = 15 * time.Second

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	testutil.Eventually(t, waitLimit, what, cond)
}

// logBuffer collects log lines for assertions; safe for concurrent use.
type logBuffer struct{ testutil.LogBuffer }

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// running is one Run in the background.
type running struct {
	logs    *logBuffer
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// start runs Run(opts) until the test ends or stop is called.
func start(t *testing.T, opts Options) *running {
	t.Helper()
	logs := &logBuffer{}
	opts.Logger = logs.logger()
	r, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		if !run.stopped {
			if err := run.stop(t); err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	})
	return run
}

// stop cancels Run and returns its result. It may be called from any
// goroutine.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.stopped = true
	r.cancel()
	select {
	case err := <-r.done:
		return err
	case <-time.After(waitLimit):
		return fmt.Errorf("Run did not return within %v of the cancel; logs:\n%s", waitLimit, r.logs)
	}
}

// healthEndpoint is a service's health endpoint whose answer the test
// switches, counting what it answered.
type healthEndpoint struct {
	healthy atomic.Bool
	passes  atomic.Int64
	fails   atomic.Int64
}

func (h *healthEndpoint) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	if h.healthy.Load() {
		h.passes.Add(1)
		fmt.Fprintln(w, "ok")
		return
	}
	h.fails.Add(1)
	http.Error(w, "warming caches", http.StatusServiceUnavailable)
}

func newHealthEndpoint(t *testing.T, healthy bool) (*healthEndpoint, string) {
	h := &healthEndpoint{}
	h.healthy.Store(healthy)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL + "/health"
}

// children lists p's children; a missing p has none.
func children(t *testing.T, conn *zk.Conn, p string) []string {
	t.Helper()
	kids, _, err := conn.Children(p)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("children of %s: %v", p, err)
	}
	return kids
}

// only waits until p has exactly one child and returns its path.
func only(t *testing.T, conn *zk.Conn, p string) string {
	t.Helper()
	var node string
	waitFor(t, "one instance under "+p, func() (bool, string) {
		kids := children(t, conn, p)
		if len(kids) == 1 {
			node = path.Join(p, kids[0])
		}
		return len(kids) == 1, fmt.Sprint(kids)
	})
	return node
}

func stat(t *testing.T, conn *zk.Conn, p string) *zk.Stat {
	t.Helper()
	ok, st, err := conn.Exists(p)
	if err != nil || !ok {
		t.Fatalf("stat %s: exists=%v err=%v", p, ok, err)
	}
	return st
}

func TestRiseFallRecovery(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn) + "/svc"
	health, url := newHealthEndpoint(t, false)
	const rise, fall = 3, 2
	run := start(t, Options{
		Servers:  []string{zkServer.Addr()},
		Path:     base,
		Address:  "192.0.2.10",
		Port:     8080,
		Check:    url,
		Interval: 100 * time.Millisecond,
		Rise:     rise,
		Fall:     fall,
		Drain:    NoDrain,
	})

	t.Run("not registered while failing", func(t *testing.T) {
		waitFor(t, "five failed checks", func() (bool, string) {
			return health.fails.Load() >= 5, fmt.Sprint(health.fails.Load())
		})
		if kids := children(t, conn, base); len(kids) != 0 {
			t.Fatalf("registered while the health endpoint fails: %v", kids)
		}
		if !strings.Contains(run.logs.String(), "warming caches") {
			t.Errorf("the reason the check fails is not logged:\n%s", run.logs)
		}
	})

	t.Run("registered after rise passes", func(t *testing.T) {
		health.healthy.Store(true)
		only(t, conn, base)
		if got := health.passes.Load(); got < rise {
			t.Errorf("registered after %d passing checks, want at least rise=%d", got, rise)
		}
	})

	t.Run("fall removes it", func(t *testing.T) {
		before := health.fails.Load()
		health.healthy.Store(false)
		waitFor(t, "znode removed", func() (bool, string) {
			kids := children(t, conn, base)
			return len(kids) == 0, fmt.Sprint(kids)
		})
		if got := health.fails.Load() - before; got < fall {
			t.Errorf("removed after %d failed checks, want at least fall=%d", got, fall)
		}
		// The line follows the deletion, which the test may see first.
		waitFor(t, "the reason logged", func() (bool, string) {
			logs := run.logs.String()
			return strings.Contains(logs, "msg=unhealthy") && strings.Contains(logs, "reason=unhealthy"), logs
		})
	})

	t.Run("recovery re-creates it", func(t *testing.T) {
		before := health.passes.Load()
		health.healthy.Store(true)
		only(t, conn, base)
		if got := health.passes.Load() - before; got < rise {
			t.Errorf("re-registered after %d passing checks, want at least rise=%d", got, rise)
		}
		waitFor(t, "a re-registered line", func() (bool, string) {
			return strings.Contains(run.logs.String(), "msg=re-registered"), run.logs.String()
		})
	})

	if err := run.stop(t); err != nil {
		t.Errorf("Run returned %v after cancel, want nil", err)
	}
	if kids := children(t, conn, base); len(kids) != 0 {
		t.Errorf("znode left behind after Run returned: %v", kids)
	}
}

func TestWarmupBeforeRegistration(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	dir := t.TempDir()

	// warmHits counts warm-up requests and whether any came after the
	// instance was registered.
	type warmHits struct {
		hits, late atomic.Int64
	}
	warmHandler := func(w *warmHits, base string) http.HandlerFunc {
		return func(rw http.ResponseWriter, _ *http.Request) {
			w.hits.Add(1)
			kids, _, _ := conn.Children(base)
			if len(kids) > 0 {
				w.late.Add(1)
			}
		}
	}

	tests := []struct {
		name string
		// warmup returns the Warmup option and a check that runs once the
		// instance is registered.
		warmup  func(t *testing.T, base string) (string, func(t *testing.T))
		wantLog string
		// noCheck runs without a health check: one verdict only.
		noCheck bool
	}{
		{
			name: "http warm-up requested N times first",
			warmup: func(t *testing.T, base string) (string, func(t *testing.T)) {
				w := &warmHits{}
				srv := httptest.NewServer(warmHandler(w, base))
				t.Cleanup(srv.Close)
				return srv.URL + "/warm", func(t *testing.T) {
					if got := w.hits.Load(); got != 4 {
						t.Errorf("warm-up URL requested %d times, want 4", got)
					}
					if got := w.late.Load(); got != 0 {
						t.Errorf("%d warm-up requests came after the registration", got)
					}
				}
			},
			wantLog: "msg=\"warmed up\"",
		},
		{
			name: "exec warm-up runs once",
			warmup: func(t *testing.T, base string) (string, func(t *testing.T)) {
				file := filepath.Join(dir, "ran")
				return "exec:echo warmed >> " + file, func(t *testing.T) {
					b, err := os.ReadFile(file)
					if err != nil || string(b) != "warmed\n" {
						t.Errorf("warm-up command output %q, %v; want it run exactly once", b, err)
					}
				}
			},
			wantLog: "msg=\"warmed up\"",
		},
		{
			name:    "failed warm-up is retried and blocks registration until it succeeds",
			warmup:  failsOnce(filepath.Join(dir, "second-try")),
			wantLog: "caches cold",
		},
		{
			name:    "failed warm-up without a health check is retried each interval",
			warmup:  failsOnce(filepath.Join(dir, "second-try-unchecked")),
			wantLog: "will retry every 50ms",
			noCheck: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := "/" + strings.ReplaceAll(t.Name(), " ", "_") + "/svc"
			_, url := newHealthEndpoint(t, true)
			if tc.noCheck {
				url = ""
			}
			warmup, after := tc.warmup(t, base)
			run := start(t, Options{
				Servers:        []string{zkServer.Addr()},
				Path:           base,
				Address:        "192.0.2.11",
				Port:           8080,
				Check:          url,
				Interval:       50 * time.Millisecond,
				Rise:           1,
				Warmup:         warmup,
				WarmupRequests: 4,
				Drain:          NoDrain,
			})
			only(t, conn, base)
			after(t)
			if !strings.Contains(run.logs.String(), tc.wantLog) {
				t.Errorf("logs lack %q:\n%s", tc.wantLog, run.logs)
			}
		})
	}
}

// TestWarmupFailuresLoggedOncePerReason: a warm-up that keeps failing is
// logged when it starts, at its first failure and when the reason
// changes, not at every retry, and its reason is quoted only by the log
// line, not within itself.
func TestWarmupFailuresLoggedOncePerReason(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	for _, tc := range []struct {
		name    string
		noCheck bool
	}{
		{"retried after each passing check", false},
		{"retried every interval without a check", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := "/" + strings.ReplaceAll(t.Name(), " ", "_") + "/svc"
			dir := t.TempDir()
			attempts, reason, warm := filepath.Join(dir, "attempts"), filepath.Join(dir, "reason"), filepath.Join(dir, "warm")
			// Replaced whole, so that no attempt reads half of it.
			setReason := func(text string) {
				tmp := reason + ".tmp"
				if err := os.WriteFile(tmp, []byte(text+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, reason); err != nil {
					t.Fatal(err)
				}
			}
			setReason(`caches "cold"`)
			count := func() int {
				b, _ := os.ReadFile(attempts)
				return strings.Count(string(b), "\n")
			}
			_, url := newHealthEndpoint(t, true)
			if tc.noCheck {
				url = ""
			}
			run := start(t, Options{
				Servers:  []string{zkServer.Addr()},
				Path:     base,
				Address:  "192.0.2.13",
				Port:     8080,
				Check:    url,
				Interval: 20 * time.Millisecond,
				Rise:     1,
				Warmup:   fmt.Sprintf("exec:echo >> %s; [ -e %s ] && exit 0; cat %s >&2; exit 1", attempts, warm, reason),
				Drain:    NoDrain,
			})
			for _, text := range []string{`caches "cold"`, `database "down"`} {
				setReason(text)
				n := count()
				waitFor(t, "five more warm-up attempts", func() (bool, string) {
					return count() >= n+5, fmt.Sprint(count() - n)
				})
			}
			if err := os.WriteFile(warm, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			only(t, conn, base)
			logs := run.logs.String()
			for _, want := range []struct {
				line string
				n    int
			}{
				{`msg="warming up"`, 1},
				{`msg="warm-up failed;`, 2},
				{`reason="exit status 1: caches \"cold\""`, 1},
				{`reason="exit status 1: database \"down\""`, 1},
				{`msg="warmed up"`, 1},
			} {
				if got := strings.Count(logs, want.line); got != want.n {
					t.Errorf("%d lines with %s, want %d; logs:\n%s", got, want.line, want.n, logs)
				}
			}
		})
	}
}

// TestFailedChecksDuringWarmupHoldRegistration: checks keep running
// while the warm-up does; when they fell meanwhile, the instance is not
// registered on the strength of the passes from before the warm-up (and
// at once deregistered again), but once the checks rise again.
func TestFailedChecksDuringWarmupHoldRegistration(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn) + "/svc"
	health, url := newHealthEndpoint(t, true)
	warmed := filepath.Join(t.TempDir(), "warmed")
	run := start(t, Options{
		Servers:  []string{zkServer.Addr()},
		Path:     base,
		Address:  "192.0.2.12",
		Port:     8080,
		Check:    url,
		Interval: 50 * time.Millisecond,
		Rise:     1,
		Fall:     1,
		// The warm-up lasts until the test lets it end.
		Warmup: "exec:while [ ! -e " + warmed + " ]; do sleep 0.05; done",
		Drain:  NoDrain,
	})
	waitFor(t, "the warm-up to start", func() (bool, string) {
		return strings.Contains(run.logs.String(), "msg=\"warming up\""), run.logs.String()
	})
	health.healthy.Store(false)
	waitFor(t, "the checks to fall during the warm-up", func() (bool, string) {
		return strings.Contains(run.logs.String(), "msg=unhealthy"), run.logs.String()
	})
	if err := os.WriteFile(warmed, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the warm-up to end", func() (bool, string) {
		return strings.Contains(run.logs.String(), "msg=\"warmed up\""), run.logs.String()
	})
	// A few checks more, which keep failing: the loop has acted on the
	// end of the warm-up by then.
	fails := health.fails.Load()
	waitFor(t, "three more failed checks", func() (bool, string) {
		return health.fails.Load() >= fails+3, fmt.Sprint(health.fails.Load() - fails)
	})
	if logs := run.logs.String(); strings.Contains(logs, "msg=registered") {
		t.Errorf("registered after the warm-up although the checks had fallen during it:\n%s", logs)
	}
	health.healthy.Store(true)
	only(t, conn, base)
}

// failsOnce is an exec warm-up that fails the first time it runs and
// succeeds after, flag marking that it ran.
func failsOnce(flag string) func(t *testing.T, base string) (string, func(t *testing.T)) {
	return func(*testing.T, string) (string, func(t *testing.T)) {
		cmd := fmt.Sprintf("if [ -e %s ]; then echo ok; else touch %s; echo caches cold >&2; exit 1; fi", flag, flag)
		return "exec:" + cmd, func(*testing.T) {}
	}
}

// decodeZnode reads p and decodes it the way zkdns does.
func decodeZnode(t *testing.T, conn *zk.Conn, format, p string) (zkwatch.Instance, *zk.Stat) {
	t.Helper()
	data, st, err := conn.Get(p)
	if err != nil {
		t.Fatalf("get %s: %v", p, err)
	}
	n := zkwatch.Node{Name: path.Base(p), Data: data, Ctime: time.UnixMilli(st.Ctime)}
	inst, err := zkwatch.Decode(format, "", n)
	if err != nil {
		t.Fatalf("zkwatch.Decode(%s) of %s: %v\ndata: %s", format, p, err, data)
	}
	auto, err := zkwatch.Decode("auto", "", n)
	if err != nil || auto.Format != format {
		t.Errorf("format auto reads %s as %q (err %v), want %s", p, auto.Format, err, format)
	}
	return inst, st
}

func TestPayloadsInZooKeeper(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	tests := []struct {
		format     string
		address    string
		id         string
		weight     int
		wantName   string // znode name, or its prefix for serverset
		wantWeight uint16
		wantMeta   map[string]string
		wantWarn   string // the options logged as not written
	}{
		{FormatCurator, "192.0.2.20", "", 7, "192.0.2.20-8080", 7, map[string]string{"zone": "a", "shard": "3", "weight": "7"}, ""},
		{FormatServerset, "2001:db8::20", "", 0, "member_", 100, map[string]string{"shard": "3"}, `ignored="metadata zone"`},
		{FormatNerve, "192.0.2.21", "web-1", 9, "web-1", 9, map[string]string{"zone": "a", "shard": "3", "name": "web-1"}, ""},
		{FormatHostport, "2001:db8::21", "", 0, "2001-db8--21-8080", 100, nil, `ignored="metadata shard, metadata zone"`},
	}
	for _, tc := range tests {
		t.Run(tc.format, func(t *testing.T) {
			base := "/" + t.Name() + "/svc"
			before := time.Now().Add(-time.Second).Truncate(time.Millisecond)
			run := start(t, Options{
				Servers:  []string{zkServer.Addr()},
				Path:     base,
				ID:       tc.id,
				Address:  tc.address,
				Port:     8080,
				Format:   tc.format,
				Metadata: map[string]string{"zone": "a", "shard": "3"},
				Weight:   tc.weight,
				Drain:    NoDrain,
			})
			node := only(t, conn, base)
			inst, st := decodeZnode(t, conn, tc.format, node)
			if !strings.HasPrefix(path.Base(node), tc.wantName) || (tc.format != FormatServerset && path.Base(node) != tc.wantName) {
				t.Errorf("znode %s, want name %s", node, tc.wantName)
			}
			if st.EphemeralOwner == 0 {
				t.Errorf("%s is not ephemeral", node)
			}
			if inst.Address != tc.address || inst.Port != 8080 || !inst.Healthy || inst.Weight != tc.wantWeight {
				t.Errorf("decoded %+v, want %s:8080 healthy with weight %d", inst, tc.address, tc.wantWeight)
			}
			if fmt.Sprint(inst.Meta) != fmt.Sprint(tc.wantMeta) {
				t.Errorf("metadata %v, want %v", inst.Meta, tc.wantMeta)
			}
			if inst.Registered.Before(before) || inst.Registered.After(time.Now()) {
				t.Errorf("registration time %v is not the time of this registration", inst.Registered)
			}
			logs := run.logs.String()
			if warned := strings.Contains(logs, "no place for some options"); warned != (tc.wantWarn != "") ||
				!strings.Contains(logs, tc.wantWarn) {
				t.Errorf("want a warning about %q (none if empty); logs:\n%s", tc.wantWarn, logs)
			}
		})
	}
}

func TestDrainOrder(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	const drain = 700 * time.Millisecond
	tests := []struct {
		format string
		want   []zk.EventType
	}{
		{FormatCurator, []zk.EventType{zk.EventNodeDataChanged, zk.EventNodeDeleted}},
		{FormatServerset, []zk.EventType{zk.EventNodeDataChanged, zk.EventNodeDeleted}},
		{FormatHostport, []zk.EventType{zk.EventNodeDeleted}},
	}
	for _, tc := range tests {
		t.Run(tc.format, func(t *testing.T) {
			base := "/" + t.Name() + "/svc"
			run := start(t, Options{
				Servers: []string{zkServer.Addr()},
				Path:    base,
				Address: "192.0.2.30",
				Port:    8080,
				Format:  tc.format,
				Drain:   drain,
			})
			node := only(t, conn, base)

			// Follow the znode with data watches: each event re-arms the
			// watch, so every change up to the deletion is seen in order.
			type seen struct {
				ev zk.EventType
				at time.Time
			}
			_, _, watch, err := conn.GetW(node)
			if err != nil {
				t.Fatal(err)
			}
			events := make(chan seen, 8)
			go func() {
				defer close(events)
				for {
					ev := <-watch
					events <- seen{ev.Type, time.Now()}
					if ev.Type != zk.EventNodeDataChanged {
						return
					}
					_, _, watch, err = conn.GetW(node)
					if errors.Is(err, zk.ErrNoNode) {
						// Deleted before the watch was armed again.
						events <- seen{zk.EventNodeDeleted, time.Now()}
						return
					}
					if err != nil {
						return
					}
				}
			}()

			errc := make(chan error, 1)
			go func() { errc <- run.stop(t) }()
			var got []zk.EventType
			var deletedAt time.Time
			for collecting := true; collecting; {
				select {
				case s, ok := <-events:
					if !ok {
						collecting = false
						break
					}
					got = append(got, s.ev)
					if s.ev == zk.EventNodeDeleted {
						deletedAt = s.at
					}
				case <-time.After(waitLimit):
					t.Fatalf("the znode was not deleted; events so far %v", got)
				}
			}
			if err := <-errc; err != nil {
				t.Fatalf("Run: %v", err)
			}
			returned := time.Now()
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("znode events %v, want %v", got, tc.want)
			}
			// Run waits out the drain from when its own Delete returned,
			// which can come before or after this session hears of the
			// deletion: the two are told apart by delivery, not by
			// ZooKeeper. Half the drain still tells a drain that followed
			// the deletion from none, or from one spent before it.
			if wait := returned.Sub(deletedAt); wait < drain/2 {
				t.Errorf("Run returned %v after the deletion, want about the drain of %v", wait, drain)
			}
			logs := run.logs.String()
			order := []string{"msg=deregistered", "msg=draining", "msg=stopped"}
			if hasDrainingMark(tc.format) {
				order = append([]string{`msg="marked draining"`}, order...)
			}
			last := -1
			for _, line := range order {
				i := strings.Index(logs, line)
				if i <= last {
					t.Fatalf("log lines not in the order %v:\n%s", order, logs)
				}
				last = i
			}
		})
	}
}

func TestSessionExpiryReRegisters(t *testing.T) {
	proxy := testutil.ProxyTo(t, zkServer.Addr())
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := "/" + t.Name() + "/svc"
	_, url := newHealthEndpoint(t, true)
	run := start(t, Options{
		Servers:        []string{proxy.Addr()},
		SessionTimeout: time.Second,
		Path:           base,
		Address:        "192.0.2.40",
		Port:           8080,
		Check:          url,
		Interval:       50 * time.Millisecond,
		Rise:           1,
		Drain:          NoDrain,
	})
	node := only(t, conn, base)
	before := stat(t, conn, node)

	proxy.Cut()
	waitFor(t, "the znode to go with the expired session", func() (bool, string) {
		ok, _, err := conn.Exists(node)
		return err == nil && !ok, fmt.Sprint(ok, err)
	})
	proxy.Restore()
	waitFor(t, "the znode re-created under a new session", func() (bool, string) {
		ok, st, err := conn.Exists(node)
		return err == nil && ok && st.EphemeralOwner != before.EphemeralOwner, fmt.Sprint(ok, err)
	})
	after := stat(t, conn, node)
	if after.Czxid == before.Czxid {
		t.Errorf("same czxid %d after the expiry: not a new znode", after.Czxid)
	}
	for _, want := range []string{"session expired", "msg=re-registered"} {
		waitFor(t, "the log line "+want, func() (bool, string) {
			return strings.Contains(run.logs.String(), want), run.logs.String()
		})
	}
}

// TestReRegistrationKeepsRegistrationTime: a znode that ZooKeeper took
// away from a healthy instance comes back with the registration time it
// had, so that zkdns's warm-up does not ramp the instance up from nothing
// again; one the checks took away comes back with a new one.
func TestReRegistrationKeepsRegistrationTime(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	tests := []struct {
		name    string
		session time.Duration
		// remove takes the znode away and has it come back.
		remove func(t *testing.T, proxy *testutil.TCPProxy, health *healthEndpoint, node string)
		keep   bool
	}{
		{"deleted by hand", 4 * time.Second, func(t *testing.T, _ *testutil.TCPProxy, _ *healthEndpoint, node string) {
			if err := conn.Delete(node, -1); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"gone with an expired session", time.Second, func(t *testing.T, proxy *testutil.TCPProxy, _ *healthEndpoint, node string) {
			proxy.Cut()
			waitFor(t, "the znode to go with the expired session", func() (bool, string) {
				ok, _, err := conn.Exists(node)
				return err == nil && !ok, fmt.Sprint(ok, err)
			})
			proxy.Restore()
		}, true},
		{"taken over by a second registrar, which then stopped", 4 * time.Second, func(t *testing.T, _ *testutil.TCPProxy, _ *healthEndpoint, node string) {
			first := stat(t, conn, node).EphemeralOwner
			second := start(t, Options{
				Servers: []string{zkServer.Addr()},
				Path:    path.Dir(node),
				ID:      path.Base(node),
				Address: "192.0.2.43",
				Port:    8080,
				Drain:   NoDrain,
			})
			waitFor(t, "the second registrar to take the znode over", func() (bool, string) {
				ok, st, err := conn.Exists(node)
				return err == nil && ok && st.EphemeralOwner != first, second.logs.String()
			})
			if err := second.stop(t); err != nil {
				t.Fatalf("second Run: %v", err)
			}
		}, true},
		{"deregistered by the checks", 4 * time.Second, func(t *testing.T, _ *testutil.TCPProxy, health *healthEndpoint, node string) {
			health.healthy.Store(false)
			waitFor(t, "the znode to be deregistered", func() (bool, string) {
				ok, _, err := conn.Exists(node)
				return err == nil && !ok, fmt.Sprint(ok, err)
			})
			health.healthy.Store(true)
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proxy := testutil.ProxyTo(t, zkServer.Addr())
			base := "/" + strings.ReplaceAll(t.Name(), " ", "_") + "/svc"
			node := base + "/web-1"
			health, url := newHealthEndpoint(t, true)
			run := start(t, Options{
				Servers:        []string{proxy.Addr()},
				SessionTimeout: tc.session,
				Path:           base,
				ID:             "web-1",
				Address:        "192.0.2.42",
				Port:           8080,
				Check:          url,
				Interval:       50 * time.Millisecond,
				Rise:           1,
				Fall:           3,
				Drain:          NoDrain,
			})
			only(t, conn, base)
			first, before := decodeZnode(t, conn, FormatCurator, node)
			tc.remove(t, proxy, health, node)
			waitFor(t, "the znode back", func() (bool, string) {
				data, st, err := conn.Get(node)
				return err == nil && st.Czxid != before.Czxid && strings.Contains(string(data), `"address":"192.0.2.42"`),
					fmt.Sprint(string(data), err)
			})
			again, _ := decodeZnode(t, conn, FormatCurator, node)
			switch {
			case tc.keep && !again.Registered.Equal(first.Registered):
				t.Errorf("registration time %v after the znode came back, want the first one's, %v; logs:\n%s",
					again.Registered, first.Registered, run.logs)
			case !tc.keep && !again.Registered.After(first.Registered):
				t.Errorf("registration time %v after the znode came back, want one after the first one's, %v; logs:\n%s",
					again.Registered, first.Registered, run.logs)
			}
		})
	}
}

func TestConnectionBlipKeepsTheZnode(t *testing.T) {
	proxy := testutil.ProxyTo(t, zkServer.Addr())
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := "/" + t.Name() + "/svc"
	health, url := newHealthEndpoint(t, true)
	run := start(t, Options{
		Servers:        []string{proxy.Addr()},
		SessionTimeout: 4 * time.Second, // the most this server grants
		Path:           base,
		Address:        "192.0.2.41",
		Port:           8080,
		Check:          url,
		Interval:       50 * time.Millisecond,
		Rise:           1,
		Drain:          NoDrain,
	})
	node := only(t, conn, base)
	before := stat(t, conn, node)

	proxy.Cut()
	waitFor(t, "the connection loss to be noticed", func() (bool, string) {
		return strings.Contains(run.logs.String(), "zookeeper connection lost"), ""
	})
	proxy.Restore()
	waitFor(t, "the reconnect", func() (bool, string) {
		return strings.Contains(run.logs.String(), "session intact"), ""
	})
	// A few more checks on the restored connection, where a wrong
	// reaction (re-create, delete) would happen.
	checks := health.passes.Load()
	waitFor(t, "more checks", func() (bool, string) { return health.passes.Load() >= checks+3, "" })

	after := stat(t, conn, node)
	if after.Czxid != before.Czxid || after.Mzxid != before.Mzxid || after.EphemeralOwner != before.EphemeralOwner {
		t.Errorf("znode changed across a blip: before czxid=%d mzxid=%d owner=%x, after czxid=%d mzxid=%d owner=%x",
			before.Czxid, before.Mzxid, before.EphemeralOwner, after.Czxid, after.Mzxid, after.EphemeralOwner)
	}
	if logs := run.logs.String(); strings.Count(logs, "msg=registered") != 1 ||
		strings.Contains(logs, "re-registered") || strings.Contains(logs, "deregistered") {
		t.Errorf("registration changed across a blip:\n%s", logs)
	}
}

func TestStaleZnodeFromAnotherSessionReplaced(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	crashed := testutil.ConnectZK(t, zkServer.Addr(), 4*time.Second)
	base := "/" + t.Name() + "/svc"
	node := base + "/web-1"
	testutil.CreateZnode(t, crashed, node, "192.0.2.99:1", zk.FlagEphemeral)

	run := start(t, Options{
		Servers: []string{zkServer.Addr()},
		Path:    base,
		ID:      "web-1",
		Address: "192.0.2.50",
		Port:    8080,
		Drain:   NoDrain,
	})
	waitFor(t, "our registration in place of the stale one", func() (bool, string) {
		ok, st, err := conn.Exists(node)
		return err == nil && ok && st.EphemeralOwner != crashed.SessionID(), fmt.Sprint(ok, err)
	})
	inst, _ := decodeZnode(t, conn, FormatCurator, node)
	if inst.Address != "192.0.2.50" {
		t.Errorf("znode holds %s, want this registrar's address", inst.Address)
	}
	if !strings.Contains(run.logs.String(), "replacing a znode left by another session") {
		t.Errorf("the replacement is not logged:\n%s", run.logs)
	}
}

// TestPersistentZnodeInTheWay: a persistent znode where the instance's
// would go is somebody's data, not a registration left by a crash: Run
// leaves it as it is and returns an error that names it and says what is
// there, as for other refusals retrying cannot fix.
func TestPersistentZnodeInTheWay(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	tests := []struct {
		name     string
		children []string
		wantErr  string // after the path
	}{
		{"alone", nil, ": a persistent znode is in the way: no session owns it"},
		{"with children", []string{"a", "b"}, ": a persistent znode is in the way (it has 2 children): no session owns it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := "/" + strings.ReplaceAll(t.Name(), " ", "_") + "/svc"
			node := base + "/web-1"
			testutil.CreateZnode(t, conn, node, "somebody's data", 0)
			for _, c := range tc.children {
				testutil.CreateZnode(t, conn, node+"/"+c, "", 0)
			}
			before := stat(t, conn, node)
			run := start(t, Options{
				Servers: []string{zkServer.Addr()},
				Path:    base,
				ID:      "web-1",
				Address: "192.0.2.51",
				Port:    8080,
				Drain:   NoDrain,
			})
			var err error
			select {
			case err = <-run.done:
				run.stopped = true
			case <-time.After(waitLimit):
				t.Fatalf("Run did not return; logs:\n%s", run.logs)
			}
			if err == nil || !strings.Contains(err.Error(), "create "+node+tc.wantErr) {
				t.Errorf("Run: %v, want an error containing %q", err, "create "+node+tc.wantErr)
			}
			// The refusal is the registrar's own, and its log says so.
			if logs := run.logs.String(); !strings.Contains(logs, "cannot register: the instance's znode is taken by data no session owns") ||
				strings.Contains(logs, "zookeeper refused") {
				t.Errorf("logs do not put the refusal on the registrar:\n%s", logs)
			}
			data, after, gerr := conn.Get(node)
			if gerr != nil || string(data) != "somebody's data" || after.Version != before.Version ||
				after.Czxid != before.Czxid || after.NumChildren != before.NumChildren {
				t.Errorf("the znode was changed: data %q, stat %+v (was %+v), err %v", data, after, before, gerr)
			}
		})
	}
}

func TestAuthACL(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := "/" + t.Name() + "/svc"
	start(t, Options{
		Servers: []string{zkServer.Addr()},
		Auth:    &Auth{Credentials: "registrar:s3cret"},
		Path:    base,
		Address: "192.0.2.60",
		Port:    8080,
		Drain:   NoDrain,
	})
	node := only(t, conn, base)
	acl, _, err := conn.GetACL(node)
	if err != nil {
		t.Fatal(err)
	}
	// The server hides the password hash of digest IDs from readers.
	if len(acl) != 2 || acl[0] != zk.WorldACL(zk.PermRead)[0] ||
		acl[1].Scheme != "digest" || acl[1].Perms != zk.PermAll || !strings.HasPrefix(acl[1].ID, "registrar:") {
		t.Errorf("ACL %v, want world:anyone read and digest registrar:… all", acl)
	}
	if _, err := conn.Set(node, []byte("192.0.2.66:1"), -1); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("another identity changed the znode: err=%v, want %v", err, zk.ErrNoAuth)
	}
	decodeZnode(t, conn, FormatCurator, node) // anyone may read it
}

func TestRunOnce(t *testing.T) {
	r, err := New(Options{Servers: []string{zkServer.Addr()}, Path: "/" + t.Name(), Address: "192.0.2.70", Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatalf("first Run with a cancelled context: %v, want nil", err)
	}
	if err := r.Run(ctx); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Run: %v, want an error saying Run was called twice", err)
	}
}

// TestLostAnswers loses ZooKeeper's side of a create or a delete on the
// connection, the way a member restarting under a request does: the
// instance must still be taken out of service cleanly, the znode deleted
// while the session lives and the drain waited after it.
func TestLostAnswers(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)

	t.Run("create carried out, answer lost, then unhealthy", func(t *testing.T) {
		base := "/" + t.Name() + "/svc"
		node := base + "/web-1"
		health, url := newHealthEndpoint(t, true)
		lose := &lostRequest{op: opCreate, path: node, answerOnly: true, thenCut: true}
		proxy := lose.start(t)
		run := start(t, Options{
			Servers:        []string{proxy.Addr()},
			SessionTimeout: 4 * time.Second,
			Path:           base,
			ID:             "web-1",
			Address:        "192.0.2.60",
			Port:           8080,
			Check:          url,
			Interval:       50 * time.Millisecond,
			Rise:           1,
			Fall:           1,
			Drain:          NoDrain,
		})
		waitFor(t, "the create's answer lost", func() (bool, string) {
			return strings.Contains(run.logs.String(), "zookeeper connection lost"), run.logs.String()
		})
		if kids := children(t, conn, base); len(kids) != 1 {
			t.Fatalf("ZooKeeper holds %v, want the znode whose answer was lost", kids)
		}
		health.healthy.Store(false)
		waitFor(t, "the unhealthy verdict", func() (bool, string) {
			return strings.Contains(run.logs.String(), "msg=unhealthy"), run.logs.String()
		})
		proxy.Restore()
		waitFor(t, "the znode deleted while the session lives", func() (bool, string) {
			kids := children(t, conn, base)
			return len(kids) == 0 && strings.Contains(run.logs.String(), "msg=deregistered"), fmt.Sprint(kids)
		})
		logs := run.logs.String()
		if !strings.Contains(logs, "session intact") || !strings.Contains(logs, "found the znode whose creation was not confirmed") {
			t.Errorf("want the same session to find and deregister the znode; logs:\n%s", logs)
		}
	})

	t.Run("delete lost on the way out", func(t *testing.T) {
		base := "/" + t.Name() + "/svc"
		const drain = time.Second
		lose := &lostRequest{op: opDelete}
		proxy := lose.start(t)
		run := start(t, Options{
			Servers:        []string{proxy.Addr()},
			SessionTimeout: 4 * time.Second,
			Path:           base,
			Address:        "192.0.2.61",
			Port:           8080,
			Format:         FormatHostport,
			Drain:          drain,
		})
		node := only(t, conn, base)
		exists, _, watch, err := conn.ExistsW(node)
		if err != nil || !exists {
			t.Fatalf("watch %s: exists %v, %v", node, exists, err)
		}
		deleted := make(chan time.Time, 1)
		go func() {
			if ev := <-watch; ev.Type == zk.EventNodeDeleted {
				deleted <- time.Now()
			}
		}()
		if err := run.stop(t); err != nil {
			t.Fatalf("Run: %v", err)
		}
		returned := time.Now()
		var deletedAt time.Time
		select {
		case deletedAt = <-deleted:
		case <-time.After(waitLimit):
			t.Fatalf("the znode was not deleted; logs:\n%s", run.logs)
		}
		// As in TestDrainOrder: half the drain tells a drain that
		// followed the deletion from none.
		if wait := returned.Sub(deletedAt); wait < drain/2 {
			t.Errorf("Run returned %v after the deletion, want about the drain of %v; logs:\n%s", wait, drain, run.logs)
		}
		if !strings.Contains(run.logs.String(), "could not delete the znode; trying again") {
			t.Errorf("the lost delete was not retried; logs:\n%s", run.logs)
		}
	})
}

const (
	opCreate = 1
	opDelete = 2
)

// lostRequest relays ZooKeeper frames through a proxy and, once, loses a
// request of kind op (on path, when set): the connection drops with the
// request unsent or, with answerOnly, after ZooKeeper carried it out and
// before its answer gets back. thenCut keeps the proxy cut until Restore.
type lostRequest struct {
	op         int32
	path       string
	answerOnly bool
	thenCut    bool

	proxy     *testutil.TCPProxy
	done      atomic.Bool
	answering atomic.Bool  // the answer to xid is to be lost
	xid       atomic.Int32 // the request whose answer to lose
}

func (l *lostRequest) start(t *testing.T) *testutil.TCPProxy {
	t.Helper()
	proxy, err := testutil.NewTCPProxyWith(zkServer.Addr(), l.relay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	l.proxy = proxy
	return proxy
}

func (l *lostRequest) relay(dst io.Writer, src io.Reader, toServer bool) error {
	lost := errors.New("connection lost with the request")
	return testutil.ZKRelay(func(frame []byte, toServer bool, _ io.Writer) (bool, error) {
		if !toServer {
			if x, ok := testutil.ZKReplyXid(frame); ok && l.answering.Load() && x == l.xid.Load() {
				l.answering.Store(false)
				if l.thenCut {
					l.proxy.Cut()
				}
				return false, lost
			}
			return true, nil
		}
		req, ok := testutil.ParseZKRequest(frame)
		if !ok || l.done.Load() || req.Op != l.op || (l.path != "" && req.Path != l.path) {
			return true, nil
		}
		l.done.Store(true)
		if !l.answerOnly {
			return false, lost
		}
		l.xid.Store(req.Xid)
		l.answering.Store(true)
		return true, nil
	})(dst, src, toServer)
}

// TestSecondRegistrarSameID runs two registrars for one fixed-name znode,
// as a hot handover does: the second replaces the first's znode, the
// first leaves it alone from then on (it neither takes it back nor, when
// it stops, deletes it), and a znode deleted by someone else is
// registered again.
func TestSecondRegistrarSameID(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := "/" + t.Name() + "/svc"
	node := base + "/web-1"
	opts := Options{
		Servers: []string{zkServer.Addr()},
		Path:    base,
		ID:      "web-1",
		Address: "192.0.2.70",
		Port:    8080,
		Format:  FormatHostport,
		Drain:   NoDrain,
	}
	first, second, secondOwner := handOver(t, conn, node, opts, opts)

	if err := first.stop(t); err != nil {
		t.Fatalf("first Run: %v", err)
	}
	if st := stat(t, conn, node); st.EphemeralOwner != secondOwner {
		t.Fatalf("after the first registrar stopped the znode is owned by %x, want the second's %x; logs:\n%s",
			st.EphemeralOwner, secondOwner, first.logs)
	}
	if logs := first.logs.String(); strings.Contains(logs, "msg=deregistered") || strings.Count(logs, "msg=registered") != 1 {
		t.Errorf("the first registrar registered again or deleted the second's znode; logs:\n%s", logs)
	}

	if err := conn.Delete(node, -1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second registrar to register again", func() (bool, string) {
		ok, st, err := conn.Exists(node)
		return err == nil && ok && st.EphemeralOwner == secondOwner, second.logs.String()
	})
	if !strings.Contains(second.logs.String(), "the znode was deleted by someone else") {
		t.Errorf("the re-registration was not logged; logs:\n%s", second.logs)
	}
}

// TestStopWithZooKeeperUnreachable stops a registrar that lost its
// connection: the znode goes when the session expires, a session timeout
// after the connection was lost, and the drain counts from then, so the
// stop takes at most a session timeout plus the drain from the loss.
func TestStopWithZooKeeperUnreachable(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	proxy := testutil.ProxyTo(t, zkServer.Addr())
	base := "/" + t.Name() + "/svc"
	const (
		session = 4 * time.Second // the most this server grants
		drain   = time.Second
	)
	run := start(t, Options{
		Servers:        []string{proxy.Addr()},
		SessionTimeout: session,
		Path:           base,
		Address:        "192.0.2.80",
		Port:           8080,
		Format:         FormatHostport,
		Drain:          drain,
	})
	only(t, conn, base)
	cut := time.Now()
	proxy.Cut()
	waitFor(t, "the connection loss to be noticed", func() (bool, string) {
		return strings.Contains(run.logs.String(), "zookeeper connection lost"), run.logs.String()
	})
	if err := run.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Counting the expiry from when the delete was given up on instead
	// would take another session timeout: 2.5 s of slack tells them apart.
	if took := time.Since(cut); took > session+drain+2500*time.Millisecond {
		t.Errorf("Run returned %v after the connection was lost, want at most about %v (session timeout + drain); logs:\n%s",
			took.Round(time.Millisecond), session+drain, run.logs)
	}
}

// TestTakenOverSurvivesSessionExpiry: a registrar that left its znode to
// a second registrar with the same ID must still leave it after its own
// session expired and a new one began; it may not take it back.
func TestTakenOverSurvivesSessionExpiry(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	proxy := testutil.ProxyTo(t, zkServer.Addr())
	base := "/" + t.Name() + "/svc"
	node := base + "/web-1"
	opts := Options{Path: base, ID: "web-1", Address: "192.0.2.71", Port: 8080, Format: FormatHostport, Drain: NoDrain}

	firstOpts := opts
	firstOpts.Servers, firstOpts.SessionTimeout = []string{proxy.Addr()}, time.Second
	secondOpts := opts
	secondOpts.Servers = []string{zkServer.Addr()}
	first, _, secondOwner := handOver(t, conn, node, firstOpts, secondOpts)

	proxy.Cut()
	time.Sleep(3 * time.Second) // well past the first registrar's 1 s session
	proxy.Restore()
	waitFor(t, "the first registrar's new session", func() (bool, string) {
		return strings.Contains(first.logs.String(), "new session established"), first.logs.String()
	})
	// Had it taken the znode back, it would have done so at once: it
	// reconciles as soon as the session is there.
	time.Sleep(time.Second)
	if st := stat(t, conn, node); st.EphemeralOwner != secondOwner {
		t.Errorf("after the first registrar's new session the znode is owned by %x, want the second's %x; first logs:\n%s",
			st.EphemeralOwner, secondOwner, first.logs)
	}
	if strings.Contains(first.logs.String(), "re-registered") {
		t.Errorf("the first registrar registered again; logs:\n%s", first.logs)
	}
}

// TestReplacedByPersistentZnode: a registered znode that someone replaced
// with a persistent one is somebody's data, as a registration finds it:
// the registrar leaves it alone, says so without blaming another
// registrar, and registers again once it is deleted.
func TestReplacedByPersistentZnode(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn) + "/svc"
	node := base + "/web-1"
	r := start(t, Options{Servers: []string{zkServer.Addr()}, Path: base, ID: "web-1", Address: "192.0.2.72", Port: 8080, Format: FormatHostport, Drain: NoDrain})
	only(t, conn, base)
	registered := stat(t, conn, node).EphemeralOwner
	if _, err := conn.Multi(
		&zk.DeleteRequest{Path: node, Version: -1},
		&zk.CreateRequest{Path: node, Data: []byte("192.0.2.99:1"), Acl: zk.WorldACL(zk.PermAll)},
	); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the registrar to see the persistent znode", func() (bool, string) {
		return strings.Contains(r.logs.String(), "a persistent znode replaced the registered one"), r.logs.String()
	})
	if strings.Contains(r.logs.String(), "another session") {
		t.Errorf("a persistent znode blamed on another session:\n%s", r.logs)
	}
	// Had it deleted or replaced it, it would have done so at once.
	time.Sleep(time.Second)
	if st := stat(t, conn, node); st.EphemeralOwner != 0 {
		t.Fatalf("the persistent znode was replaced by session %x; logs:\n%s", st.EphemeralOwner, r.logs)
	}
	if err := conn.Delete(node, -1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the registrar to register again", func() (bool, string) {
		ok, st, err := conn.Exists(node)
		return err == nil && ok && st.EphemeralOwner == registered, r.logs.String()
	})
}

// TestDeregisterLeavesAReplacedZnode: a deregistration that finds the
// znode replaced before the watch said so (the instance went unhealthy in
// between) treats it as the watch would: another session's or a
// persistent znode is left standing and watched, so that the instance
// registers again only once it goes; only the registration's own znode
// is deleted.
func TestDeregisterLeavesAReplacedZnode(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	other := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn)
	cases := []struct {
		name      string
		by        *zk.Conn // the session that creates the znode
		flags     int32
		wantLog   string
		wantTaken bool // left standing and watched, not deleted
	}{
		{"its own znode", conn, zk.FlagEphemeral, "deregistered", false},
		{"re-created by another session", other, zk.FlagEphemeral, "another session re-created the znode", true},
		{"replaced by a persistent znode", conn, 0, "a persistent znode replaced the registered one", true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := fmt.Sprintf("%s/svc/web-%d", base, i)
			testutil.CreateZnode(t, tc.by, p, "192.0.2.1:80", tc.flags)
			logs := &logBuffer{}
			s := &run{r: &Registrar{logger: logs.logger()}, conn: conn, node: p, nodeSession: conn.SessionID()}
			if err := s.deregister("test"); err != nil {
				t.Fatal(err)
			}
			ok, _, err := conn.Exists(p)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.wantTaken {
				t.Errorf("znode stands after deregister: %v, want %v", ok, tc.wantTaken)
			}
			if s.node != "" {
				t.Errorf("node %q after deregister, want none", s.node)
			}
			if want := map[bool]string{true: p}[tc.wantTaken]; s.takenOver != want || s.nodeEvent != tc.wantTaken {
				t.Errorf("takenOver %q, watch looked at again %v; want %q, %v", s.takenOver, s.nodeEvent, want, tc.wantTaken)
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, logs)
			}
			if ok {
				_ = tc.by.Delete(p, -1)
			}
		})
	}
}

// handOver starts a registrar with first, then a second one with second
// for the same fixed-name znode node, and returns them once the second
// has replaced the first's znode and the first has seen it, with the
// second's session.
func handOver(t *testing.T, conn *zk.Conn, node string, first, second Options) (*running, *running, int64) {
	t.Helper()
	a := start(t, first)
	only(t, conn, path.Dir(node))
	firstOwner := stat(t, conn, node).EphemeralOwner
	b := start(t, second)
	var secondOwner int64
	waitFor(t, "the second registrar to take the znode over", func() (bool, string) {
		secondOwner = stat(t, conn, node).EphemeralOwner
		return secondOwner != firstOwner, b.logs.String()
	})
	waitFor(t, "the first registrar to see it", func() (bool, string) {
		return strings.Contains(a.logs.String(), "another session re-created the znode"), a.logs.String()
	})
	return a, b, secondOwner
}

// TestStopWithUnconfirmedCreateWhileUnreachable: ZooKeeper made the
// znode but the create's answer was lost with the connection, and the
// stop comes while ZooKeeper is still unreachable. The znode cannot be
// looked for, yet it may exist: the stop closes the session to remove it
// and drains after it goes, rather than return at once and leave it
// served for a session timeout after the process is gone.
func TestStopWithUnconfirmedCreateWhileUnreachable(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := "/" + t.Name() + "/svc"
	node := base + "/web-1"
	lose := &lostRequest{op: opCreate, path: node, answerOnly: true, thenCut: true}
	proxy := lose.start(t)
	const drain = 2 * time.Second
	run := start(t, Options{
		Servers: []string{proxy.Addr()}, SessionTimeout: 4 * time.Second,
		Path: base, ID: "web-1", Address: "192.0.2.90", Port: 8080, Drain: drain,
	})
	waitFor(t, "the create's answer lost", func() (bool, string) {
		return strings.Contains(run.logs.String(), "zookeeper connection lost"), run.logs.String()
	})
	if exists, _, err := conn.Exists(node); err != nil || !exists {
		t.Fatalf("the znode whose answer was lost: exists %v, %v", exists, err)
	}
	if err := run.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// The drain runs from when the session expires, so the znode went
	// a drain's length before Run returned.
	if exists, _, err := conn.Exists(node); err != nil || exists {
		t.Errorf("znode still there (%v) when Run returned, want it gone and drained after; logs:\n%s", err, run.logs)
	}
	if !strings.Contains(run.logs.String(), `msg=draining`) {
		t.Errorf("no drain; logs:\n%s", run.logs)
	}
}

// TestStopAcrossSessionExpiry: the stop comes while ZooKeeper is
// unreachable, the session expires (taking the znode) before the
// connection is back, and the delete then finds the znode gone. The drain
// still runs, counted from the expiry, not cut to however long the
// reconnect took.
func TestStopAcrossSessionExpiry(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	proxy := testutil.ProxyTo(t, zkServer.Addr())
	base := "/" + t.Name() + "/svc"
	const session, drain = 4 * time.Second, 5 * time.Second
	run := start(t, Options{
		Servers: []string{proxy.Addr()}, SessionTimeout: session,
		Path: base, Address: "192.0.2.91", Port: 8080, Format: FormatHostport, Drain: drain,
	})
	node := only(t, conn, base)
	_, _, watch, err := conn.ExistsW(node)
	if err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	time.Sleep(session - time.Second)
	stopped := make(chan time.Time, 1)
	go func() {
		if err := run.stop(t); err != nil {
			t.Errorf("Run: %v", err)
		}
		stopped <- time.Now()
	}()
	if ev := <-watch; ev.Type != zk.EventNodeDeleted {
		t.Fatalf("znode event %v, want it deleted by the expiry", ev.Type)
	}
	deleted := time.Now()
	time.Sleep(500 * time.Millisecond)
	proxy.Restore()
	// The drain counts from the expiry as the registrar reckons it, a
	// session timeout after the loss, which may be a little before the
	// server got to it: a second of slack.
	if took := (<-stopped).Sub(deleted); took < drain-time.Second {
		t.Errorf("Run returned %v after the znode went, want about the %v drain; logs:\n%s", took.Round(time.Millisecond), drain, run.logs)
	}
}
