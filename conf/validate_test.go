package conf

import (
	"net/netip"
	"strings"
	"testing"
)

// TestParseValidation runs every validation rule with values on both sides
// of it. A case with no want must parse; otherwise want is every problem
// Parse reports, exactly, in order.
func TestParseValidation(t *testing.T) {
	long := strings.Repeat("a", 64)
	tests := []struct {
		name string
		src  string
		want []string
	}{
		// zookeeper.servers
		{
			name: "no zookeeper table at all",
			src:  "[dns]\nzone = \"local.\"\n" + watchOne,
			want: []string{`t.toml: zookeeper.servers: required: list at least one ZooKeeper server as host:port, e.g. ["127.0.0.1:2181"]`},
		},
		{
			name: "zookeeper table without servers points at its header",
			src:  "# comment\n[zookeeper]\nroot = \"/zkdns\"\n" + watchOne,
			want: []string{`t.toml:2: zookeeper.servers: required: list at least one ZooKeeper server as host:port, e.g. ["127.0.0.1:2181"]`},
		},
		{
			name: "empty servers",
			src:  "[zookeeper]\nservers = []\n" + watchOne,
			want: []string{`t.toml:2: zookeeper.servers: required: list at least one ZooKeeper server as host:port, e.g. ["127.0.0.1:2181"]`},
		},
		{
			name: "servers as host names, IPs and bare hosts",
			src:  "[zookeeper]\nservers = [\"zk1.example.net:2181\", \"zk2.example.net\", \"192.0.2.11\", \"2001:db8::12\", \"[2001:db8::13]:2182\"]\n" + watchOne,
		},
		{
			name: "server port 0",
			src:  "[zookeeper]\nservers = [\"192.0.2.10:0\"]\n" + watchOne,
			want: []string{`t.toml:2: zookeeper.servers[0] "192.0.2.10:0": port "0" must be a number from 1 to 65535`},
		},
		{
			name: "server port too big",
			src:  "[zookeeper]\nservers = [\"192.0.2.10:65536\"]\n" + watchOne,
			want: []string{`t.toml:2: zookeeper.servers[0] "192.0.2.10:65536": port "65536" must be a number from 1 to 65535`},
		},
		{
			name: "server port 65535",
			src:  "[zookeeper]\nservers = [\"192.0.2.10:65535\"]\n" + watchOne,
		},
		{
			name: "server port not a number",
			src:  "[zookeeper]\nservers = [\"zk1.example.net:zk\"]\n" + watchOne,
			want: []string{`t.toml:2: zookeeper.servers[0] "zk1.example.net:zk": port "zk" must be a number from 1 to 65535`},
		},
		{
			name: "server without host",
			src:  "[zookeeper]\nservers = [\":2181\"]\n" + watchOne,
			want: []string{`t.toml:2: zookeeper.servers[0] ":2181": host "" is neither an IP nor a host name; must be host:port, e.g. "127.0.0.1:2181"`},
		},
		{
			name: "server that is not an address",
			src:  "[zookeeper]\nservers = [\"zk1 zk2:2181\"]\n" + watchOne,
			want: []string{`t.toml:2: zookeeper.servers[0] "zk1 zk2:2181": host "zk1 zk2" is neither an IP nor a host name; must be host:port, e.g. "127.0.0.1:2181"`},
		},
		{
			name: "empty server",
			src:  "[zookeeper]\nservers = [\"  \"]\n" + watchOne,
			want: []string{`t.toml:2: zookeeper.servers[0] "  ": must be host:port, e.g. "127.0.0.1:2181"`},
		},
		{
			name: "duplicate server after normalising, on its own line",
			src:  "[zookeeper]\nservers = [\n  \"zk1.example.net\",\n  \"ZK1.example.net:2181\",\n]\n" + watchOne,
			want: []string{`t.toml:4: zookeeper.servers[1] "ZK1.example.net:2181": already listed as zookeeper.servers[0]; list each server once`},
		},

		// zookeeper.session_timeout
		{
			name: "session timeout at its bounds",
			src:  minimalZK + "session_timeout = \"100ms\"\n" + watchOne,
		},
		{
			name: "session timeout at its upper bound",
			src:  minimalZK + "session_timeout = \"5m\"\n" + watchOne,
		},
		{
			name: "session timeout too short",
			src:  minimalZK + "session_timeout = \"99ms\"\n" + watchOne,
			want: []string{`t.toml:3: zookeeper.session_timeout "99ms": must be from 100ms to 5m`},
		},
		{
			name: "session timeout too long",
			src:  minimalZK + "session_timeout = \"5m1s\"\n" + watchOne,
			want: []string{`t.toml:3: zookeeper.session_timeout "5m1s": must be from 100ms to 5m`},
		},

		// zookeeper.root
		{
			name: "root",
			src:  minimalZK + "root = \"/zkdns/prod\"\n" + watchOne,
		},
		{
			name: "relative root",
			src:  minimalZK + "root = \"zkdns\"\n" + watchOne,
			want: []string{`t.toml:3: zookeeper.root "zkdns": must be empty for no chroot, or an absolute ZooKeeper path like "/zkdns" (it must start with "/")`},
		},
		{
			name: "root with trailing slash",
			src:  minimalZK + "root = \"/zkdns/\"\n" + watchOne,
			want: []string{`t.toml:3: zookeeper.root "/zkdns/": must be empty for no chroot, or an absolute ZooKeeper path like "/zkdns" (it must not end with "/")`},
		},
		{
			name: "root slash alone",
			src:  minimalZK + "root = \"/\"\n" + watchOne,
			want: []string{`t.toml:3: zookeeper.root "/": must be empty for no chroot, or an absolute ZooKeeper path like "/zkdns" (it must not end with "/")`},
		},
		{
			name: "root with empty element",
			src:  minimalZK + "root = \"/a//b\"\n" + watchOne,
			want: []string{`t.toml:3: zookeeper.root "/a//b": must be empty for no chroot, or an absolute ZooKeeper path like "/zkdns" (it has an empty element ("//"))`},
		},
		{
			name: "root with dot element",
			src:  minimalZK + "root = \"/a/./b\"\n" + watchOne,
			want: []string{`t.toml:3: zookeeper.root "/a/./b": must be empty for no chroot, or an absolute ZooKeeper path like "/zkdns" (it has a "." or ".." element)`},
		},
		{
			name: "root with dot-dot element",
			src:  minimalZK + "root = \"/a/..\"\n" + watchOne,
			want: []string{`t.toml:3: zookeeper.root "/a/..": must be empty for no chroot, or an absolute ZooKeeper path like "/zkdns" (it has a "." or ".." element)`},
		},
		{
			name: "root with control character",
			src:  minimalZK + "root = \"/a\\tb\"\n" + watchOne,
			want: []string{`t.toml:3: zookeeper.root "/a\tb": must be empty for no chroot, or an absolute ZooKeeper path like "/zkdns" (it has the character U+0009, which ZooKeeper does not allow)`},
		},

		// zookeeper.auth
		{
			name: "digest auth",
			src:  minimalZK + "[zookeeper.auth]\nscheme = \"digest\"\ncredentials_file = \"/etc/zkdns/zk.auth\"\n" + watchOne,
		},
		{
			name: "auth scheme other than digest",
			src:  minimalZK + "[zookeeper.auth]\nscheme = \"sasl\"\ncredentials_file = \"/etc/zkdns/zk.auth\"\n" + watchOne,
			want: []string{`t.toml:4: zookeeper.auth.scheme "sasl": must be "digest", the only scheme zkdns supports`},
		},
		{
			name: "auth without scheme or credentials points at its header",
			src:  minimalZK + "[zookeeper.auth]\n" + watchOne,
			want: []string{
				`t.toml:3: zookeeper.auth.scheme: required: set scheme = "digest"`,
				`t.toml:3: zookeeper.auth.credentials_file: required: the path of a file holding "user:password"`,
			},
		},
		{
			name: "auth as an inline table",
			src:  minimalZK + "auth = { scheme = \"digest\" }\n" + watchOne,
			want: []string{`t.toml:3: zookeeper.auth.credentials_file: required: the path of a file holding "user:password"`},
		},

		// zookeeper.tls
		{
			name: "tls with a CA only",
			src:  minimalZK + "[zookeeper.tls]\nca_file = \"/etc/zkdns/ca.pem\"\n" + watchOne,
		},
		{
			name: "tls with client certificate",
			src:  minimalZK + "[zookeeper.tls]\nca_file = \"/etc/zkdns/ca.pem\"\ncert_file = \"/etc/zkdns/c.pem\"\nkey_file = \"/etc/zkdns/c.key\"\nserver_name = \"zk.example.net\"\n" + watchOne,
		},
		{
			name: "tls without CA",
			src:  minimalZK + "[zookeeper.tls]\nserver_name = \"zk.example.net\"\n" + watchOne,
			want: []string{`t.toml:3: zookeeper.tls.ca_file: required: the PEM file of the CA that signed the servers' certificates`},
		},
		{
			name: "tls key without certificate",
			src:  minimalZK + "[zookeeper.tls]\nca_file = \"/etc/zkdns/ca.pem\"\nkey_file = \"/etc/zkdns/c.key\"\n" + watchOne,
			want: []string{`t.toml:3: zookeeper.tls.cert_file: required because key_file is set: give the client certificate and its key, or neither`},
		},
		{
			name: "tls certificate without key",
			src:  minimalZK + "[zookeeper.tls]\nca_file = \"/etc/zkdns/ca.pem\"\ncert_file = \"/etc/zkdns/c.pem\"\n" + watchOne,
			want: []string{`t.toml:3: zookeeper.tls.key_file: required because cert_file is set: give the client certificate and its key, or neither`},
		},

		// dns.listen
		{
			name: "listen on IPv4, IPv6 and port 0",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:53\", \"[::1]:53\", \"127.0.0.1:0\"]\n" + watchOne,
		},
		{
			name: "no listen address",
			src:  minimalZK + "[dns]\nlisten = []\n" + watchOne,
			want: []string{`t.toml:4: dns.listen: required: list at least one IP:port to serve DNS on, e.g. ["127.0.0.1:8600"]`},
		},
		{
			name: "listen on a host name",
			src:  minimalZK + "[dns]\nlisten = [\"localhost:53\"]\n" + watchOne,
			want: []string{`t.toml:4: dns.listen[0] "localhost:53": must be IP:port with a literal IP, e.g. "127.0.0.1:8600" or "[::1]:8600", not a host name`},
		},
		{
			name: "listen without IP",
			src:  minimalZK + "[dns]\nlisten = [\":53\"]\n" + watchOne,
			want: []string{`t.toml:4: dns.listen[0] ":53": must be IP:port with a literal IP, e.g. "127.0.0.1:8600" or "[::1]:8600"; for every address use "0.0.0.0:53" or "[::]:53"`},
		},
		{
			name: "listen without port",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1\"]\n" + watchOne,
			want: []string{`t.toml:4: dns.listen[0] "127.0.0.1": must be IP:port with a literal IP, e.g. "127.0.0.1:8600" or "[::1]:8600"`},
		},
		{
			name: "listen port too big",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:65536\"]\n" + watchOne,
			want: []string{`t.toml:4: dns.listen[0] "127.0.0.1:65536": port "65536" must be a number from 0 to 65535 (0 picks a free port)`},
		},
		{
			name: "duplicate listen address written differently",
			src:  minimalZK + "[dns]\nlisten = [\"[::1]:8600\", \"[0:0::1]:8600\"]\n" + watchOne,
			want: []string{`t.toml:4: dns.listen[1] "[0:0::1]:8600": already listed as dns.listen[0]; list each address once`},
		},
		{
			name: "duplicate listen address written IPv4-mapped",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:8600\", \"[::ffff:127.0.0.1]:8600\"]\n" + watchOne,
			want: []string{`t.toml:4: dns.listen[1] "[::ffff:127.0.0.1]:8600": already listed as dns.listen[0]; list each address once`},
		},
		{
			name: "specific listen address beside a wildcard on its port",
			src:  minimalZK + "[dns]\nlisten = [\"0.0.0.0:8600\", \"127.0.0.1:8600\"]\n" + watchOne,
			want: []string{`t.toml:4: dns.listen[1] "127.0.0.1:8600": overlaps dns.listen[0] "0.0.0.0:8600": a wildcard address (0.0.0.0, [::] or no host) takes its port on every address, so zkdns could not bind both; list the wildcard alone, or specific addresses only`},
		},
		{
			name: "wildcard listed after a specific address on its port",
			src:  minimalZK + "[dns]\nlisten = [\"[::1]:8600\", \"[::]:8600\"]\n" + watchOne,
			want: []string{`t.toml:4: dns.listen[1] "[::]:8600": overlaps dns.listen[0] "[::1]:8600": a wildcard address (0.0.0.0, [::] or no host) takes its port on every address, so zkdns could not bind both; list the wildcard alone, or specific addresses only`},
		},
		{
			name: "IPv4 and IPv6 wildcards on one port",
			src:  minimalZK + "[dns]\nlisten = [\"0.0.0.0:8600\", \"[::]:8600\"]\n" + watchOne,
			want: []string{`t.toml:4: dns.listen[1] "[::]:8600": overlaps dns.listen[0] "0.0.0.0:8600": a wildcard address (0.0.0.0, [::] or no host) takes its port on every address, so zkdns could not bind both; list the wildcard alone, or specific addresses only`},
		},
		{
			name: "wildcard and a specific address on other ports",
			src:  minimalZK + "[dns]\nlisten = [\"0.0.0.0:8600\", \"127.0.0.1:8700\", \"0.0.0.0:0\", \"127.0.0.1:0\"]\n" + watchOne,
		},

		// dns.zone
		{
			name: "zone of several labels",
			src:  minimalZK + "[dns]\nzone = \"svc.example.com.\"\n" + watchOne,
		},
		{
			name: "empty zone",
			src:  minimalZK + "[dns]\nzone = \"\"\n" + watchOne,
			want: []string{`t.toml:4: dns.zone: required: the domain zkdns answers for, e.g. "local."`},
		},
		{
			name: "root zone",
			src:  minimalZK + "[dns]\nzone = \".\"\n" + watchOne,
			want: []string{`t.toml:4: dns.zone ".": must not be the root: give the domain zkdns answers for, e.g. "local."`},
		},
		{
			name: "zone with empty label",
			src:  minimalZK + "[dns]\nzone = \"svc..example\"\n" + watchOne,
			want: []string{`t.toml:4: dns.zone "svc..example": must be a domain name like "local." or "svc.example.com." (it has an empty label)`},
		},
		{
			name: "zone with bad label",
			src:  minimalZK + "[dns]\nzone = \"my_zone.\"\n" + watchOne,
			want: []string{`t.toml:4: dns.zone "my_zone.": must be a domain name like "local." or "svc.example.com." (label "my_zone" is not a-z, 0-9 and '-' of at most 63 bytes with no '-' at either end)`},
		},
		{
			name: "zone label too long",
			src:  minimalZK + "[dns]\nzone = \"" + long + ".example.\"\n" + watchOne,
			want: []string{`t.toml:4: dns.zone "` + long + `.example.": must be a domain name like "local." or "svc.example.com." (label "` + long + `" is not a-z, 0-9 and '-' of at most 63 bytes with no '-' at either end)`},
		},

		// dns.ttl, dns.negative_ttl
		{
			name: "TTLs at their bounds",
			src:  minimalZK + "[dns]\nttl = \"24h\"\nnegative_ttl = \"0s\"\n" + watchOne,
		},
		{
			name: "negative TTL",
			src:  minimalZK + "[dns]\nttl = \"-1s\"\n" + watchOne,
			want: []string{`t.toml:4: dns.ttl "-1s": must be from 0s to 24h`},
		},
		{
			name: "a TTL in parts of a second",
			src:  minimalZK + "[dns]\nttl = \"1500ms\"\nnegative_ttl = \"300ms\"\n" + watchOne,
			want: []string{
				`t.toml:4: dns.ttl "1.5s": must be whole seconds (DNS carries TTLs in seconds), like "2s"`,
				`t.toml:5: dns.negative_ttl "300ms": must be whole seconds (DNS carries TTLs in seconds), like "0s"`,
			},
		},
		{
			name: "negative_ttl too long",
			src:  minimalZK + "[dns]\nnegative_ttl = \"24h0m1s\"\n" + watchOne,
			want: []string{`t.toml:4: dns.negative_ttl "24h0m1s": must be from 0s to 24h`},
		},

		// dns.upstreams
		{
			name: "upstreams",
			src:  minimalZK + "[dns]\nupstreams = [\"192.0.2.53\", \"198.51.100.53:5353\", \"[2001:db8::53]\"]\n" + watchOne,
		},
		{
			name: "upstream host name",
			src:  minimalZK + "[dns]\nupstreams = [\"192.0.2.53\",\n  \"resolver.example.net:53\"]\n" + watchOne,
			want: []string{`t.toml:5: dns.upstreams[1] "resolver.example.net:53": must be an IP, or IP:port with a port from 1 to 65535, e.g. "192.0.2.53" or "[2001:db8::53]:53"`},
		},
		{
			name: "upstream port 0",
			src:  minimalZK + "[dns]\nupstreams = [\"192.0.2.53:0\"]\n" + watchOne,
			want: []string{`t.toml:4: dns.upstreams[0] "192.0.2.53:0": must be an IP, or IP:port with a port from 1 to 65535, e.g. "192.0.2.53" or "[2001:db8::53]:53"`},
		},

		// dns.upstreams that are zkdns itself
		{
			name: "upstream equal to a listen address",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:53\", \"[::1]:5353\"]\nupstreams = [\"192.0.2.53\", \"[::1]:5353\"]\n" + watchOne,
			want: []string{`t.toml:5: dns.upstreams[1] "[::1]:5353": is zkdns itself (dns.listen[1]): forwarding to it would loop; list other resolvers`},
		},
		{
			name: "bare upstream IP gets port 53 and so equals the listen address",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:53\"]\nupstreams = [\"127.0.0.1\"]\n" + watchOne,
			want: []string{`t.toml:5: dns.upstreams[0] "127.0.0.1": is zkdns itself (dns.listen[0]): forwarding to it would loop; list other resolvers`},
		},
		{
			name: "loopback upstream on the port of a wildcard listener",
			src:  minimalZK + "[dns]\nlisten = [\"0.0.0.0:53\"]\nupstreams = [\"127.0.0.53:53\"]\n" + watchOne,
			want: []string{`t.toml:5: dns.upstreams[0] "127.0.0.53:53": is zkdns itself (dns.listen[0]): forwarding to it would loop; list other resolvers`},
		},
		{
			name: "IPv6 loopback upstream on the port of an IPv4 wildcard listener",
			src:  minimalZK + "[dns]\nlisten = [\"0.0.0.0:53\"]\nupstreams = [\"[::1]:53\"]\n" + watchOne,
		},
		{
			name: "unspecified upstream on a listen port",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:8600\"]\nupstreams = [\"0.0.0.0:8600\"]\n" + watchOne,
			want: []string{`t.toml:5: dns.upstreams[0] "0.0.0.0:8600": is zkdns itself (dns.listen[0]): forwarding to it would loop; list other resolvers`},
		},
		{
			name: "upstream on this host at another port",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:53\"]\nupstreams = [\"127.0.0.1:5353\", \"127.0.0.53\"]\n" + watchOne,
		},

		// dns.allow
		{
			name: "allow networks and single addresses",
			src:  minimalZK + "[dns]\nallow = [\"127.0.0.0/8\", \"::1/128\", \"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\", \"0.0.0.0/0\"]\n" + watchOne,
		},
		{
			name: "empty allow",
			src:  minimalZK + "[dns]\nallow = []\n" + watchOne,
			want: []string{`t.toml:4: dns.allow "[]": must list at least one network, e.g. ["127.0.0.0/8", "::1/128"]; remove the key for the default (every source when listening on loopback only, else loopback only)`},
		},
		{
			name: "allow entries that are not networks",
			src:  minimalZK + "[dns]\nallow = [\"10.0.0.0/33\",\n  \"localhost\",\n  \"fe80::1%eth0\",\n  \"192.0.2.0/\",\n  \"\"]\n" + watchOne,
			want: []string{
				`t.toml:4: dns.allow[0] "10.0.0.0/33": must be a network in CIDR form or a single IP, e.g. "10.0.0.0/8", "2001:db8::/32" or "192.0.2.7"`,
				`t.toml:5: dns.allow[1] "localhost": must be a network in CIDR form or a single IP, e.g. "10.0.0.0/8", "2001:db8::/32" or "192.0.2.7"`,
				`t.toml:6: dns.allow[2] "fe80::1%eth0": must be a network in CIDR form or a single IP, e.g. "10.0.0.0/8", "2001:db8::/32" or "192.0.2.7"`,
				`t.toml:7: dns.allow[3] "192.0.2.0/": must be a network in CIDR form or a single IP, e.g. "10.0.0.0/8", "2001:db8::/32" or "192.0.2.7"`,
				`t.toml:8: dns.allow[4] "": must be a network in CIDR form or a single IP, e.g. "10.0.0.0/8", "2001:db8::/32" or "192.0.2.7"`,
			},
		},
		{
			name: "allow lists one network twice once masked",
			src:  minimalZK + "[dns]\nallow = [\"198.51.100.0/24\", \"198.51.100.9/24\"]\n" + watchOne,
			want: []string{`t.toml:4: dns.allow[1] "198.51.100.9/24": already listed as dns.allow[0]; list each network once`},
		},
		{
			name: "allow as a string",
			src:  minimalZK + "[dns]\nallow = \"10.0.0.0/8\"\n" + watchOne,
			want: []string{`t.toml:4: dns.allow: must be an array of strings, not a string: write ["10.0.0.0/8"]`},
		},

		// admin.listen
		{
			name: "admin off",
			src:  minimalZK + "[admin]\nlisten = \"\"\n" + watchOne,
		},
		{
			name: "admin on every address",
			src:  minimalZK + "[admin]\nlisten = \":8601\"\n" + watchOne,
		},
		{
			name: "admin on a host name",
			src:  minimalZK + "[admin]\nlisten = \"localhost:8601\"\n" + watchOne,
		},
		{
			name: "admin without port",
			src:  minimalZK + "[admin]\nlisten = \"127.0.0.1\"\n" + watchOne,
			want: []string{`t.toml:4: admin.listen "127.0.0.1": must be host:port, e.g. "127.0.0.1:8601", or "" to turn the admin endpoint off`},
		},
		{
			name: "admin port too big",
			src:  minimalZK + "[admin]\nlisten = \"127.0.0.1:65536\"\n" + watchOne,
			want: []string{`t.toml:4: admin.listen "127.0.0.1:65536": must be host:port, e.g. "127.0.0.1:8601", or "" to turn the admin endpoint off`},
		},

		// admin.listen beside dns.listen
		{
			name: "admin on a DNS address",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:8600\", \"127.0.0.1:18773\"]\n[admin]\nlisten = \"127.0.0.1:18773\"\n" + watchOne,
			want: []string{`t.toml:6: admin.listen "127.0.0.1:18773": is also dns.listen[1], where zkdns serves DNS over UDP and TCP; give the admin API a port of its own`},
		},
		{
			name: "admin on every address at a DNS port",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:8600\"]\n[admin]\nlisten = \":8600\"\n" + watchOne,
			want: []string{`t.toml:6: admin.listen ":8600": overlaps dns.listen[0]: a wildcard address (0.0.0.0, [::] or no host) takes its port on every address, so zkdns could not bind both; give the admin API a port of its own`},
		},
		{
			name: "admin on a DNS wildcard's port",
			src:  minimalZK + "[dns]\nlisten = [\"[::1]:8600\", \"[::]:8601\"]\n[admin]\nlisten = \"127.0.0.1:8601\"\n" + watchOne,
			want: []string{`t.toml:6: admin.listen "127.0.0.1:8601": overlaps dns.listen[1]: a wildcard address (0.0.0.0, [::] or no host) takes its port on every address, so zkdns could not bind both; give the admin API a port of its own`},
		},
		{
			name: "admin on 0.0.0.0 at an IPv6 DNS port",
			src:  minimalZK + "[dns]\nlisten = [\"[::1]:8600\"]\n[admin]\nlisten = \"0.0.0.0:8600\"\n" + watchOne,
			want: []string{`t.toml:6: admin.listen "0.0.0.0:8600": overlaps dns.listen[0]: a wildcard address (0.0.0.0, [::] or no host) takes its port on every address, so zkdns could not bind both; give the admin API a port of its own`},
		},
		{
			name: "admin host name at a DNS wildcard's port",
			src:  minimalZK + "[dns]\nlisten = [\"0.0.0.0:8601\"]\n[admin]\nlisten = \"localhost:8601\"\n" + watchOne,
			want: []string{`t.toml:6: admin.listen "localhost:8601": overlaps dns.listen[0]: a wildcard address (0.0.0.0, [::] or no host) takes its port on every address, so zkdns could not bind both; give the admin API a port of its own`},
		},
		{
			name: "default admin address as a DNS address points at the DNS address",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:8601\"]\n" + watchOne,
			want: []string{`t.toml:4: dns.listen[0] "127.0.0.1:8601": is also admin.listen ("127.0.0.1:8601" by default), the admin API's address; set [admin] listen to a port of its own, or "" to turn the admin API off`},
		},
		{
			name: "DNS wildcard on the default admin port, with [admin] written",
			src:  minimalZK + "[dns]\nlisten = [\"[::]:8601\"]\n[admin]\npprof = true\n" + watchOne,
			want: []string{`t.toml:5: admin.listen "127.0.0.1:8601": overlaps dns.listen[0]: a wildcard address (0.0.0.0, [::] or no host) takes its port on every address, so zkdns could not bind both; give the admin API a port of its own`},
		},
		{
			name: "DNS wildcard on the default admin port",
			src:  minimalZK + "[dns]\nlisten = [\"0.0.0.0:8601\"]\n" + watchOne,
			want: []string{`t.toml:4: dns.listen[0] "0.0.0.0:8601": overlaps admin.listen ("127.0.0.1:8601" by default): a wildcard address (0.0.0.0, [::] or no host) takes its port on every address, so zkdns could not bind both; set [admin] listen to a port of its own, or "" to turn the admin API off`},
		},
		{
			name: "admin beside DNS: other addresses on one port, one address on other ports, free ports",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:8600\", \"[::1]:8601\", \"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.2:8600\"\n" + watchOne,
		},
		{
			name: "admin on port 0 of a DNS address on port 0",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n" + watchOne,
		},
		{
			name: "admin host name at a specific DNS address's port is resolved only when bound",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:8601\"]\n[admin]\nlisten = \"localhost:8601\"\n" + watchOne,
		},

		// log
		{
			name: "log levels and formats",
			src:  minimalZK + "[log]\nlevel = \"warn\"\nformat = \"json\"\n" + watchOne,
		},
		{
			name: "unknown log level and format",
			src:  minimalZK + "[log]\nlevel = \"verbose\"\nformat = \"logfmt\"\n" + watchOne,
			want: []string{
				`t.toml:4: log.level "verbose": must be one of debug, info, warn, error`,
				`t.toml:5: log.format "logfmt": must be text or json`,
			},
		},

		// service
		{
			name: "no services and no discovers",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:8600\"]\n",
			want: []string{`t.toml: nothing to watch: add a [[service]] or [[discover]] table; zkdns refuses a config that would serve no names, as a file read half written would be`},
		},
		{
			name: "empty service and discover arrays",
			src:  "service = []\ndiscover = []\n" + minimalZK,
			want: []string{`t.toml: nothing to watch: add a [[service]] or [[discover]] table; zkdns refuses a config that would serve no names, as a file read half written would be`},
		},
		{
			name: "discovers only",
			src:  minimalZK + "[[discover]]\npath = \"/services\"\n",
		},
		{
			name: "service of each format",
			src: minimalZK + `
[[service]]
name = "a"
path = "/a"
[[service]]
name = "b"
path = "/b"
format = "curator"
endpoint = "ssl"
[[service]]
name = "c"
path = "/c"
format = "serverset"
endpoint = "http"
[[service]]
name = "d"
path = "/d"
format = "nerve"
[[service]]
name = "e"
path = "/dubbo/com.example.E/providers"
format = "dubbo"
[[service]]
name = "f-1"
path = "/f"
format = "hostport"
warmup = "24h"
[[service]]
name = "` + long[:63] + `"
path = "/g"
format = "auto"
endpoint = "admin"
`,
		},
		{
			name: "service without name or path points at its header",
			src:  minimalZK + "[[service]]\nformat = \"auto\"\n",
			want: []string{
				`t.toml:3: service[0].name: required: the DNS label to serve the service under, e.g. "payments"`,
				`t.toml:3: service[0].path: required: the ZooKeeper path whose children are the instances, e.g. "/services/payments"`,
			},
		},
		{
			name: "service names that are not labels",
			src: minimalZK + `[[service]]
name = "search"
path = "/search"
[[service]]
name = "Pay_ments"
path = "/payments"
[[service]]
name = "Orders"
path = "/orders"
[[service]]
name = "-edge"
path = "/edge"
[[service]]
name = "` + long + `"
path = "/long"
`,
			want: []string{
				`t.toml:7: service[1].name "Pay_ments": must be a DNS label (a-z, 0-9, '-', at most 63 bytes, no '-' at either end): try "pay-ments"`,
				`t.toml:10: service[2].name "Orders": must be a DNS label (a-z, 0-9, '-', at most 63 bytes, no '-' at either end): try "orders"`,
				`t.toml:13: service[3].name "-edge": must be a DNS label (a-z, 0-9, '-', at most 63 bytes, no '-' at either end)`,
				`t.toml:16: service[4].name "` + long + `": must be a DNS label (a-z, 0-9, '-', at most 63 bytes, no '-' at either end)`,
			},
		},
		{
			name: "services sharing a name or a path",
			src: minimalZK + `[[service]]
name = "payments"
path = "/services/payments"
[[service]]
name = "payments"
path = "/services/payments-v2"
[[service]]
name = "billing"
path = "/services/payments"
`,
			want: []string{
				`t.toml:7: service[1].name "payments": already the name of service[0]; names must be unique`,
				`t.toml:11: service[2].path "/services/payments": already the path of service[0]; two services cannot watch one path`,
			},
		},
		{
			name: "service paths that are not absolute",
			src: minimalZK + `[[service]]
name = "a"
path = "services/a"
[[service]]
name = "b"
path = "/services/b/"
`,
			want: []string{
				`t.toml:5: service[0].path "services/a": must be an absolute ZooKeeper path like "/services/payments" (it must start with "/")`,
				`t.toml:8: service[1].path "/services/b/": must be an absolute ZooKeeper path like "/services/payments" (it must not end with "/")`,
			},
		},
		{
			name: "service format, endpoint and warmup",
			src: minimalZK + `[[service]]
name = "a"
path = "/a"
format = "zk"
[[service]]
name = "b"
path = "/b"
format = "curator"
endpoint = "https"
[[service]]
name = "c"
path = "/c"
format = "hostport"
endpoint = "http"
warmup = "-1s"
[[service]]
name = "d"
path = "/d"
format = "nerve"
endpoint = "http"
warmup = "24h1s"
`,
			want: []string{
				`t.toml:6: service[0].format "zk": must be one of auto, curator, serverset, nerve, dubbo, hostport`,
				`t.toml:11: service[1].endpoint "https": must be "" or "ssl" for format curator (ssl serves sslPort instead of port)`,
				`t.toml:16: service[2].endpoint "http": is only used by formats auto, curator and serverset: remove it for format hostport`,
				`t.toml:17: service[2].warmup "-1s": must be from 0s to 24h`,
				`t.toml:22: service[3].endpoint "http": is only used by formats auto, curator and serverset: remove it for format nerve`,
				`t.toml:23: service[3].warmup "24h0m1s": must be from 0s to 24h`,
			},
		},
		{
			name: "dubbo service with endpoint",
			src:  minimalZK + "[[service]]\nname = \"a\"\npath = \"/a\"\nformat = \"dubbo\"\nendpoint = \"x\"\n",
			want: []string{`t.toml:7: service[0].endpoint "x": is only used by formats auto, curator and serverset: remove it for format dubbo`},
		},

		// discover
		{
			name: "discovers",
			src:  minimalZK + "[[discover]]\npath = \"/services\"\n[[discover]]\npath = \"/spring\"\nformat = \"curator\"\nendpoint = \"ssl\"\nwarmup = \"1m\"\n",
		},
		{
			name: "discover without path",
			src:  minimalZK + "[[discover]]\nformat = \"curator\"\n",
			want: []string{`t.toml:3: discover[0].path: required: the ZooKeeper path whose children are services, e.g. "/services"`},
		},
		{
			name: "discover relative and duplicate paths",
			src:  minimalZK + "[[discover]]\npath = \"services\"\n[[discover]]\npath = \"/services\"\n[[discover]]\npath = \"/services\"\n",
			want: []string{
				`t.toml:4: discover[0].path "services": must be an absolute ZooKeeper path like "/services" (it must start with "/")`,
				`t.toml:8: discover[2].path "/services": already the path of discover[1]; list each path once`,
			},
		},
		{
			name: "discover path that a service watches",
			src:  minimalZK + "[[service]]\nname = \"payments\"\npath = \"/services/payments\"\n[[discover]]\npath = \"/services/payments\"\n[[discover]]\npath = \"/services\"\n",
			want: []string{
				`t.toml:7: discover[0].path "/services/payments": already the path of service[0]; its children are that service's instances, so it cannot hold services too`,
			},
		},
		{
			name: "discover format, endpoint and warmup",
			src:  minimalZK + "[[discover]]\npath = \"/a\"\nformat = \"eureka\"\n[[discover]]\npath = \"/b\"\nformat = \"hostport\"\nendpoint = \"http\"\nwarmup = \"25h\"\n",
			want: []string{
				`t.toml:5: discover[0].format "eureka": must be one of auto, curator, serverset, nerve, dubbo, hostport`,
				`t.toml:9: discover[1].endpoint "http": is only used by formats auto, curator and serverset: remove it for format hostport`,
				`t.toml:10: discover[1].warmup "25h0m0s": must be from 0s to 24h`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.toml", []byte(tt.src))
			checkMessages(t, messages(t, err), tt.want)
			if tt.want == nil && c == nil {
				t.Fatal("Parse returned a nil *Config and no error")
			}
			if tt.want != nil && c != nil {
				t.Errorf("Parse returned a *Config along with errors")
			}
		})
	}
}

func TestBindsOverlap(t *testing.T) {
	ap := netip.MustParseAddrPort
	hostName := netip.AddrPortFrom(netip.Addr{}, 53) // a host name not resolved yet
	cases := []struct {
		name string
		a, b netip.AddrPort
		want bool
	}{
		{"same address", ap("127.0.0.1:53"), ap("127.0.0.1:53"), true},
		{"other port", ap("127.0.0.1:53"), ap("127.0.0.1:54"), false},
		{"other address", ap("127.0.0.1:53"), ap("127.0.0.2:53"), false},
		{"IPv4 wildcard takes an IPv4 address's port", ap("0.0.0.0:53"), ap("127.0.0.1:53"), true},
		{"IPv4 wildcard takes an IPv6 address's port", ap("[::1]:53"), ap("0.0.0.0:53"), true},
		{"IPv6 wildcard", ap("[::]:53"), ap("127.0.0.1:53"), true},
		{"IPv4-mapped is the IPv4 address", ap("[::ffff:127.0.0.1]:53"), ap("127.0.0.1:53"), true},
		{"port 0 gets a port of its own", ap("127.0.0.1:0"), ap("127.0.0.1:0"), false},
		{"wildcard port 0", ap("0.0.0.0:0"), ap("127.0.0.1:0"), false},
		{"host name and wildcard", hostName, ap("[::]:53"), true},
		{"host name and an address", hostName, ap("127.0.0.1:53"), false},
		{"two host names", hostName, hostName, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := BindsOverlap(tc.a, tc.b); got != tc.want {
				t.Errorf("BindsOverlap(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
			if got := BindsOverlap(tc.b, tc.a); got != tc.want {
				t.Errorf("BindsOverlap(%v, %v) = %v, want %v", tc.b, tc.a, got, tc.want)
			}
		})
	}
}
