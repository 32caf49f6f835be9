package dnsserver

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"
	"unsafe"
)

// TestBatchReadAndWrite reads datagrams from several clients in batches
// and answers each through the batch writer, with replies the kernel
// refuses mixed in: every client must get its own reply, whatever the
// refused ones' places in the batch, and the sources must be the clients'
// addresses as the kernel gave them.
func TestBatchReadAndWrite(t *testing.T) {
	const clients = 3
	for _, family := range []struct{ name, addr string }{{"IPv4", "127.0.0.1:0"}, {"IPv6", "[::1]:0"}} {
		for _, refused := range [][]int{
			nil,       // no refused reply
			{0},       // before every good one
			{1},       // between good ones: sendmmsg stops at it
			{clients}, // after every good one
			{0, 2, 4}, // around each
		} {
			t.Run(fmt.Sprintf("%s/refused at %v", family.name, refused), func(t *testing.T) {
				server := listenUDP(t, family.addr)
				in, err := newBatchReader(server, batchSize, maxUDPQuery, false)
				if err != nil {
					t.Fatal(err)
				}
				out, err := newBatchWriter(server, batchSize, maxUDPReply)
				if err != nil {
					t.Fatal(err)
				}
				var conns []*net.UDPConn
				for i := range clients {
					c, err := net.DialUDP("udp", nil, server.LocalAddr().(*net.UDPAddr))
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { c.Close() })
					if _, err := c.Write(fmt.Appendf(nil, "query %d", i)); err != nil {
						t.Fatal(err)
					}
					conns = append(conns, c)
				}

				// The datagrams may come over more than one read, each
				// into the reader's first slots: keep them, then put them
				// back in slots 0 to clients-1, as one read would have.
				type datagram struct {
					name    [unsafe.Sizeof(in.names[0])]byte
					namelen uint32
					data    []byte
				}
				var kept []datagram
				_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
				for len(kept) < clients {
					n, err := in.read()
					if err != nil {
						t.Fatalf("read after %d of %d datagrams: %v", len(kept), clients, err)
					}
					for i := range n {
						kept = append(kept, datagram{
							name:    *(*[unsafe.Sizeof(in.names[0])]byte)(unsafe.Pointer(&in.names[i])),
							namelen: in.hdrs[i].hdr.Namelen,
							data:    bytes.Clone(in.packet(i)),
						})
					}
				}
				for i, d := range kept {
					*(*[unsafe.Sizeof(in.names[0])]byte)(unsafe.Pointer(&in.names[i])) = d.name
					in.hdrs[i].hdr.Namelen = d.namelen
					in.hdrs[i].len = uint32(copy(in.bufs[i], d.data))
				}
				sources := make([]int, clients) // the batch slot of each client's query
				for i := range clients {
					var client int
					if _, err := fmt.Sscanf(string(in.packet(i)), "query %d", &client); err != nil {
						t.Fatalf("datagram %d is %q", i, in.packet(i))
					}
					if src, want := in.source(i), conns[client].LocalAddr().(*net.UDPAddr).AddrPort(); src != want {
						t.Errorf("source of client %d's query = %v, want %v", client, src, want)
					}
					sources[client] = i
				}

				// A copy of the first source with port 0 is a destination
				// every sendmmsg refuses (EINVAL).
				bad := clients
				in.names[bad] = in.names[0]
				(*[unsafe.Sizeof(in.names[bad])]byte)(unsafe.Pointer(&in.names[bad]))[2] = 0
				(*[unsafe.Sizeof(in.names[bad])]byte)(unsafe.Pointer(&in.names[bad]))[3] = 0
				in.hdrs[bad].hdr.Namelen = in.hdrs[0].hdr.Namelen

				good := 0
				for place := range clients + len(refused) {
					slot := bad
					if !slices.Contains(refused, place) {
						slot = sources[good]
						good++
					}
					reply := append(out.next(), "reply to "...)
					reply = append(reply, in.packet(slot)...)
					out.add(reply, in, slot)
				}
				if n := out.flush(); n != clients+len(refused) {
					t.Errorf("flush handled %d replies, want %d", n, clients+len(refused))
				}
				if out.n != 0 {
					t.Errorf("%d replies still queued after flush", out.n)
				}

				for client, c := range conns {
					_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
					buf := make([]byte, 64)
					n, err := c.Read(buf)
					if err != nil {
						t.Fatalf("client %d got no reply: %v", client, err)
					}
					if want := fmt.Appendf(nil, "reply to query %d", client); !bytes.Equal(buf[:n], want) {
						t.Errorf("client %d got %q, want %q", client, buf[:n], want)
					}
				}
			})
		}
	}
}

// TestBatchReadCutsLongDatagrams: a datagram longer than the reader's
// buffers is cut to them, not read past them.
func TestBatchReadCutsLongDatagrams(t *testing.T) {
	server := listenUDP(t, "127.0.0.1:0")
	const size = 16
	in, err := newBatchReader(server, 2, size, false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, server.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	long := bytes.Repeat([]byte("x"), 3*size)
	if _, err := c.Write(long); err != nil {
		t.Fatal(err)
	}
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := in.read()
	if err != nil || n != 1 {
		t.Fatalf("read = %d, %v; want 1 datagram", n, err)
	}
	if got := in.packet(0); !bytes.Equal(got, long[:size]) {
		t.Errorf("packet = %q, want the first %d bytes of the datagram", got, size)
	}
}

// listenUDP listens on addr, a loopback address, until t ends.
func listenUDP(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp", a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
