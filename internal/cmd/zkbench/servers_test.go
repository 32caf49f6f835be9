package main

import (
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
