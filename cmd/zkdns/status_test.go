package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/zkdns/zkdns/daemon"
)

// TestPrintStatus holds each line zkdns status prints about a service to
// the reason it gives: a service with no instances says why, and znodes
// that are not served are counted by reason.
func TestPrintStatus(t *testing.T) {
	registered := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	up := daemon.InstanceInfo{ID: "a1", Address: "192.0.2.1", Port: 80, Weight: 100, Healthy: true, Registered: registered}
	const lost = "not ready: ZooKeeper unreachable for 12s (longer than the 10s session timeout); answering from the last known state"
	cases := []struct {
		name      string
		readiness string // what /readyz says; "" from a daemon that does not say
		service   daemon.ServiceInfo
		want      []string // lines after the header, with runs of spaces as one
		absent    []string
	}{
		{
			name:      "ready says nothing more",
			readiness: "ready",
			service:   daemon.ServiceInfo{Name: "alpha", Path: "/alpha", Exists: true, Instances: []daemon.InstanceInfo{up}},
			want:      []string{"alpha a1 192.0.2.1 80 100 true 2026-01-02T03:04:05Z"},
		},
		{
			name:      "ZooKeeper lost: the table is the last state, and a path not seen may just not be listed",
			readiness: lost,
			service:   daemon.ServiceInfo{Name: "gamma", Path: "/gamma"},
			want:      []string{"gamma (path /gamma not listed yet, or does not exist)"},
			absent:    []string{"does not exist yet"},
		},
		{
			name:    "serving",
			service: daemon.ServiceInfo{Name: "alpha", Path: "/alpha", Exists: true, Instances: []daemon.InstanceInfo{up}},
			want:    []string{"alpha a1 192.0.2.1 80 100 true 2026-01-02T03:04:05Z"},
		},
		{
			name:    "path missing",
			service: daemon.ServiceInfo{Name: "gamma", Path: "/gamma"},
			want:    []string{"gamma (path /gamma does not exist yet)"},
		},
		{
			name:    "no instances",
			service: daemon.ServiceInfo{Name: "beta", Path: "/beta", Exists: true},
			want:    []string{"beta (no instances)"},
		},
		{
			name:    "path refused by an ACL is not an empty service",
			service: daemon.ServiceInfo{Name: "delta", Path: "/delta", Exists: true, AccessDenied: true},
			want:    []string{"delta (ZooKeeper ACL denies zkdns reading path /delta)"},
			absent:  []string{"no instances"},
		},
		{
			name: "skipped znodes are counted by reason",
			service: daemon.ServiceInfo{Name: "alpha", Path: "/alpha", Exists: true, Invalid: 2, Denied: 1,
				Instances: []daemon.InstanceInfo{up}},
			want: []string{
				"alpha a1 192.0.2.1 80 100 true 2026-01-02T03:04:05Z",
				"alpha (2 znodes skipped: payload does not decode)",
				"alpha (1 znodes skipped: ZooKeeper ACL denies zkdns reading them)",
			},
		},
		{
			name:    "undecodable only",
			service: daemon.ServiceInfo{Name: "alpha", Path: "/alpha", Exists: true, Invalid: 1},
			want:    []string{"alpha (no instances)", "alpha (1 znodes skipped: payload does not decode)"},
			absent:  []string{"ACL"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			printStatus(&buf, &daemon.ServicesResponse{Services: []daemon.ServiceInfo{tc.service}, Readiness: tc.readiness})
			lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
			if tc.readiness != "" && tc.readiness != "ready" {
				if lines[0] != "zkdns "+tc.readiness {
					t.Errorf("first line %q, want the daemon's readiness", lines[0])
				}
				lines = lines[1:]
			}
			if !strings.HasPrefix(lines[0], "SERVICE") {
				t.Errorf("line %q, want the header", lines[0])
			}
			var got []string
			for _, l := range lines[1:] {
				got = append(got, strings.Join(strings.Fields(l), " "))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for _, a := range tc.absent {
				if strings.Contains(buf.String(), a) {
					t.Errorf("output says %q:\n%s", a, buf.String())
				}
			}
		})
	}
}

// TestPrintStatusSwitching: while a move to another ensemble waits for
// its first sync, zkdns status says so above the table, which is still
// the current ensemble's.
func TestPrintStatusSwitching(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var buf bytes.Buffer
	printStatus(&buf, &daemon.ServicesResponse{
		Readiness: "ready",
		Services:  []daemon.ServiceInfo{{Name: "alpha", Path: "/alpha", Exists: true}},
		Switching: &daemon.SwitchInfo{Servers: []string{"192.0.2.7:2181", "192.0.2.8:2181"}, Changed: []string{"zookeeper.servers", "zookeeper.tls"},
			Since: since, Connection: "no session yet"},
	})
	lines := strings.Split(buf.String(), "\n")
	const want = "zkdns is moving to ZooKeeper 192.0.2.7:2181,192.0.2.8:2181 (zookeeper.servers, zookeeper.tls changed) since 2026-01-02T03:04:05Z: " +
		"no session yet; the table is the current session's until the new one has synced"
	if lines[0] != want {
		t.Errorf("first line %q, want %q", lines[0], want)
	}
	if len(lines) < 2 || !strings.HasPrefix(lines[1], "SERVICE") {
		t.Errorf("the table does not follow:\n%s", buf.String())
	}
}
