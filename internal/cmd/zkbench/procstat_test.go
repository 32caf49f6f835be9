package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    procStat
		wantErr bool
	}{
		{
			name: "a server",
			line: "4242 (knotd) S 1 4242 4242 0 -1 4194560 2315 0 0 0 1234 567 0 0 20 0 23 0 1000 0 0",
			want: procStat{ppid: 1, cpu: (1234 + 567) * clockTick},
		},
		{
			name: "a name with spaces and parentheses",
			line: "77 (my (odd) name) R 76 77 77 0 -1 0 0 0 0 0 10 5 0 0 20 0 1 0 1 0 0",
			want: procStat{ppid: 76, cpu: 15 * clockTick},
		},
		{
			name:    "cut short",
			line:    "77 (x) R 76 77",
			wantErr: true,
		},
		{
			name:    "no name",
			line:    "77 x R 76",
			wantErr: true,
		},
		{
			name:    "utime not a number",
			line:    "77 (x) R 76 77 77 0 -1 0 0 0 0 0 ten 5 0",
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tt.line))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTreeCPU(t *testing.T) {
	// NSD's shape: a main process, its server and xfrd children, and an
	// unrelated process beside it.
	stats := map[int]procStat{
		1:   {ppid: 0, cpu: time.Hour},
		100: {ppid: 1, cpu: 10 * clockTick},
		101: {ppid: 100, cpu: 300 * clockTick},
		102: {ppid: 100, cpu: 2 * clockTick},
		103: {ppid: 101, cpu: 1 * clockTick},
		200: {ppid: 1, cpu: 999 * clockTick},
	}
	tests := []struct {
		name string
		root int
		want time.Duration
	}{
		{"a process and all its descendants", 100, 313 * clockTick},
		{"a leaf is just itself", 102, 2 * clockTick},
		{"a subtree", 101, 301 * clockTick},
		{"a process not there counts nothing", 999, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := treeCPU(stats, tt.root); got != tt.want {
				t.Errorf("treeCPU(%d) = %v, want %v", tt.root, got, tt.want)
			}
		})
	}
}

func TestParseStatusMemory(t *testing.T) {
	status := "Name:\tzkdns\nVmPeak:\t 1300000 kB\nVmHWM:\t   65536 kB\nVmRSS:\t   40960 kB\nThreads:\t9\n"
	tests := []struct {
		name    string
		status  string
		field   string
		want    int64
		wantErr string
	}{
		{"resident set", status, "VmRSS", 40 << 20, ""},
		{"high-water mark", status, "VmHWM", 64 << 20, ""},
		{"meminfo has the same shape", "MemTotal:       24684424 kB\nMemFree: 1 kB\n", "MemTotal", 24684424 << 10, ""},
		{"a field that is missing", status, "VmSwap", 0, "no VmSwap line"},
		{"a field without its unit", "VmRSS:\t40960\n", "VmRSS", 0, "unexpected value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatusMemory([]byte(tt.status), tt.field)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestParseCPUSteal(t *testing.T) {
	stat := "cpu  1318866 0 587720 1274212 17131 0 89999 86039 0 0\n" +
		"cpu0 673201 0 270693 647491 4319 0 48265 42094 0 0\n" +
		"cpu1 645664 0 317027 626721 12812 0 41733 43945 0 0\n" +
		"cpu12 1 0 0 0 0 0 0 7 0 0\n" +
		"cpu2 1 2 3\n" +
		"intr 1 2 3\n"
	tests := []struct {
		core    int
		want    time.Duration
		wantErr string
	}{
		{core: -1, want: 86039 * clockTick},
		{core: 0, want: 42094 * clockTick},
		{core: 1, want: 43945 * clockTick},
		{core: 12, want: 7 * clockTick},
		{core: 2, wantErr: "no steal column"},
		{core: 3, wantErr: "no line for cpu3"},
	}
	for _, tt := range tests {
		got, err := parseCPUSteal([]byte(stat), tt.core)
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("core %d: err = %v, want %q", tt.core, err, tt.wantErr)
			}
		case err != nil || got != tt.want:
			t.Errorf("core %d: %v, %v; want %v", tt.core, got, err, tt.want)
		}
	}
}
