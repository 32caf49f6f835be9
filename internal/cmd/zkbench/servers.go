package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// zone is the DNS zone every server under test serves.
const zone = "local."

// dnsServer is one server under test, running.
type dnsServer struct {
	name   string // as the tables show it: zkdns, Knot, NSD, CoreDNS
	addr   string // 127.0.0.1:port, UDP and TCP
	admin  string // zkdns's admin address; "" for the peers
	proc   *process
	config string // path of its config file, for the report
	// notify is the NOTIFY_SOCKET zkdns reports READY=1 to; nil for the
	// peers.
	notify *net.UnixConn
}

func (s *dnsServer) stop() {
	if s == nil {
		return
	}
	if s.proc != nil {
		s.proc.stop()
	}
	s.closeNotify()
}

// closeNotify closes and removes zkdns's NOTIFY_SOCKET, once it has said
// it is ready. zkdns goes on sending STATUS lines, one per change of its
// instance count at most every 2 s, and a socket left unread would fill
// up after ten of them and block zkdns's main loop on the next; with the
// socket gone, each send fails at once and zkdns ignores it, as it would
// without systemd.
func (s *dnsServer) closeNotify() {
	if s.notify == nil {
		return
	}
	path := s.notify.LocalAddr().String()
	s.notify.Close()
	os.Remove(path)
	s.notify = nil
}

// zkdnsSettings is what a bench run of zkdns is configured with.
type zkdnsSettings struct {
	zookeeper      string // host:port
	sessionTimeout time.Duration
	dnsAddr        string
	adminAddr      string
	discoverRoot   string
}

// zkdnsConfig renders zkdns's TOML config: every child of the discover
// root is a service of Curator instances, warm-up off, logging quiet.
func zkdnsConfig(s zkdnsSettings) string {
	return fmt.Sprintf(`# written by zkbench
[zookeeper]
servers = [%q]
session_timeout = %q

[dns]
listen = [%q]
zone = %q
ttl = "%ds"
negative_ttl = "%ds"

[admin]
listen = %q
pprof = true

[log]
level = "warn"

[[discover]]
path = %q
format = "curator"
`, s.zookeeper, s.sessionTimeout.String(), s.dnsAddr, zone, zoneTTL, zoneNegativeTTL, s.adminAddr, s.discoverRoot)
}

// knotConfig renders a knotd config serving zoneFile on port with one
// worker of each kind: the server is pinned to one core, where more
// workers would only take turns.
func knotConfig(dir string, port int, zoneFile string) string {
	return fmt.Sprintf(`# written by zkbench
server:
    listen: 127.0.0.1@%d
    rundir: %s
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

database:
    storage: %s

log:
  - target: stderr
    any: warning

zone:
  - domain: %s
    file: %s
    zonefile-sync: -1
    journal-content: none
`, port, dir, filepath.Join(dir, "db"), zone, zoneFile)
}

// nsdConfig renders an nsd.conf serving zoneFile on port with one server
// process and response rate limiting off (Debian's NSD limits to 200 q/s
// per source otherwise, which a benchmark from one address trips at once).
func nsdConfig(dir string, port int, zoneFile string) string {
	return fmt.Sprintf(`# written by zkbench
server:
    ip-address: 127.0.0.1@%d
    server-count: 1
    username: ""
    chroot: ""
    database: ""
    zonesdir: %q
    zonelistfile: %q
    xfrdfile: %q
    xfrdir: %q
    pidfile: %q
    logfile: %q
    verbosity: 0
    hide-version: yes
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0

remote-control:
    control-enable: no

zone:
    name: %q
    zonefile: %q
`, port, dir, filepath.Join(dir, "zone.list"), filepath.Join(dir, "xfrd.state"), dir,
		filepath.Join(dir, "nsd.pid"), filepath.Join(dir, "nsd.log"), zone, zoneFile)
}

// corefile renders a Corefile serving zoneFile with the file plugin on
// port, bound to loopback, with no logging plugin.
func corefile(port int, zoneFile string) string {
	return fmt.Sprintf(`# written by zkbench
%s:%d {
    bind 127.0.0.1
    file %s %s
}
`, zone, port, zoneFile, zone)
}

// peerKind is a peer server the bench knows how to configure.
type peerKind struct {
	name   string
	config string // file name of its config
	render func(dir string, port int, zoneFile string) string
	argv   func(binary, configPath string) []string
}

// peerKinds lists the peers in the order the tables show them.
func peerKinds() []peerKind {
	return []peerKind{
		{
			name: "Knot", config: "knot.conf", render: knotConfig,
			argv: func(bin, conf string) []string { return []string{bin, "-c", conf} },
		},
		{
			name: "NSD", config: "nsd.conf", render: nsdConfig,
			argv: func(bin, conf string) []string { return []string{bin, "-d", "-c", conf} },
		},
		{
			name: "CoreDNS", config: "Corefile",
			render: func(_ string, port int, zoneFile string) string { return corefile(port, zoneFile) },
			argv:   func(bin, conf string) []string { return []string{bin, "-quiet", "-conf", conf} },
		},
	}
}

// startPeer writes the peer's config into dir, starts it pinned to core
// and waits until it answers probe with want answers. Like launchZkdns, it
// starts a peer that exits because its port was taken again on another,
// up to three times; each attempt starts a fresh log, so that what the
// peer said is its own.
func startPeer(ctx context.Context, kind peerKind, binary, dir, zoneFile string, core int, probe string, want int) (*dnsServer, error) {
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o755); err != nil {
		return nil, fmt.Errorf("zkbench: %s directory: %w", kind.name, err)
	}
	logPath := filepath.Join(dir, "server.log")
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		confPath := filepath.Join(dir, kind.config)
		if err := os.WriteFile(confPath, []byte(kind.render(dir, port, zoneFile)), 0o644); err != nil {
			return nil, fmt.Errorf("zkbench: %s config: %w", kind.name, err)
		}
		if err := freshLog(logPath); err != nil {
			return nil, err
		}
		proc, err := startProcess(kind.name, core, logPath, nil, kind.argv(binary, confPath)...)
		if err != nil {
			return nil, err
		}
		s := &dnsServer{name: kind.name, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), proc: proc, config: confPath}
		err = waitAnswers(ctx, s, probe, dns.TypeSRV, want, 60*time.Second)
		if err == nil {
			return s, nil
		}
		taken := addressTaken(proc)
		s.stop()
		if attempt == 3 || !taken {
			return nil, err
		}
	}
}

// freshLog removes path, a server's log from an earlier attempt to start
// it, so that what the next attempt logs is its own.
func freshLog(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("zkbench: %w", err)
	}
	return nil
}

// addressTaken reports whether p has exited because an address it was to
// listen on was taken. Servers word it in their own ways ("Address
// already in use", "address already in use"), and not always last, so
// the whole tail of p's log is searched: it must hold p's attempt alone
// (see freshLog).
func addressTaken(p *process) bool {
	exited, _ := p.exited()
	return exited && strings.Contains(strings.ToLower(p.logTail()), syscall.EADDRINUSE.Error())
}

// zkdnsLog is the name of zkdns's log in the directory it runs in.
const zkdnsLog = "zkdns.log"

// startZkdns writes a config into dir and starts zkdns pinned to core (or
// unpinned for core < 0). It returns at once: callers wait for readiness
// themselves, since how long that takes is what some targets measure.
func startZkdns(binary, dir string, core int, set zkdnsSettings) (*dnsServer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("zkbench: zkdns directory: %w", err)
	}
	confPath := filepath.Join(dir, "zkdns.toml")
	if err := os.WriteFile(confPath, []byte(zkdnsConfig(set)), 0o644); err != nil {
		return nil, fmt.Errorf("zkbench: zkdns config: %w", err)
	}
	// zkdns tells a NOTIFY_SOCKET when it is ready, as it tells systemd:
	// the bench learns it then, without polling /readyz and taking the
	// CPU from the very sync it times.
	sockPath := filepath.Join(dir, "notify.sock")
	_ = os.Remove(sockPath) // left by a run that was killed
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("zkbench: zkdns notify socket: %w", err)
	}
	proc, err := startProcess("zkdns", core, filepath.Join(dir, zkdnsLog), []string{"NOTIFY_SOCKET=" + sockPath}, binary, "serve", "-config", confPath)
	if err != nil {
		notify.Close()
		os.Remove(sockPath)
		return nil, err
	}
	return &dnsServer{name: "zkdns", addr: set.dnsAddr, admin: set.adminAddr, proc: proc, config: confPath, notify: notify}, nil
}

// zkdnsAddrs picks free DNS and admin addresses for a zkdns run.
func zkdnsAddrs() (dnsAddr, adminAddr string, err error) {
	p1, err := freePort()
	if err != nil {
		return "", "", err
	}
	p2, err := freePort()
	if err != nil {
		return "", "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p1)), net.JoinHostPort("127.0.0.1", strconv.Itoa(p2)), nil
}

// launchZkdns starts zkdns (see startZkdns) on addresses picked free,
// which it fills in set, and waits up to limit until it is ready. A port
// can be taken between being picked and zkdns binding it: the bench's own
// outgoing connections and sockets (to ZooKeeper, to admin APIs, dnsperf's)
// draw their local ports from the same range. So a zkdns that exits
// because an address is in use is started again on new ones, with a fresh
// log, up to three times; launched is when the one returned was started,
// and ready when it reported READY=1.
func launchZkdns(ctx context.Context, binary, dir string, core int, set zkdnsSettings, limit time.Duration) (z *dnsServer, launched, ready time.Time, err error) {
	for attempt := 1; ; attempt++ {
		if set.dnsAddr, set.adminAddr, err = zkdnsAddrs(); err != nil {
			return nil, time.Time{}, time.Time{}, err
		}
		if err := freshLog(filepath.Join(dir, zkdnsLog)); err != nil {
			return nil, time.Time{}, time.Time{}, err
		}
		launched = time.Now()
		if z, err = startZkdns(binary, dir, core, set); err != nil {
			return nil, time.Time{}, time.Time{}, err
		}
		if ready, err = waitReady(ctx, z, limit); err == nil {
			return z, launched, ready, nil
		}
		taken := addressTaken(z.proc)
		z.stop()
		if attempt == 3 || !taken {
			return nil, time.Time{}, time.Time{}, err
		}
	}
}

// waitReady waits until zkdns reports READY=1 on its NOTIFY_SOCKET and
// returns when that came, with the socket closed (see closeNotify);
// /readyz must then answer 200 too. zkdns sends READY=1 as its first full
// sync is served, the moment /readyz turns 200.
func waitReady(ctx context.Context, s *dnsServer, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	buf := make([]byte, 4096)
	for {
		if exited, how := s.proc.exited(); exited {
			return time.Time{}, fmt.Errorf("zkbench: zkdns exited before it was ready (%s):\n%s", how, s.proc.logTail())
		}
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("zkbench: zkdns not ready within %s:\n%s", limit, s.proc.logTail())
		}
		// Short reads, so that an exit or the end of ctx is noticed.
		if err := s.notify.SetReadDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
			return time.Time{}, err
		}
		n, err := s.notify.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return time.Time{}, fmt.Errorf("zkbench: read zkdns's notify socket: %w", err)
		}
		if !slices.Contains(strings.Split(string(buf[:n]), "\n"), "READY=1") {
			continue // STATUS= lines
		}
		ready := time.Now()
		s.closeNotify()
		if err := readyzOK(ctx, s.admin); err != nil {
			return time.Time{}, err
		}
		return ready, nil
	}
}

// readyzOK asks zkdns's /readyz once and wants 200.
func readyzOK(ctx context.Context, admin string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := getOK(ctx, "http://"+admin+"/readyz")
	if err != nil {
		return fmt.Errorf("zkbench: zkdns reported READY=1, but /readyz: %w", err)
	}
	resp.Body.Close()
	return nil
}

// waitAnswers queries name until the server answers it with want records.
func waitAnswers(ctx context.Context, s *dnsServer, name string, qtype uint16, want int, limit time.Duration) error {
	c, err := dialDNS(s.addr)
	if err != nil {
		return err
	}
	defer c.close()
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		if exited, how := s.proc.exited(); exited {
			return fmt.Errorf("zkbench: %s exited (%s):\n%s", s.name, how, s.proc.logTail())
		}
		r, err := c.exchange(question(name, qtype), 200*time.Millisecond)
		switch {
		case err != nil:
			last = err.Error()
		case r.Rcode == dns.RcodeSuccess && len(r.Answer) == want:
			return nil
		default:
			last = fmt.Sprintf("%s with %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("zkbench: %s does not answer %s with %d records within %s (last: %s):\n%s",
		s.name, name, want, limit, last, s.proc.logTail())
}

// freePort returns a port of 127.0.0.1 that was free a moment ago for
// both UDP and TCP.
func freePort() (int, error) {
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("zkbench: find a free port: %w", err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		pc.Close()
		if err == nil {
			ln.Close()
			return port, nil
		}
	}
	return 0, errors.New("zkbench: no port free for both UDP and TCP in 20 tries")
}
