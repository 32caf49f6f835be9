package zkclient

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// These tests play the server's side of the wire protocol to check what
// a real ZooKeeper 3.8 cannot show: the answer of a server without
// addWatch, and frames the server should never send.

// frame is a length-prefixed wire frame holding body.
func frame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// reply is a reply frame with xid and error code, and payload after them.
func reply(xid, code int32, payload []byte) []byte {
	body := binary.BigEndian.AppendUint32(nil, uint32(xid))
	body = binary.BigEndian.AppendUint64(body, 42) // zxid
	body = binary.BigEndian.AppendUint32(body, uint32(code))
	return frame(append(body, payload...))
}

// dialPipe dials through pw a connection whose other end, server, the
// test plays; both close, and fail after ten seconds, when the test ends.
func dialPipe(t *testing.T, pw *PersistentWatches, client, server net.Conn) net.Conn {
	t.Helper()
	conn, err := pw.Dialer(func(string, string, time.Duration) (net.Conn, error) { return client, nil })("tcp", "zk:2181", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_ = server.SetDeadline(time.Now().Add(10 * time.Second))
	return conn
}

func TestPersistentWatchesOnAServerWithoutThem(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	var replies []error
	sent := 0
	pw := &PersistentWatches{
		Reply: func(path string, err error) {
			if path != "/svc" {
				t.Errorf("reply for %q, want /svc", path)
			}
			replies = append(replies, err)
		},
		Sent: func(op string, n int) {
			if op != OpAddWatch {
				t.Errorf("Sent told of %s, want only %s", op, OpAddWatch)
			}
			sent += n
		},
	}
	conn := dialPipe(t, pw, client, server)

	// Added with no connection to go to, the watch waits for the next
	// handshake, and is written as soon as its answer is read: before
	// the client can write anything else.
	if wrote, err := pw.Add("/svc"); err != nil || wrote {
		t.Fatalf("Add before the handshake: wrote %v, %v; want nothing written, nil", wrote, err)
	}
	handshake := frame(bytes.Repeat([]byte{7}, 36))
	answered := make(chan []byte, 1)
	clientFrame := reply(7, 0, []byte("the client's"))
	go func() {
		_, _ = server.Write(handshake)
		req := make([]byte, 4+4+4+4+len("/svc")+4)
		if _, err := io.ReadFull(server, req); err != nil {
			answered <- nil
			return
		}
		answered <- req
		// As ZooKeeper 3.5 does: UNIMPLEMENTED, then the client's reply.
		_, _ = server.Write(append(reply(sidebandXid, codeUnimplemented, nil), clientFrame...))
	}()
	got := make([]byte, len(handshake))
	if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, handshake) {
		t.Fatalf("handshake read %x, %v; want %x", got, err, handshake)
	}
	want := frame([]byte("\xff\xff\xff\xf0\x00\x00\x00\x6a\x00\x00\x00\x04/svc\x00\x00\x00\x01"))
	if req := <-answered; !bytes.Equal(req, want) {
		t.Fatalf("addWatch request %x, want %x", req, want)
	}
	if sent != 1 {
		t.Errorf("Sent told of %d requests, want 1", sent)
	}
	// Added again on the same connection, it is not written again.
	if wrote, err := pw.Add("/svc"); err != nil || wrote || sent != 1 {
		t.Fatalf("Add of a path the connection has: %v, %d requests told, want nil and still 1", err, sent)
	}
	got = make([]byte, len(clientFrame))
	if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, clientFrame) {
		t.Fatalf("read %q, %v; want only the client's frame %q", got, err, clientFrame)
	}
	if len(replies) != 1 || !errors.Is(replies[0], ErrPersistentWatchesUnsupported) {
		t.Fatalf("replies %v, want one %v", replies, ErrPersistentWatchesUnsupported)
	}
	if _, err := pw.Add("/other"); !errors.Is(err, ErrPersistentWatchesUnsupported) {
		t.Fatalf("Add after the refusal: %v, want %v at once", err, ErrPersistentWatchesUnsupported)
	}

	// A write that fails takes the connection out of use: a request
	// after it waits for the next handshake.
	server.Close()
	pw.unsupported.Store(false)
	if err := pw.Rearm("/svc"); err == nil || !ConnectionEnded(err) {
		t.Fatalf("Rearm on a closed connection: %v, want a connection error", err)
	}
	if err := pw.Rearm("/svc"); err != nil {
		t.Fatalf("Rearm between connections: %v, want nil (the next handshake sets it)", err)
	}
}

// TestPersistentWatchesForgetAndRemove checks the requests that keep a
// connection's persistent watches in step with the paths wanted: Forget
// writes nothing and leaves the watch for Add to take back as it is;
// Remove writes a removeWatches of the data kind, whose refusal (nothing
// to remove) is no error; a path added after its removal is set again.
func TestPersistentWatchesForgetAndRemove(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	var replies []string
	pw := &PersistentWatches{Reply: func(path string, err error) {
		replies = append(replies, path+": "+fmt.Sprint(err))
	}}
	conn := dialPipe(t, pw, client, server)
	request := func(op, arg int32, path string) []byte {
		xid := sidebandXid
		body := binary.BigEndian.AppendUint32(nil, uint32(xid))
		body = binary.BigEndian.AppendUint32(body, uint32(op))
		body = binary.BigEndian.AppendUint32(body, uint32(len(path)))
		body = append(body, path...)
		return frame(binary.BigEndian.AppendUint32(body, uint32(arg)))
	}
	// serve reads one request and answers it with code, then the
	// client's own frame.
	served := make(chan []byte, 1)
	serve := func(n int, code int32, then []byte) {
		go func() {
			req := make([]byte, n)
			if _, err := io.ReadFull(server, req); err != nil {
				served <- nil
				return
			}
			served <- req
			_, _ = server.Write(append(reply(sidebandXid, code, nil), then...))
		}()
	}
	clientFrame := reply(7, 0, []byte("the client's"))
	readClientFrame := func(what string) {
		t.Helper()
		got := make([]byte, len(clientFrame))
		if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, clientFrame) {
			t.Fatalf("%s: read %q, %v; want only the client's frame", what, got, err)
		}
	}

	if _, err := pw.Add("/a"); err != nil {
		t.Fatal(err)
	}
	handshake := frame(bytes.Repeat([]byte{7}, 36))
	go func() { _, _ = server.Write(handshake) }()
	serve(len(request(opAddWatch, 1, "/a")), 0, clientFrame)
	if _, err := io.ReadFull(conn, make([]byte, len(handshake))); err != nil {
		t.Fatal(err)
	}
	if got, want := <-served, request(opAddWatch, 1, "/a"); !bytes.Equal(got, want) {
		t.Fatalf("handshake's request %x, want addWatch %x", got, want)
	}
	readClientFrame("after the addWatch")

	// Forgotten, the watch stays on the connection: Add writes nothing.
	pw.Forget("/a")
	if wrote, err := pw.Add("/a"); wrote || err != nil {
		t.Fatalf("Add after Forget: wrote %v, %v; want nothing written", wrote, err)
	}
	serve(len(request(opRemoveWatches, 2, "/a")), -121, clientFrame) // NOWATCHER
	if err := pw.Remove("/a"); err != nil {
		t.Fatal(err)
	}
	if got, want := <-served, request(opRemoveWatches, 2, "/a"); !bytes.Equal(got, want) {
		t.Fatalf("Remove's request %x, want removeWatches of the data kind %x", got, want)
	}
	readClientFrame("after the removeWatches")
	serve(len(request(opAddWatch, 1, "/a")), 0, clientFrame)
	if wrote, err := pw.Add("/a"); !wrote || err != nil {
		t.Fatalf("Add after Remove: wrote %v, %v; want it written", wrote, err)
	}
	if got, want := <-served, request(opAddWatch, 1, "/a"); !bytes.Equal(got, want) {
		t.Fatalf("request %x, want addWatch %x", got, want)
	}
	readClientFrame("after the second addWatch")
	if want := []string{"/a: <nil>", "/a: <nil>"}; !slices.Equal(replies, want) {
		t.Errorf("replies %q, want %q: the removal's refusal is not one", replies, want)
	}

	// AddAll writes the paths the connection lacks, in one write: a pipe
	// hands one read no more than one write.
	batch := append(request(opAddWatch, 1, "/b"), request(opAddWatch, 1, "/c")...)
	go func() {
		buf := make([]byte, 4*len(batch))
		n, err := server.Read(buf)
		if err != nil {
			served <- nil
			return
		}
		served <- buf[:n]
		_, _ = io.Copy(io.Discard, server) // whatever a second write holds
	}()
	if wrote, err := pw.AddAll([]string{"/a", "/b", "/c"}); err != nil || !slices.Equal(wrote, []string{"/b", "/c"}) {
		t.Fatalf("AddAll beside /a: wrote %q, %v; want /b and /c", wrote, err)
	}
	if got := <-served; !bytes.Equal(got, batch) {
		t.Fatalf("one read got %x, want both requests %x", got, batch)
	}
}

// streamConn is a connection whose reads come from a byte stream.
type streamConn struct {
	net.Conn
	r io.Reader
}

func (c streamConn) Read(b []byte) (int, error) { return c.r.Read(b) }
func (c streamConn) Close() error               { return nil }

// FuzzSideConnFraming reads a server's byte stream through the frame
// filter with no request sent: the client must get every byte up to the
// first reply marked as the filter's own, and then an error, since such a
// reply answers nothing.
func FuzzSideConnFraming(f *testing.F) {
	f.Add(append(frame(make([]byte, 36)), reply(3, 0, []byte("data"))...))
	f.Add(append(frame(make([]byte, 36)), reply(sidebandXid, 0, nil)...))
	f.Add(append(frame(make([]byte, 36)), frame([]byte{1, 2})...))
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, stream []byte) {
		var pw PersistentWatches
		conn, err := pw.Dialer(func(string, string, time.Duration) (net.Conn, error) {
			return streamConn{r: bytes.NewReader(stream)}, nil
		})("tcp", "zk:2181", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.LimitReader(conn, int64(len(stream))+1))
		want, stray := passedThrough(stream)
		if !bytes.Equal(got, want) {
			t.Fatalf("client read %x, want %x", got, want)
		}
		if stray != (err != nil) {
			t.Fatalf("read error %v, want one: %v", err, stray)
		}
	})
}

// passedThrough is what the filter hands the client of stream: the first
// frame whole, then every frame up to the first with the filter's xid;
// stray says there was one.
func passedThrough(stream []byte) (out []byte, stray bool) {
	first := true
	for len(stream) >= 4 {
		n := 4 + int(binary.BigEndian.Uint32(stream))
		if n < 4 { // a length past int32 on 32-bit platforms
			n = len(stream)
		}
		if !first && n >= replyHeaderLen {
			if len(stream) < replyHeaderLen {
				return out, false
			}
			if int32(binary.BigEndian.Uint32(stream[4:])) == sidebandXid {
				return out, len(stream) >= n
			}
		}
		first = false
		n = min(n, len(stream))
		out = append(out, stream[:n]...)
		stream = stream[n:]
	}
	return out, false
}
