package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zkdns/zkdns/dnsserver"
	"github.com/zkdns/zkdns/zkwatch"
)

// BenchmarkPublishOne is make bench's republish case in process, through
// the publisher: one instance of a 10-instance service moves, in a table
// of 10,000 such services, and the update is applied as the watcher
// hands it over (snapshot, admin view, metrics and membership log).
func BenchmarkPublishOne(b *testing.B) {
	m, err := newMetrics(prometheus.NewRegistry(), "bench", nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	h := dnsserver.NewHandler(dnsserver.NewSnapshot(dnsserver.Zone{Origin: "local.", TTL: 5 * time.Second, NegativeTTL: time.Second}), nil)
	// Info level, as zkdns runs by default, so the membership lines are
	// worked out as they would be; they go nowhere.
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p := newPublisher(h, logger, m, warmups{})
	full := zkwatch.Update{Full: true, Synced: true}
	for i := range 10000 {
		s := zkwatch.ServiceState{ServiceSpec: zkwatch.ServiceSpec{Name: fmt.Sprintf("svc%d", i), Path: fmt.Sprintf("/bench/svc%d", i)}}
		for j := range 10 {
			s.Instances = append(s.Instances, zkwatch.Instance{
				ID: fmt.Sprintf("inst%d", j), Format: "curator", Address: fmt.Sprintf("10.%d.%d.%d", i/256, i%256, j+1),
				Port: 8080, Weight: zkwatch.DefaultWeight, Healthy: true,
			})
		}
		full.Services = append(full.Services, s)
	}
	p.apply(p.current(), full)
	one := full.Services[777]
	b.ReportAllocs()
	for k := 0; b.Loop(); k++ {
		one.Instances = append([]zkwatch.Instance(nil), one.Instances...)
		one.Instances[3].Port = uint16(20000 + k%1000)
		p.apply(p.current(), zkwatch.Update{Services: []zkwatch.ServiceState{one}, EventTime: time.Now(), ReadTime: time.Now()})
	}
}
