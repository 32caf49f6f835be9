// Package faults_test runs zkdns through ZooKeeper faults and its own
// restarts, end to end: the real zkdns binary, a real three-member
// ZooKeeper ensemble on loopback, instance owners in other processes, and
// a resolver loop that queries zkdns the whole time and fails the test on
// a single SERVFAIL, empty answer or lost query for a service that has
// instances.
//
// Each scenario states its convergence bound next to the guarantee it
// checks; RELIABILITY.md lists them. The package holds tests only; run it
// with `make test-faults`.
package faults_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/zkdns/zkdns/internal/testutil"
)

var (
	// zkdnsBin and fixtureBin are built once, with the race detector, by
	// TestMain.
	zkdnsBin   string
	fixtureBin string
)

const (
	// sessionTimeout is the ZooKeeper session zkdns asks for in every
	// scenario. The harness's 200 ms ticks grant it as asked.
	sessionTimeout = 5 * time.Second

	// convergeBound is how long after a fault ends zkdns may take to
	// answer exactly what ZooKeeper holds: one session timeout for the
	// server to expire the sessions of owners that died during the fault,
	// plus 5 s for reconnecting (the client sleeps 1 s per pass over the
	// ensemble), resyncing and a loaded machine.
	convergeBound = sessionTimeout + 5*time.Second

	// waitLimit bounds waits that are set-up, not a guarantee under test.
	waitLimit = 30 * time.Second
)

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "zkdns-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if zkdnsBin, err = testutil.BuildBinary(ctx, dir); err == nil {
		fixtureBin, err = testutil.BuildPackage(ctx, dir, "./internal/cmd/zkfixture")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	return m.Run()
}
