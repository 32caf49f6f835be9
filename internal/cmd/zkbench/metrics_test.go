package main

import (
	"math"
	"strings"
	"testing"
)

const exposition = `# HELP zkdns_zookeeper_requests_total Requests sent to ZooKeeper, by operation.
# TYPE zkdns_zookeeper_requests_total counter
zkdns_zookeeper_requests_total{op="children_watch"} 11
zkdns_zookeeper_requests_total{op="get_watch"} 50
zkdns_zookeeper_requests_total{op="exists"} 0
# TYPE zkdns_zookeeper_event_to_publish_seconds histogram
zkdns_zookeeper_event_to_publish_seconds_bucket{le="2.5e-05"} 1
zkdns_zookeeper_event_to_publish_seconds_bucket{le="5e-05"} 7
zkdns_zookeeper_event_to_publish_seconds_bucket{le="0.0001"} 10
zkdns_zookeeper_event_to_publish_seconds_bucket{le="+Inf"} 10
zkdns_zookeeper_event_to_publish_seconds_sum 0.0004
zkdns_zookeeper_event_to_publish_seconds_count 10
zkdns_zookeeper_reconnects_total 2
zkdns_dns_requests_total{proto="udp",qtype="A",rcode="NOERROR"} 1.5e+06
`

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		series string
		want   float64
	}{
		{"unlabelled counter", "zkdns_zookeeper_reconnects_total", 2},
		{"labelled counter", `zkdns_zookeeper_requests_total{op="get_watch"}`, 50},
		{"exponent notation", `zkdns_dns_requests_total{proto="udp",qtype="A",rcode="NOERROR"}`, 1.5e6},
		{"histogram count", "zkdns_zookeeper_event_to_publish_seconds_count", 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := m[tt.series]; !ok || got != tt.want {
				t.Errorf("m[%s] = %v, %v; want %v", tt.series, got, ok, tt.want)
			}
		})
	}
}

func TestParseMetricsErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
	}{
		{"a sample without a value", "zkdns_up\n"},
		{"a value that is not a number", "zkdns_up one\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseMetrics(strings.NewReader(tt.text)); err == nil {
				t.Errorf("parseMetrics(%q) succeeded", tt.text)
			}
		})
	}
}

func TestMetricSetQueries(t *testing.T) {
	before, err := parseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseMetrics(strings.NewReader(strings.NewReplacer(
		`{op="children_watch"} 11`, `{op="children_watch"} 12`,
		`{op="get_watch"} 50`, `{op="get_watch"} 52`,
	).Replace(exposition)))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("byLabel keys samples by the label's value", func(t *testing.T) {
		got := before.byLabel(requestsMetric, "op")
		if len(got) != 3 || got["children_watch"] != 11 || got["get_watch"] != 50 || got["exists"] != 0 {
			t.Errorf("byLabel = %v", got)
		}
	})
	t.Run("deltaByLabel keeps only what moved", func(t *testing.T) {
		got := deltaByLabel(after, before, requestsMetric, "op")
		if len(got) != 2 || got["children_watch"] != 1 || got["get_watch"] != 2 {
			t.Errorf("deltaByLabel = %v", got)
		}
	})
	t.Run("histogram returns ordered cumulative buckets", func(t *testing.T) {
		got := before.histogram(eventToPublish)
		want := []bucket{{25e-6, 1}, {50e-6, 7}, {100e-6, 10}, {math.Inf(1), 10}}
		if len(got) != len(want) {
			t.Fatalf("histogram = %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("histogram = %v, want %v", got, want)
				break
			}
		}
	})
	t.Run("a histogram that is not there is empty", func(t *testing.T) {
		if got := before.histogram("zkdns_nothing_seconds"); len(got) != 0 {
			t.Errorf("histogram = %v", got)
		}
	})
}
