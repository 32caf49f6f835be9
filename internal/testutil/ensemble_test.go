package testutil

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// connectEnsemble opens a session to every member of e, closed when the
// test ends.
func connectEnsemble(t *testing.T, e *Ensemble, timeout time.Duration) *zk.Conn {
	t.Helper()
	conn, _, err := zk.Connect(e.Addrs(), timeout, zk.WithLogger(discardZKLogger{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

// memberPID returns the JVM's pid from the member's zk.pid file.
func memberPID(t *testing.T, m *Member) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m.z.dir, "zk.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// waitLeader polls until some member leads, other than not (-1 for any).
func waitLeader(t *testing.T, ctx context.Context, e *Ensemble, not int) int {
	t.Helper()
	var leader int
	eventually(t, ctx, "a leader is elected", func() error {
		var err error
		leader, err = e.Leader(ctx)
		if err == nil && leader == not {
			return errors.New("the old leader still leads")
		}
		return err
	})
	return leader
}

func TestEnsembleLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	e, err := StartEnsemble(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	t.Logf("3 members serving after %s", time.Since(start).Round(time.Millisecond))
	conn := connectEnsemble(t, e, 20*time.Second)
	var pids []int

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{name: "every member serves and exactly one leads", run: func(t *testing.T) {
			if e.Size() != 3 {
				t.Fatalf("Size() = %d, want 3", e.Size())
			}
			addrs := e.Addrs()
			seen := map[string]bool{}
			for _, a := range addrs {
				if !strings.HasPrefix(a, "127.0.0.1:") || seen[a] {
					t.Errorf("Addrs() = %v, want three distinct 127.0.0.1:PORT", addrs)
				}
				seen[a] = true
			}
			if got := e.ConnectString(); got != strings.Join(addrs, ",") {
				t.Errorf("ConnectString() = %q, want the addresses joined by commas", got)
			}
			leaders := 0
			for i := range e.Size() {
				m := e.Member(i)
				mode, err := m.Mode(ctx)
				if err != nil {
					t.Fatal(err)
				}
				switch mode {
				case "leader":
					leaders++
				case "follower":
				default:
					t.Errorf("member %d mode %q, want leader or follower", i, mode)
				}
				if m.Index() != i || !m.Running() {
					t.Errorf("member %d: Index() = %d, Running() = %v", i, m.Index(), m.Running())
				}
				myid, err := os.ReadFile(filepath.Join(m.z.dir, "data", "myid"))
				if err != nil || strings.TrimSpace(string(myid)) != strconv.Itoa(i+1) {
					t.Errorf("member %d myid = %q, %v; want %d", i, myid, err, i+1)
				}
				pids = append(pids, memberPID(t, m))
			}
			if leaders != 1 {
				t.Errorf("%d leaders, want 1", leaders)
			}
			if leader, err := e.Leader(ctx); err != nil || leader < 0 {
				t.Errorf("Leader() = %d, %v", leader, err)
			}
		}},
		{name: "writes replicate to every member", run: func(t *testing.T) {
			if _, err := conn.Create("/ens", []byte("192.0.2.1:80"), 0, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatal(err)
			}
			for i := range e.Size() {
				one := ConnectZK(t, e.Member(i).Addr(), 5*time.Second)
				eventually(t, ctx, "read /ens from member "+strconv.Itoa(i), func() error {
					got, err := readZnode(one, "/ens")
					if err == nil && got != "192.0.2.1:80" {
						t.Fatalf("member %d has /ens = %q", i, got)
					}
					return err
				})
			}
		}},
		{name: "killing the leader elects another and keeps sessions", run: func(t *testing.T) {
			session := conn.SessionID()
			old := waitLeader(t, ctx, e, -1)
			if err := e.Member(old).Kill(); err != nil {
				t.Fatal(err)
			}
			if e.Member(old).Running() {
				t.Error("killed member still reports Running")
			}
			if processRunning(pids[old]) {
				t.Errorf("killed member's JVM %d still runs", pids[old])
			}
			waitLeader(t, ctx, e, old)
			eventually(t, ctx, "read after the election", func() error {
				_, err := readZnode(conn, "/ens")
				return err
			})
			if got := conn.SessionID(); got != session {
				t.Errorf("session changed across the election: %#x, was %#x", got, session)
			}
			if err := e.Member(old).Restart(ctx); err != nil {
				t.Fatal(err)
			}
			if mode, err := e.Member(old).Mode(ctx); err != nil || mode != "follower" {
				t.Errorf("restarted member mode = %q, %v; want follower", mode, err)
			}
			pids[old] = memberPID(t, e.Member(old))
		}},
		{name: "a paused member answers nothing until resumed", run: func(t *testing.T) {
			m := e.Member(0)
			if err := m.Pause(); err != nil {
				t.Fatal(err)
			}
			pausedCtx, cancelPaused := context.WithTimeout(ctx, 300*time.Millisecond)
			_, err := m.Mode(pausedCtx)
			cancelPaused()
			if err == nil {
				t.Error("paused member answered srvr")
			}
			if err := m.Resume(); err != nil {
				t.Fatal(err)
			}
			eventually(t, ctx, "member 0 serves after resume", func() error {
				_, err := m.Mode(ctx)
				return err
			})
		}},
		{name: "stopping every member loses the quorum and Start brings it back", run: func(t *testing.T) {
			session := conn.SessionID()
			addr0 := e.Member(0).Addr()
			for i := range e.Size() {
				if err := e.Member(i).Stop(); err != nil {
					t.Fatal(err)
				}
				if err := e.Member(i).Stop(); err != nil {
					t.Fatalf("second Stop of member %d: %v", i, err)
				}
			}
			for i := range e.Size() {
				if _, err := FourLetterWord(ctx, e.Member(i).Addr(), "srvr"); err == nil {
					t.Errorf("stopped member %d answered srvr", i)
				}
			}
			lonely, cancelLonely := context.WithTimeout(ctx, 3*time.Second)
			err := e.Member(0).Restart(lonely)
			cancelLonely()
			if err == nil {
				t.Fatal("one member restarted alone reported serving without a quorum")
			}
			if e.Member(0).Running() {
				t.Error("a member that failed to restart was left running")
			}
			if err := e.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if got := e.Member(0).Addr(); got != addr0 {
				t.Errorf("member 0 moved from %s to %s", addr0, got)
			}
			waitLeader(t, ctx, e, -1)
			eventually(t, ctx, "read after the ensemble came back", func() error {
				got, err := readZnode(conn, "/ens")
				if err == nil && got != "192.0.2.1:80" {
					t.Fatalf("/ens after restart = %q", got)
				}
				return err
			})
			if got := conn.SessionID(); got != session {
				t.Errorf("a 20 s session did not survive a short full restart: %#x, was %#x", got, session)
			}
			for i := range e.Size() {
				pids[i] = memberPID(t, e.Member(i))
			}
		}},
		{name: "close is idempotent and leaves nothing behind", run: func(t *testing.T) {
			for i := range 2 {
				if err := e.Close(); err != nil {
					t.Fatalf("Close call %d: %v", i+1, err)
				}
			}
			for i, pid := range pids {
				if processRunning(pid) {
					t.Errorf("member %d's JVM %d runs after Close", i, pid)
				}
			}
			if _, err := os.Stat(e.dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("ensemble directory after Close: %v, want it removed", err)
			}
			if err := e.Member(1).Restart(ctx); err == nil {
				t.Error("Restart after Close succeeded, want an error")
			}
		}},
	}
	for _, step := range steps {
		if !t.Run(step.name, step.run) {
			t.FailNow()
		}
	}
}

func TestStartEnsembleErrors(t *testing.T) {
	tests := []struct {
		name string
		n    int
		want string
	}{
		{name: "no members", n: 0, want: "at least one member"},
		{name: "negative size", n: -3, want: "at least one member"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := StartEnsemble(context.Background(), tt.n)
			if err == nil {
				_ = e.Close()
				t.Fatal("StartEnsemble succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestZkLocalRunMemberUsage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{name: "missing peers", args: []string{"run-member", t.TempDir(), "1", "2181"}, wantStderr: "needs DIR, MYID, PORT and PEERS"},
		{name: "bad myid", args: []string{"run-member", t.TempDir(), "0", "2181", "1:2888:3888"}, wantStderr: "MYID must be"},
		{name: "bad port", args: []string{"run-member", t.TempDir(), "1", "99999", "1:2888:3888"}, wantStderr: "PORT must be"},
		{name: "bad peer entry", args: []string{"run-member", t.TempDir(), "1", "2181", "1:2888"}, wantStderr: "is not ID:PEER_PORT:ELECTION_PORT"},
		{name: "myid not among peers", args: []string{"run-member", t.TempDir(), "4", "2181", "1:2888:3888,2:2889:3889"}, wantStderr: "MYID 4 is not in PEERS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := zkLocal(t, ctx, nil, tt.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2 (stderr %q)", code, stderr)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantStderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}
