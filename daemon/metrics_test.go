package daemon

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkdns/zkdns/zkwatch"
)

func TestServiceInstancesMetric(t *testing.T) {
	state := func(name string, health ...bool) zkwatch.ServiceState {
		s := zkwatch.ServiceState{ServiceSpec: zkwatch.ServiceSpec{Name: name}}
		for _, h := range health {
			s.Instances = append(s.Instances, zkwatch.Instance{Healthy: h})
		}
		return s
	}
	tests := []struct {
		name string
		act  func(m *metrics)
		want string // exposition lines, without HELP and TYPE
	}{
		{
			name: "counts by health",
			act: func(m *metrics) {
				m.setInstances(state("payments", true, true, false))
				m.setInstances(state("empty"))
			},
			want: `zkdns_service_instances{health="healthy",service="empty"} 0
zkdns_service_instances{health="healthy",service="payments"} 2
zkdns_service_instances{health="unhealthy",service="empty"} 0
zkdns_service_instances{health="unhealthy",service="payments"} 1
`,
		},
		{
			name: "a later state replaces the counts",
			act: func(m *metrics) {
				m.setInstances(state("payments", true, true, false))
				m.setInstances(state("payments", false))
			},
			want: `zkdns_service_instances{health="healthy",service="payments"} 0
zkdns_service_instances{health="unhealthy",service="payments"} 1
`,
		},
		{
			name: "a forgotten service has no series",
			act: func(m *metrics) {
				m.setInstances(state("payments", true))
				m.setInstances(state("orders", true))
				m.forgetService("payments")
				m.forgetService("never-seen")
			},
			want: `zkdns_service_instances{health="healthy",service="orders"} 1
zkdns_service_instances{health="unhealthy",service="orders"} 0
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := newMetrics(reg, "test", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.act(m)
			families, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range families {
				if f.GetName() != "zkdns_service_instances" {
					continue
				}
				for _, s := range f.GetMetric() {
					labels := map[string]string{}
					for _, l := range s.GetLabel() {
						labels[l.GetName()] = l.GetValue()
					}
					got = append(got, fmt.Sprintf(`zkdns_service_instances{health=%q,service=%q} %v`,
						labels["health"], labels["service"], s.GetGauge().GetValue()))
				}
			}
			slices.Sort(got)
			if g := strings.Join(got, "\n") + "\n"; g != tc.want {
				t.Errorf("series:\n%s\nwant:\n%s", g, tc.want)
			}
		})
	}
}

// TestPublishBuckets holds the event-to-publish histograms to the
// resolution their targets need: bounds at 200 µs and 500 µs, and no
// bucket between 50 µs and a millisecond wider than half again its lower
// bound, so a quantile read from them is off by a third at most.
func TestPublishBuckets(t *testing.T) {
	b := publishBuckets()
	for _, want := range []float64{200e-6, 500e-6, 1e-3} {
		if !slices.Contains(b, want) {
			t.Errorf("no bucket bound at %gs: %v", want, b)
		}
	}
	for i := 1; i < len(b); i++ {
		if b[i] <= b[i-1] {
			t.Fatalf("bounds not increasing at %d: %v", i, b)
		}
		if b[i-1] >= 50e-6 && b[i] <= 1e-3 && b[i]/b[i-1] > 1.5 {
			t.Errorf("bucket %gs–%gs is too wide below a millisecond", b[i-1], b[i])
		}
	}
	if b[0] > 25e-6 || b[len(b)-1] < 1 {
		t.Errorf("bounds %gs … %gs do not span 25µs to 1s", b[0], b[len(b)-1])
	}
}
