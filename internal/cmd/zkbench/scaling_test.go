package main

import (
	"strings"
	"testing"
	"time"
)

func TestWatchesPerHost(t *testing.T) {
	tests := []struct {
		name                string
		services, instances int
		want                int
	}{
		{"the scenario", 1000, 5, 6001},
		{"the cost data set", 10, 3, 41},
		{"no services, just the root", 0, 5, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := watchesPerHost(tt.services, tt.instances); got != tt.want {
				t.Errorf("watchesPerHost(%d, %d) = %d, want %d", tt.services, tt.instances, got, tt.want)
			}
		})
	}
}

func TestRecursiveRequests(t *testing.T) {
	tests := []struct {
		kind churnKind
		want int
	}{
		{churnCreate, 1},
		{churnDelete, 0},
		{churnSetData, 1},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			if got := recursiveRequests(tt.kind); got != tt.want {
				t.Errorf("recursiveRequests(%s) = %d, want %d", tt.kind, got, tt.want)
			}
		})
	}
}

// measuredCosts is a cost target's result as zkdns should produce it: two
// trials of each change, the minimum requests, and a reconnect that
// re-arms through setWatches, beside a persistent watch per service.
func measuredCosts() *costMeasurements {
	change := func(metrics map[string]float64, notes int, bytes int64) changeCost {
		return changeCost{trials: 2, metrics: metrics, wire: wireStats{
			requests: map[int32]int{}, notifications: notes, notificationBytes: int64(notes) * 45, requestBytes: bytes, replyBytes: bytes,
		}}
	}
	return &costMeasurements{
		services: 10, instances: 3, childWatches: 11, dataWatches: 30, serverDataWatches: 30,
		byKind: map[churnKind]changeCost{
			churnCreate:  change(map[string]float64{"children_watch": 2, "get_watch": 2}, 2, 500),
			churnDelete:  change(map[string]float64{"children_watch": 2}, 4, 200),
			churnSetData: change(map[string]float64{"get_watch": 2}, 2, 400),
		},
		reconnect: changeCost{trials: 1, metrics: map[string]float64{"add_watch": 10},
			wire: wireStats{requests: map[int32]int{101: 1, 106: 10}, requestBytes: 2050 + 10*40, setWatchesBytes: 2050}},
		fanout: &fanout{watchers: 50, changes: 500, cpuAlone: time.Millisecond, cpuWithWatchers: 2 * time.Millisecond},
	}
}

func TestScalingData(t *testing.T) {
	s := newScaling(measuredCosts(), nil, &coldMeasurements{reader: treeRead{lists: 10001, nodes: 100000, took: 2 * time.Second}})
	d := s.data(header{})
	rows := map[string]scalingRow{}
	for _, r := range d.Rows {
		rows[r.Kind] = r
	}
	tests := []struct {
		name      string
		got, want string
	}{
		{"watches per host", d.WatchesPerHost, "6,001"},
		{"watches in the fleet", d.FleetWatches, "60,010,000"},
		{"watches per voter", d.WatchesPerMember, "12,002,000"},
		{"watches per observer", d.WatchesPerObs, "3,000,500"},
		{"measured watches", d.MeasuredWatches, "41"},
		{"create: requests per host", rows["create"].Requests, "2"},
		{"create: fleet requests", rows["create"].FleetRequests, "20,000"},
		{"delete: fleet notifications", rows["delete"].FleetNotifications, "20,000"},
		{"delete: with a recursive watch", rows["delete"].RecursiveFleetRequests, "0"},
		{"data change: requests per observer", rows["data change"].PerObserverRequests, "500"},
		{"create: bytes per host", rows["create"].Bytes, "545 B"},
		{"reconnect: bytes per watched path", d.ReconnectBytesPerPath, "50 B"},
		{"reconnect: bytes at the scenario's size", d.ReconnectBytesAtScale, "293 KiB"},
		{"reconnect: setWatches and addWatch requests at the scenario's size", d.ReconnectAtScale, "1,003"},
		{"reconnect: an observer's restart", d.MemberRestart, "501,500"},
		{"resync at the scenario's size", d.ResyncAtScale, "6,001"},
		{"CPU per extra watcher", d.CPUPerWatcher, "20.0µs"},
		{"fleet CPU per change", d.FleetCPUPerChange, "200ms"},
		{"changes per second an observer core keeps up with", d.MaxChangeRate, "100"},
		{"reader rate", d.ReaderRate, "55,001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	if d.HaveChurn {
		t.Error("HaveChurn without churn measurements")
	}
}

func TestScalingMarkdown(t *testing.T) {
	text, err := newScaling(measuredCosts(), nil, nil).markdown(header{date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# Scaling zkdns: 10,000 hosts × 1,000 services",
		"Run on 2026-01-02 03:04 UTC",
		"**60,010,000** one-shot watch",
		"and 10,000,000 persistent ones",
		"| create | 2 × 10,000 = 20,000 | 1 × 10,000 = 10,000 |",
		"**20.0µs** of server CPU per change",
		"**10,000** for the fleet instead of",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("SCALING.md lacks %q", want)
		}
	}
	if strings.Contains(text, "<no value>") {
		t.Error("SCALING.md has a template field without a value")
	}
	if strings.Contains(text, "reads/s (target 3)") {
		t.Error("SCALING.md quotes the reader without a cold-sync measurement")
	}
}
