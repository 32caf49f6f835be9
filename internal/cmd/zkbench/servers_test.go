package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zkdns/zkdns/conf"
)

func TestZkdnsConfigIsValid(t *testing.T) {
	tests := []struct {
		name string
		set  zkdnsSettings
	}{
		{"throughput", zkdnsSettings{zookeeper: "127.0.0.1:2181", sessionTimeout: 10 * time.Second,
			dnsAddr: "127.0.0.1:18653", adminAddr: "127.0.0.1:18654", discoverRoot: "/bench"}},
		{"cost, through the proxy", zkdnsSettings{zookeeper: "127.0.0.1:40001", sessionTimeout: 1500 * time.Millisecond,
			dnsAddr: "127.0.0.1:5353", adminAddr: "127.0.0.1:5354", discoverRoot: "/cost"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := conf.Parse("zkdns.toml", []byte(zkdnsConfig(tt.set)))
			if err != nil {
				t.Fatalf("zkdns rejects the bench's config: %v\n%s", err, zkdnsConfig(tt.set))
			}
			if len(c.ZooKeeper.Servers) != 1 || c.ZooKeeper.Servers[0] != tt.set.zookeeper {
				t.Errorf("servers = %v, want [%s]", c.ZooKeeper.Servers, tt.set.zookeeper)
			}
			if c.ZooKeeper.SessionTimeout.Duration != tt.set.sessionTimeout {
				t.Errorf("session_timeout = %v, want %v", c.ZooKeeper.SessionTimeout, tt.set.sessionTimeout)
			}
			if len(c.DNS.Listen) != 1 || c.DNS.Listen[0] != tt.set.dnsAddr || c.Admin.Listen != tt.set.adminAddr {
				t.Errorf("listen = %v, admin %s; want %s, %s", c.DNS.Listen, c.Admin.Listen, tt.set.dnsAddr, tt.set.adminAddr)
			}
			if c.DNS.TTL.Duration != zoneTTL*time.Second || c.DNS.NegativeTTL.Duration != zoneNegativeTTL*time.Second {
				t.Errorf("TTLs %v/%v differ from the peers' zone (%ds/%ds)", c.DNS.TTL, c.DNS.NegativeTTL, zoneTTL, zoneNegativeTTL)
			}
			if len(c.Discover) != 1 || c.Discover[0].Path != tt.set.discoverRoot || c.Discover[0].Format != "curator" {
				t.Errorf("discover = %+v, want %s as curator", c.Discover, tt.set.discoverRoot)
			}
		})
	}
}

func TestPeerConfigs(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"Knot listens on loopback with one worker", knotConfig("/w/knot", 4053, "/w/local.zone"),
			[]string{"listen: 127.0.0.1@4053", "udp-workers: 1", "domain: local.", "file: /w/local.zone", "storage: /w/knot/db"}},
		{"NSD has rate limiting off and one server", nsdConfig("/w/nsd", 5053, "/w/local.zone"),
			[]string{"ip-address: 127.0.0.1@5053", "server-count: 1", "rrl-ratelimit: 0", `name: "local."`, `zonefile: "/w/local.zone"`, `pidfile: "/w/nsd/nsd.pid"`}},
		{"CoreDNS serves the file on loopback", corefile(6053, "/w/local.zone"),
			[]string{"local.:6053 {", "bind 127.0.0.1", "file /w/local.zone local."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, w := range tt.want {
				if !strings.Contains(tt.text, w) {
					t.Errorf("config lacks %q:\n%s", w, tt.text)
				}
			}
		})
	}
}

func TestPeerKindsCoverThePeers(t *testing.T) {
	var names []string
	for _, k := range peerKinds() {
		names = append(names, k.name)
		argv := k.argv("/bin/server", "/w/conf")
		if argv[0] != "/bin/server" || !strings.Contains(strings.Join(argv, " "), "/w/conf") {
			t.Errorf("%s argv = %v, want the binary and its config", k.name, argv)
		}
	}
	if got := strings.Join(names, ","); got != "Knot,NSD,CoreDNS" {
		t.Errorf("peers = %s, want Knot,NSD,CoreDNS", got)
	}
}

// TestLaunchZkdnsRetriesTakenPort runs launchZkdns on a stand-in for
// zkdns that exits at once, saying on attempt n what line n of its script
// says. One whose address was taken is started again on new ports, three
// times in all; one that exits for anything else is not, even after an
// earlier attempt said its address was taken.
func TestLaunchZkdnsRetriesTakenPort(t *testing.T) {
	const inUse = "zkdns: daemon: bind admin listener 127.0.0.1:44676: listen tcp 127.0.0.1:44676: bind: address already in use"
	tests := []struct {
		name      string
		says      []string // by attempt
		wantStart int
	}{
		{name: "address in use", says: []string{inUse, inUse, inUse}, wantStart: 3},
		{name: "another error", says: []string{"zkdns: config: no such file or directory"}, wantStart: 1},
		{name: "another error after a retried one", says: []string{inUse, "zkdns: zookeeper: connection refused"}, wantStart: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "says"), []byte(strings.Join(tc.says, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			// Called as zkdns serve -config DIR/zkdns.toml.
			fake := filepath.Join(dir, "zkdns")
			script := `#!/bin/sh
dir=$(dirname "$3")
echo start >> "$dir/starts"
n=$(wc -l < "$dir/starts")
sed -n "${n}p" "$dir/says" >&2
exit 1
`
			if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			z, _, _, err := launchZkdns(ctx, fake, dir, -1, zkdnsSettings{zookeeper: "127.0.0.1:2181", sessionTimeout: time.Second}, 20*time.Second)
			if err == nil {
				z.stop()
				t.Fatal("a zkdns that exits at once was reported ready")
			}
			if !strings.Contains(err.Error(), "exited before it was ready") {
				t.Errorf("launchZkdns = %v, want an exit before ready", err)
			}
			b, err := os.ReadFile(filepath.Join(dir, "starts"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Count(string(b), "\n"); got != tc.wantStart {
				t.Errorf("started %d times, want %d", got, tc.wantStart)
			}
		})
	}
}

// TestStartPeerRetriesTakenPort checks that a peer that exits saying its
// address is in use, in any case and before other lines, is started again
// on another port, three times in all, and that one that exits for
// anything else is not.
func TestStartPeerRetriesTakenPort(t *testing.T) {
	tests := []struct {
		name      string
		says      string
		wantStart int
	}{
		{name: "address in use", says: "error: can't bind udp socket: Address already in use\nerror: server initialization failed", wantStart: 3},
		{name: "another error", says: "error: zone file not found", wantStart: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			starts := filepath.Join(dir, "starts")
			kind := peerKind{
				name:   "fake",
				config: "fake.conf",
				render: func(_ string, port int, _ string) string { return "port " + strconv.Itoa(port) + "\n" },
				argv: func(_, conf string) []string {
					return []string{"sh", "-c", `echo "$1" >> "$2"; printf '%b\n' "$0" >&2; exit 1`, tc.says, conf, starts}
				},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s, err := startPeer(ctx, kind, "fake", dir, "", -1, "svc0."+zone, 1)
			if err == nil {
				s.stop()
				t.Fatal("a peer that exits at once was reported as started")
			}
			b, err := os.ReadFile(starts)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Count(string(b), "\n"); got != tc.wantStart {
				t.Errorf("started %d times, want %d", got, tc.wantStart)
			}
		})
	}
}

// TestWaitReady checks that zkdns counts as ready when READY=1 reaches its
// notify socket, past other sd_notify lines, and only if /readyz agrees;
// and that a zkdns that exits or stays silent is reported as such.
func TestWaitReady(t *testing.T) {
	tests := []struct {
		name    string
		send    []string // datagrams, in order
		readyz  int      // status /readyz answers
		exits   bool     // the process ends at once
		wantErr string   // "" for ready
	}{
		{name: "ready after a status line", send: []string{"STATUS=reading ZooKeeper", "READY=1\nSTATUS=serving"}, readyz: http.StatusOK},
		{name: "ready but /readyz disagrees", send: []string{"READY=1"}, readyz: http.StatusServiceUnavailable, wantErr: "/readyz"},
		{name: "status lines only", send: []string{"STATUS=reading ZooKeeper"}, readyz: http.StatusOK, wantErr: "not ready within"},
		{name: "exits", exits: true, readyz: http.StatusOK, wantErr: "exited before it was ready"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/readyz" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tc.readyz)
			}))
			defer admin.Close()
			sockPath := filepath.Join(dir, "notify.sock")
			notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			argv := []string{"sleep", "30"}
			if tc.exits {
				argv = []string{"true"}
			}
			proc, err := startProcess("zkdns", -1, filepath.Join(dir, "log"), nil, argv...)
			if err != nil {
				t.Fatal(err)
			}
			z := &dnsServer{name: "zkdns", admin: strings.TrimPrefix(admin.URL, "http://"), proc: proc, notify: notify}
			defer z.stop()
			sent := time.Now()
			for _, line := range tc.send {
				c, err := net.Dial("unixgram", sockPath)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.Write([]byte(line)); err != nil {
					t.Fatal(err)
				}
				c.Close()
			}
			ready, err := waitReady(context.Background(), z, time.Second)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("waitReady = %v, want ready", err)
			case tc.wantErr == "" && ready.Before(sent):
				t.Errorf("ready at %v, before READY=1 was sent at %v", ready, sent)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("waitReady = %v, want an error saying %q", err, tc.wantErr)
			}
			if err == nil {
				// Nobody reads the socket after READY=1: zkdns's later
				// STATUS lines must find it gone, not fill it and block.
				if c, err := net.Dial("unixgram", sockPath); err == nil {
					c.Close()
					t.Error("the notify socket still takes datagrams after READY=1")
				}
			}
		})
	}
}
