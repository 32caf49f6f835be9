package daemon

// A seeded model test of reload history independence: a running daemon
// takes a random walk of live config reloads (services, discover roots,
// zone, TTLs, allow, servers, chroot, session timeout, log level) over a
// ZooKeeper tree that changes now and then; some reloads land while the
// one before is still moving the daemon to a new session. After each
// reload, a fresh daemon started on the same config must serve the same:
// the same DNS answers, the same /v1/services and the same gauges of what
// it serves. Whatever differs is state the running daemon carried over
// from the configs before, or a setting a reload did not apply.
//
// A failure prints its seed and step; replay it with
//
//	go test ./daemon -run TestReloadModel -reloadmodel.seed=N -reloadmodel.steps=M
//
// make test runs one fixed seed; -reloadmodel.seed=-1 draws one from the
// clock, to explore:
//
//	for i in $(seq 20); do go test -race -count=1 ./daemon -run TestReloadModel -reloadmodel.seed=-1 || break; done

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkdns/zkdns/conf"
	"github.com/zkdns/zkdns/dnsserver"
	"github.com/zkdns/zkdns/internal/testutil"
)

var (
	reloadModelSeed  = flag.Int64("reloadmodel.seed", 0, "TestReloadModel: seed of its random walk (0: a fixed one; -1: from the clock)")
	reloadModelSteps = flag.Int("reloadmodel.steps", 0, "TestReloadModel: how many reloads it makes (0: the default)")
)

const (
	// reloadModelDefaultSeed is the seed of a run given none.
	reloadModelDefaultSeed = 20261122
	// reloadModelDefaultSteps keeps a run well under 40 s under the race
	// detector on a busy two-core machine.
	reloadModelDefaultSteps = 25
	// reloadModelConverge bounds the wait for the two daemons to agree:
	// a new chroot or session timeout makes the running daemon open a new
	// session and switch once it has synced.
	reloadModelConverge = 10 * time.Second
	// reloadModelLogLines is how many of each daemon's last log lines a
	// failure shows.
	reloadModelLogLines = 300
)

// The tree, the same under two chroots but for a few differences, so that
// a change of zookeeper.root switches ensembles and still serves something.
// Paths are relative to the chroot; each maps instance znode names to
// their data. A service path with no instances is an existing, empty
// service.

const (
	rmDubboSample = "dubbo%3A%2F%2F192.0.2.10%3A20880%2Fcom.example.DemoService%3Fanyhost%3Dtrue%26application%3Ddemo%26interface%3Dcom.example.DemoService%26methods%3DsayHello%26side%3Dprovider%26timestamp%3D1700000000000%26weight%3D50"
	rmDubboIPv6   = "dubbo%3A%2F%2F2001%3Adb8%3A%3A11%3A20880%2Fcom.example.DemoService"
	rmDubboOff    = "dubbo%3A%2F%2F192.0.2.12%3A20880%2Fcom.example.DemoService%3Fenabled%3DFALSE"
	rmNerveName   = "base64_92_eyJob3N0IjoiMjAwMTpkYjg6OjMxIiwicG9ydCI6ODA4MCwibmFtZSI6Inc-PsSvxK_ErzE5OCIsIndlaWdodCI6N30=_0000000007"
)

func rmCurator(address string, port int, ssl string, enabled bool, meta string) string {
	return fmt.Sprintf(`{"name":"payments","id":"x","address":%q,"port":%d,"sslPort":%s,`+
		`"payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance","metadata":{%s}},`+
		`"registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","enabled":%t}`, address, port, ssl, meta, enabled)
}

func rmServerset(host string, port int, httpPort int, status string) string {
	return fmt.Sprintf(`{"serviceEndpoint":{"host":%q,"port":%d},"additionalEndpoints":{"http":{"host":%q,"port":%d}},"status":%q,"shard":1}`,
		host, port, host, httpPort, status)
}

func rmBaseTree(chroot string) map[string]map[string]string {
	tree := map[string]map[string]string{
		"/services/payments": {
			"p1": rmCurator("192.0.2.11", 8080, "8443", true, `"instance_status":"UP","zone":"a","weight":"30"`),
			"p2": rmCurator("2001:db8::12", 8080, "null", true, `"instance_status":"UP"`),
			"p3": rmCurator("192.0.2.13", 8080, "null", false, ``),
		},
		"/services/orders": {
			"member_0000000001": rmServerset("192.0.2.20", 10000, 10080, "ALIVE"),
			"member_0000000002": rmServerset("192.0.2.21", 10000, 10080, "STOPPING"),
			"member_0000000003": rmServerset("2001:db8::22", 10000, 10080, "ALIVE"),
		},
		"/services/search": {
			"n1":        `{"host":"192.0.2.30","port":3000,"name":"i-0abc","weight":2,"labels":{"region":"us-east-1"}}`,
			rmNerveName: "",
		},
		"/services/empty": {},
		"/services/mixed": {
			"h1":   "192.0.2.40:7000",
			"h2":   "[2001:db8::41]:7001",
			"bad1": "not a payload",
			"bad2": "{broken json",
		},
		"/legacy/inventory": {
			"192.0.2.50:9000":     "",
			"[2001:db8::50]:9001": "",
		},
		"/legacy/payments": {
			"lp1": "192.0.2.60:8080",
		},
		// Named like other services once made a label: the labels of the
		// group are settled by the names in it, whatever came first.
		"/legacy/Orders": {
			"o1": "192.0.2.80:80",
			"O1": "192.0.2.81:80",
		},
		"/legacy/PAY": {
			"x": "[2001:db8::90]:80",
		},
		"/dubbo/com.example.DemoService/providers": {
			rmDubboSample: "",
			rmDubboIPv6:   "",
			rmDubboOff:    "",
		},
	}
	if chroot == "b" {
		tree["/services/payments"]["p4"] = rmCurator("192.0.2.14", 8081, "null", true, `"instance_status":"UP"`)
		delete(tree["/legacy/inventory"], "[2001:db8::50]:9001")
		tree["/services/extra"] = map[string]string{"e1": "192.0.2.70:80"}
		tree["/legacy/payments"]["lp2"] = "not a payload either"
		tree["/legacy/Search"] = map[string]string{"s1": "192.0.2.82:80"}
	}
	return tree
}

var rmChroots = []string{"a", "b"}

// rmServicePool are the [[service]] tables a config draws from: each
// with the names, paths, formats and endpoints it may take. Several
// overlap a discovered service, by name or by path.
var rmServicePool = []struct {
	names, paths, formats, endpoints []string
}{
	{[]string{"payments", "legacy-pay"}, []string{"/legacy/payments"}, []string{"auto", "hostport", "curator"}, nil},
	{[]string{"pay", "orders"}, []string{"/services/payments"}, []string{"auto", "curator"}, []string{"", "ssl"}},
	{[]string{"orders", "shop"}, []string{"/services/orders"}, []string{"auto", "serverset"}, []string{"", "http", "nosuch"}},
	{[]string{"demo"}, []string{"/dubbo/com.example.DemoService/providers"}, []string{"auto", "dubbo"}, nil},
	{[]string{"search", "find"}, []string{"/services/search"}, []string{"auto", "nerve", "hostport"}, nil},
	{[]string{"ghost"}, []string{"/missing/ghost", "/services/nothing"}, []string{"auto"}, nil},
	{[]string{"hollow", "empty"}, []string{"/services/empty"}, []string{"auto", "curator"}, nil},
	{[]string{"mixed"}, []string{"/services/mixed", "/services/extra"}, []string{"auto", "hostport"}, nil},
	{[]string{"inv", "inventory"}, []string{"/legacy/inventory"}, []string{"auto", "hostport"}, nil},
}

// rmDiscoverPool are the [[discover]] tables a config draws from.
var rmDiscoverPool = []struct {
	path               string
	formats, endpoints []string
}{
	{"/services", []string{"auto", "curator", "serverset", "hostport"}, []string{"", "http", "ssl"}},
	{"/legacy", []string{"auto", "hostport"}, nil},
	{"/dubbo/com.example.DemoService", []string{"auto", "dubbo"}, nil},
}

// Settings. Some are spelled two ways, which the daemon must take for
// the same setting.
var (
	rmZones           = []string{"local.", "zk.test.", "Zk.Test", "svc.example.internal."}
	rmTTLs            = []string{"0s", "1s", "1000ms", "5s", "30s"}
	rmNegTTLs         = []string{"0s", "1s", "10s"}
	rmSessionTimeouts = []string{"4s", "4000ms", "6s", "8s"}
	rmLevels          = []string{"debug", "info", "warn", "error"}
	rmAllows          = [][]string{nil, {"127.0.0.0/8"}, {"127.0.0.1", "::1"}, {"10.0.0.0/8", "127.0.0.1/32"}, {"127.0.0.2", "127.0.0.1"}}
)

type rmService struct {
	slot                         int // index in rmServicePool
	name, path, format, endpoint string
}

type rmDiscover struct{ path, format, endpoint string }

// rmConfig is a config in the test's terms.
type rmConfig struct {
	slow                                           bool // ZooKeeper through the slow proxy
	root, sessionTimeout, zone, ttl, negTTL, level string
	allow                                          []string
	services                                       []rmService
	discover                                       []rmDiscover
}

func (c rmConfig) clone() rmConfig {
	c.allow = slices.Clone(c.allow)
	c.services = slices.Clone(c.services)
	c.discover = slices.Clone(c.discover)
	return c
}

// watches counts the services and discovers c watches.
func (c rmConfig) watches() int { return len(c.services) + len(c.discover) }

func (c rmConfig) render(zkAddr, base string, step string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# step %s\n[zookeeper]\nservers = [%q]\nsession_timeout = %q\nroot = %q\n", step, zkAddr, c.sessionTimeout, base+"/"+c.root)
	fmt.Fprintf(&b, "\n[dns]\nlisten = [\"127.0.0.1:0\"]\nzone = %q\nttl = %q\nnegative_ttl = %q\n", c.zone, c.ttl, c.negTTL)
	if c.allow != nil {
		quoted := make([]string, len(c.allow))
		for i, a := range c.allow {
			quoted[i] = fmt.Sprintf("%q", a)
		}
		fmt.Fprintf(&b, "allow = [%s]\n", strings.Join(quoted, ", "))
	}
	fmt.Fprintf(&b, "\n[admin]\nlisten = \"127.0.0.1:0\"\n\n[log]\nlevel = %q\n", c.level)
	for _, s := range c.services {
		fmt.Fprintf(&b, "\n[[service]]\nname = %q\npath = %q\nformat = %q\n", s.name, s.path, s.format)
		if s.endpoint != "" {
			fmt.Fprintf(&b, "endpoint = %q\n", s.endpoint)
		}
	}
	for _, d := range c.discover {
		fmt.Fprintf(&b, "\n[[discover]]\npath = %q\nformat = %q\n", d.path, d.format)
		if d.endpoint != "" {
			fmt.Fprintf(&b, "endpoint = %q\n", d.endpoint)
		}
	}
	return b.String()
}

// summary is a one-line account of the config, for the history a failure
// prints.
func (c rmConfig) summary() string {
	var parts []string
	parts = append(parts, fmt.Sprintf("slow=%t", c.slow), "root="+c.root, "session="+c.sessionTimeout, "zone="+c.zone, "ttl="+c.ttl, "neg="+c.negTTL,
		fmt.Sprintf("allow=%v", c.allow), "level="+c.level)
	for _, s := range c.services {
		parts = append(parts, fmt.Sprintf("svc %s@%s:%s/%q", s.name, s.path, s.format, s.endpoint))
	}
	for _, d := range c.discover {
		parts = append(parts, fmt.Sprintf("disc %s:%s/%q", d.path, d.format, d.endpoint))
	}
	return strings.Join(parts, " ")
}

func rmPick[T any](rnd *rand.Rand, xs []T) T { return xs[rnd.Intn(len(xs))] }

// drawService draws the service of pool slot i, with a name and a path no
// other service in c has; ok is false when there is none.
func (c rmConfig) drawService(rnd *rand.Rand, i int) (rmService, bool) {
	p := rmServicePool[i]
	var names, paths []string
	for _, n := range p.names {
		if !slices.ContainsFunc(c.services, func(s rmService) bool { return s.slot != i && s.name == n }) {
			names = append(names, n)
		}
	}
	for _, pa := range p.paths {
		if !slices.ContainsFunc(c.services, func(s rmService) bool { return s.slot != i && s.path == pa }) {
			paths = append(paths, pa)
		}
	}
	if len(names) == 0 || len(paths) == 0 {
		return rmService{}, false
	}
	s := rmService{slot: i, name: rmPick(rnd, names), path: rmPick(rnd, paths), format: rmPick(rnd, p.formats)}
	if len(p.endpoints) > 0 && (s.format == "auto" || s.format == "curator" || s.format == "serverset") {
		s.endpoint = rmPick(rnd, p.endpoints)
	}
	return s, true
}

func drawDiscover(rnd *rand.Rand, i int) rmDiscover {
	p := rmDiscoverPool[i]
	d := rmDiscover{path: p.path, format: rmPick(rnd, p.formats)}
	if len(p.endpoints) > 0 && (d.format == "auto" || d.format == "curator" || d.format == "serverset") {
		d.endpoint = rmPick(rnd, p.endpoints)
		if d.format == "curator" && d.endpoint != "ssl" {
			d.endpoint = ""
		}
	}
	return d
}

// mutate changes one thing of c and says what.
func (c *rmConfig) mutate(rnd *rand.Rand) string {
	switch rnd.Intn(12) {
	case 0, 1, 2: // a [[service]] comes or goes
		i := rnd.Intn(len(rmServicePool))
		if j := slices.IndexFunc(c.services, func(s rmService) bool { return s.slot == i }); j >= 0 {
			if c.watches() == 1 {
				return "keep the last service: a config must watch something"
			}
			gone := c.services[j]
			c.services = slices.Delete(c.services, j, j+1)
			return "remove service " + gone.name
		}
		s, ok := c.drawService(rnd, i)
		if !ok {
			return "no service to add"
		}
		at := rnd.Intn(len(c.services) + 1)
		c.services = slices.Insert(c.services, at, s)
		return fmt.Sprintf("add service %s@%s:%s/%q", s.name, s.path, s.format, s.endpoint)
	case 3, 4: // a [[service]] changes
		if len(c.services) == 0 {
			return "no service to change"
		}
		j := rnd.Intn(len(c.services))
		s, _ := c.drawService(rnd, c.services[j].slot) // its own name and path are free
		old := c.services[j]
		c.services[j] = s
		return fmt.Sprintf("change service %s@%s:%s/%q to %s@%s:%s/%q", old.name, old.path, old.format, old.endpoint, s.name, s.path, s.format, s.endpoint)
	case 5: // a [[discover]] comes, goes or changes, or two swap places
		i := rnd.Intn(len(rmDiscoverPool))
		j := slices.IndexFunc(c.discover, func(d rmDiscover) bool { return d.path == rmDiscoverPool[i].path })
		switch {
		case j < 0:
			d := drawDiscover(rnd, i)
			c.discover = slices.Insert(c.discover, rnd.Intn(len(c.discover)+1), d)
			return fmt.Sprintf("add discover %s:%s/%q", d.path, d.format, d.endpoint)
		case rnd.Intn(3) == 0:
			if c.watches() == 1 {
				return "keep the last discover: a config must watch something"
			}
			c.discover = slices.Delete(c.discover, j, j+1)
			return "remove discover " + rmDiscoverPool[i].path
		case rnd.Intn(2) == 0 && len(c.discover) > 1:
			k := (j + 1) % len(c.discover)
			c.discover[j], c.discover[k] = c.discover[k], c.discover[j]
			return "swap discovers " + c.discover[k].path + " and " + c.discover[j].path
		default:
			d := drawDiscover(rnd, i)
			c.discover[j] = d
			return fmt.Sprintf("change discover %s to %s/%q", d.path, d.format, d.endpoint)
		}
	case 6:
		c.zone = rmPick(rnd, rmZones)
		return "zone " + c.zone
	case 7:
		c.ttl = rmPick(rnd, rmTTLs)
		return "ttl " + c.ttl
	case 8:
		c.negTTL = rmPick(rnd, rmNegTTLs)
		return "negative_ttl " + c.negTTL
	case 9:
		c.allow = slices.Clone(rmPick(rnd, rmAllows))
		return fmt.Sprintf("allow %v", c.allow)
	case 10:
		return c.mutateZooKeeper(rnd)
	default:
		c.level = rmPick(rnd, rmLevels)
		return "log.level " + c.level
	}
}

// mutateZooKeeper changes the chroot, the session timeout or the
// servers, any of which makes the daemon move to a new session.
func (c *rmConfig) mutateZooKeeper(rnd *rand.Rand) string {
	switch rnd.Intn(3) {
	case 0:
		c.sessionTimeout = rmPick(rnd, rmSessionTimeouts)
		return "session_timeout " + c.sessionTimeout
	case 1:
		c.slow = !c.slow
		return fmt.Sprintf("servers: slow %t", c.slow)
	default:
		c.root = rmPick(rnd, rmChroots)
		return "root " + c.root
	}
}

// rmDaemon is one daemon run in-process by the test.
type rmDaemon struct {
	name     string
	cancel   context.CancelFunc
	ran      chan error
	reg      *prometheus.Registry
	tail     *testutil.LogTail
	stopOnce sync.Once
	stopErr  error

	mu             sync.Mutex
	dnsAddr, admin string
	// Moves to a new session begun, and reloads applied while one was
	// under way (the replacement had not synced yet).
	switches, duringMove int
	calledOff            int // moves called off by a reload back to the served settings
	switching, moved     bool
}

// rmHandler logs through h at the configured level, and shows every
// record, whatever the level, to see: the test learns the bound
// addresses from the daemon's logs even while log.level hides them.
type rmHandler struct {
	h   slog.Handler
	see func(slog.Record)
}

func (r rmHandler) Enabled(context.Context, slog.Level) bool { return true }

func (r rmHandler) Handle(ctx context.Context, rec slog.Record) error {
	r.see(rec)
	if r.h.Enabled(ctx, rec.Level) {
		return r.h.Handle(ctx, rec)
	}
	return nil
}

func (r rmHandler) WithAttrs(as []slog.Attr) slog.Handler { return rmHandler{r.h.WithAttrs(as), r.see} }
func (r rmHandler) WithGroup(g string) slog.Handler       { return rmHandler{r.h.WithGroup(g), r.see} }

func (d *rmDaemon) see(rec slog.Record) {
	switch rec.Message {
	case "admin listening", "dns listening":
	case "config reloaded":
		d.mu.Lock()
		if d.switching && !d.moved {
			d.duringMove++
		}
		d.moved = false
		d.mu.Unlock()
		return
	case "moving to a new ZooKeeper ensemble; serving from the current one until it has synced":
		// Logged by the reload that begins the move, before it logs
		// "config reloaded".
		d.mu.Lock()
		d.switches++
		d.switching, d.moved = true, true
		d.mu.Unlock()
		return
	case "now serving from the new ZooKeeper ensemble":
		d.mu.Lock()
		d.switching = false
		d.mu.Unlock()
		return
	case "move to new ZooKeeper settings called off: the config names those of the session served again":
		d.mu.Lock()
		d.switching = false
		d.calledOff++
		d.mu.Unlock()
		return
	default:
		return
	}
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "addr" {
			d.mu.Lock()
			if rec.Message == "admin listening" {
				d.admin = a.Value.String()
			} else {
				d.dnsAddr = a.Value.String()
			}
			d.mu.Unlock()
		}
		return true
	})
}

func (d *rmDaemon) addrs() (dnsAddr, admin string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dnsAddr, d.admin
}

// startRMDaemon runs a daemon on the config file at path until it is
// stopped (or the test ends), and waits until it is ready.
func startRMDaemon(t *testing.T, name, path string) *rmDaemon {
	t.Helper()
	cfg, err := conf.Load(path)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	d := &rmDaemon{name: name, ran: make(chan error, 1), reg: prometheus.NewRegistry(), tail: testutil.NewLogTail(reloadModelLogLines)}
	level := new(slog.LevelVar)
	logger := slog.New(rmHandler{slog.NewTextHandler(d.tail, &slog.HandlerOptions{Level: level}), d.see})
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() {
		d.ran <- Run(ctx, Options{Config: cfg, ConfigPath: path, Logger: logger, LogLevel: level, Registry: d.reg})
	}()
	t.Cleanup(func() { _ = d.stop() })
	testutil.Eventually(t, waitLimit, name+" to be ready", func() (bool, string) {
		select {
		case err := <-d.ran:
			d.ran <- err
			return false, fmt.Sprintf("Run returned %v", err)
		default:
		}
		dnsAddr, admin := d.addrs()
		if dnsAddr == "" || admin == "" {
			return false, "no addresses logged yet"
		}
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, string(body)
	})
	return d
}

// stop ends the daemon and returns what Run returned.
func (d *rmDaemon) stop() error {
	d.stopOnce.Do(func() {
		d.cancel()
		select {
		case d.stopErr = <-d.ran:
		case <-time.After(waitLimit):
			d.stopErr = fmt.Errorf("%s: Run did not return within %s after its context ended", d.name, waitLimit)
		}
	})
	return d.stopErr
}

// reloads reads the daemon's zkdns_config_reloads_total by result.
func (d *rmDaemon) reloads(t *testing.T) (ok, failed float64) {
	t.Helper()
	return reloadCounts(t, d.reg)
}

// reloadCounts reads zkdns_config_reloads_total from reg: the successful
// reloads and the failed ones.
func reloadCounts(t *testing.T, reg *prometheus.Registry) (ok, failed float64) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "zkdns_config_reloads_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "success" {
					ok = m.GetCounter().GetValue()
				} else if l.GetName() == "result" {
					failed = m.GetCounter().GetValue()
				}
			}
		}
	}
	return ok, failed
}

// rmState is what a daemon serves, as comparable strings by what was
// asked: DNS answers by "name type", /v1/services, /readyz, and rmGauges.
type rmState map[string]string

// state reads what d serves for the queries in qs.
func (d *rmDaemon) state(t *testing.T, qs []rmQuestion) rmState {
	t.Helper()
	dnsAddr, admin := d.addrs()
	st := rmState{}
	for _, q := range qs {
		st[q.String()] = rmAsk(dnsAddr, q)
	}
	st["GET /v1/services"] = rmServices(admin)
	st["GET /readyz"] = rmGet(admin, "/readyz")
	st["gauges"] = d.gauges(t)
	return st
}

type rmQuestion struct {
	name  string
	qtype uint16
	// other asks over TCP from 127.0.0.2, a loopback address that
	// dns.allow may leave out: a source not allowed is answered REFUSED
	// over TCP (over UDP it is dropped, which would cost a timeout).
	other bool
}

func (q rmQuestion) String() string {
	s := q.name + " " + dns.TypeToString[q.qtype]
	if q.other {
		s += " (TCP from 127.0.0.2)"
	}
	return s
}

// rmAsk asks q over UDP, with EDNS0 so that no answer here is truncated,
// and renders the reply: rcode, flags, and each section as a sorted set of
// records (A and AAAA are shuffled per query, SRV rotated). The SOA serial
// is left out: it counts the snapshots a daemon has published, which is
// its own history by design (README: it only has to grow while the daemon
// runs). The OPT record is left out too; it only echoes the query's.
func rmAsk(server string, q rmQuestion) string {
	m := new(dns.Msg)
	m.SetQuestion(q.name, q.qtype)
	m.RecursionDesired = false
	m.SetEdns0(4096, false)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	if q.other {
		c.Net = "tcp"
		c.Dialer = &net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		return "error: " + err.Error()
	}
	section := func(rrs []dns.RR) string {
		var out []string
		for _, rr := range rrs {
			switch rr := rr.(type) {
			case *dns.OPT:
				continue
			case *dns.SOA:
				c := *rr
				c.Serial = 0
				out = append(out, c.String())
				continue
			}
			out = append(out, rr.String())
		}
		sort.Strings(out)
		return strings.Join(out, "\n    ")
	}
	return fmt.Sprintf("rcode=%s aa=%t tc=%t ra=%t\n  answer:\n    %s\n  authority:\n    %s\n  additional:\n    %s",
		dns.RcodeToString[r.Rcode], r.Authoritative, r.Truncated, r.RecursionAvailable,
		section(r.Answer), section(r.Ns), section(r.Extra))
}

// rmGet reads an admin endpoint: its status and body.
func rmGet(admin, path string) string {
	resp, err := http.Get("http://" + admin + path)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "error: " + err.Error()
	}
	return resp.Status + "\n" + string(body)
}

// rmServices reads /v1/services, instances sorted by id. Every field is
// compared, registration times too: both daemons read them from the same
// znodes and payloads.
func rmServices(admin string) string {
	resp, err := http.Get("http://" + admin + "/v1/services")
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	var sr ServicesResponse
	if err := json.NewDecoder(resp.Body).Decode(&sr); err != nil {
		return "error: " + err.Error()
	}
	for _, s := range sr.Services {
		sort.Slice(s.Instances, func(i, j int) bool { return s.Instances[i].ID < s.Instances[j].ID })
	}
	out, err := json.MarshalIndent(sr, "", "  ")
	if err != nil {
		return "error: " + err.Error()
	}
	return string(out)
}

// rmGauges are the gauges that say what a daemon serves, not what it
// went through: they are compared too.
var rmGauges = []string{"zkdns_service_instances", "zkdns_dns_snapshot_services", "zkdns_zookeeper_connected", "zkdns_config_last_reload_successful"}

// gauges renders rmGauges, sorted.
func (d *rmDaemon) gauges(t *testing.T) string {
	t.Helper()
	families, err := d.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range families {
		if !slices.Contains(rmGauges, f.GetName()) {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			lines = append(lines, fmt.Sprintf("%s{%s} %g", f.GetName(), strings.Join(labels, ","), m.GetGauge().GetValue()))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// rmRun is one run of the test: its random source, the tree it keeps in
// ZooKeeper, the running daemon and the history of its configs.
type rmRun struct {
	t       *testing.T
	rnd     *rand.Rand
	seed    int64
	base    string
	owner   *zk.Conn
	tree    map[string]map[string]map[string]string // chroot → path → instance → data
	dir     string
	path    string
	cfg     rmConfig
	history []string
	added   int
	running *rmDaemon
	// slow is a way to ZooKeeper that is slow to open a session.
	slow *testutil.TCPProxy
	// For the closing account: questions asked per daemon, and steps at
	// which the daemons agreed only after the running one caught up.
	asked, waited int
}

func (r *rmRun) logf(format string, args ...any) {
	r.history = append(r.history, fmt.Sprintf(format, args...))
}

// build writes the tree under both chroots.
func (r *rmRun) build() {
	r.t.Helper()
	r.tree = map[string]map[string]map[string]string{}
	for _, c := range rmChroots {
		tree := rmBaseTree(c)
		r.tree[c] = tree
		for _, p := range slices.Sorted(maps.Keys(tree)) {
			testutil.MkdirAll(r.t, r.owner, r.base+"/"+c+p)
			for _, name := range slices.Sorted(maps.Keys(tree[p])) {
				testutil.CreateZnode(r.t, r.owner, r.base+"/"+c+p+"/"+name, tree[p][name], zk.FlagEphemeral)
			}
		}
	}
}

// mutateTree changes one chroot's tree: an instance comes, goes or
// changes its payload, or a service path comes or goes.
func (r *rmRun) mutateTree() string {
	r.t.Helper()
	c := rmPick(r.rnd, rmChroots)
	p := rmPick(r.rnd, slices.Sorted(maps.Keys(r.tree[c])))
	names := slices.Sorted(maps.Keys(r.tree[c][p]))
	full := r.base + "/" + c + p
	switch op := r.rnd.Intn(6); {
	case op == 0 && len(names) > 0:
		name := rmPick(r.rnd, names)
		if err := r.owner.Delete(full+"/"+name, -1); err != nil {
			r.t.Fatalf("delete %s/%s: %v", full, name, err)
		}
		delete(r.tree[c][p], name)
		return fmt.Sprintf("tree: delete %s:%s/%s", c, p, name)
	case op == 1 && len(names) > 0:
		name := rmPick(r.rnd, names)
		data := r.payload()
		if _, err := r.owner.Set(full+"/"+name, []byte(data), -1); err != nil {
			r.t.Fatalf("set %s/%s: %v", full, name, err)
		}
		r.tree[c][p][name] = data
		return fmt.Sprintf("tree: set %s:%s/%s = %q", c, p, name, data)
	case op == 2:
		for _, name := range names {
			if err := r.owner.Delete(full+"/"+name, -1); err != nil {
				r.t.Fatalf("delete %s/%s: %v", full, name, err)
			}
		}
		if err := r.owner.Delete(full, -1); err != nil {
			r.t.Fatalf("delete %s: %v", full, err)
		}
		delete(r.tree[c], p)
		return fmt.Sprintf("tree: delete service path %s:%s", c, p)
	case op == 3:
		r.added++
		candidates := []string{fmt.Sprintf("/services/new-%d", r.added), fmt.Sprintf("/legacy/New-%d", r.added), "/missing/ghost", "/services/nothing"}
		p = rmPick(r.rnd, candidates)
		if r.tree[c][p] != nil {
			return "tree: " + p + " is there already"
		}
		testutil.MkdirAll(r.t, r.owner, r.base+"/"+c+p)
		r.tree[c][p] = map[string]string{}
		what := fmt.Sprintf("tree: create service path %s:%s", c, p)
		for range r.rnd.Intn(3) {
			what += "; " + r.createInstance(c, p)
		}
		return what
	default:
		return "tree: " + r.createInstance(c, p)
	}
}

func (r *rmRun) createInstance(c, p string) string {
	r.t.Helper()
	r.added++
	name := fmt.Sprintf("added-%d", r.added)
	data := r.payload()
	testutil.CreateZnode(r.t, r.owner, r.base+"/"+c+p+"/"+name, data, zk.FlagEphemeral)
	r.tree[c][p][name] = data
	return fmt.Sprintf("create %s:%s/%s = %q", c, p, name, data)
}

// payload is an instance payload, most often one that decodes.
func (r *rmRun) payload() string {
	n := r.rnd.Intn(50)
	switch r.rnd.Intn(5) {
	case 0:
		return fmt.Sprintf("192.0.2.%d:%d", 100+n, 8000+n)
	case 1:
		return fmt.Sprintf("[2001:db8::1:%x]:%d", n, 8000+n)
	case 2:
		return rmCurator(fmt.Sprintf("198.51.100.%d", n+1), 9000+n, "9443", r.rnd.Intn(3) > 0, `"instance_status":"UP"`)
	case 3:
		return rmServerset(fmt.Sprintf("192.0.2.%d", 150+n), 10000+n, 10080, rmPick(r.rnd, []string{"ALIVE", "ALIVE", "STOPPING"}))
	default:
		return fmt.Sprintf("garbage %d", n)
	}
}

// questions are the queries compared: every service name that any
// config could serve, in the SRV, RFC 2782, A, AAAA, TXT and ANY forms;
// every instance label the daemons show or the tree suggests; names that
// do not exist; the apex; and the other zones' apexes and a name in
// each, which are out of the zone now.
func (r *rmRun) questions(views ...string) []rmQuestion {
	services := map[string]bool{"nosuch": true}
	instances := map[string]map[string]bool{} // service label → instance labels
	addInstance := func(svc, label string) {
		if instances[svc] == nil {
			instances[svc] = map[string]bool{"nosuch": true}
		}
		instances[svc][label] = true
	}
	for _, p := range rmServicePool {
		for _, n := range p.names {
			services[n] = true
		}
	}
	for _, c := range rmChroots {
		for p, ins := range r.tree[c] {
			for _, d := range rmDiscoverPool {
				if strings.HasPrefix(p, d.path+"/") {
					svc := dnsserver.Label(strings.SplitN(strings.TrimPrefix(p, d.path+"/"), "/", 2)[0])
					services[svc] = true
					for id := range ins {
						addInstance(svc, dnsserver.Label(id))
					}
				}
			}
			for _, s := range rmServicePool {
				if slices.Contains(s.paths, p) {
					for _, n := range s.names {
						for id := range ins {
							addInstance(n, dnsserver.Label(id))
						}
					}
				}
			}
		}
	}
	for _, v := range views {
		var sr ServicesResponse
		if json.Unmarshal([]byte(v), &sr) != nil {
			continue
		}
		for _, s := range sr.Services {
			if s.Label == "" {
				continue
			}
			services[s.Label] = true
			for _, in := range s.Instances {
				if in.Label != "" {
					addInstance(s.Label, in.Label)
				}
			}
		}
	}
	zone := dns.Fqdn(r.cfg.zone) // in the case the config spells it: names are case-insensitive
	var qs []rmQuestion
	for _, z := range rmZones {
		if z = dns.Fqdn(z); !strings.EqualFold(z, zone) {
			qs = append(qs, rmQuestion{name: z, qtype: dns.TypeSOA}, rmQuestion{name: "payments." + z, qtype: dns.TypeSRV})
		}
	}
	qs = append(qs, rmQuestion{name: zone, qtype: dns.TypeSOA}, rmQuestion{name: zone, qtype: dns.TypeNS}, rmQuestion{name: zone, qtype: dns.TypeA},
		rmQuestion{name: "ns." + zone, qtype: dns.TypeA}, rmQuestion{name: "ns." + zone, qtype: dns.TypeAAAA},
		rmQuestion{name: "no.such.name." + zone, qtype: dns.TypeA},
		rmQuestion{name: zone, qtype: dns.TypeSOA, other: true}, rmQuestion{name: "payments." + zone, qtype: dns.TypeSRV, other: true})
	for _, s := range slices.Sorted(maps.Keys(services)) {
		name := s + "." + zone
		for _, qt := range []uint16{dns.TypeSRV, dns.TypeA, dns.TypeAAAA, dns.TypeTXT, dns.TypeANY} {
			qs = append(qs, rmQuestion{name: name, qtype: qt})
		}
		qs = append(qs, rmQuestion{name: "_" + s + "._tcp." + zone, qtype: dns.TypeSRV})
	}
	for _, s := range slices.Sorted(maps.Keys(instances)) {
		for _, in := range slices.Sorted(maps.Keys(instances[s])) {
			name := in + "." + s + "." + zone
			for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeTXT} {
				qs = append(qs, rmQuestion{name: name, qtype: qt})
			}
		}
	}
	return qs
}

// render is the config file of step.
func (r *rmRun) render(step string) string {
	servers := zkServer.Addr()
	if r.cfg.slow {
		servers = r.slow.Addr()
	}
	return r.cfg.render(servers, r.base, step)
}

// write renames the config of step into place.
func (r *rmRun) write(path string, step string) {
	r.t.Helper()
	saveConfig(r.t, path, r.render(step))
}

// reload writes the config and waits until the running daemon has
// applied it.
func (r *rmRun) reload(step string) {
	r.t.Helper()
	okBefore, _ := r.running.reloads(r.t)
	r.write(r.path, step)
	testutil.Eventually(r.t, waitLimit, "the running daemon to reload the config of step "+step, func() (bool, string) {
		ok, failed := r.running.reloads(r.t)
		if failed > 0 {
			r.t.Fatalf("seed %d step %s: the running daemon rejected a valid config:\n%s\nlogs:\n%s", r.seed, step,
				r.render(step), r.running.tail)
		}
		return ok > okBefore, fmt.Sprintf("%g successful reloads", ok)
	})
}

// compare starts a fresh daemon on the config of step and waits until
// it and the running daemon serve the same, failing if they do not
// within reloadModelConverge.
func (r *rmRun) compare(step int) {
	r.t.Helper()
	path := filepath.Join(r.dir, fmt.Sprintf("fresh-%d.toml", step))
	r.write(path, fmt.Sprint(step))
	fresh := startRMDaemon(r.t, fmt.Sprintf("fresh daemon of step %d", step), path)
	deadline := time.Now().Add(reloadModelConverge)
	for tries := 0; ; {
		qs := r.questions(rmServices(r.runningAdmin()), rmServices(r.freshAdmin(fresh)))
		want, got := fresh.state(r.t, qs), r.running.state(r.t, qs)
		diff := rmDiff(want, got)
		if len(diff) == 0 {
			r.asked += len(qs)
			break
		}
		if tries++; tries == 1 {
			r.waited++
		}
		if time.Now().After(deadline) {
			r.fail(step, fresh, diff)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := fresh.stop(); err != nil {
		r.t.Fatalf("seed %d step %d: the fresh daemon's Run: %v", r.seed, step, err)
	}
}

func (r *rmRun) runningAdmin() string { _, a := r.running.addrs(); return a }

func (r *rmRun) freshAdmin(d *rmDaemon) string { _, a := d.addrs(); return a }

// rmDiff lists what differs between want (the fresh daemon) and got (the
// running one).
func rmDiff(want, got rmState) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if want[k] != got[k] {
			out = append(out, fmt.Sprintf("%s:\n fresh daemon:\n  %s\n running daemon:\n  %s", k, want[k], got[k]))
		}
	}
	return out
}

func (r *rmRun) fail(step int, fresh *rmDaemon, diff []string) {
	r.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, step %d: the running daemon still serves differently from a fresh one on the same config after %s\n",
		r.seed, step, reloadModelConverge)
	fmt.Fprintf(&b, "replay: -reloadmodel.seed=%d -reloadmodel.steps=%d\n\n", r.seed, step)
	fmt.Fprintf(&b, "history:\n  %s\n\nconfig now:\n%s\n", strings.Join(r.history, "\n  "), r.render(fmt.Sprint(step)))
	fmt.Fprintf(&b, "differences (%d):\n%s\n\n", len(diff), strings.Join(diff, "\n\n"))
	fmt.Fprintf(&b, "the running daemon's last %d log lines:\n%s\n\n", reloadModelLogLines, r.running.tail)
	fmt.Fprintf(&b, "the fresh daemon's last %d log lines:\n%s", reloadModelLogLines, fresh.tail)
	r.t.Fatal(b.String())
}

func TestReloadModel(t *testing.T) {
	seed, steps := testutil.SeededWalk(*reloadModelSeed, reloadModelDefaultSeed, *reloadModelSteps, reloadModelDefaultSteps)
	t.Logf("seed %d, %d steps (replay: -reloadmodel.seed=%d -reloadmodel.steps=%d)", seed, steps, seed, steps)
	r := &rmRun{
		t:     t,
		rnd:   rand.New(rand.NewSource(seed)),
		seed:  seed,
		owner: testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second),
		dir:   t.TempDir(),
	}
	r.base = testutil.TestRoot(t, r.owner)
	r.build()
	slow, err := testutil.NewTCPProxyWith(zkServer.Addr(), func(dst io.Writer, src io.Reader, toServer bool) error {
		buf := make([]byte, 32<<10)
		first := toServer
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if first {
					// The session's connect request: longer than the
					// config watcher's debounce, so that a reload right
					// after the one that moved here finds the move under
					// way.
					time.Sleep(600 * time.Millisecond)
					first = false
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return werr
				}
			}
			if err != nil {
				return err
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = slow.Close() })
	r.slow = slow

	// A random start.
	r.cfg = rmConfig{
		slow: r.rnd.Intn(4) == 0,
		root: rmPick(r.rnd, rmChroots), sessionTimeout: rmPick(r.rnd, rmSessionTimeouts), zone: rmPick(r.rnd, rmZones),
		ttl: rmPick(r.rnd, rmTTLs), negTTL: rmPick(r.rnd, rmNegTTLs), level: rmPick(r.rnd, rmLevels),
		allow: slices.Clone(rmPick(r.rnd, rmAllows)),
	}
	for i := range rmServicePool {
		if r.rnd.Intn(2) == 0 {
			if s, ok := r.cfg.drawService(r.rnd, i); ok {
				r.cfg.services = append(r.cfg.services, s)
			}
		}
	}
	for i := range rmDiscoverPool {
		if r.rnd.Intn(2) == 0 || i == len(rmDiscoverPool)-1 && r.cfg.watches() == 0 {
			r.cfg.discover = append(r.cfg.discover, drawDiscover(r.rnd, i))
		}
	}
	r.logf("step 0: %s", r.cfg.summary())
	r.path = filepath.Join(r.dir, "zkdns.toml")
	r.write(r.path, "0")
	r.running = startRMDaemon(t, "running daemon", r.path)
	r.compare(0)

	for step := 1; step <= steps; step++ {
		// Now and then a config that is reloaded and at once replaced,
		// not compared: the next reload lands while the daemon may still
		// be switching to the ensemble this one asked for.
		if r.rnd.Intn(4) == 0 {
			what := []string{r.cfg.mutate(r.rnd)}
			if r.rnd.Intn(2) == 0 {
				what = append(what, r.cfg.mutateZooKeeper(r.rnd))
			}
			r.logf("step %d, passing: %s", step, strings.Join(what, "; "))
			r.logf("  now: %s", r.cfg.summary())
			r.reload(fmt.Sprintf("%d (passing)", step))
		}
		prev := r.cfg.clone()
		var what []string
		for range 1 + r.rnd.Intn(3) {
			what = append(what, r.cfg.mutate(r.rnd))
		}
		if r.rnd.Intn(2) == 0 {
			for range 1 + r.rnd.Intn(2) {
				what = append(what, r.mutateTree())
			}
		}
		r.logf("step %d: %s", step, strings.Join(what, "; "))
		if prev.summary() != r.cfg.summary() {
			r.logf("  now: %s", r.cfg.summary())
		}
		r.reload(fmt.Sprint(step))
		r.compare(step)
	}
	if err := r.running.stop(); err != nil {
		t.Fatalf("the running daemon's Run: %v", err)
	}
	r.running.mu.Lock()
	switches, duringMove, calledOff := r.running.switches, r.running.duringMove, r.running.calledOff
	r.running.mu.Unlock()
	t.Logf("%d comparisons, %d questions each on average; at %d the running daemon was still catching up at first; "+
		"it moved to a new session %d times, called off %d moves, and applied %d reloads while a move was under way",
		steps+1, r.asked/(steps+1), r.waited, switches, calledOff, duringMove)
}
