package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// header describes the machine and the software a run measured.
type header struct {
	date      time.Time
	machine   string
	loadStart string
	loadEnd   string // filled in when the run is over
	// stealStart is the hypervisor's steal time over all CPUs when the
	// run started, -1 when /proc/stat could not be read; steal says how
	// much more it took by the end (filled in then, with endSteal).
	stealStart time.Duration
	steal      string
	zkdns      string
	peers      []string // "Knot DNS 3.2.6", …
	tools      []string
	quick      bool
}

func collectHeader(ctx context.Context, opts options, zkAddr string) header {
	h := header{date: time.Now().UTC(), quick: opts.quick}
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if n, err := parseStatusMemory(b, "MemTotal"); err == nil {
			mem = fmtBytes(n)
		}
	}
	kernel := strings.TrimSpace(readString("/proc/sys/kernel/osrelease"))
	h.machine = fmt.Sprintf("%s, %d CPUs, %s RAM, Linux %s, %s", cpu, runtime.NumCPU(), mem, kernel, runtime.Version())
	h.loadStart = loadAverage()
	h.stealStart = -1
	if steal, err := cpuSteal(-1); err == nil {
		h.stealStart = steal
	}
	h.zkdns = strings.TrimPrefix(firstLine(commandOutput(ctx, opts.zkdns, "version")), "zkdns ")

	if opts.knotd != "" {
		v := firstLine(commandOutput(ctx, opts.knotd, "-V"))
		h.peers = append(h.peers, "Knot DNS "+strings.TrimPrefix(v[strings.LastIndexByte(v, ' ')+1:], "version "))
	}
	if opts.nsd != "" {
		h.peers = append(h.peers, "NSD "+strings.TrimPrefix(firstLine(commandOutput(ctx, opts.nsd, "-v")), "NSD version "))
	}
	if opts.coredns != "" {
		h.peers = append(h.peers, strings.Replace(firstLine(commandOutput(ctx, opts.coredns, "-version")), "CoreDNS-", "CoreDNS ", 1))
	}
	h.tools = append(h.tools, "ZooKeeper "+zkVersion(ctx, zkAddr))
	if v := commandOutput(ctx, "dpkg-query", "-W", "-f", "${Version}", "dnsperf"); v != "" {
		h.tools = append(h.tools, "dnsperf "+v)
	}
	if opts.perf != "" {
		h.tools = append(h.tools, firstLine(commandOutput(ctx, opts.perf, "--version")))
	}
	return h
}

// endSteal fills in how much CPU time the hypervisor took during a run
// that lasted took, when /proc/stat tells.
func (h *header) endSteal(took time.Duration) {
	now, err := cpuSteal(-1)
	if err != nil || h.stealStart < 0 || took <= 0 {
		return
	}
	stolen := now - h.stealStart
	h.steal = fmt.Sprintf("The machine is virtual: during the run its hypervisor took %s of the CPUs' time (%.1f%% of %d CPUs × %s; "+
		"steal time from /proc/stat): time in which whatever ran on a CPU stood still.",
		fmtDuration(stolen), 100*stolen.Seconds()/(float64(runtime.NumCPU())*took.Seconds()), runtime.NumCPU(), fmtDuration(took))
}

// loadAverage is the 1, 5 and 15 minute load average, which says how
// busy the shared machine was.
func loadAverage() string {
	f := strings.Fields(readString("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func readString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}

// commandOutput runs a version command and returns what it printed on
// stdout and stderr, trimmed; "" if it failed.
func commandOutput(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func (h header) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run on %s UTC by `make bench`", h.date.Format("2006-01-02 15:04"))
	if h.quick {
		b.WriteString(" **with -quick (small sizes: not a result)**")
	}
	b.WriteString(".\n\n")
	fmt.Fprintf(&b, "- Machine: %s; load average %s at the start", h.machine, h.loadStart)
	if h.loadEnd != "" {
		fmt.Fprintf(&b, ", %s at the end", h.loadEnd)
	}
	b.WriteString(" (other work shares the machine; above 2 the CPUs were contended).\n")
	if h.steal != "" {
		fmt.Fprintf(&b, "- %s\n", h.steal)
	}
	fmt.Fprintf(&b, "- zkdns: %s, as `make build` made it.\n", h.zkdns)
	if len(h.peers) > 0 {
		fmt.Fprintf(&b, "- Peers: %s.\n", strings.Join(h.peers, ", "))
	}
	fmt.Fprintf(&b, "- Tools: %s.\n", strings.Join(h.tools, ", "))
	return b.String()
}

// summary counts the targets met.
func (r *report) summary() string {
	pass, total := 0, 0
	var failed []string
	for _, s := range r.sections {
		for _, c := range s.checks {
			total++
			if c.pass {
				pass++
			} else {
				failed = append(failed, c.name)
			}
		}
	}
	out := fmt.Sprintf("%d of %d targets met.", pass, total)
	if len(failed) > 0 {
		out += " Missed:\n\n- " + strings.Join(failed, "\n- ") + "\n"
	}
	return out
}

func (r *report) markdown() string {
	var b bytes.Buffer
	b.WriteString("# zkdns benchmarks\n\n")
	b.WriteString("Written by `make bench` (`scripts/bench` → `internal/cmd/zkbench`); do not edit by hand. ")
	b.WriteString("The machine is shared and has two cores, so absolute numbers swing from run to run: ")
	b.WriteString("compare zkdns with the peers and with ZooKeeper measured in the same run, which is what the ratios do.\n\n")
	b.WriteString(r.header.markdown())
	fmt.Fprintf(&b, "- The whole run took %s.\n\n", r.took.Round(time.Second))
	b.WriteString(r.summary())
	b.WriteString("\n")
	for _, s := range r.sections {
		b.WriteString("\n")
		b.WriteString(s.markdown())
	}
	b.WriteString(`
## Reproduce

    make bench                  # make build, scripts/deps bench, then scripts/bench
    scripts/bench -quick        # small sizes, for working on the bench itself
    scripts/bench -only 1,3     # some targets; -h lists every flag

scripts/bench builds zkbench and zkfixture, installs CoreDNS v1.15.0 with ` + "`go install`" + ` into a
temporary GOBIN, and runs zkbench against ` + "`bin/zkdns`" + `. zkbench starts a throwaway
ZooKeeper with scripts/zk-local, writes every config and zone file into a temporary directory
(` + "`-keep`" + ` keeps it), pins each DNS server under test to CPU 0 and every load generator to
CPU 1, and stops everything it started when it ends. The configs below are the ones this run used.
`)
	for _, c := range r.configs {
		fmt.Fprintf(&b, "\n### %s\n\n```text\n%s```\n", c.title, c.text)
	}
	return b.String()
}
