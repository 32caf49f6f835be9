package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/zkdns/zkdns/internal/testutil"
	"github.com/zkdns/zkdns/internal/zkclient"
)

// pipelineDepth is how many requests the bench keeps in flight on one
// ZooKeeper connection when it writes or reads a tree.
const pipelineDepth = 64

// zkServer is the throwaway ZooKeeper the bench runs against.
type zkServer struct {
	*testutil.ZooKeeper
	dir string
	pid int // the JVM's, for its CPU time
}

// startZooKeeper runs a standalone server from scripts/zk-local in dir.
func startZooKeeper(ctx context.Context, dir string) (*zkServer, error) {
	z, err := testutil.StartZooKeeper(ctx, testutil.ZooKeeperOptions{Dir: dir})
	if err != nil {
		return nil, fmt.Errorf("zkbench: %w", err)
	}
	// zk-local execs the JVM from the shell that wrote its PID here.
	b, err := os.ReadFile(filepath.Join(dir, "zk.pid"))
	if err != nil {
		_ = z.Stop()
		return nil, fmt.Errorf("zkbench: ZooKeeper's PID: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		_ = z.Stop()
		return nil, fmt.Errorf("zkbench: ZooKeeper's PID file: %w", err)
	}
	return &zkServer{ZooKeeper: z, dir: dir, pid: pid}, nil
}

// connectZK opens a session and waits until it is established, so the
// first request does not pay for the handshake.
func connectZK(ctx context.Context, servers string, session time.Duration) (*zk.Conn, error) {
	conn, _, err := zk.Connect(strings.Split(servers, ","), session,
		zk.WithLogger(log.New(io.Discard, "", 0)),
		// Child lists of 10,000 services exceed the default 1.5 MiB
		// comfortably only with headroom.
		zk.WithMaxBufferSize(16<<20))
	if err != nil {
		return nil, fmt.Errorf("zkbench: connect to ZooKeeper %s: %w", servers, err)
	}
	return awaitSession(ctx, servers, conn)
}

// awaitSession waits until conn has a session; it closes conn if none
// comes within 15 s.
func awaitSession(ctx context.Context, servers string, conn *zk.Conn) (*zk.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := zkclient.AwaitSession(ctx, conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("zkbench: connect to ZooKeeper %s: %w", servers, err)
	}
	return conn, nil
}

// createDataset registers d under conn's session: the services as
// persistent znodes, the instances as ephemeral ones, pipelined
// pipelineDepth deep on the one connection.
func createDataset(ctx context.Context, conn *zk.Conn, d dataset) error {
	if err := zkclient.CreatePath(conn, d.root); err != nil {
		return fmt.Errorf("zkbench: %w", err)
	}
	// Services first: an instance's parent must exist before it.
	var g errgroup.Group
	g.SetLimit(pipelineDepth)
	for s := range d.services {
		g.Go(func() error {
			p := d.servicePath(s)
			if _, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return fmt.Errorf("zkbench: create %s: %w", p, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	ig, ictx := errgroup.WithContext(ctx)
	ig.SetLimit(pipelineDepth)
	for s := range d.services {
		for i := range d.instances {
			if ictx.Err() != nil {
				break
			}
			ig.Go(func() error {
				p := d.instancePath(s, i)
				if _, err := conn.Create(p, d.payload(s, i, basePort), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
					return fmt.Errorf("zkbench: create %s: %w", p, err)
				}
				return nil
			})
		}
	}
	if err := ig.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// treeRead is what one pass of the bare reader saw.
type treeRead struct {
	lists, nodes int   // child lists and instance payloads read
	bytes        int64 // payload bytes read
	took         time.Duration
}

// readTree reads root's children and every grandchild's data the way a
// watcher's first sync must, but with nothing else: pipelineDepth workers
// share the one connection, each reading a service's child list and then
// its instances' data, so that many requests are always in flight. It
// sets no watches.
func readTree(ctx context.Context, conn *zk.Conn, root string) (treeRead, error) {
	start := time.Now()
	services, _, err := conn.Children(root)
	if err != nil {
		return treeRead{}, fmt.Errorf("zkbench: list %s: %w", root, err)
	}
	var lists, nodes atomic.Int64
	var bytes atomic.Int64
	work := make(chan string)
	g, ctx := errgroup.WithContext(ctx)
	for range pipelineDepth {
		g.Go(func() error {
			for svc := range work {
				p := root + "/" + svc
				children, _, err := conn.Children(p)
				if err != nil {
					return fmt.Errorf("zkbench: list %s: %w", p, err)
				}
				lists.Add(1)
				for _, c := range children {
					data, _, err := conn.Get(p + "/" + c)
					if errors.Is(err, zk.ErrNoNode) {
						continue
					}
					if err != nil {
						return fmt.Errorf("zkbench: read %s/%s: %w", p, c, err)
					}
					nodes.Add(1)
					bytes.Add(int64(len(data)))
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(work)
		for _, svc := range services {
			select {
			case work <- svc:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return treeRead{}, err
	}
	return treeRead{lists: int(lists.Load()) + 1, nodes: int(nodes.Load()), bytes: bytes.Load(), took: time.Since(start)}, nil
}

// fourLetterWord sends a ZooKeeper four-letter command and returns the
// reply, which ends when the server closes the connection.
func fourLetterWord(ctx context.Context, addr, word string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("zkbench: ZooKeeper %s %s: %w", addr, word, err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return "", err
	}
	if _, err := io.WriteString(conn, word); err != nil {
		return "", fmt.Errorf("zkbench: ZooKeeper %s %s: %w", addr, word, err)
	}
	reply, err := io.ReadAll(io.LimitReader(conn, 16<<20))
	if err != nil {
		return "", fmt.Errorf("zkbench: ZooKeeper %s %s: %w", addr, word, err)
	}
	return string(reply), nil
}

// consSession is one client connection in the reply to `cons`.
type consSession struct {
	id      int64
	timeout time.Duration // the negotiated session timeout
}

// parseCons reads the sessions from a `cons` reply, whose lines look like
//
//	/127.0.0.1:43142[1](queued=0,recved=63,sent=63,sid=0x100002128440001,…,to=10000,…)
//
// Connections still in their handshake have no sid and are skipped.
func parseCons(reply string) ([]consSession, error) {
	var out []consSession
	sc := bufio.NewScanner(strings.NewReader(reply))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		open := strings.IndexByte(line, '(')
		if open < 0 || !strings.HasSuffix(line, ")") {
			continue
		}
		fields := map[string]string{}
		for kv := range strings.SplitSeq(line[open+1:len(line)-1], ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				fields[k] = v
			}
		}
		sid, to := fields["sid"], fields["to"]
		if sid == "" || to == "" {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimPrefix(sid, "0x"), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("zkbench: cons sid %q: %w", sid, err)
		}
		ms, err := strconv.Atoi(to)
		if err != nil {
			return nil, fmt.Errorf("zkbench: cons to %q: %w", to, err)
		}
		out = append(out, consSession{id: int64(id), timeout: time.Duration(ms) * time.Millisecond})
	}
	return out, nil
}

// negotiatedTimeout asks the server, through `cons`, for the timeout it
// granted session id.
func negotiatedTimeout(ctx context.Context, addr string, id int64) (time.Duration, error) {
	reply, err := fourLetterWord(ctx, addr, "cons")
	if err != nil {
		return 0, err
	}
	sessions, err := parseCons(reply)
	if err != nil {
		return 0, err
	}
	for _, s := range sessions {
		if s.id == id {
			return s.timeout, nil
		}
	}
	return 0, fmt.Errorf("zkbench: session 0x%x is not in the server's cons list", id)
}

// parseWatchTotal reads the total from a `wchs` reply:
//
//	3 connections watching 41 paths
//	Total watches:41
func parseWatchTotal(reply string) (int, error) {
	for line := range strings.SplitSeq(reply, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Total watches:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return 0, fmt.Errorf("zkbench: wchs total %q: %w", v, err)
			}
			return n, nil
		}
	}
	return 0, errors.New("zkbench: wchs reply has no \"Total watches\" line")
}

// zkVersion reads the server's version from `srvr`.
func zkVersion(ctx context.Context, addr string) string {
	reply, err := fourLetterWord(ctx, addr, "srvr")
	if err != nil {
		return "unknown"
	}
	for line := range strings.SplitSeq(reply, "\n") {
		if v, ok := strings.CutPrefix(line, "Zookeeper version: "); ok {
			// 3.8.0-<commit>, built on …
			v, _, _ = strings.Cut(v, ",")
			v, _, _ = strings.Cut(v, "-")
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
