package conf

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestDefault(t *testing.T) {
	want := &Config{
		ZooKeeper: ZooKeeper{SessionTimeout: Duration{10 * time.Second}},
		DNS: DNS{
			Listen:      []string{"127.0.0.1:8600"},
			Zone:        "local.",
			TTL:         Duration{5 * time.Second},
			NegativeTTL: Duration{time.Second},
		},
		Admin: Admin{Listen: "127.0.0.1:8601"},
		Log:   Log{Level: "info", Format: "text"},
	}
	tests := []struct {
		name string
		get  func(t *testing.T) *Config
	}{
		{
			name: "Default",
			get:  func(*testing.T) *Config { return Default() },
		},
		{
			name: "Parse of a file that sets only the servers and a discover path",
			get: func(t *testing.T) *Config {
				c, err := Parse("t.toml", []byte("[zookeeper]\nservers = [\"127.0.0.1:2181\"]\n[[discover]]\npath = \"/services\"\n"))
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				c.ZooKeeper.Servers, c.Discover, c.File = nil, nil, ""
				return c
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.get(t); !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}

	t.Run("each call returns its own slices", func(t *testing.T) {
		a := Default()
		a.DNS.Listen[0] = "192.0.2.1:53"
		if b := Default(); b.DNS.Listen[0] != "127.0.0.1:8600" {
			t.Errorf("changing one Default changed the next: listen = %q", b.DNS.Listen)
		}
	})
}

// TestParseNormalises checks what Parse rewrites, using a file that sets
// every key.
func TestParseNormalises(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "full.toml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &Config{
		ZooKeeper: ZooKeeper{
			Servers:        []string{"zk1.example.net:2181", "192.0.2.11:2182", "[2001:db8::13]:2181"},
			SessionTimeout: Duration{4 * time.Second},
			Root:           "/zkdns",
			Auth:           &Auth{Scheme: "digest", CredentialsFile: "/etc/zkdns/zk.auth"},
			TLS: &TLS{
				CAFile:     "/etc/zkdns/ca.pem",
				CertFile:   "/etc/zkdns/client.pem",
				KeyFile:    "/etc/zkdns/client.key",
				ServerName: "zk.example.net",
			},
		},
		DNS: DNS{
			Listen:      []string{"127.0.0.1:53", "[::1]:53"},
			Zone:        "svc.example.",
			TTL:         Duration{2 * time.Second},
			NegativeTTL: Duration{2 * time.Second},
			Upstreams:   []string{"192.0.2.53:53", "[2001:db8::53]:53", "198.51.100.53:5353"},
			Allow:       []string{"127.0.0.0/8", "198.51.100.0/24", "2001:db8::7/128"},
		},
		Admin: Admin{Listen: "", Pprof: true},
		Log:   Log{Level: "debug", Format: "json"},
		Services: []Service{
			{Name: "payments", Path: "/services/payments", Format: "curator", Endpoint: "ssl", Warmup: Duration{90 * time.Second}},
			{Name: "search", Path: "/aurora/prod/search", Format: "auto"},
		},
		Discover: []Discover{
			{Path: "/services", Format: "serverset", Endpoint: "http", Warmup: Duration{10 * time.Second}},
		},
		File: filepath.Join("testdata", "full.toml"),
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"zookeeper", c.ZooKeeper, want.ZooKeeper},
		{"dns", c.DNS, want.DNS},
		{"admin", c.Admin, want.Admin},
		{"log", c.Log, want.Log},
		{"services", c.Services, want.Services},
		{"discovers", c.Discover, want.Discover},
		{"file", c.File, want.File},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", tt.got, tt.want)
			}
		})
	}
}

// TestLoadFixtures loads each file in testdata and checks the outcome.
func TestLoadFixtures(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // nil: must load
	}{
		{name: "example in deploy", file: filepath.Join("..", "deploy", "zkdns.example.toml")},
		{name: "minimal", file: filepath.Join("testdata", "minimal.toml")},
		{name: "every key", file: filepath.Join("testdata", "full.toml")},
		{
			name: "wrong types",
			file: filepath.Join("testdata", "bad_types.toml"),
			want: []string{
				`testdata/bad_types.toml:2: zookeeper.servers: must be an array of strings, not a string: write ["127.0.0.1:2181"]`,
				`testdata/bad_types.toml:3: zookeeper.session_timeout: must be a duration string with a unit, like "5s", not the bare number 10`,
				`testdata/bad_types.toml:6: dns.ttl: must be a duration string with a unit, like "5s", not the bare number 5`,
				`testdata/bad_types.toml:7: dns.zone: must be a string, not the integer 1`,
				`testdata/bad_types.toml:12: service[0].warmup: must be a duration string with a unit, like "5s", not the bare number 30`,
			},
		},
		{
			name: "broken rules",
			file: filepath.Join("testdata", "bad_rules.toml"),
			want: []string{
				`testdata/bad_rules.toml:2: zookeeper.servers[1] "127.0.0.1": already listed as zookeeper.servers[0]; list each server once`,
				`testdata/bad_rules.toml:3: zookeeper.session_timeout "10m0s": must be from 100ms to 5m`,
				`testdata/bad_rules.toml:4: zookeeper.root "zkdns/": must be empty for no chroot, or an absolute ZooKeeper path like "/zkdns" (it must start with "/")`,
				`testdata/bad_rules.toml:6: zookeeper.auth.credentials_file: required: the path of a file holding "user:password"`,
				`testdata/bad_rules.toml:7: zookeeper.auth.scheme "sasl": must be "digest", the only scheme zkdns supports`,
				`testdata/bad_rules.toml:10: dns.listen[0] "localhost:53": must be IP:port with a literal IP, e.g. "127.0.0.1:8600" or "[::1]:8600", not a host name`,
				`testdata/bad_rules.toml:11: dns.zone ".": must not be the root: give the domain zkdns answers for, e.g. "local."`,
				`testdata/bad_rules.toml:18: service[1].name "Pay_ments": must be a DNS label (a-z, 0-9, '-', at most 63 bytes, no '-' at either end): try "pay-ments"`,
				`testdata/bad_rules.toml:19: service[1].path "/services/payments": already the path of service[0]; two services cannot watch one path`,
				`testdata/bad_rules.toml:21: service[1].endpoint "http": is only used by formats auto, curator and serverset: remove it for format nerve`,
				`testdata/bad_rules.toml:24: discover[0].path "services": must be an absolute ZooKeeper path like "/services" (it must start with "/")`,
			},
		},
		{
			name: "unknown keys",
			file: filepath.Join("testdata", "unknown_keys.toml"),
			want: []string{
				`testdata/unknown_keys.toml:3: zookeeper.sesion_timeout: unknown key; did you mean "session_timeout"?`,
				`testdata/unknown_keys.toml:6: dns.zones: unknown key; did you mean "zone"?`,
				`testdata/unknown_keys.toml:11: service[0].weight: unknown key; [[service]] takes only name, path, format, endpoint, warmup`,
				`testdata/unknown_keys.toml:13: metrics: unknown key; the top level takes only zookeeper, dns, admin, log, service, discover`,
			},
		},
		{
			name: "syntax error",
			file: filepath.Join("testdata", "syntax.toml"),
			want: []string{`testdata/syntax.toml:4: invalid TOML: expected '.' or ']' to end table name, but got '\n' instead`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.file)
			checkMessages(t, messages(t, err), tt.want)
			if tt.want == nil && (c == nil || c.File != tt.file) {
				t.Errorf("Load returned %+v; want a *Config with File %q", c, tt.file)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.toml")
	c, err := Load(path)
	if c != nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(%q) = %v, %v; want nil and an error wrapping fs.ErrNotExist", path, c, err)
	}
	if want := "conf: read config: open " + path + ": no such file or directory"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// TestEncodeRoundTrip checks that a parsed Config encodes back to TOML
// (Duration's MarshalText, the toml tags) that parses to the same Config.
func TestEncodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		file string
	}{
		{name: "example", file: filepath.Join("..", "deploy", "zkdns.example.toml")},
		{name: "every key", file: filepath.Join("testdata", "full.toml")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.file)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var buf bytes.Buffer
			if err := toml.NewEncoder(&buf).Encode(c); err != nil {
				t.Fatalf("Encode: %v", err)
			}
			again, err := Parse(tt.file, buf.Bytes())
			if err != nil {
				t.Fatalf("Parse of the encoded config: %v\n%s", err, buf.String())
			}
			if !reflect.DeepEqual(again, c) {
				t.Errorf("round trip changed the config:\n got %+v\nwant %+v", again, c)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		name string
		err  Error
		want string
	}{
		{"file and line", Error{File: "zkdns.toml", Line: 12, Msg: "m"}, "zkdns.toml:12: m"},
		{"file only", Error{File: "zkdns.toml", Msg: "m"}, "zkdns.toml: m"},
		{"line only", Error{Line: 3, Msg: "m"}, "line 3: m"},
		{"neither", Error{Msg: "m"}, "m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestOneLine parses a config with two problems: on one line they must
// read as the file's lines do, "; " between them, and each must still be
// found as an *Error.
func TestOneLine(t *testing.T) {
	_, err := Parse("zkdns.toml", []byte("[zookeeper]\nservers = []\n[dns]\nttl = \"soon\"\n"+watchOne))
	if err == nil {
		t.Fatal("Parse accepted a config with two problems")
	}
	got := OneLine(err)
	want := strings.ReplaceAll(err.Error(), "\n", "; ")
	if got.Error() != want || strings.Count(want, "zkdns.toml:") != 2 {
		t.Errorf("OneLine = %q, want %q with both problems", got, want)
	}
	var ce *Error
	if !errors.As(got, &ce) || ce.File != "zkdns.toml" {
		t.Errorf("errors.As(OneLine(err), *Error) = %v, %+v; want the first problem", ce != nil, ce)
	}
	if OneLine(nil) != nil {
		t.Error("OneLine(nil) is not nil")
	}
}

func TestExampleFileIsCommented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "deploy", "zkdns.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// Auth and TLS are shown commented out, so the example needs no
	// secrets to run; every other table is live.
	tests := []struct {
		name string
		text string
		want bool
	}{
		{"zookeeper table", "\n[zookeeper]\n", true},
		{"dns table", "\n[dns]\n", true},
		{"admin table", "\n[admin]\n", true},
		{"log table", "\n[log]\n", true},
		{"service tables", "\n[[service]]\n", true},
		{"discover table", "\n[[discover]]\n", true},
		{"auth commented out", "\n# [zookeeper.auth]\n", true},
		{"tls commented out", "\n# [zookeeper.tls]\n", true},
		{"no live auth", "\n[zookeeper.auth]", false},
		{"no live tls", "\n[zookeeper.tls]", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bytes.Contains(data, []byte(tt.text)); got != tt.want {
				t.Errorf("example contains %q: %t, want %t", tt.text, got, tt.want)
			}
		})
	}
}
