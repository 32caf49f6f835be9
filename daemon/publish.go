package daemon

import (
	"context"
	"log/slog"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/zkdns/zkdns/dnsserver"
	"github.com/zkdns/zkdns/zkwatch"
)

// publisher turns watcher updates into DNS snapshots and keeps the view
// the admin API shows. Updates come from the watcher being served and,
// while the ensemble is being switched, from its replacement: each watcher
// publishes under a generation, and only the served generation's updates
// are applied, until the replacement's first full sync takes over.
type publisher struct {
	handler *dnsserver.Handler
	logger  *slog.Logger
	metrics *metrics

	ready     chan struct{} // closed at the first full sync
	readyOnce sync.Once
	switched  chan struct{} // a token when a replacement has taken over

	// mu serialises snapshot changes (two watchers may publish at once, and
	// zone changes come from the run loop) and guards the fields below.
	// Queries never take it: they load the handler's snapshot pointer.
	mu       sync.Mutex
	gen      int // the generation being served
	pending  int // a replacement's generation; 0 for none
	lastGen  int
	services map[string]zkwatch.ServiceState // what the served watcher sees, healthy or not
	healthy  int                             // healthy instances in services, kept as they change
	watchers map[int]watched                 // by generation, for readiness
	warmups  warmups
	// warm names the services built with a warm-up weight below the base,
	// which the warm-up timer rebuilds until their weights are whole.
	warm map[string]bool
	// warming gets a token when a service starts warming, so the run loop
	// arms its warm-up timer only while something warms: an idle daemon
	// does not wake up for nothing.
	warming chan struct{}
	now     func() time.Time
}

func newPublisher(h *dnsserver.Handler, logger *slog.Logger, m *metrics, w warmups) *publisher {
	return &publisher{
		warmups:  w,
		warm:     map[string]bool{},
		now:      time.Now,
		handler:  h,
		logger:   logger,
		metrics:  m,
		ready:    make(chan struct{}),
		switched: make(chan struct{}, 1),
		warming:  make(chan struct{}, 1),
		gen:      1,
		lastGen:  1,
		services: map[string]zkwatch.ServiceState{},
		watchers: map[int]watched{},
	}
}

// current is the generation being served.
func (p *publisher) current() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

// reserveGen picks the generation of a replacement watcher. Nothing
// changes until beginSwitch: a reload that fails after this leaves the
// generation unused.
func (p *publisher) reserveGen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastGen++
	return p.lastGen
}

// setServed records w, of generation gen, as the watcher being served
// (at start), for readiness and status.
func (p *publisher) setServed(gen int, w watched) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.watchers[gen] = w
}

// beginSwitch makes w, of generation gen, the replacement whose first full
// sync will take over, forgetting any earlier replacement that never
// synced: from here on, that one can no longer take over. It returns the
// generation served, which tells whether the earlier one already did.
func (p *publisher) beginSwitch(gen int, w watched) (served int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending != 0 {
		delete(p.watchers, p.pending)
	}
	p.pending = gen
	w.since = p.now()
	p.watchers[gen] = w
	return p.gen
}

// cancelSwitch drops the replacement of generation gen while it waits
// for its first full sync, and reports whether it did: false when it is
// not the one waiting, or has taken over already (and the run loop has
// not heard yet). Its updates are ignored from here on.
func (p *publisher) cancelSwitch(gen int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen == 0 || p.pending != gen {
		return false
	}
	delete(p.watchers, gen)
	p.pending = 0
	return true
}

// watched is a watcher, the session timeout it was configured with, which
// readiness judges its disconnections by, and the ensemble it watches.
type watched struct {
	watcher        *zkwatch.Watcher // nil in tests of the publisher alone
	sessionTimeout time.Duration
	servers        []string
	// For a replacement: the [zookeeper] keys it changes from the watcher
	// served when the switch began, and when that was.
	changed []string
	since   time.Time
}

// switching describes the move to another ensemble under way, if any: a
// reload started it and it waits for the new ensemble's first full sync,
// while answers come from the current one. A new ensemble that cannot be
// reached or read leaves it waiting for good.
func (p *publisher) switching() (*SwitchInfo, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sw := p.switchingLocked()
	return sw, sw != nil
}

// switchingLocked is switching with mu held; nil when no switch waits.
func (p *publisher) switchingLocked() *SwitchInfo {
	w, ok := p.watchers[p.pending]
	if p.pending == 0 || !ok {
		return nil
	}
	var st zkwatch.Status
	if w.watcher != nil {
		st = w.watcher.Status()
	}
	return &SwitchInfo{
		Servers:    slices.Clone(w.servers),
		Changed:    slices.Clone(w.changed),
		Since:      w.since,
		Connection: connectionState(st, p.now()),
	}
}

func (p *publisher) readyC() <-chan struct{}    { return p.ready }
func (p *publisher) switchedC() <-chan struct{} { return p.switched }
func (p *publisher) warmingC() <-chan struct{}  { return p.warming }

// isReady reports whether the first full sync is served and the memory it
// left behind returned: what READY=1 announces and /readyz reports.
func (p *publisher) isReady() bool {
	select {
	case <-p.ready:
		return true
	default:
		return false
	}
}

// publisherFor is the Publish function of the watcher of generation gen.
func (p *publisher) publisherFor(gen int) func(zkwatch.Update) {
	return func(u zkwatch.Update) { p.apply(gen, u) }
}

func (p *publisher) apply(gen int, u zkwatch.Update) {
	p.mu.Lock()
	switch {
	case gen == p.gen:
	case gen == p.pending && u.Full && u.Synced:
		// The replacement has synced: its whole view replaces the old one
		// in this one swap.
		delete(p.watchers, p.gen)
		p.gen, p.pending = gen, 0
		select {
		case p.switched <- struct{}{}:
		default: // a token is waiting; the run loop checks which is served
		}
	default:
		p.mu.Unlock()
		return // a retired or not yet synced watcher
	}
	du := dnsserver.Update{Removed: u.Removed, Full: u.Full, Synced: u.Synced}
	now := p.now()
	if u.Full {
		clear(p.warm)
	}
	for _, name := range u.Removed {
		delete(p.warm, name)
	}
	for _, s := range u.Services {
		du.Services = append(du.Services, p.serviceOf(s, now))
	}
	snap := p.handler.Current().Apply(du)
	p.handler.Publish(snap)
	if !u.EventTime.IsZero() {
		published := time.Now()
		p.metrics.eventToPublish.Observe(published.Sub(u.EventTime).Seconds())
		p.metrics.readToPublish.Observe(published.Sub(u.ReadTime).Seconds())
	}
	p.updateView(u, snap)
	p.mu.Unlock()

	if u.Full {
		// A full sync leaves behind the payloads it read and, now that
		// its snapshot is served, the snapshot it replaced; on a large
		// table that is hundreds of MiB that the runtime would hand back
		// to the OS only over minutes. Return it now, once per sync and
		// before the sync is announced, so the resident size at ready is
		// what the daemon keeps. The garbage collection this costs runs
		// after the new answers are served and outside mu, so neither
		// queries nor other publishers wait for it.
		debug.FreeOSMemory()
	}
	if u.Synced {
		p.readyOnce.Do(func() { close(p.ready) })
	}
}

// updateView applies u, now served by snap, to the admin view and the
// per-service gauges, and logs services added and removed, instances
// joining and leaving, and services moved to another DNS label. Called
// with mu held. The view is changed in place (view copies it under mu),
// so an update costs what it changes, not the number of services.
func (p *publisher) updateView(u zkwatch.Update, snap *dnsserver.Snapshot) {
	// Whoever resolved a moved service's old name now reaches another
	// service, or none: worth a warning, which a full sync gets too.
	for _, r := range snap.Relabelled() {
		attrs := []any{"service", r.Service, "old_label", r.From, "new_label", r.To}
		if r.TakenBy != "" {
			attrs = append(attrs, "taken_by", r.TakenBy)
		}
		p.logger.Warn("service moved to another DNS label", attrs...)
	}
	if u.Full {
		// A full sync is logged once, as a whole, by the watcher.
		next := make(map[string]zkwatch.ServiceState, len(u.Services))
		for _, s := range u.Services {
			next[s.Name] = s
		}
		for _, name := range u.Removed {
			delete(next, name)
		}
		for name := range p.services {
			if _, ok := next[name]; !ok {
				p.metrics.forgetService(name)
			}
		}
		p.healthy = 0
		for _, s := range next {
			p.metrics.setInstances(s)
			p.healthy += healthyIn(s)
		}
		p.services = next
		return
	}
	for _, s := range u.Services {
		old, had := p.services[s.Name]
		p.services[s.Name] = s
		p.healthy += healthyIn(s) - healthyIn(old)
		p.metrics.setInstances(s)
		if !had {
			label, _ := snap.Label(s.Name)
			p.logger.Info("service added", "service", s.Name, "label", label, "path", s.Path, "instances", len(s.Instances))
		} else {
			logMembership(p.logger, old, s)
		}
	}
	for _, name := range u.Removed {
		old, had := p.services[name]
		if !had {
			continue
		}
		delete(p.services, name)
		p.healthy -= healthyIn(old)
		p.metrics.forgetService(name)
		p.logger.Info("service removed", "service", name, "path", old.Path)
	}
}

// logMembership logs one line per instance that joined, left, or changed
// health between two states of a service.
func logMembership(logger *slog.Logger, old, cur zkwatch.ServiceState) {
	if !logger.Enabled(context.Background(), slog.LevelInfo) {
		return // spare the comparison on every update when its lines are not wanted
	}
	if sameMembers(old.Instances, cur.Instances) {
		return // most updates: a payload changed, not who is in the service
	}
	before := make(map[string]zkwatch.Instance, len(old.Instances))
	for _, in := range old.Instances {
		before[in.ID] = in
	}
	for _, in := range cur.Instances {
		prev, had := before[in.ID]
		delete(before, in.ID)
		switch {
		case !had:
			logger.Info("instance joined", "service", cur.Name, "id", in.ID, "address", in.Address, "port", in.Port, "healthy", in.Healthy)
		case prev.Healthy != in.Healthy:
			logger.Info("instance health changed", "service", cur.Name, "id", in.ID, "address", in.Address, "healthy", in.Healthy)
		}
	}
	for _, in := range before {
		logger.Info("instance left", "service", cur.Name, "id", in.ID, "address", in.Address, "port", in.Port)
	}
}

// sameMembers reports whether a and b list the same instances, by ID and
// in the same order, with the same health: then no line is due, and the
// comparison costs no allocation.
func sameMembers(a, b []zkwatch.Instance) bool {
	return slices.EqualFunc(a, b, func(x, y zkwatch.Instance) bool { return x.ID == y.ID && x.Healthy == y.Healthy })
}

// rewarm rebuilds the services whose instances are warming (or have just
// finished), so their SRV weights follow the clock between ZooKeeper
// events. It reports whether any service is still warming.
func (p *publisher) rewarm() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.warm) == 0 {
		return false
	}
	now := p.now()
	var du dnsserver.Update
	for name := range p.warm {
		if s, ok := p.services[name]; ok {
			du.Services = append(du.Services, p.serviceOf(s, now))
		} else {
			delete(p.warm, name)
		}
	}
	p.handler.Publish(p.handler.Current().Apply(du))
	return len(p.warm) > 0
}

// setWarmups applies new warm-up windows (a config reload), rebuilding the
// services whose window changed.
func (p *publisher) setWarmups(w warmups) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.warmups
	p.warmups = w
	now := p.now()
	var du dnsserver.Update
	for _, s := range p.services {
		if old.window(s) != w.window(s) {
			du.Services = append(du.Services, p.serviceOf(s, now))
		}
	}
	if len(du.Services) > 0 {
		p.handler.Publish(p.handler.Current().Apply(du))
	}
}

// setZone rebuilds every record under new zone settings.
func (p *publisher) setZone(z dnsserver.Zone) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handler.Publish(p.handler.Current().WithZone(z))
}

// servedStatus is the session status of the watcher being served, and
// the session timeout it was configured with.
func (p *publisher) servedStatus() (st zkwatch.Status, sessionTimeout time.Duration, ok bool) {
	p.mu.Lock()
	w, ok := p.watchers[p.gen]
	p.mu.Unlock()
	if !ok {
		return zkwatch.Status{}, 0, false
	}
	return w.watcher.Status(), w.sessionTimeout, true
}

// summary counts the services the served watcher sees and their healthy
// instances. The status line asks every few seconds, so the count is
// kept as updates arrive: walking 100,000 instances under mu would hold
// up a publish.
func (p *publisher) summary() (services, healthy int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.services), p.healthy
}

// healthyIn counts a service's healthy instances.
func healthyIn(s zkwatch.ServiceState) int {
	n := 0
	for _, in := range s.Instances {
		if in.Healthy {
			n++
		}
	}
	return n
}

// view returns the services as the served watcher sees them, sorted by
// name, with the labels the current snapshot serves them under, and the
// switch to another ensemble waiting at that moment, if any.
func (p *publisher) view() (_ []ServiceInfo, switching *SwitchInfo) {
	p.mu.Lock()
	services := make([]zkwatch.ServiceState, 0, len(p.services))
	for _, s := range p.services {
		services = append(services, s)
	}
	now := p.now()
	warmups := p.warmups // a reload replaces it under mu
	// Taken with the services: a takeover in between would show the new
	// ensemble's services beside a switch still waiting.
	switching = p.switchingLocked()
	snap := p.handler.Current()
	p.mu.Unlock()
	out := make([]ServiceInfo, 0, len(services))
	for _, s := range services {
		label, labels, _ := snap.Labels(s.Name)
		info := ServiceInfo{
			Name:         s.Name,
			Label:        label,
			Path:         s.Path,
			Format:       s.Format,
			DiscoveredBy: s.DiscoveredBy,
			Exists:       s.Exists,
			Invalid:      s.Invalid,
			Denied:       s.Denied,
			AccessDenied: s.AccessDenied,
			Instances:    make([]InstanceInfo, 0, len(s.Instances)),
		}
		window := warmups.window(s)
		for _, in := range s.Instances {
			info.Instances = append(info.Instances, InstanceInfo{
				ID:         in.ID,
				Label:      labels[in.ID],
				Format:     in.Format,
				Address:    in.Address,
				Port:       in.Port,
				Weight:     servedWeight(in.Weight, in.Registered, window, now),
				BaseWeight: in.Weight,
				Healthy:    in.Healthy,
				Registered: in.Registered.UTC(),
			})
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, switching
}

// serviceOf is serviceAt with the service's warm-up window, noting
// whether the service is warming. Called with mu held.
func (p *publisher) serviceOf(s zkwatch.ServiceState, now time.Time) dnsserver.Service {
	window := p.warmups.window(s)
	if warming(s, window, now) {
		p.warm[s.Name] = true
		select {
		case p.warming <- struct{}{}:
		default: // a token is already waiting
		}
	} else {
		delete(p.warm, s.Name)
	}
	return serviceAt(s, window, now)
}

// serviceAt keeps the healthy instances of a service, in the form DNS
// serves them at now, with their weights ramped over the warm-up window.
func serviceAt(s zkwatch.ServiceState, window time.Duration, now time.Time) dnsserver.Service {
	out := dnsserver.Service{Name: s.Name}
	if len(s.Instances) > 0 {
		out.Instances = make([]dnsserver.Instance, 0, len(s.Instances))
	}
	for _, in := range s.Instances {
		if !in.Healthy {
			continue
		}
		out.Instances = append(out.Instances, dnsserver.Instance{
			ID:      in.ID,
			Address: in.Address,
			Port:    in.Port,
			Weight:  servedWeight(in.Weight, in.Registered, window, now),
			TXT:     txtOf(in),
		})
	}
	return out
}

// txtOf is an instance's TXT record: format and id first, then the
// format's metadata sorted by key.
func txtOf(in zkwatch.Instance) []string {
	txt := make([]string, 0, 2+len(in.Meta))
	txt = append(txt, formatTXT(in.Format), "id="+in.ID)
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

// formatTXT is the "format=" string of a TXT record. The formats are few,
// so the common ones are constants rather than a new string per instance
// per publish, which a table of 100,000 instances would keep.
func formatTXT(format string) string {
	switch format {
	case "curator":
		return "format=curator"
	case "serverset":
		return "format=serverset"
	case "nerve":
		return "format=nerve"
	case "dubbo":
		return "format=dubbo"
	case "hostport":
		return "format=hostport"
	}
	return "format=" + format
}
