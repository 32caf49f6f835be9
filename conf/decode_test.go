package conf

import (
	"testing"
)

// TestParseDecodeErrors covers what goes wrong before validation: unknown
// keys, values of the wrong TOML type and TOML that does not parse. Each
// problem must carry the line it is on.
func TestParseDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "misspelt top-level table",
			src:  minimalZK + "[zookeper]\nroot = \"/x\"\n",
			want: []string{`t.toml:3: zookeper: unknown key; did you mean "zookeeper"?`},
		},
		{
			name: "services instead of service",
			src:  minimalZK + "[[services]]\nname = \"a\"\n",
			want: []string{`t.toml:3: services: unknown key; did you mean "service"?`},
		},
		{
			name: "unknown table lists the top level",
			src:  minimalZK + "[metrics]\nlisten = \":9100\"\n",
			want: []string{`t.toml:3: metrics: unknown key; the top level takes only zookeeper, dns, admin, log, service, discover`},
		},
		{
			name: "misspelt key",
			src:  minimalZK + "sesion_timeout = \"1s\"\n",
			want: []string{`t.toml:3: zookeeper.sesion_timeout: unknown key; did you mean "session_timeout"?`},
		},
		{
			name: "key in the wrong case",
			src:  minimalZK + "[dns]\nTTL = \"1s\"\n",
			want: []string{`t.toml:4: dns.TTL: unknown key; did you mean "ttl"?`},
		},
		{
			name: "unknown key lists the table's keys",
			src:  minimalZK + "[dns]\nport = 53\n",
			want: []string{`t.toml:4: dns.port: unknown key; [dns] takes only listen, zone, ttl, negative_ttl, upstreams, allow`},
		},
		{
			name: "unknown key in a nested table",
			src:  minimalZK + "[zookeeper.auth]\nscheme = \"digest\"\ncredentials_file = \"/a\"\nuser = \"zkdns\"\n",
			want: []string{`t.toml:6: zookeeper.auth.user: unknown key; [zookeeper.auth] takes only scheme, credentials_file`},
		},
		{
			name: "unknown keys in two elements of an array of tables",
			src: minimalZK + `[[service]]
name = "a"
path = "/a"
[[service]]
name = "b"
path = "/b"
protocol = "http"
[[service]]
name = "c"
path = "/c"
protocol = "grpc"
`,
			want: []string{
				`t.toml:9: service[1].protocol: unknown key; [[service]] takes only name, path, format, endpoint, warmup`,
				`t.toml:13: service[2].protocol: unknown key; [[service]] takes only name, path, format, endpoint, warmup`,
			},
		},
		{
			name: "unknown dotted key",
			src:  minimalZK + "[dns]\nzone.name = \"local.\"\n",
			want: []string{`t.toml:4: dns.zone: must be a string, not a table`},
		},
		{
			name: "quoted unknown key",
			src:  minimalZK + "[admin]\n\"listen address\" = \"x\"\n",
			want: []string{`t.toml:4: admin."listen address": unknown key; [admin] takes only listen, pprof`},
		},
		{
			name: "integer duration",
			src:  minimalZK + "[dns]\nttl = 5\n",
			want: []string{`t.toml:4: dns.ttl: must be a duration string with a unit, like "5s", not the bare number 5`},
		},
		{
			name: "float duration",
			src:  minimalZK + "session_timeout = 1.5\n",
			want: []string{`t.toml:3: zookeeper.session_timeout: must be a duration string with a unit, like "5s", not the bare number 1.5`},
		},
		{
			name: "duration without unit",
			src:  minimalZK + "session_timeout = \"10\"\n",
			want: []string{`t.toml:3: zookeeper.session_timeout: "10" is not a duration: write a number and a unit, like "5s" or "250ms"`},
		},
		{
			name: "boolean duration",
			src:  minimalZK + "[dns]\nnegative_ttl = false\n",
			want: []string{`t.toml:4: dns.negative_ttl: must be a duration string with a unit, like "5s", not the boolean false`},
		},
		{
			name: "integer warmups in two services",
			src:  minimalZK + "[[service]]\nname = \"a\"\npath = \"/a\"\nwarmup = 30\n[[service]]\nname = \"b\"\npath = \"/b\"\nwarmup = 60\n",
			want: []string{
				`t.toml:6: service[0].warmup: must be a duration string with a unit, like "5s", not the bare number 30`,
				`t.toml:10: service[1].warmup: must be a duration string with a unit, like "5s", not the bare number 60`,
			},
		},
		{
			name: "string where an array belongs",
			src:  "[zookeeper]\nservers = \"192.0.2.10:2181\"\n",
			want: []string{`t.toml:2: zookeeper.servers: must be an array of strings, not a string: write ["192.0.2.10:2181"]`},
		},
		{
			name: "integer in an array of strings",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:53\", 53]\n",
			want: []string{`t.toml:4: dns.listen: must be an array of strings, not an array`},
		},
		{
			name: "integer where a string belongs",
			src:  minimalZK + "[admin]\nlisten = 8601\n",
			want: []string{`t.toml:4: admin.listen: must be a string, not the integer 8601`},
		},
		{
			name: "value where a table belongs",
			src:  "zookeeper = \"192.0.2.10:2181\"\n",
			want: []string{`t.toml:1: zookeeper: must be a table, not a string`},
		},
		{
			name: "table where an array of tables belongs",
			src:  minimalZK + "[service]\nname = \"a\"\n",
			want: []string{`t.toml:3: service: must be an array of tables, written [[service]], not a table`},
		},
		{
			name: "key in the wrong table",
			src:  minimalZK + "discover = [\"/services\"]\n",
			want: []string{`t.toml:3: zookeeper.discover: unknown key; [zookeeper] takes only servers, session_timeout, root, auth, tls`},
		},
		{
			name: "top-level array of non-tables where an array of tables belongs",
			src:  "discover = [\"/services\"]\n" + minimalZK,
			want: []string{`t.toml:1: discover[0]: must be a table, not a string`},
		},
		{
			name: "array of inline tables",
			src:  "service = [\n  { name = \"a\", path = \"/a\" },\n  { name = \"B\", path = \"/b\", port = 80 },\n]\n" + minimalZK,
			// Decode problems come before validation ones on the same line.
			want: []string{
				`t.toml:3: service[1].port: unknown key; [[service]] takes only name, path, format, endpoint, warmup`,
				`t.toml:3: service[1].name "B": must be a DNS label (a-z, 0-9, '-', at most 63 bytes, no '-' at either end): try "b"`,
			},
		},
		{
			name: "a value that does not decode is not also reported missing",
			src:  "[zookeeper]\nservers = 2181\n[[service]]\nname = 7\npath = \"/a\"\n",
			want: []string{
				`t.toml:2: zookeeper.servers: must be an array of strings, not the integer 2181`,
				`t.toml:4: service[0].name: must be a string, not the integer 7`,
			},
		},
		{
			name: "syntax error",
			src:  minimalZK + "[dns\nzone = \"local.\"\n",
			want: []string{`t.toml:3: invalid TOML: expected '.' or ']' to end table name, but got '\n' instead`},
		},
		{
			name: "unterminated string",
			src:  minimalZK + "[dns]\nzone = \"local.\nttl = \"5s\"\n",
			want: []string{`t.toml:4: invalid TOML: strings cannot contain newlines`},
		},
		{
			name: "unterminated array at end of file",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:53\",\n",
			want: []string{`t.toml:4: invalid TOML: unexpected EOF; expected value`},
		},
		{
			name: "invalid UTF-8",
			src:  minimalZK + "[dns]\nzone = \"\xff\"\n",
			want: []string{`t.toml:4: invalid TOML: invalid UTF-8 byte: 0xff`},
		},
		{
			name: "key written twice",
			src:  minimalZK + "[dns]\nzone = \"a.\"\nzone = \"b.\"\n",
			want: []string{`t.toml:5: invalid TOML: Key 'dns.zone' has already been defined.`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.toml", []byte(tt.src))
			if c != nil {
				t.Errorf("Parse returned a *Config along with errors")
			}
			checkMessages(t, messages(t, err), tt.want)
		})
	}
}

// TestParseReportsAllProblems checks that problems of every kind come back
// together, in line order, with those that have no line last.
func TestParseReportsAllProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "decode and validation problems across tables",
			src: `[dns]
zone = "."
ttl = 5
colour = "blue"

[[service]]
name = "Payments"
path = "payments"

[log]
level = "loud"
`,
			want: []string{
				`t.toml:2: dns.zone ".": must not be the root: give the domain zkdns answers for, e.g. "local."`,
				`t.toml:3: dns.ttl: must be a duration string with a unit, like "5s", not the bare number 5`,
				`t.toml:4: dns.colour: unknown key; [dns] takes only listen, zone, ttl, negative_ttl, upstreams, allow`,
				`t.toml:7: service[0].name "Payments": must be a DNS label (a-z, 0-9, '-', at most 63 bytes, no '-' at either end): try "payments"`,
				`t.toml:8: service[0].path "payments": must be an absolute ZooKeeper path like "/services/payments" (it must start with "/")`,
				`t.toml:11: log.level "loud": must be one of debug, info, warn, error`,
				`t.toml: zookeeper.servers: required: list at least one ZooKeeper server as host:port, e.g. ["127.0.0.1:2181"]`,
			},
		},
		{
			name: "tables written out of order are still reported by line",
			src: `[log]
format = "xml"
[zookeeper]
servers = ["192.0.2.10:0"]
`,
			want: []string{
				`t.toml:2: log.format "xml": must be text or json`,
				`t.toml:4: zookeeper.servers[0] "192.0.2.10:0": port "0" must be a number from 1 to 65535`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(tt.src))
			checkMessages(t, messages(t, err), tt.want)
		})
	}
}
