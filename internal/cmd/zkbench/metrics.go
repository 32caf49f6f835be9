package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// metricSet is one scrape of a Prometheus text exposition: each sample's
// value by its series as written, e.g.
// `zkdns_zookeeper_requests_total{op="get_watch"}`.
type metricSet map[string]float64

// parseMetrics reads the text exposition format as client_golang writes
// it: one sample per line, no timestamps, comments starting with '#'.
func parseMetrics(r io.Reader) (metricSet, error) {
	m := metricSet{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("zkbench: metrics line without a value: %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("zkbench: metrics line %q: %w", line, err)
		}
		m[strings.TrimSpace(line[:i])] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("zkbench: read metrics: %w", err)
	}
	return m, nil
}

// byLabel returns the samples of metric name keyed by the value of its one
// label, e.g. byLabel("zkdns_zookeeper_requests_total", "op").
func (m metricSet) byLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	prefix := name + "{" + label + `="`
	for series, v := range m {
		if rest, ok := strings.CutPrefix(series, prefix); ok {
			if val, _, ok := strings.Cut(rest, `"`); ok {
				out[val] = v
			}
		}
	}
	return out
}

// histogram returns the cumulative buckets of the unlabelled histogram
// name, ordered by bound.
func (m metricSet) histogram(name string) []bucket {
	var bs []bucket
	for le, count := range m.byLabel(name+"_bucket", "le") {
		upper, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{upper: upper, count: count})
	}
	slices.SortFunc(bs, func(a, b bucket) int {
		switch {
		case a.upper < b.upper:
			return -1
		case a.upper > b.upper:
			return 1
		}
		return 0
	})
	if n := len(bs); n > 0 && !math.IsInf(bs[n-1].upper, 1) {
		return nil // not a complete histogram
	}
	return bs
}

// deltaByLabel returns after − before for each label value of a counter.
func deltaByLabel(after, before metricSet, name, label string) map[string]float64 {
	a, b := after.byLabel(name, label), before.byLabel(name, label)
	out := map[string]float64{}
	for k, v := range a {
		if d := v - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// scrapeMetrics fetches and parses http://addr/metrics.
func scrapeMetrics(ctx context.Context, addr string) (metricSet, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := getOK(ctx, "http://"+addr+"/metrics")
	if err != nil {
		return nil, fmt.Errorf("zkbench: scrape: %w", err)
	}
	defer resp.Body.Close()
	return parseMetrics(resp.Body)
}

// requestsMetric counts zkdns's requests to ZooKeeper by op.
const requestsMetric = "zkdns_zookeeper_requests_total"

// settledMetrics scrapes until the request counters stop moving for quiet
// (a watch event's follow-up reads land within a few milliseconds), so a
// delta taken afterwards holds all the requests one change caused.
func settledMetrics(ctx context.Context, addr string, quiet time.Duration) (metricSet, error) {
	prev, err := scrapeMetrics(ctx, addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(quiet):
		}
		cur, err := scrapeMetrics(ctx, addr)
		if err != nil {
			return nil, err
		}
		if len(deltaByLabel(cur, prev, requestsMetric, "op")) == 0 || time.Now().After(deadline) {
			return cur, nil
		}
		prev = cur
	}
}
