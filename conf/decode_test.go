package conf

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
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
			src:  minimalZK + "[zookeper]\nroot = \"/x\"\n" + watchOne,
			want: []string{`t.toml:3: zookeper: unknown key; did you mean "zookeeper"?`},
		},
		{
			name: "services instead of service",
			src:  minimalZK + "[[services]]\nname = \"a\"\n",
			want: []string{
				`t.toml:3: services: unknown key; did you mean "service"?`,
				`t.toml: nothing to watch: add a [[service]] or [[discover]] table; zkdns refuses a config that would serve no names, as a file read half written would be`,
			},
		},
		{
			name: "unknown table lists the top level",
			src:  minimalZK + "[metrics]\nlisten = \":9100\"\n" + watchOne,
			want: []string{`t.toml:3: metrics: unknown key; the top level takes only zookeeper, dns, admin, log, service, discover`},
		},
		{
			name: "misspelt key",
			src:  minimalZK + "sesion_timeout = \"1s\"\n" + watchOne,
			want: []string{`t.toml:3: zookeeper.sesion_timeout: unknown key; did you mean "session_timeout"?`},
		},
		{
			name: "key in the wrong case",
			src:  minimalZK + "[dns]\nTTL = \"1s\"\n" + watchOne,
			want: []string{`t.toml:4: dns.TTL: unknown key; did you mean "ttl"?`},
		},
		{
			name: "unknown key lists the table's keys",
			src:  minimalZK + "[dns]\nport = 53\n" + watchOne,
			want: []string{`t.toml:4: dns.port: unknown key; [dns] takes only listen, zone, ttl, negative_ttl, upstreams, allow`},
		},
		{
			name: "unknown key in a nested table",
			src:  minimalZK + "[zookeeper.auth]\nscheme = \"digest\"\ncredentials_file = \"/a\"\nuser = \"zkdns\"\n" + watchOne,
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
			src:  minimalZK + "[dns]\nzone.name = \"local.\"\n" + watchOne,
			want: []string{`t.toml:4: dns.zone: must be a string, not a table`},
		},
		{
			name: "quoted unknown key",
			src:  minimalZK + "[admin]\n\"listen address\" = \"x\"\n" + watchOne,
			want: []string{`t.toml:4: admin."listen address": unknown key; [admin] takes only listen, pprof`},
		},
		{
			name: "integer duration",
			src:  minimalZK + "[dns]\nttl = 5\n" + watchOne,
			want: []string{`t.toml:4: dns.ttl: must be a duration string with a unit, like "5s", not the bare number 5`},
		},
		{
			name: "float duration",
			src:  minimalZK + "session_timeout = 1.5\n" + watchOne,
			want: []string{`t.toml:3: zookeeper.session_timeout: must be a duration string with a unit, like "5s", not the bare number 1.5`},
		},
		{
			name: "duration without unit",
			src:  minimalZK + "session_timeout = \"10\"\n" + watchOne,
			want: []string{`t.toml:3: zookeeper.session_timeout: "10" is not a duration: write a number and a unit, like "5s" or "250ms"`},
		},
		{
			name: "boolean duration",
			src:  minimalZK + "[dns]\nnegative_ttl = false\n" + watchOne,
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
			src:  "[zookeeper]\nservers = \"192.0.2.10:2181\"\n" + watchOne,
			want: []string{`t.toml:2: zookeeper.servers: must be an array of strings, not a string: write ["192.0.2.10:2181"]`},
		},
		{
			name: "integer in an array of strings",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:53\", 53]\n" + watchOne,
			want: []string{`t.toml:4: dns.listen: must be an array of strings, not an array`},
		},
		{
			name: "integer where a string belongs",
			src:  minimalZK + "[admin]\nlisten = 8601\n" + watchOne,
			want: []string{`t.toml:4: admin.listen: must be a string, not the integer 8601`},
		},
		{
			name: "value where a table belongs",
			src:  "zookeeper = \"192.0.2.10:2181\"\n" + watchOne,
			want: []string{`t.toml:1: zookeeper: must be a table, not a string`},
		},
		{
			name: "table where an array of tables belongs",
			src:  minimalZK + "[service]\nname = \"a\"\n",
			want: []string{`t.toml:3: service: must be an array of tables, written [[service]], not a table`},
		},
		{
			name: "key in the wrong table",
			src:  minimalZK + "discover = [\"/services\"]\n" + watchOne,
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
			src:  minimalZK + "[dns\nzone = \"local.\"\n" + watchOne,
			want: []string{`t.toml:3: invalid TOML: expected '.' or ']' to end table name, but got '\n' instead`},
		},
		{
			name: "unterminated string",
			src:  minimalZK + "[dns]\nzone = \"local.\nttl = \"5s\"\n" + watchOne,
			want: []string{`t.toml:4: invalid TOML: strings cannot contain newlines`},
		},
		{
			name: "unterminated array at end of file",
			src:  minimalZK + "[dns]\nlisten = [\"127.0.0.1:53\",\n",
			want: []string{`t.toml:4: invalid TOML: unexpected EOF; expected value`},
		},
		{
			name: "invalid UTF-8",
			src:  minimalZK + "[dns]\nzone = \"\xff\"\n" + watchOne,
			want: []string{`t.toml:4: invalid TOML: invalid UTF-8 byte: 0xff`},
		},
		{
			name: "key written twice",
			src:  minimalZK + "[dns]\nzone = \"a.\"\nzone = \"b.\"\n" + watchOne,
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
` + watchOne,
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

// hostPort decodes itself from "host:port" text. It is a struct, so it
// shows that Decode hands such a type the value rather than taking it for
// a table.
type hostPort struct {
	Host string
	Port int
}

func (h *hostPort) UnmarshalText(b []byte) error {
	host, port, err := net.SplitHostPort(string(b))
	if err != nil {
		return fmt.Errorf("%q is not host:port", b)
	}
	h.Port, err = strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("%q: the port must be a number", b)
	}
	h.Host = host
	return nil
}

// tagList is a named slice, as zkdns register's serverList is: its
// messages must name what it holds, not its Go type.
type tagList []string

// decodeTarget has a field of every kind Decode documents.
type decodeTarget struct {
	Name    string            `toml:"name"`
	Count   int               `toml:"count"`
	Small   uint8             `toml:"small"`
	On      bool              `toml:"on"`
	Ratio   float64           `toml:"ratio"`
	Tags    tagList           `toml:"tags"`
	Wait    Duration          `toml:"wait"`
	Backoff []Duration        `toml:"backoff"`
	Peer    hostPort          `toml:"peer"`
	At      time.Time         `toml:"at"`
	Labels  map[string]string `toml:"labels"`
	Inner   decodeInner       `toml:"inner"`
	Opt     *decodeInner      `toml:"opt"`
	Items   []decodeInner     `toml:"item"`
	Hidden  string            `toml:"-"`
}

type decodeInner struct {
	Key  string   `toml:"key"`
	Wait Duration `toml:"wait"`
}

// decodeDefaults is what Decode starts from in TestDecode: a key the file
// leaves out must leave its field so.
func decodeDefaults() decodeTarget {
	return decodeTarget{
		Name:   "default",
		Wait:   Duration{time.Second},
		Labels: map[string]string{"old": "x"},
		Hidden: "kept",
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		src  string
		// edit turns decodeDefaults() into the result; nil when the
		// file has problems, listed in want.
		edit func(*decodeTarget)
		want []string
	}{
		{
			name: "every kind",
			src: `name = "a"
count = 3
small = 255
on = true
ratio = 0.5
tags = ["x", "y"]
wait = "1m30s"
backoff = ["1s", "2s"]
peer = "192.0.2.1:80"
at = 2024-01-02T03:04:05Z
[labels]
zone = "z1"
"rack.id" = "r1"
[inner]
key = "k"
wait = "5s"
[opt]
key = "o"
[[item]]
key = "i0"
[[item]]
key = "i1"
wait = "2s"
`,
			edit: func(d *decodeTarget) {
				d.Name, d.Count, d.Small, d.On, d.Ratio = "a", 3, 255, true, 0.5
				d.Tags = tagList{"x", "y"}
				d.Wait = Duration{90 * time.Second}
				d.Backoff = []Duration{{time.Second}, {2 * time.Second}}
				d.Peer = hostPort{"192.0.2.1", 80}
				d.At = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
				d.Labels = map[string]string{"zone": "z1", "rack.id": "r1"}
				d.Inner = decodeInner{"k", Duration{5 * time.Second}}
				d.Opt = &decodeInner{Key: "o"}
				d.Items = []decodeInner{{Key: "i0"}, {"i1", Duration{2 * time.Second}}}
			},
		},
		{
			name: "left-out keys keep their values; a table replaces a map",
			src:  "count = 1\nlabels.new = \"y\"\n",
			edit: func(d *decodeTarget) {
				d.Count = 1
				d.Labels = map[string]string{"new": "y"}
			},
		},
		{
			name: "date-time as text",
			src:  "at = \"2024-01-02T03:04:05Z\"\n",
			edit: func(d *decodeTarget) { d.At = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC) },
		},
		{
			name: "misspelt key",
			src:  "count = 1\nnane = \"a\"\n",
			want: []string{`d.toml:2: nane: unknown key; did you mean "name"?`},
		},
		{
			name: "unknown key in a table lists its keys",
			src:  "[inner]\ncolour = \"blue\"\n",
			want: []string{`d.toml:2: inner.colour: unknown key; [inner] takes only key, wait`},
		},
		{
			name: "a key tagged - is unknown",
			src:  "Hidden = \"x\"\n",
			want: []string{`d.toml:1: Hidden: unknown key; the top level takes only name, count, small, on, ratio, tags, wait, backoff, peer, at, labels, inner, opt, item`},
		},
		{
			name: "integer for a string",
			src:  "name = 1\n",
			want: []string{`d.toml:1: name: must be a string, not the integer 1`},
		},
		{
			name: "string for an integer",
			src:  "count = \"3\"\n",
			want: []string{`d.toml:1: count: must be an integer, not a string`},
		},
		{
			name: "integer out of the field's range",
			src:  "small = 256\n",
			want: []string{`d.toml:1: small: must be an integer from 0 to 255, not 256`},
		},
		{
			name: "string for a boolean",
			src:  "on = \"yes\"\n",
			want: []string{`d.toml:1: on: must be true or false, not a string`},
		},
		{
			name: "boolean for a number",
			src:  "ratio = false\n",
			want: []string{`d.toml:1: ratio: must be a number, not the boolean false`},
		},
		{
			name: "string for a named array of strings",
			src:  "tags = \"x\"\n",
			want: []string{`d.toml:1: tags: must be an array of strings, not a string: write ["x"]`},
		},
		{
			name: "bare number for a duration",
			src:  "wait = 5\n",
			want: []string{`d.toml:1: wait: must be a duration string with a unit, like "5s", not the bare number 5`},
		},
		{
			name: "bad element of an array of durations, at its own line",
			src:  "backoff = [\n  \"1s\",\n  2,\n]\n",
			want: []string{`d.toml:3: backoff[1]: must be a duration string with a unit, like "5s", not the bare number 2`},
		},
		{
			name: "string for an array of durations",
			src:  "backoff = \"1s\"\n",
			want: []string{`d.toml:1: backoff: must be an array, not a string`},
		},
		{
			name: "text the self-decoding type refuses",
			src:  "peer = \"nowhere\"\n",
			want: []string{`d.toml:1: peer: "nowhere" is not host:port`},
		},
		{
			name: "integer for a self-decoding text type",
			src:  "peer = 80\n",
			want: []string{`d.toml:1: peer: must be a string, not the integer 80`},
		},
		{
			name: "table for a self-decoding struct",
			src:  "[peer]\nHost = \"a\"\n",
			want: []string{`d.toml:1: peer: must be a string, not a table`},
		},
		{
			name: "integer in a map of strings",
			src:  "[labels]\nzone = \"z1\"\nrack = 1\n",
			want: []string{`d.toml:3: labels.rack: must be a string, not the integer 1`},
		},
		{
			name: "string for a map",
			src:  "labels = \"zone=z1\"\n",
			want: []string{`d.toml:1: labels: must be a table, not a string`},
		},
		{
			name: "integer for a table",
			src:  "inner = 1\n",
			want: []string{`d.toml:1: inner: must be a table, not the integer 1`},
		},
		{
			name: "bad duration in a nested table",
			src:  "[inner]\nkey = \"k\"\nwait = \"soon\"\n",
			want: []string{`d.toml:3: inner.wait: "soon" is not a duration: write a number and a unit, like "5s" or "250ms"`},
		},
		{
			name: "bad value in a table behind a pointer",
			src:  "[opt]\nkey = 2\n",
			want: []string{`d.toml:2: opt.key: must be a string, not the integer 2`},
		},
		{
			name: "table for an array of tables",
			src:  "[item]\nkey = \"a\"\n",
			want: []string{`d.toml:1: item: must be an array of tables, written [[item]], not a table`},
		},
		{
			name: "bad value in the second of an array of tables",
			src:  "[[item]]\nkey = \"a\"\n[[item]]\nkey = 1\n",
			want: []string{`d.toml:4: item[1].key: must be a string, not the integer 1`},
		},
		{
			// The keys are decoded in sorted order (count before wait,
			// a before b); the problems come back in the file's.
			name: "several bad values, in line order",
			src:  "wait = 5\ncount = \"x\"\n[labels]\nb = 1\na = 2\n[[item]]\nkey = 3\nkee = \"k\"\n",
			want: []string{
				`d.toml:1: wait: must be a duration string with a unit, like "5s", not the bare number 5`,
				`d.toml:2: count: must be an integer, not a string`,
				`d.toml:4: labels.b: must be a string, not the integer 1`,
				`d.toml:5: labels.a: must be a string, not the integer 2`,
				`d.toml:7: item[0].key: must be a string, not the integer 3`,
				`d.toml:8: item[0].kee: unknown key; did you mean "key"?`,
			},
		},
		{
			name: "a syntax error is reported alone",
			src:  "name = 1\ncount = \n",
			want: []string{`d.toml:2: invalid TOML: expected value but found '\n' instead`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeDefaults()
			err := Decode("d.toml", []byte(tt.src), &got)
			checkMessages(t, messages(t, err), tt.want)
			if tt.edit != nil {
				want := decodeDefaults()
				tt.edit(&want)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("decoded\n %+v\nwant\n %+v", got, want)
				}
			}
			// Map iteration order must not leak into the answer.
			for range 10 {
				again := decodeDefaults()
				err2 := Decode("d.toml", []byte(tt.src), &again)
				if fmt.Sprint(err) != fmt.Sprint(err2) {
					t.Fatalf("a second Decode differs:\n%v\nthen\n%v", err, err2)
				}
			}
		})
	}
}

func TestDecodeNeedsPointerToStruct(t *testing.T) {
	var s string
	var nilTarget *decodeTarget
	tests := []struct {
		name string
		dst  any
	}{
		{"struct value", decodeTarget{}},
		{"nil pointer", nilTarget},
		{"pointer to a string", &s},
		{"nil", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Decode("d.toml", []byte("name = \"a\"\n"), tt.dst)
			var ce *Error
			if err == nil || errors.As(err, &ce) || !strings.Contains(err.Error(), "pointer to a struct") {
				t.Errorf("Decode onto %T: %v, want a plain error asking for a pointer to a struct", tt.dst, err)
			}
		})
	}
}
