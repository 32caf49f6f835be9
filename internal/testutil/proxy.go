package testutil

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
)

// TCPProxy forwards connections from a loopback port to a target, and can
// cut them off. Between a client and a ZooKeeper that keeps running, a cut
// makes the server expire the client's session for certain (pausing the
// server does not: the client's reconnect waits in the accept backlog and
// revalidates the session the moment the server resumes).
type TCPProxy struct {
	target string
	ln     net.Listener
	relay  Relay

	mu    sync.Mutex // guards cut and conns
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// Relay copies one direction of a proxied connection from src to dst
// until either fails; toServer says which direction. It lets a proxy look
// at what crosses it (a benchmark counts protocol frames).
type Relay func(dst io.Writer, src io.Reader, toServer bool) error

// NewTCPProxy listens on 127.0.0.1:0 and forwards to target until Close.
func NewTCPProxy(target string) (*TCPProxy, error) {
	return NewTCPProxyWith(target, nil)
}

// ProxyTo is NewTCPProxy for a test: it fails the test if the proxy
// cannot listen, and closes the proxy when the test ends.
func ProxyTo(t testing.TB, target string) *TCPProxy {
	t.Helper()
	p, err := NewTCPProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// NewTCPProxyWith is NewTCPProxy with relay copying each direction; nil
// means a plain copy.
func NewTCPProxyWith(target string, relay Relay) (*TCPProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testutil: proxy listen: %w", err)
	}
	p := &TCPProxy{target: target, ln: ln, relay: relay, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients should dial.
func (p *TCPProxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every forwarded connection and refuses new ones until Restore.
func (p *TCPProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Restore lets connections through again.
func (p *TCPProxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// Close stops the proxy and waits for its goroutines.
func (p *TCPProxy) Close() error {
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *TCPProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(client) {
			client.Close()
			continue
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil || !p.track(server) {
			if server != nil {
				server.Close()
			}
			p.untrack(client)
			client.Close()
			continue
		}
		p.wg.Add(2)
		go p.pipe(server, client, true)
		go p.pipe(client, server, false)
	}
}

func (p *TCPProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *TCPProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *TCPProxy) pipe(dst, src net.Conn, toServer bool) {
	defer p.wg.Done()
	// Any end of the copy (EOF, reset, a cut) ends both directions.
	if p.relay != nil {
		_ = p.relay(dst, src, toServer)
	} else {
		_, _ = io.Copy(dst, src)
	}
	dst.Close()
	src.Close()
	p.untrack(dst)
	p.untrack(src)
}

// maxZKFrame bounds a frame ReadZKFrame will buffer, well above
// ZooKeeper's default jute.maxbuffer of 1 MiB.
const maxZKFrame = 64 << 20

// ReadZKFrame reads one length-prefixed ZooKeeper frame, prefix included,
// for a Relay that looks at the protocol.
func ReadZKFrame(r io.Reader) ([]byte, error) {
	var prefix [4]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(prefix[:])
	if n > maxZKFrame {
		return nil, fmt.Errorf("testutil: ZooKeeper frame of %d bytes", n)
	}
	frame := make([]byte, 4+n)
	copy(frame, prefix[:])
	if _, err := io.ReadFull(r, frame[4:]); err != nil {
		return nil, err
	}
	return frame, nil
}

// ZKFrame builds a length-prefixed ZooKeeper frame from big-endian fields:
// int32, int64, string (written as ZooKeeper does, length first) or bool.
// It panics on any other type: a test's mistake.
func ZKFrame(fields ...any) []byte {
	var body []byte
	for _, f := range fields {
		switch v := f.(type) {
		case int32:
			body = binary.BigEndian.AppendUint32(body, uint32(v))
		case int64:
			body = binary.BigEndian.AppendUint64(body, uint64(v))
		case string:
			body = binary.BigEndian.AppendUint32(body, uint32(len(v)))
			body = append(body, v...)
		case bool:
			b := byte(0)
			if v {
				b = 1
			}
			body = append(body, b)
		default:
			panic(fmt.Sprintf("testutil: ZKFrame: unsupported field %T", f))
		}
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// ZKRelay is a Relay that passes ZooKeeper frames on whole, handing each
// one after the connection's handshake to inspect first. inspect says
// whether to pass the frame on; an error drops the connection. back is
// the side the frame came from, for a relay that answers in ZooKeeper's
// place.
func ZKRelay(inspect func(frame []byte, toServer bool, back io.Writer) (pass bool, err error)) Relay {
	return func(dst io.Writer, src io.Reader, toServer bool) error {
		for first := true; ; first = false {
			frame, err := ReadZKFrame(src)
			if err != nil {
				return err
			}
			if !first {
				back, _ := src.(io.Writer)
				pass, err := inspect(frame, toServer, back)
				if err != nil {
					return err
				}
				if !pass {
					continue
				}
			}
			if _, err := dst.Write(frame); err != nil {
				return err
			}
		}
	}
}

// ZKRequest is the start of a ZooKeeper request frame: its xid, its
// opcode and, for the requests that name one first, its path.
type ZKRequest struct {
	Xid, Op int32
	Path    string // empty when the frame holds none
}

// ParseZKRequest reads the start of a request frame (prefix included),
// after the handshake; ok is false for one too short to be a request.
func ParseZKRequest(frame []byte) (req ZKRequest, ok bool) {
	if len(frame) < 12 {
		return ZKRequest{}, false
	}
	req.Xid = int32(binary.BigEndian.Uint32(frame[4:]))
	req.Op = int32(binary.BigEndian.Uint32(frame[8:]))
	if len(frame) >= 16 {
		if n := int(binary.BigEndian.Uint32(frame[12:])); n >= 0 && 16+n <= len(frame) {
			req.Path = string(frame[16 : 16+n])
		}
	}
	return req, true
}

// ZKReplyXid reads the xid of a reply frame (prefix included), after the
// handshake: the request it answers.
func ZKReplyXid(frame []byte) (xid int32, ok bool) {
	if len(frame) < 8 {
		return 0, false
	}
	return int32(binary.BigEndian.Uint32(frame[4:])), true
}
