package main

// End-to-end tests: the real zkdns binary, a real ZooKeeper, instances
// registered from other processes and sessions, and queries from the real
// dig and from Go's resolver.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/miekg/dns"

	"github.com/zkdns/zkdns/internal/testutil"
)

var (
	zkServer   *testutil.ZooKeeper
	zkdnsBin   string
	fixtureBin string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		// A fuzzing worker runs only the fuzz target, which needs neither
		// ZooKeeper nor the binaries; the coordinating process set them
		// up for the tests, once.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "zkdns-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	zkdnsBin, err = testutil.BuildBinary(ctx, dir)
	if err == nil {
		fixtureBin, err = testutil.BuildPackage(ctx, dir, "./internal/cmd/zkfixture")
	}
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	code := testutil.MainWithZooKeeper(m, &zkServer)
	os.RemoveAll(dir)
	os.Exit(code)
}

// waitLimit bounds every wait for an expected change.
const waitLimit = 15 * time.Second

// runningDaemon is a running `zkdns serve`.
type runningDaemon struct {
	cmd    *exec.Cmd
	dns    string // ip:port
	admin  string // host:port of the admin API, when configured
	config string // the config file's path
	done   chan error

	mu   sync.Mutex // guards logs, written while the daemon runs
	logs strings.Builder
}

func (d *runningDaemon) logText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

var (
	listenLine = regexp.MustCompile(`msg="dns listening".* addr=(\S+)`)
	adminLine  = regexp.MustCompile(`msg="admin listening".* addr=(\S+)`)
)

// startDaemon runs zkdns serve with config (the %ZK% placeholder replaced
// by the ZooKeeper address) and waits until its DNS port is bound.
func startDaemon(t *testing.T, zkAddr, config string, env ...string) *runningDaemon {
	t.Helper()
	file := filepath.Join(t.TempDir(), "zkdns.toml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(config, "%ZK%", zkAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	return startDaemonAt(t, file, env...)
}

// startDaemonAt runs zkdns serve on the config file at path, with env
// added to the environment, and waits until its DNS port (and its admin
// port, when the config asks for a free one) is bound.
func startDaemonAt(t *testing.T, file string, env ...string) *runningDaemon {
	t.Helper()
	config, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(zkdnsBin, "serve", "-config", file)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &runningDaemon{cmd: cmd, config: file, done: make(chan error, 1)}
	found := make(chan string, 1)
	adminFound := make(chan string, 1)
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listenLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
			if m := adminLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case adminFound <- m[1]:
				default:
				}
			}
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	go func() {
		for l := range lines {
			d.mu.Lock()
			d.logs.WriteString(l + "\n")
			d.mu.Unlock()
		}
		d.done <- cmd.Wait()
	}()
	select {
	case d.dns = <-found:
	case <-time.After(waitLimit):
		_ = cmd.Process.Kill()
		t.Fatalf("zkdns did not report its DNS address")
	}
	if strings.Contains(string(config), "[admin]\nlisten = \"127.0.0.1:0\"") {
		select {
		case d.admin = <-adminFound:
		case <-time.After(waitLimit):
			t.Fatalf("zkdns did not report its admin address")
		}
	}
	t.Cleanup(func() { d.stop(t) })
	return d
}

// stop sends SIGTERM and expects a clean exit.
func (d *runningDaemon) stop(t *testing.T) {
	t.Helper()
	if d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("zkdns exited with %v after SIGTERM; logs:\n%s", err, d.logText())
		}
	case <-time.After(waitLimit):
		_ = d.cmd.Process.Kill()
		t.Errorf("zkdns did not exit after SIGTERM")
	}
}

// query asks the daemon over UDP (or TCP) with miekg/dns and returns the
// reply.
func query(t *testing.T, server, name string, qtype uint16, tcp bool) *dns.Msg {
	t.Helper()
	c := &dns.Client{Timeout: 2 * time.Second}
	if tcp {
		c.Net = "tcp"
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("query %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

// answers is the sorted presentation of a reply's answer section with
// TTLs left out, so tests compare what matters.
func answers(r *dns.Msg) string {
	var out []string
	for _, rr := range r.Answer {
		rr = dns.Copy(rr)
		rr.Header().Ttl = 0
		out = append(out, rr.String())
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// piped is a command started by startWithStderrPipe.
type piped struct {
	t      *testing.T
	proc   *os.Process
	exited chan error
}

// startWithStderrPipe starts cmd with its stderr on a pipe and returns the
// pipe's reading end, which the caller may close to leave the command a
// stderr nobody reads. The command is killed at the test's end if it still
// runs.
func startWithStderrPipe(t *testing.T, cmd *exec.Cmd) (*os.File, *piped) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	p := &piped{t: t, proc: cmd.Process, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(waitLimit):
		}
	})
	return r, p
}

// exit waits for the command to end and returns how it ended.
func (p *piped) exit() error {
	select {
	case err := <-p.exited:
		p.exited <- err // for the cleanup
		return err
	case <-time.After(waitLimit):
		p.t.Fatal("the command did not exit")
		return nil
	}
}

// eventually polls until cond holds, failing after waitLimit.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	testutil.Eventually(t, waitLimit, what, cond)
}

// runZkdns runs the zkdns binary with args and returns what it printed
// (stdout and stderr) and its exit code. Each command run so is meant to
// exit at once: one still running after waitLimit (a serve that started
// when it should have refused its config) is killed and fails the test.
func runZkdns(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, zkdnsBin, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("zkdns %v still running after %s; output:\n%s", args, waitLimit, out)
	case errors.As(err, &exitErr):
		return string(out), exitErr.ExitCode()
	case err != nil:
		t.Fatalf("run zkdns %v: %v", args, err)
	}
	return string(out), 0
}

// hold starts a separate process that owns ephemeral znodes with a 1 s
// session, so the test can SIGKILL it like a crashed service.
func hold(t *testing.T, zkAddr string, znodes ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(fixtureBin, append([]string{"hold", "-servers", zkAddr, "-session", "1s"}, znodes...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- strings.TrimSpace(line) == "ready"
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("holder process failed to register its znodes")
		}
	case <-time.After(waitLimit):
		t.Fatal("holder process did not become ready")
	}
	return cmd
}

func curator(id, addr string, port int, extra string) string {
	return fmt.Sprintf(`{"name":"payments","id":%q,"address":%q,"port":%d,"sslPort":null,`+
		`"payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance","id":"payments-1","name":"payments","metadata":{"zone":"a"%s}},`+
		`"registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":null}`, id, addr, port, extra)
}

func TestServe(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn)
	testutil.CreateZnode(t, conn, base+"/payments/p1", curator("p1", "192.0.2.1", 8080, ""), zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/payments/p2", curator("p2", "2001:db8::2", 8080, ""), zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/payments/p3", curator("p3", "192.0.2.3", 8080, `,"instance_status":"OUT_OF_SERVICE"`), zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/found/orders/o1", "192.0.2.11:9000", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/found/aliases/inzone", "p1.payments.local:8080", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/found/aliases/elsewhere", "backend.example.com:7000", zk.FlagEphemeral)
	testutil.MkdirAll(t, conn, base+"/empty")
	testutil.CreateZnode(t, conn, base+"/dubbo/providers/dubbo%3A%2F%2F192.0.2.21%3A20880%2Fcom.example.Demo%3Fweight%3D50",
		"", zk.FlagEphemeral)

	d := startDaemon(t, zkServer.Addr(), `
[zookeeper]
servers = ["%ZK%"]
session_timeout = "5s"
[dns]
listen = ["127.0.0.1:0"]
zone = "local."
ttl = "5s"
negative_ttl = "1s"
[admin]
listen = ""
[[service]]
name = "payments"
path = "`+base+`/payments"
format = "curator"
[[service]]
name = "empty"
path = "`+base+`/empty"
[[service]]
name = "notyet"
path = "`+base+`/notyet"
[[service]]
name = "demo"
path = "`+base+`/dubbo/providers"
format = "dubbo"
[[discover]]
path = "`+base+`/found"
format = "hostport"
`)
	eventually(t, "first sync", func() (bool, string) {
		r := query(t, d.dns, "payments.local", dns.TypeSRV, false)
		return r.Rcode == dns.RcodeSuccess && len(r.Answer) == 2, r.String()
	})

	cases := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer string
		authNS bool // SOA expected in the authority section
	}{
		{"srv", "payments.local", dns.TypeSRV, dns.RcodeSuccess,
			"payments.local.\t0\tIN\tSRV\t0 100 8080 p1.payments.local.\n" +
				"payments.local.\t0\tIN\tSRV\t0 100 8080 p2.payments.local.", false},
		{"rfc2782 srv", "_payments._tcp.local", dns.TypeSRV, dns.RcodeSuccess, "", false},
		{"a", "payments.local", dns.TypeA, dns.RcodeSuccess, "payments.local.\t0\tIN\tA\t192.0.2.1", false},
		{"aaaa", "payments.local", dns.TypeAAAA, dns.RcodeSuccess, "payments.local.\t0\tIN\tAAAA\t2001:db8::2", false},
		{"instance a", "p1.payments.local", dns.TypeA, dns.RcodeSuccess, "p1.payments.local.\t0\tIN\tA\t192.0.2.1", false},
		{"instance txt", "p1.payments.local", dns.TypeTXT, dns.RcodeSuccess,
			"p1.payments.local.\t0\tIN\tTXT\t\"format=curator\" \"id=p1\" \"zone=a\"", false},
		{"case-insensitive", "PayMents.LOCAL", dns.TypeA, dns.RcodeSuccess, "PayMents.LOCAL.\t0\tIN\tA\t192.0.2.1", false},
		{"out of service instance is not served", "p3.payments.local", dns.TypeA, dns.RcodeNameError, "", true},
		{"discovered service", "orders.local", dns.TypeSRV, dns.RcodeSuccess,
			"orders.local.\t0\tIN\tSRV\t0 100 9000 o1.orders.local.", false},
		{"an instance registered by a name in the zone: zkdns follows it", "inzone.aliases.local", dns.TypeA, dns.RcodeSuccess,
			"inzone.aliases.local.\t0\tIN\tCNAME\tp1.payments.local.\np1.payments.local.\t0\tIN\tA\t192.0.2.1", false},
		{"an instance registered by a hostname: its CNAME for every type", "elsewhere.aliases.local", dns.TypeTXT, dns.RcodeSuccess,
			"elsewhere.aliases.local.\t0\tIN\tCNAME\tbackend.example.com.", false},
		{"dubbo provider named by its decoded URL", "demo.local", dns.TypeSRV, dns.RcodeSuccess,
			"demo.local.\t0\tIN\tSRV\t0 50 20880 dubbo-192-0-2-21-20880-com-example-demo-weight-50.demo.local.", false},
		{"no instances is NODATA", "empty.local", dns.TypeSRV, dns.RcodeSuccess, "", true},
		{"missing path is NODATA", "notyet.local", dns.TypeA, dns.RcodeSuccess, "", true},
		{"unknown name is NXDOMAIN", "nosuch.local", dns.TypeA, dns.RcodeNameError, "", true},
		{"outside the zone is REFUSED", "example.com", dns.TypeA, dns.RcodeRefused, "", false},
		{"apex SOA", "local", dns.TypeSOA, dns.RcodeSuccess, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := query(t, d.dns, tc.qname, tc.qtype, false)
			if r.Rcode != tc.rcode {
				t.Fatalf("rcode = %s, want %s\n%s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode], r)
			}
			if tc.answer != "" {
				if got := answers(r); got != tc.answer {
					t.Errorf("answer:\n%s\nwant:\n%s", got, tc.answer)
				}
			}
			if tc.name == "rfc2782 srv" && len(r.Answer) != 2 {
				t.Errorf("_payments._tcp SRV has %d answers, want 2", len(r.Answer))
			}
			if tc.name == "apex SOA" && (len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSOA) {
				t.Errorf("apex SOA answer = %v", r.Answer)
			}
			if tc.authNS {
				if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA || r.Ns[0].Header().Ttl != 1 {
					t.Errorf("authority = %v, want the SOA with the 1 s negative TTL", r.Ns)
				}
			}
		})
	}

	t.Run("glue in additional section", func(t *testing.T) {
		r := query(t, d.dns, "payments.local", dns.TypeSRV, false)
		var extra []string
		for _, rr := range r.Extra {
			if rr.Header().Rrtype != dns.TypeOPT {
				extra = append(extra, rr.Header().Name+" "+dns.TypeToString[rr.Header().Rrtype])
			}
		}
		sort.Strings(extra)
		if got := strings.Join(extra, ","); got != "p1.payments.local. A,p2.payments.local. AAAA" {
			t.Errorf("additional = %s", got)
		}
	})

	t.Run("dig", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := testutil.Dig(ctx, d.dns, "+short", "payments.local", "SRV")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Fields(strings.ReplaceAll(out, "\n", " "))
		if len(lines) != 8 || !strings.Contains(out, "0 100 8080 p1.payments.local.") {
			t.Errorf("dig +short payments.local SRV:\n%s", out)
		}
		out, err = testutil.Dig(ctx, d.dns, "nosuch.local", "A")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "status: NXDOMAIN") {
			t.Errorf("dig nosuch.local: %s", out)
		}
	})

	t.Run("go resolver", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res := testutil.Resolver(d.dns)
		_, srvs, err := res.LookupSRV(ctx, "payments", "tcp", "local")
		if err != nil {
			t.Fatal(err)
		}
		var targets []string
		for _, s := range srvs {
			targets = append(targets, fmt.Sprintf("%s:%d", s.Target, s.Port))
		}
		sort.Strings(targets)
		if got := strings.Join(targets, ","); got != "p1.payments.local.:8080,p2.payments.local.:8080" {
			t.Errorf("LookupSRV = %s", got)
		}
		addrs, err := res.LookupHost(ctx, "payments.local")
		sort.Strings(addrs)
		if err != nil || strings.Join(addrs, ",") != "192.0.2.1,2001:db8::2" {
			t.Errorf("LookupHost = %v, %v", addrs, err)
		}
		_, err = res.LookupHost(ctx, "nosuch.local")
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Errorf("LookupHost(nosuch.local) error = %v, want not found", err)
		}
	})

	t.Run("instance leaves and joins", func(t *testing.T) {
		if err := conn.Delete(base+"/payments/p1", -1); err != nil {
			t.Fatal(err)
		}
		eventually(t, "p1 gone", func() (bool, string) {
			r := query(t, d.dns, "payments.local", dns.TypeA, false)
			return len(r.Answer) == 0 && r.Rcode == dns.RcodeSuccess, r.String()
		})
		testutil.CreateZnode(t, conn, base+"/payments/p4", curator("p4", "192.0.2.4", 8080, ""), zk.FlagEphemeral)
		eventually(t, "p4 joins", func() (bool, string) {
			r := query(t, d.dns, "payments.local", dns.TypeA, false)
			return answers(r) == "payments.local.\t0\tIN\tA\t192.0.2.4", r.String()
		})
	})

	t.Run("data change to out of service", func(t *testing.T) {
		if _, err := conn.Set(base+"/payments/p4", []byte(curator("p4", "192.0.2.4", 8080, `,"instance_status":"OUT_OF_SERVICE"`)), -1); err != nil {
			t.Fatal(err)
		}
		eventually(t, "p4 drained", func() (bool, string) {
			r := query(t, d.dns, "p4.payments.local", dns.TypeA, false)
			return r.Rcode == dns.RcodeNameError, r.String()
		})
	})

	t.Run("owner process killed", func(t *testing.T) {
		holder := hold(t, zkServer.Addr(), base+"/found/orders/o2=192.0.2.12:9000")
		eventually(t, "o2 registered", func() (bool, string) {
			r := query(t, d.dns, "orders.local", dns.TypeSRV, false)
			return len(r.Answer) == 2, r.String()
		})
		if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		eventually(t, "o2 gone after its session timed out", func() (bool, string) {
			r := query(t, d.dns, "orders.local", dns.TypeSRV, false)
			return answers(r) == "orders.local.\t0\tIN\tSRV\t0 100 9000 o1.orders.local.", r.String()
		})
	})

	t.Run("discovered service removed", func(t *testing.T) {
		testutil.CreateZnode(t, conn, base+"/found/temp/t1", "192.0.2.21:1", zk.FlagEphemeral)
		eventually(t, "temp discovered", func() (bool, string) {
			r := query(t, d.dns, "temp.local", dns.TypeA, false)
			return len(r.Answer) == 1, r.String()
		})
		if err := conn.Delete(base+"/found/temp/t1", -1); err != nil {
			t.Fatal(err)
		}
		if err := conn.Delete(base+"/found/temp", -1); err != nil {
			t.Fatal(err)
		}
		eventually(t, "temp NXDOMAIN", func() (bool, string) {
			r := query(t, d.dns, "temp.local", dns.TypeA, false)
			return r.Rcode == dns.RcodeNameError, r.String()
		})
	})
}

// TestServeBeforeSync: with ZooKeeper unreachable the daemon still binds
// DNS, answers the apex, and SERVFAILs names in the zone so that a
// resolver moves on to its next server.
func TestServeBeforeSync(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := dead.Addr().String()
	dead.Close() // nothing listens there now
	d := startDaemon(t, addr, `
[zookeeper]
servers = ["%ZK%"]
[dns]
listen = ["127.0.0.1:0"]
[admin]
listen = ""
[[service]]
name = "payments"
path = "/payments"
`)
	cases := []struct {
		name  string
		qname string
		qtype uint16
		rcode int
		// ede is the start of the Extended DNS Error line dig prints;
		// "": none.
		ede string
	}{
		{"service", "payments.local", dns.TypeSRV, dns.RcodeServerFailure, "; EDE: 14 (Not Ready): (zkdns has not finished"},
		{"unknown", "nosuch.local", dns.TypeA, dns.RcodeServerFailure, "; EDE: 14 (Not Ready)"},
		{"apex SOA", "local", dns.TypeSOA, dns.RcodeSuccess, ""},
		{"apex NS", "local", dns.TypeNS, dns.RcodeSuccess, ""},
		{"outside", "example.org", dns.TypeA, dns.RcodeRefused, "; EDE: 20 (Not Authoritative)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if r := query(t, d.dns, tc.qname, tc.qtype, false); r.Rcode != tc.rcode {
				t.Errorf("rcode = %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			// dig asks with EDNS, and shows the reason for a failure.
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			out, err := testutil.Dig(ctx, d.dns, tc.qname, dns.TypeToString[tc.qtype])
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "status: "+dns.RcodeToString[tc.rcode]) {
				t.Errorf("dig shows no status %s:\n%s", dns.RcodeToString[tc.rcode], out)
			}
			if has := strings.Contains(out, "; EDE:"); tc.ede == "" && has || tc.ede != "" && !strings.Contains(out, tc.ede) {
				t.Errorf("dig output, want EDE line %q (none when empty):\n%s", tc.ede, out)
			}
		})
	}
}

// TestServeSurvivesSessionExpiry cuts zkdns off from a running ZooKeeper
// past its session timeout (so the server expires the session) while an
// instance leaves and another joins: answers continue unchanged the whole
// time and converge to ZooKeeper's state after the new session's resync,
// with no empty or failed answer in between.
func TestServeSurvivesSessionExpiry(t *testing.T) {
	proxy := testutil.ProxyTo(t, zkServer.Addr())
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn)
	testutil.MkdirAll(t, conn, base+"/svc")
	if _, err := conn.Create(base+"/svc/stays", []byte("192.0.2.1:80"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	holder := hold(t, zkServer.Addr(), base+"/svc/goes=192.0.2.2:80")

	d := startDaemon(t, proxy.Addr(), `
[zookeeper]
servers = ["%ZK%"]
session_timeout = "1s"
[dns]
listen = ["127.0.0.1:0"]
[admin]
listen = ""
[[service]]
name = "svc"
path = "`+base+`/svc"
format = "hostport"
`)
	both := "svc.local.\t0\tIN\tA\t192.0.2.1\nsvc.local.\t0\tIN\tA\t192.0.2.2"
	eventually(t, "both instances", func() (bool, string) {
		r := query(t, d.dns, "svc.local", dns.TypeA, false)
		return answers(r) == both, r.String()
	})
	proxy.Cut()
	if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.CreateZnode(t, conn, base+"/svc/joins", "192.0.2.3:80", zk.FlagEphemeral)
	for i := range 15 { // 3 s: well past the 1 s sessions
		if got := answers(query(t, d.dns, "svc.local", dns.TypeA, false)); got != both {
			t.Fatalf("query %d while cut off from ZooKeeper answered:\n%s\nwant the last known set", i, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	proxy.Restore()
	want := "svc.local.\t0\tIN\tA\t192.0.2.1\nsvc.local.\t0\tIN\tA\t192.0.2.3"
	deadline := time.Now().Add(waitLimit)
	for {
		r := query(t, d.dns, "svc.local", dns.TypeA, false)
		got := answers(r)
		if got == want {
			break
		}
		if got != both {
			t.Fatalf("answer during the resync was neither the old nor the new set:\n%s", r)
		}
		if time.Now().After(deadline) {
			t.Fatalf("did not converge after the session expired; last answer:\n%s\nlogs:\n%s", got, d.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(d.logText(), "session expired") {
		t.Errorf("logs do not show the session expiry:\n%s", d.logText())
	}
}

func TestCheckAndVersion(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(good, []byte("[zookeeper]\nservers = [\"127.0.0.1:2181\"]\n[[service]]\nname = \"payments\"\npath = \"/services/payments\"\n"), 0o644)
	os.WriteFile(bad, []byte("[zookeeper]\nservers = [\"127.0.0.1:2181\"]\n[[service]]\nname = \"Pay_ments\"\npath = \"/services/payments\"\nbogus = 1\n"), 0o644)
	creds := filepath.Join(dir, "zk.auth")
	os.WriteFile(creds, []byte("zkdns:secret\n"), 0o644)
	openCreds := filepath.Join(dir, "open-creds.toml")
	os.WriteFile(openCreds, []byte("[zookeeper]\nservers = [\"127.0.0.1:2181\"]\n[zookeeper.auth]\nscheme = \"digest\"\ncredentials_file = \""+creds+"\"\n"+
		"[[service]]\nname = \"payments\"\npath = \"/services/payments\"\n"), 0o644)
	clash := filepath.Join(dir, "clash.toml")
	os.WriteFile(clash, []byte("[zookeeper]\nservers = [\"127.0.0.1:2181\"]\n[dns]\nlisten = [\"127.0.0.1:18773\"]\n[admin]\nlisten = \"127.0.0.1:18773\"\n"+
		"[[service]]\nname = \"payments\"\npath = \"/services/payments\"\n"), 0o644)
	// The good config cut off before its [[service]], as a save caught
	// half written.
	half := filepath.Join(dir, "half.toml")
	os.WriteFile(half, []byte("[zookeeper]\nservers = [\"127.0.0.1:2181\"]\n[dns]\nlisten = [\"127.0.0.1:0\"]\n"), 0o644)
	cases := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"good config", []string{"check", "-config", good}, 0, []string{"ok"}},
		{"config that watches nothing", []string{"check", "-config", half}, 1, []string{"half.toml: nothing to watch: add a [[service]] or [[discover]]"}},
		{"serve on a config that watches nothing", []string{"serve", "-config", half}, 1, []string{"half.toml: nothing to watch"}},
		{"admin on a DNS address", []string{"check", "-config", clash}, 1, []string{"clash.toml:6: admin.listen", "dns.listen[0]"}},
		{"bad config", []string{"check", "-config", bad}, 1, []string{"bad.toml:4:", "bad.toml:6:", "bogus"}},
		{"missing file", []string{"check", "-config", filepath.Join(dir, "nope.toml")}, 1, []string{"nope.toml"}},
		{"credentials readable by others", []string{"check", "-config", openCreds}, 1, []string{"open-creds.toml:5: zookeeper.auth.credentials_file", "chmod 600"}},
		{"example config", []string{"check", "-config", "../../deploy/zkdns.example.toml"}, 0, []string{"ok"}},
		{"version", []string{"version"}, 0, []string{"zkdns "}},
		{"unknown command", []string{"frobnicate"}, 2, []string{"unknown command"}},
		{"stray argument", []string{"check", "x"}, 2, []string{"unexpected argument"}},
		{"no command", nil, 2, []string{"usage"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runZkdns(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; output:\n%s", code, tc.code, out)
			}
			for _, s := range tc.contains {
				if !strings.Contains(string(out), s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
		})
	}
}
