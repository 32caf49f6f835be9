package registrar

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewValidates(t *testing.T) {
	valid := func() Options {
		return Options{Servers: []string{"127.0.0.1:2181"}, Path: "/services/payments", Address: "192.0.2.90", Port: 8080}
	}
	tests := []struct {
		name string
		edit func(*Options)
		// wantErr is the whole message; "" means New succeeds.
		wantErr string
		// options are the fields the error names, in order.
		options []string
	}{
		{name: "valid", edit: func(*Options) {}},
		{
			name:    "zero value names every required field",
			edit:    func(o *Options) { *o = Options{} },
			wantErr: "missing Servers (the ZooKeeper ensemble), Path (the service's znode, such as /services/payments), Port (the instance's port)",
			options: []string{"Servers", "Path", "Port"},
		},
		{name: "missing port", edit: func(o *Options) { o.Port = 0 }, wantErr: "missing Port (the instance's port)", options: []string{"Port"}},
		{name: "empty server", edit: func(o *Options) { o.Servers = []string{" "} }, wantErr: "Servers has an empty entry", options: []string{"Servers"}},
		{name: "server port out of range", edit: func(o *Options) { o.Servers = []string{"127.0.0.1:2181", "127.0.0.1:99999"} },
			wantErr: `Servers "127.0.0.1:99999": port "99999" must be a number from 1 to 65535`, options: []string{"Servers"}},
		{name: "server with a port that is no number", edit: func(o *Options) { o.Servers = []string{"zk1:two"} },
			wantErr: `Servers "zk1:two": port "two" must be a number from 1 to 65535`, options: []string{"Servers"}},
		{name: "server without a host", edit: func(o *Options) { o.Servers = []string{":2181"} },
			wantErr: `Servers ":2181": must be host:port, e.g. "127.0.0.1:2181"`, options: []string{"Servers"}},
		{
			name:    "relative path",
			edit:    func(o *Options) { o.Path = "services/payments" },
			wantErr: `Path "services/payments" must be an absolute znode path below /, such as /services/payments`,
			options: []string{"Path"},
		},
		{name: "root path", edit: func(o *Options) { o.Path = "/" }, wantErr: `Path "/" must be an absolute znode path`, options: []string{"Path"}},
		{name: "trailing slash", edit: func(o *Options) { o.Path = "/services/" }, wantErr: `Path "/services/" has an empty`, options: []string{"Path"}},
		{name: "dot-dot", edit: func(o *Options) { o.Path = "/services/../x" }, wantErr: `Path "/services/../x" has an empty, "." or ".." element`, options: []string{"Path"}},
		{
			name:    "control character in the path",
			edit:    func(o *Options) { o.Path = "/services/a\x01" },
			wantErr: `Path "/services/a\x01": "a\x01" contains a character ZooKeeper does not allow in a path`,
			options: []string{"Path"},
		},
		{name: "port out of range", edit: func(o *Options) { o.Port = 70000 }, wantErr: "Port 70000 is out of range (want 1-65535)", options: []string{"Port"}},
		{name: "negative port", edit: func(o *Options) { o.Port = -1 }, wantErr: "Port -1 is out of range (want 1-65535)", options: []string{"Port"}},
		{
			name:    "unknown format",
			edit:    func(o *Options) { o.Format = "dubbo" },
			wantErr: `Format "dubbo" is not one of curator, serverset, nerve, hostport`,
			options: []string{"Format"},
		},
		{
			name:    "negative weight",
			edit:    func(o *Options) { o.Weight = -1 },
			wantErr: "Weight -1 is out of range (want 1-65535, or 0 for none)",
			options: []string{"Weight"},
		},
		{name: "empty metadata key", edit: func(o *Options) { o.Metadata = map[string]string{"": "x"} }, wantErr: "Metadata has an empty key", options: []string{"Metadata"}},
		{name: "metadata weight", edit: func(o *Options) { o.Metadata = map[string]string{"weight": "50"} }},
		{name: "metadata weight as Weight", edit: func(o *Options) { o.Metadata, o.Weight = map[string]string{"weight": "50"}, 50 }},
		{
			name:    "metadata weight 0",
			edit:    func(o *Options) { o.Metadata = map[string]string{"weight": "0"} },
			wantErr: `Metadata["weight"] 0 is out of range (want 1-65535: it is the base SRV weight)`,
			options: []string{`Metadata["weight"]`},
		},
		{
			name:    "metadata weight above 65535",
			edit:    func(o *Options) { o.Metadata = map[string]string{"weight": "99999"} },
			wantErr: `Metadata["weight"] 99999 is out of range (want 1-65535: it is the base SRV weight)`,
			options: []string{`Metadata["weight"]`},
		},
		{
			name:    "metadata weight beyond any integer",
			edit:    func(o *Options) { o.Metadata = map[string]string{"weight": "99999999999999999999"} },
			wantErr: `Metadata["weight"] 99999999999999999999 is out of range (want 1-65535: it is the base SRV weight)`,
			options: []string{`Metadata["weight"]`},
		},
		{
			name:    "metadata weight not a number",
			edit:    func(o *Options) { o.Metadata = map[string]string{"weight": "abc"} },
			wantErr: `Metadata["weight"] "abc" is not an integer (want 1-65535: it is the base SRV weight)`,
			options: []string{`Metadata["weight"]`},
		},
		{
			name:    "metadata weight other than Weight",
			edit:    func(o *Options) { o.Metadata, o.Weight = map[string]string{"weight": "60"}, 50 },
			wantErr: `Metadata["weight"] 60 differs from the base weight set on its own, 50: give the weight once`,
			options: []string{`Metadata["weight"]`},
		},
		{name: "negative session timeout", edit: func(o *Options) { o.SessionTimeout = -time.Second }, wantErr: "SessionTimeout -1s is negative", options: []string{"SessionTimeout"}},
		{name: "negative interval", edit: func(o *Options) { o.Interval = -time.Second }, wantErr: "Interval -1s is negative", options: []string{"Interval"}},
		{name: "negative timeout", edit: func(o *Options) { o.Timeout = -time.Second }, wantErr: "Timeout -1s is negative", options: []string{"Timeout"}},
		{name: "negative warm-up timeout", edit: func(o *Options) { o.WarmupTimeout = -time.Second }, wantErr: "WarmupTimeout -1s is negative", options: []string{"WarmupTimeout"}},
		{
			name:    "several negative durations: the first in Options",
			edit:    func(o *Options) { o.WarmupTimeout, o.Timeout, o.Interval = -1, -1, -1 },
			wantErr: "Interval -1ns is negative",
			options: []string{"Interval"},
		},
		{name: "negative rise", edit: func(o *Options) { o.Rise = -1 }, wantErr: "Rise -1 is negative", options: []string{"Rise"}},
		{name: "negative fall", edit: func(o *Options) { o.Fall = -1 }, wantErr: "Fall -1 is negative", options: []string{"Fall"}},
		{name: "negative warm-up requests", edit: func(o *Options) { o.WarmupRequests = -1 }, wantErr: "WarmupRequests -1 is negative", options: []string{"WarmupRequests"}},
		{name: "auth without credentials", edit: func(o *Options) { o.Auth = &Auth{} }, wantErr: "Auth has no Credentials", options: []string{"Auth"}},
		{
			name:    "bad check",
			edit:    func(o *Options) { o.Check = "ping://x" },
			wantErr: `Check "ping://x": want http://…, https://…, tcp://host:port or exec:COMMAND`,
			options: []string{"Check"},
		},
		{name: "check URL without host", edit: func(o *Options) { o.Check = "http:///health" }, wantErr: `Check "http:///health" has no host`, options: []string{"Check"}},
		{
			name:    "bad warm-up",
			edit:    func(o *Options) { o.Warmup = "ping://x" },
			wantErr: `Warmup "ping://x": want exec:COMMAND, http://… or https://…`,
			options: []string{"Warmup"},
		},
		{
			name:    "bad address",
			edit:    func(o *Options) { o.Address = "0.0.0.0" },
			wantErr: "Address 0.0.0.0 is what a service binds to, not where it is reached; give this host's address",
			options: []string{"Address"},
		},
		{name: "bad id", edit: func(o *Options) { o.ID = "a/b" }, wantErr: `ID "a/b" contains '/'; it must be a single znode name`, options: []string{"ID"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := valid()
			tc.edit(&opts)
			r, err := New(opts)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New accepted %+v", r.opts)
			}
			if !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("error %v does not wrap ErrInvalidOptions", err)
			}
			if want := "registrar: invalid options: " + tc.wantErr; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error\n %q\nwant one starting\n %q", err, want)
			}
			var first *OptionError
			if !errors.As(err, &first) || first.Option != tc.options[0] {
				t.Errorf("errors.As finds %+v in %v, want an *OptionError for %s", first, err, tc.options[0])
			}
			if got := optionsOf(err); !slices.Equal(got, tc.options) {
				t.Errorf("error names fields %q, want %q", got, tc.options)
			}
		})
	}
}

// optionsOf returns the fields of the *OptionErrors in err's tree, in
// order.
func optionsOf(err error) []string {
	var oe *OptionError
	if errors.As(err, &oe) && err == error(oe) {
		return []string{oe.Option}
	}
	var names []string
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			names = append(names, optionsOf(e)...)
		}
	}
	return names
}

func TestOptionError(t *testing.T) {
	inner := errors.New("70000 is out of range (want 1-65535)")
	err := error(&OptionError{Option: "Port", Err: inner})
	if got, want := err.Error(), "registrar: invalid options: Port 70000 is out of range (want 1-65535)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrInvalidOptions) || !errors.Is(err, inner) {
		t.Errorf("%v is not both ErrInvalidOptions and its Err", err)
	}
	if errors.Is(err, errors.New("registrar: invalid options")) {
		t.Errorf("%v matches an error that only shares ErrInvalidOptions's text", err)
	}
}

func TestNewDefaults(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want Options // the fields compared below
	}{
		{
			name: "zero values",
			opts: Options{Servers: []string{"127.0.0.1:2181"}, Path: "/services/payments", Address: "2001:db8::9", Port: 8080},
			want: Options{
				SessionTimeout: DefaultSessionTimeout, ID: "2001-db8--9-8080", Name: "payments", Format: FormatCurator,
				Interval: DefaultInterval, Timeout: DefaultTimeout, Rise: DefaultRise, Fall: DefaultFall,
				WarmupRequests: DefaultWarmupRequests, WarmupTimeout: DefaultWarmupTimeout, Drain: DefaultDrain,
			},
		},
		{
			name: "explicit values stay, a negative drain is none",
			opts: Options{
				Servers: []string{"127.0.0.1:2181"}, Path: "/services/payments", Address: "192.0.2.9", Port: 8080,
				SessionTimeout: 3 * time.Second, ID: "web-1", Name: "pay", Format: FormatNerve,
				Interval: time.Second, Timeout: 2 * time.Second, Rise: 1, Fall: 5,
				WarmupRequests: 3, WarmupTimeout: time.Second, Drain: -5 * time.Second,
			},
			want: Options{
				SessionTimeout: 3 * time.Second, ID: "web-1", Name: "pay", Format: FormatNerve,
				Interval: time.Second, Timeout: 2 * time.Second, Rise: 1, Fall: 5,
				WarmupRequests: 3, WarmupTimeout: time.Second, Drain: NoDrain,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := r.opts
			got.Servers, got.Path, got.Address, got.Port = nil, "", "", 0
			if r.logger == nil {
				t.Error("nil Logger did not become a discarding one")
			}
			want := tc.want
			if got.SessionTimeout != want.SessionTimeout || got.ID != want.ID || got.Name != want.Name ||
				got.Format != want.Format || got.Interval != want.Interval || got.Timeout != want.Timeout ||
				got.Rise != want.Rise || got.Fall != want.Fall || got.WarmupRequests != want.WarmupRequests ||
				got.WarmupTimeout != want.WarmupTimeout || got.Drain != want.Drain {
				t.Errorf("after defaults:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}
