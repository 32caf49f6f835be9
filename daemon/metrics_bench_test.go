package daemon

import (
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/zkdns/zkdns/zkwatch"
)

// BenchmarkMetricsScrape is one /metrics scrape of a daemon watching
// 10,000 services: zkdns_service_instances alone is 20,000 series, which
// the Prometheus registry validates, sorts and formats on every scrape.
func BenchmarkMetricsScrape(b *testing.B) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg, "bench", nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		s := zkwatch.ServiceState{ServiceSpec: zkwatch.ServiceSpec{Name: fmt.Sprintf("svc%d", i)}}
		for range 10 {
			s.Instances = append(s.Instances, zkwatch.Instance{Healthy: true})
		}
		m.setInstances(s)
	}
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 || rec.Body.Len() == 0 {
			b.Fatalf("scrape: status %d, %d bytes", rec.Code, rec.Body.Len())
		}
	}
}
