package zkwatch

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// decodeTestCtime is the ctime of every test znode: the registration time
// of payloads that carry none.
func decodeTestCtime() time.Time { return time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC) }

// decodeCase is one row of a decoder's table test.
type decodeCase struct {
	name     string
	node     Node
	endpoint string
	// want is the expected Instance when wantErr is empty.
	want Instance
	// wantErr, when set, is a substring of the expected error.
	wantErr string
	// notThisFormat says the error must (true) or must not (false) wrap
	// ErrNotThisFormat; it is checked only when wantErr is set.
	notThisFormat bool
}

// runDecodeCases runs cases through the public Decode with the given
// format.
func runDecodeCases(t *testing.T, format string, cases []decodeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.node.Ctime.IsZero() {
				tc.node.Ctime = decodeTestCtime()
			}
			got, err := Decode(format, tc.endpoint, tc.node)
			checkDecoded(t, got, err, tc)
		})
	}
}

func checkDecoded(t *testing.T, got Instance, err error, tc decodeCase) {
	t.Helper()
	if tc.wantErr != "" {
		if err == nil {
			t.Fatalf("Decode succeeded with %+v, want error containing %q", got, tc.wantErr)
		}
		if !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("error = %q, want it to contain %q", err, tc.wantErr)
		}
		if !strings.HasPrefix(err.Error(), "zkwatch: ") {
			t.Errorf("error = %q, want the zkwatch: prefix", err)
		}
		if is := errors.Is(err, ErrNotThisFormat); is != tc.notThisFormat {
			t.Errorf("errors.Is(err, ErrNotThisFormat) = %v, want %v (err: %v)", is, tc.notThisFormat, err)
		}
		if !reflect.DeepEqual(got, Instance{}) {
			t.Errorf("Decode returned %+v alongside its error, want the zero Instance", got)
		}
		return
	}
	if err != nil {
		t.Fatalf("Decode failed: %v", err)
	}
	// time.Time holds a location pointer; compare instants, then the rest.
	if !got.Registered.Equal(tc.want.Registered) {
		t.Errorf("Registered = %v, want %v", got.Registered, tc.want.Registered)
	}
	got.Registered, tc.want.Registered = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, tc.want) {
		t.Errorf("Decode mismatch\n got: %+v\nwant: %+v", got, tc.want)
	}
}

// samplePayload reads a sample payload from testdata/payloads.
func samplePayload(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "payloads", name))
	if err != nil {
		t.Fatalf("read sample payload: %v", err)
	}
	return data
}

func TestFormats(t *testing.T) {
	want := []string{"curator", "serverset", "nerve", "dubbo", "hostport"}
	got := Formats()
	if !slices.Equal(got, want) {
		t.Fatalf("Formats() = %q, want %q", got, want)
	}
	got[0] = "changed"
	if Formats()[0] != "curator" {
		t.Error("changing the slice Formats returned changed the next call's result")
	}
}

func TestDecodeAuto(t *testing.T) {
	cases := []struct {
		name       string
		node       Node
		endpoint   string
		wantFormat string
		wantAddr   string
		wantPort   uint16
	}{
		{
			name:       "spring cloud zookeeper is curator",
			node:       Node{Name: "585ddd0b", Data: samplePayload(t, "curator/spring-cloud-zookeeper.json")},
			wantFormat: "curator", wantAddr: "192.0.2.106", wantPort: 8004,
		},
		{
			name:       "curator wins over serverset keys in the same object",
			node:       Node{Name: "x", Data: []byte(`{"address":"192.0.2.1","port":1,"serviceType":"DYNAMIC","serviceEndpoint":{"host":"192.0.2.2","port":2}}`)},
			wantFormat: "curator", wantAddr: "192.0.2.1", wantPort: 1,
		},
		{
			name:       "address alone is not curator, host and port make it nerve",
			node:       Node{Name: "x", Data: []byte(`{"address":"192.0.2.1","host":"192.0.2.3","port":3}`)},
			wantFormat: "nerve", wantAddr: "192.0.2.3", wantPort: 3,
		},
		{
			name:       "finagle serverset",
			node:       Node{Name: "member_0000000001", Data: samplePayload(t, "serverset/finagle.json")},
			wantFormat: "serverset", wantAddr: "192.0.2.20", wantPort: 10000,
		},
		{
			name:       "serverset wins over nerve keys in the same object",
			node:       Node{Name: "x", Data: []byte(`{"serviceEndpoint":{"host":"192.0.2.2","port":2},"host":"192.0.2.3","port":3}`)},
			wantFormat: "serverset", wantAddr: "192.0.2.2", wantPort: 2,
		},
		{
			name:       "serverset additional endpoint",
			node:       Node{Name: "member_0000000003", Data: samplePayload(t, "serverset/aurora.json")},
			endpoint:   "http",
			wantFormat: "serverset", wantAddr: "192.0.2.8", wantPort: 15509,
		},
		{
			name:       "nerve data",
			node:       Node{Name: "i-0abc123def_0000000001", Data: samplePayload(t, "nerve/nerve.json")},
			wantFormat: "nerve", wantAddr: "192.0.2.30", wantPort: 3000,
		},
		{
			name:       "nerve base64 name with empty data",
			node:       Node{Name: nerveNameSample},
			wantFormat: "nerve", wantAddr: "192.0.2.31", wantPort: 3000,
		},
		{
			name:       "dubbo provider name with empty data",
			node:       Node{Name: dubboProviderSample},
			wantFormat: "dubbo", wantAddr: "192.0.2.10", wantPort: 20880,
		},
		{
			name:       "dubbo name wins over host:port data",
			node:       Node{Name: dubboProviderSample, Data: []byte("192.0.2.99:1")},
			wantFormat: "dubbo", wantAddr: "192.0.2.10", wantPort: 20880,
		},
		{
			name:       "dubbo name with curator's default data, the registering IP",
			node:       Node{Name: dubboProviderSample, Data: []byte("192.0.2.10")},
			wantFormat: "dubbo", wantAddr: "192.0.2.10", wantPort: 20880,
		},
		{
			name:       "host:port data",
			node:       Node{Name: "instance-1", Data: []byte("198.51.100.4:8080\n")},
			wantFormat: "hostport", wantAddr: "198.51.100.4", wantPort: 8080,
		},
		{
			name:       "host:port name",
			node:       Node{Name: "[2001:db8::4]:8080"},
			wantFormat: "hostport", wantAddr: "2001:db8::4", wantPort: 8080,
		},
	}
	for _, tc := range cases {
		for _, format := range []string{"auto", ""} {
			t.Run(tc.name+"/format="+format, func(t *testing.T) {
				tc.node.Ctime = decodeTestCtime()
				got, err := Decode(format, tc.endpoint, tc.node)
				if err != nil {
					t.Fatalf("Decode failed: %v", err)
				}
				if got.Format != tc.wantFormat || got.Address != tc.wantAddr || got.Port != tc.wantPort {
					t.Errorf("Decode = %s %s port %d, want %s %s port %d",
						got.Format, got.Address, got.Port, tc.wantFormat, tc.wantAddr, tc.wantPort)
				}
				// "auto" must agree exactly with the format it picked.
				direct, err := Decode(tc.wantFormat, tc.endpoint, tc.node)
				if err != nil {
					t.Fatalf("Decode(%q) failed: %v", tc.wantFormat, err)
				}
				if !reflect.DeepEqual(got, direct) {
					t.Errorf("auto and %s disagree\n auto: %+v\n%s: %+v", tc.wantFormat, got, tc.wantFormat, direct)
				}
			})
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name          string
		format        string
		endpoint      string
		node          Node
		wantErr       string
		notThisFormat bool
	}{
		{
			name:    "unknown format",
			format:  "eureka",
			node:    Node{Name: "x", Data: []byte("192.0.2.1:80")},
			wantErr: `zkwatch: unknown payload format "eureka" (want auto or one of curator, serverset, nerve, dubbo, hostport)`,
		},
		{
			name:    "format names are case-sensitive",
			format:  "Curator",
			node:    Node{Name: "x"},
			wantErr: `zkwatch: unknown payload format "Curator"`,
		},
		{
			name:          "auto: empty data and a plain name",
			format:        "auto",
			node:          Node{Name: "instance-1"},
			wantErr:       "zkwatch: payload: data is empty and the znode name is neither host:port, a nerve base64_ name nor a URL-encoded dubbo URL, so it matches no known payload format (tried curator, serverset, nerve, dubbo, hostport)",
			notThisFormat: true,
		},
		{
			name:          "auto: truncated JSON",
			format:        "auto",
			node:          Node{Name: "x", Data: []byte(`{"name":"payments","address":"192.0.2.1","port":80`)},
			wantErr:       "zkwatch: payload: data is not valid JSON: unexpected end of JSON input, so it matches no known payload format",
			notThisFormat: true,
		},
		{
			name:          "auto: JSON of no known format",
			format:        "auto",
			node:          Node{Name: "x", Data: []byte(`{"ip":"192.0.2.1","listen":80}`)},
			wantErr:       "zkwatch: payload: data is a JSON object without the keys that identify a format (curator: address and one of registrationTimeUTC, serviceType, payload, sslPort, uriSpec; serverset: serviceEndpoint; nerve: host and port), so it matches no known payload format (tried curator, serverset, nerve, dubbo, hostport); set the service's format explicitly to see why that format rejects it",
			notThisFormat: true,
		},
		{
			name:          "auto: an address alone is not enough for curator",
			format:        "auto",
			node:          Node{Name: "x", Data: []byte(`{"name":"payments","address":"192.0.2.1","port":80}`)},
			wantErr:       "curator: address and one of registrationTimeUTC, serviceType, payload, sslPort, uriSpec;",
			notThisFormat: true,
		},
		{
			name:          "auto: plain text",
			format:        "auto",
			node:          Node{Name: "x", Data: []byte("hello")},
			wantErr:       "zkwatch: payload: data is neither JSON nor host:port, so it matches no known payload format",
			notThisFormat: true,
		},
		{
			name:    "auto: the first matching format's error stops the search",
			format:  "auto",
			node:    Node{Name: "x", Data: []byte(`{"address":"192.0.2.1","port":70000,"serviceType":"DYNAMIC","host":"192.0.2.2"}`)},
			wantErr: "zkwatch: curator payload: port 70000 out of range (want 1-65535)",
		},
		{
			name:    "auto: a bad serverset is not retried as nerve",
			format:  "auto",
			node:    Node{Name: "x", Data: []byte(`{"serviceEndpoint":{"host":"not a host","port":1},"host":"192.0.2.2","port":2}`)},
			wantErr: `zkwatch: serverset payload: serviceEndpoint: address "not a host" is neither an IP address nor a valid hostname`,
		},
		{
			name:    "auto: bad address in host:port data",
			format:  "auto",
			node:    Node{Name: "x", Data: []byte("under_score.example:80")},
			wantErr: `zkwatch: hostport payload: data: address "under_score.example" is neither an IP address nor a valid hostname`,
		},
		{
			name:          "concrete format that does not match names itself",
			format:        "serverset",
			node:          Node{Name: "x", Data: samplePayload(t, "nerve/nerve.json")},
			wantErr:       `zkwatch: serverset payload: JSON object has neither "serviceEndpoint" nor "additionalEndpoints"`,
			notThisFormat: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.node.Ctime = decodeTestCtime()
			got, err := Decode(tc.format, tc.endpoint, tc.node)
			checkDecoded(t, got, err, decodeCase{wantErr: tc.wantErr, notThisFormat: tc.notThisFormat})
		})
	}
}

func TestCheckAddress(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	name253 := strings.Join([]string{long63, long63, long63, strings.Repeat("b", 61)}, ".")
	cases := []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{name: "IPv4", in: "192.0.2.1", want: "192.0.2.1"},
		{name: "IPv6 canonicalised", in: "2001:DB8:0:0:0:0:0:1", want: "2001:db8::1"},
		{name: "IPv4-mapped IPv6 becomes IPv4", in: "::ffff:198.51.100.9", want: "198.51.100.9"},
		{name: "hostname", in: "api-1.example.com", want: "api-1.example.com"},
		{name: "hostname case kept", in: "DESKTOP-3058MDQ.lan", want: "DESKTOP-3058MDQ.lan"},
		{name: "single label", in: "localhost", want: "localhost"},
		{name: "label starting with a digit", in: "1password.example", want: "1password.example"},
		{name: "trailing dot stripped", in: "api.example.com.", want: "api.example.com"},
		{name: "253 bytes", in: name253, want: name253},
		{name: "253 bytes plus trailing dot", in: name253 + ".", want: name253},
		{name: "254 bytes", in: name253 + "c", wantErr: "neither an IP address nor a valid hostname"},
		{name: "label of 64 bytes", in: long63 + "a.example", wantErr: "neither an IP address nor a valid hostname"},
		{name: "empty", in: "", wantErr: "address is empty"},
		{name: "only a dot", in: ".", wantErr: "neither"},
		{name: "empty label", in: "a..example", wantErr: "neither"},
		{name: "leading hyphen", in: "-a.example", wantErr: "neither"},
		{name: "trailing hyphen", in: "a-.example", wantErr: "neither"},
		{name: "underscore", in: "my_host.example", wantErr: "neither"},
		{name: "space", in: "my host", wantErr: "neither"},
		{name: "IPv4 octet out of range", in: "192.0.2.300", wantErr: "neither"},
		{name: "IPv4 with leading zero", in: "192.0.2.010", wantErr: "neither"},
		{name: "IPv6 with zone", in: "fe80::1%eth0", wantErr: "has an IPv6 zone"},
		{name: "bracketed IPv6", in: "[2001:db8::1]", wantErr: "neither"},
		{name: "host:port", in: "192.0.2.1:80", wantErr: "neither"},
		{name: "URL", in: "http://192.0.2.1/", wantErr: "neither"},
		{name: "unspecified IPv4", in: "0.0.0.0", wantErr: "address 0.0.0.0 is unspecified"},
		{name: "unspecified IPv6", in: "::", wantErr: "address :: is unspecified"},
		{name: "not UTF-8", in: "host\xff.example", wantErr: "neither"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkAddress(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("checkAddress(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("checkAddress(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseWeight(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want uint16
	}{
		{name: "integer", in: "50", want: 50},
		{name: "zero", in: "0", want: 0},
		{name: "max", in: "65535", want: 65535},
		{name: "clamped", in: "65536", want: 65535},
		{name: "beyond int64 clamped", in: "99999999999999999999", want: 65535},
		{name: "spaces", in: " 7 ", want: 7},
		{name: "decimal rounded", in: "2.5", want: 3},
		{name: "exponent", in: "1e2", want: 100},
		{name: "huge float clamped", in: "1e400", want: 65535},
		{name: "negative", in: "-1", want: DefaultWeight},
		{name: "negative float", in: "-0.5", want: DefaultWeight},
		{name: "empty", in: "", want: DefaultWeight},
		{name: "word", in: "heavy", want: DefaultWeight},
		{name: "Inf is not a weight", in: "Inf", want: DefaultWeight},
		{name: "NaN is not a weight", in: "NaN", want: DefaultWeight},
		{name: "hex float is not a weight", in: "0x1p4", want: DefaultWeight},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseWeight(tc.in); got != tc.want {
				t.Errorf("parseWeight(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestClip(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want string
	}{
		{name: "short kept", in: "abc", want: "abc"},
		{name: "64 bytes kept", in: strings.Repeat("x", 64), want: strings.Repeat("x", 64)},
		{name: "long cut", in: strings.Repeat("x", 100), want: strings.Repeat("x", 64) + "…"},
		{name: "cut on a rune boundary", in: strings.Repeat("x", 63) + "é" + "tail", want: strings.Repeat("x", 63) + "…"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := clip(tc.in); got != tc.want {
				t.Errorf("clip = %q, want %q", got, tc.want)
			}
		})
	}
}
