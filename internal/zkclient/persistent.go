package zkclient

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// PersistentWatches sets ZooKeeper's persistent recursive watches (the
// addWatch request of ZooKeeper 3.6 and later) on a go-zookeeper/zk
// connection, which has no call for them. Such a watch on a path fires for
// every znode below it, and its events name that znode: a NodeCreated
// event names the new child, where a child watch's event names only the
// parent, so a watcher can read a new child at once instead of listing
// its parent first. The events reach the client's event callback
// (zk.WithEventCallback) like any other.
//
// It rides on the connection: the client dials through Dialer, the
// requests are written between the client's own under an xid the client
// never uses, and their replies are taken out of what the client reads.
// ZooKeeper drops a connection's watches with the connection, and the
// client does not give these back after a reconnect as it does its own:
// add them again on every new connection (every zk.StateHasSession).
//
// ZooKeeper 3.8 keeps one mode per session and path: a persistent
// recursive watch set on a path after a child watch of the same session
// silences that child watch, which fires again only once a read sets it
// anew. zkwatch, whose child watches are what keeps its instance sets
// right, does not use these watches for that reason (see SCALING.md);
// the bench measures what they would save.
//
// Make one per zk.Conn. Its zero value is ready to use, with no Reply.
type PersistentWatches struct {
	// Reply, when set, receives the outcome of each request whose reply
	// arrives: nil, ErrPersistentWatchesUnsupported, or another refusal
	// (zk.ErrNoAuth, ...). It runs on the client's receive goroutine and
	// must not block. A request whose connection ends first gets no reply.
	Reply func(path string, err error)

	// mu guards conn: the latest connection whose session handshake is
	// done, the only one requests may be written to.
	mu          sync.Mutex
	conn        *sideConn
	unsupported atomic.Bool
}

// ErrPersistentWatchesUnsupported is the reply of a ZooKeeper server older
// than 3.6, which does not know addWatch. Such a server also closes the
// connection (the client reconnects, keeping its session); after it,
// Add fails at once with this error.
var ErrPersistentWatchesUnsupported = errors.New("zkclient: this ZooKeeper server has no persistent watches (they need ZooKeeper 3.6 or later)")

// errNoConnection is what Add returns between connections: the
// caller adds its watches again once there is a session.
var errNoConnection = fmt.Errorf("zkclient: no ZooKeeper connection to set watches on: %w", zk.ErrConnectionClosed)

// The wire protocol's parts used here.
const (
	// sidebandXid marks the requests written here. The client numbers its
	// own requests from 1 up and pings with -2, ZooKeeper marks watch
	// events with -1, and it echoes any xid in the reply.
	sidebandXid int32 = -16

	opAddWatch                      = 106
	addWatchModePersistentRecursive = 1

	codeUnimplemented = -6
	codeNoNode        = -101
	codeNoAuth        = -102

	// A reply's header: length, xid, zxid, error code.
	replyHeaderLen = 4 + 4 + 8 + 4
)

// Dialer returns dial with its connections carrying these requests.
func (p *PersistentWatches) Dialer(dial zk.Dialer) zk.Dialer {
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		c, err := dial(network, address, timeout)
		if err != nil {
			return nil, err
		}
		return &sideConn{Conn: c, owner: p, r: bufio.NewReader(c)}, nil
	}
}

// Add sets a persistent recursive watch on path on the current
// connection. It only writes the request; Reply gets the outcome.
func (p *PersistentWatches) Add(path string) error {
	if p.unsupported.Load() {
		return ErrPersistentWatchesUnsupported
	}
	p.mu.Lock()
	c := p.conn
	p.mu.Unlock()
	if c == nil {
		return errNoConnection
	}
	return c.send(path)
}

// handshook makes c the connection requests go to.
func (p *PersistentWatches) handshook(c *sideConn) {
	p.mu.Lock()
	p.conn = c
	p.mu.Unlock()
}

// ended forgets c when it is still the current connection.
func (p *PersistentWatches) ended(c *sideConn) {
	p.mu.Lock()
	if p.conn == c {
		p.conn = nil
	}
	p.mu.Unlock()
}

func (p *PersistentWatches) replied(path string, code int32) {
	var err error
	switch code {
	case 0:
	case codeUnimplemented:
		p.unsupported.Store(true)
		err = ErrPersistentWatchesUnsupported
	case codeNoNode:
		err = zk.ErrNoNode
	case codeNoAuth:
		err = zk.ErrNoAuth
	default:
		err = fmt.Errorf("zkclient: ZooKeeper refused a persistent watch on %s with error code %d", path, code)
	}
	if p.Reply != nil {
		p.Reply(path, err)
	}
}

// sideConn is one connection of the client. Reads are made by one
// goroutine at a time (the client's connect loop, then its receive
// loop), which also keeps the framing state below.
type sideConn struct {
	net.Conn
	owner *PersistentWatches
	r     *bufio.Reader

	handshook bool // the first frame, the handshake's answer, is past
	left      int  // bytes of the current frame the client has still to read

	// writeMu keeps the order of sent (the paths of the requests written)
	// in step with the order of writes, which is the order of the
	// replies; sentMu guards sent alone, so the receive goroutine never
	// waits on a write.
	writeMu sync.Mutex
	sentMu  sync.Mutex
	sent    []string
}

func (c *sideConn) send(path string) error {
	frame := make([]byte, 0, 4+4+4+4+len(path)+4)
	frame = binary.BigEndian.AppendUint32(frame, 0) // length, below
	// A variable, since a negative constant does not convert to uint32.
	xid := sidebandXid
	frame = binary.BigEndian.AppendUint32(frame, uint32(xid))
	frame = binary.BigEndian.AppendUint32(frame, opAddWatch)
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(path)))
	frame = append(frame, path...)
	frame = binary.BigEndian.AppendUint32(frame, addWatchModePersistentRecursive)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))

	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.sentMu.Lock()
	c.sent = append(c.sent, path)
	c.sentMu.Unlock()
	// A Write is whole: the client's own frames, each one Write, never
	// interleave with this one.
	if _, err := c.Conn.Write(frame); err != nil {
		// The connection is failing; the client sees it too and
		// reconnects. Nothing more goes to it.
		c.owner.ended(c)
		return fmt.Errorf("zkclient: send a persistent watch on %s: %w", path, err)
	}
	return nil
}

// Read hands the client the connection's bytes, less the replies to the
// requests written here.
func (c *sideConn) Read(b []byte) (int, error) {
	for c.left == 0 {
		if err := c.nextFrame(); err != nil {
			c.owner.ended(c)
			return 0, err
		}
	}
	n, err := c.r.Read(b[:min(len(b), c.left)])
	c.left -= n
	if c.left == 0 && !c.handshook {
		c.handshook = true
		c.owner.handshook(c)
	}
	if err != nil {
		c.owner.ended(c)
	}
	return n, err
}

// nextFrame looks at the frame about to be read: one of the client's it
// lets through (left is set), a reply to a request written here it
// consumes.
func (c *sideConn) nextFrame() error {
	head, err := c.r.Peek(4)
	if err != nil {
		return err
	}
	length := int(binary.BigEndian.Uint32(head))
	if !c.handshook || length < replyHeaderLen-4 {
		// The handshake's answer has no reply header; a frame too short
		// for one is the client's to reject.
		c.left = 4 + length
		return nil
	}
	head, err = c.r.Peek(replyHeaderLen)
	if err != nil {
		return err
	}
	if int32(binary.BigEndian.Uint32(head[4:])) != sidebandXid {
		c.left = 4 + length
		return nil
	}
	code := int32(binary.BigEndian.Uint32(head[16:]))
	if _, err := c.r.Discard(4 + length); err != nil {
		return err
	}
	c.sentMu.Lock()
	if len(c.sent) == 0 {
		c.sentMu.Unlock()
		return fmt.Errorf("zkclient: ZooKeeper answered a request zkdns did not send (xid %d)", sidebandXid)
	}
	path := c.sent[0]
	c.sent = c.sent[1:]
	c.sentMu.Unlock()
	c.owner.replied(path, code)
	return nil
}

func (c *sideConn) Close() error {
	c.owner.ended(c)
	return c.Conn.Close()
}
