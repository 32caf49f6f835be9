package registrar

import (
	"net/netip"
	"strings"
	"testing"
)

func TestCheckAddress(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "192.0.2.1", want: "192.0.2.1"},
		{in: "2001:DB8::1", want: "2001:db8::1"},
		{in: "::ffff:192.0.2.1", want: "192.0.2.1"},
		{in: "web-1.example.", want: "web-1.example"},
		{in: "0.0.0.0", wantErr: "binds to"},
		{in: "::", wantErr: "binds to"},
		{in: "fe80::1%eth0", wantErr: "zone"},
		{in: "192.0.2.300", wantErr: "neither"},
		{in: "web_1.example", wantErr: "neither"},
		{in: "-web.example", wantErr: "neither"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := checkAddress(tc.in)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("checkAddress(%q) = %q, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
				}
			case err != nil || got != tc.want:
				t.Errorf("checkAddress(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestDefaultID(t *testing.T) {
	tests := []struct {
		name    string
		address string
		port    int
		want    string
	}{
		{"ipv4", "192.0.2.1", 8080, "192.0.2.1-8080"},
		{"ipv6 colons become hyphens", "2001:db8::1", 443, "2001-db8--1-443"},
		{"hostname", "web-1.example", 80, "web-1.example-80"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := defaultID(tc.address, tc.port)
			if got != tc.want {
				t.Errorf("defaultID(%q, %d) = %q, want %q", tc.address, tc.port, got, tc.want)
			}
			if err := checkID(got); err != nil {
				t.Errorf("default ID %q is not a valid znode name: %v", got, err)
			}
		})
	}
}

func TestCheckID(t *testing.T) {
	tests := []struct {
		id      string
		wantErr bool
	}{
		{"web-1", false},
		{"payments:8080", false},
		{"a/b", true},
		{"..", true},
		{".", true},
		{"tab\there", true},
		{"c1\u0085", true},
		{"\ufff5", true},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			if err := checkID(tc.id); (err != nil) != tc.wantErr {
				t.Errorf("checkID(%q) = %v, want error %v", tc.id, err, tc.wantErr)
			}
		})
	}
}

// TestPrimaryAddress can only check what any host's answer must satisfy:
// an address other hosts could use, which zkdns would serve.
func TestPrimaryAddress(t *testing.T) {
	addr, err := primaryAddress()
	if err != nil {
		// A host without a route or a global address: the error must
		// say how to go on.
		if !strings.Contains(err.Error(), "set Address") {
			t.Errorf("primaryAddress() error %q does not say to set Address", err)
		}
		return
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		t.Fatalf("primaryAddress() = %q, not an IP: %v", addr, err)
	}
	if !usable(ip) || ip.IsLoopback() {
		t.Errorf("primaryAddress() = %s, which other hosts cannot reach", ip)
	}
	if got, err := checkAddress(addr); err != nil || got != addr {
		t.Errorf("checkAddress(primaryAddress()) = %q, %v", got, err)
	}
}
