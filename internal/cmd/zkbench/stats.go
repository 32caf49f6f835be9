package main

import (
	"math"
	"slices"
	"time"
)

// latencies summarises a sample of durations by the percentiles the
// targets are written against.
type latencies struct {
	n                   int
	p50, p99, p999, max time.Duration
	mean                time.Duration
}

// summarize computes the summary of d; d is not modified.
func summarize(d []time.Duration) latencies {
	if len(d) == 0 {
		return latencies{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, v := range s {
		sum += v
	}
	return latencies{
		n:    len(s),
		p50:  percentile(s, 50),
		p99:  percentile(s, 99),
		p999: percentile(s, 99.9),
		max:  s[len(s)-1],
		mean: sum / time.Duration(len(s)),
	}
}

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method: the smallest value that at least p percent of the
// sample is less than or equal to. Unlike interpolation it always returns
// a value that was measured, which keeps small samples honest: the p99 of
// 50 trials is their maximum.
func percentile[T ~int64](sorted []T, p float64) T {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// bucket is one cumulative histogram bucket as Prometheus exposes it: the
// number of observations less than or equal to upper.
type bucket struct {
	upper float64 // +Inf for the last bucket
	count float64
}

// histogramQuantile estimates the q-quantile (0 < q < 1) of a cumulative
// histogram the way Prometheus's histogram_quantile does: find the bucket
// the rank falls in and interpolate linearly inside it, taking 0 as the
// lower bound of the first bucket. A rank in the +Inf bucket yields the
// largest finite bound. ok is false when the histogram is empty.
func histogramQuantile(buckets []bucket, q float64) (v float64, ok bool) {
	if len(buckets) == 0 {
		return 0, false
	}
	total := buckets[len(buckets)-1].count
	if total <= 0 {
		return 0, false
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range buckets {
		if b.count >= rank {
			if math.IsInf(b.upper, 1) {
				return lower, true
			}
			inBucket := b.count - below
			if inBucket <= 0 {
				return b.upper, true
			}
			return lower + (b.upper-lower)*(rank-below)/inBucket, true
		}
		lower, below = b.upper, b.count
	}
	return lower, true
}

// subtractBuckets returns after − before bucket by bucket: the histogram
// of the observations made between two scrapes. The bucket bounds must
// match.
func subtractBuckets(after, before []bucket) []bucket {
	out := make([]bucket, len(after))
	for i, b := range after {
		out[i] = b
		if i < len(before) && before[i].upper == b.upper {
			out[i].count -= before[i].count
		}
	}
	return out
}
