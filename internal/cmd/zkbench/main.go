// Command zkbench is the harness behind `make bench`: it measures zkdns
// beside the best DNS servers and beside ZooKeeper itself on this machine,
// in one run, and writes the tables to BENCHMARKS.md and the scaling
// arithmetic built on them to SCALING.md.
//
//	zkbench [-quick] [-zkdns bin/zkdns] [-fixture zkfixture] [-coredns PATH] [-only 1,3]
//
// It runs five targets (see issue 6): DNS throughput against Knot, NSD and
// CoreDNS serving the same records; propagation of a znode change to a DNS
// answer beside ZooKeeper's own child-watch latency, and of a session loss;
// cold sync of 100,000 instances beside a bare pipelined reader; DNS under
// 1,000 changes/s; and the ZooKeeper requests each change costs. Each prints
// one table of zkdns's figure, the reference, their ratio and PASS or FAIL
// against the target. A missed target is reported, not an error: the exit
// status is 1 only when the bench itself could not run.
//
// Servers under test are pinned to CPU 0 and load generators to CPU 1 with
// taskset. Everything binds 127.0.0.1 and stops when zkbench does.
//
//	zkbench openloop -server IP:PORT -queries FILE -rate N -duration D
//
// is the open-loop load generator zkbench runs as a pinned child: it sends
// at a fixed rate from one goroutine, receives on another, and prints the
// latency percentiles as JSON.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "zkbench: %v\n", strings.TrimPrefix(err.Error(), "zkbench: "))
		os.Exit(1)
	}
}

// options are zkbench's flags.
type options struct {
	quick   bool
	only    map[int]bool // targets to run; empty means all
	zkdns   string
	fixture string
	knotd   string
	nsd     string
	coredns string
	dnsperf string
	perf    string
	gotool  string
	out     string // BENCHMARKS.md; "" writes none
	scaling string // SCALING.md; "" writes none
	work    string // working directory; "" means a temporary one
	keep    bool

	serverCore, clientCore int
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("zkbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.quick, "quick", false, "small data sets, short runs and few trials: for developing the bench, not for numbers")
	only := fs.String("only", "", "comma-separated `targets` to run (1-5); empty runs all")
	fs.StringVar(&o.zkdns, "zkdns", "bin/zkdns", "zkdns `binary` under test (make build writes bin/zkdns)")
	fs.StringVar(&o.fixture, "fixture", "", "zkfixture `binary`, whose hold command owns the sessions the session-loss trials kill; empty skips those trials")
	fs.StringVar(&o.knotd, "knotd", "knotd", "Knot DNS server `binary`; empty skips Knot")
	fs.StringVar(&o.nsd, "nsd", "nsd", "NSD server `binary`; empty skips NSD")
	fs.StringVar(&o.coredns, "coredns", "", "CoreDNS `binary` (scripts/bench installs v1.15.0 into a temporary GOBIN); empty skips CoreDNS")
	fs.StringVar(&o.dnsperf, "dnsperf", "dnsperf", "dnsperf `binary`")
	fs.StringVar(&o.perf, "perf", "perf", "Linux perf `binary` for zkdns's CPU profile; empty skips the profile")
	fs.StringVar(&o.gotool, "go", "go", "Go `binary` whose pprof summarises zkdns's own CPU profile (from /debug/pprof); empty skips it")
	fs.StringVar(&o.out, "out", "BENCHMARKS.md", "write the report to `file`; empty writes none")
	fs.StringVar(&o.scaling, "scaling", "SCALING.md", "write the scaling arithmetic to `file`; empty writes none")
	fs.StringVar(&o.work, "work", "", "working `directory` for configs, zone files and logs; empty means a temporary one, removed at the end")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary working directory")
	fs.IntVar(&o.serverCore, "server-cpu", 0, "`cpu` the DNS server under test is pinned to")
	fs.IntVar(&o.clientCore, "client-cpu", 1, "`cpu` dnsperf and the open-loop generator are pinned to")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("zkbench: unexpected argument %q (flags only)", fs.Arg(0))
	}
	o.only = map[int]bool{}
	for f := range strings.SplitSeq(*only, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 5 {
			return options{}, fmt.Errorf("zkbench: -only %q: targets are numbered 1 to 5", *only)
		}
		o.only[n] = true
	}
	// A binary named without a slash is looked up on PATH (and in
	// /usr/sbin, where Debian puts knotd and nsd); one that is missing
	// turns into a skipped peer, not an error.
	for _, p := range []*string{&o.knotd, &o.nsd, &o.perf, &o.gotool} {
		*p = lookBinary(*p)
	}
	if o.dnsperf = lookBinary(o.dnsperf); o.dnsperf == "" {
		return options{}, errors.New("zkbench: dnsperf is not installed: run `scripts/deps bench`")
	}
	if _, err := os.Stat(o.zkdns); err != nil {
		return options{}, fmt.Errorf("zkbench: zkdns binary: %w (run `make build`)", err)
	}
	return o, nil
}

// lookBinary resolves name on PATH, then in /usr/sbin; it returns "" for
// a name that is empty or not found.
func lookBinary(name string) string {
	if name == "" {
		return ""
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if !strings.Contains(name, "/") {
		if p, err := exec.LookPath("/usr/sbin/" + name); err == nil {
			return p
		}
	}
	return ""
}

func (o options) runs(target int) bool { return len(o.only) == 0 || o.only[target] }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "openloop" {
		return runOpenLoopCommand(ctx, args[1:], stdout)
	}
	opts, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			// Progress lines: the wall clock is noise next to the message.
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	p := fullPlan()
	if opts.quick {
		p = quickPlan()
	}
	started := time.Now()
	b, err := newBench(ctx, opts, p, logger)
	if err != nil {
		return err
	}
	rep, err := b.run(ctx)
	b.close()
	if err != nil {
		return err
	}
	rep.took = time.Since(started)
	rep.header.loadEnd = loadAverage()
	rep.header.endSteal(rep.took)
	for _, s := range rep.sections {
		fmt.Fprintf(stdout, "%s\n", s.markdown())
	}
	fmt.Fprintln(stdout, rep.summary())
	if opts.out != "" {
		if err := os.WriteFile(opts.out, []byte(rep.markdown()), 0o644); err != nil {
			return fmt.Errorf("zkbench: write report: %w", err)
		}
		logger.Info("report written", "file", opts.out)
	}
	if opts.scaling != "" && rep.scaling != nil {
		text, err := rep.scaling.markdown(rep.header)
		if err != nil {
			return err
		}
		if err := os.WriteFile(opts.scaling, []byte(text), 0o644); err != nil {
			return fmt.Errorf("zkbench: write scaling: %w", err)
		}
		logger.Info("scaling written", "file", opts.scaling)
	}
	return nil
}
