package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/zkdns/zkdns/internal/testutil"
)

// openLoopResult is what one open-loop run measured. It travels from the
// openloop subcommand to the bench as JSON.
type openLoopResult struct {
	Rate     float64 `json:"rate"` // the rate asked for, queries/s
	Achieved float64 `json:"achieved"`
	Sent     int64   `json:"sent"`
	Answered int64   `json:"answered"`
	Lost     int64   `json:"lost"`
	// Latency runs from the moment a query was written to the moment its
	// reply reached the generator's socket, as the kernel stamped it
	// (SO_TIMESTAMPNS): a reply that waits there while the generator's one
	// CPU is busy sending is not charged to the server.
	P50  time.Duration `json:"p50_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
	// ReadP50 and ReadP99 run to the moment the generator read the reply
	// instead: they add the generator's own delays.
	ReadP50 time.Duration `json:"read_p50_ns"`
	ReadP99 time.Duration `json:"read_p99_ns"`
	// KernelStamps is false when the socket gave no receive timestamps;
	// the latencies above are then read times too.
	KernelStamps bool `json:"kernel_stamps"`
	// Datagrams the kernel dropped for want of socket buffer during the
	// run, on the server's sockets and on the generator's: they tell a
	// server that fell behind from a generator that did.
	ServerDrops int64 `json:"server_drops"`
	ClientDrops int64 `json:"client_drops"`
}

// openLoop sends queries to conn at a fixed rate for duration from one
// goroutine while another receives, matching replies to queries by ID.
// Unlike dnsperf, which sends a query only when one is answered, the send
// schedule never waits for the server, so a slow reply shows up as
// latency rather than as a lower rate. A query unanswered timeout after
// the last send is lost.
//
// The sender sleeps until the next query is due and then sends every
// query that is due, so a late wake-up becomes a short burst rather than a
// lower rate. Latency runs from the moment each query was written to the
// moment its reply arrived (see openLoopResult).
func openLoop(ctx context.Context, conn net.Conn, queries [][]byte, rate float64, duration, timeout time.Duration) (openLoopResult, error) {
	if len(queries) == 0 || rate <= 0 {
		return openLoopResult{}, errors.New("zkbench: open loop needs queries and a positive rate")
	}
	uc, ok := conn.(*net.UDPConn)
	if !ok {
		return openLoopResult{}, fmt.Errorf("zkbench: open loop needs a UDP socket, not %T", conn)
	}
	stamped := stampReceives(uc) == nil
	// sentAt[id] holds when the query with that ID was written, in wall
	// nanoseconds (the clock the kernel stamps replies with), or 0 once
	// answered. Accessed atomically: the sender stores, the receiver swaps.
	var sentAt [1 << 16]atomic.Int64

	type latencies struct{ arrived, read []time.Duration }
	received := make(chan latencies, 1)
	recvErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 65535)
		oob := make([]byte, 128)
		expect := int(rate*duration.Seconds()) + 1
		lat := latencies{arrived: make([]time.Duration, 0, expect), read: make([]time.Duration, 0, expect)}
		for {
			n, oobn, _, _, err := uc.ReadMsgUDP(buf, oob)
			read := time.Now().UnixNano()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					err = nil // the deadline set after the last send
				}
				received <- lat
				recvErr <- err
				return
			}
			if n < 12 {
				continue
			}
			id := binary.BigEndian.Uint16(buf)
			at := sentAt[id].Swap(0)
			if at == 0 {
				continue
			}
			arrived := read
			if stamped {
				if ts, ok := receiveStamp(oob[:oobn]); ok {
					arrived = ts
				}
			}
			lat.arrived = append(lat.arrived, time.Duration(arrived-at))
			lat.read = append(lat.read, time.Duration(read-at))
		}
	}()

	interval := time.Duration(float64(time.Second) / rate)
	msg := make([]byte, 0, 512)
	var sent int64
	start := time.Now()
	stopAt := start.Add(duration)
	var sendErr error
send:
	for {
		now := time.Now()
		due := start.Add(time.Duration(sent) * interval)
		if !due.Before(stopAt) || ctx.Err() != nil {
			break
		}
		if wait := due.Sub(now); wait > 0 {
			time.Sleep(wait)
			continue
		}
		// Send everything due by now, and nothing due after the end.
		for ; ; sent++ {
			if at := start.Add(time.Duration(sent) * interval); at.After(now) || !at.Before(stopAt) {
				break
			}
			q := queries[sent%int64(len(queries))]
			msg = append(msg[:0], q...)
			id := uint16(sent)
			binary.BigEndian.PutUint16(msg, id)
			sentAt[id].Store(time.Now().UnixNano())
			if _, err := conn.Write(msg); err != nil {
				sendErr = fmt.Errorf("zkbench: open loop send: %w", err)
				break send
			}
		}
	}
	elapsed := time.Since(start)
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	lat := <-received
	if err := <-recvErr; err != nil && sendErr == nil {
		sendErr = fmt.Errorf("zkbench: open loop receive: %w", err)
	}
	if sendErr != nil {
		return openLoopResult{}, sendErr
	}
	slices.Sort(lat.arrived)
	slices.Sort(lat.read)
	return openLoopResult{
		Rate:         rate,
		Achieved:     float64(sent) / elapsed.Seconds(),
		Sent:         sent,
		Answered:     int64(len(lat.arrived)),
		Lost:         sent - int64(len(lat.arrived)),
		P50:          percentile(lat.arrived, 50),
		P99:          percentile(lat.arrived, 99),
		P999:         percentile(lat.arrived, 99.9),
		Max:          percentile(lat.arrived, 100),
		ReadP50:      percentile(lat.read, 50),
		ReadP99:      percentile(lat.read, 99),
		KernelStamps: stamped,
	}, nil
}

// stampReceives asks the kernel to stamp every datagram uc receives with
// the wall-clock time it arrived (SO_TIMESTAMPNS).
func stampReceives(uc *net.UDPConn) error {
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var opt error
	if err := raw.Control(func(fd uintptr) {
		opt = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return err
	}
	return opt
}

// receiveStamp finds the SO_TIMESTAMPNS stamp among a datagram's control
// messages, in wall nanoseconds.
func receiveStamp(oob []byte) (int64, bool) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return sec*1e9 + nsec, true
		}
	}
	return 0, false
}

// readQueries packs the questions of a dnsperf query file ("name type"
// per line) as wire-format queries with the RD bit, as dnsperf sends them.
func readQueries(r io.Reader) ([][]byte, error) {
	var out [][]byte
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("zkbench: query file line %d: want \"name type\", got %q", line, sc.Text())
		}
		qtype, ok := dns.StringToType[strings.ToUpper(f[1])]
		if !ok {
			return nil, fmt.Errorf("zkbench: query file line %d: unknown type %q", line, f[1])
		}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(f[0]), qtype)
		wire, err := m.Pack()
		if err != nil {
			return nil, fmt.Errorf("zkbench: query file line %d: %w", line, err)
		}
		out = append(out, wire)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("zkbench: read query file: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("zkbench: query file holds no queries")
	}
	return out, nil
}

// runOpenLoopCommand is the openloop subcommand: the bench runs it as a
// child pinned to the client core, as it runs dnsperf, and reads the JSON
// it prints.
func runOpenLoopCommand(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("zkbench openloop", flag.ContinueOnError)
	server := fs.String("server", "", "DNS server `ip:port`")
	queryFile := fs.String("queries", "", "query `file` in dnsperf format")
	rate := fs.Float64("rate", 1000, "queries per second")
	duration := fs.Duration("duration", 5*time.Second, "how long to send")
	timeout := fs.Duration("timeout", time.Second, "how long a reply may take before the query counts as lost")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *server == "" || *queryFile == "" {
		return errors.New("zkbench openloop: -server and -queries are required")
	}
	f, err := os.Open(*queryFile)
	if err != nil {
		return fmt.Errorf("zkbench: %w", err)
	}
	queries, err := readQueries(f)
	f.Close()
	if err != nil {
		return err
	}
	conn, err := net.Dial("udp", *server)
	if err != nil {
		return fmt.Errorf("zkbench: %w", err)
	}
	defer conn.Close()
	// A generous buffer keeps the generator's own socket from dropping
	// replies while its one CPU is busy sending; the kernel caps it at
	// net.core.rmem_max.
	_ = conn.(*net.UDPConn).SetReadBuffer(8 << 20)
	serverPort := conn.RemoteAddr().(*net.UDPAddr).Port
	clientPort := conn.LocalAddr().(*net.UDPAddr).Port
	serverBefore, clientBefore := testutil.UDPDrops(serverPort), testutil.UDPDrops(clientPort)
	res, err := openLoop(ctx, conn, queries, *rate, *duration, *timeout)
	if err != nil {
		return err
	}
	res.ServerDrops = testutil.UDPDrops(serverPort) - serverBefore
	res.ClientDrops = testutil.UDPDrops(clientPort) - clientBefore
	return json.NewEncoder(stdout).Encode(res)
}
