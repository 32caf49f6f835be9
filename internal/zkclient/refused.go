package zkclient

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// Refusals notices when no ZooKeeper server will take a client's session
// back, so that its owner can give up on the zk.Conn and open a new one.
//
// A zk.Conn sends the last zxid it has seen with every handshake, and a
// server that has seen less refuses it and closes the connection: a
// server rebuilt with empty data, or a rebuilt ensemble (whose leader
// epoch, the zxid's high 32 bits, starts again at 1), turns the client
// away on every attempt, forever. The client resets that zxid only when a
// server answers that the session expired, which these servers never do,
// and it reports the refusal only as a connection that ends during the
// handshake. A new zk.Conn starts from zxid 0 and is accepted, and its
// owner proceeds as after an expiry.
//
// A handshake that ends this way is no proof of a refusal: a server still
// joining its ensemble does the same for a moment, and so does a proxy or
// load balancer in front of servers that are all down. So once handshakes
// have kept failing for a session timeout on a zk.Conn that has had a
// session (a fresh one sends no zxid, and a new one would fare no
// better), Observe asks for a probe: a new session tried beside the old
// one (ProbeNewSession). Only when a server grants it and the old
// session's next handshake still fails does Observe say Renew. While no
// server grants one (an outage, however it looks) the probe is repeated
// every session timeout and the zk.Conn is kept: when the servers come
// back, its session may well still be there.
//
// Each Refusals belongs to one zk.Conn; make a new one for its
// replacement.
type Refusals struct {
	timeout time.Duration
	now     func() time.Time // time.Now; tests replace it

	mu         sync.Mutex // guards everything below
	hadSession bool       // the client has had a session: it sends a zxid
	dialed     bool       // a connection is open, its handshake not yet answered
	since      time.Time  // first failed handshake since the last session; zero if none
	next       time.Time  // when the next probe is due
	probing    bool       // a probe was asked for and has not reported
	accepted   bool       // the last probe was granted a session
	reason     error      // why the last handshake failed, when the client said
	fired      bool
}

// Verdict is what Observe asks of the zk.Conn's owner.
type Verdict int

const (
	// Wait: nothing to do.
	Wait Verdict = iota
	// Probe: handshakes have failed for a session timeout; find out
	// whether a server grants a new session (ProbeNewSession) and report
	// the result with Probed.
	Probe
	// Renew: a server granted a new session while this one is still
	// refused; close the zk.Conn and open a new one.
	Renew
)

// NewRefusals returns a Refusals for one zk.Conn that asked for
// sessionTimeout.
func NewRefusals(sessionTimeout time.Duration) *Refusals {
	return &Refusals{timeout: sessionTimeout, now: time.Now}
}

// Observe records a session state the zk.Conn reported; call it from the
// client's event callback for every session event.
func (r *Refusals) Observe(state zk.State) Verdict {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch state {
	case zk.StateConnected:
		// The client reports Connected when the TCP (or TLS) connection
		// opens, before its handshake; a server that is down and not
		// behind a proxy never gets here.
		r.dialed = true
	case zk.StateHasSession, zk.StateExpired:
		// A server answered (after an expiry the client starts over from
		// zxid 0 itself).
		r.hadSession = r.hadSession || state == zk.StateHasSession
		r.dialed, r.probing, r.accepted = false, false, false
		r.since, r.reason = time.Time{}, nil
	case zk.StateDisconnected, zk.StateConnecting:
		if !r.dialed {
			return Wait // a session that ended, or a server not reached
		}
		r.dialed = false
		now := r.now()
		if r.since.IsZero() {
			r.since, r.next = now, now.Add(r.timeout)
		}
		switch {
		case !r.hadSession || r.fired:
		case r.accepted:
			r.fired = true
			return Renew
		case !r.probing && !now.Before(r.next):
			r.probing = true
			return Probe
		}
	}
	return Wait
}

// Probed reports the result of the probe Observe asked for: whether a
// server granted a new session.
func (r *Refusals) Probed(granted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.probing {
		return // the session came back meanwhile
	}
	r.probing = false
	r.accepted = granted
	if !granted {
		r.next = r.now().Add(r.timeout)
	}
}

// HandshakeFailed records why the client's last handshake failed; Logger
// calls it (see Logger.HandshakeFailed).
func (r *Refusals) HandshakeFailed(err error) {
	r.mu.Lock()
	r.reason = err
	r.mu.Unlock()
}

// Refused reports since when handshakes have been failing and why the
// last one did, as the client reported it (nil if it did not say); a zero
// time means none has failed since the last session.
func (r *Refusals) Refused() (since time.Time, reason error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.since, r.reason
}

// ProbeNewSession reports whether a server of servers grants a new
// session (one that has seen no zxid) within timeout, the session
// timeout asked for; the session is closed at once. It gives up when ctx
// ends. dialer is the one the probed client uses, so that TLS and the
// read-deadline cap apply alike.
func ProbeNewSession(ctx context.Context, servers []string, timeout time.Duration, dialer zk.Dialer, logger *slog.Logger) bool {
	granted := make(chan struct{}, 1)
	conn, _, err := zk.Connect(servers, timeout,
		zk.WithDialer(dialer),
		zk.WithHostProvider(&HostProvider{}), // the session's own warned of names that do not resolve
		zk.WithLogger(Logger{L: logger}),
		zk.WithEventCallback(func(ev zk.Event) {
			if ev.Type == zk.EventSession && ev.State == zk.StateHasSession {
				select {
				case granted <- struct{}{}:
				default:
				}
			}
		}),
	)
	if err != nil {
		return false
	}
	defer conn.Close()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-granted:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}
