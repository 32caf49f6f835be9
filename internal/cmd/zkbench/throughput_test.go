package main

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRunRounds checks that every server runs once per round, and gets
// extra runs only while none of its runs was quiet, at most extraRuns of
// them, and that the note says who got how many.
func TestRunRounds(t *testing.T) {
	const wall = 10 * time.Second
	tests := []struct {
		name  string
		steal map[string][]time.Duration // what each server's two rounds lose
		next  map[string][]time.Duration // what its extra runs will lose, in order
		want  map[string]int
		note  string
	}{
		{
			name:  "every server had a quiet run",
			steal: map[string][]time.Duration{"zkdns": {3 * time.Second, time.Second}, "Knot": {0, 0}},
			want:  map[string]int{},
			note:  "none got more",
		},
		{
			name:  "exactly a tenth stolen is quiet",
			steal: map[string][]time.Duration{"zkdns": {time.Second, 2 * time.Second}},
			want:  map[string]int{},
			note:  "none got more",
		},
		{
			name:  "an unknown steal counts as quiet",
			steal: map[string][]time.Duration{"zkdns": {-1, 3 * time.Second}},
			want:  map[string]int{},
			note:  "none got more",
		},
		{
			name:  "a stolen server runs until one run is quiet",
			steal: map[string][]time.Duration{"zkdns": {3 * time.Second, 3 * time.Second}, "Knot": {0, 0}},
			next:  map[string][]time.Duration{"zkdns": {500 * time.Millisecond}},
			want:  map[string]int{"zkdns": 1},
			note:  "In this run: zkdns 1 dnsperf run more.",
		},
		{
			name:  "no more than extraRuns",
			steal: map[string][]time.Duration{"zkdns": {3 * time.Second, 3 * time.Second}, "NSD": {2 * time.Second, 2 * time.Second}},
			next:  map[string][]time.Duration{"zkdns": {3 * time.Second, 3 * time.Second, 0}, "NSD": {4 * time.Second, 0}},
			want:  map[string]int{"zkdns": extraRuns, "NSD": 2},
			note:  "In this run: zkdns 2 dnsperf runs; NSD 2 dnsperf runs more.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const rounds = 2
			var all []*serverRuns
			queue := map[string][]time.Duration{} // what each run to come will lose
			for _, name := range []string{"zkdns", "Knot", "NSD"} {
				steals, ok := tt.steal[name]
				if !ok {
					continue
				}
				if len(steals) != rounds {
					t.Fatalf("%s: %d round steals, want %d", name, len(steals), rounds)
				}
				all = append(all, &serverRuns{server: &dnsServer{name: name}})
				queue[name] = append(slices.Clone(steals), tt.next[name]...)
			}
			run := func(s *serverRuns) error {
				next := queue[s.server.name]
				if len(next) == 0 {
					t.Fatalf("%s got a run the test did not expect", s.server.name)
				}
				s.runs = append(s.runs, dnsperfResult{runTime: wall})
				s.cpu = append(s.cpu, 0)
				s.steal = append(s.steal, next[0])
				queue[s.server.name] = next[1:]
				return nil
			}
			got, err := runRounds(all, rounds, (*serverRuns).quietPerf, run)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("extra runs = %v, want %v", got, tt.want)
			}
			for _, s := range all {
				if want := rounds + got[s.server.name]; len(s.runs) != want {
					t.Errorf("%s ran %d times, want %d: once per round and its extra runs", s.server.name, len(s.runs), want)
				}
			}
			if note := extraRunsNote(all, got, nil); !strings.Contains(note, tt.note) {
				t.Errorf("note = %q, want it to contain %q", note, tt.note)
			}
		})
	}
}
