// Command zkfixture registers throwaway service instances in ZooKeeper for
// zkdns's demo, end-to-end tests and benchmarks.
//
//	zkfixture demo -servers HOST:PORT
//	zkfixture hold -servers HOST:PORT [-session 1s] PATH=DATA...
//
// demo registers the instances the example config watches, in several
// payload formats. hold creates each PATH as an ephemeral znode holding
// DATA (and missing parents as persistent ones) under one session of the
// given timeout; the benchmarks SIGKILL it to time a session loss. Both
// hold their ephemeral znodes until SIGTERM/SIGINT, printing "ready" on
// stdout once every znode exists. The benchmarks themselves live in
// internal/cmd/zkbench.
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
		return errors.New("usage: zkfixture demo|hold [flags]")
	}
	fs := flag.NewFlagSet("zkfixture "+args[0], flag.ContinueOnError)
	servers := fs.String("servers", "127.0.0.1:2181", "ZooKeeper `host:port`")
	session := fs.Duration("session", 10*time.Second, "ZooKeeper session timeout")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	conn, err := connect(ctx, *servers, *session)
	if err != nil {
		return err
	}
	defer conn.Close()
	switch args[0] {
	case "demo":
		if err := registerDemo(conn); err != nil {
			return err
		}
	case "hold":
		for _, arg := range fs.Args() {
			p, data, _ := strings.Cut(arg, "=")
			if err := ephemeral(conn, p, []byte(data)); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
	fmt.Fprintln(stdout, "ready")
	<-ctx.Done()
	return nil
}
