package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
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
	if len(addrs) == 0 {
		return nil, errors.New("dnsserver: listen: no addresses given; set at least one ip:port")
	}
	l := new(Listeners)
	for _, addr := range addrs {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("dnsserver: listen address %q: want an IP and a port, like 127.0.0.1:8600: %w", addr, err)
		}
		pc, ln, err := listenPair(ap)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("dnsserver: listen on %s: %w", addr, err)
		}
		l.UDP = append(l.UDP, pc)
		l.TCP = append(l.TCP, ln)
	}
	return l, nil
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
	// ioTimeout bounds one read of a TCP query and one write of a reply.
	ioTimeout = 2 * time.Second
	// idleTimeout is how long a TCP connection may wait for its next
	// query (RFC 7766 §6.2.3 suggests seconds, not minutes).
	idleTimeout = 8 * time.Second
	// shutdownGrace bounds how long Serve waits for queries in flight
	// once ctx ends.
	shutdownGrace = 2 * time.Second
)

// Serve answers queries arriving on every socket of l with h until ctx
// ends. It then stops accepting, waits a short grace period for queries in
// flight, and returns nil. If a socket fails while serving, Serve stops all
// the others and returns that error. Serve owns the sockets of l: they are
// closed when it returns, whatever the reason, so the ports are free again.
// It never uses dns.DefaultServeMux.
func Serve(ctx context.Context, l *Listeners, h dns.Handler) error {
	if l == nil || len(l.UDP)+len(l.TCP) == 0 {
		return errors.New("dnsserver: serve: no listeners; bind some with Listen first")
	}
	if h == nil {
		l.Close()
		return errors.New("dnsserver: serve: nil handler")
	}
	m := metricsOf(h)
	g, gctx := errgroup.WithContext(ctx)
	for _, pc := range l.UDP {
		g.Go(func() error { return serveUDP(gctx, pc, h, m) })
	}
	for _, ln := range l.TCP {
		serveOne(gctx, g, &dns.Server{
			Listener:       ln,
			Handler:        h,
			ReadTimeout:    ioTimeout,
			WriteTimeout:   ioTimeout,
			IdleTimeout:    func() time.Duration { return idleTimeout },
			MsgAcceptFunc:  acceptQuery,
			MsgInvalidFunc: func([]byte, error) { m.observeMalformed(true) },
		}, "tcp "+ln.Addr().String())
	}
	return g.Wait()
}

// metricsOf returns the metrics of h, which Serve counts packets that
// never reach h in; a handler other than a *Handler has none.
func metricsOf(h dns.Handler) *Metrics {
	if h, ok := h.(*Handler); ok && h != nil {
		return h.metrics
	}
	return nil
}

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
