package testutil

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testZone answers the DNS tests' queries. big.example. is truncated over
// UDP and answered in full over TCP, so a client must fall back to TCP.
func testZone(w dns.ResponseWriter, req *dns.Msg) {
	reply := new(dns.Msg)
	reply.SetReply(req)
	reply.Authoritative = true
	q := req.Question[0]
	_, overUDP := w.RemoteAddr().(*net.UDPAddr)
	rr := func(s string) {
		r, err := dns.NewRR(s)
		if err != nil {
			panic(err)
		}
		reply.Answer = append(reply.Answer, r)
	}
	switch name := strings.ToLower(q.Name); {
	case name == "one.example." && q.Qtype == dns.TypeA:
		rr("one.example. 5 IN A 192.0.2.1")
	case name == "two.example." && q.Qtype == dns.TypeA:
		rr("two.example. 5 IN A 192.0.2.2")
		rr("two.example. 5 IN A 198.51.100.2")
	case name == "two.example." && q.Qtype == dns.TypeAAAA:
		rr("two.example. 5 IN AAAA 2001:db8::2")
	case name == "big.example." && overUDP:
		reply.Truncated = true
	case name == "big.example." && q.Qtype == dns.TypeA:
		rr("big.example. 5 IN A 192.0.2.10")
	case name == "one.example.", name == "two.example.", name == "big.example.":
		// NODATA
	default:
		reply.Rcode = dns.RcodeNameError
	}
	_ = w.WriteMsg(reply)
}

// startDNSServer serves testZone over UDP and TCP on one loopback port
// until the test ends, and returns that ip:port.
func startDNSServer(t *testing.T) string {
	t.Helper()
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	// TCP on the UDP socket's port can be taken already: try a few.
	for range 5 {
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatalf("bind UDP and TCP on one port: %v", err)
	}
	handler := dns.HandlerFunc(testZone)
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: handler, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second},
		{Listener: ln, Handler: handler, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		served := make(chan error, 1)
		go func() { served <- srv.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-served:
			t.Fatalf("DNS test server: %v", err)
		}
		t.Cleanup(func() {
			_ = srv.Shutdown()
			<-served
		})
	}
	return pc.LocalAddr().String()
}

func TestDig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	server := startDNSServer(t)

	tests := []struct {
		name string
		args []string
		// wantLines are the +short answer lines, in any order.
		wantLines []string
		// wantText must appear in the full output.
		wantText string
	}{
		{name: "one address", args: []string{"one.example.", "A", "+short"}, wantLines: []string{"192.0.2.1"}},
		{name: "two addresses", args: []string{"two.example.", "A", "+short"}, wantLines: []string{"192.0.2.2", "198.51.100.2"}},
		{name: "ipv6 address", args: []string{"two.example.", "AAAA", "+short"}, wantLines: []string{"2001:db8::2"}},
		{name: "name is matched case-insensitively", args: []string{"ONE.Example.", "A", "+short"}, wantLines: []string{"192.0.2.1"}},
		{name: "nxdomain is an answer", args: []string{"missing.example.", "A"}, wantText: "status: NXDOMAIN"},
		{name: "tcp fallback", args: []string{"big.example.", "A", "+short"}, wantLines: []string{"192.0.2.10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Dig(ctx, server, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantLines != nil {
				got := strings.Fields(out)
				slices.Sort(got)
				if !slices.Equal(got, tt.wantLines) {
					t.Errorf("dig %v = %q, want %q", tt.args, got, tt.wantLines)
				}
			}
			if !strings.Contains(out, tt.wantText) {
				t.Errorf("dig %v output does not contain %q:\n%s", tt.args, tt.wantText, out)
			}
		})
	}
}

func TestDigErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A port nothing listens on: closing the socket frees it.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	silentAddr := silent.LocalAddr().String()
	silent.Close()

	tests := []struct {
		name    string
		server  string
		path    string // PATH for dig; empty keeps the real one
		wantErr string
	}{
		{name: "dig not installed", server: "127.0.0.1:53", path: t.TempDir(), wantErr: "apt-get install dnsutils"},
		{name: "server without port", server: "127.0.0.1", wantErr: "not ip:port"},
		{name: "nothing listening", server: silentAddr, wantErr: "testutil: dig @127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.path != "" {
				t.Setenv("PATH", tt.path)
			}
			out, err := Dig(ctx, tt.server, "one.example.", "A")
			if err == nil {
				t.Fatalf("Dig succeeded with %q, want an error", out)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestResolver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resolver := Resolver(startDNSServer(t))

	tests := []struct {
		name         string
		host         string
		want         []string
		wantNotFound bool
	}{
		{name: "one address", host: "one.example.", want: []string{"192.0.2.1"}},
		{name: "both families", host: "two.example.", want: []string{"192.0.2.2", "198.51.100.2", "2001:db8::2"}},
		{name: "truncated over udp, full over tcp", host: "big.example.", want: []string{"192.0.2.10"}},
		{name: "nxdomain", host: "missing.example.", wantNotFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolver.LookupHost(ctx, tt.host)
			if tt.wantNotFound {
				var dnsErr *net.DNSError
				if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
					t.Fatalf("LookupHost(%s) = %v, %v; want not found", tt.host, got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("LookupHost(%s) = %v, want %v", tt.host, got, tt.want)
			}
		})
	}
}

func TestBuildBinary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A module of its own stands in for zkdns: BuildBinary must find its
	// root from a subdirectory and build ./cmd/zkdns there with -race.
	files := map[string]string{
		"go.mod":            "module example.com/buildcheck\n\ngo 1.26\n",
		"cmd/zkdns/main.go": "package main\n\nimport \"fmt\"\n\nvar race = false\n\nfunc main() { fmt.Printf(\"race=%v\", race) }\n",
		"cmd/zkdns/race.go": "//go:build race\n\npackage main\n\nfunc init() { race = true }\n",
	}
	good := t.TempDir()
	for name, text := range files {
		path := filepath.Join(good, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	noCmd := t.TempDir()
	if err := os.WriteFile(filepath.Join(noCmd, "go.mod"), []byte(files["go.mod"]), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		workDir string
		wantOut string
		wantErr string
	}{
		{name: "builds with the race detector", workDir: filepath.Join(good, "cmd", "zkdns"), wantOut: "race=true"},
		{name: "no cmd/zkdns", workDir: noCmd, wantErr: "cmd/zkdns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(tt.workDir)
			binary, err := BuildBinary(ctx, t.TempDir())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("BuildBinary error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.CommandContext(ctx, binary).Output()
			if err != nil {
				t.Fatalf("run %s: %v", binary, err)
			}
			if string(out) != tt.wantOut {
				t.Errorf("built binary printed %q, want %q", out, tt.wantOut)
			}
		})
	}
}
