package registrar

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewValidates(t *testing.T) {
	valid := func() Options {
		return Options{Servers: []string{"127.0.0.1:2181"}, Path: "/services/payments", Address: "192.0.2.90", Port: 8080}
	}
	tests := []struct {
		name    string
		edit    func(*Options)
		wantErr string // "" means New succeeds
	}{
		{"valid", func(*Options) {}, ""},
		{"zero value names every required field", func(o *Options) { *o = Options{} }, "missing Servers (the ZooKeeper ensemble), Path"},
		{"missing port", func(o *Options) { o.Port = 0 }, "missing Port"},
		{"empty server", func(o *Options) { o.Servers = []string{" "} }, "empty entry"},
		{"relative path", func(o *Options) { o.Path = "services/payments" }, "absolute znode path"},
		{"root path", func(o *Options) { o.Path = "/" }, "absolute znode path"},
		{"trailing slash", func(o *Options) { o.Path = "/services/" }, "empty"},
		{"dot-dot", func(o *Options) { o.Path = "/services/../x" }, `".."`},
		{"port out of range", func(o *Options) { o.Port = 70000 }, "Port 70000 is out of range"},
		{"unknown format", func(o *Options) { o.Format = "dubbo" }, `Format "dubbo" is not one of curator, serverset, nerve, hostport`},
		{"negative weight", func(o *Options) { o.Weight = -1 }, "Weight -1"},
		{"negative interval", func(o *Options) { o.Interval = -time.Second }, "Interval -1s is negative"},
		{"negative rise", func(o *Options) { o.Rise = -1 }, "Rise -1 is negative"},
		{"bad check", func(o *Options) { o.Check = "ping://x" }, "Check: check"},
		{"bad warm-up", func(o *Options) { o.Warmup = "ping://x" }, "Warmup: warmup"},
		{"bad address", func(o *Options) { o.Address = "0.0.0.0" }, "Address: address 0.0.0.0"},
		{"bad id", func(o *Options) { o.ID = "a/b" }, "ID \"a/b\""},
		{"empty metadata key", func(o *Options) { o.Metadata = map[string]string{"": "x"} }, "empty key"},
		{"auth without credentials", func(o *Options) { o.Auth = &Auth{} }, "no Credentials"},
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
			if !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "registrar: ") {
				t.Errorf("error %q, want one starting registrar: and containing %q", err, tc.wantErr)
			}
		})
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
