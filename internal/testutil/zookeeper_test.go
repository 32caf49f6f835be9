package testutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// eventually retries op until it succeeds or ctx ends; the client needs a
// moment to reconnect after the server comes back.
func eventually(t *testing.T, ctx context.Context, what string, op func() error) {
	t.Helper()
	for {
		err := op()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: still failing when the test deadline came: %v", what, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readZnode returns the data of path, or an error if it cannot be read now.
func readZnode(conn *zk.Conn, path string) (string, error) {
	data, _, err := conn.Get(path)
	return string(data), err
}

// askServing sends a four-letter word to a server that is serving, asking
// again until it answers or ctx ends: fourLetterWord gives one try a
// second, and on a loaded machine a JVM can take longer than that.
func askServing(ctx context.Context, addr, word string) (string, error) {
	var reply string
	var err error
	if perr := pollUntil(ctx, nil, func() bool {
		reply, err = fourLetterWord(ctx, addr, word)
		return err == nil
	}); perr != nil {
		return "", fmt.Errorf("%s to %s: %w (last try: %v)", word, addr, perr, err)
	}
	return reply, nil
}

// serverConf returns the value of key in the server's `conf` reply.
func serverConf(ctx context.Context, addr, key string) (string, error) {
	reply, err := askServing(ctx, addr, "conf")
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(reply, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k == key {
			return strings.TrimSpace(v), nil
		}
	}
	return "", errors.New("no " + key + " in conf reply: " + reply)
}

func TestSharedZooKeeper(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn := ConnectZK(t, sharedZK.Addr(), 2*time.Second)

	tests := []struct {
		name string
		path string
		data string
		// flags for Create: 0 persistent, zk.FlagEphemeral.
		flags int32
	}{
		{name: "persistent znode", path: "/shared-persistent", data: "192.0.2.1:8080"},
		{name: "ephemeral znode", path: "/shared-ephemeral", data: "[2001:db8::1]:8080", flags: zk.FlagEphemeral},
		{name: "empty data", path: "/shared-empty", data: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eventually(t, ctx, "create "+tt.path, func() error {
				_, err := conn.Create(tt.path, []byte(tt.data), tt.flags, zk.WorldACL(zk.PermAll))
				if errors.Is(err, zk.ErrNodeExists) {
					return nil
				}
				return err
			})
			got, stat, err := conn.Get(tt.path)
			if err != nil {
				t.Fatalf("Get(%s): %v", tt.path, err)
			}
			if string(got) != tt.data {
				t.Errorf("Get(%s) = %q, want %q", tt.path, got, tt.data)
			}
			wantOwner := int64(0)
			if tt.flags == zk.FlagEphemeral {
				wantOwner = conn.SessionID()
			}
			if stat.EphemeralOwner != wantOwner {
				t.Errorf("Get(%s) ephemeral owner = %#x, want %#x", tt.path, stat.EphemeralOwner, wantOwner)
			}
		})
	}

	t.Run("default tick time", func(t *testing.T) {
		got, err := serverConf(ctx, sharedZK.Addr(), "tickTime")
		if err != nil {
			t.Fatal(err)
		}
		if got != "200" {
			t.Errorf("tickTime = %s, want 200", got)
		}
	})
}

// TestZooKeeperLifecycle drives one dedicated server through the states a
// test can put it in. The steps build on each other, so they run in order
// and the first failure ends the test.
func TestZooKeeperLifecycle(t *testing.T) {
	// The JVM starts three times here; on a loaded machine one start has
	// taken ten seconds and more, so each gets a start's own bound.
	ctx, cancel := context.WithTimeout(context.Background(), 3*startTimeout)
	defer cancel()
	dir := t.TempDir()
	server, err := StartZooKeeper(ctx, ZooKeeperOptions{TickTime: 100 * time.Millisecond, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Stop() })
	addr := server.Addr()
	// Long enough to outlast a restart and the client's 1 s reconnect pause.
	conn := ConnectZK(t, addr, 6*time.Second)
	var sessionID int64

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{name: "options are applied", run: func(t *testing.T) {
			if !strings.HasPrefix(addr, "127.0.0.1:") {
				t.Errorf("Addr() = %s, want 127.0.0.1:PORT", addr)
			}
			got, err := serverConf(ctx, addr, "tickTime")
			if err != nil {
				t.Fatal(err)
			}
			if got != "100" {
				t.Errorf("tickTime = %s, want 100", got)
			}
			if _, err := os.Stat(filepath.Join(dir, "zoo.cfg")); err != nil {
				t.Errorf("zoo.cfg is not in the Dir option: %v", err)
			}
		}},
		{name: "create and read", run: func(t *testing.T) {
			eventually(t, ctx, "create /svc", func() error {
				_, err := conn.Create("/svc", []byte("v1"), 0, zk.WorldACL(zk.PermAll))
				return err
			})
			if _, err := conn.Create("/svc/eph", []byte("198.51.100.7:80"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatalf("create ephemeral: %v", err)
			}
			if got, err := readZnode(conn, "/svc"); err != nil || got != "v1" {
				t.Fatalf("Get(/svc) = %q, %v; want v1", got, err)
			}
			sessionID = conn.SessionID()
		}},
		{name: "pause stops answers and resume restores them", run: func(t *testing.T) {
			if err := server.Pause(); err != nil {
				t.Fatal(err)
			}
			pausedCtx, cancelPaused := context.WithTimeout(ctx, 300*time.Millisecond)
			reply, err := fourLetterWord(pausedCtx, addr, "srvr")
			cancelPaused()
			if err == nil {
				t.Errorf("paused server answered srvr: %q", reply)
			}
			if err := server.Resume(); err != nil {
				t.Fatal(err)
			}
			eventually(t, ctx, "read after resume", func() error {
				_, err := readZnode(conn, "/svc")
				return err
			})
			if got := conn.SessionID(); got != sessionID {
				t.Errorf("session changed across pause: %#x, was %#x", got, sessionID)
			}
		}},
		{name: "restart keeps port, data and session", run: func(t *testing.T) {
			if err := server.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			if got := server.Addr(); got != addr {
				t.Errorf("Addr() after restart = %s, want %s", got, addr)
			}
			eventually(t, ctx, "read after restart", func() error {
				_, err := readZnode(conn, "/svc")
				return err
			})
			if got := conn.SessionID(); got != sessionID {
				t.Errorf("session changed across restart: %#x, was %#x", got, sessionID)
			}
			exists, _, err := conn.Exists("/svc/eph")
			if err != nil || !exists {
				t.Errorf("ephemeral znode after restart: exists=%v err=%v, want it kept with its session", exists, err)
			}
		}},
		{name: "kill then restart keeps data", run: func(t *testing.T) {
			if err := server.Kill(); err != nil {
				t.Fatal(err)
			}
			if reply, err := fourLetterWord(ctx, addr, "srvr"); err == nil {
				t.Fatalf("killed server answered srvr: %q", reply)
			}
			if err := server.Pause(); err == nil {
				t.Error("Pause of a killed server succeeded, want an error")
			}
			if err := server.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			eventually(t, ctx, "read after kill and restart", func() error {
				got, err := readZnode(conn, "/svc")
				if err == nil && got != "v1" {
					t.Fatalf("Get(/svc) after kill = %q, want v1", got)
				}
				return err
			})
		}},
		{name: "stop is idempotent and final", run: func(t *testing.T) {
			for i := range 2 {
				if err := server.Stop(); err != nil {
					t.Fatalf("Stop call %d: %v", i+1, err)
				}
			}
			if reply, err := fourLetterWord(ctx, addr, "srvr"); err == nil {
				t.Errorf("stopped server answered srvr: %q", reply)
			}
			if err := server.Restart(ctx); err == nil {
				t.Error("Restart after Stop succeeded, want an error")
			}
			if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
				t.Errorf("Stop removed the data of a caller's Dir: %v", err)
			}
		}},
	}
	for _, step := range steps {
		if !t.Run(step.name, step.run) {
			t.FailNow()
		}
	}
}

// fakeM stands in for *testing.M and records what it saw while running.
type fakeM struct {
	server **ZooKeeper
	code   int
	ran    bool
	addr   string
	reply  string
}

func (m *fakeM) Run() int {
	m.ran = true
	if *m.server != nil {
		m.addr = (*m.server).Addr()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.reply, _ = askServing(ctx, m.addr, "srvr")
	}
	return m.code
}

func TestMainWithZooKeeper(t *testing.T) {
	tests := []struct {
		name     string
		testCode int
		wantCode int
	}{
		{name: "passing tests", testCode: 0, wantCode: 0},
		{name: "failing tests", testCode: 1, wantCode: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var server *ZooKeeper
			m := &fakeM{server: &server, code: tt.testCode}
			if got := MainWithZooKeeper(m, &server); got != tt.wantCode {
				t.Errorf("MainWithZooKeeper = %d, want %d", got, tt.wantCode)
			}
			if !m.ran {
				t.Fatal("tests were not run")
			}
			if !strings.Contains(m.reply, "Mode:") {
				t.Errorf("server was not serving while tests ran: srvr reply %q", m.reply)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if reply, err := fourLetterWord(ctx, m.addr, "srvr"); err == nil {
				t.Errorf("server still answers after MainWithZooKeeper returned: %q", reply)
			}
			if _, err := os.Stat(server.dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temporary directory %s left behind: %v", server.dir, err)
			}
		})
	}
}

func TestStartZooKeeperErrors(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		ctx     context.Context
		opts    ZooKeeperOptions
		wantErr string
		wantIs  error
	}{
		{
			name:    "tick time below a millisecond",
			ctx:     context.Background(),
			opts:    ZooKeeperOptions{TickTime: time.Microsecond},
			wantErr: "TickTime",
		},
		{
			name:    "tick time with a fraction of a millisecond",
			ctx:     context.Background(),
			opts:    ZooKeeperOptions{TickTime: 1500 * time.Microsecond},
			wantErr: "whole number of milliseconds",
		},
		{
			name:    "dir is a regular file",
			ctx:     context.Background(),
			opts:    ZooKeeperOptions{Dir: notADir},
			wantErr: "zookeeper directory",
		},
		{
			name:    "context already cancelled",
			ctx:     cancelled,
			opts:    ZooKeeperOptions{Dir: t.TempDir()},
			wantErr: "testutil:",
			wantIs:  context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, err := StartZooKeeper(tt.ctx, tt.opts)
			if err == nil {
				_ = server.Stop()
				t.Fatal("StartZooKeeper succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
		})
	}
}

func TestTCPProxyCutAndRestore(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	p, err := NewTCPProxy(echo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	roundTrip := func() error {
		c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != "ping" {
			return fmt.Errorf("echo = %q", buf)
		}
		return nil
	}
	steps := []struct {
		name    string
		act     func()
		wantErr bool
	}{
		{"forwards", func() {}, false},
		{"cut refuses", p.Cut, true},
		{"restored forwards", p.Restore, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.act()
			if err := roundTrip(); (err != nil) != st.wantErr {
				t.Errorf("round trip error = %v, want error %v", err, st.wantErr)
			}
		})
	}
}

// TestTestRoot leaves a tree under the test's root, as an earlier run of
// a test does, and checks that TestRoot clears it: a root that is missing
// and one that is a lone znode, a deep tree and ephemeral leaves alike.
func TestTestRoot(t *testing.T) {
	conn := ConnectZK(t, sharedZK.Addr(), 5*time.Second)
	root := "/" + t.Name()
	if got := TestRoot(t, conn); got != root {
		t.Fatalf("TestRoot = %q, want %q", got, root)
	}
	for _, leftover := range [][]string{
		{root},
		{root + "/svc/a", root + "/svc/b/deep/er", root + "/other"},
	} {
		for _, p := range leftover {
			CreateZnode(t, conn, p, "x", 0)
		}
		CreateZnode(t, conn, root+"/svc/eph", "x", zk.FlagEphemeral)
		if got := TestRoot(t, conn); got != root {
			t.Fatalf("TestRoot = %q, want %q", got, root)
		}
		if ok, _, err := conn.Exists(root); err != nil || ok {
			t.Fatalf("after TestRoot, %s exists = %v (err %v), want it gone", root, ok, err)
		}
	}
}
