// Package daemon wires zkdns together and owns its lifecycle: it binds the
// DNS and admin listeners, runs the ZooKeeper watcher, turns each watcher
// update into a new DNS snapshot, applies config changes as differences,
// tells systemd the truth about its state, and stops everything in order
// when its context ends.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/zkdns/zkdns/conf"
	"github.com/zkdns/zkdns/dnsserver"
	"github.com/zkdns/zkdns/zkwatch"
)

// Options configures Run.
type Options struct {
	// Config is the validated configuration to start with. Required.
	Config *conf.Config
	// ConfigPath, when set, is watched: a valid change is applied as a
	// difference, an invalid one is logged and the running config kept.
	ConfigPath string
	// Reload, when set, makes each receive re-read ConfigPath (SIGHUP).
	Reload <-chan struct{}
	// Logger receives the daemon's logs; nil discards.
	Logger *slog.Logger
	// LogLevel, when set, follows [log].level across reloads.
	LogLevel *slog.LevelVar
	// Version is reported in zkdns_build_info.
	Version string
	// Registry receives every metric; nil means a new registry.
	Registry *prometheus.Registry
	// ReloadRetry is how often a valid config that could not be applied
	// (an address that cannot be bound, a credentials or certificate file
	// that cannot be read) is tried again, until it applies or the file
	// changes; zero means 5s.
	ReloadRetry time.Duration
}

// defaultReloadRetry is Options.ReloadRetry's default. What refuses such
// a reload is outside the config file and is often fixed a moment later
// (config management writes the credentials file after the config, a
// floating address comes up), and nothing else would make zkdns look
// again: the config file no longer changes.
const defaultReloadRetry = 5 * time.Second

// stopTimeout bounds each component's shutdown; the whole stop takes at
// most a few of these.
const stopTimeout = 5 * time.Second

// Run serves DNS from ZooKeeper until ctx ends, then shuts down in order
// (stop answering after the queries in flight, stop the admin server,
// close the ZooKeeper session) and returns nil. It returns an error when
// it cannot start (an address that cannot be bound) or a component fails
// on its own. ZooKeeper being unreachable is not an error: DNS answers
// SERVFAIL in the zone until the first full sync.
func Run(ctx context.Context, opts Options) error {
	d, err := newDaemon(opts)
	if err != nil {
		return err
	}
	return d.run(ctx)
}

type daemon struct {
	opts    Options
	logger  *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics

	dnsMetrics *dnsserver.Metrics
	zkMetrics  *zkwatch.Metrics
	handler    *dnsserver.Handler
	pub        *publisher
	notifier   notifier

	// Owned by the run loop goroutine.
	cfg     *conf.Config
	dns     *task
	admin   *task
	watch   *watchRun // the watcher whose updates are served
	next    *watchRun // a replacement for a new ensemble, until it has synced
	failed  chan error
	changes chan conf.Change
	// refused is a valid config that could not be applied, tried again
	// when retry fires; nil when there is none. refusedErr is why, as
	// last logged.
	refused    *conf.Config
	refusedErr string
	retry      *time.Timer
	// needsRestart is set while the config saved last cannot apply
	// without a restart (see restartError).
	needsRestart bool
	// reread asks the config watcher to read the file at once (SIGHUP);
	// nil when no config file is watched.
	reread chan struct{}

	// pprof is [admin] pprof, which the admin server's handlers read.
	pprof atomic.Bool
	// served is pub once run has made it, for readers outside the run
	// loop that may come earlier (a scrape of a registry the caller owns).
	served atomic.Pointer[publisher]
}

// zooKeeperConnected reports whether the watcher whose updates are served
// has its ZooKeeper session.
func (d *daemon) zooKeeperConnected() bool {
	p := d.served.Load()
	if p == nil {
		return false
	}
	st, _, ok := p.servedStatus()
	return ok && st.State == zk.StateHasSession
}

func (d *daemon) ensembleSwitchPending() bool {
	p := d.served.Load()
	if p == nil {
		return false
	}
	_, pending := p.switching()
	return pending
}

func newDaemon(opts Options) (*daemon, error) {
	if opts.Config == nil {
		return nil, errors.New("daemon: no config given")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	d := &daemon{
		opts:    opts,
		logger:  logger,
		reg:     reg,
		cfg:     opts.Config,
		failed:  make(chan error, 4),
		changes: make(chan conf.Change),
		retry:   time.NewTimer(0),
	}
	d.retry.Stop() // armed when a reload is refused
	if d.opts.ReloadRetry <= 0 {
		d.opts.ReloadRetry = defaultReloadRetry
	}
	var err error
	if d.metrics, err = newMetrics(reg, opts.Version, d.zooKeeperConnected, d.ensembleSwitchPending); err != nil {
		return nil, err
	}
	if d.dnsMetrics, err = dnsserver.NewMetrics(reg); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if d.zkMetrics, err = zkwatch.NewMetrics(reg); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return d, nil
}

func (d *daemon) run(ctx context.Context) error {
	cfg := d.cfg
	d.setLogLevel(cfg)
	// Bind everything first: a wrong address fails the start at once.
	listeners, err := dnsserver.Listen(cfg.DNS.Listen)
	if err != nil {
		return fmt.Errorf("daemon: bind DNS listeners: %w", err)
	}
	adminLn, err := listenAdmin(cfg.Admin.Listen)
	if err != nil {
		listeners.Close()
		// zkdns check refuses an admin address that is a DNS address,
		// but not one it cannot resolve.
		if holder, _, own := ownSocket(err, listeners.Addrs(), nil); own {
			err = fmt.Errorf("%w (zkdns itself has just bound this port %s; give the admin API a port of its own)", err, holder)
		}
		return err
	}

	d.handler = dnsserver.NewHandler(dnsserver.NewSnapshot(zoneOf(cfg, listeners.Addrs())), d.dnsMetrics)
	if err := d.handler.SetPolicy(policyOf(cfg)); err != nil {
		listeners.Close()
		if adminLn != nil {
			adminLn.Close()
		}
		return fmt.Errorf("daemon: %w", err)
	}
	d.pub = newPublisher(d.handler, d.logger, d.metrics, warmupsOf(cfg))
	d.served.Store(d.pub)
	d.pprof.Store(cfg.Admin.Pprof)
	d.dns = d.startDNS(ctx, listeners)
	if adminLn != nil {
		d.admin = d.startAdmin(ctx, adminLn)
	}
	w, err := d.newWatcher(cfg, d.pub.current())
	if err != nil {
		d.stopAll()
		return err
	}
	d.pub.setServed(w.gen, w.watched(nil))
	d.watch = d.start(ctx, w)
	var configWatch *task
	if d.opts.ConfigPath != "" {
		d.reread = make(chan struct{}, 1)
		configWatch = d.startTask(ctx, "config watcher", func(ctx context.Context) error {
			// Loaded: an edit made while zkdns was starting is applied too.
			opts := conf.WatchOptions{Logger: d.logger, Loaded: d.opts.Config, Reread: d.reread}
			return conf.Watch(ctx, d.opts.ConfigPath, opts, func(c conf.Change) {
				select {
				case d.changes <- c:
				case <-ctx.Done():
				}
			})
		})
	}
	d.logger.Info("zkdns starting", "version", d.opts.Version, "zookeeper", cfg.ZooKeeper.Servers,
		"services", len(cfg.Services), "discover", len(cfg.Discover), "zone", cfg.DNS.Zone)

	err = d.loop(ctx)
	d.notifier.notify("STOPPING=1", "STATUS=stopping")
	if configWatch != nil {
		configWatch.stop()
	}
	d.stopAll()
	d.logger.Info("zkdns stopped")
	return err
}

// loop is the daemon's main loop: readiness, reloads, the watchdog and
// status line, and components failing. It returns nil when ctx ends.
func (d *daemon) loop(ctx context.Context) error {
	watchdog := d.notifier.watchdogInterval()
	var watchdogTick <-chan time.Time
	if watchdog > 0 {
		t := time.NewTicker(watchdog / 2)
		defer t.Stop()
		watchdogTick = t.C
	}
	status := time.NewTicker(2 * time.Second)
	defer status.Stop()
	// The warm-up timer runs only while a service warms (see
	// publisher.warming); warmC is nil otherwise.
	warm := time.NewTimer(warmupTick)
	warm.Stop()
	defer warm.Stop()
	var warmC <-chan time.Time
	lastStatus := ""
	readyC := d.pub.readyC() // closed once; nil after it is seen
	sendStatus := func() {
		if s := d.statusLine(); s != lastStatus {
			lastStatus = s
			d.notifier.notify("STATUS=" + s)
		}
	}
	sendStatus()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-d.failed:
			return err
		case <-readyC:
			readyC = nil
			d.notifier.notify("READY=1")
			d.logger.Info("ready: first full sync from ZooKeeper done; answering from it")
			sendStatus()
		case <-d.pub.switchedC():
			d.finishSwitch()
			sendStatus()
		case c := <-d.changes:
			d.reload(ctx, c)
			sendStatus()
		case <-d.retry.C:
			d.retryReload(ctx)
			sendStatus()
		case <-d.opts.Reload:
			d.logger.Info("reload requested (SIGHUP)")
			if d.reread != nil {
				// The config watcher reads the file now and hands it
				// over as a change, changed or not. Read here instead,
				// content it never saw could be applied behind its back,
				// and a save back to what it saw last would then go
				// unapplied.
				select {
				case d.reread <- struct{}{}:
				default: // one is waiting already
				}
				continue
			}
			cfg, err := conf.Load(d.opts.ConfigPath)
			d.reload(ctx, conf.Change{Config: cfg, Err: err})
			sendStatus()
		case <-watchdogTick:
			// The loop being here is the liveness that counts: a wedged
			// daemon stops pinging and systemd restarts it.
			d.notifier.notify("WATCHDOG=1")
		case <-status.C:
			sendStatus()
		case <-d.pub.warmingC():
			if warmC == nil {
				warm.Reset(warmupTick)
				warmC = warm.C
			}
		case <-warmC:
			if d.pub.rewarm() {
				warm.Reset(warmupTick)
			} else {
				warmC = nil
			}
		}
	}
}

// reload applies a config change as a difference, or keeps the running
// config when the change is not usable.
func (d *daemon) reload(ctx context.Context, c conf.Change) {
	// Whatever the file holds now replaces a refused config waiting to
	// be tried again.
	d.refused = nil
	d.needsRestart = false
	d.retry.Stop()
	if c.Err != nil {
		d.metrics.reloadFailed()
		d.logger.Error("config not reloaded; keeping the running config", "file", d.opts.ConfigPath, "err", conf.OneLine(c.Err))
		return
	}
	d.notifier.notify("RELOADING=1")
	err := d.apply(ctx, c.Config)
	if d.pub.isReady() {
		d.notifier.notify("READY=1")
	}
	if err != nil {
		d.metrics.reloadFailed()
		msg := conf.OneLine(err).Error()
		if errors.As(err, new(*restartError)) {
			d.needsRestart = true
			d.logger.Error("config not reloaded: it needs a restart; keeping the running config", "file", d.opts.ConfigPath, "err", msg)
			return
		}
		d.logger.Error("config not reloaded; keeping the running config and trying it again until it applies or the file changes",
			"file", d.opts.ConfigPath, "retry_every", d.opts.ReloadRetry, "err", msg)
		d.refused, d.refusedErr = c.Config, msg
		d.retry.Reset(d.opts.ReloadRetry)
		return
	}
	d.metrics.reloadSucceeded()
}

// retryReload tries the refused config again. A failure for the reason
// already logged is logged at debug level only, so a cause that takes
// hours to fix costs one error line, not one every few seconds; a new
// reason is an error again, and counted as a failed reload.
func (d *daemon) retryReload(ctx context.Context) {
	next := d.refused
	if next == nil {
		return
	}
	err := d.apply(ctx, next)
	if err == nil {
		d.refused = nil
		d.metrics.reloadSucceeded()
		d.logger.Info("config reloaded: what refused it is fixed", "file", d.opts.ConfigPath, "was", d.refusedErr)
		return
	}
	if errors.As(err, new(*restartError)) {
		// Seen only now that what refused it before is fixed.
		d.refused, d.needsRestart = nil, true
		d.metrics.reloadFailed()
		d.logger.Error("config still not reloaded, and now it needs a restart; keeping the running config and no longer trying it",
			"file", d.opts.ConfigPath, "err", conf.OneLine(err).Error())
		return
	}
	if msg := conf.OneLine(err).Error(); msg != d.refusedErr {
		d.metrics.reloadFailed()
		d.logger.Error("config still not reloaded, now for another reason; keeping the running config and trying it again",
			"file", d.opts.ConfigPath, "retry_every", d.opts.ReloadRetry, "err", msg)
		d.refusedErr = msg
	} else {
		d.logger.Debug("config still not reloaded", "file", d.opts.ConfigPath, "err", msg)
	}
	d.retry.Reset(d.opts.ReloadRetry)
}

// apply moves the daemon from d.cfg to next, touching only what differs.
// Everything that can fail (binding new addresses, reading the new
// ensemble's credentials and certificates) happens before anything
// changes, so a failure leaves the running config whole: a reload once
// its cause is fixed (retryReload, or SIGHUP) finds the whole change
// still to apply.
func (d *daemon) apply(ctx context.Context, next *conf.Config) error {
	prev := d.cfg
	var (
		newDNS   *dnsserver.Listeners
		newAdmin net.Listener
		newWatch *watchRun
	)
	undo := func(err error) error {
		if newDNS != nil {
			newDNS.Close()
		}
		if newAdmin != nil {
			newAdmin.Close()
		}
		return err
	}
	if !slices.Equal(prev.DNS.Listen, next.DNS.Listen) {
		// Addresses kept from the running config keep their sockets.
		ls, err := d.dns.listeners.Relisten(next.DNS.Listen)
		if err != nil {
			return d.ownPort(fmt.Errorf("bind new DNS listeners: %w", err), true)
		}
		newDNS = ls
	}
	adminChanged := prev.Admin.Listen != next.Admin.Listen
	if adminChanged && next.Admin.Listen != "" {
		ln, err := listenAdmin(next.Admin.Listen)
		if err != nil {
			return undo(d.ownPort(err, false))
		}
		newAdmin = ln
	}
	zkChanged := !sameZooKeeper(prev.ZooKeeper, next.ZooKeeper)
	if zkChanged {
		// Built, not started: nothing of it runs until the commit below.
		w, err := d.newWatcher(next, d.pub.reserveGen())
		if err != nil {
			return undo(err)
		}
		newWatch = w
	}
	if err := d.handler.SetPolicy(policyOf(next)); err != nil {
		return undo(err)
	}

	// Nothing below fails.
	d.cfg = next
	d.setLogLevel(next)
	d.pub.setWarmups(warmupsOf(next))
	// The logger was made for the config zkdns started with, and stays;
	// a format set back to that one needs no restart.
	if running := d.opts.Config.Log.Format; next.Log.Format != prev.Log.Format && next.Log.Format != running {
		d.logger.Warn("log.format changes take effect at the next restart", "running", running, "configured", next.Log.Format)
	}
	if newDNS != nil {
		// The new sockets serve before the old ones close: no gap.
		old := d.dns
		d.dns = d.startDNS(ctx, newDNS)
		old.stop()
	}
	if adminChanged {
		if d.admin != nil {
			d.admin.stop()
			d.admin = nil
		}
		if newAdmin != nil {
			d.admin = d.startAdmin(ctx, newAdmin)
		}
	}
	if prev.Admin.Pprof != next.Admin.Pprof {
		d.pprof.Store(next.Admin.Pprof)
	}
	addrs := d.dnsAddrs()
	if zone := zoneOf(next, addrs); !sameZone(zone, zoneOf(prev, addrs)) || newDNS != nil {
		d.pub.setZone(zone)
	}
	if zkChanged {
		if !d.callOffSwitch(next) {
			d.switchEnsemble(ctx, newWatch)
		}
	} else if spec := specOf(next); !sameSpec(spec, specOf(prev)) {
		d.watch.watcher.SetSpec(spec)
		if d.next != nil {
			d.next.watcher.SetSpec(spec)
		}
	}
	// What the file changed, not what had to be redone for it: a key
	// applied in place (log.level, dns.allow, a warm-up) is named too.
	d.logger.Info("config reloaded", "changed", conf.Changed(prev, next),
		"services", len(next.Services), "discover", len(next.Discover))
	return nil
}

// switchEnsemble starts w, a watcher on the new [zookeeper] settings. The
// running one keeps serving until w has synced; then w's full state
// replaces the old in one swap.
func (d *daemon) switchEnsemble(ctx context.Context, w *watchRun) {
	// From beginSwitch on, an earlier replacement can no longer take
	// over; it may have done so already, without the run loop having
	// heard: then it is what DNS serves, and it becomes the running
	// watcher instead of being stopped as an unfinished one.
	served := d.pub.beginSwitch(w.gen, w.watched(&d.watch.zk))
	if d.next != nil {
		if served == d.next.gen {
			d.retire()
		} else {
			d.next.stop()
			d.next = nil
		}
	}
	d.next = d.start(ctx, w)
	d.logger.Info("moving to a new ZooKeeper ensemble; serving from the current one until it has synced",
		"zookeeper", w.zk.Servers)
}

// callOffSwitch abandons the switch under way when next names the
// [zookeeper] settings of the session served, and reports whether it did.
// Reverting a change that could not take over (a mistyped server address,
// a wrong CA) then leaves zkdns on the session it never left, instead of
// opening a third one to the same ensemble and serving the old one until
// that has synced. A replacement that has taken over already is not
// called off: moving back is then a switch like any other.
func (d *daemon) callOffSwitch(next *conf.Config) bool {
	if d.next == nil || !sameZooKeeper(d.watch.zk, next.ZooKeeper) || !d.pub.cancelSwitch(d.next.gen) {
		return false
	}
	d.next.stop()
	d.next = nil
	// Spec changes made while the switch waited went to both watchers;
	// the one that started it may have changed the spec too.
	d.watch.watcher.SetSpec(specOf(next))
	d.logger.Info("move to new ZooKeeper settings called off: the config names those of the session served again",
		"zookeeper", d.watch.zk.Servers)
	return true
}

// finishSwitch retires the old watcher once the replacement has taken
// over; until then it does nothing.
func (d *daemon) finishSwitch() {
	if d.next == nil || d.pub.current() != d.next.gen {
		return
	}
	d.retire()
}

// retire makes the replacement, which has taken over, the running
// watcher, and stops the one it replaced.
func (d *daemon) retire() {
	old := d.watch
	d.watch, d.next = d.next, nil
	old.stop()
	d.logger.Info("now serving from the new ZooKeeper ensemble", "zookeeper", d.watch.zk.Servers)
}

func (d *daemon) stopAll() {
	// Stop answering first (queries in flight finish), then the rest.
	if d.dns != nil {
		d.dns.stop()
	}
	if d.admin != nil {
		d.admin.stop()
	}
	if d.next != nil {
		d.next.stop()
	}
	if d.watch != nil {
		d.watch.stop() // closes the ZooKeeper session
	}
}

func (d *daemon) setLogLevel(cfg *conf.Config) {
	if d.opts.LogLevel == nil {
		return
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err == nil {
		d.opts.LogLevel.Set(level)
	}
}

// startDNS serves ls, logging the addresses that were not served
// before: all of them at start; on a reload, those not kept from the
// running config.
func (d *daemon) startDNS(ctx context.Context, ls *dnsserver.Listeners) *task {
	before, after := d.dnsAddrs(), ls.Addrs()
	for _, addr := range after {
		if !slices.Contains(before, addr) {
			d.logger.Info("dns listening", "component", "dnsserver", "addr", addr, "proto", "udp+tcp")
		}
	}
	for _, addr := range before {
		if !slices.Contains(after, addr) {
			d.logger.Info("dns no longer listening", "component", "dnsserver", "addr", addr)
		}
	}
	t := d.startTask(ctx, "dns server", func(ctx context.Context) error {
		return dnsserver.Serve(ctx, ls, d.handler, dnsserver.ServeOptions{})
	})
	t.listeners = ls
	return t
}

// dnsAddrs are the addresses the served DNS sockets are bound to.
func (d *daemon) dnsAddrs() []string {
	if d.dns == nil {
		return nil
	}
	return d.dns.listeners.Addrs()
}

// watchRun is one watcher and the generation of updates it publishes.
type watchRun struct {
	*task
	watcher *zkwatch.Watcher
	gen     int
	zk      conf.ZooKeeper // the settings it was built from
}

// watched is what the publisher keeps of w for readiness and status;
// from is the [zookeeper] section of the watcher w replaces, if any.
func (w *watchRun) watched(from *conf.ZooKeeper) watched {
	out := watched{watcher: w.watcher, sessionTimeout: w.zk.SessionTimeout.Duration, servers: w.zk.Servers}
	if from != nil {
		for _, key := range conf.Changed(&conf.Config{ZooKeeper: *from}, &conf.Config{ZooKeeper: w.zk}) {
			if strings.HasPrefix(key, "zookeeper.") {
				out.changed = append(out.changed, key)
			}
		}
	}
	return out
}

// newWatcher builds, without starting, the watcher of generation gen for
// cfg's [zookeeper] settings and services.
func (d *daemon) newWatcher(cfg *conf.Config, gen int) (*watchRun, error) {
	// Read at start and when a reload changes [zookeeper]; a file whose
	// content changes in place is not re-read (see README).
	// cfg.LoadSecurity, not cfg.ZooKeeper's: its errors name file:line,
	// one per problem.
	sec, err := cfg.LoadSecurity()
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	w, err := zkwatch.New(zkwatch.Options{
		Servers:        cfg.ZooKeeper.Servers,
		SessionTimeout: cfg.ZooKeeper.SessionTimeout.Duration,
		Root:           cfg.ZooKeeper.Root,
		Auth:           zkwatch.Auth{Scheme: sec.AuthScheme, Credentials: sec.Credentials},
		TLS:            sec.TLS,
		Publish:        d.pub.publisherFor(gen),
		Logger:         d.logger,
		Metrics:        d.zkMetrics,
	}, specOf(cfg))
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return &watchRun{watcher: w, gen: gen, zk: cfg.ZooKeeper}, nil
}

// start runs w's watcher until w is stopped.
func (d *daemon) start(ctx context.Context, w *watchRun) *watchRun {
	w.task = d.startTask(ctx, "zookeeper watcher", w.watcher.Run)
	return w
}

// task is a component goroutine that the daemon can stop on its own, to
// replace it on reload, or all together at shutdown.
type task struct {
	name      string
	cancel    context.CancelFunc
	done      chan struct{}
	logger    *slog.Logger
	listeners *dnsserver.Listeners // for DNS tasks: the sockets served
	addr      net.Addr             // for the admin task: the address served
}

// startTask runs f until its context ends. If f returns an error while
// it was not being stopped, the error goes to d.failed and the daemon
// exits.
func (d *daemon) startTask(parent context.Context, name string, f func(context.Context) error) *task {
	ctx, cancel := context.WithCancel(parent)
	t := &task{name: name, cancel: cancel, done: make(chan struct{}), logger: d.logger}
	go func() {
		defer close(t.done)
		err := f(ctx)
		if err != nil && ctx.Err() == nil {
			select {
			case d.failed <- fmt.Errorf("%s: %w", name, err):
			default:
			}
		}
	}()
	return t
}

// stop cancels the task and waits for it, at most stopTimeout. A task
// still running then is left behind, and said so: a reload or shutdown
// must not hang on one component, but whoever reads the logs should know
// that something of the old config may still be running.
func (t *task) stop() {
	t.cancel()
	select {
	case <-t.done:
	case <-time.After(stopTimeout):
		t.logger.Warn("component did not stop in time; leaving it running", "component", t.name, "waited", stopTimeout)
	}
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

// policyOf is whom DNS answers and where names outside the zone go.
func policyOf(cfg *conf.Config) dnsserver.Policy {
	return dnsserver.Policy{Allow: cfg.DNS.Allow, Upstreams: cfg.DNS.Upstreams}
}

func sameZone(a, b dnsserver.Zone) bool {
	return a.Origin == b.Origin && a.TTL == b.TTL && a.NegativeTTL == b.NegativeTTL && slices.Equal(a.NSAddrs, b.NSAddrs)
}

func sameZooKeeper(a, b conf.ZooKeeper) bool {
	return slices.Equal(a.Servers, b.Servers) && a.SessionTimeout == b.SessionTimeout && a.Root == b.Root &&
		equalPtr(a.Auth, b.Auth) && equalPtr(a.TLS, b.TLS)
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
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

func sameSpec(a, b zkwatch.Spec) bool {
	return slices.Equal(a.Services, b.Services) && slices.Equal(a.Discover, b.Discover)
}

// restartError is a reload that cannot apply while zkdns runs: an
// address it asks for is taken by one of zkdns's own sockets, which a
// reload lets go of only once the sockets replacing them serve, so that
// no query or request is refused on the way. Moving an address between
// a wildcard and a specific one on the same port, or swapping the DNS
// and admin ports, is such a change: trying it again cannot succeed,
// and a restart binds the new addresses from nothing.
type restartError struct{ err error }

func (e *restartError) Error() string { return e.err.Error() }
func (e *restartError) Unwrap() error { return e.err }

// ownPort returns err, a failed bind of a reload, as a *restartError
// when the address is taken by one of zkdns's served sockets, and
// unchanged otherwise. dnsBind says err is from binding DNS addresses,
// whose error already says so when the holder is a DNS socket.
func (d *daemon) ownPort(err error, dnsBind bool) error {
	var admin net.Addr
	if d.admin != nil {
		admin = d.admin.addr
	}
	holder, byDNS, own := ownSocket(err, d.dnsAddrs(), admin)
	switch {
	case !own:
		return err
	case dnsBind && byDNS:
		return &restartError{err}
	}
	return &restartError{fmt.Errorf("%w (zkdns itself holds this port %s, and lets its sockets go only once their replacements serve: "+
		"this change needs a restart)", err, holder)}
}

// ownSocket reports whether err failed to bind an address that one of
// zkdns's own sockets takes, those bound to dnsAddrs (UDP and TCP, byDNS)
// or to admin (TCP, nil for none), and says which.
func ownSocket(err error, dnsAddrs []string, admin net.Addr) (holder string, byDNS, own bool) {
	var op *net.OpError
	if !errors.Is(err, syscall.EADDRINUSE) || !errors.As(err, &op) {
		return "", false, false
	}
	want, ok := addrPortOf(op.Addr)
	if !ok {
		return "", false, false
	}
	if have, ok := addrPortOf(admin); ok && strings.HasPrefix(op.Net, "tcp") && conf.BindsOverlap(want, have) {
		return "for its admin API at " + admin.String(), false, true
	}
	for _, a := range dnsAddrs {
		if have, err := netip.ParseAddrPort(a); err == nil && conf.BindsOverlap(want, have) {
			return "for DNS at " + a, true, true
		}
	}
	return "", false, false
}

// addrPortOf is the IP and port of a TCP or UDP address; no IP (":8601")
// is the wildcard.
func addrPortOf(a net.Addr) (netip.AddrPort, bool) {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		return ap, false
	}
	if !ap.Addr().IsValid() {
		ap = netip.AddrPortFrom(netip.IPv6Unspecified(), ap.Port())
	}
	return ap, true
}
