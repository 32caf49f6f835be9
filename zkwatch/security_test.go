package zkwatch

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/zkdns/zkdns/internal/testutil"
)

// count returns how many records contain every one of parts.
// logBuffer collects a logger's text output, one record per line, for
// tests that assert on what was logged and how often.
type logBuffer struct{ testutil.LogBuffer }

func (l *logBuffer) count(parts ...string) int {
	n := 0
	for line := range strings.SplitSeq(l.String(), "\n") {
		all := line != ""
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// logger logs every level, the client's debug chatter included, so that
// a test can tell that a secret appears nowhere.
func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// securedWatcher is a Watcher under test with what it logged and counted.
type securedWatcher struct {
	w       *Watcher
	rec     *recorder
	logs    *logBuffer
	metrics *Metrics
}

// startSecuredWatcher runs a Watcher with opts (Publish, Logger and
// Metrics are filled in) until the test ends. tweak, if set, adjusts the
// Watcher before it runs.
func startSecuredWatcher(t *testing.T, opts Options, spec Spec, tweak func(*Watcher)) *securedWatcher {
	t.Helper()
	sw := &securedWatcher{rec: newRecorder(), logs: &logBuffer{}}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	sw.metrics = m
	opts.Publish = sw.rec.publish
	opts.Logger = sw.logs.logger()
	opts.Metrics = m
	if sw.w, err = New(opts, spec); err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(sw.w)
	}
	runWatcher(t, sw.w)
	return sw
}

// eventually polls cond until it holds, failing the test after waitLimit.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, waitLimit, what, func() (bool, string) { return cond(), "" })
}

// counterValue reads a counter's current value.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func digest(user, password string) Auth {
	return Auth{Scheme: "digest", Credentials: []byte(user + ":" + password)}
}

func TestAuthNeverPrintsCredentials(t *testing.T) {
	const secret = "s3cret-Pa55"
	opts := Options{Servers: []string{"192.0.2.1:2181"}, Auth: digest("zkdns", secret)}
	var jsonOut bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonOut, nil)).Info("options", "auth", opts.Auth)
	var textOut bytes.Buffer
	slog.New(slog.NewTextHandler(&textOut, nil)).Info("options", "auth", opts.Auth)
	cases := []struct {
		name     string
		out      string
		mustHave string
	}{
		{"%v of Options", fmt.Sprintf("%v", opts), "digest"},
		{"%+v of Options", fmt.Sprintf("%+v", opts), "digest"},
		{"%#v of Options", fmt.Sprintf("%#v", opts), "digest"},
		{"%s of Auth", fmt.Sprintf("%s", opts.Auth), "digest"},
		{"%q of Auth", fmt.Sprintf("%q", opts.Auth), "digest"},
		{"slog JSON", jsonOut.String(), `"scheme":"digest"`},
		{"slog text", textOut.String(), "auth.scheme=digest"},
		{"anonymous", fmt.Sprintf("%v", Auth{}), "anonymous"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(tc.out, secret) || strings.Contains(tc.out, "zkdns:") {
				t.Errorf("output shows the credentials: %s", tc.out)
			}
			if !strings.Contains(tc.out, tc.mustHave) {
				t.Errorf("output %q lacks %q", tc.out, tc.mustHave)
			}
		})
	}
}

func TestNewRejectsIncompleteAuth(t *testing.T) {
	cases := []struct {
		name string
		auth Auth
		want string
	}{
		{"scheme without credentials", Auth{Scheme: "digest"}, `scheme "digest" has no credentials`},
		{"credentials without a scheme", Auth{Credentials: []byte("zkdns:pw")}, "no scheme"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{Servers: []string{"192.0.2.1:2181"}, Publish: func(Update) {}, Auth: tc.auth}, Spec{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "zkdns:pw") {
				t.Errorf("New = %v, want an error saying %q and not quoting the credentials", err, tc.want)
			}
		})
	}
}

// TestWatcherACLs runs watchers with different identities against paths
// whose ACLs admit some of them: each sees what its identity may read, a
// refused path is reported once and counted, the other services (and the
// other instances of a service with one refused instance) keep serving,
// and a refused service is published as existing and empty (NODATA).
func TestWatcherACLs(t *testing.T) {
	const passA, passB = "pw-of-alice-1", "pw-of-bob-2"
	admin := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	for _, a := range []Auth{digest("alice", passA), digest("bob", passB)} {
		if err := admin.AddAuth(a.Scheme, a.Credentials); err != nil {
			t.Fatal(err)
		}
	}
	base := testutil.TestRoot(t, admin) // admin may delete what it made
	world := zk.WorldACL(zk.PermAll)
	alice := zk.DigestACL(zk.PermAll, "alice", passA)
	bob := zk.DigestACL(zk.PermAll, "bob", passB)
	create := func(p, data string, acl []zk.ACL) {
		t.Helper()
		testutil.MkdirAll(t, admin, base)
		if _, err := admin.Create(p, []byte(data), 0, acl); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	create(base+"/open", "", world)
	create(base+"/open/o1", "192.0.2.1:80", world)
	create(base+"/mine", "", alice)
	create(base+"/mine/m1", "192.0.2.2:80", alice)
	create(base+"/theirs", "", bob)
	create(base+"/theirs/t1", "192.0.2.3:80", world)
	create(base+"/mixed", "", world)
	create(base+"/mixed/ok1", "192.0.2.4:80", world)
	create(base+"/mixed/locked", "192.0.2.5:80", bob)
	create(base+"/mixed/ok2", "192.0.2.6:80", world)
	spec := Spec{Services: []ServiceSpec{
		{Name: "open", Path: base + "/open"},
		{Name: "mine", Path: base + "/mine"},
		{Name: "theirs", Path: base + "/theirs"},
		{Name: "mixed", Path: base + "/mixed"},
	}}

	type want struct {
		ids     string
		denied  bool // the service path
		refused int  // instances
	}
	cases := []struct {
		name   string
		auth   Auth
		secret string
		want   map[string]want
	}{
		{
			name:   "as alice",
			auth:   digest("alice", passA),
			secret: passA,
			want: map[string]want{
				"open":   {ids: "o1"},
				"mine":   {ids: "m1"},
				"theirs": {denied: true},
				"mixed":  {ids: "ok1,ok2", refused: 1},
			},
		},
		{
			name: "anonymous",
			want: map[string]want{
				"open":   {ids: "o1"},
				"mine":   {denied: true},
				"theirs": {denied: true},
				"mixed":  {ids: "ok1,ok2", refused: 1},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sw := startSecuredWatcher(t, Options{
				Servers: []string{zkServer.Addr()}, SessionTimeout: 5 * time.Second, Auth: tc.auth,
			}, spec, nil)
			sw.rec.waitFor(t, "first sync", func(m map[string]ServiceState) bool { return len(m) == 4 })
			sw.rec.mu.Lock()
			view := sw.rec.services
			sw.rec.mu.Unlock()
			for name, w := range tc.want {
				s := view[name]
				// A refused instance is not an undecodable one: Invalid stays 0.
				if got := ids(s); got != w.ids || s.AccessDenied != w.denied || s.Denied != w.refused || s.Invalid != 0 || !s.Exists {
					t.Errorf("%s = ids %q access denied %v denied %d invalid %d exists %v; want ids %q access denied %v denied %d invalid 0 exists true",
						name, got, s.AccessDenied, s.Denied, s.Invalid, s.Exists, w.ids, w.denied, w.refused)
				}
				full := base + "/" + name
				if w.refused > 0 {
					full = base + "/mixed/locked"
				}
				wantLines, wantCount := 0, 0.0
				if w.denied || w.refused > 0 {
					wantLines, wantCount = 1, 1
				}
				if n := sw.logs.count("level=WARN", "ACL denies", "path="+full+" "); n != wantLines {
					t.Errorf("%s: %d warnings for %s, want %d\n%s", name, n, full, wantLines, sw.logs)
				}
				if got := counterValue(t, sw.metrics.aclDenials.WithLabelValues(name)); got != wantCount {
					t.Errorf("zkdns_zookeeper_acl_denied_total{service=%q} = %v, want %v", name, got, wantCount)
				}
			}
			if tc.secret != "" && strings.Contains(sw.logs.String(), tc.secret) {
				t.Errorf("the logs show the password:\n%s", sw.logs)
			}
		})
	}

	t.Run("discover root", func(t *testing.T) {
		create(base+"/root", "", alice)
		create(base+"/root/found", "", world)
		create(base+"/root/found/f1", "192.0.2.8:80", world)
		rootSpec := Spec{
			Services: []ServiceSpec{{Name: "open", Path: base + "/open"}},
			Discover: []DiscoverSpec{{Path: base + "/root"}},
		}
		cases := []struct {
			name      string
			auth      Auth
			wantFound bool
		}{
			{"as alice", digest("alice", passA), true},
			{"anonymous", Auth{}, false},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				sw := startSecuredWatcher(t, Options{
					Servers: []string{zkServer.Addr()}, SessionTimeout: 5 * time.Second, Auth: tc.auth,
				}, rootSpec, nil)
				sw.rec.waitFor(t, "first sync", hasIDs("open", "o1"))
				sw.rec.mu.Lock()
				found, ok := sw.rec.services["found"]
				sw.rec.mu.Unlock()
				if ok != tc.wantFound || ok && ids(found) != "f1" {
					t.Errorf("discovered service found = %+v (present %v), want present %v with f1", found, ok, tc.wantFound)
				}
				wantLines := 1
				if tc.wantFound {
					wantLines = 0
				}
				if n := sw.logs.count("level=WARN", "denies zkdns this discover path", "path="+base+"/root "); n != wantLines {
					t.Errorf("%d warnings about the root, want %d\n%s", n, wantLines, sw.logs)
				}
			})
		}
	})

	t.Run("re-reads report nothing new and a lifted ACL is picked up", func(t *testing.T) {
		sw := startSecuredWatcher(t, Options{
			Servers: []string{zkServer.Addr()}, SessionTimeout: 5 * time.Second, Auth: digest("alice", passA),
		}, spec, func(w *Watcher) { w.access.recheck = 100 * time.Millisecond })
		sw.rec.waitFor(t, "first sync", hasIDs("mixed", "ok1,ok2"))
		// A new instance re-lists the service; the re-check re-reads the
		// refused paths several times over.
		testutil.CreateZnode(t, admin, base+"/mixed/ok3", "192.0.2.7:80", zk.FlagEphemeral)
		sw.rec.waitFor(t, "new instance beside the refused one", hasIDs("mixed", "ok1,ok2,ok3"))
		time.Sleep(time.Second)
		for _, p := range []string{base + "/theirs", base + "/mixed/locked"} {
			if n := sw.logs.count("ACL denies", "path="+p+" "); n != 1 {
				t.Errorf("%d warnings for %s after re-reads, want 1\n%s", n, p, sw.logs)
			}
		}

		if _, err := admin.SetACL(base+"/theirs", world, -1); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.SetACL(base+"/mixed/locked", world, -1); err != nil {
			t.Fatal(err)
		}
		sw.rec.waitFor(t, "lifted ACLs", func(m map[string]ServiceState) bool {
			return ids(m["theirs"]) == "t1" && !m["theirs"].AccessDenied &&
				ids(m["mixed"]) == "locked,ok1,ok2,ok3" && m["mixed"].Denied == 0
		})
		if n := sw.logs.count("ACL now lets zkdns read"); n != 2 {
			t.Errorf("%d lines saying an ACL was lifted, want 2\n%s", n, sw.logs)
		}
	})
}

// tlsFixture is a ZooKeeper serving TLS, and the files a client needs.
type tlsFixture struct {
	zk      *testutil.ZooKeeper
	roots   *x509.CertPool // the CA that signed the server's certificate
	client  tls.Certificate
	strange *x509.CertPool // a CA nobody used
}

// startTLSZooKeeper starts a ZooKeeper whose secure port requires a client
// certificate, with a certificate for 127.0.0.1 and zookeeper.test.
func startTLSZooKeeper(t *testing.T) *tlsFixture {
	t.Helper()
	ca, err := testutil.NewTestCA("zkdns test CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testutil.NewTestCA("unrelated CA")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue("", "127.0.0.1", "zookeeper.test")
	if err != nil {
		t.Fatal(err)
	}
	clientKP, err := ca.Issue("zkdns", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	client, err := tls.X509KeyPair(clientKP.CertPEM, clientKP.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	z := testutil.StartZooKeeperFor(t, testutil.ZooKeeperOptions{TLS: &testutil.ZooKeeperTLS{
		Server: server, ClientCAPEM: ca.CertPEM, ClientAuth: "need",
	}})
	pool := func(c *testutil.TestCA) *x509.CertPool {
		p := x509.NewCertPool()
		p.AppendCertsFromPEM(c.CertPEM)
		return p
	}
	return &tlsFixture{zk: z, roots: pool(ca), client: client, strange: pool(other)}
}

// TestWatcherTLS connects to ZooKeeper's secure port with good and bad TLS
// settings. A good one syncs; a bad one never does, is logged once (not
// once per retry) with the server and the reason, is counted on every
// attempt, and leaves the watcher retrying until it is stopped.
func TestWatcherTLS(t *testing.T) {
	fx := startTLSZooKeeper(t)
	plain := testutil.ConnectZK(t, fx.zk.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, plain)
	testutil.CreateZnode(t, plain, base+"/svc/i1", "192.0.2.10:80", zk.FlagEphemeral)
	spec := Spec{Services: []ServiceSpec{{Name: "svc", Path: base + "/svc"}}}
	certs := []tls.Certificate{fx.client}

	cases := []struct {
		name     string
		config   *tls.Config
		wantSync bool
		wantErr  string // in the logged handshake failure
	}{
		{"server name and client certificate", &tls.Config{RootCAs: fx.roots, ServerName: "zookeeper.test", Certificates: certs}, true, ""},
		{"server name defaults to the dialled host", &tls.Config{RootCAs: fx.roots, Certificates: certs}, true, ""},
		{"CA that did not sign the server", &tls.Config{RootCAs: fx.strange, ServerName: "zookeeper.test", Certificates: certs}, false, "unknown authority"},
		{"server name the certificate lacks", &tls.Config{RootCAs: fx.roots, ServerName: "other.test", Certificates: certs}, false, "other.test"},
		{"no client certificate", &tls.Config{RootCAs: fx.roots, ServerName: "zookeeper.test"}, false, "remote error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sw := startSecuredWatcher(t, Options{
				Servers: []string{fx.zk.SecureAddr()}, SessionTimeout: 6 * time.Second, TLS: tc.config,
			}, spec, nil)
			if tc.wantSync {
				sw.rec.waitFor(t, "sync over TLS", hasIDs("svc", "i1"))
				testutil.CreateZnode(t, plain, base+"/svc/i2", "192.0.2.11:80", zk.FlagEphemeral)
				sw.rec.waitFor(t, "a watch event over TLS", hasIDs("svc", "i1,i2"))
				if err := plain.Delete(base+"/svc/i2", -1); err != nil {
					t.Fatal(err)
				}
				sw.rec.waitFor(t, "a deletion over TLS", hasIDs("svc", "i1"))
				if n := counterValue(t, sw.metrics.tlsFailures); n != 0 {
					t.Errorf("%v handshake failures counted on a good connection", n)
				}
				return
			}
			// The reason is logged with the server; two more attempts
			// after it (the watcher keeps trying) log nothing new.
			logged := func() int {
				return sw.logs.count("level=WARN", "TLS handshake failed", "server="+fx.zk.SecureAddr(), tc.wantErr)
			}
			eventually(t, "the handshake failure logged", func() bool { return logged() > 0 })
			after := counterValue(t, sw.metrics.tlsFailures)
			eventually(t, "two more handshake attempts", func() bool { return counterValue(t, sw.metrics.tlsFailures) >= after+2 })
			if n := logged(); n != 1 {
				t.Errorf("%d warnings for repeated identical failures, want 1\n%s", n, sw.logs)
			}
			st := sw.w.Status()
			sw.rec.mu.Lock()
			published := len(sw.rec.updates)
			sw.rec.mu.Unlock()
			if st.Synced || st.State == zk.StateHasSession || published != 0 {
				t.Errorf("after failed handshakes: status %+v, %d updates published; want no session and nothing published", st, published)
			}
		})
	}
}

// TestWatcherTLSHandshakeTimeout: a server that takes connections and
// never answers the TLS handshake is logged once, with advice that fits a
// slow server rather than a certificate, and is not counted as a TLS
// failure: the counter is for settings to fix.
func TestWatcherTLSHandshakeTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	held := make(chan net.Conn, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			select {
			case held <- c: // kept open, unanswered, until the test ends
			default:
				c.Close()
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		close(held)
		for c := range held {
			c.Close()
		}
	})

	sw := startSecuredWatcher(t, Options{
		Servers: []string{l.Addr().String()}, SessionTimeout: 1500 * time.Millisecond,
		TLS: &tls.Config{ServerName: "zookeeper.test"},
	}, Spec{Services: []ServiceSpec{{Name: "svc", Path: "/svc"}}}, nil)
	// A third connection comes only after the first two timed out.
	eventually(t, "three handshake attempts", func() bool { return accepted.Load() >= 3 })
	if n := sw.logs.count("level=WARN", "TLS handshake failed", "server="+l.Addr().String(), "did not answer in time"); n != 1 {
		t.Errorf("%d warnings naming a slow server for repeated handshake timeouts, want 1\n%s", n, sw.logs)
	}
	if n := sw.logs.count("ca_file"); n != 0 {
		t.Errorf("a handshake timeout blamed on the TLS settings:\n%s", sw.logs)
	}
	if n := counterValue(t, sw.metrics.tlsFailures); n != 0 {
		t.Errorf("%v TLS failures counted for handshakes that timed out, want 0", n)
	}
}
