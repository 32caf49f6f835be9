package daemon

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zkdns/zkdns/dnsserver"
	"github.com/zkdns/zkdns/internal/testutil"
	"github.com/zkdns/zkdns/zkwatch"
)

func TestServiceOf(t *testing.T) {
	cases := []struct {
		name string
		in   zkwatch.ServiceState
		want dnsserver.Service
	}{
		{
			name: "unhealthy instances are not served",
			in: zkwatch.ServiceState{
				ServiceSpec: zkwatch.ServiceSpec{Name: "payments"},
				Instances: []zkwatch.Instance{
					{ID: "up", Format: "serverset", Address: "192.0.2.1", Port: 80, Weight: 100, Healthy: true},
					{ID: "stopping", Format: "serverset", Address: "192.0.2.2", Port: 80, Weight: 100},
				},
			},
			want: dnsserver.Service{Name: "payments", Instances: []dnsserver.Instance{
				{ID: "up", Address: "192.0.2.1", Port: 80, Weight: 100, TXT: []string{"format=serverset", "id=up"}},
			}},
		},
		{
			name: "metadata follows format and id, sorted by key",
			in: zkwatch.ServiceState{
				ServiceSpec: zkwatch.ServiceSpec{Name: "orders"},
				Instances: []zkwatch.Instance{{
					ID: "o1", Format: "curator", Address: "2001:db8::1", Port: 9000, Weight: 7, Healthy: true,
					Meta: map[string]string{"zone": "b", "az": "1", "instance_status": "UP"},
				}},
			},
			want: dnsserver.Service{Name: "orders", Instances: []dnsserver.Instance{{
				ID: "o1", Address: "2001:db8::1", Port: 9000, Weight: 7,
				TXT: []string{"format=curator", "id=o1", "az=1", "instance_status=UP", "zone=b"},
			}}},
		},
		{
			name: "no instances stays an existing, empty service",
			in:   zkwatch.ServiceState{ServiceSpec: zkwatch.ServiceSpec{Name: "empty"}},
			want: dnsserver.Service{Name: "empty"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := serviceAt(tc.in, 0, time.Now()); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("serviceOf() = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestServedWeight(t *testing.T) {
	registered := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		base   uint16
		age    time.Duration
		window time.Duration
		want   uint16
	}{
		{"no window serves the base", 100, 0, 0, 100},
		{"just registered gets 1", 100, 0, 10 * time.Second, 1},
		{"a quarter in", 100, 2500 * time.Millisecond, 10 * time.Second, 25},
		{"half way", 100, 5 * time.Second, 10 * time.Second, 50},
		{"rounds to nearest", 3, 5 * time.Second, 10 * time.Second, 2},
		{"never below 1", 10, 10 * time.Millisecond, 10 * time.Second, 1},
		{"window over", 100, 10 * time.Second, 10 * time.Second, 100},
		{"long after", 40, time.Hour, 10 * time.Second, 40},
		{"registration clock ahead of ours", 100, -5 * time.Second, 10 * time.Second, 1},
		{"largest base", 65535, 5 * time.Second, 10 * time.Second, 32768},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := servedWeight(tc.base, registered, tc.window, registered.Add(tc.age)); got != tc.want {
				t.Errorf("servedWeight(base %d, age %s, window %s) = %d, want %d", tc.base, tc.age, tc.window, got, tc.want)
			}
		})
	}
}

func TestWarmupWindows(t *testing.T) {
	w := warmups{
		services: map[string]time.Duration{"payments": 30 * time.Second},
		roots:    map[string]time.Duration{"/services": 10 * time.Second},
	}
	cases := []struct {
		name  string
		state zkwatch.ServiceState
		want  time.Duration
	}{
		{"configured service", zkwatch.ServiceState{ServiceSpec: zkwatch.ServiceSpec{Name: "payments"}}, 30 * time.Second},
		{"discovered service takes its root's", zkwatch.ServiceState{ServiceSpec: zkwatch.ServiceSpec{Name: "orders"}, DiscoveredBy: "/services"}, 10 * time.Second},
		{"no window", zkwatch.ServiceState{ServiceSpec: zkwatch.ServiceSpec{Name: "search"}}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := w.window(tc.state); got != tc.want {
				t.Errorf("window = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestPublisherSummary holds the counts the status line shows, kept as
// updates arrive, to a count of the view after every step.
func TestPublisherSummary(t *testing.T) {
	p := testPublisher(t, warmups{})
	svc := func(name string, health ...bool) zkwatch.ServiceState {
		s := zkwatch.ServiceState{ServiceSpec: zkwatch.ServiceSpec{Name: name}}
		for i, up := range health {
			s.Instances = append(s.Instances, zkwatch.Instance{
				ID: fmt.Sprintf("%s-%d", name, i), Format: "serverset", Address: fmt.Sprintf("192.0.2.%d", i+1), Port: 80, Weight: 1, Healthy: up,
			})
		}
		return s
	}
	steps := []struct {
		name string
		u    zkwatch.Update
	}{
		{"full sync", zkwatch.Update{Full: true, Synced: true, Services: []zkwatch.ServiceState{svc("a", true, true), svc("b", true, false)}}},
		{"an instance goes unhealthy", zkwatch.Update{Services: []zkwatch.ServiceState{svc("a", true, false)}}},
		{"a service is added", zkwatch.Update{Services: []zkwatch.ServiceState{svc("c", true, true, true)}}},
		{"a service is removed", zkwatch.Update{Removed: []string{"b"}}},
		{"a service empties", zkwatch.Update{Services: []zkwatch.ServiceState{svc("c")}}},
		{"removing an unknown service", zkwatch.Update{Removed: []string{"nosuch"}}},
		{"a second full sync", zkwatch.Update{Full: true, Synced: true, Services: []zkwatch.ServiceState{svc("d", false, true)}}},
	}
	for _, step := range steps {
		p.apply(p.current(), step.u)
		wantHealthy := 0
		v, _ := p.view()
		for _, info := range v {
			for _, in := range info.Instances {
				if in.Healthy {
					wantHealthy++
				}
			}
		}
		services, healthy := p.summary()
		if services != len(v) || healthy != wantHealthy {
			t.Errorf("after %s: summary %d services, %d healthy; the view has %d, %d", step.name, services, healthy, len(v), wantHealthy)
		}
	}
}

// TestPublisherWarming holds the publisher to what the run loop's warm-up
// timer relies on: a token when a service starts warming and none
// otherwise, and rewarm reporting whether anything still warms, so an
// idle daemon never wakes for warm-ups.
func TestPublisherWarming(t *testing.T) {
	p := testPublisher(t, warmups{services: map[string]time.Duration{"slow": 10 * time.Second}})
	now := time.Unix(1_700_000_000, 0)
	p.now = func() time.Time { return now }
	svc := func(name string, registered time.Time) zkwatch.ServiceState {
		return zkwatch.ServiceState{ServiceSpec: zkwatch.ServiceSpec{Name: name}, Instances: []zkwatch.Instance{{
			ID: name + "-0", Format: "curator", Address: "192.0.2.1", Port: 80, Weight: 100, Healthy: true, Registered: registered,
		}}}
	}
	token := func() bool {
		select {
		case <-p.warmingC():
			return true
		default:
			return false
		}
	}

	p.apply(p.current(), zkwatch.Update{Full: true, Synced: true, Services: []zkwatch.ServiceState{
		svc("fast", now), svc("slow", now.Add(-time.Hour)),
	}})
	if token() {
		t.Fatal("warming token after a sync in which nothing warms")
	}
	if p.rewarm() {
		t.Fatal("rewarm reports warming with nothing warming")
	}

	p.apply(p.current(), zkwatch.Update{Services: []zkwatch.ServiceState{svc("slow", now)}})
	if !token() {
		t.Fatal("no warming token when an instance starts warming")
	}
	now = now.Add(5 * time.Second)
	if !p.rewarm() {
		t.Fatal("rewarm halfway through the window reports nothing warming")
	}
	now = now.Add(5 * time.Second)
	if p.rewarm() {
		t.Fatal("rewarm at the end of the window still reports warming")
	}
	token() // the rebuilds above may leave one; what counts is that rewarm says done
	if p.rewarm() || token() {
		t.Error("the publisher still asks for warm-ups after the window")
	}
}

// TestPublisherViewDuringReload reads the admin view while reloads change
// the warm-up windows (run under -race, as make test does): the view must
// take the windows under the publisher's lock, and show the weight the
// window it took gives.
func TestPublisherViewDuringReload(t *testing.T) {
	p := testPublisher(t, warmups{})
	now := time.Now()
	p.now = func() time.Time { return now }
	p.apply(p.current(), zkwatch.Update{Full: true, Synced: true, Services: []zkwatch.ServiceState{{
		ServiceSpec: zkwatch.ServiceSpec{Name: "a"},
		Instances:   []zkwatch.Instance{{ID: "a1", Address: "192.0.2.1", Port: 80, Weight: 100, Healthy: true, Registered: now.Add(-time.Second)}},
	}}})
	// A window of 2 s halves the weight of an instance 1 s old; none leaves it whole.
	windows := []warmups{{services: map[string]time.Duration{"a": 2 * time.Second}}, {}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			p.setWarmups(windows[i%2])
		}
	}()
	for range 200 {
		v, _ := p.view()
		if len(v) != 1 || len(v[0].Instances) != 1 {
			t.Fatalf("view = %+v, want service a with one instance", v)
		}
		if w := v[0].Instances[0].Weight; w != 100 && (w < 40 || w > 60) {
			t.Fatalf("weight %d in the view: neither the whole 100 nor about half of it", w)
		}
	}
	<-done
}

// testPublisher is a publisher with warm-up windows w, publishing to a
// handler of its own.
func testPublisher(t *testing.T, w warmups) *publisher {
	t.Helper()
	m, err := newMetrics(prometheus.NewRegistry(), "test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := dnsserver.NewHandler(dnsserver.NewSnapshot(dnsserver.Zone{Origin: "local.", TTL: time.Second, NegativeTTL: time.Second}), nil)
	return newPublisher(h, slog.New(slog.DiscardHandler), m, w)
}

// TestPublisherSwitch checks the handover between watchers during an
// ensemble switch: a replacement takes over at its first full sync, and
// once a newer replacement has begun, the older one can no longer take
// over; beginSwitch says which generation is served, so the daemon knows
// whether to retire the running watcher or stop the unfinished one.
func TestPublisherSwitch(t *testing.T) {
	p := testPublisher(t, warmups{})
	full := func(addr string) zkwatch.Update {
		return zkwatch.Update{Full: true, Synced: true, Services: []zkwatch.ServiceState{{
			ServiceSpec: zkwatch.ServiceSpec{Name: "a"},
			Instances:   []zkwatch.Instance{{ID: "a1", Address: addr, Port: 80, Weight: 100, Healthy: true}},
		}}}
	}
	began := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p.now = func() time.Time { return began }
	// switching reports the replacement that can still take over, for
	// the status line, the admin API and the pending-switch gauge.
	switchingTo := func(want string) {
		t.Helper()
		sw, ok := p.switching()
		switch {
		case want == "" && ok:
			t.Errorf("switching to %v with no switch pending", sw.Servers)
		case want != "" && !ok:
			t.Errorf("no switch pending, want one to %s", want)
		case want != "" && (strings.Join(sw.Servers, ",") != want || !sw.Since.Equal(began) || sw.Connection != "no session yet" ||
			strings.Join(sw.Changed, ",") != "zookeeper.servers"):
			t.Errorf("switching = %+v, want to %s (zookeeper.servers changed) since %s with no session yet", sw, want, began)
		}
	}
	first := p.current()
	p.apply(first, full("192.0.2.1"))
	switchingTo("")

	second := p.reserveGen()
	if served := p.beginSwitch(second, watched{sessionTimeout: time.Second, servers: []string{"192.0.2.20:2181"}, changed: []string{"zookeeper.servers"}}); served != first {
		t.Fatalf("beginSwitch = %d, want the first generation %d served", served, first)
	}
	switchingTo("192.0.2.20:2181")
	p.apply(second, zkwatch.Update{Services: full("192.0.2.9").Services}) // not a full sync: no takeover
	if p.current() != first {
		t.Fatalf("served %d after a partial update of the replacement", p.current())
	}
	third := p.reserveGen()
	if served := p.beginSwitch(third, watched{sessionTimeout: time.Second, servers: []string{"192.0.2.30:2181", "192.0.2.31:2181"}, changed: []string{"zookeeper.servers"}}); served != first {
		t.Fatalf("beginSwitch = %d, want %d", served, first)
	}
	switchingTo("192.0.2.30:2181,192.0.2.31:2181")
	p.apply(second, full("192.0.2.2")) // too late: a newer replacement has begun
	if p.current() != first {
		t.Fatalf("the superseded replacement took over (served %d)", p.current())
	}
	p.apply(third, full("192.0.2.3"))
	if p.current() != third {
		t.Fatalf("served %d, want the replacement %d after its full sync", p.current(), third)
	}
	switchingTo("")
	fourth := p.reserveGen()
	if served := p.beginSwitch(fourth, watched{sessionTimeout: time.Second}); served != third {
		t.Errorf("beginSwitch = %d, want %d: the replacement that took over", served, third)
	}

	// A switch called off (the config went back) is forgotten, and its
	// late full sync does not take over.
	if !p.cancelSwitch(fourth) {
		t.Fatal("cancelSwitch of the waiting replacement = false")
	}
	switchingTo("")
	p.apply(fourth, full("192.0.2.4"))
	if p.current() != third {
		t.Fatalf("served %d after the called-off replacement synced, want %d", p.current(), third)
	}
	// One that has taken over is not called off: moving back is a switch.
	fifth := p.reserveGen()
	p.beginSwitch(fifth, watched{sessionTimeout: time.Second})
	p.apply(fifth, full("192.0.2.5"))
	if p.cancelSwitch(fifth) || p.current() != fifth {
		t.Errorf("called off the replacement %d after it took over (served %d)", fifth, p.current())
	}
}

// TestConnectionState: how the status line and the admin API put a
// watcher's connection. One that never had a session says so, however
// long it has been trying; only one that had a session was disconnected.
func TestConnectionState(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name string
		st   zkwatch.Status
		want string
	}{
		{"connected", zkwatch.Status{State: zk.StateHasSession, Server: "192.0.2.1:2181", SessionID: 7}, "connected to 192.0.2.1:2181"},
		{"never reached", zkwatch.Status{State: zk.StateConnecting, DisconnectedSince: now.Add(-10 * time.Minute)}, "no session yet"},
		{"nothing yet", zkwatch.Status{}, "no session yet"},
		{"lost", zkwatch.Status{State: zk.StateConnecting, DisconnectedSince: now.Add(-5 * time.Second), SessionID: 7}, "disconnected for 5s"},
	}
	for _, tc := range cases {
		if got := connectionState(tc.st, now); got != tc.want {
			t.Errorf("%s: connectionState = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestStatusLineSwitching: the status line names a waiting switch, what
// it changes and how its connection stands, and says answers come from
// the current session only when that session has synced: before that,
// names in the zone answer SERVFAIL.
func TestStatusLineSwitching(t *testing.T) {
	p := testPublisher(t, warmups{})
	d := &daemon{pub: p, handler: p.handler}
	p.beginSwitch(p.reserveGen(), watched{sessionTimeout: time.Second, servers: []string{"192.0.2.7:2181"}, changed: []string{"zookeeper.tls"}})
	const moving = "; moving to ZooKeeper 192.0.2.7:2181 (zookeeper.tls changed) for "
	const waiting = ": no session yet"
	const answering = "; answering from the current session until the new one has synced"
	if got := d.statusLine(); !strings.Contains(got, moving) || !strings.HasSuffix(got, waiting) {
		t.Errorf("before the first sync: status line %q, want %q…%q at its end", got, moving, waiting)
	}
	p.apply(p.current(), zkwatch.Update{Full: true, Synced: true})
	if got := d.statusLine(); !strings.Contains(got, moving) || !strings.HasSuffix(got, waiting+answering) {
		t.Errorf("synced: status line %q, want %q…%q at its end", got, moving, waiting+answering)
	}
}

// TestPublisherLogsLabels: a service added is logged with the DNS label
// it is served under, and a served service that another name moves off
// its label (or gives it back to) gets one warning naming both labels
// and the taker; updates that move nothing log no such line.
func TestPublisherLogsLabels(t *testing.T) {
	p := testPublisher(t, warmups{})
	svc := func(name string) zkwatch.ServiceState {
		return zkwatch.ServiceState{ServiceSpec: zkwatch.ServiceSpec{Name: name, Path: "/services/" + name}, Instances: []zkwatch.Instance{
			{ID: "i", Format: "hostport", Address: "192.0.2.1", Port: 80, Weight: 1, Healthy: true},
		}}
	}
	// apply publishes u and returns what it logged.
	apply := func(u zkwatch.Update) string {
		logs := &testutil.LogBuffer{}
		p.logger = slog.New(slog.NewTextHandler(logs, nil))
		p.apply(p.current(), u)
		return logs.String()
	}
	moves := func(out string) int { return strings.Count(out, "moved to another DNS label") }

	for _, u := range []zkwatch.Update{
		{Full: true, Synced: true, Services: []zkwatch.ServiceState{svc("payments.v2")}},
		{Services: []zkwatch.ServiceState{svc("payments.v2")}},
	} {
		if out := apply(u); moves(out) != 0 {
			t.Errorf("an update that moves nothing logged a move:\n%s", out)
		}
	}
	out := apply(zkwatch.Update{Services: []zkwatch.ServiceState{svc("payments-v2")}})
	suffixed, _ := p.handler.Current().Label("payments.v2")
	for _, want := range []string{
		`level=WARN msg="service moved to another DNS label" service=payments.v2 old_label=payments-v2 new_label=` + suffixed + ` taken_by=payments-v2`,
		`level=INFO msg="service added" service=payments-v2 label=payments-v2 path=/services/payments-v2`,
	} {
		if suffixed == "payments-v2" || !strings.Contains(out, want) || moves(out) != 1 {
			t.Errorf("a name that is its own label takes it: want %q in:\n%s", want, out)
		}
	}
	out = apply(zkwatch.Update{Removed: []string{"payments-v2"}})
	if want := `service=payments.v2 old_label=` + suffixed + ` new_label=payments-v2` + "\n"; !strings.Contains(out, want) || moves(out) != 1 {
		t.Errorf("the taker goes: want %q in:\n%s", want, out)
	}
}

// TestLogMembership: an update logs a line per instance that joined, left
// or changed health, and none for instances whose payload alone changed,
// nor when the log level leaves its lines out.
func TestLogMembership(t *testing.T) {
	inst := func(id string, port uint16, healthy bool) zkwatch.Instance {
		return zkwatch.Instance{ID: id, Format: "hostport", Address: "192.0.2.1", Port: port, Weight: 1, Healthy: healthy}
	}
	state := func(in ...zkwatch.Instance) zkwatch.ServiceState {
		return zkwatch.ServiceState{ServiceSpec: zkwatch.ServiceSpec{Name: "payments", Path: "/services/payments"}, Instances: in}
	}
	a, b := inst("a", 80, true), inst("b", 80, true)
	for _, tc := range []struct {
		name     string
		old, cur zkwatch.ServiceState
		level    slog.Level
		want     []string
	}{
		{name: "a port moved", old: state(a, b), cur: state(a, inst("b", 81, true))},
		{name: "unchanged", old: state(a, b), cur: state(a, b)},
		{name: "joined", old: state(a), cur: state(a, b),
			want: []string{`msg="instance joined" service=payments id=b address=192.0.2.1 port=80 healthy=true`}},
		{name: "left", old: state(a, b), cur: state(b),
			want: []string{`msg="instance left" service=payments id=a address=192.0.2.1 port=80`}},
		{name: "health changed", old: state(a, b), cur: state(a, inst("b", 80, false)),
			want: []string{`msg="instance health changed" service=payments id=b address=192.0.2.1 healthy=false`}},
		{name: "one replaced by another", old: state(a), cur: state(b), want: []string{
			`msg="instance joined" service=payments id=b`, `msg="instance left" service=payments id=a`}},
		{name: "joined, at warn level", old: state(a), cur: state(a, b), level: slog.LevelWarn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &testutil.LogBuffer{}
			logMembership(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: tc.level})), tc.old, tc.cur)
			out := logs.String()
			if got := strings.Count(out, "\n"); got != len(tc.want) {
				t.Errorf("logged %d lines, want %d:\n%s", got, len(tc.want), out)
			}
			for _, want := range tc.want {
				if !strings.Contains(out, want) {
					t.Errorf("want %q in:\n%s", want, out)
				}
			}
		})
	}
	// The lines due are worked out on every update: one that changes no
	// membership must not pay for it.
	logger := slog.New(slog.NewTextHandler(&testutil.LogBuffer{}, nil))
	var old, cur zkwatch.ServiceState
	for i := range 10 {
		old.Instances = append(old.Instances, inst(fmt.Sprint(i), 80, true))
		cur.Instances = append(cur.Instances, inst(fmt.Sprint(i), uint16(81+i), true))
	}
	if n := testing.AllocsPerRun(100, func() { logMembership(logger, old, cur) }); n != 0 {
		t.Errorf("an update that changes no membership allocated %v times", n)
	}
}
