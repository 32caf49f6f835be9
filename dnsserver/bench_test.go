package dnsserver

import (
	"context"
	"fmt"
	"testing"

	"github.com/miekg/dns"
)

func benchSnap() *Snapshot {
	s := NewSnapshot(Zone{Origin: "local.", TTL: 5e9, NegativeTTL: 1e9})
	var u Update
	u.Synced = true
	u.Full = true
	for i := 0; i < 1000; i++ {
		svc := Service{Name: fmt.Sprintf("svc%d", i)}
		for j := 0; j < 5; j++ {
			svc.Instances = append(svc.Instances, Instance{ID: fmt.Sprintf("inst%d", j), Address: fmt.Sprintf("10.0.%d.%d", i%256, j+1), Port: 8080, Weight: 100})
		}
		u.Services = append(u.Services, svc)
	}
	return s.Apply(u)
}

func BenchmarkApplyOne(b *testing.B) {
	s := benchSnap()
	u := Update{Services: []Service{{Name: "svc5", Instances: []Instance{{ID: "x", Address: "10.1.1.1", Port: 1, Weight: 1}}}}}
	b.ReportAllocs()
	for b.Loop() {
		s.Apply(u)
	}
}

// BenchmarkApplyOneLarge is make bench's republish case in process: one
// instance of a 10-instance service changes in a table of 10,000 such
// services, and the service's replies are rebuilt.
func BenchmarkApplyOneLarge(b *testing.B) {
	s := NewSnapshot(Zone{Origin: "local.", TTL: 5e9, NegativeTTL: 1e9})
	u := Update{Synced: true, Full: true}
	for i := range 10000 {
		svc := Service{Name: fmt.Sprintf("svc%d", i)}
		for j := range 10 {
			svc.Instances = append(svc.Instances, Instance{ID: fmt.Sprintf("inst%d", j), Address: fmt.Sprintf("10.%d.%d.%d", i/256, i%256, j+1), Port: 8080, Weight: 100})
		}
		u.Services = append(u.Services, svc)
	}
	s = s.Apply(u)
	one := u.Services[777]
	b.ReportAllocs()
	for k := 0; b.Loop(); k++ {
		one.Instances[3].Port = uint16(20000 + k%1000)
		s = s.Apply(Update{Services: []Service{one}})
	}
}

func BenchmarkAnswerSRV(b *testing.B) {
	s := benchSnap()
	q := new(dns.Msg)
	q.SetQuestion("svc5.local.", dns.TypeSRV)
	b.ReportAllocs()
	for b.Loop() {
		r := Answer(s, q, false)
		r.Pack()
	}
}

func BenchmarkAnswerA(b *testing.B) {
	s := benchSnap()
	q := new(dns.Msg)
	q.SetQuestion("svc5.local.", dns.TypeA)
	b.ReportAllocs()
	for b.Loop() {
		r := Answer(s, q, false)
		r.Pack()
	}
}

// BenchmarkServeUDP measures whole queries over loopback UDP: the client's
// write and read, and the server's batch read, fast path and batch write.
func BenchmarkServeUDP(b *testing.B) {
	ls, err := Listen([]string{"127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	h := NewHandler(benchSnap(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ls, h, ServeOptions{}) }()
	defer func() { cancel(); <-done }()
	ask := udpAsker(b, ls.Addrs()[0], "svc5.local.", dns.TypeA)
	b.ReportAllocs()
	for b.Loop() {
		ask()
	}
}

// BenchmarkFastReply is the fast path alone, for comparison with
// BenchmarkAnswerSRV/A (the slow path plus packing).
func BenchmarkFastReply(b *testing.B) {
	s := benchSnap()
	for _, tc := range []struct {
		name  string
		qtype uint16
		qname string
	}{{"SRV", dns.TypeSRV, "svc5.local."}, {"A", dns.TypeA, "svc5.local."}, {"NXDOMAIN", dns.TypeA, "nosuch.local."}} {
		b.Run(tc.name, func(b *testing.B) {
			q := new(dns.Msg)
			q.SetQuestion(tc.qname, tc.qtype)
			packet, _ := q.Pack()
			out := make([]byte, 0, dns.MaxMsgSize)
			var fq fastQuery
			b.ReportAllocs()
			for b.Loop() {
				if _, _, _, ok := s.fastReply(packet, out, 1, &fq); !ok {
					b.Fatal("declined")
				}
			}
		})
	}
}
