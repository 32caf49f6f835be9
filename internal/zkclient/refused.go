package zkclient

import (
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
// handshake. By then the session is gone from every server's view in any
// case: none has heard from it for a session timeout. A new zk.Conn
// starts from zxid 0 and is accepted, and its owner proceeds as after an
// expiry.
//
// Refusals fires only for a zk.Conn that has had a session (a fresh one
// has seen no zxid, so a new one would be turned away as well) and only
// after handshakes have kept failing for a session timeout after the
// server was reached: while nothing answers at all, a new zk.Conn
// changes nothing, and a server that refuses while it starts (an
// ensemble member still syncing) accepts well within a session timeout.
// Each Refusals belongs to one zk.Conn; make a new one for its
// replacement.
type Refusals struct {
	timeout time.Duration
	now     func() time.Time // time.Now; tests replace it

	mu         sync.Mutex // guards everything below
	hadSession bool       // the client has had a session: it sends a zxid
	dialed     bool       // a connection is open, its handshake not yet answered
	since      time.Time  // first failed handshake since the last session; zero if none
	reason     error      // why the last handshake failed, when the client said
	fired      bool
}

// NewRefusals returns a Refusals for one zk.Conn that asked for
// sessionTimeout.
func NewRefusals(sessionTimeout time.Duration) *Refusals {
	return &Refusals{timeout: sessionTimeout, now: time.Now}
}

// Observe records a session state the zk.Conn reported; call it from the
// client's event callback for every session event. It returns true once,
// at the failed handshake that makes refusals last a session timeout:
// the zk.Conn should then be closed and replaced.
func (r *Refusals) Observe(state zk.State) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch state {
	case zk.StateConnected:
		// The client reports Connected when the TCP (or TLS) connection
		// opens, before its handshake; a server that is down never gets
		// here.
		r.dialed = true
	case zk.StateHasSession:
		r.hadSession, r.dialed = true, false
		r.since, r.reason = time.Time{}, nil
	case zk.StateExpired:
		// A server answered: the client starts over from zxid 0 itself.
		r.dialed = false
		r.since, r.reason = time.Time{}, nil
	case zk.StateDisconnected, zk.StateConnecting:
		if !r.dialed {
			return false // a session that ended, or a server not reached
		}
		r.dialed = false
		now := r.now()
		if r.since.IsZero() {
			r.since = now
		}
		if r.hadSession && !r.fired && now.Sub(r.since) >= r.timeout {
			r.fired = true
			return true
		}
	}
	return false
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
