package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

// dnsClient asks one server questions over one UDP socket, matching
// replies by ID. It is not safe for concurrent use.
type dnsClient struct {
	conn *net.UDPConn
	buf  []byte
	id   uint16
}

func dialDNS(addr string) (*dnsClient, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("zkbench: DNS server address %q: %w", addr, err)
	}
	conn, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return nil, fmt.Errorf("zkbench: dial DNS %s: %w", addr, err)
	}
	return &dnsClient{conn: conn, buf: make([]byte, 65535), id: uint16(time.Now().UnixNano())}, nil
}

func (c *dnsClient) close() { c.conn.Close() }

// question builds a query with an EDNS0 buffer of 4096 bytes, so the ten
// SRV records and their glue of a large service come back untruncated.
func question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(4096, false)
	return m
}

// exchange sends q and waits up to timeout for the reply with its ID;
// replies to earlier, abandoned questions are skipped.
func (c *dnsClient) exchange(q *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	replies, err := c.exchangeAll([]*dns.Msg{q}, timeout)
	if err != nil {
		return nil, err
	}
	if replies[0] == nil {
		return nil, fmt.Errorf("zkbench: no DNS reply within %s", timeout)
	}
	return replies[0], nil
}

// exchangeAll sends every question at once and collects their replies in
// the order of qs. A reply still missing after timeout is left nil.
func (c *dnsClient) exchangeAll(qs []*dns.Msg, timeout time.Duration) ([]*dns.Msg, error) {
	pending := make(map[uint16]int, len(qs))
	for i, q := range qs {
		c.id++
		q.Id = c.id
		pending[q.Id] = i
		wire, err := q.Pack()
		if err != nil {
			return nil, fmt.Errorf("zkbench: pack query: %w", err)
		}
		if _, err := c.conn.Write(wire); err != nil {
			return nil, fmt.Errorf("zkbench: send query: %w", err)
		}
	}
	replies := make([]*dns.Msg, len(qs))
	if err := c.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	for len(pending) > 0 {
		n, err := c.conn.Read(c.buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return replies, nil
			}
			return nil, fmt.Errorf("zkbench: read DNS reply: %w", err)
		}
		r := new(dns.Msg)
		if r.Unpack(c.buf[:n]) != nil {
			continue
		}
		i, ok := pending[r.Id]
		if !ok {
			continue
		}
		delete(pending, r.Id)
		replies[i] = r
	}
	return replies, nil
}

// srvTargets lists an answer's SRV records as "target:port", sorted, to
// compare a served set with the expected one.
func srvTargets(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			out = append(out, srv.Target+":"+strconv.Itoa(int(srv.Port)))
		}
	}
	slices.Sort(out)
	return out
}

// probe asks one question again and again as cheaply as the bench can:
// the query is packed once and only its ID changes, and a reply is judged
// by its header alone (ID, QR, RCODE, ANCOUNT), never unpacked. A probe
// asking in a tight loop takes whatever it spends from the ZooKeeper
// server, zkdns and the watchers it is timing, and the garbage of a
// packed and unpacked message per question would bring the bench's
// collector, pauses and all, into the very trials it times.
type probe struct {
	c     *dnsClient
	query []byte
}

func newProbe(c *dnsClient, name string, qtype uint16) (*probe, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	wire, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("zkbench: pack query for %s: %w", name, err)
	}
	return &probe{c: c, query: wire}, nil
}

// ask sends the question once and waits up to timeout for its reply,
// skipping replies to earlier questions. has says whether the reply was
// NOERROR with records in its answer section; answered is false when no
// reply came in time.
func (p *probe) ask(timeout time.Duration) (has, answered bool, err error) {
	p.c.id++
	id := p.c.id
	binary.BigEndian.PutUint16(p.query, id)
	if _, err := p.c.conn.Write(p.query); err != nil {
		return false, false, fmt.Errorf("zkbench: send query: %w", err)
	}
	if err := p.c.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return false, false, err
	}
	for {
		n, err := p.c.conn.Read(p.c.buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return false, false, nil
			}
			return false, false, fmt.Errorf("zkbench: read DNS reply: %w", err)
		}
		reply := p.c.buf[:n]
		if n < 12 || binary.BigEndian.Uint16(reply) != id || reply[2]&0x80 == 0 {
			continue
		}
		rcode, answers := reply[3]&0x0f, binary.BigEndian.Uint16(reply[6:8])
		return rcode == dns.RcodeSuccess && answers > 0, true, nil
	}
}
