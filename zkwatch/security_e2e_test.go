package zkwatch_test

// End to end through the daemon: [zookeeper.auth] and [zookeeper.tls] as an
// operator writes them, a ZooKeeper that requires TLS client certificates,
// and answers checked over DNS. The watcher-level tests next to this file
// cover each piece in detail; this checks that they are wired together.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/miekg/dns"

	"github.com/zkdns/zkdns/conf"
	"github.com/zkdns/zkdns/daemon"
	"github.com/zkdns/zkdns/internal/testutil"
)

// e2eWait bounds each wait for the daemon; it normally takes a second.
const e2eWait = 20 * time.Second

var dnsListening = regexp.MustCompile(`msg="dns listening".* addr=(\S+)`)

// waitLog waits until the log has a line matching re and returns its
// first submatch.
// syncedLog is a goroutine-safe buffer for the daemon's text log.
type syncedLog struct{ testutil.LogBuffer }

func (l *syncedLog) waitLog(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	var m []string
	testutil.Eventually(t, e2eWait, "a log line matching "+re.String(), func() (bool, string) {
		m = re.FindStringSubmatch(l.String())
		return m != nil, l.String()
	})
	if len(m) > 1 {
		return m[1]
	}
	return m[0]
}

// runDaemon runs the daemon on cfg until the test ends.
func runDaemon(t *testing.T, cfg *conf.Config) *syncedLog {
	t.Helper()
	logs := &syncedLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{
			Config: cfg,
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon.Run: %v", err)
			}
		case <-time.After(e2eWait):
			t.Error("daemon did not stop")
		}
	})
	return logs
}

func query(t *testing.T, server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("query %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // not subject to the umask
		t.Fatal(err)
	}
	return path
}

func TestDaemonOverTLSWithDigestAuth(t *testing.T) {
	const password = "e2e-Secret-pw"
	dir := t.TempDir()
	ca, err := testutil.NewTestCA("zkdns e2e CA")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := testutil.NewTestCA("unrelated CA")
	if err != nil {
		t.Fatal(err)
	}
	serverKP, err := ca.Issue("", "127.0.0.1", "zookeeper.test")
	if err != nil {
		t.Fatal(err)
	}
	clientKP, err := ca.Issue("zkdns", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	caFile, err := ca.WriteCert(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	strangerFile, err := stranger.WriteCert(dir, "stranger")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := clientKP.WriteFiles(dir, "zkdns")
	if err != nil {
		t.Fatal(err)
	}
	authFile := writeFile(t, filepath.Join(dir, "zk.auth"), []byte("zkdns:"+password+"\n"), 0o600)
	looseAuthFile := writeFile(t, filepath.Join(dir, "loose.auth"), []byte("zkdns:"+password+"\n"), 0o644)

	z := testutil.StartZooKeeperFor(t, testutil.ZooKeeperOptions{TLS: &testutil.ZooKeeperTLS{
		Server: serverKP, ClientCAPEM: ca.CertPEM, ClientAuth: "need",
	}})

	// Set up through the plain port, as both users.
	admin := testutil.ConnectZK(t, z.Addr(), 10*time.Second)
	for _, creds := range []string{"zkdns:" + password, "other:other-pw"} {
		if err := admin.AddAuth("digest", []byte(creds)); err != nil {
			t.Fatal(err)
		}
	}
	mine := zk.DigestACL(zk.PermAll, "zkdns", password)
	theirs := zk.DigestACL(zk.PermAll, "other", "other-pw")
	world := zk.WorldACL(zk.PermAll)
	testutil.MkdirAll(t, admin, "/e2e")
	for _, n := range []struct {
		path, data string
		acl        []zk.ACL
	}{
		{"/e2e/payments", "", mine},
		{"/e2e/payments/p1", "192.0.2.80:8080", mine},
		{"/e2e/secret", "", theirs},
		{"/e2e/secret/s1", "192.0.2.90:8080", world},
		{"/e2e/hostile", "", world},
		{"/e2e/hostile/h1", "192.0.2.81:80", world},
		{"/e2e/hostile/web_1", "192.0.2.82:80", world},
		{"/e2e/hostile/web.1", "192.0.2.83:80", world},
		{"/e2e/hostile/bad-port", "192.0.2.84:70000", world},
		{"/e2e/hostile/garbage", "\xff\xfe{{{", world},
	} {
		if _, err := admin.Create(n.path, []byte(n.data), 0, n.acl); err != nil {
			t.Fatalf("create %s: %v", n.path, err)
		}
	}

	config := func(t *testing.T, auth, ca string) *conf.Config {
		t.Helper()
		src := fmt.Sprintf(`
[zookeeper]
servers = [%q]
session_timeout = "6s"
[zookeeper.auth]
scheme = "digest"
credentials_file = %q
[zookeeper.tls]
ca_file = %q
cert_file = %q
key_file = %q
server_name = "zookeeper.test"
[dns]
listen = ["127.0.0.1:0"]
[admin]
listen = ""
[[service]]
name = "payments"
path = "/e2e/payments"
[[service]]
name = "secret"
path = "/e2e/secret"
[[service]]
name = "hostile"
path = "/e2e/hostile"
`, z.SecureAddr(), auth, ca, certFile, keyFile)
		cfg, err := conf.Parse(filepath.Join(dir, "zkdns.toml"), []byte(src))
		if err != nil {
			t.Fatalf("config: %v", err)
		}
		return cfg
	}

	t.Run("credentials readable by others refuse the start", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
		defer cancel()
		err := daemon.Run(ctx, daemon.Options{Config: config(t, looseAuthFile, caFile)})
		if err == nil || !strings.Contains(err.Error(), "chmod 600") || !strings.Contains(err.Error(), looseAuthFile) {
			t.Fatalf("daemon.Run = %v, want a refusal naming %s and chmod 600", err, looseAuthFile)
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("the error shows the password: %v", err)
		}
	})

	t.Run("a CA that did not sign the server: logged, SERVFAIL", func(t *testing.T) {
		logs := runDaemon(t, config(t, authFile, strangerFile))
		server := logs.waitLog(t, dnsListening)
		logs.waitLog(t, regexp.MustCompile(`level=WARN msg="zookeeper TLS handshake failed.*unknown authority`))
		if r := query(t, server, "payments.local", dns.TypeSRV); r.Rcode != dns.RcodeServerFailure {
			t.Errorf("payments.local SRV before any sync: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
		}
		if strings.Contains(logs.String(), password) {
			t.Errorf("the logs show the password:\n%s", logs)
		}
	})

	t.Run("TLS with a client certificate and digest auth", func(t *testing.T) {
		logs := runDaemon(t, config(t, authFile, caFile))
		server := logs.waitLog(t, dnsListening)
		logs.waitLog(t, regexp.MustCompile(`msg="ready: first full sync`))

		cases := []struct {
			name  string
			qname string
			qtype uint16
			want  []string // answer data, sorted; nil means NODATA
		}{
			{"readable with zkdns's identity", "payments.local", dns.TypeA, []string{"192.0.2.80"}},
			{"denied by ACL answers NODATA", "secret.local", dns.TypeA, nil},
			{"hostile data: the good instances serve", "hostile.local", dns.TypeA, []string{"192.0.2.81", "192.0.2.82", "192.0.2.83"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := query(t, server, tc.qname, tc.qtype)
				var got []string
				for _, rr := range r.Answer {
					if a, ok := rr.(*dns.A); ok {
						got = append(got, a.A.String())
					}
				}
				sort.Strings(got)
				if r.Rcode != dns.RcodeSuccess || strings.Join(got, ",") != strings.Join(tc.want, ",") {
					t.Errorf("%s: %s %q, want NOERROR %q", tc.qname, dns.RcodeToString[r.Rcode], got, tc.want)
				}
			})
		}

		t.Run("colliding names get targets of their own", func(t *testing.T) {
			r := query(t, server, "hostile.local", dns.TypeSRV)
			targets := map[string]bool{}
			for _, rr := range r.Answer {
				if srv, ok := rr.(*dns.SRV); ok {
					targets[srv.Target] = true
				}
			}
			if len(targets) != 3 {
				t.Errorf("SRV targets %v, want 3 distinct (h1, web_1, web.1)", targets)
			}
		})
		if strings.Contains(logs.String(), password) {
			t.Errorf("the logs show the password:\n%s", logs)
		}
	})
}
