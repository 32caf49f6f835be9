package main

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/zkdns/zkdns/internal/testutil"
)

func TestReadQueries(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    []string // "name type" of each query
		wantErr string
	}{
		{
			name: "dnsperf's format",
			file: "svc1.local SRV\nsvc2.local A\n\n# a comment\ninst0.svc3.local a\n",
			want: []string{"svc1.local. SRV", "svc2.local. A", "inst0.svc3.local. A"},
		},
		{name: "an unknown type", file: "svc1.local BOGUS\n", wantErr: "unknown type"},
		{name: "a line with three fields", file: "svc1.local A extra\n", wantErr: "want \"name type\""},
		{name: "nothing to send", file: "# only a comment\n", wantErr: "no queries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readQueries(strings.NewReader(tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d queries, want %d", len(got), len(tt.want))
			}
			for i, wire := range got {
				var m dns.Msg
				if err := m.Unpack(wire); err != nil {
					t.Fatalf("query %d does not unpack: %v", i, err)
				}
				q := m.Question[0]
				if s := q.Name + " " + dns.TypeToString[q.Qtype]; s != tt.want[i] || !m.RecursionDesired {
					t.Errorf("query %d = %s (rd %v), want %s with rd", i, s, m.RecursionDesired, tt.want[i])
				}
			}
		})
	}
}

// echoDNS answers every query on 127.0.0.1 by echoing it with the QR bit,
// except those drop says to ignore. It stops when the test ends.
func echoDNS(t *testing.T, drop func(id uint16) bool) string {
	t.Helper()
	return serveUDP(t, func(query []byte, send func([]byte)) {
		if len(query) < 12 || drop(binary.BigEndian.Uint16(query)) {
			return
		}
		query[2] |= 0x80
		send(query)
	})
}

// serveUDP hands every datagram sent to a socket on 127.0.0.1 to answer,
// which replies to its sender with send, until the test ends, and returns
// the socket's address. Nothing is allocated per datagram.
func serveUDP(t *testing.T, answer func(query []byte, send func(reply []byte))) string {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	// Room for a stall of the serving goroutine on a loaded machine; the
	// kernel caps it at net.core.rmem_max.
	_ = pc.SetReadBuffer(4 << 20)
	done := make(chan struct{})
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		var from netip.AddrPort
		send := func(reply []byte) { _, _ = pc.WriteToUDPAddrPort(reply, from) }
		for {
			// Stops by itself should the test not close it.
			_ = pc.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, sender, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			from = sender
			answer(buf[:n], send)
		}
	}()
	return pc.LocalAddr().String()
}

func TestOpenLoop(t *testing.T) {
	queries, err := readQueries(strings.NewReader("svc1.local SRV\nsvc2.local A\n"))
	if err != nil {
		t.Fatal(err)
	}
	const rate, duration = 2000, 250 * time.Millisecond
	// The schedule, not the machine's speed, decides how many are sent:
	// one every 500µs, the last before the end.
	const scheduled = 500
	tests := []struct {
		name     string
		drop     func(id uint16) bool
		wantLost int64
	}{
		{"every query answered", func(uint16) bool { return false }, 0},
		{"every fourth query ignored", func(id uint16) bool { return id%4 == 0 }, scheduled / 4},
		{"a server that never answers", func(uint16) bool { return true }, scheduled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("udp", echoDNS(t, tt.drop))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.(*net.UDPConn).SetReadBuffer(4 << 20)
			serverPort := conn.RemoteAddr().(*net.UDPAddr).Port
			clientPort := conn.LocalAddr().(*net.UDPAddr).Port
			dropsBefore := testutil.UDPDrops(serverPort, clientPort) + testutil.BacklogDrops()
			// A reply counts as lost only after this: long enough for an
			// echo server on a loaded machine under -race, so that only
			// the queries it ignores are lost.
			const replyTimeout = 5 * time.Second
			res, err := openLoop(context.Background(), conn, queries, rate, duration, replyTimeout)
			if err != nil {
				t.Fatal(err)
			}
			if res.Sent != scheduled {
				t.Errorf("sent %d, want the %d the schedule holds", res.Sent, scheduled)
			}
			// The kernel may drop datagrams too, on a machine loaded
			// enough: each such drop is one more query lost, and the
			// count must own up to it, but no query may be lost beyond
			// the ignored ones and those.
			kernelDrops := testutil.UDPDrops(serverPort, clientPort) + testutil.BacklogDrops() - dropsBefore
			if res.Answered+res.Lost != res.Sent || res.Lost < tt.wantLost || res.Lost > tt.wantLost+kernelDrops {
				t.Errorf("answered %d, lost %d of %d; want lost %d and at most the kernel's %d drops more", res.Answered, res.Lost, res.Sent, tt.wantLost, kernelDrops)
			} else if res.Lost > tt.wantLost {
				t.Logf("%d more lost, as the kernel dropped %d datagrams", res.Lost-tt.wantLost, kernelDrops)
			}
			if res.Answered > 0 && (res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.P999 || res.P999 > res.Max) {
				t.Errorf("percentiles out of order: p50 %v p99 %v p99.9 %v max %v", res.P50, res.P99, res.P999, res.Max)
			}
			if !res.KernelStamps {
				t.Error("the socket gave no receive timestamps")
			}
			// Every reply is read after the kernel stamped it, so each read
			// percentile is at least its arrival one; a stamp on another
			// clock or misread would break that or be absurdly large.
			if res.Answered > 0 && (res.ReadP50 < res.P50 || res.ReadP99 < res.P99 || res.Max > time.Second) {
				t.Errorf("arrival p50 %v p99 %v max %v, read p50 %v p99 %v", res.P50, res.P99, res.Max, res.ReadP50, res.ReadP99)
			}
		})
	}
}

func TestOpenLoopRejects(t *testing.T) {
	tests := []struct {
		name    string
		queries [][]byte
		rate    float64
	}{
		{"no queries", nil, 100},
		{"no rate", [][]byte{make([]byte, 12)}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := openLoop(context.Background(), nil, tt.queries, tt.rate, time.Second, time.Second)
			if err == nil || errors.Is(err, context.Canceled) {
				t.Errorf("openLoop = %v, want a usage error", err)
			}
		})
	}
}
