package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/errgroup"
)

// Listeners are bound sockets: the caller binds them (with Listen, or from
// systemd socket activation) and Serve serves them. Keeping the two apart
// lets a reload bind new sockets before the old ones are let go.
type Listeners struct {
	UDP []net.PacketConn
	TCP []net.Listener

	// given are the addresses Listen bound, one per UDP socket and TCP
	// listener of the same index, as they were asked for (port 0 stays
	// 0), so that Relisten knows which sockets stand for which address.
	given []netip.AddrPort
}

// bindAttempts bounds how often Listen picks a new free port when the port
// the kernel chose for UDP is already taken for TCP.
const bindAttempts = 16

// Listen binds UDP and TCP on each address, an IP literal and port
// ("127.0.0.1:8600", "[::1]:53"). Both protocols share the port; port 0
// means a free port the kernel picks, the same one for both. If any address
// fails to bind, Listen closes everything it bound and returns an error
// naming that address.
func Listen(addrs []string) (*Listeners, error) {
	return (*Listeners)(nil).Relisten(addrs)
}

// Relisten is Listen for a new set of addresses while l is being served:
// an address that l was bound for (the same IP and port, port 0 included)
// is not bound again, which would fail (the port is taken) or, for port 0,
// move it. The new Listeners get new descriptors of l's sockets for it
// instead (dup), so a Serve of them can start before the Serve of l
// stops; in between both read the same sockets, and stopping the old
// Serve closes only its own descriptors. A query to a kept address is
// never refused or lost on the way. l itself is left as it was; on
// failure nothing Relisten opened stays open. Relisten on a nil l is
// Listen.
func (l *Listeners) Relisten(addrs []string) (*Listeners, error) {
	if len(addrs) == 0 {
		return nil, errors.New("dnsserver: listen: no addresses given; set at least one ip:port")
	}
	next := new(Listeners)
	kept := make(map[int]bool) // l's sockets already shared: each once
	for _, addr := range addrs {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			next.Close()
			return nil, fmt.Errorf("dnsserver: listen address %q: want an IP and a port, like 127.0.0.1:8600: %w", addr, err)
		}
		var (
			pc net.PacketConn
			ln net.Listener
		)
		if i := l.index(ap, kept); i >= 0 {
			kept[i] = true
			pc, ln, err = l.share(i)
		} else {
			pc, ln, err = listenPair(ap)
			if errors.Is(err, syscall.EADDRINUSE) && l.holdsPort(ap.Port()) {
				err = fmt.Errorf("%w (zkdns itself listens on port %d at another address; "+
					"moving between a wildcard and a specific address on one port needs a restart)", err, ap.Port())
			}
		}
		if err != nil {
			next.Close()
			return nil, fmt.Errorf("dnsserver: listen on %s: %w", addr, err)
		}
		next.UDP = append(next.UDP, pc)
		next.TCP = append(next.TCP, ln)
		next.given = append(next.given, ap)
	}
	return next, nil
}

// index is the position of sockets bound for ap that are not in kept, or
// -1. Two port 0 addresses alike stand for two sockets.
func (l *Listeners) index(ap netip.AddrPort, kept map[int]bool) int {
	if l == nil {
		return -1
	}
	for i, g := range l.given {
		if g == ap && !kept[i] {
			return i
		}
	}
	return -1
}

// holdsPort reports whether a UDP socket of l is bound to this port.
func (l *Listeners) holdsPort(port uint16) bool {
	if l == nil || port == 0 {
		return false
	}
	return slices.ContainsFunc(l.UDP, func(pc net.PacketConn) bool {
		ua, ok := pc.LocalAddr().(*net.UDPAddr)
		return ok && ua.Port == int(port)
	})
}

// share returns new descriptors of the i-th UDP socket and TCP listener.
func (l *Listeners) share(i int) (net.PacketConn, net.Listener, error) {
	pc, err := duplicate(l.UDP[i], net.FilePacketConn)
	if err != nil {
		return nil, nil, fmt.Errorf("keep the udp socket: %w", err)
	}
	ln, err := duplicate(l.TCP[i], net.FileListener)
	if err != nil {
		pc.Close()
		return nil, nil, fmt.Errorf("keep the tcp listener: %w", err)
	}
	return pc, ln, nil
}

// duplicate returns a new descriptor of socket, made into a connection or
// listener by fromFile (net.FilePacketConn, net.FileListener).
func duplicate[T any](socket any, fromFile func(*os.File) (T, error)) (T, error) {
	var zero T
	s, ok := socket.(interface{ File() (*os.File, error) })
	if !ok {
		return zero, fmt.Errorf("%T has no descriptor to share", socket)
	}
	f, err := s.File() // a dup of the socket's descriptor
	if err != nil {
		return zero, err
	}
	defer f.Close()
	return fromFile(f) // another dup, now in the poller
}

// listenPair binds UDP and then TCP on the same port. When ap's port is 0,
// the kernel picks the UDP port, and if TCP finds it taken, both are let go
// and another port is tried.
func listenPair(ap netip.AddrPort) (net.PacketConn, net.Listener, error) {
	for attempt := 1; ; attempt++ {
		pc, err := net.ListenPacket("udp", ap.String())
		if err != nil {
			return nil, nil, err
		}
		port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
		ln, err := net.Listen("tcp", netip.AddrPortFrom(ap.Addr(), port).String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if ap.Port() != 0 || !errors.Is(err, syscall.EADDRINUSE) || attempt == bindAttempts {
			return nil, nil, err
		}
	}
}

// Addrs returns the addresses the listeners are bound to, as ip:port, in
// the order they were given to Listen. A UDP socket and a TCP listener on
// the same address are listed once.
func (l *Listeners) Addrs() []string {
	var addrs []string
	seen := make(map[string]bool)
	add := func(a net.Addr) {
		if s := a.String(); !seen[s] {
			seen[s] = true
			addrs = append(addrs, s)
		}
	}
	for _, pc := range l.UDP {
		add(pc.LocalAddr())
	}
	for _, ln := range l.TCP {
		add(ln.Addr())
	}
	return addrs
}

// Close closes every socket. Closing a socket that Serve has already closed
// is not an error, so Close may follow Serve, and may be called twice.
func (l *Listeners) Close() error {
	var errs []error
	for _, pc := range l.UDP {
		if err := pc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("dnsserver: close udp %s: %w", pc.LocalAddr(), err))
		}
	}
	for _, ln := range l.TCP {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("dnsserver: close tcp %s: %w", ln.Addr(), err))
		}
	}
	return errors.Join(errs...)
}

// Timeouts of the servers Serve runs.
const (
	// ioTimeout bounds the read of a TCP connection's first query and one
	// write of a reply.
	ioTimeout = 2 * time.Second
	// idleTimeout is how long a TCP connection may wait for its next
	// query (RFC 7766 §6.2.3 suggests seconds, not minutes).
	idleTimeout = 8 * time.Second
	// shutdownGrace bounds how long Serve waits for queries in flight
	// once ctx ends.
	shutdownGrace = 2 * time.Second
)

// Defaults of the TCP limits in ServeOptions.
const (
	// DefaultMaxTCPConns caps the TCP connections open at once. TCP is
	// the fallback for truncated answers, so a host-local server needs
	// few; each costs a goroutine and a socket.
	DefaultMaxTCPConns = 256
	// DefaultMaxTCPQueries caps the queries answered on one connection
	// before it is closed, so that no client keeps one forever.
	DefaultMaxTCPQueries = 128
)

// ServeOptions are the limits Serve works within. The zero value is usable
// and means every default.
type ServeOptions struct {
	// MaxTCPConns caps the TCP connections open at once, across all of
	// Serve's listeners. When the cap is reached, a new connection takes
	// the place of the connection that has waited longest for its next
	// query, or is closed at once when every connection has a query in
	// progress. Zero or less means DefaultMaxTCPConns.
	MaxTCPConns int

	// MaxTCPQueries caps the queries answered on one TCP connection; the
	// connection is then closed, and a client with more to ask opens
	// another. Zero means DefaultMaxTCPQueries; less than zero, no cap.
	MaxTCPQueries int

	// MaxForwards caps the queries being forwarded to upstreams at once.
	// Beyond it, a name outside the zone is answered SERVFAIL at once,
	// without being sent anywhere. Zero or less means DefaultMaxForwards.
	MaxForwards int

	// ForwardTimeout bounds the forwarding of one query, every upstream
	// tried included. Zero or less means DefaultForwardTimeout.
	ForwardTimeout time.Duration

	// ForwardTryTimeout bounds the wait for one upstream before the next
	// is tried. Zero or less means DefaultForwardTryTimeout.
	ForwardTryTimeout time.Duration
}

// withDefaults returns o with every unset limit at its default.
func (o ServeOptions) withDefaults() ServeOptions {
	if o.MaxTCPConns <= 0 {
		o.MaxTCPConns = DefaultMaxTCPConns
	}
	switch {
	case o.MaxTCPQueries == 0:
		o.MaxTCPQueries = DefaultMaxTCPQueries
	case o.MaxTCPQueries < 0:
		o.MaxTCPQueries = -1 // miekg/dns's "no cap"
	}
	if o.MaxForwards <= 0 {
		o.MaxForwards = DefaultMaxForwards
	}
	if o.ForwardTimeout <= 0 {
		o.ForwardTimeout = DefaultForwardTimeout
	}
	if o.ForwardTryTimeout <= 0 {
		o.ForwardTryTimeout = DefaultForwardTryTimeout
	}
	return o
}

// serveEnv is what the handler needs to know of the Serve a query came
// through.
type serveEnv struct {
	// ctx ends when Serve stops; forwards in flight are cut short.
	ctx context.Context
	// openByDefault says a Policy without Allow admits every source: every
	// listener is on a loopback address.
	openByDefault bool
	// self are the addresses Serve listens on, never forwarded to.
	self []netip.AddrPort

	forwardTimeout    time.Duration
	forwardTryTimeout time.Duration
	// forwardSlots holds a token per forward in flight; nil means no cap.
	forwardSlots chan struct{}
	// offload says UDP forwards run in goroutines of their own, tracked
	// by forwards, rather than on the reader that received the query.
	offload  bool
	forwards sync.WaitGroup
}

// newServeEnv describes a Serve of l under opts, which have their defaults.
func newServeEnv(ctx context.Context, l *Listeners, opts ServeOptions) *serveEnv {
	env := &serveEnv{
		ctx:               ctx,
		openByDefault:     true,
		forwardTimeout:    opts.ForwardTimeout,
		forwardTryTimeout: opts.ForwardTryTimeout,
		forwardSlots:      make(chan struct{}, opts.MaxForwards),
		offload:           true,
	}
	for _, a := range l.Addrs() {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			// Not an IP socket: nothing says only this host reaches it.
			env.openByDefault = false
			continue
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
		env.self = append(env.self, ap)
		if !ap.Addr().IsLoopback() {
			env.openByDefault = false
		}
	}
	return env
}

// directEnv is the environment of a direct ServeDNS call: no listeners to
// judge sources or loops by, no cap on forwards, the default timeouts.
func directEnv() *serveEnv {
	return &serveEnv{
		ctx:               context.Background(),
		openByDefault:     true,
		forwardTimeout:    DefaultForwardTimeout,
		forwardTryTimeout: DefaultForwardTryTimeout,
	}
}

// isSelf reports whether up is one of Serve's own listeners: the same
// address, or the same port on a wildcard listener when up is an address
// that always reaches this host (loopback, or unspecified).
func (env *serveEnv) isSelf(up netip.AddrPort) bool {
	ua := up.Addr()
	for _, l := range env.self {
		if l.Port() != up.Port() {
			continue
		}
		la := l.Addr()
		if la == ua || ua.IsUnspecified() || la.IsUnspecified() && ua.IsLoopback() && (la.Is6() || ua.Is4()) {
			return true
		}
	}
	return false
}

// Serve answers queries arriving on every socket of l with h, within the
// limits of opts, until ctx ends. It then stops accepting, waits a short
// grace period for queries in flight, and returns nil. If a socket fails
// while serving, Serve stops all the others and returns that error. Serve
// owns the sockets of l: they are closed when it returns, whatever the
// reason, so the ports are free again. It never uses dns.DefaultServeMux.
//
// Work is bounded whatever clients send. Each UDP socket is read by a
// fixed pool of max(2, GOMAXPROCS) goroutines, each answering one query
// at a time from memory; when they fall behind, the kernel's socket
// buffer fills and drops datagrams, so a flood slows answers down but
// grows neither memory nor goroutines. Forwards run beside the readers,
// at most opts.MaxForwards at once. TCP connections are capped at
// opts.MaxTCPConns, each with a goroutine, read and idle timeouts, and at
// most opts.MaxTCPQueries queries.
func Serve(ctx context.Context, l *Listeners, h *Handler, opts ServeOptions) error {
	if l == nil || len(l.UDP)+len(l.TCP) == 0 {
		return errors.New("dnsserver: serve: no listeners; bind some with Listen first")
	}
	if h == nil {
		l.Close()
		return errors.New("dnsserver: serve: nil handler")
	}
	opts = opts.withDefaults()
	m := h.metrics
	g, gctx := errgroup.WithContext(ctx)
	env := newServeEnv(gctx, l, opts)
	// Forwards in flight end with gctx; wait for them so that none
	// outlives Serve.
	defer env.forwards.Wait()
	for _, pc := range l.UDP {
		g.Go(func() error { return serveUDP(gctx, pc, h, env) })
	}
	limiter := newConnLimiter(opts.MaxTCPConns, m)
	for _, ln := range l.TCP {
		serveOne(gctx, g, &dns.Server{
			Listener:       limiter.wrap(ln),
			Handler:        tcpHandler{h: h, env: env},
			ReadTimeout:    ioTimeout,
			WriteTimeout:   ioTimeout, // unused by miekg/dns: limitedConn.Write applies it
			IdleTimeout:    func() time.Duration { return idleTimeout },
			MaxTCPQueries:  opts.MaxTCPQueries,
			MsgAcceptFunc:  acceptQuery,
			MsgInvalidFunc: func([]byte, error) { m.observeMalformed(true) },
		}, "tcp "+ln.Addr().String())
	}
	return g.Wait()
}

// tcpHandler hands the queries of Serve's TCP servers to the handler, with
// what it needs to know of Serve.
type tcpHandler struct {
	h   *Handler
	env *serveEnv
}

func (t tcpHandler) ServeDNS(w dns.ResponseWriter, r *dns.Msg) { t.h.serve(t.env, w, r) }

// acceptQuery lets every message but a response through to the handler,
// as the UDP readers do. The miekg/dns default would answer some queries
// (a bad opcode, a question count other than one) itself, over TCP only,
// where they would go uncounted; Answer gives them the same rcodes.
func acceptQuery(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return dns.MsgIgnore // never answer an answer
	}
	return dns.MsgAccept
}

// serveOne runs srv in g and shuts it down when ctx ends.
func serveOne(ctx context.Context, g *errgroup.Group, srv *dns.Server, what string) {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	stopped := make(chan struct{})

	g.Go(func() error {
		defer close(stopped)
		err := srv.ActivateAndServe()
		// The server closes its socket when it stops, but not when it
		// fails to start; closing twice is harmless.
		closeSocket(srv)
		if ctx.Err() != nil {
			// Shutting down: whatever the socket said on the way out is
			// expected.
			return nil
		}
		if err == nil {
			err = errors.New("stopped on its own")
		}
		return fmt.Errorf("dnsserver: serving %s: %w", what, err)
	})
	g.Go(func() error {
		select {
		case <-ctx.Done():
		case <-stopped:
			return nil
		}
		// ShutdownContext refuses a server that has not started, so wait
		// until it has, or has given up.
		select {
		case <-started:
		case <-stopped:
			return nil
		}
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		// A timeout only means queries in flight were cut short, which is
		// what a bounded shutdown is for.
		_ = srv.ShutdownContext(sctx)
		return nil
	})
}

func closeSocket(srv *dns.Server) {
	if srv.PacketConn != nil {
		srv.PacketConn.Close()
	}
	if srv.Listener != nil {
		srv.Listener.Close()
	}
}
