package testutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

func TestTestCAIssue(t *testing.T) {
	ca, err := NewTestCA("zkdns test CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewTestCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue("", "127.0.0.1", "zookeeper.test")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		t.Fatalf("issued pair does not load: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := func(c *TestCA) *x509.CertPool {
		p := x509.NewCertPool()
		p.AppendCertsFromPEM(c.CertPEM)
		return p
	}
	cases := []struct {
		name    string
		roots   *x509.CertPool
		host    string
		usage   x509.ExtKeyUsage
		wantErr bool
	}{
		{"IP name as server", pool(ca), "127.0.0.1", x509.ExtKeyUsageServerAuth, false},
		{"DNS name as server", pool(ca), "zookeeper.test", x509.ExtKeyUsageServerAuth, false},
		{"usable as a client certificate", pool(ca), "", x509.ExtKeyUsageClientAuth, false},
		{"name it was not issued for", pool(ca), "other.test", x509.ExtKeyUsageServerAuth, true},
		{"another CA does not verify it", pool(other), "127.0.0.1", x509.ExtKeyUsageServerAuth, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := leaf.Verify(x509.VerifyOptions{Roots: tc.roots, DNSName: tc.host, KeyUsages: []x509.ExtKeyUsage{tc.usage}})
			if (err != nil) != tc.wantErr {
				t.Errorf("Verify(%q) error = %v, want error %v", tc.host, err, tc.wantErr)
			}
		})
	}
}

func TestZooKeeperTLSOptionsRejected(t *testing.T) {
	ca, err := NewTestCA("zkdns test CA")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue("", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opts ZooKeeperTLS
		want string
	}{
		{"no server certificate", ZooKeeperTLS{}, "needs a certificate and a key"},
		{"unknown client auth", ZooKeeperTLS{Server: server, ClientAuth: "maybe"}, `ClientAuth "maybe"`},
		{"client auth without a CA", ZooKeeperTLS{Server: server, ClientAuth: "need"}, "needs ClientCAPEM"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			z, err := StartZooKeeper(context.Background(), ZooKeeperOptions{TLS: &tc.opts})
			if err == nil {
				z.Stop()
				t.Fatal("StartZooKeeper accepted bad TLS options")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestZooKeeperTLS starts a server that requires client certificates and
// checks what a client sees on each port.
func TestZooKeeperTLS(t *testing.T) {
	ca, err := NewTestCA("zkdns test CA")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue("", "127.0.0.1", "zookeeper.test")
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue("zkdns-client", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	clientPair, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	z, err := StartZooKeeper(ctx, ZooKeeperOptions{TLS: &ZooKeeperTLS{Server: server, ClientCAPEM: ca.CertPEM, ClientAuth: "need"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = z.Stop() })
	if z.SecureAddr() == "" || z.SecureAddr() == z.Addr() {
		t.Fatalf("SecureAddr() = %q beside Addr() %q, want a port of its own", z.SecureAddr(), z.Addr())
	}

	// The plain port still serves, so tests can set up znodes through it.
	plain := ConnectZK(t, z.Addr(), 5*time.Second)
	CreateZnode(t, plain, "/tls/probe", "192.0.2.1:80", 0)

	cases := []struct {
		name    string
		config  *tls.Config
		wantErr bool
	}{
		{"client certificate is served", &tls.Config{RootCAs: roots, ServerName: "zookeeper.test", Certificates: []tls.Certificate{clientPair}}, false},
		{"no client certificate is refused", &tls.Config{RootCAs: roots, ServerName: "zookeeper.test"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := readOverTLS(z.SecureAddr(), tc.config, "/tls/probe")
			if (err != nil) != tc.wantErr {
				t.Errorf("read over TLS: %v, want error %v", err, tc.wantErr)
			}
		})
	}

	t.Run("restart keeps the secure port", func(t *testing.T) {
		before := z.SecureAddr()
		if err := z.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		if z.SecureAddr() != before {
			t.Errorf("SecureAddr() = %s after restart, was %s", z.SecureAddr(), before)
		}
		cfg := &tls.Config{RootCAs: roots, ServerName: "zookeeper.test", Certificates: []tls.Certificate{clientPair}}
		if err := readOverTLS(z.SecureAddr(), cfg, "/tls/probe"); err != nil {
			t.Errorf("read over TLS after restart: %v", err)
		}
	})
}

// readOverTLS opens a session over TLS and reads path. A refused
// handshake is returned as soon as it happens; a slow one (a JVM under
// load) is only retried.
func readOverTLS(addr string, cfg *tls.Config, path string) error {
	refused := make(chan error, 1)
	dial := func(network, address string, _ time.Duration) (net.Conn, error) {
		d := &tls.Dialer{Config: cfg}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := d.DialContext(ctx, network, address)
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			select {
			case refused <- err:
			default:
			}
		}
		return c, err
	}
	conn, events, err := zk.Connect([]string{addr}, 5*time.Second, zk.WithDialer(dial), zk.WithLogger(discardZKLogger{}))
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State != zk.StateHasSession {
				continue
			}
			data, _, err := conn.Get(path)
			if err == nil && len(data) == 0 {
				return errors.New("read returned no data")
			}
			return err
		case err := <-refused:
			return err
		case <-deadline:
			return errors.New("no session and no handshake error within 30 s")
		}
	}
}
