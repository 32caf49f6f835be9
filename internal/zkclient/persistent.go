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
// ZooKeeper drops a connection's watches with the connection, so every
// path added is set again on each new connection, as soon as its
// handshake is answered: before the client writes anything else on it,
// its own watches (setWatches) included.
//
// ZooKeeper 3.8 keeps one mode per session, path and kind of watch: a
// persistent recursive watch set on a path after a child watch of the
// same session silences that child watch, and an exists or data watch set
// on the path after it takes its place for the path's own events (until
// that watch fires, when the path has no watch left to name new
// children). A child watch set after it takes the mode back for child
// events only, and the persistent watch goes on naming new znodes. So set
// the persistent watch on a path before any other watch of the session
// on it, as the handshake does, and Rearm it after an exists watch.
//
// Make one per zk.Conn. Its zero value is ready to use, with no Reply.
type PersistentWatches struct {
	// Reply, when set, receives the outcome of each request whose reply
	// arrives: nil, ErrPersistentWatchesUnsupported, or another refusal
	// (zk.ErrNoAuth, ...). It runs on the client's receive goroutine and
	// must not block. A request whose connection ends first gets no reply.
	Reply func(path string, err error)
	// Sent, when set, is told how many requests were written, and of
	// which kind (OpAddWatch or OpRemoveWatches), each time some are. It
	// runs on the goroutine that wrote them, the client's own at a
	// handshake, and must not block.
	Sent func(op string, requests int)

	// mu guards the fields below and orders the writes of requests: a
	// handshake's burst is whole before any other request.
	mu sync.Mutex
	// conn is the latest connection whose session handshake is done, the
	// only one requests may be written to.
	conn *sideConn
	// paths are the paths added and not removed: what each new
	// connection gets. onConn are those the current connection has.
	paths, onConn map[string]bool
	unsupported   atomic.Bool
}

// ErrPersistentWatchesUnsupported is the reply of a ZooKeeper server older
// than 3.6, which does not know addWatch. Such a server also closes the
// connection (the client reconnects, keeping its session); after it,
// Add fails at once with this error.
var ErrPersistentWatchesUnsupported = errors.New("zkclient: this ZooKeeper server has no persistent watches (they need ZooKeeper 3.6 or later)")

// The kinds of request Sent reports, as ZooKeeper names them.
const (
	OpAddWatch      = "addWatch"
	OpRemoveWatches = "removeWatches"
)

// The wire protocol's parts used here.
const (
	// sidebandXid marks the requests written here. The client numbers its
	// own requests from 1 up and pings with -2, ZooKeeper marks watch
	// events with -1, and it echoes any xid in the reply.
	sidebandXid int32 = -16

	opAddWatch                      = 106
	addWatchModePersistentRecursive = 1
	opRemoveWatches                 = 18
	watcherTypeData                 = 2

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

// Add sets a persistent recursive watch on path, on the current
// connection unless it has one there already, and on every connection
// after it until Remove or Forget. It only writes the request (wrote
// says it did); Reply gets the outcome. Between connections it writes
// nothing and returns nil: the next connection's handshake sets the
// watch.
func (p *PersistentWatches) Add(path string) (wrote bool, err error) {
	written, err := p.set([]string{path}, false)
	return len(written) > 0, err
}

// AddAll adds every path as Add does, with their requests in as few
// writes as their size allows, and returns the paths it wrote requests
// for.
func (p *PersistentWatches) AddAll(paths []string) (wrote []string, err error) {
	return p.set(paths, false)
}

// Rearm sets the watch on path again on the current connection, whether
// it has it or not: after the session set an exists or data watch on path
// itself, which took the path's place from the persistent watch. It adds
// path as Add does.
func (p *PersistentWatches) Rearm(path string) error {
	_, err := p.set([]string{path}, true)
	return err
}

func (p *PersistentWatches) set(paths []string, again bool) (wrote []string, err error) {
	if p.unsupported.Load() {
		return nil, ErrPersistentWatchesUnsupported
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paths == nil {
		p.paths = map[string]bool{}
	}
	for _, path := range paths {
		p.paths[path] = true
		if p.conn != nil && (again || !p.onConn[path]) {
			wrote = append(wrote, path)
		}
	}
	if len(wrote) == 0 {
		return nil, nil
	}
	for _, path := range wrote {
		p.onConn[path] = true
	}
	if err := p.conn.send(opAddWatch, addWatchModePersistentRecursive, wrote); err != nil {
		return nil, err
	}
	if p.Sent != nil {
		p.Sent(OpAddWatch, len(wrote))
	}
	return wrote, nil
}

// Forget stops setting the watch on path on new connections, and leaves
// it on the current one: for a path whose child watch is still armed,
// which a removal and a later Add would silence. Add takes it back as it
// is; Remove takes it off.
func (p *PersistentWatches) Forget(path string) {
	p.mu.Lock()
	delete(p.paths, path)
	p.mu.Unlock()
}

// Remove takes the watch off path: off the current connection, and off
// every later one. ZooKeeper 3.8 removes watches by kind, not by mode, so
// this removes the session's data-kind watches on path, the persistent
// one among them, and leaves its child watch, whose mode a child watch set
// after the persistent one has taken back (see the type's doc). A path
// added again afterwards gets a new request, which silences such a child
// watch: set a new one after it.
func (p *PersistentWatches) Remove(path string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.paths, path)
	if p.conn == nil || !p.onConn[path] {
		return nil
	}
	delete(p.onConn, path)
	err := p.conn.send(opRemoveWatches, watcherTypeData, []string{path})
	if err == nil && p.Sent != nil {
		p.Sent(OpRemoveWatches, 1)
	}
	return err
}

// handshook makes c the connection requests go to, and sets every path
// on it before the client, which waits for this read, writes anything.
func (p *PersistentWatches) handshook(c *sideConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conn = c
	p.onConn = make(map[string]bool, len(p.paths))
	if len(p.paths) == 0 || p.unsupported.Load() {
		return
	}
	paths := make([]string, 0, len(p.paths))
	for path := range p.paths {
		paths = append(paths, path)
		p.onConn[path] = true
	}
	// The client sets and clears its own write deadline around each of
	// its writes, none of which runs while it waits for this read.
	_ = c.Conn.SetWriteDeadline(time.Now().Add(burstWriteTimeout))
	err := c.send(opAddWatch, addWatchModePersistentRecursive, paths)
	_ = c.Conn.SetWriteDeadline(time.Time{})
	if err != nil {
		// The client finds the connection broken at its next write, and
		// the next connection gets the watches.
		_ = c.Conn.Close()
		return
	}
	if p.Sent != nil {
		p.Sent(OpAddWatch, len(paths))
	}
}

// ended forgets c when it is still the current connection.
func (p *PersistentWatches) ended(c *sideConn) {
	p.mu.Lock()
	if p.conn == c {
		p.conn = nil
	}
	p.mu.Unlock()
}

func (p *PersistentWatches) replied(req sentRequest, code int32) {
	if req.op != opAddWatch {
		// A removal that finds nothing to remove (the watch was never
		// taken, or an exists watch that fired had taken its place) has
		// done its job all the same.
		return
	}
	path := req.path
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

	// sent are the paths of the requests written, in the order of
	// writes, which is the order of the replies: the owner's mu orders
	// the writes, and sentMu guards sent alone, so the receive goroutine
	// never waits on a write.
	sentMu sync.Mutex
	sent   []sentRequest
}

// sentRequest is a request written here, awaiting its reply.
type sentRequest struct {
	op   int32
	path string
}

// burstWriteTimeout bounds the write of a handshake's requests, which
// the client's own deadlines do not cover.
const burstWriteTimeout = 30 * time.Second

// send writes a request of op per path, each the path and arg (the layout
// of both addWatch and removeWatches), in as few writes as their size
// allows. Called with the owner's mu held, which orders the writes.
func (c *sideConn) send(op, arg int32, paths []string) error {
	// A variable, since a negative constant does not convert to uint32.
	xid := sidebandXid
	const chunk = 64 << 10
	buf := make([]byte, 0, min(chunk, len(paths)*64))
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		// A Write is whole: the client's own frames, each one Write, never
		// interleave with this one.
		_, err := c.Conn.Write(buf)
		buf = buf[:0]
		return err
	}
	for _, path := range paths {
		start := len(buf)
		buf = binary.BigEndian.AppendUint32(buf, 0) // length, below
		buf = binary.BigEndian.AppendUint32(buf, uint32(xid))
		buf = binary.BigEndian.AppendUint32(buf, uint32(op))
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(path)))
		buf = append(buf, path...)
		buf = binary.BigEndian.AppendUint32(buf, uint32(arg))
		binary.BigEndian.PutUint32(buf[start:], uint32(len(buf)-start-4))
		// Recorded before the write: the reply may be read before Write
		// returns.
		c.sentMu.Lock()
		c.sent = append(c.sent, sentRequest{op, path})
		c.sentMu.Unlock()
		if len(buf) >= chunk {
			if err := flush(); err != nil {
				return c.failed(err)
			}
		}
	}
	if err := flush(); err != nil {
		return c.failed(err)
	}
	return nil
}

// failed reports a write that failed: the connection is failing, the
// client sees it too and reconnects, and nothing more goes to it.
func (c *sideConn) failed(err error) error {
	if c.owner.conn == c {
		c.owner.conn = nil // mu is held
	}
	// Wrapped as the client's own requests are then, so callers tell a
	// connection that ended from a refusal by ConnectionEnded.
	return fmt.Errorf("zkclient: send watch requests: %w: %w", zk.ErrConnectionClosed, err)
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
	req := c.sent[0]
	c.sent = c.sent[1:]
	c.sentMu.Unlock()
	c.owner.replied(req, code)
	return nil
}

func (c *sideConn) Close() error {
	c.owner.ended(c)
	return c.Conn.Close()
}
