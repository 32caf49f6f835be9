package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/miekg/dns"
)

// churnExtras is how many extra instances per service churn adds and
// removes, on top of the data set's own.
const churnExtras = 5

type churnKind int

const (
	churnSetData churnKind = iota
	churnCreate
	churnDelete
)

func (k churnKind) String() string {
	switch k {
	case churnSetData:
		return "data change"
	case churnCreate:
		return "create"
	default:
		return "delete"
	}
}

// churnOp is one instance change.
type churnOp struct {
	kind    churnKind
	service int
	inst    int
	port    int
}

// churnModel decides the changes and keeps the state they lead to, so the
// expected DNS answers are known without asking ZooKeeper. Changes go
// round-robin over the services; per service they alternate between
// moving a base instance to a new port and adding or removing one of the
// extra instances, so half are data changes and a quarter each are
// creates and deletes.
type churnModel struct {
	data     dataset
	services int
	ports    [][]int // by service, by instance; 0 = absent
	count    []int   // changes made so far, by service
}

func newChurnModel(d dataset, services int) *churnModel {
	m := &churnModel{data: d, services: services, ports: make([][]int, services), count: make([]int, services)}
	for s := range m.ports {
		m.ports[s] = make([]int, d.instances+churnExtras)
		for i := range d.instances {
			m.ports[s][i] = basePort
		}
	}
	return m
}

// next returns change number seq and applies it to the model.
func (m *churnModel) next(seq int) churnOp {
	s := seq % m.services
	c := m.count[s]
	m.count[s]++
	if c%2 == 0 {
		i := (c / 2) % m.data.instances
		// Every data change moves the port, so DNS shows it.
		port := 10000 + c%50000
		m.ports[s][i] = port
		return churnOp{kind: churnSetData, service: s, inst: i, port: port}
	}
	i := m.data.instances + (c/2)%churnExtras
	if m.ports[s][i] == 0 {
		m.ports[s][i] = basePort
		return churnOp{kind: churnCreate, service: s, inst: i, port: basePort}
	}
	m.ports[s][i] = 0
	return churnOp{kind: churnDelete, service: s, inst: i}
}

// expected is service s's SRV answer as srvTargets lists it.
func (m *churnModel) expected(s int) []string {
	var out []string
	for i, port := range m.ports[s] {
		if port != 0 {
			out = append(out, fmt.Sprintf("inst%d.svc%d.%s:%d", i, s, zone, port))
		}
	}
	slices.Sort(out)
	return out
}

func (m *churnModel) apply(conn *zk.Conn, op churnOp) error {
	p := m.data.instancePath(op.service, op.inst)
	var err error
	switch op.kind {
	case churnSetData:
		_, err = conn.Set(p, m.data.payload(op.service, op.inst, op.port), -1)
	case churnCreate:
		_, err = conn.Create(p, m.data.payload(op.service, op.inst, op.port), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	case churnDelete:
		err = conn.Delete(p, -1)
	}
	if err != nil {
		return fmt.Errorf("zkbench: %s %s: %w", op.kind, p, err)
	}
	return nil
}

// churnMeasurements is what target 4 hands the scaling arithmetic.
type churnMeasurements struct {
	changes  int
	zkCPU    time.Duration // ZooKeeper's CPU over the churn
	requests map[string]float64
}

// churnWorkers share the changes, each owning a fixed subset of the
// services so one service's changes are made in order.
const churnWorkers = 16

// churn is target 4: instance changes at a fixed rate across a hundred
// services while dnsperf runs; then how long after the last change every
// service's answer matches ZooKeeper's state.
func (b *bench) churn(ctx context.Context, fl *fleet, noChurn float64) (*section, *churnMeasurements, error) {
	p := b.plan
	sec := newSection(targetTitle(4), fmt.Sprintf(
		"%s instance changes/s for %s across %d services of the throughput data set (half move an instance's port, "+
			"a quarter each create and delete one), from %d goroutines on one ZooKeeper session, while dnsperf "+
			"runs the throughput query mix against zkdns (pinned as in target 1). Then every service's SRV answer "+
			"is polled, all at once, until each equals the state the changes left in ZooKeeper.",
		fmtCount(p.churnRate), p.churnTime, p.churnServices, churnWorkers))
	if p.churnServices > fl.data.services {
		return sec, nil, fmt.Errorf("zkbench: churn needs %d services, the data set has %d", p.churnServices, fl.data.services)
	}
	model := newChurnModel(fl.data, p.churnServices)

	before, err := scrapeMetrics(ctx, fl.zkdns.admin)
	if err != nil {
		return sec, nil, err
	}
	zkCPU0, err := processTreeCPU(b.zk.pid)
	if err != nil {
		return sec, nil, err
	}
	ourCPU0, err := processTreeCPU(fl.zkdns.proc.pid())
	if err != nil {
		return sec, nil, err
	}

	// dnsperf runs a second longer than the changes, so the convergence
	// check happens under load too.
	perf := dnsperfRun{binary: b.opts.dnsperf, core: b.opts.clientCore, server: fl.zkdns.addr, queries: fl.queries,
		seconds: int(p.churnTime/time.Second) + 2}
	type perfOutcome struct {
		res dnsperfResult
		err error
	}
	perfDone := make(chan perfOutcome, 1)
	go func() {
		res, err := perf.run(ctx)
		perfDone <- perfOutcome{res, err}
	}()
	select {
	case <-time.After(500 * time.Millisecond):
	case <-ctx.Done():
	}

	b.log.Info("churn starts", "rate", p.churnRate, "duration", p.churnTime)
	start := time.Now()
	last, applied, churnErr := b.churnFor(ctx, fl.owner, model, p.churnRate, p.churnTime)
	churnTook := time.Since(start)
	var converged time.Duration
	if churnErr == nil {
		converged, churnErr = convergence(ctx, fl.zkdns.addr, model, last)
	}
	zkCPU1, cpuErr := processTreeCPU(b.zk.pid)
	ourCPU1, ourErr := processTreeCPU(fl.zkdns.proc.pid())
	cpuErr = errors.Join(cpuErr, ourErr)
	outcome := <-perfDone
	switch {
	case churnErr != nil:
		return sec, nil, churnErr
	case outcome.err != nil:
		return sec, nil, outcome.err
	case cpuErr != nil:
		return sec, nil, cpuErr
	}
	after, err := scrapeMetrics(ctx, fl.zkdns.admin)
	if err != nil {
		return sec, nil, err
	}
	if err := verifyChurnState(fl.owner, model); err != nil {
		return sec, nil, err
	}
	b.log.Info("churn done", "changes", applied, "converged_after", fmtDuration(converged), "qps", int(outcome.res.qps), "lost", outcome.res.lost)

	res := outcome.res
	sec.target("queries lost while churning", fmtCount(res.lost), fmt.Sprintf("of %s sent", fmtCount(res.sent)), "", "0", res.lost == 0)
	sec.target("last change → every answer equals ZooKeeper", fmtDuration(converged),
		fmt.Sprintf("%d services polled at once, repeatedly", p.churnServices), "", "≤ 50ms", converged <= 50*time.Millisecond)
	drop := "n/a (target 1 not run)"
	if noChurn > 0 {
		drop = fmt.Sprintf("%s (drop %.1f%%)", fmtRatio(res.qps, noChurn), 100*(1-res.qps/noChurn))
	}
	sec.info("queries/s while churning", fmtRate(res.qps), fmtRate(noChurn)+" without churn (target 1, best run)", drop)
	rate := float64(applied) / churnTook.Seconds()
	sec.info("changes made", fmt.Sprintf("%s in %s (%s/s)", fmtCount(applied), fmtDuration(churnTook.Round(time.Millisecond)), fmtRate(rate)),
		fmt.Sprintf("%s/s asked", fmtCount(p.churnRate)), fmtRatio(rate, float64(p.churnRate)))
	requests := deltaByLabel(after, before, requestsMetric, "op")
	var total float64
	for _, v := range requests {
		total += v
	}
	sec.info("zkdns's ZooKeeper requests per change", fmtPer(total/float64(max(applied, 1))), opsSummary(requests, float64(max(applied, 1))), "")
	zkCPU := zkCPU1 - zkCPU0
	sec.info("ZooKeeper server CPU per change (writes and zkdns's reads)", fmtDuration(zkCPU/time.Duration(max(applied, 1))),
		fmt.Sprintf("%s over the run", fmtDuration(zkCPU)), "")
	ourCPU := ourCPU1 - ourCPU0
	ourShare, zkShare := ourCPU.Seconds()/churnTook.Seconds(), zkCPU.Seconds()/churnTook.Seconds()
	sec.info("zkdns's CPU while churning (queries and changes)", fmtDuration(ourCPU),
		fmt.Sprintf("%.0f%% of its core; ZooKeeper used %.0f%% of a core", 100*ourShare, 100*zkShare), "")
	if ourShare < 0.9 {
		sec.notes = append(sec.notes, fmt.Sprintf("zkdns used %.0f%% of its core while churning, answering and "+
			"applying changes together, so its own work was not what held the query rate down: ZooKeeper (%.0f%% of a "+
			"core) and the change generator are not pinned, and on this two-core machine they take their CPU from "+
			"dnsperf and zkdns.", 100*ourShare, 100*zkShare))
	}
	if rate < 0.95*float64(p.churnRate) {
		sec.notes = append(sec.notes, "The changes fell behind the rate asked: the generator and ZooKeeper share "+
			"the machine's two cores with zkdns and dnsperf.")
	}
	sec.commands = append(sec.commands, perf.commandLine())
	return sec, &churnMeasurements{changes: applied, zkCPU: zkCPU, requests: requests}, nil
}

// churnFor makes changes at rate for d. It returns when the last change
// was acknowledged and how many were made.
func (b *bench) churnFor(ctx context.Context, conn *zk.Conn, model *churnModel, rate int, d time.Duration) (time.Time, int, error) {
	queues := make([]chan churnOp, churnWorkers)
	lastDone := make([]time.Time, churnWorkers)
	var wg sync.WaitGroup
	var mu sync.Mutex // guards firstErr and applied
	var firstErr error
	applied := 0
	for w := range queues {
		queues[w] = make(chan churnOp, rate)
		wg.Go(func() {
			for op := range queues[w] {
				err := model.apply(conn, op)
				lastDone[w] = time.Now()
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					applied++
				}
				mu.Unlock()
			}
		})
	}
	interval := time.Second / time.Duration(rate)
	total := int(d / interval)
	start := time.Now()
	for seq := 0; seq < total && ctx.Err() == nil; seq++ {
		if wait := time.Until(start.Add(time.Duration(seq) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		op := model.next(seq)
		queues[op.service%churnWorkers] <- op
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	var last time.Time
	for _, t := range lastDone {
		if t.After(last) {
			last = t
		}
	}
	if err := ctx.Err(); err != nil {
		return last, applied, err
	}
	return last, applied, firstErr
}

// convergence polls every churned service's SRV answer, all at once and
// over again, until each equals the model's state, and returns how long
// after last that was. A reply that does not arrive keeps the service's
// previous verdict, so one lost packet does not cost a whole timeout.
func convergence(ctx context.Context, addr string, model *churnModel, last time.Time) (time.Duration, error) {
	c, err := dialDNS(addr)
	if err != nil {
		return 0, err
	}
	defer c.close()
	matches := make([]bool, model.services)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		qs := make([]*dns.Msg, model.services)
		for s := range qs {
			qs[s] = question("svc"+strconv.Itoa(s)+"."+zone, dns.TypeSRV)
		}
		replies, err := c.exchangeAll(qs, 50*time.Millisecond)
		if err != nil {
			return 0, err
		}
		now := time.Now()
		all := true
		for s, r := range replies {
			if r != nil {
				matches[s] = slices.Equal(srvTargets(r), model.expected(s))
			}
			all = all && matches[s]
		}
		if all {
			return now.Sub(last), nil
		}
	}
	var off []int
	for s, ok := range matches {
		if !ok {
			off = append(off, s)
		}
	}
	return 0, fmt.Errorf("zkbench: after churn, services %v never answered ZooKeeper's state", off)
}

// verifyChurnState checks the model against ZooKeeper itself, so a
// convergence figure never rests on a model that drifted from the truth.
func verifyChurnState(conn *zk.Conn, m *churnModel) error {
	for s := range m.services {
		children, _, err := conn.Children(m.data.servicePath(s))
		if err != nil {
			return fmt.Errorf("zkbench: verify churn: %w", err)
		}
		want := 0
		for _, port := range m.ports[s] {
			if port != 0 {
				want++
			}
		}
		if len(children) != want {
			return fmt.Errorf("zkbench: verify churn: svc%d has %d instances in ZooKeeper, the model %d", s, len(children), want)
		}
	}
	return nil
}

// opsSummary prints per-op counts divided by n: "children_watch 0.50, get_watch 0.75".
func opsSummary(ops map[string]float64, n float64) string {
	names := make([]string, 0, len(ops))
	for op := range ops {
		names = append(names, op)
	}
	slices.Sort(names)
	var out string
	for i, op := range names {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s %s", op, fmtPer(ops[op]/n))
	}
	if out == "" {
		return "none"
	}
	return out
}
