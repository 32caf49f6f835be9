package registrar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdns/zkdns/internal/zkclient"
)

// Defaults for the zero values of Options.
const (
	DefaultSessionTimeout = 10 * time.Second
	DefaultInterval       = 2 * time.Second
	DefaultTimeout        = time.Second
	DefaultRise           = 2
	DefaultFall           = 3
	DefaultWarmupRequests = 10
	DefaultWarmupTimeout  = time.Minute
	// DefaultDrain is twice zkdns's default DNS TTL of 5 s: long enough for
	// a client that resolved just before the deregistration to have
	// resolved again.
	DefaultDrain = 10 * time.Second
)

// NoDrain as Options.Drain means no wait at all after deregistering.
const NoDrain time.Duration = -1

// ErrInvalidOptions is wrapped by every error New returns for Options that
// cannot work, so a command can tell a usage error from a runtime one.
var ErrInvalidOptions = errors.New("registrar: invalid options")

// OptionError is an error New returns for an Options field that cannot
// work. It names the field, so that a program can report the problem
// where its user set the value (zkdns register names the flag, or the
// line of its config file), and it wraps ErrInvalidOptions.
//
// When required fields are zero, New returns one error for all of them,
// worded on one line ("missing Servers (…), Path (…)"); its
// Unwrap() []error gives an *OptionError for each, and errors.As finds the
// first.
type OptionError struct {
	// Option is the name of the Options field at fault, such as "Port",
	// or of the entry of a map field, such as Metadata["weight"].
	Option string
	// Err says what is wrong with the field's value, worded to follow its
	// name: "70000 is out of range (want 1-65535)".
	Err error
}

// Error returns "registrar: invalid options: ", the field's name and Err,
// as in "registrar: invalid options: Port 70000 is out of range (want
// 1-65535)".
func (e *OptionError) Error() string {
	return ErrInvalidOptions.Error() + ": " + e.Option + " " + e.Err.Error()
}

// Unwrap returns Err.
func (e *OptionError) Unwrap() error { return e.Err }

// Is reports whether target is ErrInvalidOptions.
func (e *OptionError) Is(target error) bool { return target == ErrInvalidOptions }

// required is the Err of a required field left zero; it says what the
// field holds.
type required string

func (r required) Error() string { return "is required: " + string(r) }

// missingOptions is New's error for required fields left zero: an
// *OptionError for each, whose Err is a required.
type missingOptions []*OptionError

// Error lists the fields on one line: "registrar: invalid options: missing
// Servers (the ZooKeeper ensemble), Port (the instance's port)".
func (m missingOptions) Error() string {
	fields := make([]string, len(m))
	for i, e := range m {
		fields[i] = e.Option
		if holds, ok := e.Err.(required); ok {
			fields[i] += " (" + string(holds) + ")"
		}
	}
	return ErrInvalidOptions.Error() + ": missing " + strings.Join(fields, ", ")
}

func (m missingOptions) Unwrap() []error {
	errs := make([]error, len(m))
	for i, e := range m {
		errs[i] = e
	}
	return errs
}

// Auth is a ZooKeeper authentication, added to the session before the
// first request and re-sent by the client after every reconnect.
type Auth struct {
	// Scheme is the ZooKeeper auth scheme; "" means "digest".
	Scheme string
	// Credentials are the scheme's credentials; for digest, "user:password".
	// They are never logged.
	Credentials string
}

// Options configures a registration. The zero value is not enough on its
// own: Servers, Path and Port are required. Every other field has a
// documented default for its zero value.
type Options struct {
	// Servers are the ZooKeeper ensemble members, host:port. Required.
	Servers []string
	// SessionTimeout is the requested ZooKeeper session timeout, and so how
	// long a crashed registrar's znode outlives it; zero means 10s.
	SessionTimeout time.Duration
	// Auth, when not nil, authenticates the session. The instance znode
	// then gets an ACL that lets anyone read it and only this identity
	// change it; missing parents are always created open to all.
	Auth *Auth

	// Path is the service's znode, whose children are its instances, such
	// as /services/payments. Required; missing parents are created as
	// persistent znodes.
	Path string
	// ID names the instance's znode (Path/ID) and is written into curator
	// payloads. Zero means "<address>-<port>" with characters that do not
	// belong in a DNS label replaced by '-'. Serverset ignores it: its
	// members are named member_NNNNNNNNNN by ZooKeeper.
	ID string
	// Name is the service name written in curator payloads; zero means
	// the last element of Path. Nerve's name is the instance ID, as nerve
	// writes it, whatever Name says.
	Name string
	// Address is where clients reach the instance: an IP address or a
	// hostname. Zero means this host's primary address: the source
	// address of its default route, or else the first global address of
	// an interface that is up.
	Address string
	// Port is the instance's port, 1–65535. Required.
	Port int
	// Format is the payload format, one of FormatCurator (the zero value),
	// FormatServerset, FormatNerve or FormatHostport.
	Format string
	// Metadata is written as curator payload.metadata and nerve labels;
	// serverset keeps only an integer "shard", hostport has no place for
	// any. A "weight" entry is the base SRV weight to curator readers,
	// zkdns among them, so it is held to Weight's range, 1–65535, and
	// must be the same number when Weight is set too.
	Metadata map[string]string
	// Weight is the base SRV weight, written as curator
	// payload.metadata.weight and nerve weight, 1–65535. Zero writes none,
	// which zkdns reads as 100. Serverset and hostport cannot carry it.
	Weight int

	// Check is the health check: "http://…" or "https://…" (healthy on a
	// 2xx answer to GET; a redirect is not followed, and fails),
	// "tcp://host:port" (healthy when a connection opens) or
	// "exec:COMMAND" (healthy when COMMAND, run by /bin/sh -c, exits 0;
	// what it leaves running in its process group is killed once it
	// exits). Zero means no check: always healthy.
	Check string
	// Interval is the time between the starts of two checks; zero means 2s.
	Interval time.Duration
	// Timeout bounds one check; zero means 1s.
	Timeout time.Duration
	// Rise is how many checks in a row must pass before the instance is
	// registered, or re-registered after a fall; zero means 2.
	Rise int
	// Fall is how many checks in a row must fail before a registered
	// instance is removed; zero means 3.
	Fall int

	// Warmup runs once, after the first time the checks rise and before
	// the first registration: "exec:COMMAND" runs COMMAND with /bin/sh -c
	// and needs exit status 0; "http://…" or "https://…" GETs the URL
	// WarmupRequests times and needs a 2xx answer every time (redirects
	// are not followed, as for Check). A failed warm-up is tried again
	// after the next passing check (every Interval without a Check), and
	// logged the first time and whenever its reason changes; nothing is
	// registered until one succeeds. Zero means no warm-up.
	Warmup string
	// WarmupRequests is how many GETs an HTTP warm-up sends; zero means 10.
	WarmupRequests int
	// WarmupTimeout bounds one warm-up attempt; zero means 1 minute.
	WarmupTimeout time.Duration

	// Drain is how long Run waits after deleting the znode on the way out,
	// so that clients whose DNS answers still name the instance resolve
	// again before it stops. Zero means DefaultDrain (10s); NoDrain (or
	// any negative value) means no wait.
	Drain time.Duration

	// Logger receives one line per state change, tagged
	// component=registrar; nil discards them.
	Logger *slog.Logger
}

// Registrar keeps one instance registered according to its Options.
// Create it with New; its Run may be called once.
type Registrar struct {
	opts   Options // with defaults applied
	info   instanceInfo
	check  probe // nil: always healthy
	warmup probe // nil: none
	acl    []zk.ACL
	logger *slog.Logger
	ran    atomic.Bool
	// warnings paces the warnings about unreachable servers over every
	// session Run opens.
	warnings *zkclient.ConnectWarnings
}

// Run validates opts and runs the registration until ctx ends; see
// (*Registrar).Run.
func Run(ctx context.Context, opts Options) error {
	r, err := New(opts)
	if err != nil {
		return err
	}
	return r.Run(ctx)
}

// New validates opts, applies the defaults and resolves the default
// address. It does not connect: Run does. A field that cannot work is
// reported as an *OptionError naming it; required fields left zero as one
// error joining an *OptionError for each. Both wrap ErrInvalidOptions.
func New(opts Options) (*Registrar, error) {
	invalid := func(option, format string, args ...any) error {
		return &OptionError{Option: option, Err: fmt.Errorf(format, args...)}
	}
	var missing missingOptions
	for _, r := range []struct {
		option string
		holds  required
		zero   bool
	}{
		{"Servers", "the ZooKeeper ensemble", len(opts.Servers) == 0},
		{"Path", "the service's znode, such as /services/payments", opts.Path == ""},
		{"Port", "the instance's port", opts.Port == 0},
	} {
		if r.zero {
			missing = append(missing, &OptionError{Option: r.option, Err: r.holds})
		}
	}
	if len(missing) > 0 {
		return nil, missing
	}
	for _, s := range opts.Servers {
		if strings.TrimSpace(s) == "" {
			return nil, invalid("Servers", "has an empty entry")
		}
		if problem := checkServer(s); problem != "" {
			return nil, invalid("Servers", "%q: %s", s, problem)
		}
	}
	if err := checkPath(opts.Path); err != nil {
		return nil, &OptionError{Option: "Path", Err: err}
	}
	if opts.Port < 1 || opts.Port > 65535 {
		return nil, invalid("Port", "%d is out of range (want 1-65535)", opts.Port)
	}
	if opts.Format == "" {
		opts.Format = FormatCurator
	}
	if !slices.Contains(formats(), opts.Format) {
		return nil, invalid("Format", "%q is not one of %s", opts.Format, strings.Join(formats(), ", "))
	}
	if opts.Weight < 0 || opts.Weight > 65535 {
		return nil, invalid("Weight", "%d is out of range (want 1-65535, or 0 for none)", opts.Weight)
	}
	for k := range opts.Metadata {
		if k == "" {
			return nil, invalid("Metadata", "has an empty key")
		}
	}
	if v, ok := opts.Metadata["weight"]; ok {
		if err := checkMetadataWeight(v, opts.Weight); err != nil {
			return nil, &OptionError{Option: `Metadata["weight"]`, Err: err}
		}
	}
	// In the order of Options, so that of several bad fields the same one
	// is reported every time.
	for _, d := range []struct {
		option string
		value  time.Duration
	}{
		{"SessionTimeout", opts.SessionTimeout}, {"Interval", opts.Interval},
		{"Timeout", opts.Timeout}, {"WarmupTimeout", opts.WarmupTimeout},
	} {
		if d.value < 0 {
			return nil, invalid(d.option, "%v is negative", d.value)
		}
	}
	for _, n := range []struct {
		option string
		value  int
	}{
		{"Rise", opts.Rise}, {"Fall", opts.Fall}, {"WarmupRequests", opts.WarmupRequests},
	} {
		if n.value < 0 {
			return nil, invalid(n.option, "%d is negative", n.value)
		}
	}
	if opts.Auth != nil && opts.Auth.Credentials == "" {
		return nil, invalid("Auth", "has no Credentials")
	}
	setDefault(&opts.SessionTimeout, DefaultSessionTimeout)
	setDefault(&opts.Interval, DefaultInterval)
	setDefault(&opts.Timeout, DefaultTimeout)
	setDefault(&opts.WarmupTimeout, DefaultWarmupTimeout)
	setDefault(&opts.Rise, DefaultRise)
	setDefault(&opts.Fall, DefaultFall)
	setDefault(&opts.WarmupRequests, DefaultWarmupRequests)
	switch {
	case opts.Drain == 0:
		opts.Drain = DefaultDrain
	case opts.Drain < 0:
		opts.Drain = NoDrain
	}
	if opts.Name == "" {
		opts.Name = path.Base(opts.Path)
	}

	client := newProbeClient()
	check, err := parseCheck(opts.Check, client)
	if err != nil {
		return nil, &OptionError{Option: "Check", Err: err}
	}
	warmup, err := parseWarmup(opts.Warmup, opts.WarmupRequests, client)
	if err != nil {
		return nil, &OptionError{Option: "Warmup", Err: err}
	}

	if opts.Address == "" {
		if opts.Address, err = primaryAddress(); err != nil {
			return nil, err
		}
	} else if opts.Address, err = checkAddress(opts.Address); err != nil {
		return nil, &OptionError{Option: "Address", Err: err}
	}
	if opts.ID == "" {
		opts.ID = defaultID(opts.Address, opts.Port)
	} else if err := checkID(opts.ID); err != nil {
		return nil, &OptionError{Option: "ID", Err: err}
	}

	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "registrar")
	opts.Servers = slices.Clone(opts.Servers)
	opts.Metadata = maps.Clone(opts.Metadata)
	if opts.Auth != nil {
		a := *opts.Auth
		if a.Scheme == "" {
			a.Scheme = "digest"
		}
		opts.Auth = &a
	}
	acl := zk.WorldACL(zk.PermAll)
	if opts.Auth != nil {
		acl = append(zk.WorldACL(zk.PermRead), zk.AuthACL(zk.PermAll)...)
	}
	return &Registrar{
		opts: opts,
		info: instanceInfo{
			name:     opts.Name,
			id:       opts.ID,
			address:  opts.Address,
			port:     opts.Port,
			weight:   opts.Weight,
			metadata: opts.Metadata,
		},
		check:    check,
		warmup:   warmup,
		acl:      acl,
		logger:   logger,
		warnings: zkclient.NewConnectWarnings(),
	}, nil
}

// checkMetadataWeight checks the "weight" entry of Metadata, v, against
// Weight, weight. zkdns reads a curator payload's metadata weight as the
// base weight, clamping what is out of range and reading what is no
// number as 100: unchecked, 0 would take the instance out of SRV load
// balancing, and a typo would go unnoticed.
func checkMetadataWeight(v string, weight int) error {
	w, err := strconv.Atoi(v)
	switch {
	case errors.Is(err, strconv.ErrRange), err == nil && (w < 1 || w > 65535):
		return fmt.Errorf("%s is out of range (want 1-65535: it is the base SRV weight)", v)
	case err != nil:
		return fmt.Errorf("%q is not an integer (want 1-65535: it is the base SRV weight)", v)
	case weight != 0 && w != weight:
		return fmt.Errorf("%d differs from the base weight set on its own, %d: give the weight once", w, weight)
	}
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// checkPath validates a service path: absolute, no trailing slash, no
// empty, "." or ".." elements.
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") || p == "/" {
		return fmt.Errorf("%q must be an absolute znode path below /, such as /services/payments", p)
	}
	for _, elem := range strings.Split(p[1:], "/") {
		if elem == "" || elem == "." || elem == ".." {
			return fmt.Errorf("%q has an empty, \".\" or \"..\" element", p)
		}
		if err := checkID(elem); err != nil {
			return fmt.Errorf("%q: %w", p, err)
		}
	}
	return nil
}

// Run registers the instance and keeps its registration in line with its
// health until ctx ends, then takes it offline: marks the znode draining
// (curator, serverset), deletes it, waits Drain, closes the ZooKeeper
// session and returns nil.
//
// Nothing is written to ZooKeeper before the check has passed Rise times
// in a row and the warm-up has succeeded. A ZooKeeper that is unreachable
// is not an error: Run keeps trying. Run returns an error only when
// ZooKeeper refuses the registration for a reason retrying cannot fix
// (ACLs, authentication, a persistent znode at Path/ID), and then also
// after taking the instance offline.
func (r *Registrar) Run(ctx context.Context) error {
	if !r.ran.CompareAndSwap(false, true) {
		return errors.New("registrar: Run called twice; create a new Registrar with New")
	}
	s := &run{r: r, wake: make(chan struct{}, 1)}
	if err := s.connect(); err != nil {
		return err
	}
	// The loop may replace s.conn (see renew); offline closes the last one.
	defer func() { s.conn.Close() }()
	r.warnUnwritable()

	checks := &checker{
		probe:    r.check,
		spec:     r.opts.Check,
		interval: r.opts.Interval,
		timeout:  r.opts.Timeout,
		rise:     r.opts.Rise,
		fall:     r.opts.Fall,
		logger:   r.logger,
	}
	checkCtx, stopChecks := context.WithCancel(ctx)
	verdicts := make(chan verdict, 1)
	var wg sync.WaitGroup
	wg.Go(func() { checks.run(checkCtx, verdicts) })

	loopCtx, stopLoop := context.WithCancel(ctx)
	loopErr := s.loop(loopCtx, verdicts)
	stopLoop() // ends the probes too
	s.probes.Wait()
	stopChecks()
	wg.Wait()
	s.offline()
	return loopErr
}

// warnUnwritable logs the options the payload format has no place for.
func (r *Registrar) warnUnwritable() {
	var lost []string
	switch r.opts.Format {
	case FormatServerset:
		if r.opts.Weight != 0 {
			lost = append(lost, "weight")
		}
		for k, v := range r.opts.Metadata {
			if _, err := strconv.Atoi(v); k != "shard" || err != nil {
				lost = append(lost, "metadata "+k) // a serverset shard is a number
			}
		}
	case FormatNerve:
		if _, ok := r.opts.Metadata["name"]; ok {
			lost = append(lost, "metadata name") // nerve's name field is the instance ID
		}
	case FormatHostport:
		if r.opts.Weight != 0 {
			lost = append(lost, "weight")
		}
		for k := range r.opts.Metadata {
			lost = append(lost, "metadata "+k)
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		r.logger.Warn("the payload format has no place for some options; they are not written",
			"format", r.opts.Format, "ignored", strings.Join(lost, ", "))
	}
}

// connect opens a new zk.Conn (with no session and no zxid seen) as
// s.conn, closing the one it replaces.
func (s *run) connect() error {
	r := s.r
	// Events of a connection that was replaced are dropped (see onEvent).
	gen := s.connGen.Add(1)
	refusals := zkclient.NewRefusals(r.opts.SessionTimeout)
	conn, _, err := zk.Connect(r.opts.Servers, r.opts.SessionTimeout,
		zk.WithEventCallback(func(ev zk.Event) { s.onEvent(gen, refusals, ev) }),
		zk.WithLogger(zkclient.Logger{L: r.logger, HandshakeFailed: refusals.HandshakeFailed, Warnings: r.warnings}),
		zk.WithDialer(zkclient.CappedDialer(r.opts.SessionTimeout*2/3)),
		zk.WithHostProvider(&zkclient.HostProvider{Logger: r.logger}),
	)
	if err != nil {
		s.connGen.Store(gen - 1) // the running connection's events still count
		return fmt.Errorf("registrar: connect to ZooKeeper %s: %w", strings.Join(r.opts.Servers, ","), err)
	}
	if s.conn != nil {
		s.conn.Close()
	}
	s.conn = conn
	s.connected, s.authed = false, false
	return nil
}

// renew replaces a zk.Conn that no server will take back (see
// zkclient.Refusals) with a new one. Its session is new: sessionEvents
// then finds the znode gone with the old one, and the instance registers
// again, as after an expiry.
func (s *run) renew(refusals *zkclient.Refusals) {
	since, reason := refusals.Refused()
	s.r.logger.Warn("no ZooKeeper server accepts this session; starting a new one "+
		"(a server that lost its data, or a rebuilt ensemble, turns away clients that saw newer transactions)",
		"session", sessionHex(s.sessionID), "refused_for", time.Since(since).Round(time.Second), "err", reason)
	if err := s.connect(); err != nil {
		// zk.Connect fails only on options that worked the first time.
		s.r.logger.Error("could not start a new ZooKeeper session; keeping the old one", "err", err)
	}
}

// retryDelay is how soon a ZooKeeper request that failed is tried again,
// when no session event or check result comes first.
const retryDelay = time.Second

// run is the state of one Run. Apart from mu's fields, it belongs to the
// goroutine running loop.
type run struct {
	r    *Registrar
	conn *zk.Conn

	mu     sync.Mutex // guards states, nodeEvent, lostAt, probe and refused, set by the client's event callback
	states []zk.State
	// probe is set, to the connection's Refusals, when its handshakes
	// have failed for a session timeout: the loop probes for a new
	// session. refused is set when a server grants one while refusing the
	// connection's: the loop opens a new connection.
	probe, refused *zkclient.Refusals
	// nodeEvent is set when the watch on the registered znode (or on the
	// one another session took over) fires.
	nodeEvent bool
	// lostAt is when the connection was last lost, zero while connected:
	// the server heard from the session no later than that.
	lostAt time.Time
	wake   chan struct{} // capacity 1: session states or a node event are pending
	// connGen numbers the connections opened; events carry theirs, so
	// that those of a replaced connection are dropped.
	connGen atomic.Int64
	// probes tracks the probe goroutines the loop starts; Run waits for
	// them once the loop has ended.
	probes sync.WaitGroup

	connected     bool
	sessionID     int64 // the session last seen established; 0 before the first
	healthy       bool
	warmedUp      bool
	warmups       int    // warm-up attempts so far
	warmupReason  string // why the last failed warm-up failed, as logged
	authed        bool
	node          string    // the znode's path while registered, else ""
	nodeSession   int64     // the session that owns node
	registeredAt  time.Time // written in the payload of node
	registrations int       // successful registrations so far
	removedAt     time.Time // when the znode last stopped being served
	// inService is the registration time the payloads carry (curator
	// registrationTimeUTC), from the registration that put the instance
	// into service. It is kept across the re-registrations ZooKeeper
	// causes (an expired session, a znode deleted or taken over), or
	// zkdns's warm-up would ramp the weight of an instance that was
	// healthy all along up from nothing again; it is cleared when the
	// checks fail the instance, whose return is a new start.
	inService time.Time
	// orphans is set when a sequential create failed in a way that leaves
	// open whether ZooKeeper made the znode: the next registration, or
	// the next deregistration, first removes members of this session.
	orphans bool
	// unconfirmed is the fixed-name znode a create was sent for without an
	// answer, and when: it may exist, owned by this session. Taking the
	// instance out of service looks for it.
	unconfirmed   string
	unconfirmedAt time.Time
	// takenOver is this instance's fixed-name znode as another session
	// re-created it (a second registrar with the same ID): not registered
	// again while that one stands, or the two would take it from each
	// other in turn.
	takenOver string
}

// onEvent runs on the ZooKeeper client's goroutine for every event. It
// only records session states and node events for the loop; the client's
// own event channel would drop them when full. The only node this session
// watches is its own znode (or the one another session took over). gen
// is the connection's generation and refusals its Refusals.
func (s *run) onEvent(gen int64, refusals *zkclient.Refusals, ev zk.Event) {
	if s.connGen.Load() != gen {
		return
	}
	s.mu.Lock()
	switch ev.Type {
	case zk.EventSession:
		s.states = append(s.states, ev.State)
		switch refusals.Observe(ev.State) {
		case zkclient.Probe:
			s.probe = refusals
		case zkclient.Renew:
			s.refused = refusals
		}
		switch ev.State {
		case zk.StateDisconnected:
			if s.lostAt.IsZero() {
				s.lostAt = time.Now()
			}
		case zk.StateHasSession:
			s.lostAt = time.Time{}
		}
	case zk.EventNodeDeleted, zk.EventNodeDataChanged, zk.EventNodeCreated:
		s.nodeEvent = true
	default:
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// loop brings the registration in line with the health verdicts and the
// session until ctx ends (nil) or ZooKeeper refuses it for good (the
// error).
func (s *run) loop(ctx context.Context, verdicts <-chan verdict) error {
	retry := time.NewTimer(retryDelay)
	retry.Stop()
	defer retry.Stop()
	// Without a check there is one verdict only, so a failed warm-up is
	// retried each interval instead of after the next passing check.
	rewarm := time.NewTimer(s.r.opts.Interval)
	rewarm.Stop()
	defer rewarm.Stop()
	warmUp := func() {
		if !s.healthy || s.warmedUp {
			return
		}
		ok := s.warmUp(ctx)
		// The checks went on during the warm-up, which can take a minute
		// and load the service enough to fail them: act on their latest
		// verdict, not on the one that started the warm-up, or an
		// instance that fell meanwhile is registered and at once
		// deregistered again.
		select {
		case v := <-verdicts:
			s.healthy = v.healthy
		default:
		}
		if !ok && s.r.check == nil {
			rewarm.Reset(s.r.opts.Interval)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case v := <-verdicts:
			s.healthy = v.healthy
			warmUp()
		case <-rewarm.C:
			warmUp()
		case <-s.wake:
		case <-retry.C:
		}
		if ctx.Err() != nil {
			// select picks at random among ready cases: never register
			// after the cancel because a verdict was ready too.
			return nil
		}
		s.mu.Lock()
		probe, refused := s.probe, s.refused
		s.probe, s.refused = nil, nil
		s.mu.Unlock()
		if probe != nil {
			// Off the loop: a probe can take a session timeout, and health
			// verdicts keep coming meanwhile. Its result needs no wake-up:
			// the next refused handshake reports it.
			s.probes.Go(func() {
				probe.Probed(zkclient.ProbeNewSession(ctx, s.r.opts.Servers, s.r.opts.SessionTimeout,
					zkclient.CappedDialer(s.r.opts.SessionTimeout*2/3), s.r.logger))
			})
		}
		if refused != nil {
			s.renew(refused)
		}
		s.sessionEvents()
		err := s.checkNode()
		if err == nil {
			err = s.reconcile()
		}
		switch {
		case err == nil, errors.Is(err, errNoSession):
			// A new session wakes the loop by itself.
		case errors.Is(err, errPersistentInTheWay):
			// zkdns's refusal, not ZooKeeper's.
			s.r.logger.Error("cannot register: the instance's znode is taken by data no session owns", "err", err)
			return err
		case fatal(err):
			s.r.logger.Error("zookeeper refused the registration", "err", err)
			return err
		default:
			s.r.logger.Warn("zookeeper request failed; retrying", "err", err)
			retry.Reset(retryDelay)
		}
	}
}

// warmUp runs the warm-up, once it has succeeded never again, and
// reports whether the instance is warmed up. A failure while shutting down
// counts as success: there is nothing to retry. As with the checks, a
// failure is logged the first time and when its reason changes, not at
// every retry.
func (s *run) warmUp(ctx context.Context) bool {
	if s.r.warmup == nil {
		s.warmedUp = true
		return true
	}
	s.warmups++
	if s.warmups == 1 {
		s.r.logger.Info("warming up", "warmup", s.r.opts.Warmup)
	}
	start := time.Now()
	wctx, cancel := context.WithTimeoutCause(ctx, s.r.opts.WarmupTimeout,
		fmt.Errorf("warm-up took longer than %v", s.r.opts.WarmupTimeout))
	err := s.r.warmup(wctx)
	cancel()
	switch {
	case ctx.Err() != nil:
		// Shutting down: not a failure of the warm-up.
		return true
	case err != nil:
		if reason := err.Error(); reason != s.warmupReason {
			retry := "after each passing check"
			if s.r.check == nil {
				retry = "every " + s.r.opts.Interval.String()
			}
			s.r.logger.Warn("warm-up failed; not registering, will retry "+retry, "reason", reason, "attempt", s.warmups)
			s.warmupReason = reason
		}
		return false
	default:
		s.r.logger.Info("warmed up", "took", time.Since(start).Round(time.Millisecond), "attempts", s.warmups)
		s.warmedUp = true
		return true
	}
}

// sessionEvents logs the session changes the client reported and notices
// when the registered znode went with an expired session.
func (s *run) sessionEvents() {
	s.mu.Lock()
	states := s.states
	s.states = nil
	s.mu.Unlock()
	log := s.r.logger
	for _, st := range states {
		switch st {
		case zk.StateHasSession:
			if s.connected {
				continue
			}
			s.connected = true
			switch id := s.conn.SessionID(); {
			case s.sessionID == 0:
				log.Info("zookeeper session established", "session", sessionHex(id), "server", s.conn.Server())
			case id != s.sessionID:
				log.Info("zookeeper new session established", "session", sessionHex(id), "server", s.conn.Server())
			default:
				log.Info("zookeeper reconnected; session intact", "session", sessionHex(id), "server", s.conn.Server())
			}
		case zk.StateExpired:
			log.Warn("zookeeper session expired", "session", sessionHex(s.sessionID))
		case zk.StateAuthFailed:
			log.Error("zookeeper authentication failed")
		case zk.StateDisconnected:
			if s.connected {
				s.connected = false
				log.Warn("zookeeper connection lost")
			}
		}
	}
	if s.conn.State() != zk.StateHasSession {
		return
	}
	if id := s.conn.SessionID(); id != s.sessionID {
		s.sessionID = id
		if s.takenOver != "" {
			// A new session has none of the old one's watches: look at
			// the taken znode again, which watches it anew. It stays the
			// other registrar's while it stands.
			s.lookAgain()
		}
	}
	if s.node != "" && s.nodeSession != s.sessionID {
		log.Warn("znode lost with the expired session; registering again once healthy", "path", s.node)
		s.node = ""
		s.removedAt = time.Now()
	}
}

// checkNode looks at the registered znode once its watch fired. Deleted
// by someone else, it is registered again; re-created by another session
// (a second registrar with the same ID, which replaces a znode it finds),
// it is left to that one, and registered again only once that one is
// gone. Either way it is no longer this registration's to mark draining
// or delete.
func (s *run) checkNode() error {
	s.mu.Lock()
	fired := s.nodeEvent
	s.nodeEvent = false
	s.mu.Unlock()
	p := s.node
	if p == "" {
		p = s.takenOver
	}
	if !fired || p == "" {
		return nil
	}
	if s.conn.State() != zk.StateHasSession {
		s.lookAgain() // once there is a session again
		return errNoSession
	}
	exists, stat, err := s.watchNode(p)
	if err != nil {
		s.lookAgain()
		return err
	}
	log := s.r.logger
	switch {
	case s.node != "" && !exists:
		log.Warn("the znode was deleted by someone else; registering again while healthy", "path", p)
		s.node = ""
		s.removedAt = time.Now()
	case s.node != "" && stat.EphemeralOwner != s.nodeSession:
		s.leaveTakenOver(stat.EphemeralOwner)
	case s.node == "" && (!exists || stat.EphemeralOwner == s.sessionID):
		log.Info("the session that took the znode over is gone; registering again while healthy", "path", p)
		s.takenOver = ""
	}
	return nil
}

// leaveTakenOver leaves the registered znode, which the session owner
// re-created, to that session: it is no longer this registration's to
// mark draining or delete, and taking it back would treat it as a crashed
// run's leftover. checkNode watches it, to register again once it goes.
func (s *run) leaveTakenOver(owner int64) {
	if owner == 0 {
		// Nobody's registration but somebody's data, as replace finds it.
		s.r.logger.Warn("a persistent znode replaced the registered one; leaving it alone, and registering again once it is deleted",
			"path", s.node)
	} else {
		s.r.logger.Warn("another session re-created the znode (a second registrar with the same ID?); leaving it to that one until it goes",
			"path", s.node, "owner_session", sessionHex(owner))
	}
	s.node, s.takenOver = "", s.node
}

// watchNode stats p under an exists watch, so that its deletion or
// change reaches onEvent.
func (s *run) watchNode(p string) (bool, *zk.Stat, error) {
	exists, stat, _, err := s.conn.ExistsW(p)
	if err != nil {
		return false, nil, fmt.Errorf("registrar: stat %s: %w", p, err)
	}
	return exists, stat, nil
}

// owned reports whether s.node still stands and belongs to this
// registration's session, with its stat.
func (s *run) owned() (*zk.Stat, bool, error) {
	return s.ownedBy(s.node, s.nodeSession)
}

// ownedBy reports whether p stands as an ephemeral znode of session, with
// its stat (nil when p does not stand).
func (s *run) ownedBy(p string, session int64) (*zk.Stat, bool, error) {
	exists, stat, err := s.conn.Exists(p)
	if err != nil {
		return nil, false, fmt.Errorf("registrar: stat %s: %w", p, err)
	}
	if !exists {
		return nil, false, nil
	}
	return stat, stat.EphemeralOwner == session, nil
}

// lookAgain has checkNode look at the watched znode at the loop's next
// pass.
func (s *run) lookAgain() {
	s.mu.Lock()
	s.nodeEvent = true
	s.mu.Unlock()
}

// errNoSession means a request was not sent because there is no session.
var errNoSession = errors.New("registrar: no ZooKeeper session")

// reconcile registers or deregisters so that the znode exists exactly
// when the instance is healthy and warmed up.
func (s *run) reconcile() error {
	want := s.healthy && s.warmedUp
	if !s.healthy {
		s.inService = time.Time{}
	}
	if want == (s.node != "") && (want || !s.mayHaveCreated()) {
		return nil
	}
	if s.conn.State() != zk.StateHasSession {
		return errNoSession
	}
	if want {
		if s.takenOver != "" {
			return nil // another registrar serves it; its going wakes this one
		}
		return s.register()
	}
	if err := s.adoptUnconfirmed(); err != nil || s.node == "" {
		return err
	}
	return s.deregister("unhealthy")
}

// mayHaveCreated reports whether a create whose answer was lost may have
// left a znode of this session that s.node does not name.
func (s *run) mayHaveCreated() bool {
	return s.node == "" && (s.unconfirmed != "" || s.orphans)
}

// adoptUnconfirmed settles the creates whose answers were lost, before
// the instance is taken out of service: a fixed-name znode this session
// owns becomes s.node, to be deregistered as usual, and serverset members
// of this session are removed.
func (s *run) adoptUnconfirmed() error {
	session := s.conn.SessionID()
	if p := s.unconfirmed; p != "" {
		_, ours, err := s.ownedBy(p, session)
		if err != nil {
			return err
		}
		if ours {
			s.node, s.nodeSession, s.registeredAt = p, session, s.unconfirmedAt
			s.r.logger.Info("found the znode whose creation was not confirmed", "path", p)
		}
		s.unconfirmed = ""
	}
	if s.orphans {
		removed, err := s.removeOrphans(session)
		if err != nil {
			return err
		}
		s.orphans = false
		if removed {
			s.removedAt = time.Now()
		}
	}
	return nil
}

func (s *run) register() error {
	opts := &s.r.opts
	if err := s.authenticate(); err != nil {
		return err
	}
	if err := zkclient.CreatePath(s.conn, s.r.opts.Path); err != nil {
		return fmt.Errorf("registrar: service path: %w", err)
	}
	session := s.conn.SessionID()
	if s.inService.IsZero() {
		s.inService = time.Now()
	}
	data, err := encodePayload(opts.Format, s.r.info, s.inService, false)
	if err != nil {
		return err
	}
	var node string
	if isSequential(opts.Format) {
		if s.orphans {
			if _, err := s.removeOrphans(session); err != nil {
				return err
			}
			s.orphans = false
		}
		node, err = s.conn.Create(path.Join(opts.Path, serversetPrefix), data, zk.FlagEphemeral|zk.FlagSequence, s.r.acl)
		if err != nil {
			// A connection lost before the answer leaves open whether
			// the member exists: look for it before creating another.
			s.orphans = !fatal(err)
			return fmt.Errorf("registrar: create %s%s: %w", path.Join(opts.Path, serversetPrefix), "N", err)
		}
	} else {
		node = path.Join(opts.Path, opts.ID)
		_, err = s.conn.Create(node, data, zk.FlagEphemeral, s.r.acl)
		if errors.Is(err, zk.ErrNodeExists) {
			err = s.replace(node, data, session)
		}
		if err != nil {
			if !fatal(err) {
				// The answer may be what was lost: the znode may exist.
				s.unconfirmed, s.unconfirmedAt = node, s.inService
			}
			return fmt.Errorf("registrar: create %s: %w", node, err)
		}
		s.unconfirmed = ""
	}
	s.node, s.nodeSession, s.registeredAt = node, session, s.inService
	s.registrations++
	if _, _, err := s.watchNode(node); err != nil {
		// Registered all the same; only a deletion by someone else
		// would go unseen.
		s.r.logger.Warn("could not watch the znode", "path", node, "err", err)
	}
	msg := "registered"
	if s.registrations > 1 {
		msg = "re-registered"
	}
	s.r.logger.Info(msg, "path", node, "address", opts.Address, "port", opts.Port, "format", opts.Format)
	return nil
}

// replace deals with a znode already at node: this session's own (a create
// whose answer was lost) is updated, another session's (a crashed earlier
// run whose session has not expired yet) is deleted and ours created in one
// transaction. A persistent znode is nobody's registration but somebody's
// data: it is refused, with errPersistentInTheWay.
func (s *run) replace(node string, data []byte, session int64) error {
	exists, stat, err := s.conn.Exists(node)
	if err != nil {
		return err
	}
	if !exists {
		return zk.ErrNoNode // gone meanwhile: the retry creates it
	}
	if stat.EphemeralOwner == session {
		_, err := s.conn.Set(node, data, stat.Version)
		return err
	}
	if stat.EphemeralOwner == 0 {
		var children string
		if stat.NumChildren > 0 {
			children = fmt.Sprintf(" (it has %d children)", stat.NumChildren)
		}
		return fmt.Errorf("%w%s: no session owns it, so it is somebody's data and is left alone; "+
			"delete it if nothing needs it, or register this instance under another ID", errPersistentInTheWay, children)
	}
	s.r.logger.Warn("replacing a znode left by another session", "path", node, "owner_session", sessionHex(stat.EphemeralOwner))
	_, err = s.conn.Multi(
		&zk.DeleteRequest{Path: node, Version: stat.Version},
		&zk.CreateRequest{Path: node, Data: data, Acl: s.r.acl, Flags: zk.FlagEphemeral},
	)
	return err
}

// removeOrphans deletes serverset members that this session created but
// never learned the names of, and reports whether there were any.
func (s *run) removeOrphans(session int64) (removed bool, err error) {
	children, _, err := s.conn.Children(s.r.opts.Path)
	if err != nil {
		return false, fmt.Errorf("registrar: list %s: %w", s.r.opts.Path, err)
	}
	for _, c := range children {
		if !strings.HasPrefix(c, serversetPrefix) {
			continue
		}
		p := path.Join(s.r.opts.Path, c)
		stat, ours, err := s.ownedBy(p, session)
		if err != nil {
			return removed, err
		}
		if !ours {
			continue
		}
		if err := s.conn.Delete(p, stat.Version); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return removed, fmt.Errorf("registrar: delete %s: %w", p, err)
		}
		removed = true
		s.r.logger.Info("removed a member whose creation was not confirmed", "path", p)
	}
	return removed, nil
}

func (s *run) authenticate() error {
	a := s.r.opts.Auth
	if a == nil || s.authed {
		return nil
	}
	if err := s.conn.AddAuth(a.Scheme, []byte(a.Credentials)); err != nil {
		return fmt.Errorf("registrar: add %s auth to the session: %w", a.Scheme, err)
	}
	s.authed = true
	return nil
}

// deregister deletes the znode, if it is still this registration's: one
// another session re-created is that session's to delete, and a
// persistent one that replaced it is somebody's data.
func (s *run) deregister(reason string) error {
	stat, owned, err := s.owned()
	if err != nil {
		return err
	}
	if !owned {
		if stat != nil {
			// Replaced before its watch told so, which set no watch.
			s.leaveTakenOver(stat.EphemeralOwner)
			s.lookAgain()
		} else {
			s.noteGone()
		}
		s.node = ""
		return nil
	}
	if err := s.conn.Delete(s.node, stat.Version); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("registrar: delete %s: %w", s.node, err)
	}
	s.r.logger.Info("deregistered", "path", s.node, "reason", reason)
	s.node = ""
	s.removedAt = time.Now()
	return nil
}

// noteGone records that the znode was found gone before zkdns could
// delete it: the session expired (a session timeout after the connection
// was lost, at the latest) or someone deleted it. The drain on the way
// out counts from then, as from a delete.
func (s *run) noteGone() {
	gone := time.Now()
	if expired := s.expiresBy(gone); expired.Before(gone) {
		gone = expired
	}
	if gone.After(s.removedAt) {
		s.removedAt = gone
	}
}

// expiresBy is when the session expires at the latest if it has no
// connection from now on: a session timeout after the connection was
// lost, or after now while it has not been.
func (s *run) expiresBy(now time.Time) time.Time {
	s.mu.Lock()
	lost := s.lostAt
	s.mu.Unlock()
	if lost.IsZero() {
		lost = now
	}
	return lost.Add(s.r.opts.SessionTimeout)
}

// closeToRemove closes the session, so that a znode it holds goes with
// it, and counts the drain from when it does: at once if a server hears
// of the close, or else when the session expires, a session timeout after
// the connection was lost. Closed now, not after the drain: an open
// connection would find its way back to the ensemble and keep the
// session, and the znode, alive all through the drain.
func (s *run) closeToRemove() {
	s.removedAt = time.Now()
	if s.conn.State() != zk.StateHasSession {
		s.removedAt = s.expiresBy(s.removedAt)
	}
	s.conn.Close()
	s.node = ""
}

// offline takes the instance out of service on the way out: mark
// draining, delete, wait out the drain, close the session. Requests to a
// ZooKeeper that does not answer are cut short after one session timeout
// by closing the session, which removes the znode just the same once the
// server notices.
func (s *run) offline() {
	opts := &s.r.opts
	log := s.r.logger
	deadline := time.Now().Add(opts.SessionTimeout)
	giveUp := time.AfterFunc(opts.SessionTimeout, s.conn.Close)
	defer giveUp.Stop()
	s.sessionEvents()
	if s.mayHaveCreated() {
		// A create whose answer was lost: ZooKeeper may have made the
		// znode. Taken over if it can be looked for, else removed with
		// the session, before the drain rather than after it.
		err := errors.New("no connection to ZooKeeper")
		if s.conn.State() == zk.StateHasSession {
			err = s.adoptUnconfirmed()
		}
		if err != nil {
			log.Warn("could not look for a znode whose creation was not confirmed; closing the session to remove it", "err", err)
			s.closeToRemove()
		}
	}
	if s.node != "" {
		if hasDrainingMark(opts.Format) {
			if err := s.markDraining(); err != nil {
				log.Warn("could not mark the znode draining; deleting it anyway", "path", s.node, "err", err)
			}
		}
		if err := s.deregisterBy(deadline); err != nil {
			log.Warn("could not delete the znode; closing the session to remove it", "path", s.node, "err", err)
			s.closeToRemove()
		}
	}
	giveUp.Stop()
	if !s.removedAt.IsZero() && opts.Drain > 0 {
		if wait := time.Until(s.removedAt.Add(opts.Drain)); wait > 0 {
			log.Info("draining", "wait", wait.Round(time.Millisecond))
			t := time.NewTimer(wait)
			<-t.C
		}
	}
	s.conn.Close()
	log.Info("stopped")
}

// markDraining rewrites the znode's payload as draining, if the znode is
// still this registration's.
func (s *run) markDraining() error {
	data, err := encodePayload(s.r.opts.Format, s.r.info, s.registeredAt, true)
	if err != nil {
		return err
	}
	stat, owned, err := s.owned()
	if err != nil || !owned {
		return err
	}
	if _, err := s.conn.Set(s.node, data, stat.Version); err != nil {
		return fmt.Errorf("registrar: mark %s draining: %w", s.node, err)
	}
	s.r.logger.Info("marked draining", "path", s.node)
	return nil
}

// deregisterBy deletes the znode on the way out, trying again until the
// deadline while the failures are ones a reconnect can cure: a ZooKeeper
// member restarting under the delete must not cost the instance its drain.
func (s *run) deregisterBy(deadline time.Time) error {
	const pause = 100 * time.Millisecond
	for {
		err := s.deregister("shutting down")
		if err == nil || fatal(err) || errors.Is(err, zk.ErrClosing) || time.Now().Add(pause).After(deadline) {
			return err
		}
		s.r.logger.Warn("could not delete the znode; trying again", "path", s.node, "err", err)
		time.Sleep(pause)
	}
}

// errPersistentInTheWay is the error for a persistent znode at the
// instance's fixed-name path: retrying will not remove it.
var errPersistentInTheWay = errors.New("a persistent znode is in the way")

// fatal reports whether err is ZooKeeper refusing a request for a reason
// that retrying will not change. ErrNotEmpty is not among them: only a
// persistent znode can have children, and the retry finds it and says so.
func fatal(err error) bool {
	for _, e := range []error{
		zk.ErrNoAuth, zk.ErrInvalidACL, zk.ErrAuthFailed, errPersistentInTheWay,
		zk.ErrNoChildrenForEphemerals, zk.ErrBadArguments, zk.ErrInvalidPath,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func sessionHex(id int64) string { return fmt.Sprintf("0x%x", id) }

// checkServer says what is wrong with a ZooKeeper server address, or ""
// when nothing is: a bare host takes the client's default port, but a
// port given must be one, or the client would retry it forever.
func checkServer(s string) string {
	if !strings.Contains(s, ":") {
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return `must be host:port, e.g. "127.0.0.1:2181"`
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("port %q must be a number from 1 to 65535", port)
	}
	return ""
}
