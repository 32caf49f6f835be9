package main

import (
	"fmt"
	"net"
	"os"
	"sort"
	"time"

	"github.com/go-zookeeper/zk"
)

func pct(d []time.Duration) string {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return fmt.Sprintf("p50 %v p90 %v p99 %v", d[len(d)/2], d[len(d)*9/10], d[len(d)*99/100])
}

func main() {
	c, _, err := zk.Connect([]string{os.Args[1]}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		panic(err)
	}
	time.Sleep(500 * time.Millisecond)
	c.Create("/x", []byte("hello"), 0, zk.WorldACL(zk.PermAll))
	measure := func(label string) {
		var d []time.Duration
		for i := 0; i < 2000; i++ {
			t := time.Now()
			if _, _, err := c.Get("/x"); err != nil {
				panic(err)
			}
			d = append(d, time.Since(t))
		}
		fmt.Println(label, "get", pct(d))
		d = d[:0]
		for i := 0; i < 500; i++ {
			t := time.Now()
			p, err := c.Create("/y", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
			if err != nil {
				panic(err)
			}
			d = append(d, time.Since(t))
			c.Delete(p, -1)
		}
		fmt.Println(label, "create", pct(d))
	}
	measure("idle")
	// tight UDP loop against an echo server
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	go func() {
		b := make([]byte, 512)
		for {
			n, a, err := pc.ReadFrom(b)
			if err != nil {
				return
			}
			pc.WriteTo(b[:n], a)
		}
	}()
	stop := make(chan struct{})
	go func() {
		u, _ := net.Dial("udp", pc.LocalAddr().String())
		b := make([]byte, 512)
		for {
			select {
			case <-stop:
				return
			default:
			}
			u.Write([]byte("ping"))
			u.Read(b)
		}
	}()
	measure("tightloop")
	close(stop)
}
