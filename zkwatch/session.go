package zkwatch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdns/zkdns/internal/zkclient"
)

// This file holds what secures the session: authentication, TLS dialling,
// and what the watcher does when ZooKeeper's ACLs refuse it a path.

// Auth authenticates the ZooKeeper session. The zero value connects
// anonymously.
//
// Credentials are a secret: an Auth prints and logs as its scheme and
// "[redacted]", whatever the verb or handler.
type Auth struct {
	// Scheme is the ZooKeeper auth scheme, such as "digest". Empty means
	// no authentication.
	Scheme string
	// Credentials are the scheme's credentials; "user:password" for digest.
	// The Watcher keeps the slice; the caller must not change it after New.
	Credentials []byte
}

// check reports an Auth that cannot authenticate anything.
func (a Auth) check() error {
	switch {
	case a.Scheme == "" && len(a.Credentials) > 0:
		return errors.New("zkwatch: Options.Auth has credentials but no scheme; set Scheme (\"digest\")")
	case a.Scheme != "" && len(a.Credentials) == 0:
		return fmt.Errorf("zkwatch: Options.Auth scheme %q has no credentials", a.Scheme)
	}
	return nil
}

// Format prints the scheme only, so that %v, %+v and %#v of Options never
// show the credentials.
func (a Auth) Format(f fmt.State, _ rune) {
	if a.Scheme == "" {
		fmt.Fprint(f, "{anonymous}")
		return
	}
	fmt.Fprintf(f, "{%s [redacted]}", a.Scheme)
}

// LogValue logs the scheme only.
func (a Auth) LogValue() slog.Value {
	if a.Scheme == "" {
		return slog.StringValue("anonymous")
	}
	return slog.GroupValue(slog.String("scheme", a.Scheme), slog.String("credentials", "[redacted]"))
}

// Pauses between attempts to authenticate: authRetryDelay after the server
// refused, authRetryPause after no server answered (the client's reconnect
// loop already waits between passes; the pause only rules out a busy loop).
const (
	authRetryDelay = 5 * time.Second
	authRetryPause = 100 * time.Millisecond
)

// authenticate adds the credentials to the session, waiting for a server if
// none is reachable yet. The client re-sends them by itself after every
// reconnect and before any other request, so this is done once per
// Watcher; no read is sent before it succeeds, so no path is ever read
// anonymously by mistake. It returns nil once authenticated, and ctx's
// error if ctx ends first.
func (w *Watcher) authenticate(ctx context.Context, conn *zk.Conn) error {
	if w.opts.Auth.Scheme == "" {
		return nil
	}
	waiting := false
	for {
		err := conn.AddAuth(w.opts.Auth.Scheme, w.opts.Auth.Credentials)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			w.logger.Info("zookeeper session authenticated", "scheme", w.opts.Auth.Scheme)
			return nil
		}
		// err never holds the credentials: the client reports only the
		// server's error code or its own connection state.
		delay := authRetryDelay
		if zkclient.ConnectionEnded(err) {
			// The request waited for a server and none answered; the
			// client's own reconnect loop sets the pace from here.
			if !waiting {
				w.logger.Info("waiting for a zookeeper server to authenticate with", "scheme", w.opts.Auth.Scheme)
				waiting = true
			}
			delay = authRetryPause
		} else {
			w.logger.Error("zookeeper refused the credentials; retrying",
				"scheme", w.opts.Auth.Scheme, "err", err, "retry_in", authRetryDelay)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// dialer returns how the client reaches a server: over TCP, then TLS when
// Options.TLS is set, with the read deadlines of the session handshake
// capped (see zkclient.CapHandshake).
func (w *Watcher) dialer() zk.Dialer {
	limit := w.opts.SessionTimeout * 2 / 3
	if w.opts.TLS == nil {
		return zkclient.CappedDialer(limit)
	}
	d := &tlsDialer{
		config:  w.opts.TLS,
		limit:   limit,
		logger:  w.logger,
		metrics: w.opts.Metrics,
		failing: map[string]map[string]bool{},
	}
	// Capped outside TLS, where the handshake's frame can be counted.
	return zkclient.CapHandshake(d.dial, limit)
}

// tlsDialer opens TLS connections to ZooKeeper's secure client port and
// reports handshake failures: the client itself only logs them at debug
// level, and a wrong CA or server name would otherwise look like a server
// that is down.
type tlsDialer struct {
	config  *tls.Config
	limit   time.Duration // the read-deadline cap, also the least time a TLS handshake gets
	logger  *slog.Logger
	metrics *Metrics

	// mu guards failing: per server, the kinds of handshake failure
	// logged since its last success, so that a retry every second logs a
	// line per reason, not one per attempt.
	mu      sync.Mutex
	failing map[string]map[string]bool
}

// maxFailureKinds bounds the distinct reasons logged per server between
// successes; past it a server's failures are only counted.
const maxFailureKinds = 4

func (d *tlsDialer) dial(network, address string, timeout time.Duration) (net.Conn, error) {
	raw, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return nil, err
	}
	cfg := d.config.Clone()
	if cfg.ServerName == "" {
		// As tls.Dial does: check the certificate against the host dialled.
		host, _, splitErr := net.SplitHostPort(address)
		if splitErr != nil {
			host = address
		}
		cfg.ServerName = host
	}
	conn := tls.Client(raw, cfg)
	// The client's connect timeout (1 s) is meant for a TCP connect; a
	// handshake with a JVM under load can take longer, up to the read cap.
	if err := raw.SetDeadline(time.Now().Add(max(timeout, d.limit))); err != nil {
		raw.Close()
		return nil, fmt.Errorf("zkwatch: TLS to %s: %w", address, err)
	}
	if err := conn.Handshake(); err != nil {
		raw.Close()
		d.failed(address, err)
		return nil, fmt.Errorf("zkwatch: TLS handshake with %s: %w", address, err)
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("zkwatch: TLS to %s: %w", address, err)
	}
	d.succeeded(address)
	return conn, nil
}

func (d *tlsDialer) failed(address string, err error) {
	// A handshake that times out is a server too slow or busy to answer
	// (or a port that does not speak TLS), not a certificate to fix: it
	// is logged as such and not counted, so an alert on the counter means
	// the TLS settings. Its message names the local port, new on every
	// attempt, so it is one kind.
	kind, advice := err.Error(), "check [zookeeper.tls] ca_file, server_name and the client certificate"
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		kind, advice = "timeout", "the server did not answer in time: it is busy, or the port does not speak TLS"
	} else {
		d.metrics.tlsHandshakeFailed()
	}
	d.mu.Lock()
	kinds := d.failing[address]
	if kinds == nil {
		kinds = map[string]bool{}
		d.failing[address] = kinds
	}
	report := !kinds[kind] && len(kinds) < maxFailureKinds
	if report {
		kinds[kind] = true
	}
	d.mu.Unlock()
	if report {
		d.logger.Warn("zookeeper TLS handshake failed; retrying ("+advice+")", "server", address, "err", err)
	}
}

func (d *tlsDialer) succeeded(address string) {
	d.mu.Lock()
	_, was := d.failing[address]
	delete(d.failing, address)
	d.mu.Unlock()
	if was {
		d.logger.Info("zookeeper TLS handshake succeeded after failures", "server", address)
	}
}

// errAccessDenied marks an instance znode that ZooKeeper refused to let
// zkdns read. It is kept like a payload that does not decode: not served
// (counted in ServiceState.Denied), and read again only when it changes or
// the periodic re-check finds the ACL lifted.
var errAccessDenied = errors.New("zkwatch: ZooKeeper ACL denies zkdns read access to this znode")

// deniedRecheckInterval is how often paths that an ACL refused are tried
// again. ZooKeeper fires no watch when an ACL changes, and a refused read
// sets no watch at all, so without this a fixed ACL would go unnoticed
// until the next session.
const deniedRecheckInterval = 30 * time.Second

// accessState remembers the paths ZooKeeper's ACLs refuse to zkdns, so that
// each is reported once (not once per re-read) and re-checked periodically.
// Its zero value is ready to use.
type accessState struct {
	// recheck overrides deniedRecheckInterval when positive; tests set it.
	recheck time.Duration

	mu     sync.Mutex
	denied map[string]string // full path → service name; "" for a discover root
}

// deny records that full is refused and reports it the first time: one
// warning and one count in zkdns_zookeeper_acl_denied_total per path until
// it is readable again.
func (w *Watcher) deny(full, service string, err error) {
	w.access.mu.Lock()
	if w.access.denied == nil {
		w.access.denied = map[string]string{}
	}
	_, seen := w.access.denied[full]
	w.access.denied[full] = service
	w.access.mu.Unlock()
	if seen {
		return
	}
	if service == "" {
		w.logger.Warn("zookeeper ACL denies zkdns this discover path; no services are discovered under it until it is readable",
			"path", full, "err", err)
		return
	}
	w.opts.Metrics.aclDenied(service)
	w.logger.Warn("zookeeper ACL denies zkdns this path; the service's other instances keep serving, a denied service path answers NODATA",
		"service", service, "path", full, "err", err)
}

// allow records that full was read, so that a later denial is reported
// again.
func (w *Watcher) allow(full string) {
	w.access.mu.Lock()
	_, was := w.access.denied[full]
	delete(w.access.denied, full)
	w.access.mu.Unlock()
	if was {
		w.logger.Info("zookeeper ACL now lets zkdns read this path", "path", full)
	}
}

// isDenied reports whether err is ZooKeeper refusing access by ACL.
func isDenied(err error) bool { return errors.Is(err, zk.ErrNoAuth) }

// recheckDenied queues every denied path for a re-read, as if a watch had
// fired on it, every interval until ctx ends. A path that is still refused
// is not reported again; one that is readable is picked up as a change.
func (w *Watcher) recheckDenied(ctx context.Context) {
	interval := w.access.recheck
	if interval <= 0 {
		interval = deniedRecheckInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.access.mu.Lock()
		paths := make([]string, 0, len(w.access.denied))
		for p := range w.access.denied {
			paths = append(paths, p)
		}
		w.access.mu.Unlock()
		if len(paths) == 0 {
			continue
		}
		sort.Strings(paths)
		w.mu.Lock()
		for _, p := range paths {
			// evChildren re-lists a service or root path, and re-reads an
			// instance path the service still holds. firstAt stays as it
			// is: no ZooKeeper event caused this.
			w.pending[p] |= evChildren
		}
		w.mu.Unlock()
		w.signal()
	}
}
