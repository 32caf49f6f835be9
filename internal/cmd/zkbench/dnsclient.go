package main

import (
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
