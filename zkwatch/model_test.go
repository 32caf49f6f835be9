package zkwatch

// A model-based randomized test: random changes to a small tree in a real
// ZooKeeper, and to the watcher's spec, in bursts; after each burst the
// watcher's published view must come to equal what a plain client reads
// from ZooKeeper, and stay equal until the next burst.
//
// A failure prints its seed and op count; replay it with
//
//	go test ./zkwatch -run TestWatcherModel -model.seed=N -model.ops=M
//
// (or ZKDNS_MODEL_SEED and ZKDNS_MODEL_OPS in the environment). make test
// runs one fixed seed, so that the ops it tries are the same on every run
// and a failure there points at a change, not at the draw; -model.seed=-1
// draws a new seed from the clock, to explore:
//
//	for i in $(seq 50); do go test -race -count=1 ./zkwatch -run TestWatcherModel -model.seed=-1 || break; done

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdns/zkdns/internal/testutil"
)

var (
	modelSeed = flag.Int64("model.seed", 0, "TestWatcherModel: seed of its random ops (0: ZKDNS_MODEL_SEED, or else a fixed one; -1: from the clock)")
	modelOps  = flag.Int("model.ops", 0, "TestWatcherModel: how many random ops it runs (0: the default, or ZKDNS_MODEL_OPS)")
)

// modelDefaultOps keeps a run well under 30 s under the race detector on a
// busy two-core machine.
const modelDefaultOps = 200

// modelLogLines is how many of the watcher's last log lines a failure
// shows.
const modelLogLines = 400

// modelDefaultSeed is the seed of a run given none.
const modelDefaultSeed = 20261122

// modelConverge bounds the wait for the view to match ZooKeeper after a
// burst; a cut connection takes a second or two to come back.
const modelConverge = 10 * time.Second

func modelParams(t *testing.T) (seed int64, ops int) {
	seed, ops = *modelSeed, *modelOps
	if seed == 0 {
		if v := os.Getenv("ZKDNS_MODEL_SEED"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("ZKDNS_MODEL_SEED=%q: %v", v, err)
			}
			seed = n
		}
	}
	if ops == 0 {
		if v := os.Getenv("ZKDNS_MODEL_OPS"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("ZKDNS_MODEL_OPS=%q: %v", v, err)
			}
			ops = n
		}
	}
	return testutil.SeededWalk(seed, modelDefaultSeed, ops, modelDefaultOps)
}

// The universe: four configured service slots (the fourth takes one of
// three shapes: a plain service, one named like a discovered service, one
// at a discovered service's path), one discover root with up to three
// services, each service with up to four instances of fixed names.
var (
	modelServicePaths = []string{"cfg/c0", "cfg/c1", "cfg/c2", "cfg/c3", "disc/d0", "disc/d1", "disc/d2"}
	modelInstanceIDs  = []string{"i0", "i1", "i2", "i3"}
	modelFormats      = []string{"auto", "hostport", "curator"}
)

// modelSlot3 are the shapes of the fourth configured slot.
var modelSlot3 = []struct{ name, rel string }{
	{"c3", "cfg/c3"},
	{"d0", "cfg/c3"},   // its name is also a discovered service's
	{"pay", "disc/d1"}, // its path is also a discovered service's
}

// modelSpec is the watcher's spec in the test's terms.
type modelSpec struct {
	slotOn     [4]bool
	slotFormat [4]string
	slot3      int // index into modelSlot3
	discOn     bool
	discFormat string
}

func (ms modelSpec) spec(base string) Spec {
	s := Spec{Services: []ServiceSpec{{Name: "marks", Path: base + "/marks", Format: "hostport"}}}
	for i := range 4 {
		if !ms.slotOn[i] {
			continue
		}
		name, rel := fmt.Sprintf("c%d", i), fmt.Sprintf("cfg/c%d", i)
		if i == 3 {
			name, rel = modelSlot3[ms.slot3].name, modelSlot3[ms.slot3].rel
		}
		s.Services = append(s.Services, ServiceSpec{Name: name, Path: base + "/" + rel, Format: ms.slotFormat[i]})
	}
	if ms.discOn {
		s.Discover = append(s.Discover, DiscoverSpec{Path: base + "/disc", Format: ms.discFormat})
	}
	return s
}

func (ms modelSpec) String() string {
	var parts []string
	for i := range 4 {
		if !ms.slotOn[i] {
			continue
		}
		name, rel := fmt.Sprintf("c%d", i), fmt.Sprintf("cfg/c%d", i)
		if i == 3 {
			name, rel = modelSlot3[ms.slot3].name, modelSlot3[ms.slot3].rel
		}
		parts = append(parts, fmt.Sprintf("%s@%s:%s", name, rel, ms.slotFormat[i]))
	}
	if ms.discOn {
		parts = append(parts, "discover disc:"+ms.discFormat)
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// modelTree is what the test has written to ZooKeeper: service paths
// (relative to the test root) and their instances' payloads. It picks the
// ops; the expected view is read from ZooKeeper itself.
type modelTree struct {
	discRoot bool
	services map[string]map[string]string // rel path → instance ID → payload
}

// modelRun is one run: its random source, its ZooKeeper sessions, the
// watcher and what it has done.
type modelRun struct {
	t      *testing.T
	rnd    *rand.Rand
	seed   int64
	base   string
	owner  *zk.Conn // writes the tree; owns the ephemeral instances
	reader *zk.Conn // reads ZooKeeper's actual state
	proxy  *testutil.TCPProxy
	w      *Watcher
	rec    *recorder
	tree   modelTree
	ms     modelSpec
	cut    bool // the watcher's connection is cut until the burst ends
	mark   int  // the marker's generation
	done   int  // ops made so far
	log    []string
	kinds  map[string]int
	wlog   *testutil.LogTail // the watcher's log, for failures
	// latency delays what the watcher sends to ZooKeeper, so that changes
	// land while its reads are on their way.
	latency atomic.Int64
}

// relay copies one direction of the watcher's connection, delaying what
// it sends by m.latency.
func (m *modelRun) relay(dst io.Writer, src io.Reader, toServer bool) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := time.Duration(m.latency.Load()); toServer && d > 0 {
				time.Sleep(d)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			return err
		}
	}
}

// startWatcher runs the watcher through the proxy, logging at debug level
// into m.wlog, until the test ends.
func (m *modelRun) startWatcher() {
	m.t.Helper()
	m.wlog = testutil.NewLogTail(modelLogLines)
	m.rec = newLightRecorder()
	w, err := New(Options{
		Servers:        []string{m.proxy.Addr()},
		SessionTimeout: 10 * time.Second,
		Publish:        m.rec.publish,
		Logger:         slog.New(slog.NewTextHandler(m.wlog, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, m.ms.spec(m.base))
	if err != nil {
		m.t.Fatal(err)
	}
	m.w = w
	runWatcher(m.t, w)
}

func (m *modelRun) logf(format string, args ...any) {
	m.log = append(m.log, fmt.Sprintf(format, args...))
}

// fail reports a divergence with everything needed to replay it.
func (m *modelRun) fail(what string, want, got []string) {
	m.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nreplay: -model.seed=%d -model.ops=%d\nspec: %s\n", what, m.seed, m.done, m.ms)
	fmt.Fprintf(&b, "ZooKeeper (want):\n  %s\nwatcher (got):\n  %s\n", strings.Join(want, "\n  "), strings.Join(got, "\n  "))
	fmt.Fprintf(&b, "ops:\n  %s\n", strings.Join(m.log, "\n  "))
	fmt.Fprintf(&b, "the watcher's last %d log lines:\n%s", modelLogLines, m.wlog)
	m.t.Fatal(b.String())
}

func TestWatcherModel(t *testing.T) {
	seed, ops := modelParams(t)
	t.Logf("seed %d, %d ops (replay: -model.seed=%d -model.ops=%d)", seed, ops, seed, ops)
	m := &modelRun{
		t:      t,
		rnd:    rand.New(rand.NewSource(seed)),
		seed:   seed,
		owner:  testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second),
		reader: testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second),
		tree:   modelTree{services: map[string]map[string]string{}},
		kinds:  map[string]int{},
	}
	proxy, err := testutil.NewTCPProxyWith(zkServer.Addr(), m.relay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	m.proxy = proxy
	m.base = testutil.TestRoot(t, m.owner)
	testutil.MkdirAll(t, m.owner, m.base+"/cfg")
	testutil.CreateZnode(t, m.owner, m.base+"/marks/m", "127.0.0.1:1", zk.FlagEphemeral)
	m.mkdir("disc")
	// A random start: some services with some instances, some slots on.
	for _, rel := range modelServicePaths {
		if m.rnd.Intn(2) == 0 {
			m.mkdir(rel)
			for _, id := range modelInstanceIDs {
				if m.rnd.Intn(2) == 0 {
					m.create(rel, id, m.validPayload())
				}
			}
		}
	}
	for i := range 4 {
		m.ms.slotOn[i] = m.rnd.Intn(3) > 0
		m.ms.slotFormat[i] = modelFormats[m.rnd.Intn(len(modelFormats))]
	}
	m.ms.slot3 = m.rnd.Intn(len(modelSlot3))
	m.ms.discOn = m.rnd.Intn(4) > 0
	m.ms.discFormat = modelFormats[m.rnd.Intn(len(modelFormats))]
	m.logf("start: spec %s", m.ms)
	m.startWatcher()

	want := m.converge("the first sync")
	for burst := 1; m.done < ops; burst++ {
		// Nothing changed since the view matched: it must still match.
		if m.rnd.Intn(5) == 0 {
			time.Sleep(time.Duration(m.rnd.Intn(30)) * time.Millisecond)
		}
		if got := m.view(); !slices.Equal(got, want) {
			m.fail(fmt.Sprintf("seed %d: before burst %d, the view no longer matches ZooKeeper, which has not changed since it did", seed, burst), want, got)
		}
		n := 1
		if m.rnd.Intn(3) == 0 {
			n = 2 + m.rnd.Intn(5)
		}
		n = min(n, ops-m.done)
		latency := time.Duration(0)
		if m.rnd.Intn(3) == 0 {
			latency = time.Duration(500+m.rnd.Intn(2500)) * time.Microsecond
		}
		m.latency.Store(int64(latency))
		m.logf("-- burst %d (the watcher's requests delayed %s)", burst, latency)
		for i := range n {
			// Now and then a pause of a millisecond or two, so that an op
			// lands while the watcher is partway through the last one.
			if i > 0 && m.rnd.Intn(4) == 0 {
				time.Sleep(time.Duration(m.rnd.Intn(2000)) * time.Microsecond)
			}
			m.op()
			m.done++
		}
		if m.cut {
			m.proxy.Restore()
			m.cut = false
			m.logf("restore the connection")
		}
		want = m.converge(fmt.Sprintf("burst %d", burst))
	}
	time.Sleep(300 * time.Millisecond)
	if got := m.view(); !slices.Equal(got, want) {
		m.fail(fmt.Sprintf("seed %d: after the last burst, the view no longer matches ZooKeeper, which has not changed since it did", seed), want, got)
	}
	kinds := make([]string, 0, len(m.kinds))
	for k, n := range m.kinds {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	t.Logf("ops by kind: %s", strings.Join(kinds, " "))
}

// converge moves the marker, waits until the watcher has published it
// (so that it has seen every event before it) and its view equals
// ZooKeeper's state, and returns that state.
func (m *modelRun) converge(what string) []string {
	m.t.Helper()
	m.mark++
	port := 1 + m.mark%65000
	if _, err := m.owner.Set(m.base+"/marks/m", []byte("127.0.0.1:"+strconv.Itoa(port)), -1); err != nil {
		m.t.Fatal(err)
	}
	want := m.expected()
	deadline := time.Now().Add(modelConverge)
	for {
		got, marked := m.viewMarked(uint16(port))
		if marked && slices.Equal(got, want) {
			return want
		}
		if time.Now().After(deadline) {
			// ZooKeeper does not change while the test waits; read it
			// again anyway, so a failure shows what it holds now.
			want = m.expected()
			got, marked = m.viewMarked(uint16(port))
			if marked && slices.Equal(got, want) {
				return want
			}
			m.fail(fmt.Sprintf("seed %d: %s: the view did not match ZooKeeper within %s (marker %d seen: %t; session %+v)",
				m.seed, what, modelConverge, port, marked, m.w.Status()), want, got)
		}
		select {
		case <-m.rec.changed:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// view renders the watcher's published view, as the daemon folds its
// updates.
func (m *modelRun) view() []string {
	got, _ := m.viewMarked(0)
	return got
}

func (m *modelRun) viewMarked(port uint16) (lines []string, marked bool) {
	m.rec.mu.Lock()
	defer m.rec.mu.Unlock()
	if !m.rec.synced {
		return []string{"(not synced)"}, false
	}
	for _, s := range m.rec.services {
		if s.Name == "marks" {
			for _, in := range s.Instances {
				marked = marked || in.ID == "m" && in.Port == port
			}
			continue
		}
		lines = append(lines, renderService(s))
	}
	sort.Strings(lines)
	return lines, marked
}

// renderService renders what the model checks of a service: its spec,
// whether its path exists, its instances' address, port and health, and
// how many children are not served.
func renderService(s ServiceState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s path=%s format=%s discoveredBy=%s exists=%t invalid=%d denied=%d/%t [",
		s.Name, s.Path, s.Format, s.DiscoveredBy, s.Exists, s.Invalid, s.Denied, s.AccessDenied)
	for i, in := range s.Instances {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%s", in.ID, net.JoinHostPort(in.Address, strconv.Itoa(int(in.Port))))
		if !in.Healthy {
			b.WriteString("(unhealthy)")
		}
	}
	b.WriteString("]")
	return b.String()
}

// expected reads ZooKeeper's state with a plain client and renders the
// view a correct watcher publishes for the current spec.
func (m *modelRun) expected() []string {
	m.t.Helper()
	spec := m.ms.spec(m.base)
	type wantedSvc struct {
		spec ServiceSpec
		by   string
	}
	var wanted []wantedSvc
	names, paths := map[string]bool{}, map[string]bool{}
	for _, s := range spec.Services {
		names[s.Name], paths[s.Path] = true, true
		if s.Name != "marks" {
			wanted = append(wanted, wantedSvc{spec: s})
		}
	}
	for _, d := range spec.Discover {
		children, _, err := m.reader.Children(d.Path)
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			m.t.Fatalf("list %s: %v", d.Path, err)
		}
		sort.Strings(children)
		for _, c := range children {
			p := d.Path + "/" + c
			if names[c] || paths[p] {
				continue
			}
			names[c], paths[p] = true, true
			wanted = append(wanted, wantedSvc{spec: ServiceSpec{Name: c, Path: p, Format: d.Format}, by: d.Path})
		}
	}
	var lines []string
	for _, ws := range wanted {
		st := ServiceState{ServiceSpec: ws.spec, DiscoveredBy: ws.by}
		children, _, err := m.reader.Children(ws.spec.Path)
		switch {
		case errors.Is(err, zk.ErrNoNode):
		case err != nil:
			m.t.Fatalf("list %s: %v", ws.spec.Path, err)
		default:
			st.Exists = true
		}
		sort.Strings(children)
		for _, c := range children {
			data, _, err := m.reader.Get(ws.spec.Path + "/" + c)
			if err != nil {
				m.t.Fatalf("read %s/%s: %v", ws.spec.Path, c, err)
			}
			in, ok := modelDecode(ws.spec.Format, data)
			if !ok {
				st.Invalid++
				continue
			}
			in.ID = c
			st.Instances = append(st.Instances, in)
		}
		lines = append(lines, renderService(st))
	}
	sort.Strings(lines)
	return lines
}

// modelDecode is the test's own reading of the payloads it writes: a
// host:port, or a Curator ServiceInstance; anything else is not served.
func modelDecode(format string, data []byte) (Instance, bool) {
	if strings.HasPrefix(string(data), "{") {
		if format == "hostport" {
			return Instance{}, false
		}
		var c struct {
			Address     *string
			Port        *float64
			ServiceType string
			Enabled     *bool
			Payload     struct {
				Metadata map[string]string
			}
		}
		if err := json.Unmarshal(data, &c); err != nil || c.Address == nil || c.Port == nil || c.ServiceType == "" {
			return Instance{}, false
		}
		addr, err := netip.ParseAddr(*c.Address)
		if err != nil || *c.Port < 1 || *c.Port > 65535 || *c.Port != float64(int(*c.Port)) {
			return Instance{}, false
		}
		healthy := (c.Enabled == nil || *c.Enabled) && c.Payload.Metadata["instance_status"] != "OUT_OF_SERVICE"
		return Instance{Address: addr.String(), Port: uint16(*c.Port), Healthy: healthy}, true
	}
	if format == "curator" {
		return Instance{}, false
	}
	host, port, err := net.SplitHostPort(string(data))
	if err != nil {
		return Instance{}, false
	}
	addr, err := netip.ParseAddr(host)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || p < 1 || p > 65535 {
		return Instance{}, false
	}
	return Instance{Address: addr.String(), Port: uint16(p), Healthy: true}, true
}

// Payloads. Their variety is small on purpose, so that a change now and
// then writes the same data again.

func (m *modelRun) validPayload() string {
	if m.rnd.Intn(2) == 0 {
		return fmt.Sprintf("192.0.2.%d:%d", 1+m.rnd.Intn(4), 8000+m.rnd.Intn(3))
	}
	return m.curatorPayload(true, "UP")
}

func (m *modelRun) curatorPayload(enabled bool, status string) string {
	return fmt.Sprintf(`{"name":"svc","id":"x","address":"198.51.100.%d","port":%d,"sslPort":null,`+
		`"payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance","metadata":{"instance_status":%q}},`+
		`"registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","enabled":%t}`,
		1+m.rnd.Intn(4), 9000+m.rnd.Intn(3), status, enabled)
}

// invalidPayloads decode under no format the test uses.
var invalidPayloads = []string{
	"not a payload",
	"",
	"192.0.2.1:99999",
	"{broken json",
	`{"address":"198.51.100.1","port":70000,"serviceType":"DYNAMIC"}`,
	`{"address":"not an address!","port":80,"serviceType":"DYNAMIC"}`,
}

func (m *modelRun) invalidPayload() string { return invalidPayloads[m.rnd.Intn(len(invalidPayloads))] }

// ZooKeeper writes, kept in the tree as they are made.

func (m *modelRun) mkdir(rel string) {
	m.t.Helper()
	if rel == "disc" && m.tree.discRoot || m.tree.services[rel] != nil {
		return
	}
	if strings.HasPrefix(rel, "disc/") {
		m.mkdir("disc")
	}
	if _, err := m.owner.Create(m.base+"/"+rel, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		m.t.Fatalf("create %s: %v", rel, err)
	}
	if rel == "disc" {
		m.tree.discRoot = true
		return
	}
	m.tree.services[rel] = map[string]string{}
}

func (m *modelRun) rmdir(rel string) {
	m.t.Helper()
	if rel == "disc" {
		for _, r := range modelServicePaths {
			if strings.HasPrefix(r, "disc/") && m.tree.services[r] != nil {
				m.rmdir(r)
			}
		}
		m.tree.discRoot = false
	} else {
		for _, id := range slices.Sorted(maps.Keys(m.tree.services[rel])) {
			m.delete(rel, id)
		}
		delete(m.tree.services, rel)
	}
	if err := m.owner.Delete(m.base+"/"+rel, -1); err != nil {
		m.t.Fatalf("delete %s: %v", rel, err)
	}
}

func (m *modelRun) create(rel, id, payload string) {
	m.t.Helper()
	m.mkdir(rel)
	if _, err := m.owner.Create(m.base+"/"+rel+"/"+id, []byte(payload), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		m.t.Fatalf("create %s/%s: %v", rel, id, err)
	}
	m.tree.services[rel][id] = payload
}

func (m *modelRun) delete(rel, id string) {
	m.t.Helper()
	if err := m.owner.Delete(m.base+"/"+rel+"/"+id, -1); err != nil {
		m.t.Fatalf("delete %s/%s: %v", rel, id, err)
	}
	delete(m.tree.services[rel], id)
}

func (m *modelRun) set(rel, id, payload string) {
	m.t.Helper()
	if _, err := m.owner.Set(m.base+"/"+rel+"/"+id, []byte(payload), -1); err != nil {
		m.t.Fatalf("set %s/%s: %v", rel, id, err)
	}
	m.tree.services[rel][id] = payload
}

// instances lists every existing instance as rel path and ID, sorted.
func (m *modelRun) instances() [][2]string {
	var out [][2]string
	for _, rel := range modelServicePaths {
		for _, id := range slices.Sorted(maps.Keys(m.tree.services[rel])) {
			out = append(out, [2]string{rel, id})
		}
	}
	return out
}

func (m *modelRun) pickInstance() (rel, id string, ok bool) {
	all := m.instances()
	if len(all) == 0 {
		return "", "", false
	}
	p := all[m.rnd.Intn(len(all))]
	return p[0], p[1], true
}

// op makes one random change.
func (m *modelRun) op() {
	m.t.Helper()
	kinds := []struct {
		name   string
		weight int
		do     func() bool
	}{
		{"create", 20, m.opCreate},
		{"delete", 12, m.opDelete},
		{"set-valid", 12, m.opSetValid},
		{"set-invalid", 6, m.opSetInvalid},
		{"drain", 5, m.opDrain},
		{"delete-recreate", 12, m.opDeleteRecreate},
		{"relist-delete-recreate", 6, m.opRelistDeleteRecreate},
		{"service-delete-recreate", 4, m.opServiceDeleteRecreate},
		{"service-create", 3, m.opServiceCreate},
		{"service-delete", 3, m.opServiceDelete},
		{"root-delete-recreate", 1, m.opRootDeleteRecreate},
		{"spec", 7, m.opSpec},
		{"cut", 3, m.opCut},
	}
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	for {
		n := m.rnd.Intn(total)
		for _, k := range kinds {
			if n < k.weight {
				if k.do() {
					m.kinds[k.name]++
					return
				}
				break
			}
			n -= k.weight
		}
	}
}

func (m *modelRun) opCreate() bool {
	rel := modelServicePaths[m.rnd.Intn(len(modelServicePaths))]
	var free []string
	for _, id := range modelInstanceIDs {
		if _, ok := m.tree.services[rel][id]; !ok {
			free = append(free, id)
		}
	}
	if len(free) == 0 {
		return false
	}
	id, payload := free[m.rnd.Intn(len(free))], m.validPayload()
	if m.rnd.Intn(8) == 0 {
		payload = m.invalidPayload()
	}
	m.logf("create %s/%s %q", rel, id, payload)
	m.create(rel, id, payload)
	return true
}

func (m *modelRun) opDelete() bool {
	rel, id, ok := m.pickInstance()
	if !ok {
		return false
	}
	m.logf("delete %s/%s", rel, id)
	m.delete(rel, id)
	return true
}

func (m *modelRun) opSetValid() bool { return m.setPicked("", m.validPayload) }

func (m *modelRun) opSetInvalid() bool { return m.setPicked(" (invalid)", m.invalidPayload) }

func (m *modelRun) opDrain() bool {
	return m.setPicked(" (draining)", func() string {
		if m.rnd.Intn(3) == 0 {
			return m.curatorPayload(true, "OUT_OF_SERVICE")
		}
		return m.curatorPayload(false, "UP")
	})
}

// setPicked sets a random existing instance to the payload that payload
// draws, noting note in the op log; false when there is no instance.
func (m *modelRun) setPicked(note string, payload func() string) bool {
	rel, id, ok := m.pickInstance()
	if !ok {
		return false
	}
	p := payload()
	m.logf("set %s/%s %q%s", rel, id, p, note)
	m.set(rel, id, p)
	return true
}

func (m *modelRun) opDeleteRecreate() bool {
	rel, id, ok := m.pickInstance()
	if !ok {
		return false
	}
	payload := m.tree.services[rel][id]
	if m.rnd.Intn(2) == 0 {
		payload = m.validPayload()
	}
	m.logf("delete and re-create %s/%s %q", rel, id, payload)
	m.delete(rel, id)
	m.create(rel, id, payload)
	return true
}

// opRelistDeleteRecreate makes the watcher re-list a service (a sibling
// joins or leaves) and, a moment later, deletes and re-creates one of its
// instances under the same name: with luck while the listing is on its
// way, so that it shows the new znode under a name the watcher holds.
func (m *modelRun) opRelistDeleteRecreate() bool {
	rel, id, ok := m.pickInstance()
	if !ok {
		return false
	}
	var sibling string
	for _, s := range modelInstanceIDs {
		if s != id && m.rnd.Intn(2) == 0 {
			sibling = s
			break
		}
	}
	if sibling == "" {
		return false
	}
	if _, exists := m.tree.services[rel][sibling]; exists {
		m.delete(rel, sibling)
	} else {
		m.create(rel, sibling, m.validPayload())
	}
	pause := time.Duration(m.rnd.Intn(1500)) * time.Microsecond
	time.Sleep(pause)
	payload := m.tree.services[rel][id]
	if m.rnd.Intn(2) == 0 {
		payload = m.validPayload()
	}
	m.delete(rel, id)
	m.create(rel, id, payload)
	m.logf("re-list %s (%s joins or leaves), and after %s delete and re-create %s %q", rel, sibling, pause, id, payload)
	return true
}

func (m *modelRun) opServiceDeleteRecreate() bool {
	rel := modelServicePaths[m.rnd.Intn(len(modelServicePaths))]
	if m.tree.services[rel] == nil {
		return false
	}
	old := m.tree.services[rel]
	m.rmdir(rel)
	m.mkdir(rel)
	var back []string
	for _, id := range slices.Sorted(maps.Keys(old)) {
		if m.rnd.Intn(2) == 0 {
			m.create(rel, id, old[id])
			back = append(back, id)
		}
	}
	m.logf("delete %s (instances %v) and re-create it with %v", rel, slices.Sorted(maps.Keys(old)), back)
	return true
}

func (m *modelRun) opServiceCreate() bool {
	rel := modelServicePaths[m.rnd.Intn(len(modelServicePaths))]
	if m.tree.services[rel] != nil {
		return false
	}
	m.mkdir(rel)
	var ids []string
	for _, id := range modelInstanceIDs[:m.rnd.Intn(3)] {
		m.create(rel, id, m.validPayload())
		ids = append(ids, id)
	}
	m.logf("create service %s with %v", rel, ids)
	return true
}

func (m *modelRun) opServiceDelete() bool {
	rel := modelServicePaths[m.rnd.Intn(len(modelServicePaths))]
	if m.tree.services[rel] == nil {
		return false
	}
	m.logf("delete service %s (instances %v)", rel, slices.Sorted(maps.Keys(m.tree.services[rel])))
	m.rmdir(rel)
	return true
}

func (m *modelRun) opRootDeleteRecreate() bool {
	if !m.tree.discRoot {
		m.mkdir("disc")
		m.logf("create the discover root")
		return true
	}
	m.rmdir("disc")
	if m.rnd.Intn(2) == 0 {
		m.mkdir("disc")
		m.logf("delete the discover root with its services, and re-create it empty")
	} else {
		m.logf("delete the discover root with its services")
	}
	return true
}

func (m *modelRun) opSpec() bool {
	switch i := m.rnd.Intn(4); m.rnd.Intn(5) {
	case 0, 1:
		m.ms.slotOn[i] = !m.ms.slotOn[i]
	case 2:
		m.ms.slotFormat[i] = modelFormats[m.rnd.Intn(len(modelFormats))]
	case 3:
		m.ms.slot3 = m.rnd.Intn(len(modelSlot3))
	case 4:
		if m.rnd.Intn(2) == 0 {
			m.ms.discOn = !m.ms.discOn
		} else {
			m.ms.discFormat = modelFormats[m.rnd.Intn(len(modelFormats))]
		}
	}
	m.logf("set spec %s", m.ms)
	m.w.SetSpec(m.ms.spec(m.base))
	return true
}

func (m *modelRun) opCut() bool {
	if m.cut {
		return false
	}
	if m.rnd.Intn(3) == 0 {
		m.logf("cut the connection and restore it at once")
		m.proxy.Cut()
		m.proxy.Restore()
		return true
	}
	m.logf("cut the connection until the burst ends")
	m.proxy.Cut()
	m.cut = true
	return true
}
