package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/miekg/dns"
)

// coldMeasurements is what target 3 hands the scaling arithmetic.
type coldMeasurements struct {
	reader treeRead // the faster of the reader's passes
}

// readRate is the requests per second one ZooKeeper server answered the
// reader: one per child list and one per instance.
func (c coldMeasurements) readRate() float64 {
	return float64(c.reader.lists+c.reader.nodes) / c.reader.took.Seconds()
}

// eventToPublish is the daemon's histogram of the time from a watch event
// to the DNS answers reflecting it; readToPublish is its part after the
// ZooKeeper reads the event asked for had returned.
const (
	eventToPublish = "zkdns_zookeeper_event_to_publish_seconds"
	readToPublish  = "zkdns_zookeeper_read_to_publish_seconds"
)

// coldSync is target 3: 10,000 services × 10 instances registered with
// pipelined creates; a bare pipelined reader's time to read the tree
// beside zkdns's time from start to READY=1; zkdns's RSS at ready; its
// republish time for single changes in that table; and its DNS throughput
// with the table loaded, beside the throughput data set's.
func (b *bench) coldSync(ctx context.Context, fl *fleet, smallPeak float64) (*section, *coldMeasurements, error) {
	d := b.plan.cold
	sec := newSection(targetTitle(3), fmt.Sprintf(
		"%s services × %d instances = %s ephemeral znodes of %d-byte Curator payloads, created %d requests deep on one "+
			"session. The reader is the same client library with %d workers on one connection, each listing a "+
			"service and reading its instances' data (no watches); it runs before and after zkdns starts, and "+
			"the faster pass counts. zkdns's time runs from exec to its sd_notify READY=1, which it sends as its "+
			"first full sync is served and /readyz turns 200, received on a NOTIFY_SOCKET of the bench's (so no "+
			"polling takes the CPUs meanwhile); it runs unpinned like the reader.",
		fmtCount(d.services), d.instances, fmtCount(d.total()), len(d.payload(d.services-1, d.instances-1, basePort)),
		pipelineDepth, pipelineDepth))
	dir, err := b.dir("cold")
	if err != nil {
		return sec, nil, err
	}
	owner, err := connectZK(ctx, b.zk.Addr(), time.Minute)
	if err != nil {
		return sec, nil, err
	}
	defer owner.Close()
	start := time.Now()
	if err := createDataset(ctx, owner, d); err != nil {
		return sec, nil, err
	}
	created := time.Since(start)
	b.log.Info("cold data set registered", "znodes", d.total(), "took", created.Round(time.Millisecond))

	read := func() (treeRead, readCost, error) {
		conn, err := connectZK(ctx, b.zk.Addr(), time.Minute)
		if err != nil {
			return treeRead{}, readCost{}, err
		}
		defer conn.Close()
		client0, err := selfCPU()
		if err != nil {
			return treeRead{}, readCost{}, err
		}
		server0, err := processTreeCPU(b.zk.pid)
		if err != nil {
			return treeRead{}, readCost{}, err
		}
		r, err := readTree(ctx, conn, d.root)
		if err == nil && r.nodes != d.total() {
			err = fmt.Errorf("zkbench: the reader saw %d instances, want %d", r.nodes, d.total())
		}
		if err != nil {
			return r, readCost{}, err
		}
		client1, err := selfCPU()
		if err != nil {
			return r, readCost{}, err
		}
		server1, err := processTreeCPU(b.zk.pid)
		return r, readCost{client: client1 - client0, server: server1 - server0}, err
	}
	first, firstCost, err := read()
	if err != nil {
		return sec, nil, err
	}
	b.log.Info("reader pass", "pass", 1, "took", first.took.Round(time.Millisecond))

	settings := zkdnsSettings{zookeeper: b.zk.Addr(), sessionTimeout: fleetSession, discoverRoot: d.root}
	zkCPU0, err := processTreeCPU(b.zk.pid)
	if err != nil {
		return sec, nil, err
	}
	z, launched, ready, err := launchZkdns(ctx, b.opts.zkdns, filepath.Join(dir, "zkdns"), -1, settings, 5*time.Minute)
	if err != nil {
		return sec, nil, err
	}
	defer z.stop()
	coldStart := ready.Sub(launched)
	var syncCost readCost
	if syncCost.client, err = processTreeCPU(z.proc.pid()); err != nil {
		return sec, nil, err
	}
	zkCPU1, err := processTreeCPU(b.zk.pid)
	if err != nil {
		return sec, nil, err
	}
	syncCost.server = zkCPU1 - zkCPU0
	rss, err := processMemory(z.proc.pid(), "VmRSS")
	if err != nil {
		return sec, nil, err
	}
	b.log.Info("zkdns ready", "took", coldStart.Round(time.Millisecond), "rss", fmtBytes(rss))
	last := fmt.Sprintf("svc%d.%s", d.services-1, zone)
	if err := waitAnswers(ctx, z, last, dns.TypeSRV, d.instances, 30*time.Second); err != nil {
		return sec, nil, err
	}
	sec.codeTitle = fmt.Sprintf("zkdns's live heap at ready, with %s instances (a heap profile taken after a collection)", fmtCount(d.total()))
	if top, cmdline, err := b.heapTop(ctx, z, filepath.Join(dir, "heap.pprof")); err != nil {
		b.log.Warn("heap profile failed", "err", err)
		sec.code = fmt.Sprintf("no heap profile (%v).", err)
	} else {
		sec.code = top
		sec.commands = append(sec.commands, cmdline)
	}

	second, secondCost, err := read()
	if err != nil {
		return sec, nil, err
	}
	b.log.Info("reader pass", "pass", 2, "took", second.took.Round(time.Millisecond))
	reader, readerCost := first, firstCost
	if second.took < first.took {
		reader, readerCost = second, secondCost
	}

	moved, removed, reads, err := b.republish(ctx, z, d, owner)
	if err != nil {
		return sec, nil, err
	}
	hwm, err := processMemory(z.proc.pid(), "VmHWM")
	if err != nil {
		return sec, nil, err
	}
	z.stop()

	sec.target("start → READY=1 (/readyz 200)", fmtDuration(coldStart),
		fmt.Sprintf("%s (bare reader; passes %s, %s)", fmtDuration(reader.took), fmtDuration(first.took), fmtDuration(second.took)),
		fmtRatio(float64(coldStart), float64(reader.took)), "≤ 2× reader", coldStart <= 2*reader.took)
	sec.info("CPU time from start to ready: zkdns + the ZooKeeper server", fmtDuration(syncCost.client)+" + "+fmtDuration(syncCost.server),
		fmt.Sprintf("bare reader (the bench's process, the faster pass) %s + the ZooKeeper server %s", fmtDuration(readerCost.client), fmtDuration(readerCost.server)),
		fmtRatio(float64(syncCost.client+syncCost.server), float64(readerCost.client+readerCost.server)))
	const rssLimit = 200_000_000
	sec.target("RSS at ready", fmt.Sprintf("%s (%.0f MB)", fmtBytes(rss), float64(rss)/1e6),
		fmt.Sprintf("peak RSS (VmHWM) %s by the end of the changes", fmtBytes(hwm)), "", "≤ 200 MB", rss <= rssLimit)
	goal := 200 * time.Microsecond
	for _, c := range []struct {
		what string
		r    republished
		// after is what read_to_publish times from: the reads returning,
		// or, for a removal, which reads nothing, zkdns having dropped the instance.
		after, afterShort string
	}{
		{"one instance's data changed", moved, "after zkdns's reads returned", "after the reads"},
		{"one instance removed", removed, "after zkdns had dropped the instance (a removal reads nothing)", "after that"},
	} {
		sec.target(fmt.Sprintf("%s → republished, p50 (%s histogram, %d events)", c.what, eventToPublish, c.r.event.observed),
			fmtDuration(c.r.event.p50), fmt.Sprintf("%s of it %s (%s)", fmtDuration(c.r.read.p50), c.after, readToPublish),
			"", "≤ 200µs", c.r.event.p50 <= goal)
		sec.target(c.what+" → republished, p99 (same histogram)", fmtDuration(c.r.event.p99),
			fmt.Sprintf("%s of it %s; the hypervisor stole %.1f%% of the CPUs' time over these changes (%s in %s); zkdns collected garbage %d times",
				fmtDuration(c.r.read.p99), c.afterShort, c.r.stealShare(), fmtDuration(c.r.stolen), fmtDuration(c.r.took), c.r.collections),
			"", "≤ 200µs", c.r.event.p99 <= goal)
	}
	slices.Sort(reads)
	sec.info(fmt.Sprintf("a bare getData round trip to the same ZooKeeper, one after each change (%d)", len(reads)),
		fmt.Sprintf("p50 %s, p99 %s", fmtDuration(percentile(reads, 50)), fmtDuration(percentile(reads, 99))),
		"the part of event → publish that is ZooKeeper's", "")

	if err := b.coldThroughput(ctx, sec, dir, d, settings, fl, smallPeak); err != nil {
		return sec, nil, err
	}
	sec.info("pipelined creates", fmtCount(d.total()+d.services+1),
		fmt.Sprintf("in %s (%s/s)", fmtDuration(created), fmtRate(float64(d.total()+d.services+1)/created.Seconds())), "")
	sec.info("reader throughput", fmt.Sprintf("%s requests", fmtCount(reader.lists+reader.nodes)),
		fmt.Sprintf("%s/s, %s of payloads", fmtRate(coldMeasurements{reader: reader}.readRate()), fmtBytes(reader.bytes)), "")
	sec.notes = append(sec.notes,
		"The republish percentiles are estimated from the histogram's buckets (25µs apart up to 150µs, then at most half again as wide "+
			"up to 1ms, with bounds at 200µs and 500µs) by linear interpolation, "+
			"as Prometheus's histogram_quantile does. One change at a time, each waited for until DNS showed it (polling "+
			"every millisecond, from a millisecond after the change, so that the bench's own queries stay off the CPUs "+
			"while zkdns publishes): first each moved one instance's port, then each removed one (they were registered again "+
			"afterwards). The event-to-publish time runs from the instance's data watch event arriving. A data change "+
			"event does not carry the data, so for those the time holds zkdns's one getData round trip to ZooKeeper (the "+
			"bare round trip row); the read-to-publish time is the rest: decoding, rebuilding the service's answers and "+
			"swapping the snapshot. A removal needs no read, so its event-to-publish time is zkdns's own work alone. "+
			"Before each kind of change the bench has zkdns collect its garbage (/debug/pprof/heap?gc=1): each of the "+
			"bench's own scrapes of /metrics leaves some 17 MB behind at this size, and the p99 rows count the collections "+
			"that still ran among the changes. "+
			"The p99 rows give the hypervisor's steal beside them: while it holds a CPU, whatever runs there stands "+
			"still, and when it holds the CPUs for more than 1% of the time in pauses longer than a publish, more than 1% "+
			"of the changes can meet one, so a p99 far above its p50 says more about the machine than about zkdns.")
	sec.commands = append(sec.commands, z.proc.commandLine())
	return sec, &coldMeasurements{reader: reader}, nil
}

// gcCount is the Go runtime's count of completed garbage collections, as
// zkdns exports it.
const gcCount = "go_gc_duration_seconds_count"

// collectGarbage has zkdns run a full garbage collection and waits for it
// to finish: pprof's heap profile runs one first when asked to.
func collectGarbage(ctx context.Context, admin string) error {
	resp, err := getOK(ctx, fmt.Sprintf("http://%s/debug/pprof/heap?gc=1", admin))
	if err != nil {
		return fmt.Errorf("zkbench: have zkdns collect its garbage: %w", err)
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// heapTop fetches zkdns's heap profile into data, after a collection, and
// returns its top by the memory in use: what the table costs, and which
// parts of zkdns hold it.
func (b *bench) heapTop(ctx context.Context, z *dnsServer, data string) (top, cmdline string, err error) {
	if b.opts.gotool == "" {
		return "", "", errors.New("no go binary to read it with")
	}
	url := fmt.Sprintf("http://%s/debug/pprof/heap?gc=1", z.admin)
	if err := fetchFile(ctx, url, data); err != nil {
		return "", "", err
	}
	args := []string{"-sample_index=inuse_space", "-top", "-nodecount=15"}
	if top, err = pprofTop(ctx, b.opts.gotool, b.opts.zkdns, data, args...); err != nil {
		return "", "", err
	}
	return top, fmt.Sprintf("curl -o heap.pprof '%s' (at ready; then go tool pprof %s %s heap.pprof)",
		strings.Replace(url, z.admin, "ADMIN", 1), strings.Join(args, " "), b.opts.zkdns), nil
}

// republishTimes are percentiles of one of zkdns's latency histograms
// over the republish changes.
type republishTimes struct {
	p50, p99 time.Duration
	observed int
}

// republished holds zkdns's event-to-publish and read-to-publish times
// over one kind of change.
type republished struct {
	event, read republishTimes
	// stolen is the hypervisor's steal over all CPUs while the changes
	// ran, and took their wall time.
	stolen, took time.Duration
	// collections counts zkdns's garbage collections from the scrape
	// before the changes to the one after them, the one the bench forces
	// before the changes left out.
	collections int
}

// stealShare is the share of the CPUs' time the hypervisor took while the
// changes ran, in percent.
func (r republished) stealShare() float64 {
	if r.took <= 0 {
		return 0
	}
	return 100 * r.stolen.Seconds() / (float64(runtime.NumCPU()) * r.took.Seconds())
}

// republish makes single changes across the table, one at a time, and
// reads zkdns's event-to-publish and read-to-publish histograms over
// them: first each change moves an instance's port (zkdns must read the
// new data), then each removes an instance (zkdns needs no read). After
// each move it also times one getData of the moved znode: the round trip
// zkdns's event-to-publish time holds for such changes. owner, the
// session that registered the table, registers the removed instances
// again at the end.
func (b *bench) republish(ctx context.Context, z *dnsServer, d dataset, owner *zk.Conn) (moved, removed republished, reads []time.Duration, err error) {
	probe, err := dialDNS(z.addr)
	if err != nil {
		return moved, removed, nil, err
	}
	defer probe.close()
	// The histograms time each change inside zkdns; the probe only says
	// when to make the next one, so it polls gently rather than take the
	// CPU the measured path runs on. Nor does it ask at once: a query sent
	// as the change returns lands while zkdns publishes it, and on two
	// cores the probe and zkdns's reader that answers it then take the
	// publishing thread's CPU (perf sched showed them among what preempted
	// the removals slower than 200µs).
	const poll = time.Millisecond
	reads = make([]time.Duration, 0, b.plan.coldChanges)
	moved, err = histogramsOver(ctx, z, func() error {
		for k := range b.plan.coldChanges {
			// Spread the changes over the table with a stride prime to its size.
			s, i := (k*7919)%d.services, k%d.instances
			port := 20000 + k
			if _, err := owner.Set(d.instancePath(s, i), d.payload(s, i, port), -1); err != nil {
				return fmt.Errorf("zkbench: change %s: %w", d.instancePath(s, i), err)
			}
			want := fmt.Sprintf("inst%d.svc%d.%s:%d", i, s, zone, port)
			time.Sleep(poll)
			if err := waitSRV(ctx, probe, fmt.Sprintf("svc%d.%s", s, zone), poll, func(ts []string) bool { return slices.Contains(ts, want) }); err != nil {
				return err
			}
			start := time.Now()
			if _, _, err := owner.Get(d.instancePath(s, i)); err != nil {
				return fmt.Errorf("zkbench: read %s: %w", d.instancePath(s, i), err)
			}
			reads = append(reads, time.Since(start))
		}
		return nil
	})
	if err != nil {
		return moved, removed, nil, err
	}

	// Other instances than the moved ones, so that each comes back with
	// its original payload.
	gone := func(k int) (s, i int) { return (k*7919 + 1) % d.services, (k + d.instances/2) % d.instances }
	removed, err = histogramsOver(ctx, z, func() error {
		for k := range b.plan.coldChanges {
			s, i := gone(k)
			if err := owner.Delete(d.instancePath(s, i), -1); err != nil {
				return fmt.Errorf("zkbench: remove %s: %w", d.instancePath(s, i), err)
			}
			target := fmt.Sprintf("inst%d.svc%d.%s:", i, s, zone)
			time.Sleep(poll)
			if err := waitSRV(ctx, probe, fmt.Sprintf("svc%d.%s", s, zone), poll, func(ts []string) bool {
				return !slices.ContainsFunc(ts, func(t string) bool { return strings.HasPrefix(t, target) })
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return moved, removed, nil, err
	}
	for k := range b.plan.coldChanges {
		s, i := gone(k)
		if _, err := owner.Create(d.instancePath(s, i), d.payload(s, i, basePort), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
			return moved, removed, nil, fmt.Errorf("zkbench: register %s again: %w", d.instancePath(s, i), err)
		}
	}
	for k := range b.plan.coldChanges {
		s, _ := gone(k)
		if err := waitAnswers(ctx, z, fmt.Sprintf("svc%d.%s", s, zone), dns.TypeSRV, d.instances, settle); err != nil {
			return moved, removed, nil, err
		}
	}
	return moved, removed, reads, nil
}

// histogramsOver runs changes and returns zkdns's event-to-publish and
// read-to-publish times over them, from its histograms' buckets before
// and after.
func histogramsOver(ctx context.Context, z *dnsServer, changes func() error) (republished, error) {
	var out republished
	before, err := settledMetrics(ctx, z.admin, 100*time.Millisecond)
	if err != nil {
		return out, err
	}
	// Each scrape of a table this size leaves zkdns some 17 MB of
	// garbage, and settling takes a few: enough to land a collection,
	// with its marking and assists, among the changes, where the
	// occasional scrape of a real deployment would not. Collect it now.
	if err := collectGarbage(ctx, z.admin); err != nil {
		return out, err
	}
	start := time.Now()
	stolen, err := stolenDuring(-1, changes)
	if err != nil {
		return out, err
	}
	out.stolen, out.took = stolen, time.Since(start)
	after, err := settledMetrics(ctx, z.admin, 100*time.Millisecond)
	if err != nil {
		return out, err
	}
	out.collections = max(0, int(after[gcCount]-before[gcCount])-1)
	for name, times := range map[string]*republishTimes{eventToPublish: &out.event, readToPublish: &out.read} {
		h := subtractBuckets(after.histogram(name), before.histogram(name))
		if len(h) == 0 {
			return out, fmt.Errorf("zkbench: zkdns exports no %s histogram", name)
		}
		q50, ok50 := histogramQuantile(h, 0.50)
		q99, ok99 := histogramQuantile(h, 0.99)
		if !ok50 || !ok99 {
			return out, fmt.Errorf("zkbench: %s observed nothing over the changes", name)
		}
		*times = republishTimes{
			p50:      time.Duration(q50 * float64(time.Second)),
			p99:      time.Duration(q99 * float64(time.Second)),
			observed: int(h[len(h)-1].count),
		}
	}
	return out, nil
}

// coldThroughput restarts zkdns pinned as in target 1 and runs the same
// dnsperf load over the big table, interleaved with runs against the
// fleet's zkdns over the small one, so the two figures share the
// machine's conditions.
func (b *bench) coldThroughput(ctx context.Context, sec *section, dir string, d dataset, settings zkdnsSettings, fl *fleet, smallPeak float64) error {
	queries := filepath.Join(dir, "queries.txt")
	if err := writeFile(queries, func(w *os.File) error { return writeQueries(w, d, zone, b.plan.queryLines, 3) }); err != nil {
		return err
	}
	z, launched, ready, err := launchZkdns(ctx, b.opts.zkdns, filepath.Join(dir, "zkdns-pinned"), b.opts.serverCore, settings, 5*time.Minute)
	if err != nil {
		return err
	}
	defer z.stop()
	big := dnsperfRun{binary: b.opts.dnsperf, core: b.opts.clientCore, server: z.addr, queries: queries, seconds: b.plan.perfSeconds}
	small := big
	small.server, small.queries = fl.zkdns.addr, fl.queries
	var bigBest, smallBest float64
	var lost int64
	var bigSize, smallSize int
	for round := 1; round <= b.plan.rounds; round++ {
		res, err := big.run(ctx)
		if err != nil {
			return err
		}
		bigBest, bigSize = max(bigBest, res.qps), res.responseSize
		lost += res.lost
		b.log.Info("dnsperf", "instances", d.total(), "round", round, "qps", int(res.qps), "lost", res.lost)
		if res, err = small.run(ctx); err != nil {
			return err
		}
		smallBest, smallSize = max(smallBest, res.qps), res.responseSize
		b.log.Info("dnsperf", "instances", fl.data.total(), "round", round, "qps", int(res.qps), "lost", res.lost)
	}
	// Ten instances a service make bigger answers than five; the sizes
	// say how much of a gap is that rather than the size of the table.
	sec.target(fmt.Sprintf("queries/s with %s instances loaded, best of %s", fmtCount(d.total()), plural(b.plan.rounds, "run")),
		fmt.Sprintf("%s (lost %s; avg response %d B)", fmtRate(bigBest), fmtCount(lost), bigSize),
		fmt.Sprintf("%s with %s instances, interleaved (avg response %d B)", fmtRate(smallBest), fmtCount(fl.data.total()), smallSize),
		fmtRatio(bigBest, smallBest), "≥ 0.9×", bigBest >= 0.9*smallBest)
	if smallPeak > 0 {
		sec.info(fmt.Sprintf("queries/s with %s instances in target 1", fmtCount(fl.data.total())), "", fmtRate(smallPeak), fmtRatio(bigBest, smallPeak))
	}
	sec.info("start → READY=1 pinned to one CPU (for the throughput runs)", fmtDuration(ready.Sub(launched)), "", "")
	sec.commands = append(sec.commands, z.proc.commandLine(), big.commandLine())
	return nil
}

// readCost is the CPU time a read of the tree took: the client's and the
// ZooKeeper server's. On two CPUs shared by both, what one spends the
// other waits for.
type readCost struct {
	client, server time.Duration
}

// selfCPU is the CPU time the bench's own process has used, its children
// (ZooKeeper, the servers) left out.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("zkbench: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
