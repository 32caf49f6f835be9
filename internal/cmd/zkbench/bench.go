package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// plan holds the sizes of one bench run.
type plan struct {
	fleet        dataset // the throughput data set, shared by targets 1, 2 and 4
	queryLines   int
	rounds       int // dnsperf runs per server, interleaved
	perfSeconds  int // length of one dnsperf run
	openLoopTime time.Duration
	// openRounds is the open-loop runs per server, interleaved. They are
	// short and their p99 is the hypervisor's as much as the server's, so
	// there are more of them than of dnsperf runs.
	openRounds int

	propagationTrials int // of each of create and delete
	killTrials        int
	killSession       time.Duration

	cold        dataset
	coldChanges int

	churnServices int
	churnRate     int // changes per second
	churnTime     time.Duration

	cost            dataset
	costTrials      int // per kind of change
	reconnectTrials int
	reconnectCut    time.Duration
	fanoutWatchers  int
	fanoutChanges   int
}

// fullPlan is what `make bench` runs: the sizes issue 6 names.
func fullPlan() plan {
	return plan{
		fleet:        dataset{root: "/bench", services: 1000, instances: 5},
		queryLines:   50000,
		rounds:       2,
		perfSeconds:  10,
		openLoopTime: 5 * time.Second,
		openRounds:   4,

		propagationTrials: 500,
		killTrials:        5,
		killSession:       time.Second,

		cold:        dataset{root: "/cold", services: 10000, instances: 10},
		coldChanges: 300,

		churnServices: 100,
		churnRate:     1000,
		churnTime:     60 * time.Second,

		cost:            dataset{root: "/cost", services: 10, instances: 3},
		costTrials:      10,
		reconnectTrials: 3,
		reconnectCut:    2 * time.Second,
		fanoutWatchers:  50,
		fanoutChanges:   500,
	}
}

// quickPlan exercises every step in a minute or two; its numbers mean
// little.
func quickPlan() plan {
	p := fullPlan()
	p.fleet.services = 100
	p.queryLines = 2000
	p.rounds = 1
	p.perfSeconds = 2
	p.openLoopTime = time.Second
	p.openRounds = 1
	p.propagationTrials = 30
	p.killTrials = 1
	p.cold.services = 500
	p.coldChanges = 10
	p.churnServices = 20
	p.churnTime = 3 * time.Second
	p.costTrials = 2
	p.reconnectTrials = 1
	p.fanoutWatchers = 5
	p.fanoutChanges = 50
	return p
}

// bench is one run of the harness: the ZooKeeper every target shares, the
// working directory, and what the targets hand each other.
type bench struct {
	opts options
	plan plan
	log  *slog.Logger
	self string // this binary, run again as the open-loop generator

	work     string
	ownsWork bool
	zk       *zkServer
	header   header
	// configs are the config files the report lists, gathered as the
	// targets start their servers.
	configs []configText
}

// configText is a config file as the report shows it.
type configText struct {
	title, text string
}

// keepConfig records a file for the report's list of configurations,
// cut to its first maxLines lines.
func (b *bench) keepConfig(title, path string, maxLines int) {
	data, err := os.ReadFile(path)
	if err != nil {
		b.log.Warn("config for the report", "file", path, "err", err)
		return
	}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > maxLines {
		lines = append(lines[:maxLines], fmt.Sprintf("… (%d more lines)\n", len(lines)-maxLines))
	}
	b.configs = append(b.configs, configText{title: title, text: strings.Join(lines, "")})
}

func newBench(ctx context.Context, opts options, p plan, logger *slog.Logger) (*bench, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("zkbench: find own binary: %w", err)
	}
	b := &bench{opts: opts, plan: p, log: logger, self: self}
	if opts.work != "" {
		b.work, err = filepath.Abs(opts.work)
		if err == nil {
			err = os.MkdirAll(b.work, 0o755)
		}
	} else {
		b.work, err = os.MkdirTemp("", "zkbench-")
		b.ownsWork = true
	}
	if err != nil {
		return nil, fmt.Errorf("zkbench: working directory: %w", err)
	}
	if opts.zkdns, err = filepath.Abs(opts.zkdns); err != nil {
		return nil, fmt.Errorf("zkbench: %w", err)
	}
	logger.Info("starting ZooKeeper", "dir", filepath.Join(b.work, "zk"))
	if b.zk, err = startZooKeeper(ctx, filepath.Join(b.work, "zk")); err != nil {
		b.close()
		return nil, err
	}
	b.header = collectHeader(ctx, opts, b.zk.Addr())
	return b, nil
}

// close stops ZooKeeper and removes the working directory if the bench
// made it.
func (b *bench) close() {
	if b.zk != nil {
		if err := b.zk.Stop(); err != nil {
			b.log.Warn("stopping ZooKeeper", "err", err)
		}
	}
	if b.ownsWork && !b.opts.keep {
		_ = os.RemoveAll(b.work)
	} else {
		b.log.Info("working directory kept", "dir", b.work)
	}
}

// dir returns a fresh subdirectory of the working directory.
func (b *bench) dir(name string) (string, error) {
	d := filepath.Join(b.work, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("zkbench: %w", err)
	}
	return d, nil
}

// report is everything one run found.
type report struct {
	header   header
	sections []*section
	scaling  *scaling
	configs  []configText
	took     time.Duration
}

// run runs the selected targets. The throughput data set is loaded once
// and served by one pinned zkdns for the whole run. Churn follows the
// throughput target so it compares with the throughput just measured; the
// cold sync of 100,000 instances comes last, since it leaves ZooKeeper
// with the biggest tree, and it measures the small data set's throughput
// again beside the big one's.
func (b *bench) run(ctx context.Context) (*report, error) {
	rep := &report{header: b.header}
	sections := map[int]*section{}
	var peak float64 // zkdns's best throughput on the fleet data set
	var costs *costMeasurements
	var churned *churnMeasurements
	var cold *coldMeasurements

	var fl *fleet
	if b.opts.runs(1) || b.opts.runs(2) || b.opts.runs(3) || b.opts.runs(4) {
		var err error
		if fl, err = b.startFleet(ctx); err != nil {
			return nil, err
		}
		defer fl.close()
	}
	steps := []struct {
		n   int
		run func() (*section, error)
	}{
		{1, func() (*section, error) {
			s, p, err := b.throughput(ctx, fl)
			peak = p
			return s, err
		}},
		{4, func() (*section, error) {
			s, m, err := b.churn(ctx, fl, peak)
			churned = m
			return s, err
		}},
		{2, func() (*section, error) { return b.propagation(ctx, fl) }},
		{5, func() (*section, error) {
			s, m, err := b.zkCost(ctx)
			costs = m
			return s, err
		}},
		{3, func() (*section, error) {
			s, m, err := b.coldSync(ctx, fl, peak)
			cold = m
			return s, err
		}},
	}
	for _, step := range steps {
		if err := b.target(ctx, sections, step.n, step.run); err != nil {
			return nil, err
		}
	}
	for n := 1; n <= 5; n++ {
		if s := sections[n]; s != nil {
			rep.sections = append(rep.sections, s)
		}
	}
	rep.configs = b.configs
	if costs != nil {
		rep.scaling = newScaling(costs, churned, cold)
	}
	return rep, nil
}

// target runs target n if it was selected. A target that fails is
// reported as a failed section and the run goes on to the next; only
// cancellation stops the run.
func (b *bench) target(ctx context.Context, sections map[int]*section, n int, fn func() (*section, error)) error {
	if !b.opts.runs(n) {
		return nil
	}
	start := time.Now()
	b.log.Info("target starts", "target", n)
	s, err := fn()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		b.log.Error("target failed", "target", n, "err", err)
		if s == nil {
			s = newSection(targetTitle(n), "")
		}
		s.notes = append(s.notes, fmt.Sprintf("The target could not be measured: %v", err))
		s.checks = append(s.checks, check{name: s.title + ": ran to completion", pass: false})
	}
	b.log.Info("target done", "target", n, "took", time.Since(start).Round(time.Second))
	sections[n] = s
	return nil
}

// targetTitle is target n's heading.
func targetTitle(n int) string {
	switch n {
	case 1:
		return "1. DNS throughput"
	case 2:
		return "2. Propagation"
	case 3:
		return "3. Cold sync and scale"
	case 4:
		return "4. Churn"
	case 5:
		return "5. ZooKeeper cost"
	}
	return fmt.Sprintf("%d. (unknown target)", n)
}
