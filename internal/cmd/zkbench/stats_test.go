package main

import (
	"math"
	"testing"
	"time"
)

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty sample is zero", nil, 50, 0},
		{"one value is every percentile", []time.Duration{ms(3)}, 99.9, ms(3)},
		{"median of 1..100 is 50", hundred, 50, ms(50)},
		{"p99 of 1..100 is 99", hundred, 99, ms(99)},
		{"p99.9 of 100 values is the maximum", hundred, 99.9, ms(100)},
		{"p100 is the maximum", hundred, 100, ms(100)},
		{"a tiny p is the minimum", hundred, 0.001, ms(1)},
		{"p99 of 50 trials is their maximum", hundred[:50], 99, ms(50)},
		{"nearest rank rounds up", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 50, ms(2)},
		{"just past a rank takes the next value", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 51, ms(3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%d values, %v) = %v, want %v", len(tt.sorted), tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []time.Duration
		want latencies
	}{
		{"empty", nil, latencies{}},
		{"unsorted input", []time.Duration{ms(4), ms(1), ms(3), ms(2)},
			latencies{n: 4, p50: ms(2), p99: ms(4), p999: ms(4), max: ms(4), mean: ms(2.5)}},
		{"one outlier shows in p99 and max, not p50", []time.Duration{ms(1), ms(1), ms(1), ms(1), ms(1), ms(1), ms(1), ms(1), ms(1), ms(91)},
			latencies{n: 10, p50: ms(1), p99: ms(91), p999: ms(91), max: ms(91), mean: ms(10)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]time.Duration(nil), tt.in...)
			if got := summarize(tt.in); got != tt.want {
				t.Errorf("summarize = %+v, want %+v", got, tt.want)
			}
			for i := range in {
				if in[i] != tt.in[i] {
					t.Fatalf("summarize reordered its input: %v, was %v", tt.in, in)
				}
			}
		})
	}
}

func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name    string
		buckets []bucket
		q       float64
		want    float64
		ok      bool
	}{
		{"no buckets", nil, 0.5, 0, false},
		{"no observations", []bucket{{1, 0}, {inf, 0}}, 0.5, 0, false},
		{"first bucket interpolates from zero", []bucket{{0.1, 10}, {0.2, 10}, {inf, 10}}, 0.5, 0.05, true},
		{"middle bucket interpolates between bounds", []bucket{{0.1, 0}, {0.2, 10}, {inf, 10}}, 0.5, 0.15, true},
		{"rank at a bucket's top is its bound", []bucket{{0.1, 5}, {0.2, 10}, {inf, 10}}, 0.5, 0.1, true},
		{"rank in +Inf is the largest finite bound", []bucket{{0.1, 1}, {0.2, 2}, {inf, 100}}, 0.99, 0.2, true},
		{"p99 of 100 with one slow event", []bucket{{25e-6, 0}, {50e-6, 99}, {100e-6, 99}, {200e-6, 100}, {inf, 100}}, 0.99, 50e-6, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := histogramQuantile(tt.buckets, tt.q)
			if ok != tt.ok || math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("histogramQuantile(%v) = %v, %v; want %v, %v", tt.q, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestSubtractBuckets(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name          string
		after, before []bucket
		want          []bucket
	}{
		{"counts subtract bucket by bucket",
			[]bucket{{1, 5}, {2, 9}, {inf, 10}}, []bucket{{1, 2}, {2, 3}, {inf, 3}},
			[]bucket{{1, 3}, {2, 6}, {inf, 7}}},
		{"no earlier scrape leaves the counts",
			[]bucket{{1, 5}, {inf, 10}}, nil, []bucket{{1, 5}, {inf, 10}}},
		{"a bound that differs is not subtracted",
			[]bucket{{1, 5}, {inf, 10}}, []bucket{{0.5, 5}, {inf, 6}}, []bucket{{1, 5}, {inf, 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := subtractBuckets(tt.after, tt.before)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("got %v, want %v", got, tt.want)
					break
				}
			}
		})
	}
}
