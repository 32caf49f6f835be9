package testutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Ensemble is a ZooKeeper ensemble of quorum peers on 127.0.0.1, each run
// by `zk-local run-member` as a child process of the test binary, in its
// own process group and SIGKILLed by the kernel should the test binary die
// first, like StartZooKeeper's server. Its methods are safe for
// concurrent use.
//
// Members are numbered from 0 in the Go API; member i has myid i+1 in its
// zoo.cfg. Every member keeps its client, peer and election ports and its
// data directory for the life of the Ensemble, so a restarted member
// rejoins as the same server.
type Ensemble struct {
	dir     string
	members []*Member

	closeOnce sync.Once
	closeErr  error
}

// Member is one server of an Ensemble. Unlike a standalone ZooKeeper, a
// member that was stopped can be started again: Stop, Kill and Restart all
// keep its ports and data.
type Member struct {
	index int
	z     *ZooKeeper
}

// StartEnsemble starts an ensemble of n servers with 200 ms ticks (so
// sessions from 400 ms to 60 s are granted) on free ports of 127.0.0.1,
// and returns once every member serves clients, which takes 1–3 s here.
// ctx bounds the start only (30 s when it has no deadline); the ensemble
// runs until Close. On failure nothing is left running and the error
// carries the end of the log of the member that failed.
func StartEnsemble(ctx context.Context, n int) (*Ensemble, error) {
	if n < 1 {
		return nil, fmt.Errorf("testutil: an ensemble needs at least one member, got %d", n)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	script, err := zkLocalScript(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "zkdns-ensemble-")
	if err != nil {
		return nil, fmt.Errorf("testutil: ensemble directory: %w", err)
	}
	e := &Ensemble{dir: dir}
	for i := range n {
		e.members = append(e.members, &Member{index: i, z: &ZooKeeper{
			script: script,
			dir:    filepath.Join(dir, "member-"+strconv.Itoa(i+1)),
			tick:   defaultTickTime,
			myid:   i + 1,
		}})
	}
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			// The failed attempt's data names other ports: start afresh.
			for _, m := range e.members {
				_ = os.RemoveAll(m.z.dir)
			}
		}
		if err = e.assignPorts(); err == nil {
			err = e.makeDirs()
		}
		if err == nil {
			err = e.launchAll(ctx)
		}
		if err == nil {
			return e, nil
		}
		if !errors.Is(err, errPortInUse) || attempt == startAttempts {
			break
		}
	}
	_ = os.RemoveAll(dir)
	return nil, err
}

// assignPorts gives every member three distinct free ports (client, peer,
// election) and the peer list that names them all.
func (e *Ensemble) assignPorts() error {
	seen := map[int]bool{}
	next := func() (int, error) {
		for {
			p, err := freePort()
			if err != nil || !seen[p] {
				seen[p] = true
				return p, err
			}
		}
	}
	peers := make([]string, len(e.members))
	for i, m := range e.members {
		var ports [3]int
		for j := range ports {
			p, err := next()
			if err != nil {
				return err
			}
			ports[j] = p
		}
		m.z.port = ports[0]
		peers[i] = fmt.Sprintf("%d:%d:%d", i+1, ports[1], ports[2])
	}
	for _, m := range e.members {
		m.z.peers = strings.Join(peers, ",")
	}
	return nil
}

func (e *Ensemble) makeDirs() error {
	for _, m := range e.members {
		if err := os.MkdirAll(m.z.dir, 0o755); err != nil {
			return fmt.Errorf("testutil: ensemble member directory: %w", err)
		}
	}
	return nil
}

// launchAll starts every member at once (none serves before a quorum
// runs) and waits until all serve; if one fails, the others are stopped.
func (e *Ensemble) launchAll(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, m := range e.members {
		g.Go(func() error {
			m.z.mu.Lock()
			defer m.z.mu.Unlock()
			return m.z.launchLocked(gctx)
		})
	}
	err := g.Wait()
	if err != nil {
		for _, m := range e.members {
			_ = m.Kill()
		}
	}
	return err
}

// Size is the number of members.
func (e *Ensemble) Size() int { return len(e.members) }

// Member returns member i, 0 ≤ i < Size(); it panics otherwise.
func (e *Ensemble) Member(i int) *Member { return e.members[i] }

// Addrs returns every member's client address, 127.0.0.1:PORT, in member
// order.
func (e *Ensemble) Addrs() []string {
	out := make([]string, len(e.members))
	for i, m := range e.members {
		out[i] = m.Addr()
	}
	return out
}

// ConnectString returns the members' client addresses joined by commas,
// the form ZooKeeper's own tools take.
func (e *Ensemble) ConnectString() string { return strings.Join(e.Addrs(), ",") }

// Leader returns the index of the member whose `srvr` reply says "Mode:
// leader" right now. It fails while no member leads, for example during an
// election: poll it to wait for one.
func (e *Ensemble) Leader(ctx context.Context) (int, error) {
	var modes []string
	for i, m := range e.members {
		mode, err := m.Mode(ctx)
		if err != nil {
			modes = append(modes, fmt.Sprintf("%d: %v", i, err))
			continue
		}
		if mode == "leader" {
			return i, nil
		}
		modes = append(modes, fmt.Sprintf("%d: %s", i, mode))
	}
	return -1, fmt.Errorf("testutil: no ensemble member leads now (%s)", strings.Join(modes, "; "))
}

// Start starts every member that is down (after Stop or Kill), all at
// once, and returns once each of them serves. Members of an ensemble that
// lost its quorum must come back together this way: one alone never
// serves. ctx bounds the start (30 s when it has no deadline).
func (e *Ensemble) Start(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, m := range e.members {
		if m.Running() {
			continue
		}
		g.Go(func() error { return m.Restart(gctx) })
	}
	return g.Wait()
}

// Close stops every member (SIGTERM, then SIGKILL after 10 s) and removes
// the ensemble's directory. It is safe to call more than once; later calls
// return the first call's result.
func (e *Ensemble) Close() error {
	e.closeOnce.Do(func() {
		var errs []error
		for _, m := range e.members {
			errs = append(errs, m.z.Stop())
		}
		if err := os.RemoveAll(e.dir); err != nil {
			errs = append(errs, fmt.Errorf("testutil: remove ensemble directory: %w", err))
		}
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

// FourLetterWord sends a ZooKeeper four-letter command ("srvr", "wchc",
// "cons", …) to addr and returns the whole reply. It gives up after 1 s or
// when ctx ends; the servers the harness starts allow every command.
func FourLetterWord(ctx context.Context, addr, word string) (string, error) {
	reply, err := fourLetterWord(ctx, addr, word)
	if err != nil {
		return "", fmt.Errorf("testutil: %s to %s: %w", word, addr, err)
	}
	return reply, nil
}

// Index is the member's position in the ensemble, from 0; its myid is
// Index()+1.
func (m *Member) Index() int { return m.index }

// Addr returns the member's client address, 127.0.0.1:PORT.
func (m *Member) Addr() string { return m.z.Addr() }

// Running reports whether the member's process runs (it may still be
// paused, or waiting for a quorum).
func (m *Member) Running() bool {
	m.z.mu.Lock()
	defer m.z.mu.Unlock()
	return m.z.proc != nil
}

// Mode returns the member's role from its `srvr` reply: "leader",
// "follower" or "standalone". It fails while the member does not serve.
func (m *Member) Mode(ctx context.Context) (string, error) {
	reply, err := fourLetterWord(ctx, m.Addr(), "srvr")
	if err != nil {
		return "", fmt.Errorf("testutil: ask member %d for its mode: %w", m.index, err)
	}
	for line := range strings.SplitSeq(reply, "\n") {
		if mode, ok := strings.CutPrefix(line, "Mode: "); ok {
			return strings.TrimSpace(mode), nil
		}
	}
	return "", fmt.Errorf("testutil: member %d does not serve: %q", m.index, strings.TrimSpace(reply))
}

// Stop terminates the member (SIGTERM, then SIGKILL after 10 s) as an
// operator's stop would, and waits until it is gone. Its data stays for
// Restart or Ensemble.Start. Stopping a member that is down does nothing.
func (m *Member) Stop() error {
	m.z.mu.Lock()
	defer m.z.mu.Unlock()
	return m.z.terminateLocked()
}

// Kill SIGKILLs the member, as a crash would, and waits until it is gone.
func (m *Member) Kill() error { return m.z.Kill() }

// Pause freezes the member with SIGSTOP: it keeps its ports open but
// answers nothing, to clients and to its peers alike.
func (m *Member) Pause() error { return m.z.Pause() }

// Resume continues a paused member with SIGCONT.
func (m *Member) Resume() error { return m.z.Resume() }

// Restart stops the member if it runs and starts it again with the same
// ports and data, returning once it serves. A member serves only while a
// quorum runs, so restarting one member of an ensemble that has lost its
// quorum fails when ctx ends (30 s when it has no deadline): use
// Ensemble.Start for that.
func (m *Member) Restart(ctx context.Context) error { return m.z.Restart(ctx) }
