package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/miekg/dns"
)

// propagation measures, over trials, the time from a client's Delete of an
// instance znode to zkdns's first DNS answer without it, beside the time
// another ZooKeeper session's child watch takes to see the same delete.
func propagation(ctx context.Context, conn *zk.Conn, out io.Writer, prefix, dnsAddr, zone string, trials int) error {
	svc := prefix + "/propagation"
	if err := ensurePath(conn, svc); err != nil {
		return err
	}
	watcher, err := connect(conn.Server(), 10*time.Second)
	if err != nil {
		return err
	}
	defer watcher.Close()
	udp, err := net.Dial("udp", dnsAddr)
	if err != nil {
		return err
	}
	defer udp.Close()
	name := dns.Fqdn("inst.propagation." + zone)
	query := new(dns.Msg)
	query.SetQuestion(name, dns.TypeA)
	var viaDNS, viaWatch []time.Duration
	for trial := range trials {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p := svc + "/inst"
		if _, err := conn.Create(p, []byte("192.0.2.1:80"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
			return fmt.Errorf("trial %d: create %s: %w", trial, p, err)
		}
		if err := waitAnswer(udp, query, true); err != nil {
			return fmt.Errorf("trial %d: instance never appeared in DNS: %w", trial, err)
		}
		_, _, ev, err := watcher.ChildrenW(svc)
		if err != nil {
			return err
		}
		start := time.Now()
		if err := conn.Delete(p, -1); err != nil {
			return fmt.Errorf("trial %d: delete: %w", trial, err)
		}
		watchSeen := make(chan time.Duration, 1)
		go func() {
			select {
			case <-ev:
				watchSeen <- time.Since(start)
			case <-time.After(settle):
				watchSeen <- -1
			}
		}()
		if err := waitAnswer(udp, query, false); err != nil {
			return fmt.Errorf("trial %d: instance never left DNS: %w", trial, err)
		}
		viaDNS = append(viaDNS, time.Since(start))
		if d := <-watchSeen; d >= 0 {
			viaWatch = append(viaWatch, d)
		}
	}
	fmt.Fprintf(out, "trials %d\n", trials)
	fmt.Fprintf(out, "zkdns_delete_to_dns p50 %s p99 %s\n", pct(viaDNS, 50), pct(viaDNS, 99))
	fmt.Fprintf(out, "raw_child_watch p50 %s p99 %s\n", pct(viaWatch, 50), pct(viaWatch, 99))
	return nil
}

// waitAnswer queries in a tight loop until the name has an answer
// (present) or has none (!present).
func waitAnswer(c net.Conn, q *dns.Msg, present bool) error {
	deadline := time.Now().Add(settle)
	buf := make([]byte, 4096)
	for time.Now().Before(deadline) {
		q.Id = dns.Id()
		wire, err := q.Pack()
		if err != nil {
			return err
		}
		if _, err := c.Write(wire); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err != nil {
			continue
		}
		var r dns.Msg
		if r.Unpack(buf[:n]) != nil || r.Id != q.Id {
			continue
		}
		if (len(r.Answer) > 0) == present {
			return nil
		}
	}
	return fmt.Errorf("no such answer within %s", settle)
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100].Round(time.Microsecond)
}
