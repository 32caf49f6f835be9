package testutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ZooKeeperTLS makes StartZooKeeper serve clients over TLS as well, on a
// second port of 127.0.0.1 (SecureAddr). The plain port (Addr) keeps
// serving, for setting up znodes and for the readiness check.
//
// ZooKeeper serves TLS only through its Netty connection factory, so the
// server runs with it (zk-local puts Netty on the class path). The PEM
// files are written to the server's directory; ZooKeeper 3.8 reads them
// with ssl.keyStore.type=PEM and ssl.trustStore.type=PEM.
type ZooKeeperTLS struct {
	// Server is the server's certificate and key; see TestCA.Issue.
	// Required.
	Server KeyPair

	// ClientCAPEM verifies client certificates. Required unless
	// ClientAuth is "none".
	ClientCAPEM []byte

	// ClientAuth is what the server asks of clients: "need" (a client
	// without a valid certificate is refused), "want" (one is checked if
	// sent) or "none". Empty means "none".
	ClientAuth string
}

// secureClientPort is the TLS side of a server started with
// ZooKeeperOptions.TLS.
type secureClientPort struct {
	opts ZooKeeperTLS
	port int
	// extraConfig is the file zk-local appends to zoo.cfg (ZK_EXTRA_CONFIG).
	extraConfig string
}

// newSecureClientPort checks opts; a nil opts means no TLS and gives nil.
func newSecureClientPort(opts *ZooKeeperTLS) (*secureClientPort, error) {
	if opts == nil {
		return nil, nil
	}
	o := *opts
	if o.ClientAuth == "" {
		o.ClientAuth = "none"
	}
	switch {
	case len(o.Server.CertPEM) == 0 || len(o.Server.KeyPEM) == 0:
		return nil, errors.New("testutil: ZooKeeperTLS.Server needs a certificate and a key (see TestCA.Issue)")
	case o.ClientAuth != "none" && o.ClientAuth != "want" && o.ClientAuth != "need":
		return nil, fmt.Errorf(`testutil: ZooKeeperTLS.ClientAuth %q: want "need", "want" or "none"`, o.ClientAuth)
	case o.ClientAuth != "none" && len(o.ClientCAPEM) == 0:
		return nil, fmt.Errorf("testutil: ZooKeeperTLS.ClientAuth %q needs ClientCAPEM to verify client certificates", o.ClientAuth)
	}
	return &secureClientPort{opts: o}, nil
}

// prepare picks a free port for the secure listener and writes the key
// store, the trust store and the zoo.cfg lines into dir. It is called for
// every start attempt, as the plain port is picked anew each time.
func (s *secureClientPort) prepare(dir string) error {
	if s == nil {
		return nil
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return fmt.Errorf("testutil: zookeeper TLS directory: %w", err)
	}
	// ZooKeeper's PEM key store is one file holding the key and the chain.
	keyStore := filepath.Join(tlsDir, "keystore.pem")
	keyStorePEM := append(append([]byte{}, s.opts.Server.KeyPEM...), s.opts.Server.CertPEM...)
	if err := os.WriteFile(keyStore, keyStorePEM, 0o600); err != nil {
		return fmt.Errorf("testutil: zookeeper key store: %w", err)
	}
	lines := []string{
		"secureClientPort=" + strconv.Itoa(port),
		"secureClientPortAddress=127.0.0.1",
		"serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
		"ssl.keyStore.location=" + keyStore,
		"ssl.keyStore.type=PEM",
		"ssl.clientAuth=" + s.opts.ClientAuth,
	}
	if len(s.opts.ClientCAPEM) > 0 {
		trustStore := filepath.Join(tlsDir, "truststore.pem")
		if err := os.WriteFile(trustStore, s.opts.ClientCAPEM, 0o644); err != nil {
			return fmt.Errorf("testutil: zookeeper trust store: %w", err)
		}
		lines = append(lines, "ssl.trustStore.location="+trustStore, "ssl.trustStore.type=PEM")
	}
	extra := filepath.Join(tlsDir, "zoo.cfg.tls")
	if err := os.WriteFile(extra, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("testutil: zookeeper TLS config: %w", err)
	}
	s.port, s.extraConfig = port, extra
	return nil
}

// env is what zk-local needs in its environment to add the TLS settings.
func (s *secureClientPort) env() []string {
	if s == nil {
		return nil
	}
	return []string{"ZK_EXTRA_CONFIG=" + s.extraConfig}
}

// SecureAddr returns the server's TLS client address, 127.0.0.1:PORT, or
// "" when it was started without ZooKeeperOptions.TLS. It stays the same
// across Restart.
func (z *ZooKeeper) SecureAddr() string {
	if z.secure == nil {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(z.secure.port))
}
