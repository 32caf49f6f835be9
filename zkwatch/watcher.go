package zkwatch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdns/zkdns/internal/zkclient"
)

// ServiceSpec names one service to watch: the children of Path are its
// instances.
type ServiceSpec struct {
	Name     string // service name; for a discovered service, its znode name
	Path     string // ZooKeeper path, without the chroot
	Format   string // payload format, "auto" when empty
	Endpoint string // serverset additional endpoint or curator "ssl"; "" = default
}

// DiscoverSpec names a path whose every child is a service.
type DiscoverSpec struct {
	Path     string
	Format   string
	Endpoint string
}

// Spec is everything a Watcher watches.
type Spec struct {
	Services []ServiceSpec
	Discover []DiscoverSpec
}

// ServiceState is the current view of one service.
type ServiceState struct {
	ServiceSpec
	// DiscoveredBy is the [[discover]] path the service was found under, or
	// "" for a configured service.
	DiscoveredBy string
	// Exists reports whether the service path exists in ZooKeeper.
	Exists bool
	// Instances are the decoded instances, healthy or not, sorted by ID.
	// The slice (and each Meta map) is shared with the Watcher and with
	// later updates, which replace it rather than change it: read it, never
	// modify it.
	Instances []Instance
	// Invalid counts children that are not served because their payload
	// did not decode.
	Invalid int
	// Denied counts children that are not served because an ACL refuses
	// zkdns read access to them (NoAuth).
	Denied int
	// AccessDenied reports that an ACL refuses zkdns the service path
	// itself (NoAuth): its children cannot even be listed, so the service
	// is served with no instances (NODATA) until the path is readable
	// again.
	AccessDenied bool
}

// Update is a change to the watched set, delivered to Options.Publish.
type Update struct {
	Services []ServiceState // services added or changed
	Removed  []string       // names of services no longer watched
	Full     bool           // Services is the whole set; drop anything else
	Synced   bool           // a full sync has completed in this update
	// EventTime is when the first watch event behind this update arrived;
	// zero for updates no event caused (a sync, a spec change).
	EventTime time.Time
	// ReadTime is when the ZooKeeper reads the events asked for had all
	// returned (for a deletion, which needs none, when it was handled):
	// from EventTime to ReadTime is ZooKeeper's part, after it the
	// daemon's. Zero when EventTime is.
	ReadTime time.Time
}

// Options configures a Watcher. The zero value is not usable: Servers and
// Publish are required.
type Options struct {
	// Servers are the ensemble members, host:port.
	Servers []string
	// SessionTimeout is the requested session timeout; zero means 10s.
	SessionTimeout time.Duration
	// Root is a chroot prefix added to every path ("" for none).
	Root string
	// Auth authenticates the session before anything is read; the zero
	// value connects anonymously. It is re-sent after every reconnect.
	Auth Auth
	// TLS, when set, makes every connection to ZooKeeper a TLS connection
	// (to the servers' secure client port) with this config; an empty
	// ServerName means the host of the server being dialled. Nil means
	// plain TCP. The Watcher does not modify it.
	TLS *tls.Config
	// Publish receives every change, one call at a time, in order: from
	// the watcher's run loop, and for an instance whose znode was deleted
	// from the ZooKeeper client's receive goroutine, as the event arrives.
	// It must not block for long: it holds up the processing of watch
	// events, and the client's receipt of replies. No call is made once
	// Run has returned.
	Publish func(Update)
	// Logger receives one line per state change; nil discards.
	Logger *slog.Logger
	// Concurrency bounds the requests in flight on the one connection;
	// zero means 64.
	Concurrency int
	// MaxBufferSize is the largest ZooKeeper response accepted; zero means
	// 16 MiB, enough for a child list of ~100,000 long names.
	MaxBufferSize int
	// Metrics records events, requests and session changes; nil records
	// nothing.
	Metrics *Metrics
}

// Watcher keeps the instance sets of the configured services current. Its
// zero value is not usable: create one with New.
type Watcher struct {
	opts   Options
	logger *slog.Logger
	// warnings paces the warnings about unreachable servers over every
	// session the watcher opens.
	warnings *zkclient.ConnectWarnings

	// mu guards pending, firstAt, session, spec, watchesLost, probe and refused: the
	// ZooKeeper client's callbacks and SetSpec write them, the run loop
	// takes them.
	mu      sync.Mutex
	pending map[string]eventKind // full path → what happened to it
	firstAt time.Time            // arrival of the oldest pending event
	session []zk.State           // session state changes not yet handled
	spec    *Spec                // a spec change not yet applied, or nil
	// watchesLost says the client failed to give a reconnected session's
	// watches back to ZooKeeper.
	watchesLost bool
	// probe is set, to the connection's Refusals, when its handshakes
	// have failed for a session timeout: the run loop probes for a new
	// session. refused is set when a server grants one while refusing the
	// connection's: the run loop opens a new connection.
	probe, refused *zkclient.Refusals
	wake           chan struct{} // capacity 1: "something is pending"

	status atomic.Pointer[Status]
	// noPersistent is set once a server turned persistent watches down
	// as unknown, which is logged once.
	noPersistent atomic.Bool
	// persistentRefusalLogged is the connection generation whose first
	// refused persistent watch was logged.
	persistentRefusalLogged atomic.Int64
	// closed is set before the connection is closed. The client reports
	// its disconnection after Run has returned; that must not reach the
	// metrics, which the daemon shares with the watcher replacing this one.
	closed atomic.Bool
	// connGen numbers the connections Run opens; events carry theirs, so
	// that those of a replaced connection are dropped.
	connGen atomic.Int64
	// connMu guards conn's replacement against its closing when ctx ends,
	// and closed's setting against a replacement opening after it. The
	// run loop, which alone replaces conn, reads it without the lock.
	connMu sync.Mutex
	// probes tracks the probe goroutines the run loop starts; Run waits
	// for them.
	probes sync.WaitGroup

	// stepMu is held by whatever changes the fields below: the run loop
	// for each step, and the client's receive goroutine while it applies
	// a deletion as it arrives (applyDeletion); a deletion that finds it
	// held is left to the loop. The loop lets it go while it waits for
	// the reads of watch events (see process), when busy names the
	// services those reads change.
	stepMu sync.Mutex
	busy   map[*service]bool

	// Everything below is changed with stepMu held, but for the services
	// in busy, which the run loop's reads change while it has let stepMu
	// go; conn is replaced only by the run loop.
	conn *zk.Conn
	// persistent sets conn's persistent recursive watches, one per
	// watched service path, whose NodeCreated events name a new instance:
	// it is read at once, without waiting for its service's listing.
	persistent  *zkclient.PersistentWatches
	current     Spec
	services    map[string]*service // by name
	byPath      map[string]*service // by full path
	roots       map[string]*root    // discover roots by full path
	lastSession int64
	needResync  bool
	specDirty   bool
	synced      bool
	retry       map[string]eventKind // work that failed for lack of a connection
	// unlisted are configured services a spec change added while there
	// was no connection to list them: published as services with no
	// instances (NODATA) until they are listed, by name.
	unlisted      map[string]ServiceSpec
	requestsLimit chan struct{}
	// dormant are the paths of services no longer watched whose persistent
	// watch stays on the connection until their child watch fires (see
	// unwatch).
	dormant map[string]bool
	// beforeResync holds, while a resync is incomplete, the services
	// watched before it, by name.
	beforeResync map[string]*service

	// badMu guards badLogged, written by concurrent reads.
	badMu     sync.Mutex
	badLogged map[string]int64 // full path → Mzxid whose decode error was logged

	access accessState // paths an ACL refuses; written by concurrent reads

	// armedMu guards armed, written by concurrent reads and by the
	// client's receive goroutine.
	armedMu sync.Mutex
	// armed are the child and data watches the connection's client holds
	// that have not fired. The client keeps one channel per watching call
	// until its watch fires, and cannot remove them, so a path read again
	// while its watch is still armed (a service removed and added back by
	// reloads, its format changed) is read without a watch: a channel per
	// instance per reload would otherwise pile up for as long as the
	// instance does not change.
	armed map[watchKey]struct{}
}

// watchKey is a path and the kind of watch armed on it.
type watchKey struct {
	path string
	kind uint8 // watchChild or watchData
}

const (
	watchChild uint8 = iota
	watchData
)

// Status is a point-in-time view of the ZooKeeper session.
type Status struct {
	State zk.State
	// Server is the ensemble member connected to, when connected.
	Server string
	// DisconnectedSince is when the connection was lost; zero when connected.
	DisconnectedSince time.Time
	// SessionID is the ZooKeeper session the watches belong to; zero
	// before the first session.
	SessionID int64
	// Synced reports whether a full sync has completed.
	Synced bool
}

type eventKind uint8

const (
	evChildren eventKind = 1 << iota // child list or existence of a service/discover path changed
	evData                           // an instance znode's data changed
	evDeleted                        // a znode was deleted
	evCreated                        // a znode was created: a service or root path, or an instance (named by a persistent watch)
)

type root struct {
	spec     DiscoverSpec
	full     string
	exists   bool
	children []string
	// missingLogged: its absence was warned about, and its appearance
	// is to be logged.
	missingLogged bool
}

// New returns a Watcher for spec. It does not connect: Run does.
func New(opts Options, spec Spec) (*Watcher, error) {
	if len(opts.Servers) == 0 {
		return nil, errors.New("zkwatch: no ZooKeeper servers given")
	}
	if opts.Publish == nil {
		return nil, errors.New("zkwatch: Options.Publish is required")
	}
	if err := opts.Auth.check(); err != nil {
		return nil, err
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = 10 * time.Second
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.MaxBufferSize <= 0 {
		opts.MaxBufferSize = 16 << 20
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		opts:          opts,
		logger:        logger.With("component", "zkwatch"),
		warnings:      zkclient.NewConnectWarnings(),
		pending:       make(map[string]eventKind),
		wake:          make(chan struct{}, 1),
		current:       cloneSpec(spec),
		services:      make(map[string]*service),
		byPath:        make(map[string]*service),
		roots:         make(map[string]*root),
		retry:         make(map[string]eventKind),
		badLogged:     make(map[string]int64),
		armed:         make(map[watchKey]struct{}),
		dormant:       make(map[string]bool),
		requestsLimit: make(chan struct{}, opts.Concurrency),
	}
	w.status.Store(&Status{State: zk.StateDisconnected, DisconnectedSince: time.Now()})
	return w, nil
}

// Status returns the current session status. Safe for concurrent use.
func (w *Watcher) Status() Status { return *w.status.Load() }

// SetSpec replaces what is watched. Services whose spec is unchanged keep
// their watches and state; the difference is applied by the run loop and
// published as one Update. Safe for concurrent use.
func (w *Watcher) SetSpec(spec Spec) {
	s := cloneSpec(spec)
	w.mu.Lock()
	w.spec = &s
	w.mu.Unlock()
	w.signal()
}

// Run connects to ZooKeeper and keeps the services current until ctx ends.
// It returns nil when ctx is cancelled, and an error only when it cannot
// start at all. A ZooKeeper that is unreachable is not an error: Run keeps
// trying, and publishes nothing until it has synced.
func (w *Watcher) Run(ctx context.Context) error {
	if err := w.connect(); err != nil {
		return err
	}
	// Closing the connection is what unblocks requests waiting for a
	// server, so it must happen as soon as ctx ends, not after the loop.
	closeConn := func() {
		w.connMu.Lock()
		w.closed.Store(true)
		conn := w.conn
		w.connMu.Unlock()
		conn.Close()
	}
	stop := context.AfterFunc(ctx, closeConn)
	defer func() {
		stop()
		closeConn()
		w.probes.Wait() // ctx has ended: they return at once
		// A deletion being applied on the client's receive goroutine
		// finishes before Run returns, and none starts after closed is
		// set: nothing is published once Run has returned.
		w.stepMu.Lock()
		//lint:ignore SA2001 taking the lock is the wait; nothing runs under it
		w.stepMu.Unlock()
	}()
	if err := w.authenticate(ctx, w.conn); err != nil {
		return nil // ctx ended before any server accepted the credentials
	}
	recheckCtx, cancelRecheck := context.WithCancel(ctx)
	recheckDone := make(chan struct{})
	go func() {
		defer close(recheckDone)
		w.recheckDenied(recheckCtx)
	}()
	defer func() {
		cancelRecheck()
		<-recheckDone
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		}
		w.stepMu.Lock()
		w.step(ctx)
		w.stepMu.Unlock()
	}
}

// connect opens a new zk.Conn (with no session and no zxid seen) as
// w.conn, closing the one it replaces, unless Run is closing.
func (w *Watcher) connect() error {
	w.connMu.Lock()
	defer w.connMu.Unlock()
	if w.closed.Load() {
		return nil
	}
	// Events of a connection that was replaced are dropped (see onEvent).
	gen := w.connGen.Add(1)
	refusals := zkclient.NewRefusals(w.opts.SessionTimeout)
	persistent := &zkclient.PersistentWatches{
		Reply: func(path string, err error) { w.persistentReply(gen, path, err) },
		Sent: func(op string, n int) {
			if w.connGen.Load() != gen || w.closed.Load() {
				return
			}
			if op == zkclient.OpRemoveWatches {
				w.opts.Metrics.countRequests(opRemoveWatches, n)
			} else {
				w.opts.Metrics.countRequests(opAddWatch, n)
			}
		},
	}
	conn, _, err := zk.Connect(w.opts.Servers, w.opts.SessionTimeout,
		zk.WithEventCallback(func(ev zk.Event) { w.onEvent(gen, refusals, ev) }),
		zk.WithLogger(zkclient.Logger{L: w.logger, WatchesLost: w.onWatchesLost, HandshakeFailed: refusals.HandshakeFailed, Warnings: w.warnings}),
		zk.WithMaxBufferSize(w.opts.MaxBufferSize),
		zk.WithDialer(persistent.Dialer(w.dialer())),
		zk.WithHostProvider(&zkclient.HostProvider{Logger: w.logger}),
	)
	if err != nil {
		w.connGen.Store(gen - 1) // the running connection's events still count
		return fmt.Errorf("zkwatch: connect to %s: %w", strings.Join(w.opts.Servers, ","), err)
	}
	if old := w.conn; old != nil {
		old.Close()
	}
	w.disarmAll()
	w.conn = conn
	w.persistent = persistent
	return nil
}

// persistentReply reports what ZooKeeper made of a persistent watch:
// nothing when it took it. Without it, a new instance is read after its
// service's listing, one round trip later, which is worth a line but
// changes nothing else.
func (w *Watcher) persistentReply(gen int64, path string, err error) {
	if err == nil || w.connGen.Load() != gen || w.closed.Load() {
		return
	}
	if errors.Is(err, zkclient.ErrPersistentWatchesUnsupported) {
		if !w.noPersistent.Swap(true) {
			w.logger.Info("this ZooKeeper has no persistent watches (they need 3.6 or later): new instances are read after their service's listing, one round trip later",
				"err", err)
		}
		return
	}
	// Once per connection: a server that refuses one path may refuse
	// every service's, at every reconnect.
	if w.persistentRefusalLogged.Swap(gen) != gen {
		w.logger.Warn("zookeeper refused a persistent watch (further refusals on this connection are not logged): new instances of the path are read after its listing, one round trip later",
			"path", path, "err", err)
	}
}

// renew replaces a zk.Conn that no server will take back (see
// zkclient.Refusals) with a new one. Its session, when it comes, is new:
// step resyncs as after an expiry, keeping the last known instances
// published until the resync's one full update replaces them.
func (w *Watcher) renew(ctx context.Context, since time.Time, reason error) {
	w.logger.Warn("no ZooKeeper server accepts this session; starting a new one "+
		"(a server that lost its data, or a rebuilt ensemble, turns away clients that saw newer transactions); "+
		"serving the last known instances until it has synced",
		"refused_for", time.Since(since).Round(time.Second), "err", reason)
	if err := w.connect(); err != nil {
		// zk.Connect fails only on options that worked the first time.
		w.logger.Error("could not start a new ZooKeeper session; keeping the old one", "err", err)
		return
	}
	if err := w.authenticate(ctx, w.conn); err != nil {
		return // ctx ended
	}
}

func (w *Watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// onEvent runs on the ZooKeeper client's receive goroutine for every event,
// session and watch alike (its event channel drops events when full, this
// never does). It only records what happened: the run loop does the work.
// gen is the connection's generation and refusals its Refusals; events of
// a connection that was replaced are dropped.
func (w *Watcher) onEvent(gen int64, refusals *zkclient.Refusals, ev zk.Event) {
	if w.connGen.Load() != gen {
		return
	}
	if ev.Type == zk.EventSession {
		w.opts.Metrics.sessionEvent()
		w.trackState(ev)
		verdict := refusals.Observe(ev.State)
		w.mu.Lock()
		w.session = append(w.session, ev.State)
		switch verdict {
		case zkclient.Probe:
			w.probe = refusals
		case zkclient.Renew:
			w.refused = refusals
		}
		w.mu.Unlock()
		w.signal()
		return
	}
	w.fired(ev)
	var kind eventKind
	switch ev.Type {
	case zk.EventNodeChildrenChanged:
		kind = evChildren
	case zk.EventNodeCreated:
		kind = evCreated
	case zk.EventNodeDataChanged:
		kind = evData
	case zk.EventNodeDeleted:
		kind = evDeleted
	default: // EventNotWatching: the session handling re-lists everything.
		return
	}
	w.opts.Metrics.event(kind)
	now := time.Now()
	if kind == evDeleted && w.applyDeletion(ev.Path, now) {
		return
	}
	w.mu.Lock()
	if w.firstAt.IsZero() {
		w.firstAt = now
	}
	w.pending[ev.Path] |= kind
	w.mu.Unlock()
	w.signal()
}

// applyDeletion drops the served instance whose znode full was deleted,
// and publishes its service, on the client's receive goroutine as the
// event arrives. A departure needs no read, and handing it to the run
// loop would add the loop's wake-up, or the reads it is waiting for, to
// the time a gone instance is still answered. It does so only when the
// loop is idle or waiting on reads that leave the instance's service
// alone, and in step with ZooKeeper (synced, no resync or spec change
// under way), and only for an instance of a watched service, as process
// would drop it; otherwise it reports false and the event goes to the
// run loop as any other.
func (w *Watcher) applyDeletion(full string, at time.Time) bool {
	if !w.stepMu.TryLock() {
		return false
	}
	defer w.stepMu.Unlock()
	if w.closed.Load() || !w.synced || w.needResync || w.specDirty {
		return false
	}
	s, name := w.knownInstance(full)
	if s == nil || w.services[s.spec.Name] != s {
		return false
	}
	s.update([]string{name}, nil)
	w.forgetNode(full)
	w.publishTouched(map[string]*service{s.spec.Name: s}, nil, at, time.Now())
	return true
}

// knownInstance returns the service that full is an instance znode of,
// and the instance's name, when the service holds that instance; nil for
// a discover root, a service's own path, or anything else. Called with
// stepMu held; a service in busy is not looked into (nil), since the run
// loop's reads are changing it meanwhile.
func (w *Watcher) knownInstance(full string) (*service, string) {
	if _, ok := w.roots[full]; ok {
		return nil, ""
	}
	if _, ok := w.byPath[full]; ok {
		return nil, ""
	}
	s, ok := w.byPath[path.Dir(full)]
	if !ok || w.busy[s] {
		return nil, ""
	}
	name := path.Base(full)
	if _, had := s.version(name); !had {
		return nil, ""
	}
	return s, name
}

// fired forgets the watches ev fired or ended, as the client does.
func (w *Watcher) fired(ev zk.Event) {
	w.armedMu.Lock()
	defer w.armedMu.Unlock()
	switch ev.Type {
	case zk.EventNodeChildrenChanged:
		delete(w.armed, watchKey{ev.Path, watchChild})
	case zk.EventNodeDataChanged:
		delete(w.armed, watchKey{ev.Path, watchData})
	case zk.EventNodeDeleted, zk.EventNotWatching:
		delete(w.armed, watchKey{ev.Path, watchChild})
		delete(w.armed, watchKey{ev.Path, watchData})
	}
}

// arm reports whether a read of path should set a watch of kind: when
// none is armed. It then counts the watch as armed, before the read is
// sent, so that the watch firing cannot come before it is counted; a
// read that fails calls disarm. A watch counted but not set costs a read
// without a watch, and with it a missed change: never let that happen.
// One set but not counted costs only a second channel in the client.
func (w *Watcher) arm(path string, kind uint8) bool {
	w.armedMu.Lock()
	defer w.armedMu.Unlock()
	k := watchKey{path, kind}
	if _, ok := w.armed[k]; ok {
		return false
	}
	w.armed[k] = struct{}{}
	return true
}

// isArmed reports whether a watch of kind is armed on path.
func (w *Watcher) isArmed(path string, kind uint8) bool {
	w.armedMu.Lock()
	defer w.armedMu.Unlock()
	_, ok := w.armed[watchKey{path, kind}]
	return ok
}

func (w *Watcher) disarm(path string, kind uint8) {
	w.armedMu.Lock()
	delete(w.armed, watchKey{path, kind})
	w.armedMu.Unlock()
}

// disarmAll forgets every watch: the connection was replaced, or its
// session's watches are gone or unknown to ZooKeeper.
func (w *Watcher) disarmAll() {
	w.armedMu.Lock()
	clear(w.armed)
	w.armedMu.Unlock()
}

// onWatchesLost runs on the ZooKeeper client's goroutines when its
// setWatches after a reconnect failed: the run loop then re-reads
// everything under new watches once it has a connection.
func (w *Watcher) onWatchesLost() {
	w.mu.Lock()
	w.watchesLost = true
	w.mu.Unlock()
	w.signal()
}

func (w *Watcher) trackState(ev zk.Event) {
	old := w.updateStatus(func(st *Status) {
		st.State = ev.State
		switch ev.State {
		case zk.StateHasSession:
			st.DisconnectedSince = time.Time{}
			st.Server = ev.Server
		case zk.StateConnecting, zk.StateConnected, zk.StateConnectedReadOnly:
			// Still cut off until the session is (re)established.
		default:
			if st.DisconnectedSince.IsZero() {
				st.DisconnectedSince = time.Now()
			}
		}
	})
	if old.State == ev.State || w.closed.Load() {
		return
	}
	switch ev.State {
	case zk.StateHasSession:
		w.logger.Info("zookeeper session established", "server", ev.Server)
	case zk.StateExpired:
		w.logger.Warn("zookeeper session expired; will resync on the new session")
	case zk.StateDisconnected:
		if old.State == zk.StateHasSession {
			w.logger.Warn("zookeeper connection lost; serving the last known instances")
		}
	case zk.StateAuthFailed:
		w.logger.Error("zookeeper authentication failed")
	}
}

// updateStatus applies f to a copy of the status and publishes it,
// returning the status it replaced.
func (w *Watcher) updateStatus(f func(*Status)) Status {
	for {
		old := w.status.Load()
		st := *old
		f(&st)
		if w.status.CompareAndSwap(old, &st) {
			return *old
		}
	}
}

// step handles everything pending: session changes, a new spec, watch
// events, and work that earlier failed for lack of a connection.
func (w *Watcher) step(ctx context.Context) {
	w.mu.Lock()
	probe, refused := w.probe, w.refused
	w.probe, w.refused = nil, nil
	w.mu.Unlock()
	if probe != nil {
		// Off the run loop: a probe can take a session timeout, and the
		// loop has spec changes to publish meanwhile.
		w.probes.Go(func() {
			probe.Probed(zkclient.ProbeNewSession(ctx, w.opts.Servers, w.opts.SessionTimeout, w.dialer(), w.logger))
		})
	}
	if refused != nil {
		since, reason := refused.Refused()
		w.renew(ctx, since, reason)
	}

	w.mu.Lock()
	events := w.pending
	w.pending = make(map[string]eventKind)
	eventTime := w.firstAt
	w.firstAt = time.Time{}
	states := w.session
	w.session = nil
	spec := w.spec
	w.spec = nil
	watchesLost := w.watchesLost
	w.watchesLost = false
	w.mu.Unlock()

	for _, s := range states {
		if s != zk.StateHasSession {
			continue
		}
		if id := w.conn.SessionID(); id != w.lastSession {
			if w.lastSession != 0 {
				w.opts.Metrics.expired()
			}
			w.lastSession = id
			w.needResync = true
			w.updateStatus(func(st *Status) { st.SessionID = id })
		} else {
			// The client gives the session's watches back to ZooKeeper
			// (setWatches, from the last zxid it saw), and ZooKeeper fires
			// at once every one whose znode changed meanwhile: nothing to
			// read here unless that fails (watchesLost).
			w.opts.Metrics.reconnected()
		}
	}
	if watchesLost && !w.needResync {
		w.logger.Warn("zookeeper did not take back the watches after a reconnect; re-reading everything under new watches")
		w.needResync = true
	}
	if spec != nil {
		w.current = *spec
		w.specDirty = true
	}
	if w.conn.State() != zk.StateHasSession {
		// Nothing can be read now; remember the work for the reconnect.
		for p, k := range events {
			w.retry[p] |= k
		}
		if spec != nil && w.synced {
			w.publishUnlisted()
		}
		return
	}
	if w.needResync {
		if err := w.resync(); err != nil {
			w.logger.Warn("zookeeper resync incomplete; retrying on reconnect", "err", err)
			return
		}
		w.needResync = false
		w.specDirty = false
		clear(w.retry)
		return
	}
	for p, k := range w.retry {
		events[p] |= k
	}
	clear(w.retry)
	if w.specDirty {
		w.specDirty = false
		w.applySpec(events)
		return
	}
	w.process(events, nil, eventTime)
}

// publishUnlisted publishes the configured services that are not watched
// yet, as services whose path was not seen (NODATA), and drops those a
// later change removed again. Listing them needs a connection; until then
// an added service must not answer NXDOMAIN, which also tells resolvers
// that no name below it exists. Services the running spec already has
// keep their last known instances, changed or not, until the reconnect
// applies the change.
func (w *Watcher) publishUnlisted() {
	var u Update
	want := map[string]bool{}
	for _, spec := range w.current.Services {
		if _, watched := w.services[spec.Name]; watched {
			continue
		}
		want[spec.Name] = true
		if old, ok := w.unlisted[spec.Name]; ok && old == spec {
			continue
		}
		if w.unlisted == nil {
			w.unlisted = map[string]ServiceSpec{}
		}
		w.unlisted[spec.Name] = spec
		u.Services = append(u.Services, ServiceState{ServiceSpec: spec, Instances: []Instance{}})
	}
	for name := range w.unlisted {
		if !want[name] {
			delete(w.unlisted, name)
			u.Removed = append(u.Removed, name)
		}
	}
	if len(u.Services) == 0 && len(u.Removed) == 0 {
		return
	}
	sort.Strings(u.Removed)
	w.logger.Info("services added while ZooKeeper is unreachable answer with no instances until they are listed",
		"added", len(u.Services), "removed", len(u.Removed))
	w.opts.Publish(u)
}

// takeUnlisted returns the names published by publishUnlisted and forgets
// them: the caller lists or removes them in its next update.
func (w *Watcher) takeUnlisted() []string {
	names := make([]string, 0, len(w.unlisted))
	for name := range w.unlisted {
		names = append(names, name)
	}
	w.unlisted = nil
	return names
}

// resync reads every watched path afresh under new watches and publishes
// the result as one full update, so a new session never shows a partial or
// empty set in between.
func (w *Watcher) resync() error {
	// A service watched before and not found again is forgotten, as
	// dropService forgets one, once the resync completes. They gather over
	// attempts, since one that fails partway leaves a partial set that the
	// next attempt replaces.
	if w.beforeResync == nil {
		w.beforeResync = make(map[string]*service, len(w.services))
	}
	for name, s := range w.services {
		w.beforeResync[name] = s
	}
	// A new session holds no watches, and a session whose watches
	// ZooKeeper did not take back holds some that the client still
	// counts: either way, everything is read under a new watch.
	w.disarmAll()
	if w.synced {
		if err := w.catchUp(); err != nil {
			return err
		}
	}
	// Its full update replaces whatever publishUnlisted published.
	w.unlisted = nil
	w.services = make(map[string]*service)
	w.byPath = make(map[string]*service)
	w.roots = make(map[string]*root)
	for _, d := range w.current.Discover {
		r := &root{spec: d, full: w.full(d.Path)}
		w.roots[r.full] = r
	}
	roots := w.rootsOrdered()
	if err := w.runAll(len(roots), func(i int) error {
		return w.onlyConnectionErrors(w.listRoot(roots[i]))
	}); err != nil {
		return err
	}
	want := w.wanted()
	added := make([]*service, 0, len(want))
	for _, s := range want {
		added = append(added, w.addService(s))
	}
	w.watchAdded(added)
	all := w.servicesOrdered()
	readers := w.readersEach(len(all))
	if err := w.runAll(len(all), func(i int) error {
		return w.onlyConnectionErrors(w.listService(all[i], readers))
	}); err != nil {
		return err
	}
	states := make([]ServiceState, 0, len(all))
	for _, s := range all {
		states = append(states, s.state())
		s.unpublished = false
	}
	for name, s := range w.beforeResync {
		switch {
		case w.services[name] != nil:
		case w.byPath[s.full] != nil:
			// Its znodes are watched under another name now, and what
			// this resync recorded of them stays.
			w.opts.Metrics.forgetService(name)
		default:
			w.unwatch(s.full)
			w.forget(s)
		}
	}
	// A watch left dormant before the resync went with its connection,
	// or was taken off just now (no child watch is armed in between).
	clear(w.dormant)
	w.beforeResync = nil
	w.synced = true
	w.updateStatus(func(st *Status) { st.Synced = true })
	w.opts.Metrics.fullSync()
	w.opts.Publish(Update{Services: states, Full: true, Synced: true})
	w.logger.Info("zookeeper sync complete", "services", len(all), "instances", countInstances(states))
	return nil
}

// catchUp brings the server of a replacement session up to date with
// the ZooKeeper leader before the resync reads from it. The client forgets
// the last zxid it saw when its session expires, so ZooKeeper may give the
// new session a follower that lags the server the old one read from;
// reading there would publish instances older than those already served:
// an instance already gone back in DNS until the follower caught up.
// Sync costs one round trip per new session.
func (w *Watcher) catchUp() error {
	w.opts.Metrics.request(opSync)
	if _, err := w.conn.Sync("/"); err != nil {
		if zkclient.ConnectionEnded(err) {
			return err
		}
		// Reading a lagging server is no worse than not syncing at all.
		w.logger.Warn("zookeeper sync before the resync failed; reading the server as it is", "err", err)
	}
	return nil
}

// applySpec moves from the running spec to w.current: new roots and
// services are listed, removed ones dropped, changed ones re-listed.
func (w *Watcher) applySpec(events map[string]eventKind) {
	// A root whose settings changed is dropped and added again; the new
	// one starts from the old one's children, so that its services stay
	// while its listing is pending (a lost connection keeps the last known
	// set).
	old := map[string]*root{}
	for full, r := range w.roots {
		if !containsRoot(w.current.Discover, r.spec) {
			old[full] = r
			delete(w.roots, full)
		}
	}
	var newRoots []*root
	for _, d := range w.current.Discover {
		full := w.full(d.Path)
		if _, ok := w.roots[full]; !ok {
			r := &root{spec: d, full: full}
			if o := old[full]; o != nil {
				r.exists, r.children, r.missingLogged = o.exists, o.children, o.missingLogged
			}
			w.roots[full] = r
			newRoots = append(newRoots, r)
		}
	}
	if err := w.runAll(len(newRoots), func(i int) error { return w.listRoot(newRoots[i]) }); err != nil {
		w.requeue(err, func() {
			for _, r := range newRoots {
				w.retry[r.full] |= evChildren
			}
		})
	}
	ch := w.reconcile()
	// Those still configured are watched now, and published when listed;
	// publishTouched leaves out of Removed every name that is watched.
	ch.removed = append(ch.removed, w.takeUnlisted()...)
	w.process(events, ch, time.Time{})
}

// reconcile makes w.services match the wanted set (configured services
// plus those discovered under the roots) and returns the services that
// must be listed; removals are recorded for the next publish.
func (w *Watcher) reconcile() *changes {
	ch := &changes{listed: map[string]*service{}, fresh: map[string]bool{}}
	want := w.wanted()
	wanted := make(map[string]bool, len(want))
	var added []*service
	for _, spec := range want {
		wanted[spec.spec.Name] = true
		old, ok := w.services[spec.spec.Name]
		// A discovered service seen missing has no watch of its own (see
		// listService): its root listing it again is the sign to re-list.
		if ok && old.spec == spec.spec && old.discoveredBy == spec.discoveredBy &&
			(old.exists || old.discoveredBy == "") {
			continue
		}
		if ok {
			w.dropService(old)
		} else {
			ch.fresh[spec.spec.Name] = true
		}
		s := w.addService(spec)
		ch.listed[s.spec.Name] = s
		added = append(added, s)
	}
	for name, s := range w.services {
		if !wanted[name] {
			w.dropService(s)
			ch.removed = append(ch.removed, name)
		}
	}
	w.watchAdded(added)
	return ch
}

type changes struct {
	listed  map[string]*service // services to list in full
	touched map[string]*service // services whose state changed otherwise
	removed []string
	// fresh names the listed services that were not watched before:
	// published with no instances if their listing fails (see process).
	fresh map[string]bool
}

// process handles watch events (and the spec changes in ch, if any) and
// publishes one update for every service they touched. It is called with
// stepMu held, and lets it go while it waits for its reads.
func (w *Watcher) process(events map[string]eventKind, ch *changes, eventTime time.Time) {
	if ch == nil {
		ch = &changes{listed: map[string]*service{}, fresh: map[string]bool{}}
	}
	ch.touched = map[string]*service{}
	dataReads := map[string]*service{} // full path of an instance → its service
	created := map[string]*service{}   // full path of a new instance → its service
	gone := map[*service][]string{}    // instances whose znode was deleted
	var rootEvents []string
	for p, kind := range events {
		if _, ok := w.roots[p]; ok {
			rootEvents = append(rootEvents, p)
			continue
		}
		if s, ok := w.byPath[p]; ok {
			// The service's persistent watch also reports changes to the
			// data of its own znode, which no answer depends on.
			if kind != evData {
				ch.listed[s.spec.Name] = s
			}
			continue
		}
		s, name := w.knownInstance(p)
		switch {
		case s == nil:
			// A new instance, named by its service's persistent watch, is
			// read at once; anything else is a watch on something no longer
			// watched, or on an instance dropped already.
			if kind&evCreated != 0 {
				if s := w.newInstanceOf(p); s != nil {
					created[p] = s
				}
			}
			w.retire(p)
		case kind&evDeleted != 0:
			// The instance is gone: drop it now, without a round trip.
			// The parent's child watch fires as well and re-arms.
			gone[s] = append(gone[s], name)
			w.forgetNode(p)
			ch.touched[s.spec.Name] = s
			if kind&evCreated != 0 {
				created[p] = s // and registered again since
			}
		default:
			dataReads[p] = s
		}
	}
	for s, names := range gone {
		s.update(names, nil)
	}
	// Departures need no round trip: publish them before any read, so a
	// gone instance never waits on the re-listing its parent's event asks for.
	if len(ch.touched) > 0 {
		w.publishTouched(ch.touched, nil, eventTime, time.Now())
		ch.touched = map[string]*service{}
	}
	for _, p := range rootEvents {
		if err := w.listRoot(w.roots[p]); err != nil {
			w.requeue(err, func() { w.retry[p] |= events[p] })
		}
	}
	if len(rootEvents) > 0 {
		rc := w.reconcile()
		maps.Copy(ch.listed, rc.listed)
		maps.Copy(ch.fresh, rc.fresh)
		ch.removed = append(ch.removed, rc.removed...)
	}
	// Removals need no round trip either: a service dropped from the
	// config (or from its root) goes now, not after listings that a
	// server which stopped answering can hold for most of a session
	// timeout.
	if len(ch.removed) > 0 {
		w.publishTouched(nil, ch.removed, time.Time{}, time.Time{})
		ch.removed = nil
	}
	listed := make([]*service, 0, len(ch.listed))
	for _, s := range ch.listed {
		listed = append(listed, s)
	}
	var failed sync.Map
	// The reads wait on ZooKeeper round trips. Meanwhile a deletion in a
	// service they leave alone is applied as it arrives (applyDeletion),
	// rather than wait for them: stepMu is let go, and busy names the
	// services the reads change, whose deletions stay pending for the
	// next step (listService's takeDeletions counts on seeing them there).
	reading := len(listed)+len(dataReads)+len(created) > 0
	if reading {
		w.busy = make(map[*service]bool, len(listed)+len(dataReads)+len(created))
		for _, s := range listed {
			w.busy[s] = true
		}
		for _, s := range dataReads {
			w.busy[s] = true
		}
		for _, s := range created {
			w.busy[s] = true
		}
		w.stepMu.Unlock()
	}
	w.readCreated(created, eventTime)
	readers := w.readersEach(len(listed))
	_ = w.runAll(len(listed), func(i int) error {
		if err := w.listService(listed[i], readers); err != nil {
			failed.Store(listed[i].full, err)
		}
		return nil
	})
	reads, results, errs := w.readNodes(dataReads)
	readTime := time.Now()
	if reading {
		w.stepMu.Lock()
		w.busy = nil
	}
	clear(gone)
	reread := map[*service][]nodeRead{}
	for i, p := range reads {
		s := dataReads[p]
		switch {
		case errors.Is(errs[i], zk.ErrNoNode):
			gone[s] = append(gone[s], path.Base(p))
			w.forgetNode(p)
		case errs[i] != nil:
			w.requeue(errs[i], func() { w.retry[p] |= evData })
			continue
		default:
			reread[s] = append(reread[s], results[i])
		}
		ch.touched[s.spec.Name] = s
	}
	for s, names := range gone {
		s.update(names, reread[s])
		delete(reread, s)
	}
	for s, read := range reread {
		s.update(nil, read)
	}
	failed.Range(func(k, v any) bool {
		w.requeue(v.(error), func() { w.retry[k.(string)] |= evChildren })
		return true
	})
	for n, s := range ch.listed {
		// A failed listing keeps what was served, but a service new to
		// the watch had nothing served: it answers NODATA until listed,
		// as one added while the connection is known to be lost does
		// (publishUnlisted), never NXDOMAIN.
		if _, bad := failed.Load(s.full); bad && !ch.fresh[n] {
			continue
		}
		ch.touched[n] = s
	}
	w.publishTouched(ch.touched, ch.removed, eventTime, readTime)
}

// readCreated reads the new instances that persistent watches named, and
// publishes them before the listings of their services: the child event
// that follows each creation then finds the instance known, and its
// listing only sets the child watch again, so a new instance costs one
// round trip to be served and still two requests. Called by process with
// stepMu let go and the services in busy; it takes stepMu to publish.
func (w *Watcher) readCreated(created map[string]*service, eventTime time.Time) {
	if len(created) == 0 {
		return
	}
	paths, results, errs := w.readNodes(created)
	readTime := time.Now()
	w.stepMu.Lock()
	defer w.stepMu.Unlock()
	read := map[*service][]nodeRead{}
	for i, p := range paths {
		switch {
		case errs[i] == nil:
			read[created[p]] = append(read[created[p]], results[i])
		case errors.Is(errs[i], zk.ErrNoNode):
			// Gone again already; its deletion was reported too.
		default:
			w.requeue(errs[i], func() { w.retry[p] |= evCreated })
		}
	}
	touched := make(map[string]*service, len(read))
	for s, reads := range read {
		s.update(nil, reads)
		touched[s.spec.Name] = s
	}
	w.publishTouched(touched, nil, eventTime, readTime)
}

// readNodes reads the instance znodes in nodes (full path → service), in
// parallel, and returns their paths and, at the same index, what each
// read gave.
func (w *Watcher) readNodes(nodes map[string]*service) (paths []string, results []nodeRead, errs []error) {
	paths = make([]string, 0, len(nodes))
	for p := range nodes {
		paths = append(paths, p)
	}
	results = make([]nodeRead, len(paths))
	errs = make([]error, len(paths))
	_ = w.runAll(len(paths), func(i int) error {
		results[i], errs[i] = w.readNode(paths[i], nodes[paths[i]].spec)
		return nil
	})
	return paths, results, errs
}

// newInstanceOf returns the watched service that full would be an
// instance znode of, or nil.
func (w *Watcher) newInstanceOf(full string) *service {
	s, ok := w.byPath[path.Dir(full)]
	if !ok || w.services[s.spec.Name] != s {
		return nil
	}
	return s
}

// publishTouched publishes the current state of the touched services that
// are still watched and changed since they were last published, and the
// removals, as one update.
func (w *Watcher) publishTouched(touched map[string]*service, removed []string, eventTime, readTime time.Time) {
	u := Update{EventTime: eventTime}
	for _, n := range removed {
		// Removed and watched again in one step (a reload dropped a
		// configured service that a discover root now has): it is
		// published as changed; a name in both would read as removed.
		if _, back := w.services[n]; !back {
			u.Removed = append(u.Removed, n)
		}
	}
	if !eventTime.IsZero() {
		u.ReadTime = readTime
	}
	for _, s := range touched {
		if w.services[s.spec.Name] == s && s.unpublished {
			u.Services = append(u.Services, s.state())
			s.unpublished = false
		}
	}
	if len(u.Services) == 0 && len(u.Removed) == 0 {
		return
	}
	sort.Slice(u.Services, func(i, j int) bool { return u.Services[i].Name < u.Services[j].Name })
	w.opts.Publish(u)
}

// listRoot reads the children of a discover root and (re)arms its watch.
func (w *Watcher) listRoot(r *root) error {
	w.acquire()
	defer w.release()
	children, exists, _, err := w.childrenOrExists(r.full, true)
	if isDenied(err) {
		w.deny(r.full, "", err)
		r.exists, r.children = true, nil
		return nil
	}
	if err != nil {
		return err
	}
	w.allow(r.full)
	r.exists = exists
	sort.Strings(children)
	r.children = children
	// A discover root that is missing serves nothing and answers nothing
	// for it: a typo in its path would go unnoticed but for this line.
	switch {
	case !exists && !r.missingLogged:
		w.logger.Warn("discover path does not exist; its children are served once it is created (check the [[discover]] path)", "path", r.spec.Path)
		r.missingLogged = true
	case exists && r.missingLogged:
		w.logger.Info("discover path exists now", "path", r.spec.Path)
		r.missingLogged = false
	}
	return nil
}

// listService reads a service's child list (re-arming its child watch, or
// an exists watch while the path is missing), then reads every child that
// is new, on up to readers goroutines (see readersEach), and drops the
// ones that left.
func (w *Watcher) listService(s *service, readers int) error {
	if s.rewatch {
		// The exists watch of an earlier listing took the path's place
		// from its persistent watch (see zkclient.PersistentWatches): set
		// that again, and then a child watch, which it would silence.
		_ = w.persistent.Rearm(s.full)
		w.disarm(s.full, watchChild)
		s.rewatch = false
	}
	w.acquire()
	// A discovered service's creation is seen by its root's child watch;
	// an exists watch on its missing path would outlive the service (this
	// client cannot remove watches), one per service that ever left.
	children, exists, existsWatched, err := w.childrenOrExists(s.full, s.discoveredBy == "")
	w.release()
	s.rewatch = existsWatched
	if isDenied(err) {
		// Served as an existing service with no instances (NODATA), so
		// the other services keep serving and this one answers cleanly.
		w.deny(s.full, s.spec.Name, err)
		s.setPath(true, true)
		for name := range s.children() {
			w.forgetNode(s.full + "/" + name)
		}
		s.clearChildren()
		return nil
	}
	if err != nil {
		return err
	}
	w.allow(s.full)
	s.setPath(exists, false)
	present := make(map[string]bool, len(children))
	// Deleted before this listing was answered, yet listed: a new znode
	// of the same name (an instance restarted under a fixed ID). Its own
	// deletion event would otherwise drop it after this, with no child
	// event left to bring it back. That holds for a child the service did
	// not have too: a service added again (a reload changed its format)
	// is listed afresh, while the data watches set for the one it
	// replaces still fire.
	recreated := w.takeDeletions(s.full, children)
	var fresh, gone []string
	for _, c := range children {
		present[c] = true
		if recreated[c] {
			w.forgetNode(s.full + "/" + c)
		}
		if _, had := s.version(c); !had {
			fresh = append(fresh, c)
		} else if recreated[c] {
			gone = append(gone, c)
			fresh = append(fresh, c)
		}
	}
	for name := range s.children() {
		if !present[name] {
			gone = append(gone, name)
			w.forgetNode(s.full + "/" + name)
		}
	}
	results := make([]nodeRead, len(fresh))
	errs := make([]error, len(fresh))
	_ = runOn(len(fresh), readers, func(i int) error {
		results[i], errs[i] = w.readNode(s.full+"/"+fresh[i], s.spec)
		return nil
	})
	read := results[:0]
	var firstErr error
	for i := range fresh {
		switch {
		case errs[i] == nil:
			read = append(read, results[i])
		case errors.Is(errs[i], zk.ErrNoNode):
			// Gone between the list and the read; its child event follows.
		case firstErr == nil:
			firstErr = errs[i]
		}
	}
	s.update(gone, read)
	return firstErr
}

// takeDeletions takes the deletions pending for the children of dir
// named in names, and returns those names: the caller has handled them.
// Events are recorded on the client's receive goroutine before it reads
// the next reply, so a deletion pending when a listing's reply is in hand
// came before that reply. Nothing is pending in a sync, as a rule, which
// then costs one lock per listing.
func (w *Watcher) takeDeletions(dir string, names []string) map[string]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	var taken map[string]bool
	for _, name := range names {
		if len(w.pending) == 0 {
			break
		}
		full := dir + "/" + name
		if w.pending[full]&evDeleted == 0 {
			continue
		}
		delete(w.pending, full)
		if taken == nil {
			taken = map[string]bool{}
		}
		taken[name] = true
	}
	return taken
}

// childrenOrExists lists path under a child watch; a missing path gets an
// exists watch instead when watchCreation is set, so its creation is seen.
// existsWatched reports that it set one.
func (w *Watcher) childrenOrExists(full string, watchCreation bool) (children []string, exists, existsWatched bool, err error) {
	for range 3 {
		listed, listErr := w.children(full)
		if listErr == nil {
			return listed, true, existsWatched, nil
		}
		if !errors.Is(listErr, zk.ErrNoNode) {
			return nil, false, existsWatched, fmt.Errorf("zkwatch: list %s: %w", full, listErr)
		}
		if !watchCreation {
			return nil, false, existsWatched, nil
		}
		w.opts.Metrics.request(opExistsWatch)
		ok, _, _, existsErr := w.conn.ExistsW(full)
		if existsErr != nil {
			return nil, false, existsWatched, fmt.Errorf("zkwatch: watch %s for creation: %w", full, existsErr)
		}
		existsWatched = true
		if !ok {
			return nil, false, true, nil
		}
		// Created between the two calls: list it again.
	}
	return nil, false, existsWatched, fmt.Errorf("zkwatch: list %s: path keeps appearing and vanishing", full)
}

// children lists path under a child watch, unless one is armed already.
func (w *Watcher) children(path string) ([]string, error) {
	if !w.arm(path, watchChild) {
		w.opts.Metrics.request(opChildren)
		children, _, err := w.conn.Children(path)
		return children, err
	}
	w.opts.Metrics.request(opChildrenWatch)
	children, _, _, err := w.conn.ChildrenW(path)
	if err != nil {
		w.disarm(path, watchChild)
	}
	return children, err
}

// get reads path under a data watch, unless one is armed already.
func (w *Watcher) get(path string) ([]byte, *zk.Stat, error) {
	if !w.arm(path, watchData) {
		w.opts.Metrics.request(opGet)
		return w.conn.Get(path)
	}
	w.opts.Metrics.request(opGetWatch)
	data, st, _, err := w.conn.GetW(path)
	if err != nil {
		w.disarm(path, watchData)
	}
	return data, st, err
}

// readNode reads one instance znode under a data watch and decodes it. A
// payload that does not decode is kept as an invalid node (so it is not
// re-read until it changes) and logged once per znode version.
func (w *Watcher) readNode(full string, spec ServiceSpec) (nodeRead, error) {
	w.acquire()
	data, st, err := w.get(full)
	w.release()
	if isDenied(err) {
		// Kept as an invalid instance, so the rest of the service is
		// published and this one is not read again on every listing.
		w.deny(full, spec.Name, err)
		return nodeRead{name: path.Base(full), err: errAccessDenied}, nil
	}
	if err != nil {
		if errors.Is(err, zk.ErrNoNode) {
			return nodeRead{}, err
		}
		return nodeRead{}, fmt.Errorf("zkwatch: read %s: %w", full, err)
	}
	w.allow(full)
	n := nodeRead{name: path.Base(full), mzxid: st.Mzxid}
	n.inst, n.err = Decode(spec.Format, spec.Endpoint, Node{
		Name:  n.name,
		Data:  data,
		Ctime: time.UnixMilli(st.Ctime),
	})
	if n.err != nil {
		w.logDecodeError(full, st.Mzxid, spec, n.err)
	}
	return n, nil
}

func (w *Watcher) logDecodeError(full string, mzxid int64, spec ServiceSpec, err error) {
	w.badMu.Lock()
	seen := w.badLogged[full] == mzxid
	w.badLogged[full] = mzxid
	w.badMu.Unlock()
	if !seen {
		w.opts.Metrics.decodeError(spec.Name)
		w.logger.Warn("skipping instance: payload does not decode",
			"service", spec.Name, "znode", full, "format", spec.Format, "err", err)
	}
}

// requeue keeps work that failed because the connection went away, for
// the reconnect: such a request may never have reached ZooKeeper and set
// no watch, so no event would bring the work back. Any other failure is
// logged and left to the next event.
func (w *Watcher) requeue(err error, keep func()) {
	if zkclient.ConnectionEnded(err) {
		keep()
		return
	}
	w.logger.Warn("zookeeper read failed", "err", err)
}

// forgetNode drops what is remembered about an instance znode that left.
func (w *Watcher) forgetNode(full string) {
	w.badMu.Lock()
	delete(w.badLogged, full)
	w.badMu.Unlock()
	w.access.mu.Lock()
	delete(w.access.denied, full)
	w.access.mu.Unlock()
}

// onlyConnectionErrors passes on an error that a reconnect may cure and
// logs any other (a NoAuth on one path must not stop the others).
func (w *Watcher) onlyConnectionErrors(err error) error {
	if err == nil || zkclient.ConnectionEnded(err) {
		return err
	}
	w.logger.Warn("zookeeper read failed", "err", err)
	return nil
}

// runAll calls f(0) … f(n-1) on up to Concurrency goroutines at once and
// returns the first error a call returned; every call is made. Requests
// share one connection; the client pipelines them.
func (w *Watcher) runAll(n int, f func(i int) error) error {
	return runOn(n, w.opts.Concurrency, f)
}

// runOn calls f(0) … f(n-1) on up to workers goroutines and returns the
// first error a call returned; every call is made. With one worker (or
// one call) they run on the caller's goroutine: most events ask for one
// read, and the hand-off to another goroutine costs a busy host more
// than the work. Each worker takes the next call as it finishes one, so
// a sync's hundred thousand reads start a few dozen goroutines, whose
// stacks grow once, instead of one goroutine per read, each growing its
// stack for the payload decoder.
func runOn(n, workers int, f func(i int) error) error {
	workers = min(n, workers)
	if workers <= 1 {
		var first error
		for i := range n {
			if err := f(i); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	wg.Wait()
	return first
}

// readersEach is how many goroutines each of n services listed at once
// reads its new instances with. The Concurrency goroutines that list them
// are shared out: in a sync of thousands of services, each service's
// instances are read one after another on the goroutine that listed it,
// with Concurrency services, and as many reads, under way at once; a
// single new service with hundreds of instances reads them Concurrency
// at a time.
func (w *Watcher) readersEach(n int) int {
	return max(1, w.opts.Concurrency/max(1, min(n, w.opts.Concurrency)))
}

func (w *Watcher) acquire() { w.requestsLimit <- struct{}{} }
func (w *Watcher) release() { <-w.requestsLimit }

type wantedService struct {
	spec         ServiceSpec
	discoveredBy string
}

// wanted is the set of services to watch: the configured ones, then one
// per child of each discover root (a configured service of the same name,
// or at the same path, wins; between roots, the first in config order
// wins; a child that is itself a discover root is not a service). One path
// is one service: its events reach one service only.
func (w *Watcher) wanted() []wantedService {
	var out []wantedService
	seen := map[string]bool{}
	seenPath := map[string]bool{}
	for _, s := range w.current.Services {
		seen[s.Name] = true
		seenPath[w.full(s.Path)] = true
		out = append(out, wantedService{spec: s})
	}
	for _, r := range w.rootsOrdered() {
		for _, child := range r.children {
			p := strings.TrimSuffix(r.spec.Path, "/") + "/" + child
			full := w.full(p)
			if seen[child] || seenPath[full] || w.roots[full] != nil {
				continue
			}
			seen[child] = true
			seenPath[full] = true
			out = append(out, wantedService{
				spec: ServiceSpec{
					Name:     child,
					Path:     p,
					Format:   r.spec.Format,
					Endpoint: r.spec.Endpoint,
				},
				discoveredBy: r.spec.Path,
			})
		}
	}
	return out
}

func (w *Watcher) rootsOrdered() []*root {
	out := make([]*root, 0, len(w.roots))
	for _, d := range w.current.Discover {
		if r, ok := w.roots[w.full(d.Path)]; ok {
			out = append(out, r)
		}
	}
	return out
}

func (w *Watcher) servicesOrdered() []*service {
	out := make([]*service, 0, len(w.services))
	for _, s := range w.services {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].spec.Name < out[j].spec.Name })
	return out
}

func (w *Watcher) addService(ws wantedService) *service {
	s := &service{
		spec:         ws.spec,
		full:         w.full(ws.spec.Path),
		discoveredBy: ws.discoveredBy,
		unpublished:  true,
	}
	w.services[s.spec.Name] = s
	w.byPath[s.full] = s
	return s
}

// watchAdded sets the persistent watches of services just added, before
// their first listing, whose child watch must come after them to keep its
// mode (see zkclient.PersistentWatches); a sync's thousands go out in a
// few writes. A dropped service of the same path may have left both
// armed; a child watch set before a new persistent watch is set anew
// after it. With no connection the next one sets the persistent watches;
// on a server without them, new instances are read after their listing.
func (w *Watcher) watchAdded(added []*service) {
	paths := make([]string, 0, len(added))
	for _, s := range added {
		delete(w.dormant, s.full)
		paths = append(paths, s.full)
	}
	wrote, _ := w.persistent.AddAll(paths)
	for _, p := range wrote {
		w.disarm(p, watchChild)
	}
}

// dropService forgets a service. ZooKeeper 3.8's one-shot watches on it
// cannot be removed through this client; they fire at most once more and
// the event is ignored because the path is no longer known.
func (w *Watcher) dropService(s *service) {
	delete(w.services, s.spec.Name)
	if w.byPath[s.full] == s {
		delete(w.byPath, s.full)
		w.unwatch(s.full)
	}
	w.forget(s)
}

// unwatch takes the persistent watch off the path of a service no longer
// watched. While the path's child watch is armed, it stays, dormant, until
// that fires (retire): a service of the same path added back meanwhile
// takes both as they are, where a new persistent watch would silence the
// child watch and call for a new one, and reloads that drop a service and
// add it back would pile up child watches in the client.
func (w *Watcher) unwatch(full string) {
	if w.isArmed(full, watchChild) {
		w.persistent.Forget(full)
		w.dormant[full] = true
		return
	}
	_ = w.persistent.Remove(full) // a connection that ended took it along
}

// retire takes off the dormant persistent watch of full, a path no longer
// watched, once its child watch has fired.
func (w *Watcher) retire(full string) {
	if w.dormant[full] && !w.isArmed(full, watchChild) {
		delete(w.dormant, full)
		_ = w.persistent.Remove(full)
	}
}

// forget drops what is remembered about a service no longer watched: its
// znodes' reports and its metrics.
func (w *Watcher) forget(s *service) {
	for name := range s.children() {
		w.forgetNode(s.full + "/" + name)
	}
	w.forgetNode(s.full)
	w.opts.Metrics.forgetService(s.spec.Name)
}

func (w *Watcher) full(p string) string {
	if w.opts.Root == "" || w.opts.Root == "/" {
		return p
	}
	return strings.TrimSuffix(w.opts.Root, "/") + p
}

func countInstances(states []ServiceState) int {
	n := 0
	for _, s := range states {
		n += len(s.Instances)
	}
	return n
}

func containsRoot(list []DiscoverSpec, d DiscoverSpec) bool {
	for _, x := range list {
		if x == d {
			return true
		}
	}
	return false
}

// cloneSpec copies s with empty formats spelled "auto", so that specs
// compare equal exactly when they watch the same way.
func cloneSpec(s Spec) Spec {
	out := Spec{
		Services: append([]ServiceSpec(nil), s.Services...),
		Discover: append([]DiscoverSpec(nil), s.Discover...),
	}
	for i := range out.Services {
		if out.Services[i].Format == "" {
			out.Services[i].Format = "auto"
		}
	}
	for i := range out.Discover {
		if out.Discover[i].Format == "" {
			out.Discover[i].Format = "auto"
		}
	}
	return out
}
