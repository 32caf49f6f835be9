package main

// End-to-end tests of zkdns register and deregister: the real binary
// registering a tiny HTTP service in a real ZooKeeper, observed through
// the real zkdns serve, plus the parsing of register's flags and file.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/miekg/dns"

	"github.com/zkdns/zkdns/internal/testutil"
	"github.com/zkdns/zkdns/registrar"
)

// runningRegistrar is a running `zkdns register`.
type runningRegistrar struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // its exit status, set before done closes

	mu   sync.Mutex // guards logs
	logs strings.Builder
}

func (r *runningRegistrar) logText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.String()
}

// startRegistrar runs zkdns register with args; it is killed when the test
// ends if it is still running.
func startRegistrar(t *testing.T, args ...string) *runningRegistrar {
	t.Helper()
	cmd := exec.Command(zkdnsBin, append([]string{"register"}, args...)...)
	// The race detector holds an exiting process for a second, which
	// would hide a missing drain from the rolling-restart test.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &runningRegistrar{cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			r.mu.Lock()
			r.logs.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
		}
		r.err = cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

func (r *runningRegistrar) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// wait waits for the registrar to exit and returns its exit status.
func (r *runningRegistrar) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(waitLimit):
		t.Fatalf("zkdns register did not exit; logs:\n%s", r.logText())
		return nil
	}
}

// httpService is the tiny service under test: / answers who it is,
// /health answers 200 or 503 as the test says.
type httpService struct {
	srv     *http.Server
	addr    string
	healthy atomic.Bool
	served  chan struct{}
}

// startHTTPService serves on addr ("127.0.0.1:0" for a free port) until
// stop or the end of the test.
func startHTTPService(t *testing.T, addr string, healthy bool) *httpService {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	s := &httpService{addr: ln.Addr().String(), served: make(chan struct{})}
	s.healthy.Store(healthy)
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		if !s.healthy.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "hello from", s.addr)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop stops accepting and waits for the requests in flight.
func (s *httpService) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		t.Errorf("HTTP service shutdown: %v", err)
	}
	<-s.served
}

func (s *httpService) port() string {
	_, port, _ := net.SplitHostPort(s.addr)
	return port
}

// registerConfigFor is a zkdns serve config watching one curator
// service, svc, at path, with a 1 s TTL so that clients re-resolve often.
func registerServeConfig(path string) string {
	return `
[zookeeper]
servers = ["%ZK%"]
session_timeout = "5s"
[dns]
listen = ["127.0.0.1:0"]
ttl = "1s"
[admin]
listen = ""
[[service]]
name = "svc"
path = "` + path + `"
format = "auto"
`
}

// srvTargets is the SRV answer for svc.local as sorted "port" strings.
func srvPorts(t *testing.T, server string) []string {
	t.Helper()
	r := query(t, server, "svc.local", dns.TypeSRV, false)
	var ports []string
	for _, rr := range r.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			ports = append(ports, strconv.Itoa(int(srv.Port)))
		}
	}
	return ports
}

func TestRegisterLifecycle(t *testing.T) {
	base := "/" + t.Name() + "/svc"
	d := startDaemon(t, zkServer.Addr(), registerServeConfig(base))
	svc := startHTTPService(t, "127.0.0.1:0", false)
	pidfile := filepath.Join(t.TempDir(), "register.pid")
	const drain = 1500 * time.Millisecond
	reg := startRegistrar(t,
		"-servers", zkServer.Addr(), "-session-timeout", "2s",
		"-path", base, "-address", "127.0.0.1", "-port", svc.port(),
		"-check", "http://"+svc.addr+"/health", "-interval", "100ms", "-rise", "2", "-fall", "2",
		"-meta", "zone=a", "-drain", drain.String(), "-pidfile", pidfile)

	t.Run("not registered while the health check fails", func(t *testing.T) {
		eventually(t, "the failing check logged", func() (bool, string) {
			return strings.Contains(reg.logText(), "not ready"), reg.logText()
		})
		for range 10 { // a second of checks
			if ports := srvPorts(t, d.dns); len(ports) != 0 {
				t.Fatalf("svc.local answers %v while the health check fails", ports)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("registered once the check rises", func(t *testing.T) {
		svc.healthy.Store(true)
		eventually(t, "svc in DNS", func() (bool, string) {
			ports := srvPorts(t, d.dns)
			return len(ports) == 1 && ports[0] == svc.port(), fmt.Sprint(ports)
		})
		r := query(t, d.dns, "127-0-0-1-"+svc.port()+".svc.local", dns.TypeTXT, false)
		if got := answers(r); !strings.Contains(got, `"format=curator"`) || !strings.Contains(got, `"zone=a"`) {
			t.Errorf("TXT of the instance:\n%s", got)
		}
		if b, err := os.ReadFile(pidfile); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(reg.cmd.Process.Pid) {
			t.Errorf("pidfile holds %q (%v), want pid %d", b, err, reg.cmd.Process.Pid)
		}
	})

	t.Run("fall removes it from DNS", func(t *testing.T) {
		svc.healthy.Store(false)
		eventually(t, "svc gone from DNS", func() (bool, string) {
			ports := srvPorts(t, d.dns)
			return len(ports) == 0, fmt.Sprint(ports)
		})
		eventually(t, "the reason logged", func() (bool, string) {
			logs := reg.logText()
			return strings.Contains(logs, "msg=unhealthy") && strings.Contains(logs, "reason=unhealthy"), logs
		})
	})

	t.Run("recovery brings it back", func(t *testing.T) {
		svc.healthy.Store(true)
		eventually(t, "svc back in DNS", func() (bool, string) {
			ports := srvPorts(t, d.dns)
			return len(ports) == 1, fmt.Sprint(ports)
		})
	})

	t.Run("SIGTERM leaves DNS before the process exits, which is after the drain", func(t *testing.T) {
		signalled := time.Now()
		if err := reg.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		eventually(t, "svc gone from DNS", func() (bool, string) {
			ports := srvPorts(t, d.dns)
			return len(ports) == 0, fmt.Sprint(ports)
		})
		if reg.exited() {
			t.Errorf("the registrar exited before its instance left DNS")
		}
		if err := reg.wait(t); err != nil {
			t.Fatalf("zkdns register exited with %v after SIGTERM; logs:\n%s", err, reg.logText())
		}
		if took := time.Since(signalled); took < drain {
			t.Errorf("exited %v after SIGTERM, before the %v drain was over", took, drain)
		}
		if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pidfile still there after exit: %v", err)
		}
	})
}

func TestRegisterKilledLeavesWithItsSession(t *testing.T) {
	base := "/" + t.Name() + "/svc"
	d := startDaemon(t, zkServer.Addr(), registerServeConfig(base))
	pidfile := filepath.Join(t.TempDir(), "register.pid")
	reg := startRegistrar(t, "-servers", zkServer.Addr(), "-session-timeout", "1s",
		"-path", base, "-address", "192.0.2.7", "-port", "8080", "-format", "hostport", "-pidfile", pidfile)
	eventually(t, "svc in DNS", func() (bool, string) {
		ports := srvPorts(t, d.dns)
		return len(ports) == 1, fmt.Sprint(ports)
	})
	if err := reg.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "svc gone once the session timed out", func() (bool, string) {
		ports := srvPorts(t, d.dns)
		return len(ports) == 0, fmt.Sprint(ports)
	})
	_ = reg.wait(t)

	// The killed registrar left its pidfile; deregister must see that
	// nothing runs with it rather than fail or signal a stranger.
	out, err := exec.Command(zkdnsBin, "deregister", "-pidfile", pidfile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "not running") {
		t.Errorf("zkdns deregister on a stale pidfile: %v\n%s", err, out)
	}
}

// TestRegisterOutlivesHangupAndClosedStderr: neither a SIGHUP nor a
// stderr that nobody reads any more ends a registrar; it stays registered
// and still goes offline properly on SIGTERM.
func TestRegisterOutlivesHangupAndClosedStderr(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	tests := []struct {
		name string
		// start runs the registrar with args and brings about the event,
		// returning once the registrar has met it, with the process and
		// a function that waits for its exit status.
		start func(t *testing.T, node string, args []string) (*os.Process, func() error)
	}{
		{"SIGHUP", func(t *testing.T, node string, args []string) (*os.Process, func() error) {
			reg := startRegistrar(t, args...)
			waitZnode(t, conn, node, true)
			if err := reg.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the SIGHUP logged as ignored", func() (bool, string) {
				return strings.Contains(reg.logText(), `msg="SIGHUP ignored: zkdns register has nothing to reload; SIGTERM deregisters"`) || reg.exited(),
					reg.logText()
			})
			if reg.exited() {
				t.Fatalf("zkdns register exited on SIGHUP: %v; logs:\n%s", reg.err, reg.logText())
			}
			return reg.cmd.Process, func() error { return reg.wait(t) }
		}},
		{"stderr closed", func(t *testing.T, node string, args []string) (*os.Process, func() error) {
			// The check passes once ready exists, and only if SIGPIPE is
			// not ignored in the command: a pipeline in a check needs it.
			ready := filepath.Join(t.TempDir(), "ready")
			check := "exec:test -e " + ready +
				` && [ $(( 0x$(awk '/^SigIgn/ {print $2}' /proc/self/status) & 0x1000 )) -eq 0 ]`
			r, wait := startWithStderrPipe(t, exec.Command(zkdnsBin, append([]string{"register", "-check", check, "-interval", "100ms", "-rise", "1"}, args...)...))
			// As `zkdns register … 2>&1 | head -1` does: one line, then
			// the reader goes.
			if _, err := bufio.NewReader(r).ReadString('\n'); err != nil {
				t.Fatalf("reading the first log line: %v", err)
			}
			r.Close()
			// Going healthy and registering logs lines that cannot be
			// written.
			writeFile(t, ready, "")
			waitZnode(t, conn, node, true)
			return wait.proc, wait.exit
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := "/" + strings.ReplaceAll(t.Name(), " ", "_") + "/svc"
			node := base + "/web-1"
			pidfile := filepath.Join(t.TempDir(), "register.pid")
			proc, wait := tc.start(t, node, []string{"-servers", zkServer.Addr(), "-path", base, "-id", "web-1",
				"-address", "192.0.2.8", "-port", "8080", "-format", "hostport", "-drain", "0", "-pidfile", pidfile})
			if err := proc.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := wait(); err != nil {
				t.Errorf("zkdns register exited with %v after SIGTERM, want 0", err)
			}
			// Deleted by the offline step, not left to the session.
			if ok, _, err := conn.Exists(node); err != nil || ok {
				t.Errorf("znode %s after exit: exists %v, %v; want it deleted", node, ok, err)
			}
			if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pidfile still there after exit: %v", err)
			}
		})
	}
}

// TestRegisterRefusesPersistentZnode: a persistent znode at the
// instance's path is a setup error, like a path the ACLs deny: zkdns
// register leaves it alone and exits 1 saying what is in the way.
func TestRegisterRefusesPersistentZnode(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn) + "/svc" // the persistent znode outlives the test
	testutil.CreateZnode(t, conn, base+"/web-1", "somebody's data", 0)
	reg := startRegistrar(t, "-servers", zkServer.Addr(), "-path", base, "-id", "web-1",
		"-address", "192.0.2.9", "-port", "8080", "-drain", "0")
	err := reg.wait(t)
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitFailure {
		t.Errorf("zkdns register exited with %v, want exit status %d", err, exitFailure)
	}
	want := "zkdns: registrar: create " + base + "/web-1: a persistent znode is in the way: "
	if logs := reg.logText(); !strings.Contains(logs, "\n"+want) {
		t.Errorf("stderr lacks a line starting %q:\n%s", want, logs)
	}
	if data, _, err := conn.Get(base + "/web-1"); err != nil || string(data) != "somebody's data" {
		t.Errorf("the znode holds %q (%v), want it left as it was", data, err)
	}
}

// waitZnode waits until p exists (or, with exists false, does not).
func waitZnode(t *testing.T, conn *zk.Conn, p string, exists bool) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s to exist: %v", p, exists), func() (bool, string) {
		ok, _, err := conn.Exists(p)
		return err == nil && ok == exists, fmt.Sprint(ok, err)
	})
}

// rollingClient resolves svc.local through zkdns, honouring the TTL of
// the answer, and sends HTTP requests to its instances in turn.
type rollingClient struct {
	dnsServer string
	http      *http.Client

	targets []string // host:port
	expires time.Time
	next    int

	requests, failures int
	firstFailures      []string
}

func (c *rollingClient) resolve() ([]string, error) {
	if time.Now().Before(c.expires) {
		return c.targets, nil
	}
	m := new(dns.Msg)
	m.SetQuestion("svc.local.", dns.TypeSRV)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, c.dnsServer)
	if err != nil {
		return nil, err
	}
	glue := map[string]string{}
	for _, rr := range r.Extra {
		if a, ok := rr.(*dns.A); ok {
			glue[a.Hdr.Name] = a.A.String()
		}
	}
	var targets []string
	ttl := uint32(60)
	for _, rr := range r.Answer {
		srv, ok := rr.(*dns.SRV)
		if !ok {
			continue
		}
		ttl = min(ttl, srv.Hdr.Ttl)
		if ip, ok := glue[srv.Target]; ok {
			targets = append(targets, net.JoinHostPort(ip, strconv.Itoa(int(srv.Port))))
		}
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("svc.local has no instances: %s", r)
	}
	c.targets, c.expires = targets, time.Now().Add(time.Duration(ttl)*time.Second)
	return targets, nil
}

// once sends one request and records how it went.
func (c *rollingClient) once() {
	c.requests++
	err := func() error {
		targets, err := c.resolve()
		if err != nil {
			return err
		}
		target := targets[c.next%len(targets)]
		c.next++
		resp, err := c.http.Get("http://" + target + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", target, resp.Status)
		}
		return nil
	}()
	if err != nil {
		c.failures++
		if len(c.firstFailures) < 5 {
			c.firstFailures = append(c.firstFailures, time.Now().Format("15:04:05.000")+" "+err.Error())
		}
	}
}

func TestRollingRestartLosesNoRequest(t *testing.T) {
	base := "/" + t.Name() + "/svc"
	d := startDaemon(t, zkServer.Addr(), registerServeConfig(base))
	dir := t.TempDir()
	const drain = "2s" // twice the 1 s TTL

	type instance struct {
		svc     *httpService
		reg     *runningRegistrar
		pidfile string
	}
	var started []instance // every instance, for its registrar's log
	startInstance := func(addr, pidfile string) instance {
		svc := startHTTPService(t, addr, true)
		// The stops are graceful and wait for no session timeout; a long
		// one keeps a loaded machine, which can starve a registrar of CPU
		// for seconds, from expiring the session of the instance that
		// is meant to serve while the other restarts.
		reg := startRegistrar(t, "-servers", zkServer.Addr(), "-session-timeout", "4s",
			"-path", base, "-address", "127.0.0.1", "-port", svc.port(),
			"-check", "http://"+svc.addr+"/health", "-interval", "100ms", "-rise", "1",
			"-drain", drain, "-pidfile", pidfile)
		in := instance{svc: svc, reg: reg, pidfile: pidfile}
		started = append(started, in)
		return in
	}
	bothServed := func(a, b instance) {
		t.Helper()
		eventually(t, "both instances in DNS", func() (bool, string) {
			ports := srvPorts(t, d.dns)
			return len(ports) == 2 && ports[0] != ports[1] &&
				(ports[0] == a.svc.port() || ports[0] == b.svc.port()) &&
				(ports[1] == a.svc.port() || ports[1] == b.svc.port()), fmt.Sprint(ports)
		})
	}
	instances := []instance{
		startInstance("127.0.0.1:0", filepath.Join(dir, "a.pid")),
		startInstance("127.0.0.1:0", filepath.Join(dir, "b.pid")),
	}
	bothServed(instances[0], instances[1])

	client := &rollingClient{
		dnsServer: d.dns,
		http:      &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	stop := make(chan struct{})
	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			client.once()
			// A pause keeps the loop from running the host out of
			// ephemeral ports (one connection per request).
			time.Sleep(5 * time.Millisecond)
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-clientDone
	}()
	time.Sleep(500 * time.Millisecond) // traffic to both before the first restart

	// restarts stops instance i's registrar one of two ways: by SIGTERM,
	// or through zkdns deregister as a preStop hook would.
	restarts := []struct {
		name string
		stop func(t *testing.T, in instance)
	}{
		{"SIGTERM", func(t *testing.T, in instance) {
			if err := in.reg.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
		}},
		{"zkdns deregister", func(t *testing.T, in instance) {
			began := time.Now()
			out, err := exec.Command(zkdnsBin, "deregister", "-pidfile", in.pidfile, "-timeout", "20s").CombinedOutput()
			if err != nil {
				t.Fatalf("zkdns deregister: %v\n%s", err, out)
			}
			// As a preStop hook it must return only once the registrar
			// has drained and exited.
			if took := time.Since(began); took < 2*time.Second || running(in.reg.cmd.Process.Pid) {
				t.Errorf("zkdns deregister returned after %v, before the 2s drain was over or the registrar exited", took)
			}
		}},
	}
	for i, rs := range restarts {
		in := instances[i]
		rs.stop(t, in)
		if err := in.reg.wait(t); err != nil {
			t.Fatalf("registrar %d (%s) exited with %v; logs:\n%s", i, rs.name, err, in.reg.logText())
		}
		in.svc.stop(t)
		// A real service takes a while to start again. Clients that still
		// had it in a cached answer would hit the closed port meanwhile;
		// the drain is what keeps them away.
		time.Sleep(time.Second)
		instances[i] = startInstance(in.svc.addr, in.pidfile)
		bothServed(instances[0], instances[1])
	}
	time.Sleep(500 * time.Millisecond) // traffic to both after the last restart
	close(stop)
	<-clientDone

	t.Logf("rolling restart of 2 instances: %d requests, %d failed", client.requests, client.failures)
	if client.requests < 100 {
		t.Errorf("only %d requests were sent: the client did not run through the restarts", client.requests)
	}
	if client.failures != 0 {
		var logs strings.Builder
		for _, in := range started {
			fmt.Fprintf(&logs, "\n\nregistrar of port %s (pidfile %s):\n%s", in.svc.port(), filepath.Base(in.pidfile), in.reg.logText())
		}
		t.Errorf("%d of %d requests failed; first: %s%s", client.failures, client.requests, strings.Join(client.firstFailures, "; "), logs.String())
	}
}

func TestRegisterCommandLine(t *testing.T) {
	dir := t.TempDir()
	badKey := filepath.Join(dir, "bad.toml")
	writeFile(t, badKey, "servers = [\"127.0.0.1:2181\"]\npath = \"/s\"\nport = 80\n\nbogus = 1\n")
	badType := filepath.Join(dir, "type.toml")
	writeFile(t, badType, "servers = [\"127.0.0.1:2181\"]\npath = \"/s\"\nport = \"eighty\"\n")
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"register without required flags", []string{"register"}, 2, "missing -servers, -path, -port"},
		{"register with a bad check", []string{"register", "-servers", "127.0.0.1:1", "-path", "/s", "-port", "80", "-check", "ping://x"}, 2, "want http://"},
		// A problem in the file is not a usage error: zkdns check exits 1
		// for the same kind of problem in its file.
		{"register with an unknown config key", []string{"register", "-config", badKey}, 1, "bad.toml:5: bogus: unknown key; the top level takes only servers,"},
		{"register with a mistyped config value", []string{"register", "-config", badType}, 1, "type.toml:3: port: must be an integer, not a string"},
		{"register with an unreadable config", []string{"register", "-config", filepath.Join(dir, "none.toml")}, 1, "none.toml"},
		{"register with a stray argument", []string{"register", "-port", "80", "extra"}, 2, "unexpected argument"},
		{"register with an unknown flag", []string{"register", "-prot", "80"}, 2, "flag provided but not defined: -prot\n"},
		{"deregister without pidfile", []string{"deregister"}, 2, "-pidfile is required"},
		// On purpose: a preStop hook may run twice. The path shows a typo.
		{"deregister with no pidfile on disk", []string{"deregister", "-pidfile", filepath.Join(dir, "none.pid")}, 0,
			fmt.Sprintf("pidfile %q does not exist: no registrar is running", filepath.Join(dir, "none.pid"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runZkdns(t, tc.args...)
			if code != tc.code || !strings.Contains(string(out), tc.contains) {
				t.Errorf("exit %d, want %d with %q; output:\n%s", code, tc.code, tc.contains, out)
			}
		})
	}
}

func TestParseRegisterArgs(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "register.toml")
	writeFile(t, file, `
servers = ["192.0.2.1:2181", "192.0.2.2:2181"]
session_timeout = "4s"
path = "/services/payments"
port = 8080
format = "serverset"
check = "tcp://127.0.0.1:8080"
rise = 4
drain = "3s"
[meta]
zone = "a"
rack = "r1"
`)
	authFile := filepath.Join(dir, "zk.auth")
	writeFile(t, authFile, "registrar:s3cret\n")
	if err := os.Chmod(authFile, 0o600); err != nil {
		t.Fatal(err)
	}
	credsDir := t.TempDir()
	credsDirFile := filepath.Join(credsDir, "zk.auth")
	writeFile(t, credsDirFile, "registrar:s3cret\n")
	if err := os.Chmod(credsDirFile, 0o640); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, o registrar.Options)
	}{
		{"file alone", []string{"-config", file}, func(t *testing.T, o registrar.Options) {
			if strings.Join(o.Servers, ",") != "192.0.2.1:2181,192.0.2.2:2181" || o.SessionTimeout != 4*time.Second ||
				o.Path != "/services/payments" || o.Port != 8080 || o.Format != "serverset" || o.Rise != 4 ||
				o.Drain != 3*time.Second || o.Metadata["zone"] != "a" || o.Check != "tcp://127.0.0.1:8080" {
				t.Errorf("options %+v", o)
			}
		}},
		{"flags override the file, -meta key by key", []string{"-config", file, "-servers", "192.0.2.3:2181", "-port", "9090", "-meta", "zone=b", "-rise", "1"},
			func(t *testing.T, o registrar.Options) {
				if strings.Join(o.Servers, ",") != "192.0.2.3:2181" || o.Port != 9090 || o.Rise != 1 ||
					o.Metadata["zone"] != "b" || o.Metadata["rack"] != "r1" || o.Format != "serverset" {
					t.Errorf("options %+v", o)
				}
			}},
		{"flags alone, defaults left zero", []string{"-servers", "192.0.2.1:2181,192.0.2.2:2181", "-path", "/p", "-port", "80"},
			func(t *testing.T, o registrar.Options) {
				if len(o.Servers) != 2 || o.Drain != 0 || o.Interval != 0 || o.Auth != nil {
					t.Errorf("options %+v", o)
				}
			}},
		{"-drain 0 means no drain", []string{"-config", file, "-drain", "0"}, func(t *testing.T, o registrar.Options) {
			if o.Drain != registrar.NoDrain {
				t.Errorf("Drain = %v, want NoDrain", o.Drain)
			}
		}},
		{"auth file", []string{"-config", file, "-auth-file", authFile}, func(t *testing.T, o registrar.Options) {
			if o.Auth == nil || o.Auth.Scheme != "digest" || o.Auth.Credentials != "registrar:s3cret" {
				t.Errorf("Auth = %+v", o.Auth)
			}
		}},
		// systemd's LoadCredential= hands the file over with an ACL whose
		// mask shows as group bits: read there, as zkdns serve reads it.
		{"auth file in systemd's credentials directory", []string{"-config", file, "-auth-file", credsDirFile}, func(t *testing.T, o registrar.Options) {
			if o.Auth == nil || o.Auth.Credentials != "registrar:s3cret" {
				t.Errorf("Auth = %+v", o.Auth)
			}
		}},
	}
	t.Setenv("CREDENTIALS_DIRECTORY", credsDir)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseRegisterArgs(tc.args, io.Discard, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			opts, err := cfg.options()
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, opts)
		})
	}

	// usage: the command line is at fault (exit 2); otherwise a file is
	// (exit 1, as for zkdns check).
	errTests := []struct {
		name string
		// servers is the first line's value; empty means a valid list.
		servers string
		file    string // after the lines of servers, path and port
		args    []string
		wantErr string
		usage   bool
	}{
		{
			name:    "unknown table",
			file:    "[metadata]\nzone = \"a\"\n",
			wantErr: `r.toml:4: metadata: unknown key; the top level takes only servers, session_timeout, auth_file, path, id, name, address, port, format, meta, weight, check, interval, timeout, rise, fall, warmup, warmup_requests, warmup_timeout, drain, pidfile`,
		},
		{
			name:    "misspelt key in the middle",
			file:    "\nrize = 2\nfall = 1\n",
			wantErr: `r.toml:5: rize: unknown key; did you mean "rise"?`,
		},
		{
			name:    "zero interval flag",
			file:    "[meta]\nzone = \"a\"\n",
			args:    []string{"-interval", "0s"},
			wantErr: "zkdns register: -interval: must be positive, not 0s",
			usage:   true,
		},
		{
			name:    "bad duration",
			file:    "interval = \"soon\"\n",
			wantErr: `r.toml:4: interval: "soon" is not a duration: write a number and a unit, like "5s" or "250ms"`,
		},
		{
			name:    "bare number for a duration",
			file:    "interval = 5\n",
			wantErr: `r.toml:4: interval: must be a duration string with a unit, like "5s", not the bare number 5`,
		},
		{
			// Decoded in key order, interval before weight; reported in
			// the file's.
			name:    "two bad values, both in file order",
			file:    "weight = \"heavy\"\ninterval = 5\n",
			wantErr: `r.toml:4: weight: must be an integer, not a string; r.toml:5: interval: must be a duration string with a unit, like "5s", not the bare number 5`,
		},
		{
			name:    "string for the server list",
			servers: `"192.0.2.1:2181"`,
			wantErr: `r.toml:1: servers: must be an array of strings, not a string: write ["192.0.2.1:2181"]`,
		},
		{
			name:    "integer in meta, as a dotted key",
			file:    "meta.zone = 1\n",
			wantErr: `r.toml:4: meta.zone: must be a string, not the integer 1`,
		},
		{
			name:    "integer in the meta table",
			file:    "[meta]\nrack = \"r1\"\nzone = 1\n",
			wantErr: `r.toml:6: meta.zone: must be a string, not the integer 1`,
		},
		{
			name:    "meta that is not a table",
			file:    "meta = \"zone=a\"\n",
			wantErr: `r.toml:4: meta: must be a table, not a string`,
		},
		{
			name:    "negative drain",
			file:    "drain = \"-1s\"\n",
			wantErr: "r.toml:4: drain: must be positive, or 0 for no drain, not -1s",
		},
		{
			name:    "auth file with two lines",
			args:    []string{"-auth-file", filepath.Join(dir, "two.auth")},
			wantErr: "register: -auth-file: " + filepath.Join(dir, "two.auth") + " has more than one line; it must hold only user:password",
		},
		{
			name:    "auth file readable by others",
			args:    []string{"-auth-file", filepath.Join(dir, "open.auth")},
			wantErr: "register: -auth-file: " + filepath.Join(dir, "open.auth") + " is accessible by group or others (mode 0644); it holds a secret: chmod 600 " + filepath.Join(dir, "open.auth"),
		},
		{
			// A problem with the file is a failure wherever its name came
			// from, reported where that was.
			name:    "auth file from the config file, with two lines",
			file:    "auth_file = " + strconv.Quote(filepath.Join(dir, "two.auth")) + "\n",
			wantErr: "r.toml:4: auth_file: " + filepath.Join(dir, "two.auth") + " has more than one line; it must hold only user:password",
		},
		{
			name:    "auth file from the config file, missing",
			file:    "auth_file = " + strconv.Quote(filepath.Join(dir, "absent.auth")) + "\n",
			wantErr: "r.toml:4: auth_file: open " + filepath.Join(dir, "absent.auth") + ": no such file or directory",
		},
		{
			name:    "auth file in the config file, overridden by the flag",
			file:    "auth_file = " + strconv.Quote(filepath.Join(dir, "absent.auth")) + "\n",
			args:    []string{"-auth-file", filepath.Join(dir, "open.auth")},
			wantErr: "register: -auth-file: " + filepath.Join(dir, "open.auth") + " is accessible",
		},
	}
	writeFile(t, filepath.Join(dir, "two.auth"), "registrar:a\nregistrar:b\n")
	writeFile(t, filepath.Join(dir, "open.auth"), "registrar:s3cret\n")
	if err := os.Chmod(filepath.Join(dir, "two.auth"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "open.auth"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range errTests {
		t.Run(tc.name, func(t *testing.T) {
			servers := tc.servers
			if servers == "" {
				servers = `["192.0.2.1:2181"]`
			}
			f := filepath.Join(t.TempDir(), "r.toml")
			writeFile(t, f, "servers = "+servers+"\npath = \"/p\"\nport = 80\n"+tc.file)
			cfg, err := parseRegisterArgs(append([]string{"-config", f}, tc.args...), io.Discard, io.Discard)
			if err == nil {
				_, err = cfg.options()
			}
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.wantErr)
			}
			// Every problem names the file by its full path; the wanted
			// messages leave out the directory.
			msg := strings.ReplaceAll(err.Error(), filepath.Dir(f)+string(filepath.Separator), "")
			if errors.Is(err, errUsage) != tc.usage || !strings.Contains(msg, tc.wantErr) {
				t.Errorf("error %v, want one containing %q (usage error: %v)", msg, tc.wantErr, tc.usage)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error quotes the credentials: %v", err)
			}
		})
	}
}

// TestRegisterBadValues runs zkdns register with values that parse but
// cannot work: each is reported where it was given, a flag as a usage
// error (exit 2) naming it, a line of the -config file as zkdns check
// reports one (exit 1).
func TestRegisterBadValues(t *testing.T) {
	const (
		servers = "servers = [\"192.0.2.1:2181\"]\n"
		path    = "path = \"/services/payments\"\n"
		port    = "port = 8080\n"
		base    = servers + path + port
	)
	flags := []string{"-servers", "192.0.2.1:2181", "-path", "/p", "-port", "80"}
	tests := []struct {
		name string
		file string // the -config file; "" means none
		args []string
		code int
		want string // stderr, the file's directory left out
	}{
		{
			name: "port out of range in the file",
			file: servers + path + "port = 70000\n",
			code: exitFailure,
			want: "zkdns: r.toml:3: port: 70000 is out of range (want 1-65535)\n",
		},
		{
			name: "zero interval in the file",
			file: base + "interval = \"0s\"\n",
			code: exitFailure,
			want: "zkdns: r.toml:4: interval: must be positive, not 0s\n",
		},
		{
			name: "negative drain in the file",
			file: base + "\n# drain\ndrain = \"-1s\"\n",
			code: exitFailure,
			want: "zkdns: r.toml:6: drain: must be positive, or 0 for no drain, not -1s\n",
		},
		{
			name: "negative rise flag",
			args: append(slices.Clone(flags), "-rise", "-1"),
			code: exitUsage,
			want: "zkdns register: -rise: -1 is negative\n",
		},
		{
			name: "negative rise in the file",
			file: base + "rise = -1\n",
			code: exitFailure,
			want: "zkdns: r.toml:4: rise: -1 is negative\n",
		},
		{
			name: "bad flag over a good line",
			file: base + "rise = 3\n",
			args: []string{"-rise", "-1"},
			code: exitUsage,
			want: "zkdns register: -rise: -1 is negative\n",
		},
		{
			name: "zero duration flag over a good line",
			file: base + "warmup_timeout = \"5s\"\n",
			args: []string{"-warmup-timeout", "0s"},
			code: exitUsage,
			want: "zkdns register: -warmup-timeout: must be positive, not 0s\n",
		},
		{
			name: "zero session timeout in the file",
			file: base + "session_timeout = \"0s\"\n",
			code: exitFailure,
			want: "zkdns: r.toml:4: session_timeout: must be positive, not 0s\n",
		},
		{
			name: "port 0 in the file is not a missing port",
			file: servers + path + "port = 0\n",
			code: exitFailure,
			want: "zkdns: r.toml:3: port: 0 is out of range (want 1-65535)\n",
		},
		{
			name: "port 0 flag",
			args: []string{"-servers", "192.0.2.1:2181", "-path", "/p", "-port", "0"},
			code: exitUsage,
			want: "zkdns register: -port: 0 is out of range (want 1-65535)\n",
		},
		{
			name: "empty path in the file",
			file: servers + "path = \"\"\n" + port,
			code: exitFailure,
			want: "zkdns: r.toml:2: path: must not be empty: give the service's znode, e.g. /services/payments\n",
		},
		{
			name: "empty server list in the file",
			file: "servers = []\n" + path + port,
			code: exitFailure,
			want: `zkdns: r.toml:1: servers: must list at least one ZooKeeper server as host:port, e.g. ["192.0.2.1:2181"]` + "\n",
		},
		{
			name: "settings given nowhere come first",
			file: "drain = \"1s\"\n",
			args: []string{"-port", "0"},
			code: exitUsage,
			want: "zkdns register: missing -servers, -path (as flags or in the -config file)\n",
		},
		{
			name: "unknown format in the file",
			file: base + "format = \"dubbo\"\n",
			code: exitFailure,
			want: "zkdns: r.toml:4: format: \"dubbo\" is not one of curator, serverset, nerve, hostport\n",
		},
		{
			name: "bad check in the file",
			file: base + "check = \"ping://x\"\n",
			code: exitFailure,
			want: "zkdns: r.toml:4: check: \"ping://x\": want http://…, https://…, tcp://host:port or exec:COMMAND\n",
		},
		{
			name: "empty server in the file",
			file: path + port + "servers = [\"192.0.2.1:2181\", \" \"]\n",
			code: exitFailure,
			want: "zkdns: r.toml:3: servers: has an empty entry\n",
		},
		{
			name: "empty meta key in the file, whatever -meta adds",
			file: base + "[meta]\nzone = \"a\"\n\"\" = \"x\"\n",
			args: []string{"-meta", "rack=r1"},
			code: exitFailure,
			want: "zkdns: r.toml:4: meta: has an empty key\n",
		},
		{
			name: "meta weight 0 flag",
			args: append(slices.Clone(flags), "-meta", "weight=0"),
			code: exitUsage,
			want: "zkdns register: -meta weight: 0 is out of range (want 1-65535: it is the base SRV weight)\n",
		},
		{
			name: "meta weight flag that is no number, beside the file's meta",
			file: base + "[meta]\nzone = \"a\"\n",
			args: []string{"-meta", "weight=abc"},
			code: exitUsage,
			want: "zkdns register: -meta weight: \"abc\" is not an integer (want 1-65535: it is the base SRV weight)\n",
		},
		{
			name: "meta weight flag other than the weight flag",
			args: append(slices.Clone(flags), "-weight", "50", "-meta", "weight=60"),
			code: exitUsage,
			want: "zkdns register: -meta weight: 60 differs from the base weight set on its own, 50: give the weight once\n",
		},
		{
			name: "meta weight above 65535 in the file",
			file: base + "[meta]\nzone = \"a\"\nweight = \"99999\"\n",
			args: []string{"-meta", "rack=r1"},
			code: exitFailure,
			want: "zkdns: r.toml:6: meta.weight: 99999 is out of range (want 1-65535: it is the base SRV weight)\n",
		},
		{
			name: "dotted meta weight in the file other than its weight",
			file: base + "weight = 50\nmeta.weight = \"60\"\n",
			code: exitFailure,
			want: "zkdns: r.toml:5: meta.weight: 60 differs from the base weight set on its own, 50: give the weight once\n",
		},
		{
			name: "bad address flag over a good line",
			file: base + "address = \"192.0.2.7\"\n",
			args: []string{"-address", "0.0.0.0"},
			code: exitUsage,
			want: "zkdns register: -address: 0.0.0.0 is what a service binds to, not where it is reached; give this host's address\n",
		},
		{
			name: "bad id in the file",
			file: base + "address = \"192.0.2.7\"\nid = \"a/b\"\n",
			code: exitFailure,
			want: "zkdns: r.toml:5: id: \"a/b\" contains '/'; it must be a single znode name\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"register"}
			if tc.file != "" {
				file := filepath.Join(dir, "r.toml")
				writeFile(t, file, tc.file)
				args = append(args, "-config", file)
			}
			args = append(args, tc.args...)
			var stdout, stderr strings.Builder
			code := run(context.Background(), args, &stdout, &stderr)
			got := strings.ReplaceAll(stderr.String(), dir+string(filepath.Separator), "")
			if code != tc.code || got != tc.want {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d, stderr:\n%s", code, got, tc.code, tc.want)
			}
		})
	}
}

// TestRegisterFlagOverridesBadLine checks that a flag given over a bad
// line of the -config file makes it harmless: the file's value is never
// used, so it is not reported.
func TestRegisterFlagOverridesBadLine(t *testing.T) {
	const base = "servers = [\"192.0.2.1:2181\"]\npath = \"/services/payments\"\naddress = \"192.0.2.7\"\n"
	tests := []struct {
		name string
		file string // after base
		args []string
	}{
		{"port", "port = 70000\n", []string{"-port", "8080"}},
		{"port 0", "port = 0\n", []string{"-port", "8080"}},
		{"interval", "port = 80\ninterval = \"0s\"\n", []string{"-interval", "1s"}},
		{"drain", "port = 80\ndrain = \"-1s\"\n", []string{"-drain", "0s"}},
		{"rise", "port = 80\nrise = -1\n", []string{"-rise", "3"}},
		{"check", "port = 80\ncheck = \"ping://x\"\n", []string{"-check", "tcp://127.0.0.1:80"}},
		{"meta weight", "port = 80\n[meta]\nweight = \"0\"\n", []string{"-meta", "weight=5"}},
		// registrar.Options documents a zero Rise as the default, 2;
		// register keeps that, and its README says so.
		{"rise 0 is the default", "port = 80\nrise = 0\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "r.toml")
			writeFile(t, file, base+tc.file)
			cfg, err := parseRegisterArgs(append([]string{"-config", file}, tc.args...), io.Discard, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cfg.newRegistrar(nil); err != nil {
				t.Errorf("newRegistrar: %v", err)
			}
		})
	}
}

// TestOptionKey checks that every registrar option a setting fills maps
// to a TOML key whose flag register defines, so that a bad one is
// reported where it was set.
func TestOptionKey(t *testing.T) {
	fs := registerFlags(&registerConfig{}, new(string))
	for f := range reflect.TypeFor[registrar.Options]().Fields() {
		if f.Name == "Logger" { // no setting: register's own
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			key := optionKey(f.Name)
			if key == "" {
				t.Fatalf("no key for Options.%s", f.Name)
			}
			if fs.Lookup(flagName(key)) == nil {
				t.Errorf("Options.%s maps to key %q, whose flag -%s register does not define", f.Name, key, flagName(key))
			}
		})
	}
	if key := optionKey("Logger"); key != "" {
		t.Errorf("Options.Logger maps to key %q; no setting fills it", key)
	}
}
