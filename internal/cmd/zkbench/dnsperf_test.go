package main

import (
	"strings"
	"testing"
	"time"
)

// dnsperfOutput is dnsperf 2.10's report of a run, as this machine prints it.
const dnsperfOutput = `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 18653 -d q -c 10 -T 1 -q 100 -l 2
[Status] Sending queries (to 127.0.0.1:18653)
[Status] Started at: Sat Nov 21 12:37:54 2026
[Status] Stopping after 2.000000 seconds
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         73206
  Queries completed:    73200 (99.99%)
  Queries lost:         6 (0.01%)

  Response codes:       NOERROR 54905 (75.00%), NXDOMAIN 18295 (25.00%)
  Average packet size:  request 28, response 130
  Run time (s):         2.008670
  Queries per second:   36445.010878

  Average Latency (s):  0.002307 (min 0.000023, max 0.329170)
  Latency StdDev (s):   0.012356

`

func TestParseDNSPerf(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    dnsperfResult
		wantErr string
	}{
		{
			name: "a full report",
			out:  dnsperfOutput,
			want: dnsperfResult{
				sent: 73206, completed: 73200, lost: 6, qps: 36445.010878,
				runTime: 2008670 * time.Microsecond, avgLatency: 2307 * time.Microsecond, maxLatency: 329170 * time.Microsecond,
				responseSize: 130, rcodes: map[string]int64{"NOERROR": 54905, "NXDOMAIN": 18295},
			},
		},
		{
			name: "servfails are counted like any rcode",
			out:  strings.Replace(dnsperfOutput, "NXDOMAIN 18295 (25.00%)", "NXDOMAIN 18000 (24.59%), SERVFAIL 295 (0.40%)", 1),
			want: dnsperfResult{
				sent: 73206, completed: 73200, lost: 6, qps: 36445.010878,
				runTime: 2008670 * time.Microsecond, avgLatency: 2307 * time.Microsecond, maxLatency: 329170 * time.Microsecond,
				responseSize: 130, rcodes: map[string]int64{"NOERROR": 54905, "NXDOMAIN": 18000, "SERVFAIL": 295},
			},
		},
		{
			name:    "a run that never got to its statistics",
			out:     "DNS Performance Testing Tool\nVersion 2.10.0\n\nError: socket: Too many open files\n",
			wantErr: `no "Queries sent" line`,
		},
		{
			name:    "a number that is not one",
			out:     strings.Replace(dnsperfOutput, "Queries per second:   36445.010878", "Queries per second:   lots", 1),
			wantErr: `"Queries per second"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDNSPerf(tt.out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.sent != tt.want.sent || got.completed != tt.want.completed || got.lost != tt.want.lost ||
				got.qps != tt.want.qps || got.runTime != tt.want.runTime || got.avgLatency != tt.want.avgLatency ||
				got.maxLatency != tt.want.maxLatency || got.responseSize != tt.want.responseSize {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			if len(got.rcodes) != len(tt.want.rcodes) {
				t.Errorf("rcodes = %v, want %v", got.rcodes, tt.want.rcodes)
			}
			for k, v := range tt.want.rcodes {
				if got.rcodes[k] != v {
					t.Errorf("rcodes[%s] = %d, want %d", k, got.rcodes[k], v)
				}
			}
		})
	}
}

func TestDNSPerfArgv(t *testing.T) {
	tests := []struct {
		name string
		run  dnsperfRun
		want string
	}{
		{
			name: "the issue's settings, pinned",
			run:  dnsperfRun{binary: "dnsperf", core: 1, server: "127.0.0.1:18653", queries: "/tmp/q.txt", seconds: 10},
			want: "taskset -c 1 dnsperf -s 127.0.0.1 -p 18653 -d /tmp/q.txt -c 10 -T 1 -q 100 -l 10",
		},
		{
			name: "another core and length",
			run:  dnsperfRun{binary: "/usr/bin/dnsperf", core: 3, server: "127.0.0.1:53", queries: "q", seconds: 62},
			want: "taskset -c 3 /usr/bin/dnsperf -s 127.0.0.1 -p 53 -d q -c 10 -T 1 -q 100 -l 62",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.run.commandLine(); got != tt.want {
				t.Errorf("commandLine() = %q, want %q", got, tt.want)
			}
		})
	}
}
