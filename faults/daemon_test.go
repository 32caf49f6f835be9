package faults_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// service is one [[service]] of a test config; every scenario uses
// host:port payloads.
type service struct {
	name string
	path string
}

// writeConfig writes a zkdns config for servers and services to a new
// file and returns its path. dnsAddr is the DNS listen address
// ("127.0.0.1:0" for any free port); the admin API takes a free port.
func writeConfig(t *testing.T, servers []string, dnsAddr string, services ...service) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "[zookeeper]\nservers = [")
	for i, s := range servers {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", s)
	}
	fmt.Fprintf(&b, "]\nsession_timeout = %q\n", sessionTimeout.String())
	fmt.Fprintf(&b, "[dns]\nlisten = [%q]\nzone = \"local.\"\n", dnsAddr)
	b.WriteString("[admin]\nlisten = \"127.0.0.1:0\"\n")
	for _, s := range services {
		fmt.Fprintf(&b, "[[service]]\nname = %q\npath = %q\nformat = \"hostport\"\n", s.name, s.path)
	}
	path := filepath.Join(t.TempDir(), "zkdns.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// process is one zkdns process of a test, its stderr kept as it runs.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited and its stderr closed

	mu   sync.Mutex // guards logs, written while the process runs
	logs strings.Builder
}

// startProcess starts zkdns with args, with env added to its environment,
// and keeps its stderr, handing each line to onLine (if not nil) as it
// comes. The process is killed when the test ends, if it still runs, and
// its log shown if the test failed.
func startProcess(t *testing.T, args []string, env []string, onLine func(string)) *process {
	t.Helper()
	cmd := exec.Command(zkdnsBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = childProcAttr()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		// Ends when the process exits and its stderr closes.
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if onLine != nil {
				onLine(line)
			}
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("zkdns %s logs:\n%s", args[0], p.logText())
		}
	})
	return p
}

func (p *process) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// daemon is one `zkdns serve` process.
type daemon struct {
	*process
	dns   string // ip:port
	admin string // host:port
}

var (
	dnsListening   = regexp.MustCompile(`msg="dns listening".* addr=(\S+)`)
	adminListening = regexp.MustCompile(`msg="admin listening".* addr=(\S+)`)
	sessionLine    = regexp.MustCompile(`msg="zookeeper session established".* server=(\S+)`)
)

// startDaemon runs zkdns serve on the config file, with env added to its
// environment, and returns once its DNS and admin ports are bound. The
// process is killed when the test ends, if it still runs.
func startDaemon(t *testing.T, config string, env ...string) *daemon {
	t.Helper()
	dnsAddr := make(chan string, 1)
	adminAddr := make(chan string, 1)
	d := &daemon{process: startProcess(t, []string{"serve", "-config", config}, env, func(line string) {
		if m := dnsListening.FindStringSubmatch(line); m != nil {
			offer(dnsAddr, m[1])
		}
		if m := adminListening.FindStringSubmatch(line); m != nil {
			offer(adminAddr, m[1])
		}
	})}
	for _, want := range []struct {
		c    chan string
		into *string
		what string
	}{{dnsAddr, &d.dns, "DNS"}, {adminAddr, &d.admin, "admin"}} {
		select {
		case *want.into = <-want.c:
		case <-d.done:
			t.Fatalf("zkdns exited during start-up: %v\n%s", d.cmd.ProcessState, d.logText())
		case <-time.After(waitLimit):
			t.Fatalf("zkdns did not report its %s address\n%s", want.what, d.logText())
		}
	}
	return d
}

func offer(c chan string, s string) {
	select {
	case c <- s:
	default:
	}
}

// terminate sends SIGTERM, as systemctl stop does, and expects a clean
// exit.
func (d *daemon) terminate(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(waitLimit):
		t.Fatalf("zkdns did not exit within %s of SIGTERM", waitLimit)
	}
	if !d.cmd.ProcessState.Success() {
		t.Fatalf("zkdns exited with %v after SIGTERM, want 0", d.cmd.ProcessState)
	}
}

// kill SIGKILLs zkdns, as a crash or the OOM killer would.
func (d *daemon) kill(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.done
}

// sessionServers lists the ZooKeeper member of every session zkdns has
// established so far, in order.
func (d *daemon) sessionServers() []string {
	var out []string
	for _, m := range sessionLine.FindAllStringSubmatch(d.logText(), -1) {
		out = append(out, m[1])
	}
	return out
}

func (d *daemon) get(t *testing.T, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + d.admin + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// metric returns the value of a counter or gauge without labels from
// /metrics; a family that is missing fails the test.
func (d *daemon) metric(t *testing.T, name string) float64 {
	t.Helper()
	code, body := d.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics answered %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	f, ok := families[name]
	if !ok || len(f.GetMetric()) != 1 {
		t.Fatalf("/metrics has no single sample of %s", name)
	}
	m := f.GetMetric()[0]
	return m.GetCounter().GetValue() + m.GetGauge().GetValue()
}

// hold runs `zkfixture hold`, which owns the given PATH=DATA ephemeral
// znodes under one 1 s session until it is killed, like a service that
// registered itself. Kill it with Process.Kill to play a crash; hold reaps
// it, and kills it at the end of the test if it still runs.
func hold(t *testing.T, servers []string, znodes ...string) *exec.Cmd {
	t.Helper()
	args := append([]string{"hold", "-servers", strings.Join(servers, ","), "-session", "1s"}, znodes...)
	cmd := exec.Command(fixtureBin, args...)
	cmd.SysProcAttr = childProcAttr()
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- strings.TrimSpace(line) == "ready"
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("zkfixture hold failed to register its znodes")
		}
	case <-ctx.Done():
		t.Fatal("zkfixture hold did not become ready")
	}
	return cmd
}
