package daemon

import (
	"math"
	"time"

	"github.com/zkdns/zkdns/conf"
	"github.com/zkdns/zkdns/zkwatch"
)

// warmupTick is how often the SRV weights of warming instances are
// recomputed: often enough that a ramp of a few seconds rises in steps.
const warmupTick = 250 * time.Millisecond

// warmups are the slow-start windows of the configured services and of
// the discover roots (a discovered service takes its root's window).
type warmups struct {
	services map[string]time.Duration // by service name
	roots    map[string]time.Duration // by discover path
}

func warmupsOf(cfg *conf.Config) warmups {
	w := warmups{services: map[string]time.Duration{}, roots: map[string]time.Duration{}}
	for _, s := range cfg.Services {
		if s.Warmup.Duration > 0 {
			w.services[s.Name] = s.Warmup.Duration
		}
	}
	for _, d := range cfg.Discover {
		if d.Warmup.Duration > 0 {
			w.roots[d.Path] = d.Warmup.Duration
		}
	}
	return w
}

// window is the warm-up window of a service; zero for none.
func (w warmups) window(s zkwatch.ServiceState) time.Duration {
	if s.DiscoveredBy != "" {
		return w.roots[s.DiscoveredBy]
	}
	return w.services[s.Name]
}

// servedWeight is the SRV weight of an instance registered at registered,
// at now: it rises with the instance's age from 1 to base over the window,
// so a new instance takes a growing share of traffic instead of a full
// share the moment it registers.
func servedWeight(base uint16, registered time.Time, window time.Duration, now time.Time) uint16 {
	age := now.Sub(registered)
	if window <= 0 || age >= window {
		return base
	}
	age = max(age, 0) // a registration clock ahead of ours counts as just now
	return uint16(max(1, math.Round(float64(base)*float64(age)/float64(window))))
}

// warming reports whether any healthy instance of s is inside its window.
func warming(s zkwatch.ServiceState, window time.Duration, now time.Time) bool {
	if window <= 0 {
		return false
	}
	for _, in := range s.Instances {
		if in.Healthy && now.Sub(in.Registered) < window {
			return true
		}
	}
	return false
}
