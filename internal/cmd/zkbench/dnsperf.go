package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// dnsperfResult is what one dnsperf run reports.
type dnsperfResult struct {
	sent, completed, lost int64
	qps                   float64
	runTime               time.Duration
	avgLatency            time.Duration
	maxLatency            time.Duration
	responseSize          int              // average response, bytes
	rcodes                map[string]int64 // responses by rcode name
}

// parseDNSPerf reads dnsperf 2.x's statistics block. It fails when a line
// every run prints is missing, so a changed output format is noticed
// rather than read as zeros.
func parseDNSPerf(out string) (dnsperfResult, error) {
	r := dnsperfResult{rcodes: map[string]int64{}}
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		key, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var err error
		switch key {
		case "Queries sent":
			r.sent, err = leadingInt(val)
		case "Queries completed":
			r.completed, err = leadingInt(val)
		case "Queries lost":
			r.lost, err = leadingInt(val)
		case "Queries per second":
			r.qps, err = strconv.ParseFloat(val, 64)
		case "Run time (s)":
			r.runTime, err = seconds(val)
		case "Average Latency (s)":
			// 0.000215 (min 0.000011, max 0.004318)
			avg, rest, _ := strings.Cut(val, " ")
			if r.avgLatency, err = seconds(avg); err == nil {
				if _, m, ok := strings.Cut(rest, "max "); ok {
					r.maxLatency, err = seconds(strings.TrimSuffix(m, ")"))
				}
			}
		case "Average packet size":
			// request 33, response 180
			_, resp, ok := strings.Cut(val, "response ")
			if !ok {
				err = errors.New("no response size")
				break
			}
			var n int64
			n, err = leadingInt(resp)
			r.responseSize = int(n)
		case "Response codes":
			// NOERROR 90 (90.00%), NXDOMAIN 10 (10.00%)
			for part := range strings.SplitSeq(val, ",") {
				f := strings.Fields(part)
				if len(f) < 2 {
					continue
				}
				n, perr := strconv.ParseInt(f[1], 10, 64)
				if perr != nil {
					err = perr
					break
				}
				r.rcodes[f[0]] = n
			}
		default:
			continue
		}
		if err != nil {
			return dnsperfResult{}, fmt.Errorf("zkbench: dnsperf output, %q: %w", key, err)
		}
		seen[key] = true
	}
	for _, k := range []string{"Queries sent", "Queries completed", "Queries lost", "Queries per second", "Average Latency (s)"} {
		if !seen[k] {
			return dnsperfResult{}, fmt.Errorf("zkbench: dnsperf output has no %q line; is this dnsperf 2.x?", k)
		}
	}
	return r, nil
}

func leadingInt(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, errors.New("empty")
	}
	return strconv.ParseInt(f[0], 10, 64)
}

func seconds(s string) (time.Duration, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(v * float64(time.Second)), nil
}

// dnsperfRun describes one dnsperf invocation: the client pinned to its
// own core, ten sockets each keeping 100 queries outstanding, which
// saturated servers here best without drops (more in flight overflows
// socket buffers and stalls on timeouts).
type dnsperfRun struct {
	binary  string
	core    int
	server  string // 127.0.0.1:port
	queries string // query file
	seconds int
}

func (r dnsperfRun) argv() []string {
	host, port, _ := strings.Cut(r.server, ":")
	return []string{"taskset", "-c", strconv.Itoa(r.core), r.binary,
		"-s", host, "-p", port, "-d", r.queries,
		"-c", "10", "-T", "1", "-q", "100", "-l", strconv.Itoa(r.seconds)}
}

func (r dnsperfRun) commandLine() string { return strings.Join(r.argv(), " ") }

func (r dnsperfRun) run(ctx context.Context) (dnsperfResult, error) {
	argv := r.argv()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return dnsperfResult{}, fmt.Errorf("zkbench: %s: %w\n%s", r.commandLine(), err, tail(string(out), 10))
	}
	return parseDNSPerf(string(out))
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
