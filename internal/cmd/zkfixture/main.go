// Command zkfixture registers throwaway service instances in ZooKeeper for
// zkdns's demo and benchmarks, and measures how fast zkdns follows them.
//
//	zkfixture demo        -servers HOST:PORT
//	zkfixture load        -servers HOST:PORT -services N -instances M [-prefix /bench]
//	zkfixture propagation -servers HOST:PORT -dns IP:PORT -trials N
//	zkfixture hold        -servers HOST:PORT [-session 1s] PATH=DATA...
//
// hold creates each PATH as an ephemeral znode holding DATA (and missing
// parents as persistent ones) under one session of the given timeout.
// demo, load and hold hold their ephemeral znodes until SIGTERM/SIGINT, printing
// "ready" on stdout once every znode exists.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "zkfixture: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: zkfixture demo|load|propagation [flags]")
	}
	fs := flag.NewFlagSet("zkfixture "+args[0], flag.ContinueOnError)
	servers := fs.String("servers", "127.0.0.1:2181", "ZooKeeper `host:port`")
	services := fs.Int("services", 1000, "load: number of services")
	instances := fs.Int("instances", 5, "load: instances per service")
	prefix := fs.String("prefix", "/bench", "load/propagation: parent path of the services")
	dnsAddr := fs.String("dns", "127.0.0.1:8600", "propagation: zkdns `ip:port`")
	zone := fs.String("zone", "local.", "propagation: zkdns zone")
	trials := fs.Int("trials", 200, "propagation: number of delete trials")
	session := fs.Duration("session", 10*time.Second, "ZooKeeper session timeout")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	conn, err := connect(*servers, *session)
	if err != nil {
		return err
	}
	defer conn.Close()
	switch args[0] {
	case "demo":
		if err := registerDemo(conn); err != nil {
			return err
		}
	case "load":
		if err := registerLoad(ctx, conn, *prefix, *services, *instances); err != nil {
			return err
		}
	case "hold":
		for _, arg := range fs.Args() {
			p, data, _ := strings.Cut(arg, "=")
			if err := ephemeral(conn, p, []byte(data)); err != nil {
				return err
			}
		}
	case "propagation":
		return propagation(ctx, conn, stdout, *prefix, *dnsAddr, *zone, *trials)
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
	fmt.Fprintln(stdout, "ready")
	<-ctx.Done()
	return nil
}

// settle is how long to wait for one expected DNS change before giving up.
const settle = 5 * time.Second
