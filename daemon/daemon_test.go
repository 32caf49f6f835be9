package daemon

import (
	"reflect"
	"testing"
	"time"

	"github.com/zkdns/zkdns/dnsserver"
	"github.com/zkdns/zkdns/zkwatch"
)

func TestServiceOf(t *testing.T) {
	cases := []struct {
		name string
		in   zkwatch.ServiceState
		want dnsserver.Service
	}{
		{
			name: "unhealthy instances are not served",
			in: zkwatch.ServiceState{
				ServiceSpec: zkwatch.ServiceSpec{Name: "payments"},
				Instances: []zkwatch.Instance{
					{ID: "up", Format: "serverset", Address: "192.0.2.1", Port: 80, Weight: 100, Healthy: true},
					{ID: "stopping", Format: "serverset", Address: "192.0.2.2", Port: 80, Weight: 100},
				},
			},
			want: dnsserver.Service{Name: "payments", Instances: []dnsserver.Instance{
				{ID: "up", Address: "192.0.2.1", Port: 80, Weight: 100, TXT: []string{"format=serverset", "id=up"}},
			}},
		},
		{
			name: "metadata follows format and id, sorted by key",
			in: zkwatch.ServiceState{
				ServiceSpec: zkwatch.ServiceSpec{Name: "orders"},
				Instances: []zkwatch.Instance{{
					ID: "o1", Format: "curator", Address: "2001:db8::1", Port: 9000, Weight: 7, Healthy: true,
					Meta: map[string]string{"zone": "b", "az": "1", "instance_status": "UP"},
				}},
			},
			want: dnsserver.Service{Name: "orders", Instances: []dnsserver.Instance{{
				ID: "o1", Address: "2001:db8::1", Port: 9000, Weight: 7,
				TXT: []string{"format=curator", "id=o1", "az=1", "instance_status=UP", "zone=b"},
			}}},
		},
		{
			name: "no instances stays an existing, empty service",
			in:   zkwatch.ServiceState{ServiceSpec: zkwatch.ServiceSpec{Name: "empty"}},
			want: dnsserver.Service{Name: "empty"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := serviceAt(tc.in, 0, time.Now()); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("serviceOf() = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestServedWeight(t *testing.T) {
	registered := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		base   uint16
		age    time.Duration
		window time.Duration
		want   uint16
	}{
		{"no window serves the base", 100, 0, 0, 100},
		{"just registered gets 1", 100, 0, 10 * time.Second, 1},
		{"a quarter in", 100, 2500 * time.Millisecond, 10 * time.Second, 25},
		{"half way", 100, 5 * time.Second, 10 * time.Second, 50},
		{"rounds to nearest", 3, 5 * time.Second, 10 * time.Second, 2},
		{"never below 1", 10, 10 * time.Millisecond, 10 * time.Second, 1},
		{"window over", 100, 10 * time.Second, 10 * time.Second, 100},
		{"long after", 40, time.Hour, 10 * time.Second, 40},
		{"registration clock ahead of ours", 100, -5 * time.Second, 10 * time.Second, 1},
		{"largest base", 65535, 5 * time.Second, 10 * time.Second, 32768},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := servedWeight(tc.base, registered, tc.window, registered.Add(tc.age)); got != tc.want {
				t.Errorf("servedWeight(base %d, age %s, window %s) = %d, want %d", tc.base, tc.age, tc.window, got, tc.want)
			}
		})
	}
}

func TestWarmupWindows(t *testing.T) {
	w := warmups{
		services: map[string]time.Duration{"payments": 30 * time.Second},
		roots:    map[string]time.Duration{"/services": 10 * time.Second},
	}
	cases := []struct {
		name  string
		state zkwatch.ServiceState
		want  time.Duration
	}{
		{"configured service", zkwatch.ServiceState{ServiceSpec: zkwatch.ServiceSpec{Name: "payments"}}, 30 * time.Second},
		{"discovered service takes its root's", zkwatch.ServiceState{ServiceSpec: zkwatch.ServiceSpec{Name: "orders"}, DiscoveredBy: "/services"}, 10 * time.Second},
		{"no window", zkwatch.ServiceState{ServiceSpec: zkwatch.ServiceSpec{Name: "search"}}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := w.window(tc.state); got != tc.want {
				t.Errorf("window = %s, want %s", got, tc.want)
			}
		})
	}
}
