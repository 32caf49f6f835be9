package main

import (
	"strings"
	"testing"
	"time"
)

func TestTableMarkdown(t *testing.T) {
	tests := []struct {
		name  string
		table table
		want  string
	}{
		{
			name:  "columns padded to the widest cell",
			table: table{columns: []string{"server", "q/s"}, rows: [][]string{{"zkdns", "61,234"}, {"Knot", "9"}}},
			want: "| server | q/s    |\n" +
				"| ------ | ------ |\n" +
				"| zkdns  | 61,234 |\n" +
				"| Knot   | 9      |\n",
		},
		{
			name:  "width counts runes, not bytes",
			table: table{columns: []string{"µs", "x"}, rows: [][]string{{"≤ 8µs", "2.1×"}}},
			want: "| µs    | x    |\n" +
				"| ----- | ---- |\n" +
				"| ≤ 8µs | 2.1× |\n",
		},
		{
			name:  "short rows get empty cells and pipes are escaped",
			table: table{columns: []string{"a", "b", "c"}, rows: [][]string{{"x|y"}}},
			want: "| a    | b   | c   |\n" +
				"| ---- | --- | --- |\n" +
				"| x\\|y |     |     |\n",
		},
		{
			name:  "a table without rows still has its header",
			table: table{columns: []string{"measure"}},
			want:  "| measure |\n| ------- |\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.table.markdown(); got != tt.want {
				t.Errorf("markdown() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestSectionVerdicts(t *testing.T) {
	tests := []struct {
		name       string
		fill       func(*section)
		wantChecks []check
		wantCells  []string // the verdict column of each row
	}{
		{
			name: "targets record their outcome, info rows do not",
			fill: func(s *section) {
				s.target("q/s", "1", "2", "0.5×", "≥ 3×", false)
				s.info("drop", "x", "y", "")
				s.target("lost", "0", "", "", "0", true)
			},
			wantChecks: []check{{"T: q/s", false}, {"T: lost", true}},
			wantCells:  []string{"FAIL", "", "PASS"},
		},
		{
			name:       "a skipped measurement fails its target",
			fill:       func(s *section) { s.skipped("vs CoreDNS", "≥ 3×", "CoreDNS was not run") },
			wantChecks: []check{{"T: vs CoreDNS", false}},
			wantCells:  []string{"FAIL"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSection("T", "")
			tt.fill(s)
			if len(s.checks) != len(tt.wantChecks) {
				t.Fatalf("checks = %v, want %v", s.checks, tt.wantChecks)
			}
			for i := range s.checks {
				if s.checks[i] != tt.wantChecks[i] {
					t.Errorf("check %d = %v, want %v", i, s.checks[i], tt.wantChecks[i])
				}
			}
			for i, row := range s.verdict.rows {
				if got := row[len(row)-1]; got != tt.wantCells[i] {
					t.Errorf("row %d verdict = %q, want %q", i, got, tt.wantCells[i])
				}
			}
		})
	}
}

func TestSectionMarkdown(t *testing.T) {
	s := newSection("1. DNS throughput", "What was measured.")
	s.target("lost", "0", "", "", "0", true)
	s.notes = append(s.notes, "A caveat.")
	s.commands = append(s.commands, "dnsperf -l 10")
	s.codeTitle, s.code = "Profile top", "12% main.main\n"
	got := s.markdown()
	for _, want := range []string{
		"## 1. DNS throughput\n\nWhat was measured.\n\n| measure |",
		"| PASS    |",
		"\n- A caveat.\n",
		"\nCommands:\n\n- `dnsperf -l 10`\n",
		"\nProfile top\n\n```text\n12% main.main\n```\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("markdown lacks %q:\n%s", want, got)
		}
	}
}

func TestFormatters(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"zero duration", fmtDuration(0), "0"},
		{"nanoseconds", fmtDuration(800 * time.Nanosecond), "800ns"},
		{"microseconds keep three digits", fmtDuration(8250 * time.Nanosecond), "8.25µs"},
		{"hundreds of microseconds have no fraction", fmtDuration(850 * time.Microsecond), "850µs"},
		{"milliseconds", fmtDuration(1270 * time.Microsecond), "1.27ms"},
		{"seconds", fmtDuration(2500 * time.Millisecond), "2.50s"},
		{"negative durations keep their sign", fmtDuration(-1500 * time.Microsecond), "-1.50ms"},
		{"a delta over the reference", fmtDelta(250 * time.Microsecond), "+250µs"},
		{"a delta under the reference", fmtDelta(-865 * time.Microsecond), "-865µs"},
		{"no delta", fmtDelta(0), "+0"},
		{"count below a thousand", fmtCount(999), "999"},
		{"count with separators", fmtCount(int64(1234567)), "1,234,567"},
		{"negative count", fmtCount(-60010), "-60,010"},
		{"rate rounds", fmtRate(61234.6), "61,235"},
		{"ratio", fmtRatio(3, 2), "1.50×"},
		{"ratio over nothing", fmtRatio(3, 0), "n/a"},
		{"bytes", fmtBytes(512), "512 B"},
		{"kibibytes", fmtBytes(1536), "1.50 KiB"},
		{"mebibytes", fmtBytes(200 << 20), "200 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestFmtPer(t *testing.T) {
	tests := []struct {
		name string
		v    float64
		want string
	}{
		{"whole", 2, "2"},
		{"half", 1.5, "1.5"},
		{"rounded to two decimals", 0.8333, "0.83"},
		{"zero", 0, "0"},
		{"large", 6001, "6001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmtPer(tt.v); got != tt.want {
				t.Errorf("fmtPer(%v) = %q, want %q", tt.v, got, tt.want)
			}
		})
	}
}

func TestPlural(t *testing.T) {
	tests := []struct {
		name string
		n    int
		want string
	}{
		{"one", 1, "1 run"},
		{"two", 2, "2 runs"},
		{"none", 0, "0 runs"},
		{"many", 1500, "1,500 runs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := plural(tt.n, "run"); got != tt.want {
				t.Errorf("plural(%d) = %q, want %q", tt.n, got, tt.want)
			}
		})
	}
}
