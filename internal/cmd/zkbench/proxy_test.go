package main

import (
	"encoding/binary"
	"io"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/zkdns/zkdns/internal/testutil"
)

func TestSetsWatch(t *testing.T) {
	tests := []struct {
		name      string
		frame     []byte
		op        int32
		watch, ok bool
	}{
		{"getData with a watch", testutil.ZKFrame(int32(5), int32(opGetData), "/s/a", true), opGetData, true, true},
		{"getData without", testutil.ZKFrame(int32(5), int32(opGetData), "/s/a", false), opGetData, false, true},
		{"getChildren2 with a watch", testutil.ZKFrame(int32(6), int32(opGetChildren2), "/s", true), opGetChildren2, true, true},
		{"exists with a watch", testutil.ZKFrame(int32(7), int32(opExists), "/s/a", true), opExists, true, true},
		{"setData is no read", testutil.ZKFrame(int32(8), int32(5), "/s/a", "data", int32(-1)), 5, false, false},
		{"a frame cut short", testutil.ZKFrame(int32(9), int32(opGetData), "/s/a")[:18], opGetData, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			watch, ok := setsWatch(tt.frame, tt.op)
			if watch != tt.watch || ok != tt.ok {
				t.Errorf("setsWatch = %v, %v; want %v, %v", watch, ok, tt.watch, tt.ok)
			}
		})
	}
}

func TestWireStatsArithmetic(t *testing.T) {
	a := wireStats{requests: map[int32]int{opGetData: 3, opGetChildren2: 1}, requestBytes: 100, notifications: 2, dataWatchSets: 3}
	b := wireStats{requests: map[int32]int{opGetData: 1}, requestBytes: 40, notifications: 1, dataWatchSets: 1}
	tests := []struct {
		name string
		got  wireStats
		want wireStats
	}{
		{"sub", a.sub(b), wireStats{requests: map[int32]int{opGetData: 2, opGetChildren2: 1}, requestBytes: 60, notifications: 1, dataWatchSets: 2}},
		{"sub drops ops that cancel out", a.sub(a), wireStats{requests: map[int32]int{}}},
		{"add", a.add(b), wireStats{requests: map[int32]int{opGetData: 4, opGetChildren2: 1}, requestBytes: 140, notifications: 3, dataWatchSets: 4}},
		{"add to the zero value", wireStats{}.add(b), b},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.got.requests) != len(tt.want.requests) {
				t.Fatalf("requests = %v, want %v", tt.got.requests, tt.want.requests)
			}
			for op, n := range tt.want.requests {
				if tt.got.requests[op] != n {
					t.Errorf("requests = %v, want %v", tt.got.requests, tt.want.requests)
				}
			}
			g, w := tt.got, tt.want
			g.requests, w.requests = nil, nil
			if !reflect.DeepEqual(g, w) {
				t.Errorf("got %+v, want %+v", g, w)
			}
		})
	}
	if a.requests[opGetData] != 3 {
		t.Errorf("sub or add changed its receiver: %v", a.requests)
	}
}

// fakeZooKeeper accepts one connection, answers the handshake, and then
// for each request sends what reply returns for it.
func fakeZooKeeper(t *testing.T, reply func(req []byte) [][]byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := testutil.ReadZKFrame(c); err != nil {
			return
		}
		if _, err := c.Write(testutil.ZKFrame(int32(0), int32(10000), int64(42), "passwd")); err != nil {
			return
		}
		for {
			req, err := testutil.ReadZKFrame(c)
			if err != nil {
				return
			}
			for _, out := range reply(req) {
				if _, err := c.Write(out); err != nil {
					return
				}
			}
		}
	}()
	return ln.Addr().String()
}

func TestZKProxyCounts(t *testing.T) {
	server := fakeZooKeeper(t, func(req []byte) [][]byte {
		xid := int32(binary.BigEndian.Uint32(req[4:]))
		if xid == xidPing {
			return [][]byte{testutil.ZKFrame(int32(xidPing), int64(0), int32(0))}
		}
		// Answer, then a watch event for good measure.
		return [][]byte{
			testutil.ZKFrame(xid, int64(7), int32(0), "payload"),
			testutil.ZKFrame(int32(xidNotification), int64(8), int32(0), int32(3), int32(3), "/s/a"),
		}
	})
	p, c := dialThroughProxy(t, server)

	send := func(frame []byte) {
		t.Helper()
		if _, err := c.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	recv := func(n int) {
		t.Helper()
		for range n {
			if _, err := testutil.ReadZKFrame(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(testutil.ZKFrame(int32(0), int64(0), int32(10000), int64(0), "", false)) // connect
	recv(1)
	send(testutil.ZKFrame(int32(1), int32(opGetData), "/s/a", true))
	recv(2)
	send(testutil.ZKFrame(int32(2), int32(opGetChildren2), "/s", true))
	recv(2)
	// setWatches: relative zxid, then data, exist and child paths.
	setWatches := testutil.ZKFrame(int32(3), int32(opSetWatches), int64(0), int32(0), int32(0), int32(1), "/s")
	send(setWatches)
	recv(2)
	send(testutil.ZKFrame(int32(xidPing), int32(opPing)))
	recv(1)

	got := p.snapshot()
	tests := []struct {
		name      string
		got, want int
	}{
		{"handshakes", got.handshakes, 1},
		{"getData requests", got.requests[opGetData], 1},
		{"getChildren2 requests", got.requests[opGetChildren2], 1},
		{"ping requests are not requests", got.requests[opPing], 0},
		{"pings both ways", got.pings, 2},
		{"replies", got.replies, 3},
		{"notifications", got.notifications, 3},
		{"data watches set", got.dataWatchSets, 1},
		{"child watches set", got.childWatchSets, 1},
		{"request bytes", int(got.requestBytes), len(testutil.ZKFrame(int32(1), int32(opGetData), "/s/a", true)) + len(testutil.ZKFrame(int32(2), int32(opGetChildren2), "/s", true)) + len(setWatches)},
		{"setWatches bytes", int(got.setWatchesBytes), len(setWatches)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %d, want %d", tt.got, tt.want)
			}
		})
	}
}

func TestZKProxyCut(t *testing.T) {
	server := fakeZooKeeper(t, func([]byte) [][]byte { return nil })
	p, c := dialThroughProxy(t, server)
	if _, err := c.Write(testutil.ZKFrame(int32(0), int64(0), int32(10000), int64(0), "", false)); err != nil {
		t.Fatal(err)
	}
	if _, err := testutil.ReadZKFrame(c); err != nil {
		t.Fatalf("no handshake reply through the proxy: %v", err)
	}
	p.Cut()
	if _, err := testutil.ReadZKFrame(c); err != io.EOF {
		t.Errorf("after cutOff, read = %v, want EOF", err)
	}
	refused, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer refused.Close()
	_ = refused.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := testutil.ReadZKFrame(refused); err != io.EOF {
		t.Errorf("a connection during the cut read %v, want EOF", err)
	}
}

// dialThroughProxy starts a counting proxy in front of server and opens a
// client connection through it with a 10 s deadline; both are closed when
// the test ends.
func dialThroughProxy(t *testing.T, server string) (*zkProxy, net.Conn) {
	t.Helper()
	p, err := newZKProxy(server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return p, c
}
