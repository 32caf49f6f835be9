package registrar

// A seeded model test: one Registrar runs on a real ZooKeeper, through a
// proxy that can cut its connection, while the test takes a random walk
// of what happens around a registered instance in production: its health
// check passes and fails, its connection drops for a moment or for longer
// than the session, someone deletes its znode, a second registrar with the
// same ID takes the znode over and later goes away, or nothing happens for
// a while; a third of the deletions, take-overs and goings happen while
// the registrar's connection is cut for a moment. After each step the test waits for ZooKeeper to show what the
// registrar promises (see modelRun.violation), and a sampler watching the
// service path all along fails the test if two znodes of the instance
// ever stand at once.
//
// A failure prints its seed and step; replay it with
//
//	go test ./registrar -run TestRegistrarModel -regmodel.seed=N -regmodel.steps=M
//
// make test runs one fixed seed; -regmodel.seed=-1 draws one from the
// clock, to explore:
//
//	for i in $(seq 20); do go test -race -count=1 ./registrar -run TestRegistrarModel -regmodel.seed=-1 || break; done

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdns/zkdns/internal/testutil"
	"github.com/zkdns/zkdns/zkwatch"
)

var (
	regModelSeed  = flag.Int64("regmodel.seed", 0, "TestRegistrarModel: seed of its random walk (0: a fixed one; -1: from the clock)")
	regModelSteps = flag.Int("regmodel.steps", 0, "TestRegistrarModel: how many steps each format takes (0: the default)")
)

const (
	// regModelDefaultSeed is the seed of a run given none, picked for a
	// default run that covers the rare steps: its curator walk expires the
	// session twice, has a second registrar take the znode over once while
	// the registrar's connection is cut and once while it is not, flaps
	// the check while the znode is taken over, and closes the second
	// registrar's session while the registrar is cut off; its serverset
	// walk cuts and flaps.
	regModelDefaultSeed = 3
	// regModelDefaultSteps per format keeps a run under about 40 s under
	// the race detector on a busy two-core machine: an expiry step alone
	// takes about 7 s.
	regModelDefaultSteps = 10
	// regModelSession is the registrar's session timeout. A brief cut
	// must not expire it: go-zookeeper sleeps 1 s after a failed pass
	// over its servers before it dials again, so a cut of a few hundred
	// milliseconds costs over a second without a connection, and more
	// on a host whose hypervisor steals half the CPU. An expiry the
	// model did not plan breaks it: a takeover made during the cut then
	// dies unseen with the session's watches, and the registrar rightly
	// replaces the znode as a crashed run's. 4 s leaves room for that; it
	// is the most the server's tickTime of 200 ms grants (20 ticks).
	regModelSession = 4 * time.Second
	// regModelSettle bounds the wait for ZooKeeper to show what the
	// model expects after a step. The longest legitimate path: the
	// reconnect after an expiry (up to the client's 1 s pause, then a
	// handshake), the registrar's 1 s retry delay after a failed request,
	// Rise checks.
	regModelSettle = 10 * time.Second
	// regModelSteady is how long a settled state must hold unbroken: a
	// registrar that takes a znode back or deletes one a moment after
	// getting it right is caught here.
	regModelSteady   = 300 * time.Millisecond
	regModelLogLines = 200
	// The instance.
	regModelAddress = "192.0.2.123"
	regModelPort    = 8080
	regModelID      = "web-1"
	// The second registrar's address, in the payload of the znode it
	// takes over.
	regModelOtherAddress = "192.0.2.201"
)

func TestRegistrarModel(t *testing.T) {
	seed, steps := testutil.SeededWalk(*regModelSeed, regModelDefaultSeed, *regModelSteps, regModelDefaultSteps)
	t.Logf("seed %d, %d steps per format (replay: -regmodel.seed=%d -regmodel.steps=%d)", seed, steps, seed, steps)
	baseline := len(testutil.Goroutines(zkGoroutineMarks...))
	for i, format := range []string{FormatCurator, FormatServerset} {
		t.Run(format, func(t *testing.T) {
			runRegistrarModel(t, format, seed, seed+int64(i), steps)
		})
	}
	// Every session the subtests opened is closed by now, theirs and the
	// registrar's: what runs on in the ZooKeeper client or the registrar
	// was left behind.
	testutil.Eventually(t, regModelSettle, "no goroutine of a registrar or a ZooKeeper client left", func() (bool, string) {
		g := testutil.Goroutines(zkGoroutineMarks...)
		return len(g) <= baseline, fmt.Sprintf("%d goroutines, %d before the test:\n\n%s", len(g), baseline, strings.Join(g, "\n\n"))
	})
}

// regModelLog keeps the registrar's last log lines and the session it
// reported last: the one its znode must belong to.
type regModelLog struct {
	tail    *testutil.LogTail
	session atomic.Int64
	// sessions counts the lines reporting a session: established, intact
	// after a reconnect, or new.
	sessions atomic.Int64
}

var regModelSessionRE = regexp.MustCompile(`msg="zookeeper [^"]*session[^"]*" .*\bsession=0x([0-9a-f]+)`)

func (l *regModelLog) Write(p []byte) (int, error) {
	if m := regModelSessionRE.FindSubmatch(p); m != nil {
		if id, err := strconv.ParseUint(string(m[1]), 16, 64); err == nil {
			l.session.Store(int64(id))
			l.sessions.Add(1)
		}
	}
	return l.tail.Write(p)
}

// modelRun is one walk: the registrar, the test's clients, and the model
// of what ZooKeeper must show.
type modelRun struct {
	t      *testing.T
	rnd    *rand.Rand
	seed   int64
	format string
	base   string // the service path
	node   string // the fixed-name znode (curator)
	proxy  *testutil.TCPProxy
	conn   *zk.Conn // the test's own, straight to the server
	log    *regModelLog
	health *atomic.Bool
	cancel context.CancelFunc
	done   chan error

	// The model.
	healthy bool
	// other is the second registrar's session, nil when there is none.
	other *zk.Conn
	// otherHolds: other's znode stands at node, created with otherCzxid.
	otherHolds bool
	otherCzxid int64
	// takenOver: other re-created node while the registrar had it, so the
	// registrar must leave it alone until it goes. When other created it
	// while the registrar had none, it looks like a crashed earlier run's
	// znode, which the registrar replaces as soon as it registers.
	takenOver bool

	history []string

	// Set by the sampler.
	mu        sync.Mutex
	twoAtOnce string
}

func runRegistrarModel(t *testing.T, format string, seed, walkSeed int64, steps int) {
	m := &modelRun{
		t:      t,
		rnd:    rand.New(rand.NewSource(walkSeed)),
		seed:   seed,
		format: format,
		proxy:  testutil.ProxyTo(t, zkServer.Addr()),
		log:    &regModelLog{tail: testutil.NewLogTail(regModelLogLines)},
		health: &atomic.Bool{},
		done:   make(chan error, 1),
	}
	conn, _, err := zk.Connect([]string{zkServer.Addr()}, 10*time.Second, zk.WithLogger(discardLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	m.conn = conn
	m.base = testutil.TestRoot(t, conn) + "/svc"
	m.node = path.Join(m.base, regModelID)
	testutil.MkdirAll(t, conn, m.base)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !m.health.Load() {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	m.healthy = m.rnd.Intn(2) == 0
	m.health.Store(m.healthy)

	r, err := New(Options{
		Servers:        []string{m.proxy.Addr()},
		SessionTimeout: regModelSession,
		Path:           m.base,
		ID:             regModelID,
		Address:        regModelAddress,
		Port:           regModelPort,
		Format:         format,
		Check:          srv.URL,
		Interval:       30 * time.Millisecond,
		Timeout:        500 * time.Millisecond,
		Rise:           2,
		Fall:           2,
		Drain:          NoDrain,
		Logger:         slog.New(slog.NewTextHandler(m.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() { m.done <- r.Run(ctx) }()
	stopSampler := m.sample()
	defer func() {
		stopSampler()
		m.cancel()
		if m.other != nil {
			m.other.Close()
		}
		m.conn.Close()
	}()

	m.settle(0, "start")
	for step := 1; step <= steps; step++ {
		began := time.Now()
		what := m.step()
		m.history = append(m.history, fmt.Sprintf("%d: %s", step, what))
		m.settle(step, what)
		t.Logf("step %d: %s; settled after %v", step, what, time.Since(began).Round(time.Millisecond))
	}

	// Stop: Run returns nil, and the znode is gone unless it is the
	// second registrar's.
	stopSampler()
	m.cancel()
	select {
	case err := <-m.done:
		if err != nil {
			m.fail(steps, "Run returned %v, want nil", err)
		}
	case <-time.After(waitLimit):
		m.fail(steps, "Run did not return within %v of the cancel", waitLimit)
	}
	m.healthy = false
	m.history = append(m.history, "stop")
	m.settle(steps+1, "stop")
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// step takes one random step and says what it did.
func (m *modelRun) step() string {
	curator := m.format == FormatCurator
	for {
		switch n := m.rnd.Intn(100); {
		case n < 30:
			m.healthy = !m.healthy
			m.health.Store(m.healthy)
			if m.healthy && m.otherHolds && !m.takenOver {
				// Not taken from it: left by someone it cannot tell from
				// a crashed earlier run. Replaced on registering.
				m.otherHolds = false
			}
			return fmt.Sprintf("check turns healthy=%v", m.healthy)
		case n < 42:
			d := time.Duration(m.rnd.Intn(300)) * time.Millisecond
			m.cut(d, nil)
			return fmt.Sprintf("connection cut for %v", d)
		case n < 49:
			// Long past the session timeout: the server expires the
			// session; the registrar learns it on reconnecting.
			d := regModelSession + time.Second
			m.cut(d, nil)
			return fmt.Sprintf("connection cut for %v (session expires)", d)
		case n < 62:
			kids := m.children()
			if len(kids) == 0 {
				continue
			}
			p := path.Join(m.base, kids[m.rnd.Intn(len(kids))])
			return m.maybeCut(func() string {
				if err := m.conn.Delete(p, -1); err != nil {
					m.fail(len(m.history)+1, "delete %s: %v", p, err)
				}
				if p == m.node && m.otherHolds {
					m.otherHolds, m.takenOver = false, false
				}
				return "another client deletes " + p
			})
		case n < 76 && curator && !m.otherHolds:
			return m.maybeCut(m.takeOver)
		case n < 88 && curator && m.other != nil:
			return m.maybeCut(func() string {
				m.other.Close()
				m.other = nil
				m.otherHolds, m.takenOver = false, false
				return "the second registrar's session closes"
			})
		case n >= 88:
			d := time.Duration(300+m.rnd.Intn(700)) * time.Millisecond
			time.Sleep(d)
			return fmt.Sprintf("nothing for %v", d)
		}
	}
}

// cut cuts the registrar's connection for d, and waits until it has a
// session again, so that the next settle looks at what it did once back.
func (m *modelRun) cut(d time.Duration, meanwhile func()) {
	sessions := m.log.sessions.Load()
	m.proxy.Cut()
	if meanwhile != nil {
		meanwhile()
	}
	time.Sleep(d)
	m.proxy.Restore()
	deadline := time.Now().Add(regModelSettle)
	for m.log.sessions.Load() == sessions {
		if time.Now().After(deadline) {
			m.fail(len(m.history)+1, "no session again within %v of restoring the connection", regModelSettle)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// maybeCut runs change, a third of the time while the registrar's
// connection is cut for a moment: the watch it sends again on the
// reconnect must tell it of the change.
func (m *modelRun) maybeCut(change func() string) string {
	if m.rnd.Intn(3) > 0 {
		return change()
	}
	var what string
	d := time.Duration(m.rnd.Intn(300)) * time.Millisecond
	m.cut(d, func() { what = change() })
	return fmt.Sprintf("%s while the registrar's connection is cut for %v", what, d)
}

// takeOver has a second registrar's session re-create node as its own
// ephemeral, the way a registrar started with the same ID does (see
// replace).
func (m *modelRun) takeOver() string {
	if m.other == nil {
		other, _, err := zk.Connect([]string{zkServer.Addr()}, 10*time.Second, zk.WithLogger(discardLogger{}))
		if err != nil {
			m.t.Fatal(err)
		}
		m.other = other
	}
	info := instanceInfo{name: "svc", id: regModelID, address: regModelOtherAddress, port: regModelPort}
	data, err := encodePayload(FormatCurator, info, time.Now(), false)
	if err != nil {
		m.t.Fatal(err)
	}
	acl := zk.WorldACL(zk.PermAll)
	ok, st, err := m.other.Exists(m.node)
	if err != nil {
		m.fail(len(m.history)+1, "stat %s: %v", m.node, err)
	}
	what := "a second registrar creates " + m.node
	if ok {
		_, err = m.other.Multi(
			&zk.DeleteRequest{Path: m.node, Version: st.Version},
			&zk.CreateRequest{Path: m.node, Data: data, Acl: acl, Flags: zk.FlagEphemeral},
		)
		what = "a second registrar replaces " + m.node
	} else {
		_, err = m.other.Create(m.node, data, zk.FlagEphemeral, acl)
	}
	if err != nil {
		m.fail(len(m.history)+1, "%s: %v", what, err)
	}
	_, st, err = m.other.Exists(m.node)
	if err != nil {
		m.fail(len(m.history)+1, "stat %s: %v", m.node, err)
	}
	// The model is settled before each step: the registrar holds the
	// znode exactly when it is healthy.
	m.otherHolds, m.otherCzxid, m.takenOver = true, st.Czxid, ok
	return what
}

// children lists the service path's children.
func (m *modelRun) children() []string {
	kids, _, err := m.conn.Children(m.base)
	if err != nil {
		m.fail(len(m.history), "children of %s: %v", m.base, err)
	}
	return kids
}

// violation returns what ZooKeeper shows against the model, "" when
// nothing:
//   - while the second registrar's znode stands, it is left alone (not
//     deleted, not replaced) and the registrar holds no other znode;
//   - otherwise, while healthy exactly one znode of the instance stands,
//     an ephemeral of the registrar's current session with the right
//     payload; while unhealthy none.
func (m *modelRun) violation() string {
	kids, _, err := m.conn.Children(m.base)
	if err != nil {
		return fmt.Sprintf("children of %s: %v", m.base, err)
	}
	if m.otherHolds {
		if len(kids) != 1 || kids[0] != regModelID {
			return fmt.Sprintf("children %v, want only the second registrar's %s", kids, regModelID)
		}
		ok, st, err := m.conn.Exists(m.node)
		if err != nil || !ok {
			return fmt.Sprintf("the second registrar's %s: exists=%v err=%v", m.node, ok, err)
		}
		if st.Czxid != m.otherCzxid || st.EphemeralOwner != m.other.SessionID() {
			return fmt.Sprintf("the second registrar's %s was replaced: czxid %d owner 0x%x, want %d 0x%x",
				m.node, st.Czxid, st.EphemeralOwner, m.otherCzxid, m.other.SessionID())
		}
		return ""
	}
	if !m.healthy {
		if len(kids) != 0 {
			return fmt.Sprintf("unhealthy, yet %s has children %v", m.base, kids)
		}
		return ""
	}
	if len(kids) != 1 {
		return fmt.Sprintf("healthy, and %s has children %v, want exactly one", m.base, kids)
	}
	name := kids[0]
	if m.format == FormatCurator && name != regModelID || m.format == FormatServerset && !strings.HasPrefix(name, serversetPrefix) {
		return fmt.Sprintf("znode named %s, want %s", name, map[bool]string{true: regModelID, false: serversetPrefix + "N"}[m.format == FormatCurator])
	}
	p := path.Join(m.base, name)
	data, st, err := m.conn.Get(p)
	if err != nil {
		return fmt.Sprintf("get %s: %v", p, err)
	}
	session := m.log.session.Load()
	if st.EphemeralOwner == 0 || st.EphemeralOwner != session {
		return fmt.Sprintf("%s is owned by session 0x%x, want the registrar's current session 0x%x", p, st.EphemeralOwner, session)
	}
	inst, err := zkwatch.Decode(m.format, "", zkwatch.Node{Name: name, Data: data, Ctime: time.UnixMilli(st.Ctime)})
	if err != nil {
		return fmt.Sprintf("decode %s: %v: %s", p, err, data)
	}
	if inst.Address != regModelAddress || inst.Port != regModelPort || !inst.Healthy {
		return fmt.Sprintf("%s decodes as %+v, want %s:%d healthy", p, inst, regModelAddress, regModelPort)
	}
	if m.format == FormatCurator {
		var c struct{ ID string }
		if err := json.Unmarshal(data, &c); err != nil || c.ID != regModelID {
			return fmt.Sprintf("%s has id %q (%v), want %s", p, c.ID, err, regModelID)
		}
	}
	return ""
}

// settle waits until ZooKeeper shows what the model expects, unbroken for
// regModelSteady, failing the test after regModelSettle.
func (m *modelRun) settle(step int, what string) {
	deadline := time.Now().Add(regModelSettle)
	var since time.Time
	for {
		v := m.violation()
		now := time.Now()
		switch {
		case v != "":
			since = time.Time{}
		case since.IsZero():
			since = now
		case now.Sub(since) >= regModelSteady:
			m.mu.Lock()
			two := m.twoAtOnce
			m.mu.Unlock()
			if two != "" {
				m.fail(step, "two znodes of the instance at once: %s", two)
			}
			return
		}
		if now.After(deadline) {
			m.fail(step, "after %q, not settled within %v: %s", what, regModelSettle, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sample watches the service path until the returned func is called, and
// records the first time two znodes of the instance stand at once. With
// curator the fixed name allows no second one; with serverset the
// registrar must delete its member before it creates another.
func (m *modelRun) sample() (stop func()) {
	conn, _, err := zk.Connect([]string{zkServer.Addr()}, 10*time.Second, zk.WithLogger(discardLogger{}))
	if err != nil {
		m.t.Fatal(err)
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer conn.Close()
		for {
			select {
			case <-quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
			kids, _, err := conn.Children(m.base)
			if err != nil {
				continue
			}
			bad := len(kids) > 1
			for _, k := range kids {
				if m.format == FormatCurator && k != regModelID || m.format == FormatServerset && !strings.HasPrefix(k, serversetPrefix) {
					bad = true
				}
			}
			if bad {
				m.mu.Lock()
				if m.twoAtOnce == "" {
					m.twoAtOnce = fmt.Sprintf("%s had children %v", m.base, kids)
				}
				m.mu.Unlock()
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			wg.Wait()
		})
	}
}

func (m *modelRun) fail(step int, format string, args ...any) {
	m.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d (%s), step %d: %s\n", m.seed, m.format, step, fmt.Sprintf(format, args...))
	fmt.Fprintf(&b, "replay: -run 'TestRegistrarModel/%s' -regmodel.seed=%d -regmodel.steps=%d\n\n", m.format, m.seed, max(step, 1))
	fmt.Fprintf(&b, "model: healthy=%v otherHolds=%v takenOver=%v registrar session 0x%x\n",
		m.healthy, m.otherHolds, m.takenOver, m.log.session.Load())
	b.WriteString("history:\n")
	for _, h := range m.history {
		b.WriteString("  " + h + "\n")
	}
	b.WriteString("\nregistrar log (last lines):\n")
	b.WriteString(m.log.tail.String())
	m.t.Fatal(b.String())
}
