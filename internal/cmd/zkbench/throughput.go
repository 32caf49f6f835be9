package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// serverRuns is what the throughput target measured for one server.
type serverRuns struct {
	server *dnsServer
	runs   []dnsperfResult
	cpu    []time.Duration // server CPU during each run
	steal  []time.Duration // the hypervisor's hold on the server's core during each run; -1 unknown
	opens  []openRun
}

// openRun is one open-loop run against a server.
type openRun struct {
	res   openLoopResult
	cpu   time.Duration // the server's CPU during the run
	steal time.Duration // as serverRuns.steal
	wall  time.Duration // how long the run lasted, over the span steal was taken
}

// quietShare is the largest share of a run that the hypervisor may hold
// the server's core for and the run still count as quiet; extraRuns is
// how many more runs a server gets when none of its runs was quiet.
// A run whose core stood still for a tenth of it measures the hypervisor
// more than the server, and two rounds can both land on such spells for
// one server while another gets quiet ones: the comparison would then
// say more about the machine than about the servers.
const (
	quietShare = 0.10
	extraRuns  = 2
)

// quiet reports whether the hypervisor held the core for at most
// quietShare of wall; a steal that could not be told (-1) counts as
// quiet, as nothing better can be had.
func quiet(steal, wall time.Duration) bool {
	return steal < 0 || wall <= 0 || steal.Seconds() <= quietShare*wall.Seconds()
}

// quietPerf reports whether one of the server's dnsperf runs was quiet.
func (s *serverRuns) quietPerf() bool {
	for i, r := range s.runs {
		if quiet(s.steal[i], r.runTime) {
			return true
		}
	}
	return false
}

// quietOpen reports whether one of the server's open-loop runs was quiet.
func (s *serverRuns) quietOpen() bool {
	for _, o := range s.opens {
		if quiet(o.steal, o.wall) {
			return true
		}
	}
	return false
}

// runRounds runs every server once per round, interleaved, for rounds
// rounds; then it gives each server that has no quiet run yet one more
// run per round, until it has one or has had extraRuns more. Every run
// counts as the others do. It returns how many extra runs each server
// got, by name.
func runRounds(all []*serverRuns, rounds int, hasQuiet func(*serverRuns) bool, run func(*serverRuns) error) (map[string]int, error) {
	for range rounds {
		for _, s := range all {
			if err := run(s); err != nil {
				return nil, err
			}
		}
	}
	extra := map[string]int{}
	for range extraRuns {
		for _, s := range all {
			if hasQuiet(s) {
				continue
			}
			if err := run(s); err != nil {
				return extra, err
			}
			extra[s.server.name]++
		}
	}
	return extra, nil
}

// extraRunsNote says which servers got runs beyond the rounds, and why.
func extraRunsNote(all []*serverRuns, perf, open map[string]int) string {
	var got []string
	for _, s := range all {
		name := s.server.name
		var parts []string
		if n := perf[name]; n > 0 {
			parts = append(parts, plural(n, "dnsperf run"))
		}
		if n := open[name]; n > 0 {
			parts = append(parts, plural(n, "open-loop run"))
		}
		if len(parts) > 0 {
			got = append(got, name+" "+strings.Join(parts, " and "))
		}
	}
	rule := fmt.Sprintf("A server none of whose runs of a kind was quiet (the hypervisor holding its core for at most %.0f%% of the run) "+
		"got another of that kind, up to %d more, interleaved with the other servers' extra runs; every run counts as the others do. ",
		100*quietShare, extraRuns)
	if len(got) == 0 {
		return rule + "In this run every server had a quiet run of each kind, so none got more."
	}
	return rule + "In this run: " + strings.Join(got, "; ") + " more."
}

// bestOpen is the open-loop run with the lowest p99: like throughput,
// latency only ever suffers from what else the machine does. nil when
// no run had an answer.
func (s *serverRuns) bestOpen() *openRun {
	var best *openRun
	for i := range s.opens {
		o := &s.opens[i]
		if o.res.Answered > 0 && (best == nil || o.res.P99 < best.res.P99) {
			best = o
		}
	}
	return best
}

// best is the highest throughput of the server's runs: noise on a shared
// machine only ever takes throughput away.
func (s *serverRuns) best() float64 {
	var best float64
	for _, r := range s.runs {
		best = max(best, r.qps)
	}
	return best
}

// cpuPerQuery is the server's CPU time over all its runs divided by the
// queries it answered in them.
func (s *serverRuns) cpuPerQuery() time.Duration {
	var cpu time.Duration
	var answered int64
	for i, r := range s.runs {
		cpu += s.cpu[i]
		answered += r.completed
	}
	if answered == 0 {
		return 0
	}
	return cpu / time.Duration(answered)
}

func (s *serverRuns) lost() int64 {
	var n int64
	for _, r := range s.runs {
		n += r.lost
	}
	for _, o := range s.opens {
		n += o.res.Lost
	}
	return n
}

// throughput is target 1: zkdns and each peer answer the query mix from
// dnsperf in interleaved rounds, pinned to their cores; then each takes
// an open-loop load at half zkdns's peak for its latency percentiles. It
// returns zkdns's best throughput, which later targets compare with.
func (b *bench) throughput(ctx context.Context, fl *fleet) (*section, float64, error) {
	sec := newSection(targetTitle(1), fmt.Sprintf(
		"%s services × %d instances; query mix %s. Each server pinned to CPU %d, dnsperf to CPU %d; "+
			"%s of %d s per server; q/s is each server's best run, CPU is its own "+
			"(all threads and child processes) over all its runs divided by the queries it answered. "+
			"Then %s of %d s per server at half zkdns's peak rate, open loop, for latency. "+
			"A server whose runs of either kind all lost more than a tenth of their time to the hypervisor gets more (see below).",
		fmtCount(fl.data.services), fl.data.instances, queryMixDescription, b.opts.serverCore, b.opts.clientCore,
		plural(b.plan.rounds, "interleaved round"), b.plan.perfSeconds,
		plural(b.plan.openRounds, "interleaved round"), int(b.plan.openLoopTime.Seconds())))

	all := []*serverRuns{{server: fl.zkdns}}
	peers := map[string]*serverRuns{}
	for _, kind := range peerKinds() {
		bin := b.peerBinary(kind.name)
		if bin == "" {
			sec.notes = append(sec.notes, fmt.Sprintf("%s was not run: its binary is not installed (see `scripts/deps bench` and `scripts/bench`).", kind.name))
			continue
		}
		dir, err := b.dir(strings.ToLower(kind.name))
		if err != nil {
			return sec, 0, err
		}
		s, err := startPeer(ctx, kind, bin, dir, fl.zoneFile, b.opts.serverCore, "svc0."+zone, fl.data.instances)
		if err != nil {
			b.log.Warn("peer did not start", "peer", kind.name, "err", err)
			sec.notes = append(sec.notes, fmt.Sprintf("%s did not start: %v", kind.name, firstLine(err.Error())))
			continue
		}
		defer s.stop()
		b.log.Info("peer serves the zone", "peer", kind.name, "addr", s.addr)
		r := &serverRuns{server: s}
		all = append(all, r)
		peers[kind.name] = r
	}
	sec.notes = append(sec.notes, parityNotes(all)...)
	b.keepConfig("zkdns (`zkdns.toml`)", fl.zkdns.config, 100)
	for _, s := range all[1:] {
		b.keepConfig(s.server.name+" (`"+filepath.Base(s.server.config)+"`)", s.server.config, 100)
	}
	b.keepConfig("The peers' zone file (`local.zone`), first lines", fl.zoneFile, 30)

	perf := dnsperfRun{binary: b.opts.dnsperf, core: b.opts.clientCore, queries: fl.queries, seconds: b.plan.perfSeconds}
	perfRun := func(s *serverRuns) error {
		perf.server = s.server.addr
		var (
			res dnsperfResult
			cpu time.Duration
		)
		steal, err := stolenDuring(b.opts.serverCore, func() (err error) {
			res, cpu, err = measureDNSPerf(ctx, perf, s.server)
			return err
		})
		if err != nil {
			return err
		}
		s.runs = append(s.runs, res)
		s.cpu = append(s.cpu, cpu)
		s.steal = append(s.steal, steal)
		b.log.Info("dnsperf", "server", s.server.name, "run", len(s.runs), "qps", int(res.qps), "lost", res.lost,
			"cpu_per_query", fmtDuration(cpu/time.Duration(max(res.completed, 1))), "stolen", fmtDuration(steal))
		return nil
	}
	extraPerf, err := runRounds(all, b.plan.rounds, (*serverRuns).quietPerf, perfRun)
	if err != nil {
		return sec, 0, err
	}
	ours := all[0]
	peak := ours.best()

	perf.server = fl.zkdns.addr
	sec.codeTitle = "Profile tops of zkdns during one extra dnsperf run (not counted above)"
	tops, cmdlines, err := b.profile(ctx, fl.zkdns, perf)
	if err != nil {
		return sec, 0, err
	}
	sec.code = tops
	sec.commands = append(sec.commands, cmdlines...)

	rate := peak / 2
	var openCmd string
	openRun := func(s *serverRuns) error {
		before, err := processTreeCPU(s.server.proc.pid())
		if err != nil {
			return err
		}
		var res openLoopResult
		start := time.Now()
		steal, err := stolenDuring(b.opts.serverCore, func() (err error) {
			res, openCmd, err = b.openLoop(ctx, s.server.addr, fl.queries, rate)
			return err
		})
		wall := time.Since(start)
		if err != nil {
			return err
		}
		after, err := processTreeCPU(s.server.proc.pid())
		if err != nil {
			return err
		}
		s.opens = append(s.opens, openRun{res: res, cpu: after - before, steal: steal, wall: wall})
		b.log.Info("open loop", "server", s.server.name, "run", len(s.opens), "rate", int(rate),
			"p50", fmtDuration(res.P50), "p99", fmtDuration(res.P99), "lost", res.Lost, "stolen", fmtDuration(steal))
		return nil
	}
	extraOpen, err := runRounds(all, b.plan.openRounds, (*serverRuns).quietOpen, openRun)
	if err != nil {
		return sec, peak, err
	}

	b.throughputRows(sec, ours, peers, rate)
	sec.details = append(sec.details, titledTable{title: "Every run:", table: runsTable(all)})
	sec.notes = append(sec.notes, extraRunsNote(all, extraPerf, extraOpen))
	sec.notes = append(sec.notes, "\"core share\" is the server's CPU time over the run's wall time. A server that "+
		"dnsperf saturates uses about 100% of its core; less means it sat waiting, either because other processes "+
		"on this shared machine held its core or because dnsperf, on the other core, could not send faster. "+
		"Either way that run understates the server, which is why the best run counts.",
		fmt.Sprintf("\"stolen\" is the time the hypervisor of this virtual machine held CPU %d, the server's, during the run "+
			"(steal time from /proc/stat, in 10 ms ticks): the server stood still for all of it, and a few milliseconds of it "+
			"are enough to fill an open-loop run's p99. That is why the open-loop runs also come in interleaved rounds, "+
			"and each server's lowest p99 counts.", b.opts.serverCore),
		"Open-loop latency runs from the moment the generator wrote a query to the moment the kernel stamped its reply's "+
			"arrival on the generator's socket (SO_TIMESTAMPNS), so it leaves out the time a reply waits there while the "+
			"generator, one Go process on one core, is busy sending; the \"read\" figures in the table above add that wait.")

	for _, s := range all {
		sec.commands = append(sec.commands, s.server.proc.commandLine())
	}
	perf.server = "127.0.0.1:PORT" // each server's own port
	sec.commands = append(sec.commands, perf.commandLine(), openCmd)
	return sec, peak, nil
}

func (b *bench) throughputRows(sec *section, ours *serverRuns, peers map[string]*serverRuns, rate float64) {
	ratioRow := func(peer string, goal float64) {
		measure := fmt.Sprintf("queries/s, best of %s, vs %s", plural(len(ours.runs), "run"), peer)
		p := peers[peer]
		if p == nil {
			sec.skipped(measure, fmt.Sprintf("≥ %g× %s", goal, peer), peer+" was not run")
			return
		}
		sec.target(measure, fmtRate(ours.best()), fmtRate(p.best())+" ("+peer+")", fmtRatio(ours.best(), p.best()),
			fmt.Sprintf("≥ %g×", goal), ours.best() >= goal*p.best())
	}
	ratioRow("CoreDNS", 3)
	ratioRow("Knot", 0.6)
	if p := peers["NSD"]; p != nil {
		sec.info(fmt.Sprintf("queries/s, best of %s, vs NSD", plural(len(ours.runs), "run")), fmtRate(ours.best()), fmtRate(p.best())+" (NSD)", fmtRatio(ours.best(), p.best()))
	}

	ref := func(value func(*serverRuns) string) string {
		var parts []string
		for _, name := range []string{"Knot", "NSD", "CoreDNS"} {
			if p := peers[name]; p != nil {
				parts = append(parts, name+" "+value(p))
			}
		}
		return strings.Join(parts, ", ")
	}
	cpu := ours.cpuPerQuery()
	knotRatio := ""
	if p := peers["Knot"]; p != nil {
		knotRatio = fmtRatio(float64(cpu), float64(p.cpuPerQuery())) + " of Knot"
	}
	sec.target("server CPU per answered query", fmtDuration(cpu), ref(func(p *serverRuns) string { return fmtDuration(p.cpuPerQuery()) }),
		knotRatio, "≤ 8µs", cpu > 0 && cpu <= 8*time.Microsecond)

	bestP99 := func(s *serverRuns) string {
		if o := s.bestOpen(); o != nil {
			return fmtDuration(o.res.P99)
		}
		return "no answers"
	}
	title := fmt.Sprintf("p99 latency at %s q/s (half zkdns's peak), open loop, to the reply's arrival, best of %s",
		fmtRate(rate), plural(len(ours.opens), "run"))
	if o := ours.bestOpen(); o == nil {
		sec.target(title, "no answers", ref(bestP99), "", "< 1ms", false)
	} else {
		knotP99 := ""
		if p := peers["Knot"]; p != nil && p.bestOpen() != nil {
			knotP99 = fmtRatio(float64(o.res.P99), float64(p.bestOpen().res.P99)) + " of Knot"
		}
		sec.target(title, fmt.Sprintf("%s (p50 %s, p99.9 %s)", fmtDuration(o.res.P99), fmtDuration(o.res.P50), fmtDuration(o.res.P999)),
			ref(bestP99), knotP99, "< 1ms", o.res.P99 < time.Millisecond)
	}

	sec.target("queries lost (dnsperf runs and open loop)", fmtCount(ours.lost()),
		ref(func(p *serverRuns) string { return fmtCount(p.lost()) }), "", "0", ours.lost() == 0)
}

func runsTable(all []*serverRuns) table {
	t := table{columns: []string{"server", "run", "q/s", "answered", "lost", "server CPU/query", "core share", "stolen", "latency", "avg response", "rcodes"}}
	share := func(cpu, wall time.Duration) string {
		if wall <= 0 {
			return ""
		}
		return fmt.Sprintf("%.0f%%", 100*cpu.Seconds()/wall.Seconds())
	}
	stolen := func(steal, wall time.Duration) string {
		if steal < 0 || wall <= 0 {
			return "unknown"
		}
		return fmt.Sprintf("%s (%.1f%%)", fmtDuration(steal), 100*steal.Seconds()/wall.Seconds())
	}
	for _, s := range all {
		for i, r := range s.runs {
			t.add(s.server.name, strconv.Itoa(i+1), fmtRate(r.qps), fmtCount(r.completed), fmtCount(r.lost),
				fmtDuration(s.cpu[i]/time.Duration(max(r.completed, 1))), share(s.cpu[i], r.runTime), stolen(s.steal[i], r.runTime),
				"avg "+fmtDuration(r.avgLatency), fmt.Sprintf("%d B", r.responseSize), rcodeSummary(r.rcodes))
		}
	}
	for _, s := range all {
		for i, o := range s.opens {
			t.add(s.server.name, fmt.Sprintf("open loop %d", i+1), fmtRate(o.res.Achieved), fmtCount(o.res.Answered),
				fmt.Sprintf("%s (dropped by server socket %s, by generator's %s)", fmtCount(o.res.Lost), fmtCount(o.res.ServerDrops), fmtCount(o.res.ClientDrops)),
				fmtDuration(o.cpu/time.Duration(max(o.res.Answered, 1))), share(o.cpu, o.wall), stolen(o.steal, o.wall),
				openLatency(&o.res), "", "")
		}
	}
	return t
}

// stolenDuring runs f and returns how long the hypervisor held CPU core
// meanwhile, or -1 when /proc/stat could not tell, with f's error.
func stolenDuring(core int, f func() error) (time.Duration, error) {
	before, errBefore := cpuSteal(core)
	err := f()
	after, errAfter := cpuSteal(core)
	if errBefore != nil || errAfter != nil {
		return -1, err
	}
	return after - before, err
}

// openLatency prints an open-loop run's latencies to the replies' arrival
// and, beside them, to the generator reading them.
func openLatency(o *openLoopResult) string {
	out := fmt.Sprintf("p50 %s, p99 %s, p99.9 %s", fmtDuration(o.P50), fmtDuration(o.P99), fmtDuration(o.P999))
	if !o.KernelStamps {
		return out + " (read times: no kernel stamps)"
	}
	return out + fmt.Sprintf("; read: p50 %s, p99 %s", fmtDuration(o.ReadP50), fmtDuration(o.ReadP99))
}

// rcodeSummary prints response codes as shares of the answers, which
// shows at a glance that every server gave the mix its NXDOMAINs.
func rcodeSummary(rcodes map[string]int64) string {
	var total int64
	names := make([]string, 0, len(rcodes))
	for name, n := range rcodes {
		total += n
		names = append(names, name)
	}
	slices.Sort(names)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", name, 100*float64(rcodes[name])/float64(max(total, 1))))
	}
	return strings.Join(parts, ", ")
}

// measureDNSPerf runs dnsperf against s and measures the CPU time s used
// meanwhile.
func measureDNSPerf(ctx context.Context, run dnsperfRun, s *dnsServer) (dnsperfResult, time.Duration, error) {
	before, err := processTreeCPU(s.proc.pid())
	if err != nil {
		return dnsperfResult{}, 0, err
	}
	res, err := run.run(ctx)
	if err != nil {
		return dnsperfResult{}, 0, err
	}
	after, err := processTreeCPU(s.proc.pid())
	if err != nil {
		return dnsperfResult{}, 0, err
	}
	return res, after - before, nil
}

// openLoop runs the open-loop generator, pinned to the client core, at
// rate against server.
func (b *bench) openLoop(ctx context.Context, server, queries string, rate float64) (openLoopResult, string, error) {
	argv := []string{"taskset", "-c", strconv.Itoa(b.opts.clientCore), b.self, "openloop",
		"-server", server, "-queries", queries,
		"-rate", strconv.FormatFloat(rate, 'f', 0, 64), "-duration", b.plan.openLoopTime.String()}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	cmdline := strings.Replace(strings.Join(argv, " "), server, "127.0.0.1:PORT", 1)
	if err != nil {
		return openLoopResult{}, cmdline, fmt.Errorf("zkbench: %s: %w: %s", cmdline, err, stderr.String())
	}
	var res openLoopResult
	if err := json.Unmarshal(out, &res); err != nil {
		return openLoopResult{}, cmdline, fmt.Errorf("zkbench: open loop output %q: %w", out, err)
	}
	return res, cmdline, nil
}

// profileLines is how many lines of each profile's top the report shows.
const profileLines = 30

// profile takes zkdns's CPU profiles during one extra dnsperf run, which
// does not count: Linux perf's, which sees the kernel's share (most of a
// UDP query's cost), and the Go runtime's own from /debug/pprof, which
// sees zkdns's functions as Go does and charges kernel time to the
// system calls that spent it. It returns their tops, one after the
// other, and the commands that made them. A profiler that is missing or
// fails leaves a line saying so in its place; only the dnsperf run
// failing is an error.
func (b *bench) profile(ctx context.Context, z *dnsServer, run dnsperfRun) (string, []string, error) {
	dir, err := b.dir("profile")
	if err != nil {
		return "", nil, err
	}
	profilers := []struct {
		name   string
		finish func(ranOK bool) (top, cmdline string, err error)
	}{
		{"Linux perf", b.startPerf(ctx, z, run, filepath.Join(dir, "perf.data"))},
		{"Go pprof", b.startPprof(ctx, z, run, filepath.Join(dir, "cpu.pprof"))},
	}
	_, runErr := run.run(ctx)
	var tops, cmdlines []string
	for _, p := range profilers {
		top, cmdline, err := p.finish(runErr == nil)
		switch {
		case runErr != nil:
		case err != nil:
			b.log.Warn("profile failed", "profiler", p.name, "err", err)
			tops = append(tops, fmt.Sprintf("%s: no profile (%v).", p.name, err))
		default:
			tops = append(tops, top)
			cmdlines = append(cmdlines, cmdline)
		}
	}
	if runErr != nil {
		return "", nil, runErr
	}
	return strings.Join(tops, "\n\n"), cmdlines, nil
}

// startPerf starts perf recording zkdns for the length of run, into data.
// The function it returns waits for the recording and makes its top, or
// when the run failed only stops it.
func (b *bench) startPerf(ctx context.Context, z *dnsServer, run dnsperfRun, data string) func(bool) (string, string, error) {
	if b.opts.perf == "" {
		return func(bool) (string, string, error) {
			return "", "", errors.New("not installed; scripts/deps bench installs linux-perf")
		}
	}
	argv := []string{b.opts.perf, "record", "-F", "999", "-o", data, "-p", strconv.Itoa(z.proc.pid()),
		"--", "sleep", strconv.Itoa(run.seconds + 1)}
	rec := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out strings.Builder
	rec.Stdout, rec.Stderr = &out, &out
	started := rec.Start()
	return func(ranOK bool) (string, string, error) {
		if started != nil {
			return "", "", fmt.Errorf("perf record: %w", started)
		}
		if !ranOK {
			_ = rec.Process.Kill()
			_ = rec.Wait()
			return "", "", nil
		}
		if err := rec.Wait(); err != nil {
			return "", "", fmt.Errorf("perf record: %w: %s", err, tail(out.String(), 5))
		}
		top, err := perfTop(ctx, b.opts.perf, data)
		if err != nil {
			return "", "", err
		}
		return "Linux perf, zkdns and the kernel on its behalf:\n\n" + top,
			strings.Join(argv, " ") + " (during a dnsperf run; then perf report --stdio -F overhead,sym)", nil
	}
}

// startPprof starts fetching zkdns's CPU profile from its /debug/pprof for
// the length of run, into data. The function it returns waits for the
// profile and makes its top with go tool pprof, or when the run failed
// only waits.
func (b *bench) startPprof(ctx context.Context, z *dnsServer, run dnsperfRun, data string) func(bool) (string, string, error) {
	if b.opts.gotool == "" {
		return func(bool) (string, string, error) { return "", "", errors.New("no go binary to read it with") }
	}
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", z.admin, run.seconds)
	fetched := make(chan error, 1)
	go func() { fetched <- fetchFile(ctx, url, data) }()
	return func(ranOK bool) (string, string, error) {
		if err := <-fetched; err != nil || !ranOK {
			return "", "", err
		}
		top, err := pprofTop(ctx, b.opts.gotool, b.opts.zkdns, data, "-top", "-cum", fmt.Sprintf("-nodecount=%d", profileLines))
		if err != nil {
			return "", "", err
		}
		return "Go pprof, from zkdns's /debug/pprof, by cumulative time (kernel time shows under the system calls):\n\n" + top,
			fmt.Sprintf("curl -o cpu.pprof '%s' (during the same run; then go tool pprof -top -cum -nodecount=%d %s cpu.pprof)",
				strings.Replace(url, z.admin, "ADMIN", 1), profileLines, b.opts.zkdns), nil
	}
}

// perfTop is the top of perf's report on data, by symbol.
func perfTop(ctx context.Context, perf, data string) (string, error) {
	out, err := exec.CommandContext(ctx, perf, "report", "-i", data, "--stdio", "-q",
		"-F", "overhead,sym", "--percent-limit", "0.7").Output()
	if err != nil {
		return "", fmt.Errorf("perf report: %w", err)
	}
	var lines []string
	for line := range strings.SplitSeq(string(out), "\n") {
		if line = strings.TrimRight(line, " "); strings.TrimSpace(line) != "" {
			lines = append(lines, line)
		}
		if len(lines) == profileLines {
			break
		}
	}
	return strings.Join(lines, "\n"), nil
}

// pprofTop is the top of go tool pprof's report on the profile in data,
// taken from binary, with args choosing the report (-top, -cum, ...),
// from its "Showing nodes" line (what the top adds up to) on.
func pprofTop(ctx context.Context, gotool, binary, data string, args ...string) (string, error) {
	argv := append([]string{"tool", "pprof"}, args...)
	out, err := exec.CommandContext(ctx, gotool, append(argv, binary, data)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, tail(string(ee.Stderr), 3))
		}
		return "", fmt.Errorf("go tool pprof: %w", err)
	}
	text := string(out)
	i := strings.Index(text, "Showing nodes")
	if i < 0 {
		return "", fmt.Errorf("go tool pprof: no table in its output:\n%s", tail(text, 5))
	}
	return strings.TrimRight(text[i:], "\n"), nil
}

// fetchFile writes the body of a GET of url to path.
func fetchFile(ctx context.Context, url, path string) error {
	resp, err := getOK(ctx, url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return f.Close()
}

// getOK GETs url and returns the response when its status is 200 OK; any
// other status is an error that quotes the start of the body. The caller
// closes the body.
func getOK(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return resp, nil
}

// parityNotes compares each peer's answer to a few sample questions with
// zkdns's (rcode and section sizes), so a table never compares servers
// that answer different things.
func parityNotes(all []*serverRuns) []string {
	questions := []struct {
		label string
		name  string
		qtype uint16
	}{
		{"svc1 SRV", "svc1." + zone, dns.TypeSRV}, {"_svc1._tcp SRV", "_svc1._tcp." + zone, dns.TypeSRV},
		{"svc1 A", "svc1." + zone, dns.TypeA}, {"inst0.svc1 A", "inst0.svc1." + zone, dns.TypeA}, {"nx1 A", "nx1." + zone, dns.TypeA},
	}
	shape := func(s *dnsServer) ([]string, error) {
		c, err := dialDNS(s.addr)
		if err != nil {
			return nil, err
		}
		defer c.close()
		var out []string
		for _, q := range questions {
			m := new(dns.Msg)
			m.SetQuestion(q.name, q.qtype) // no EDNS, as dnsperf asks
			r, err := c.exchange(m, 2*time.Second)
			if err != nil {
				return nil, err
			}
			out = append(out, fmt.Sprintf("%s %d/%d/%d", dns.RcodeToString[r.Rcode], len(r.Answer), len(r.Ns), len(r.Extra)))
		}
		return out, nil
	}
	want, err := shape(all[0].server)
	if err != nil {
		return []string{"Answer parity was not checked: " + err.Error()}
	}
	var notes, same []string
	for _, s := range all[1:] {
		got, err := shape(s.server)
		if err != nil {
			notes = append(notes, fmt.Sprintf("Answer parity with %s was not checked: %v", s.server.name, err))
			continue
		}
		var diffs []string
		for i := range want {
			if got[i] != want[i] {
				diffs = append(diffs, fmt.Sprintf("%s %s (zkdns %s)", questions[i].label, got[i], want[i]))
			}
		}
		if len(diffs) == 0 {
			same = append(same, s.server.name)
			continue
		}
		notes = append(notes, fmt.Sprintf("%s answers with more records than zkdns, so it does a little more work per query "+
			"(answer/authority/additional counts): %s.", s.server.name, strings.Join(diffs, "; ")))
	}
	if len(same) > 0 {
		notes = append(notes, fmt.Sprintf("%s gave exactly zkdns's rcode and answer/authority/additional counts to svc1 SRV, "+
			"_svc1._tcp SRV, svc1 A, inst0.svc1 A and nx1 A (checked before the runs).", strings.Join(same, " and ")))
	}
	return notes
}

func (b *bench) peerBinary(name string) string {
	switch name {
	case "Knot":
		return b.opts.knotd
	case "NSD":
		return b.opts.nsd
	case "CoreDNS":
		return b.opts.coredns
	}
	return ""
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
