package main

import (
	"encoding/binary"

	"fmt"
	"io"
	"maps"
	"sync"

	"github.com/zkdns/zkdns/internal/testutil"
)

// ZooKeeper protocol constants the proxy needs to tell frames apart.
const (
	xidNotification = -1 // server → client: a watch event
	xidPing         = -2

	opExists       = 3
	opGetData      = 4
	opGetChildren  = 8
	opPing         = 11
	opGetChildren2 = 12
	opSetWatches   = 101
	opSetWatches2  = 105
)

// setsWatch reports, for a read request frame, whether it asks the
// server to leave a watch. These reads share one body layout after the
// 12-byte length, xid and opcode: the path (a 4-byte length and its bytes)
// and then the watch flag. ok is false for other requests.
func setsWatch(frame []byte, op int32) (watch, ok bool) {
	switch op {
	case opExists, opGetData, opGetChildren, opGetChildren2:
	default:
		return false, false
	}
	if len(frame) < 16 {
		return false, false
	}
	n := int(int32(binary.BigEndian.Uint32(frame[12:])))
	at := 16 + max(n, 0)
	if at >= len(frame) {
		return false, false
	}
	return frame[at] != 0, true
}

// zkOpName names the request opcodes of ZooKeeper's protocol (jute's
// ZooDefs.OpCode).
func zkOpName(op int32) string {
	switch op {
	case 1:
		return "create"
	case 2:
		return "delete"
	case 3:
		return "exists"
	case 4:
		return "getData"
	case 5:
		return "setData"
	case 8:
		return "getChildren"
	case 9:
		return "sync"
	case 11:
		return "ping"
	case 12:
		return "getChildren2"
	case 14:
		return "multi"
	case 15:
		return "create2"
	case 100:
		return "auth"
	case opSetWatches:
		return "setWatches"
	case opSetWatches2:
		return "setWatches2"
	case 106:
		return "addWatch"
	case -11:
		return "closeSession"
	}
	return fmt.Sprintf("op%d", op)
}

// wireStats counts ZooKeeper frames on the wire, length prefix included.
// Pings and the connect handshake are counted apart from requests, so a
// change's cost is not blurred by the session's keep-alive.
type wireStats struct {
	requests     map[int32]int // client → server, by opcode
	requestBytes int64
	// setWatchesBytes are those of requestBytes that gave watches back
	// after a reconnect (setWatches, setWatches2): the part that grows
	// with every watched path.
	setWatchesBytes   int64
	replies           int // server → client answers to requests
	replyBytes        int64
	notifications     int // server → client watch events
	notificationBytes int64
	pings             int // both directions
	handshakes        int // connect requests
	// Reads that asked to leave a watch: on children (getChildren,
	// getChildren2) or on the znode itself (getData, exists).
	childWatchSets, dataWatchSets int
}

func (w wireStats) clone() wireStats {
	w.requests = maps.Clone(w.requests)
	if w.requests == nil {
		w.requests = map[int32]int{}
	}
	return w
}

// sub returns w − earlier.
func (w wireStats) sub(earlier wireStats) wireStats {
	d := w.clone()
	for op, n := range earlier.requests {
		if d.requests[op] -= n; d.requests[op] == 0 {
			delete(d.requests, op)
		}
	}
	d.requestBytes -= earlier.requestBytes
	d.setWatchesBytes -= earlier.setWatchesBytes
	d.replies -= earlier.replies
	d.replyBytes -= earlier.replyBytes
	d.notifications -= earlier.notifications
	d.notificationBytes -= earlier.notificationBytes
	d.pings -= earlier.pings
	d.handshakes -= earlier.handshakes
	d.childWatchSets -= earlier.childWatchSets
	d.dataWatchSets -= earlier.dataWatchSets
	return d
}

// add returns w + other.
func (w wireStats) add(other wireStats) wireStats {
	d := w.clone()
	for op, n := range other.requests {
		d.requests[op] += n
	}
	d.requestBytes += other.requestBytes
	d.setWatchesBytes += other.setWatchesBytes
	d.replies += other.replies
	d.replyBytes += other.replyBytes
	d.notifications += other.notifications
	d.notificationBytes += other.notificationBytes
	d.pings += other.pings
	d.handshakes += other.handshakes
	d.childWatchSets += other.childWatchSets
	d.dataWatchSets += other.dataWatchSets
	return d
}

func (w wireStats) requestCount() int {
	n := 0
	for _, c := range w.requests {
		n += c
	}
	return n
}

// zkProxy forwards connections from a loopback port to a ZooKeeper
// server, counting the protocol frames that cross it, and can cut them
// off as a network partition would (testutil.TCPProxy's Cut and Restore).
type zkProxy struct {
	*testutil.TCPProxy

	mu    sync.Mutex // guards stats
	stats wireStats
}

func newZKProxy(target string) (*zkProxy, error) {
	p := &zkProxy{stats: wireStats{requests: map[int32]int{}}}
	tp, err := testutil.NewTCPProxyWith(target, p.relay)
	if err != nil {
		return nil, fmt.Errorf("zkbench: %w", err)
	}
	p.TCPProxy = tp
	return p, nil
}

// snapshot returns the counts so far.
func (p *zkProxy) snapshot() wireStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats.clone()
}

// relay copies frames from src to dst, counting each; toServer says
// which way they flow.
func (p *zkProxy) relay(dst io.Writer, src io.Reader, toServer bool) error {
	first := true
	for {
		frame, err := testutil.ReadZKFrame(src)
		if err != nil {
			return err
		}
		p.count(frame, toServer, first)
		first = false
		if _, err := dst.Write(frame); err != nil {
			return err
		}
	}
}

// count classifies one frame: the first each way is the connect handshake;
// after it, a request starts with xid and opcode, a reply with xid, zxid
// and an error code.
func (p *zkProxy) count(frame []byte, fromClient, first bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &p.stats
	size := int64(len(frame))
	switch {
	case first:
		if fromClient {
			s.handshakes++
		}
	case len(frame) < 12:
		// Too short to classify; nothing ZooKeeper sends.
	case fromClient:
		req, _ := testutil.ParseZKRequest(frame)
		xid, op := req.Xid, req.Op
		if xid == xidPing || op == opPing {
			s.pings++
			return
		}
		s.requests[op]++
		s.requestBytes += size
		if op == opSetWatches || op == opSetWatches2 {
			s.setWatchesBytes += size
		}
		if watch, ok := setsWatch(frame, op); ok && watch {
			if op == opGetChildren || op == opGetChildren2 {
				s.childWatchSets++
			} else {
				s.dataWatchSets++
			}
		}
	default:
		switch xid, _ := testutil.ZKReplyXid(frame); xid {
		case xidPing:
			s.pings++
		case xidNotification:
			s.notifications++
			s.notificationBytes += size
		default:
			s.replies++
			s.replyBytes += size
		}
	}
}
