package faults_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdns/zkdns/internal/testutil"
)

// startEnsemble starts a three-member ensemble that is closed when the
// test ends.
func startEnsemble(t *testing.T) *testutil.Ensemble {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	e, err := testutil.StartEnsemble(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("close the ensemble: %v", err)
		}
	})
	return e
}

// startStandalone starts a one-server ZooKeeper that is stopped when the
// test ends.
func startStandalone(t *testing.T) *testutil.ZooKeeper {
	t.Helper()
	return testutil.StartZooKeeperFor(t, testutil.ZooKeeperOptions{})
}

// memberAt returns the index of the member whose client address is addr.
func memberAt(t *testing.T, e *testutil.Ensemble, addr string) int {
	t.Helper()
	i := slices.Index(e.Addrs(), addr)
	if i < 0 {
		t.Fatalf("zkdns is connected to %s, which is no member of %v", addr, e.Addrs())
	}
	return i
}

// waitLeader polls until a member other than not (-1 for any) leads.
func waitLeader(t *testing.T, e *testutil.Ensemble, not int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for {
		leader, err := e.Leader(ctx)
		if err == nil && leader != not {
			return leader
		}
		if ctx.Err() != nil {
			t.Fatalf("no new leader within %s: %v", waitLimit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noExpiry fails the test if zkdns lost its ZooKeeper session.
func noExpiry(t *testing.T, d *daemon) {
	t.Helper()
	if n := d.metric(t, "zkdns_zookeeper_session_expirations_total"); n != 0 {
		t.Errorf("zkdns_zookeeper_session_expirations_total = %v, want 0: the session must survive this fault", n)
	}
	if up := d.metric(t, "zkdns_zookeeper_connected"); up != 1 {
		t.Errorf("zkdns_zookeeper_connected = %v after the fault, want 1", up)
	}
}

// TestConnectedMemberFails takes away the member zkdns is connected to,
// by SIGKILL (the connection breaks at once) and by SIGSTOP (a hung JVM
// that keeps its port open and answers nothing, as in a long GC pause).
// zkdns must move to another member in time to keep its session, and its
// answers must never change or stop.
func TestConnectedMemberFails(t *testing.T) {
	tests := []struct {
		name  string
		fail  func(m *testutil.Member) error
		heal  func(ctx context.Context, m *testutil.Member) error
		cause string
	}{
		{
			name:  "killed",
			fail:  (*testutil.Member).Kill,
			heal:  func(ctx context.Context, m *testutil.Member) error { return m.Restart(ctx) },
			cause: "SIGKILL",
		},
		{
			name:  "hung",
			fail:  (*testutil.Member).Pause,
			heal:  func(_ context.Context, m *testutil.Member) error { return m.Resume() },
			cause: "SIGSTOP",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startEnsemble(t)
			conn := connectZK(t, e.Addrs())
			base := "/" + t.Name()
			services := []service{{"alpha", base + "/alpha"}, {"beta", base + "/beta"}}
			putInstance(t, conn, services[0].path, "a1", "192.0.2.1")
			putInstance(t, conn, services[0].path, "a2", "192.0.2.2")
			putInstance(t, conn, services[1].path, "b1", "198.51.100.1")
			d := startDaemon(t, writeConfig(t, e.Addrs(), "127.0.0.1:0", services...))
			waitConverged(t, d, conn, services, time.Now(), waitLimit)

			sessions := d.sessionServers()
			if len(sessions) != 1 {
				t.Fatalf("zkdns established %d sessions before any fault, want 1: %v", len(sessions), sessions)
			}
			victim := e.Member(memberAt(t, e, sessions[0]))
			p := startProber(d.dns, exactly(map[string][]string{
				"alpha": {"192.0.2.1", "192.0.2.2"},
				"beta":  {"198.51.100.1"},
			}), "alpha", "beta")
			p.waitRounds(t, 20)
			modeCtx, cancelMode := context.WithTimeout(context.Background(), 5*time.Second)
			role, err := victim.Mode(modeCtx)
			cancelMode()
			if err != nil {
				t.Fatal(err)
			}

			failedAt := time.Now()
			if err := tt.fail(victim); err != nil {
				t.Fatal(err)
			}
			// How long the move may take is the ensemble's to say: it
			// expires the session a session timeout after it last heard
			// from zkdns, or after a new leader took over when the
			// victim led, which on a loaded machine can take seconds of
			// its own. noExpiry below checks the session was kept.
			for len(d.sessionServers()) == len(sessions) {
				if time.Since(failedAt) > waitLimit {
					t.Fatalf("zkdns found no other member within %s", waitLimit)
				}
				time.Sleep(20 * time.Millisecond)
			}
			moved := time.Since(failedAt)
			now := d.sessionServers()
			if next := now[len(now)-1]; next == victim.Addr() {
				t.Errorf("zkdns reconnected to the failed member %s", next)
			}
			t.Logf("after %s of member %d (the %s) zkdns moved to %s in %s (session timeout %s)",
				tt.cause, victim.Index(), role, now[len(now)-1], moved.Round(time.Millisecond), sessionTimeout)
			p.waitRounds(t, 20)

			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			if err := tt.heal(ctx, victim); err != nil {
				t.Fatal(err)
			}
			waitConverged(t, d, conn, services, time.Now(), convergeBound)
			p.stop(t)
			noExpiry(t, d)
			if n := d.metric(t, "zkdns_zookeeper_reconnects_total"); n < 1 {
				t.Errorf("zkdns_zookeeper_reconnects_total = %v, want the reconnect counted", n)
			}
		})
	}
}

// TestWholeEnsembleDown stops all three members for longer than zkdns's
// session timeout. The owners of two instances die meanwhile; two new
// instances register once the ensemble is back. zkdns must answer the
// last known set the whole time, say that it is cut off (metric, /readyz,
// STATUS=), and then move to the new set: the dead owners' instances gone,
// the new ones present, never an empty answer.
//
// ZooKeeper restores sessions from its log when the ensemble returns and
// times them out afresh, so a zkdns that comes straight back keeps its
// session ("returns at once"). To take the expiry path too, the second case
// keeps zkdns cut off (through proxies) for a session timeout after the
// ensemble is back: the ensemble expires the session, and zkdns must open
// a new one, resync and swap once, straight from the old set to the new.
func TestWholeEnsembleDown(t *testing.T) {
	tests := []struct {
		name string
		// expire keeps zkdns away from the returned ensemble until its
		// session has expired there.
		expire bool
	}{
		{name: "zkdns returns at once and keeps its session"},
		{name: "zkdns returns after its session expired", expire: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { testWholeEnsembleDown(t, tt.expire) })
	}
}

func testWholeEnsembleDown(t *testing.T, expire bool) {
	e := startEnsemble(t)
	conn := connectZK(t, e.Addrs())
	base := "/" + t.Name()
	services := []service{{"alpha", base + "/alpha"}, {"beta", base + "/beta"}}
	putInstance(t, conn, services[0].path, "stays", "192.0.2.1")
	putInstance(t, conn, services[1].path, "stays", "198.51.100.1")
	holder := hold(t, e.Addrs(), services[0].path+"/goes=192.0.2.2:80", services[1].path+"/goes=198.51.100.2:80")

	// zkdns reaches each member through a proxy that can cut it off.
	var proxies []*testutil.TCPProxy
	var zkdnsServers []string
	for _, addr := range e.Addrs() {
		proxy, err := testutil.NewTCPProxy(addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = proxy.Close() })
		proxies = append(proxies, proxy)
		zkdnsServers = append(zkdnsServers, proxy.Addr())
	}
	notify := testutil.ListenNotify(t)
	d := startDaemon(t, writeConfig(t, zkdnsServers, "127.0.0.1:0", services...), "NOTIFY_SOCKET="+notify.Path)
	waitConverged(t, d, conn, services, time.Now(), waitLimit)
	before, err := fromDNS(d.dns, services)
	if err != nil {
		t.Fatal(err)
	}
	if before["alpha"].a != "192.0.2.1,192.0.2.2" || before["beta"].a != "198.51.100.1,198.51.100.2" {
		t.Fatalf("before the outage zkdns answers %v, want both instances of each service", before)
	}
	oldSets := map[string][]string{"alpha": {"192.0.2.1", "192.0.2.2"}, "beta": {"198.51.100.1", "198.51.100.2"}}
	newSets := map[string][]string{"alpha": {"192.0.2.1", "192.0.2.3"}, "beta": {"198.51.100.1", "198.51.100.3"}}
	allowed := within(map[string][]string{
		"alpha": {"192.0.2.1", "192.0.2.2", "192.0.2.3"},
		"beta":  {"198.51.100.1", "198.51.100.2", "198.51.100.3"},
	})
	if expire {
		allowed = oneOf(oldSets, newSets) // one swap, nothing in between
	}
	p := startProber(d.dns, allowed, "alpha", "beta")
	p.waitRounds(t, 20)

	downAt := time.Now()
	notifyMark := notify.Count()
	if expire {
		for _, proxy := range proxies {
			proxy.Cut()
		}
	}
	for i := range e.Size() {
		if err := e.Member(i).Stop(); err != nil {
			t.Fatal(err)
		}
	}
	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Down for longer than the session timeout, checking all along that
	// the last known answers are served exactly.
	serveLastKnown(t, d, services, before, downAt, sessionTimeout+2*time.Second)
	if up := d.metric(t, "zkdns_zookeeper_connected"); up != 0 {
		t.Errorf("zkdns_zookeeper_connected = %v with the whole ensemble down, want 0", up)
	}
	code, body := d.get(t, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "unreachable") {
		t.Errorf("/readyz with the ensemble down past the session timeout = %d %q, want 503 with the reason", code, body)
	}
	if status := notify.StatusSince(notifyMark); !slices.ContainsFunc(status, func(s string) bool {
		return strings.Contains(s, "disconnected")
	}) {
		t.Errorf("no STATUS= saying ZooKeeper is disconnected during the outage; got %q", status)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	backAt := time.Now()
	putInstance(t, conn, services[0].path, "joins", "192.0.2.3")
	putInstance(t, conn, services[1].path, "joins", "198.51.100.3")
	// The dead owners' sessions are restored with the ensemble and expire
	// one (1 s) timeout later; only then does ZooKeeper drop their znodes.
	for _, s := range services {
		waitGone(t, conn, s.path+"/goes", backAt, convergeBound)
	}
	if expire {
		// The restored session of zkdns expires a session timeout after
		// the ensemble is back; keep zkdns away until it has.
		serveLastKnown(t, d, services, before, backAt, sessionTimeout+2*time.Second)
		for _, proxy := range proxies {
			proxy.Restore()
		}
		backAt = time.Now()
	}
	waitConverged(t, d, conn, services, backAt, convergeBound)
	after, err := fromDNS(d.dns, services)
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"alpha", "beta"} {
		if after[svc].a != strings.Join(newSets[svc], ",") {
			t.Errorf("after the outage %s answers %v, want %v: the dead owner's instance gone, the new one present", svc, after[svc], newSets[svc])
		}
	}
	p.stop(t)
	if code, body := d.get(t, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after the ensemble came back = %d %q, want 200", code, body)
	}
	if up := d.metric(t, "zkdns_zookeeper_connected"); up != 1 {
		t.Errorf("zkdns_zookeeper_connected = %v after the ensemble came back, want 1", up)
	}
	wantExpired, wantSyncs := 0.0, 1.0
	if expire {
		wantExpired, wantSyncs = 1, 2
	}
	if n := d.metric(t, "zkdns_zookeeper_session_expirations_total"); n != wantExpired {
		t.Errorf("zkdns_zookeeper_session_expirations_total = %v, want %v", n, wantExpired)
	}
	if n := d.metric(t, "zkdns_zookeeper_full_syncs_total"); n != wantSyncs {
		t.Errorf("zkdns_zookeeper_full_syncs_total = %v, want %v", n, wantSyncs)
	}
}

// serveLastKnown checks, until since+span, that zkdns keeps answering
// exactly the last known set.
func serveLastKnown(t *testing.T, d *daemon, services []service, last map[string]answerSet, since time.Time, span time.Duration) {
	t.Helper()
	for time.Since(since) < span {
		got, err := fromDNS(d.dns, services)
		if err != nil || !equalSets(got, last) {
			t.Fatalf("%s into the outage zkdns answered %v (%v), want the last known %v",
				time.Since(since).Round(time.Millisecond), got, err, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// churn creates and deletes instances under services from its own
// session until stopped, ignoring the errors a fault causes: what counts
// is the state it leaves in ZooKeeper, which the test reads back.
type churn struct {
	cancel context.CancelFunc
	done   chan struct{}
	ops    atomic.Int64 // successful creates and deletes
}

// churnSlots is how many instance names each service's churn cycles
// through; its addresses are 192.0.2.(100+slot) and 198.51.100.(100+slot).
const churnSlots = 10

func startChurn(t *testing.T, servers []string, services []service) *churn {
	t.Helper()
	conn, _, err := zk.Connect(servers, 30*time.Second, zk.WithLogger(discardLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &churn{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer conn.Close()
		prefixes := []string{"192.0.2.", "198.51.100."}
		for ctx.Err() == nil {
			i := rand.IntN(len(services))
			slot := rand.IntN(churnSlots)
			p := fmt.Sprintf("%s/churn-%d", services[i].path, slot)
			data := fmt.Sprintf("%s%d:80", prefixes[i%len(prefixes)], 100+slot)
			_, err := conn.Create(p, []byte(data), 0, zk.WorldACL(zk.PermAll))
			if errors.Is(err, zk.ErrNodeExists) {
				err = conn.Delete(p, -1)
			}
			if err == nil {
				c.ops.Add(1)
			}
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(c.stop)
	return c
}

// stop ends the churn and waits until its session is closed.
func (c *churn) stop() {
	c.cancel()
	<-c.done
}

// TestLeaderElectionUnderLoad kills the leader while instances churn and
// queries run: the anchor instances (which never leave) must be in every
// answer, zkdns keeps its session, and after the churn stops its answers
// equal what ZooKeeper holds.
func TestLeaderElectionUnderLoad(t *testing.T) {
	e := startEnsemble(t)
	conn := connectZK(t, e.Addrs())
	base := "/" + t.Name()
	services := []service{{"alpha", base + "/alpha"}, {"beta", base + "/beta"}}
	putInstance(t, conn, services[0].path, "anchor", "192.0.2.1")
	putInstance(t, conn, services[1].path, "anchor", "198.51.100.1")
	d := startDaemon(t, writeConfig(t, e.Addrs(), "127.0.0.1:0", services...))
	waitConverged(t, d, conn, services, time.Now(), waitLimit)

	p := startProber(d.dns, including(map[string][]string{
		"alpha": {"192.0.2.1"},
		"beta":  {"198.51.100.1"},
	}), "alpha", "beta")
	c := startChurn(t, e.Addrs(), services)
	p.waitRounds(t, 20)
	time.Sleep(time.Second)

	leader := waitLeader(t, e, -1)
	opsBefore := c.ops.Load()
	killedAt := time.Now()
	if err := e.Member(leader).Kill(); err != nil {
		t.Fatal(err)
	}
	next := waitLeader(t, e, leader)
	t.Logf("member %d took over from member %d in %s; %d churn operations before",
		next, leader, time.Since(killedAt).Round(time.Millisecond), opsBefore)
	time.Sleep(2 * time.Second) // churn under the new leader
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := e.Member(leader).Restart(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // and with the old leader back as a follower
	c.stop()
	if after := c.ops.Load(); after <= opsBefore {
		t.Errorf("the churn made no progress after the election (%d operations before, %d after)", opsBefore, after)
	}
	waitConverged(t, d, conn, services, time.Now(), convergeBound)
	p.stop(t)
	noExpiry(t, d)
}

// TestZooKeeperRestartSameData restarts ZooKeeper with its data kept, the
// way an operator's upgrade does: every ensemble member in turn, and a
// standalone server. After each restart a new instance registers; answers
// must never fail or lose the anchor, zkdns keeps its session, and it
// converges after each step.
func TestZooKeeperRestartSameData(t *testing.T) {
	tests := []struct {
		name string
		// start returns the servers for zkdns and one restart function per
		// step.
		start func(t *testing.T) ([]string, []func(context.Context) error)
	}{
		{name: "rolling restart of the ensemble", start: func(t *testing.T) ([]string, []func(context.Context) error) {
			e := startEnsemble(t)
			var steps []func(context.Context) error
			for i := range e.Size() {
				steps = append(steps, e.Member(i).Restart)
			}
			return e.Addrs(), steps
		}},
		{name: "standalone server restart", start: func(t *testing.T) ([]string, []func(context.Context) error) {
			z := startStandalone(t)
			return []string{z.Addr()}, []func(context.Context) error{z.Restart, z.Restart}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servers, restarts := tt.start(t)
			conn := connectZK(t, servers)
			base := "/" + t.Name()
			services := []service{{"alpha", base + "/alpha"}}
			putInstance(t, conn, services[0].path, "anchor", "192.0.2.1")
			d := startDaemon(t, writeConfig(t, servers, "127.0.0.1:0", services...))
			waitConverged(t, d, conn, services, time.Now(), waitLimit)
			p := startProber(d.dns, including(map[string][]string{"alpha": {"192.0.2.1"}}), "alpha")
			p.waitRounds(t, 20)
			for i, restart := range restarts {
				ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
				err := restart(ctx)
				cancel()
				if err != nil {
					t.Fatalf("restart %d: %v", i+1, err)
				}
				back := time.Now()
				putInstance(t, conn, services[0].path, fmt.Sprintf("after-restart-%d", i+1), fmt.Sprintf("192.0.2.%d", 10+i))
				waitConverged(t, d, conn, services, back, convergeBound)
				p.waitRounds(t, 5)
			}
			p.stop(t)
			noExpiry(t, d)
		})
	}
}
