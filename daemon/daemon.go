// Package daemon wires zkdns together and owns its lifecycle: it binds the
// DNS listeners, starts the ZooKeeper watcher, turns each watcher update
// into a new DNS snapshot, and stops everything in order when its context
// ends.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"

	"golang.org/x/sync/errgroup"

	"github.com/zkdns/zkdns/conf"
	"github.com/zkdns/zkdns/dnsserver"
	"github.com/zkdns/zkdns/zkwatch"
)

// Options configures Run.
type Options struct {
	// Config is the validated configuration to run with. Required.
	Config *conf.Config
	// Logger receives the daemon's logs; nil discards.
	Logger *slog.Logger
}

// Run serves DNS from ZooKeeper until ctx ends, then shuts down and returns
// nil. It returns an error when it cannot start (a DNS address that cannot
// be bound) or a component fails. ZooKeeper being unreachable is not an
// error: DNS answers SERVFAIL in the zone until the first full sync.
func Run(ctx context.Context, opts Options) error {
	cfg := opts.Config
	if cfg == nil {
		return fmt.Errorf("daemon: no config given")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	listeners, err := dnsserver.Listen(cfg.DNS.Listen)
	if err != nil {
		return fmt.Errorf("daemon: bind DNS listeners: %w", err)
	}
	defer listeners.Close()
	for _, addr := range listeners.Addrs() {
		logger.Info("dns listening", "component", "dnsserver", "addr", addr, "proto", "udp+tcp")
	}

	handler := dnsserver.NewHandler(dnsserver.NewSnapshot(zoneOf(cfg, listeners.Addrs())))
	pub := &publisher{handler: handler, logger: logger}
	watcher, err := zkwatch.New(zkwatch.Options{
		Servers:        cfg.ZooKeeper.Servers,
		SessionTimeout: cfg.ZooKeeper.SessionTimeout.Duration,
		Root:           cfg.ZooKeeper.Root,
		Publish:        pub.publish,
		Logger:         logger,
	}, specOf(cfg))
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	logger.Info("zkdns starting", "zookeeper", cfg.ZooKeeper.Servers,
		"services", len(cfg.Services), "discover", len(cfg.Discover), "zone", cfg.DNS.Zone)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return dnsserver.Serve(gctx, listeners, handler) })
	g.Go(func() error { return watcher.Run(gctx) })
	err = g.Wait()
	logger.Info("zkdns stopped")
	return err
}

// publisher turns watcher updates into DNS snapshots. The watcher calls it
// from one goroutine, so load-modify-publish of the snapshot is race-free.
type publisher struct {
	handler *dnsserver.Handler
	logger  *slog.Logger
}

func (p *publisher) publish(u zkwatch.Update) {
	du := dnsserver.Update{Removed: u.Removed, Full: u.Full, Synced: u.Synced}
	for _, s := range u.Services {
		du.Services = append(du.Services, serviceOf(s))
	}
	p.handler.Publish(p.handler.Current().Apply(du))
	for _, name := range u.Removed {
		p.logger.Info("service removed", "service", name)
	}
}

// serviceOf keeps the healthy instances of a service, in the form DNS
// serves them.
func serviceOf(s zkwatch.ServiceState) dnsserver.Service {
	out := dnsserver.Service{Name: s.Name}
	for _, in := range s.Instances {
		if !in.Healthy {
			continue
		}
		out.Instances = append(out.Instances, dnsserver.Instance{
			ID:      in.ID,
			Address: in.Address,
			Port:    in.Port,
			Weight:  in.Weight,
			TXT:     txtOf(in),
		})
	}
	return out
}

// txtOf is an instance's TXT record: format and id first, then the
// format's metadata sorted by key.
func txtOf(in zkwatch.Instance) []string {
	txt := make([]string, 0, 2+len(in.Meta))
	txt = append(txt, "format="+in.Format, "id="+in.ID)
	keys := make([]string, 0, len(in.Meta))
	for k := range in.Meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		txt = append(txt, k+"="+in.Meta[k])
	}
	return txt
}

func zoneOf(cfg *conf.Config, bound []string) dnsserver.Zone {
	z := dnsserver.Zone{
		Origin:      cfg.DNS.Zone,
		TTL:         cfg.DNS.TTL.Duration,
		NegativeTTL: cfg.DNS.NegativeTTL.Duration,
	}
	for _, a := range bound {
		ap, err := netip.ParseAddrPort(a)
		if err != nil || ap.Addr().IsUnspecified() {
			continue
		}
		z.NSAddrs = append(z.NSAddrs, ap.Addr().Unmap())
	}
	return z
}

func specOf(cfg *conf.Config) zkwatch.Spec {
	var spec zkwatch.Spec
	for _, s := range cfg.Services {
		spec.Services = append(spec.Services, zkwatch.ServiceSpec{
			Name: s.Name, Path: s.Path, Format: s.Format, Endpoint: s.Endpoint,
		})
	}
	for _, d := range cfg.Discover {
		spec.Discover = append(spec.Discover, zkwatch.DiscoverSpec{
			Path: d.Path, Format: d.Format, Endpoint: d.Endpoint,
		})
	}
	return spec
}
