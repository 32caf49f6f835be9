package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	defaultTickTime = 200 * time.Millisecond

	// startTimeout bounds a start whose context has no deadline. Start-up
	// takes 0.4–1.6 s here; the slack is for a loaded CI machine.
	startTimeout = 30 * time.Second

	// mainStartTimeout bounds the start of the server MainWithZooKeeper
	// shares with a whole test package.
	mainStartTimeout = 60 * time.Second

	// stopTimeout is how long SIGTERM gets before SIGKILL follows.
	stopTimeout = 10 * time.Second

	// startAttempts is how many free ports StartZooKeeper tries: another
	// process can take the port between our probe and the JVM's bind.
	startAttempts = 5

	logTailLines = 30
)

// errPortInUse means the server exited because its port was taken.
var errPortInUse = errors.New("testutil: zookeeper port already in use")

// ZooKeeperOptions configures StartZooKeeper. The zero value asks for a
// server with 200 ms ticks in a new temporary directory.
type ZooKeeperOptions struct {
	// TickTime is the server's tickTime, in whole milliseconds. The server
	// grants session timeouts between 2 and 300 ticks, so the default of
	// 200 ms allows sessions from 400 ms to 60 s; 1 s sessions make
	// expiry tests quick.
	TickTime time.Duration

	// Dir receives zoo.cfg, data/ and zk.log. Empty means a new directory
	// under os.TempDir, which Stop removes; a Dir given here is kept.
	Dir string

	// TLS, when set, also serves clients over TLS on SecureAddr. Nil
	// means plain TCP only.
	TLS *ZooKeeperTLS
}

// ZooKeeper is a standalone ZooKeeper server on 127.0.0.1, run by
// scripts/zk-local as a child process of the test binary. Its methods are
// safe for concurrent use.
//
// The child runs in its own process group and is SIGKILLed by the kernel if
// the test binary dies first, so a crashed test does not leave a JVM behind.
type ZooKeeper struct {
	script  string
	dir     string
	ownsDir bool
	port    int
	tick    time.Duration
	// myid and peers make the server member myid of an ensemble (zk-local
	// run-member); an empty peers means a standalone server.
	myid  int
	peers string
	// secure is the TLS client port; nil without ZooKeeperOptions.TLS.
	secure *secureClientPort

	mu      sync.Mutex // guards proc and stopped; held across a whole restart
	proc    *zkProcess // nil while the server is down
	stopped bool
}

// zkProcess is one run of the JVM.
type zkProcess struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait has returned
}

// TestingM is what MainWithZooKeeper needs from *testing.M.
type TestingM interface {
	Run() int
}

// MainWithZooKeeper runs a test package against one ZooKeeper server that
// all its tests share. It starts the server (giving up after 60 s), stores
// it in *server, runs the tests, stops the server and returns the exit code
// for os.Exit. When the server cannot start it prints the reason to stderr
// and returns 1 without running any test: tests that need ZooKeeper fail,
// they never skip.
//
//	var zkServer *testutil.ZooKeeper
//
//	func TestMain(m *testing.M) {
//		os.Exit(testutil.MainWithZooKeeper(m, &zkServer))
//	}
//
//	func TestWatch(t *testing.T) {
//		conn, _, err := zk.Connect([]string{zkServer.Addr()}, time.Second)
//		...
//	}
//
// Tests sharing the server should use znode paths of their own (for
// example one per test name), and a test that pauses, kills or restarts it
// should start its own with StartZooKeeper instead.
func MainWithZooKeeper(m TestingM, server **ZooKeeper) int {
	ctx, cancel := context.WithTimeout(context.Background(), mainStartTimeout)
	zk, err := StartZooKeeper(ctx, ZooKeeperOptions{})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the tests of this package need ZooKeeper: %v\n", err)
		return 1
	}
	*server = zk
	code := m.Run()
	if err := zk.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// StartZooKeeperFor starts a server of its own for one test, failing the
// test if it does not serve within a minute, and stops it when the test
// ends.
func StartZooKeeperFor(t testing.TB, opts ZooKeeperOptions) *ZooKeeper {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	z, err := StartZooKeeper(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := z.Stop(); err != nil {
			t.Errorf("stop the test's ZooKeeper: %v", err)
		}
	})
	return z
}

// StartZooKeeper starts a standalone server on a free port of 127.0.0.1 and
// returns once it serves clients. It finds scripts/zk-local in the module
// that holds the working directory and runs `zk-local install` first, which
// installs the Debian package zookeeper if it is missing.
//
// ctx bounds the start only (30 s when it has no deadline); the server runs
// until Stop. On failure the error includes the end of the server's log.
func StartZooKeeper(ctx context.Context, opts ZooKeeperOptions) (*ZooKeeper, error) {
	tick := opts.TickTime
	if tick == 0 {
		tick = defaultTickTime
	}
	if tick < time.Millisecond || tick%time.Millisecond != 0 {
		return nil, fmt.Errorf("testutil: ZooKeeperOptions.TickTime %v is not a positive whole number of milliseconds", tick)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}

	secure, err := newSecureClientPort(opts.TLS)
	if err != nil {
		return nil, err
	}
	script, err := zkLocalScript(ctx)
	if err != nil {
		return nil, err
	}

	z := &ZooKeeper{script: script, tick: tick, secure: secure}
	if opts.Dir == "" {
		z.dir, err = os.MkdirTemp("", "zkdns-zookeeper-")
		if err != nil {
			return nil, fmt.Errorf("testutil: zookeeper directory: %w", err)
		}
		z.ownsDir = true
	} else {
		if z.dir, err = filepath.Abs(opts.Dir); err == nil {
			err = os.MkdirAll(z.dir, 0o755)
		}
		if err != nil {
			return nil, fmt.Errorf("testutil: zookeeper directory %s: %w", opts.Dir, err)
		}
	}

	for attempt := 1; ; attempt++ {
		z.port, err = freePort()
		if err == nil {
			err = z.secure.prepare(z.dir)
		}
		if err == nil {
			err = z.launchLocked(ctx)
		}
		if err == nil {
			return z, nil
		}
		if !errors.Is(err, errPortInUse) || attempt == startAttempts {
			break
		}
	}
	if z.ownsDir {
		// The log tail is in err; the rest of the directory is of no use.
		_ = os.RemoveAll(z.dir)
	}
	return nil, err
}

// zkLocalScript finds scripts/zk-local in the module that holds the
// working directory and runs its install command, which installs the
// Debian package zookeeper if it is missing.
func zkLocalScript(ctx context.Context) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "scripts", "zk-local")
	if out, err := exec.CommandContext(ctx, script, "install").CombinedOutput(); err != nil {
		return "", fmt.Errorf("testutil: %s install: %w: %s", script, err, bytes.TrimSpace(out))
	}
	return script, nil
}

// Addr returns the server's client address, 127.0.0.1:PORT. It stays the
// same across Restart.
func (z *ZooKeeper) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(z.port))
}

// Stop terminates the server (SIGTERM, then SIGKILL after 10 s) and removes
// its directory if StartZooKeeper created it. It is safe to call more than
// once; later calls do nothing and return nil.
func (z *ZooKeeper) Stop() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.stopped {
		return nil
	}
	z.stopped = true
	err := z.terminateLocked()
	if z.ownsDir {
		if rmErr := os.RemoveAll(z.dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("testutil: remove zookeeper directory: %w", rmErr))
		}
	}
	return err
}

// Kill SIGKILLs the server, as a crash would, and waits until it is gone.
// Restart brings it back with its data. Killing a server that is down does
// nothing.
func (z *ZooKeeper) Kill() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.proc == nil {
		return nil
	}
	if err := z.proc.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("testutil: kill zookeeper: %w", err)
	}
	<-z.proc.done
	z.proc = nil
	return nil
}

// Pause freezes the server with SIGSTOP: it keeps its port open and accepts
// connections but answers nothing, as in a long GC pause, so clients'
// sessions run towards expiry. Pause returns once the process is stopped.
func (z *ZooKeeper) Pause() error {
	return z.signal(syscall.SIGSTOP)
}

// Resume continues a paused server with SIGCONT.
func (z *ZooKeeper) Resume() error {
	return z.signal(syscall.SIGCONT)
}

// Restart stops the server (SIGTERM) and starts it again on the same port
// with the same data directory, as an operator's restart would. Sessions
// survive it, as they do on a real standalone server, if they do not
// expire meanwhile. After Kill it starts the server again.
func (z *ZooKeeper) Restart(ctx context.Context) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.stopped {
		return errors.New("testutil: restart of a stopped zookeeper; start a new one")
	}
	if err := z.terminateLocked(); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	// The port is ours in spirit only: should anything else bind it in the
	// gap, wait for it to go away rather than move the server.
	for {
		err := z.launchLocked(ctx)
		if !errors.Is(err, errPortInUse) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (z *ZooKeeper) signal(sig syscall.Signal) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.proc == nil {
		return fmt.Errorf("testutil: send %v to zookeeper: server is not running", sig)
	}
	if err := z.proc.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("testutil: send %v to zookeeper: %w", sig, err)
	}
	if sig == syscall.SIGSTOP {
		waitStopped(z.proc.cmd.Process.Pid, z.proc.done)
	}
	return nil
}

// waitStopped returns once /proc says pid is stopped, so that a test can
// rely on the pause right away. Without procfs it returns at once.
func waitStopped(pid int, done <-chan struct{}) {
	statPath := fmt.Sprintf("/proc/%d/stat", pid)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile(statPath)
		if err != nil {
			return
		}
		// The state follows the command name, which is in parentheses.
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'T' {
			return
		}
		select {
		case <-done:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// launchLocked starts the JVM on z.port and waits until it serves. On
// failure no process is left running.
func (z *ZooKeeper) launchLocked(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("testutil: start zookeeper: %w", err)
	}
	logPath := filepath.Join(z.dir, "zk.log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testutil: zookeeper log: %w", err)
	}
	defer logFile.Close()
	info, err := logFile.Stat()
	if err != nil {
		return fmt.Errorf("testutil: zookeeper log: %w", err)
	}
	logStart := info.Size()

	// Not CommandContext: ctx bounds the start, not the server's life.
	cmd := exec.Command(z.script, z.runArgs()...)
	cmd.Env = append(os.Environ(), "ZK_TICK_MS="+strconv.FormatInt(z.tick.Milliseconds(), 10))
	cmd.Env = append(cmd.Env, z.secure.env()...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testutil: start zookeeper: %w", err)
	}
	proc := &zkProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		// Ends when the JVM exits; Stop and Kill make sure it does.
		_ = cmd.Wait()
		close(proc.done)
	}()

	err = waitServing(ctx, z.Addr(), proc.done)
	if err == nil && z.secure != nil {
		// The TLS port opens on its own, and may do so after the plain
		// one answers: a server is not ready for TLS tests until it does.
		err = waitAccepting(ctx, z.SecureAddr(), proc.done)
	}
	if err == nil {
		z.proc = proc
		return nil
	}
	select {
	case <-proc.done:
		if logSince(logPath, logStart, "Address already in use") {
			return fmt.Errorf("%w: %s", errPortInUse, z.Addr())
		}
		return fmt.Errorf("testutil: zookeeper on %s exited during start-up (%v)\n%s", z.Addr(), cmd.ProcessState, logTail(logPath))
	default:
		_ = cmd.Process.Kill()
		<-proc.done
		return fmt.Errorf("testutil: zookeeper on %s did not become ready: %w\n%s", z.Addr(), err, logTail(logPath))
	}
}

// runArgs are the zk-local arguments that run this server in the
// foreground.
func (z *ZooKeeper) runArgs() []string {
	if z.peers == "" {
		return []string{"run", z.dir, strconv.Itoa(z.port)}
	}
	return []string{"run-member", z.dir, strconv.Itoa(z.myid), strconv.Itoa(z.port), z.peers}
}

// terminateLocked stops the running JVM, if any, and waits until it is gone.
func (z *ZooKeeper) terminateLocked() error {
	if z.proc == nil {
		return nil
	}
	proc := z.proc
	z.proc = nil
	_ = proc.cmd.Process.Signal(syscall.SIGTERM)
	// A paused server would act on SIGTERM only once continued.
	_ = proc.cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-proc.done:
		return nil
	case <-time.After(stopTimeout):
	}
	if err := proc.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("testutil: kill zookeeper after SIGTERM timed out: %w", err)
	}
	<-proc.done
	return nil
}

// waitServing polls addr until the server's reply to the `srvr` four-letter
// word holds a Mode: line. An earlier `ruok` answer comes too soon: the
// server says imok before it serves sessions.
func waitServing(ctx context.Context, addr string, exited <-chan struct{}) error {
	return pollUntil(ctx, exited, func() bool {
		reply, err := fourLetterWord(ctx, addr, "srvr")
		return err == nil && strings.Contains(reply, "Mode:")
	})
}

// waitAccepting waits until addr accepts TCP connections, ctx ends or
// exited is closed.
func waitAccepting(ctx context.Context, addr string, exited <-chan struct{}) error {
	err := pollUntil(ctx, exited, func() bool {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		conn, err := new(net.Dialer).DialContext(dctx, "tcp", addr)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
	if err != nil {
		return fmt.Errorf("%s accepts no connections: %w", addr, err)
	}
	return nil
}

// pollUntil checks every 50 ms until check succeeds (nil), ctx ends (its
// error) or exited is closed.
func pollUntil(ctx context.Context, exited <-chan struct{}, check func() bool) error {
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for !check() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("server exited")
		case <-ticker.C:
		}
	}
	return nil
}

// fourLetterWord sends a ZooKeeper four-letter command and returns the
// reply, which ends when the server closes the connection.
func fourLetterWord(ctx context.Context, addr, word string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return "", err
	}
	if _, err := io.WriteString(conn, word); err != nil {
		return "", err
	}
	reply, err := io.ReadAll(io.LimitReader(conn, 1<<20))
	return string(reply), err
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testutil: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// logSince reports whether the log, from byte offset on, contains s.
func logSince(path string, offset int64, s string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, offset, 1<<30))
	return err == nil && bytes.Contains(b, []byte(s))
}

// logTail returns the last lines of the server log for an error message.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return "--- last lines of " + path + " ---\n" + strings.Join(lines, "\n")
}

// moduleRoot walks up from the working directory to the directory that
// holds go.mod.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("testutil: working directory: %w", err)
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("testutil: no go.mod in %s or any parent; run from inside the module", wd)
		}
		dir = parent
	}
}

// DataWatches returns the paths, sorted, on which the ZooKeeper server at
// addr holds a data or exists watch for session, from its `wchc`
// four-letter word. (ZooKeeper 3.8 does not list child watches there.)
func DataWatches(t testing.TB, addr string, session int64) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := FourLetterWord(ctx, addr, "wchc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	mine := false
	for line := range strings.SplitSeq(reply, "\n") {
		switch {
		case strings.HasPrefix(line, "0x"):
			id, err := strconv.ParseUint(strings.TrimPrefix(line, "0x"), 16, 64)
			mine = err == nil && int64(id) == session
		case mine && strings.HasPrefix(line, "\t"):
			out = append(out, strings.TrimPrefix(line, "\t"))
		}
	}
	slices.Sort(out)
	return out
}
