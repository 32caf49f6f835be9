package main

import (
	"context"
	"fmt"
	"maps"

	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/miekg/dns"
	"golang.org/x/sync/errgroup"
)

// changeCost is what changes of one kind cost, summed over the trials.
type changeCost struct {
	trials  int
	metrics map[string]float64 // zkdns's own request counters, by op
	wire    wireStats          // as the proxy saw them
}

// perChange is the count of op per change in the metrics.
func (c changeCost) perChange(op string) float64 {
	return c.metrics[op] / float64(max(c.trials, 1))
}

func (c changeCost) metricTotal() float64 {
	var n float64
	for _, v := range c.metrics {
		n += v
	}
	return n / float64(max(c.trials, 1))
}

func (c changeCost) wirePer(n int) float64 { return float64(n) / float64(max(c.trials, 1)) }

// wireRequests prints the wire's requests per change by opcode.
func (c changeCost) wireRequests() string {
	ops := slices.Sorted(maps.Keys(c.wire.requests))
	var parts []string
	for _, op := range ops {
		parts = append(parts, fmt.Sprintf("%s %s", zkOpName(op), fmtPer(c.wirePer(c.wire.requests[op]))))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// fanout is ZooKeeper's CPU per change without and with extra watchers
// that each hold a data watch on the changed znodes and re-arm it.
type fanout struct {
	watchers        int
	changes         int
	cpuAlone        time.Duration // per change, zkdns the only watcher
	cpuWithWatchers time.Duration // per change, with the extra watchers
}

// perNotification is the server CPU one more watcher adds to a change:
// sending it the notification and serving its re-arming read.
func (f fanout) perNotification() time.Duration {
	if f.watchers == 0 {
		return 0
	}
	return (f.cpuWithWatchers - f.cpuAlone) / time.Duration(f.watchers)
}

// costMeasurements is what target 5 hands the scaling arithmetic.
type costMeasurements struct {
	services, instances int
	// The watches zkdns left during its first sync, counted on the wire,
	// and the data watches the server added meanwhile, from wchs.
	childWatches, dataWatches, serverDataWatches int
	byKind                                       map[churnKind]changeCost
	reconnect                                    changeCost
	expirations                                  float64 // session expirations during the reconnect trials
	fanout                                       *fanout
}

// costSession is the session timeout zkdns gets in the cost target: the
// connection cut must stay well inside it.
const costSession = 10 * time.Second

// zkCost is target 5: the ZooKeeper requests zkdns makes per instance
// create, delete and data change and per reconnect, from its own counters
// and from a proxy that counts the frames on the wire; the watches it
// holds; and ZooKeeper's CPU per notified watcher.
func (b *bench) zkCost(ctx context.Context) (*section, *costMeasurements, error) {
	d := b.plan.cost
	sec := newSection(targetTitle(5), fmt.Sprintf(
		"zkdns watches %d services × %d instances through a TCP proxy that counts ZooKeeper frames. "+
			"Each kind of change is made %d times, one at a time; a change's cost is the difference in zkdns's "+
			"zkdns_zookeeper_requests_total{op} and in the frames on the wire from before it until its answer "+
			"changed and the counters stood still. Pings and handshakes are left out of the wire counts.",
		d.services, d.instances, b.plan.costTrials))
	m := &costMeasurements{services: d.services, instances: d.instances, byKind: map[churnKind]changeCost{}}

	owner, err := connectZK(ctx, b.zk.Addr(), costSession)
	if err != nil {
		return sec, nil, err
	}
	defer owner.Close()
	if err := createDataset(ctx, owner, d); err != nil {
		return sec, nil, err
	}
	watchesBefore, err := watchTotal(ctx, b.zk.Addr())
	if err != nil {
		return sec, nil, err
	}
	proxy, err := newZKProxy(b.zk.Addr())
	if err != nil {
		return sec, nil, err
	}
	defer proxy.Close()
	dir, err := b.dir("cost")
	if err != nil {
		return sec, nil, err
	}
	z, _, _, err := launchZkdns(ctx, b.opts.zkdns, dir, -1, zkdnsSettings{
		zookeeper: proxy.Addr(), sessionTimeout: costSession, discoverRoot: d.root,
	}, time.Minute)
	if err != nil {
		return sec, nil, err
	}
	defer z.stop()
	probe, err := dialDNS(z.addr)
	if err != nil {
		return sec, nil, err
	}
	defer probe.close()

	watchesAfter, err := watchTotal(ctx, b.zk.Addr())
	if err != nil {
		return sec, nil, err
	}
	m.serverDataWatches = watchesAfter - watchesBefore
	synced := proxy.snapshot()
	m.childWatches, m.dataWatches = synced.childWatchSets, synced.dataWatchSets

	measure := func(kind churnKind, change func() error, answered func() error) error {
		before, wireBefore, err := settle2(ctx, z.admin, proxy)
		if err != nil {
			return err
		}
		if err := change(); err != nil {
			return err
		}
		if err := answered(); err != nil {
			return err
		}
		after, wireAfter, err := settle2(ctx, z.admin, proxy)
		if err != nil {
			return err
		}
		c := m.byKind[kind]
		if c.metrics == nil {
			c.metrics = map[string]float64{}
		}
		c.trials++
		for op, v := range deltaByLabel(after, before, requestsMetric, "op") {
			c.metrics[op] += v
		}
		c.wire = c.wire.add(wireAfter.sub(wireBefore))
		m.byKind[kind] = c
		return nil
	}
	extra := d.instances // an instance number the data set does not use
	for t := range b.plan.costTrials {
		s := t % d.services
		p := d.instancePath(s, extra)
		target := fmt.Sprintf("inst%d.svc%d.%s", extra, s, zone)
		port := 30000 + t
		steps := []struct {
			kind   churnKind
			change func() error
			want   func(targets []string) bool
		}{
			{churnCreate, func() error {
				_, err := owner.Create(p, d.payload(s, extra, basePort), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
				return err
			}, func(ts []string) bool { return slices.Contains(ts, fmt.Sprintf("%s:%d", target, basePort)) }},
			{churnSetData, func() error {
				_, err := owner.Set(p, d.payload(s, extra, port), -1)
				return err
			}, func(ts []string) bool { return slices.Contains(ts, fmt.Sprintf("%s:%d", target, port)) }},
			{churnDelete, func() error { return owner.Delete(p, -1) },
				func(ts []string) bool { return len(ts) == d.instances }},
		}
		for _, step := range steps {
			err := measure(step.kind, step.change, func() error {
				return waitSRV(ctx, probe, fmt.Sprintf("svc%d.%s", s, zone), 0, step.want)
			})
			if err != nil {
				return sec, nil, fmt.Errorf("zkbench: cost of a %s: %w", step.kind, err)
			}
		}
	}
	b.log.Info("change costs measured", "trials", b.plan.costTrials)

	if err := b.reconnects(ctx, z, proxy, m); err != nil {
		return sec, nil, err
	}
	if b.plan.fanoutWatchers > 0 {
		f, err := b.measureFanout(ctx, owner, d)
		if err != nil {
			return sec, nil, err
		}
		m.fanout = f
	}
	costRows(sec, m)
	sec.commands = append(sec.commands, z.proc.commandLine()+" (zookeeper.servers = the counting proxy)")
	return sec, m, nil
}

func costRows(sec *section, m *costMeasurements) {
	expect := []struct {
		kind churnKind
		want map[string]float64
		goal string
	}{
		{churnCreate, map[string]float64{"children_watch": 1, "get_watch": 1}, "2: children_watch + get_watch"},
		{churnDelete, map[string]float64{"children_watch": 1}, "1: children_watch"},
		{churnSetData, map[string]float64{"get_watch": 1}, "1: get_watch"},
	}
	for _, e := range expect {
		c := m.byKind[e.kind]
		got := map[string]float64{}
		for op := range c.metrics {
			got[op] = c.perChange(op)
		}
		sec.target(fmt.Sprintf("requests per instance %s (%d trials)", e.kind, c.trials),
			fmt.Sprintf("%s: %s", fmtPer(c.metricTotal()), opsSummary(c.metrics, float64(max(c.trials, 1)))),
			fmt.Sprintf("wire: %s", c.wireRequests()), "", e.goal, maps.Equal(got, e.want))
	}
	for _, e := range expect {
		c := m.byKind[e.kind]
		sec.info(fmt.Sprintf("notifications per instance %s", e.kind),
			fmtPer(c.wirePer(c.wire.notifications)),
			fmt.Sprintf("%s per notification; requests %s, replies %s per change",
				fmtBytes(c.wire.notificationBytes/int64(max(c.wire.notifications, 1))),
				fmtBytes(c.wire.requestBytes/int64(max(c.trials, 1))), fmtBytes(c.wire.replyBytes/int64(max(c.trials, 1)))), "")
	}
	r := m.reconnect
	sec.info(fmt.Sprintf("requests per reconnect (%d services, %d instances; %d trials)", m.services, m.services*m.instances, r.trials),
		fmt.Sprintf("%s: %s", fmtPer(r.metricTotal()), opsSummary(r.metrics, float64(max(r.trials, 1)))),
		fmt.Sprintf("wire: %s; %s sent, %s received", r.wireRequests(),
			fmtBytes(r.wire.requestBytes/int64(max(r.trials, 1))), fmtBytes((r.wire.replyBytes+r.wire.notificationBytes)/int64(max(r.trials, 1)))), "")
	sec.info("watches zkdns leaves (first sync, on the wire)",
		fmt.Sprintf("%s: %s child, %s data", fmtCount(m.childWatches+m.dataWatches), fmtCount(m.childWatches), fmtCount(m.dataWatches)),
		fmt.Sprintf("%d services + 1 discover root child watches, %d instance data watches; the server's wchs grew by %s data watches",
			m.services, m.services*m.instances, fmtCount(m.serverDataWatches)), "")
	if f := m.fanout; f != nil {
		sec.info("ZooKeeper CPU per notified watcher (notification + re-arming read)", fmtDuration(f.perNotification()),
			fmt.Sprintf("per data change: %s with zkdns alone, %s with %d more watchers (%d changes each)",
				fmtDuration(f.cpuAlone), fmtDuration(f.cpuWithWatchers), f.watchers, f.changes), "")
	}
	if r.trials > 0 && m.expirations > 0 {
		sec.notes = append(sec.notes, fmt.Sprintf("%v session expirations happened during the reconnect trials: "+
			"those reconnects include a full resync.", m.expirations))
	}
	sec.notes = append(sec.notes, "A delete notifies twice: the deleted znode's data watch (NodeDeleted) and its "+
		"parent's child watch (NodeChildrenChanged); only the second needs a read.")
}

// reconnects cuts zkdns's connection for less than its session timeout,
// restores it, and counts what zkdns asks ZooKeeper once it is back.
func (b *bench) reconnects(ctx context.Context, z *dnsServer, proxy *zkProxy, m *costMeasurements) error {
	for t := range b.plan.reconnectTrials {
		before, wireBefore, err := settle2(ctx, z.admin, proxy)
		if err != nil {
			return err
		}
		proxy.Cut()
		select {
		case <-time.After(b.plan.reconnectCut):
		case <-ctx.Done():
			proxy.Restore()
			return ctx.Err()
		}
		proxy.Restore()
		deadline := time.Now().Add(30 * time.Second)
		for {
			cur, err := scrapeMetrics(ctx, z.admin)
			if err != nil {
				return err
			}
			if cur["zkdns_zookeeper_reconnects_total"] > before["zkdns_zookeeper_reconnects_total"] ||
				cur["zkdns_zookeeper_full_syncs_total"] > before["zkdns_zookeeper_full_syncs_total"] {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("zkbench: zkdns did not reconnect within 30s of the proxy's restore")
			}
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		after, wireAfter, err := settle2(ctx, z.admin, proxy)
		if err != nil {
			return err
		}
		r := &m.reconnect
		if r.metrics == nil {
			r.metrics = map[string]float64{}
		}
		r.trials++
		for op, v := range deltaByLabel(after, before, requestsMetric, "op") {
			r.metrics[op] += v
		}
		r.wire = r.wire.add(wireAfter.sub(wireBefore))
		m.expirations += after["zkdns_zookeeper_session_expirations_total"] - before["zkdns_zookeeper_session_expirations_total"]
		b.log.Info("reconnect measured", "trial", t+1, "requests", r.metricTotal())
	}
	return nil
}

// settle2 waits until both zkdns's request counters and the proxy's frame
// counts stand still, and returns both.
func settle2(ctx context.Context, admin string, proxy *zkProxy) (metricSet, wireStats, error) {
	const quiet = 150 * time.Millisecond
	for range 100 {
		w0 := proxy.snapshot()
		ms, err := settledMetrics(ctx, admin, quiet)
		if err != nil {
			return nil, wireStats{}, err
		}
		w1 := proxy.snapshot()
		if d := w1.sub(w0); d.requestCount() == 0 && d.replies == 0 && d.notifications == 0 {
			return ms, w1, nil
		}
	}
	return nil, wireStats{}, fmt.Errorf("zkbench: ZooKeeper traffic through the proxy never stood still")
}

// waitSRV queries name's SRV set until ok accepts it, every pause (0: in a
// tight loop). Only a whole NOERROR reply is a set: a SERVFAIL or a cut
// reply with no records must not pass for a service that lost an
// instance.
func waitSRV(ctx context.Context, c *dnsClient, name string, pause time.Duration, ok func([]string) bool) error {
	deadline := time.Now().Add(settle)
	q := question(name, dns.TypeSRV)
	var last []string
	for first := true; time.Now().Before(deadline); first = false {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !first && pause > 0 {
			time.Sleep(pause)
		}
		r, err := c.exchange(q, time.Second)
		if err != nil || r.Rcode != dns.RcodeSuccess || r.Truncated {
			continue
		}
		if last = srvTargets(r); ok(last) {
			return nil
		}
	}
	return fmt.Errorf("zkbench: %s SRV never showed the change (last: %v)", name, last)
}

// measureFanout times ZooKeeper's CPU for data changes to the cost data
// set, first with zkdns its only watcher, then with extra sessions that
// each hold a data watch on every instance and re-arm it on every event,
// as zkdns does.
func (b *bench) measureFanout(ctx context.Context, owner *zk.Conn, d dataset) (*fanout, error) {
	f := &fanout{watchers: b.plan.fanoutWatchers, changes: b.plan.fanoutChanges}
	changes := func(round int) (time.Duration, error) {
		cpu0, err := processTreeCPU(b.zk.pid)
		if err != nil {
			return 0, err
		}
		// 200 changes/s keeps the server far from saturation.
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for k := range f.changes {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			s, i := k%d.services, (k/d.services)%d.instances
			if _, err := owner.Set(d.instancePath(s, i), d.payload(s, i, 30000+round*10000+k%10000), -1); err != nil {
				return 0, fmt.Errorf("zkbench: fan-out change: %w", err)
			}
		}
		time.Sleep(200 * time.Millisecond) // let the last notifications and re-arms finish
		cpu1, err := processTreeCPU(b.zk.pid)
		if err != nil {
			return 0, err
		}
		return (cpu1 - cpu0) / time.Duration(f.changes), nil
	}
	// The first round only warms the server's JIT up for these requests.
	if _, err := changes(0); err != nil {
		return nil, err
	}
	var err error
	if f.cpuAlone, err = changes(1); err != nil {
		return nil, err
	}

	wctx, cancel := context.WithCancel(ctx)
	g, wctx := errgroup.WithContext(wctx)
	var conns []*zk.Conn
	defer func() {
		cancel()
		for _, c := range conns {
			c.Close()
		}
		_ = g.Wait()
	}()
	armed := make(chan struct{}, f.watchers*d.total())
	for range f.watchers {
		c, err := connectZK(ctx, b.zk.Addr(), costSession)
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		for s := range d.services {
			for i := range d.instances {
				p := d.instancePath(s, i)
				g.Go(func() error { return mirrorDataWatch(wctx, c, p, armed) })
			}
		}
	}
	for range f.watchers * d.total() {
		select {
		case <-armed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.cpuWithWatchers, err = changes(2); err != nil {
		return nil, err
	}
	b.log.Info("fan-out measured", "watchers", f.watchers, "cpu_alone", fmtDuration(f.cpuAlone), "cpu_with_watchers", fmtDuration(f.cpuWithWatchers))
	return f, nil
}

// mirrorDataWatch keeps a data watch on p armed, re-reading it after each
// event, until ctx ends. It signals armed once, after the first read.
func mirrorDataWatch(ctx context.Context, c *zk.Conn, p string, armed chan<- struct{}) error {
	first := true
	for {
		_, _, events, err := c.GetW(p)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("zkbench: fan-out watcher read %s: %w", p, err)
		}
		if first {
			armed <- struct{}{}
			first = false
		}
		select {
		case <-events:
		case <-ctx.Done():
			return nil
		}
	}
}

// watchTotal is the server's count of watches from `wchs`. ZooKeeper 3.8
// counts data watches there (getData and exists), not child watches.
func watchTotal(ctx context.Context, addr string) (int, error) {
	reply, err := fourLetterWord(ctx, addr, "wchs")
	if err != nil {
		return 0, err
	}
	return parseWatchTotal(reply)
}
