package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certLifetime is how long test certificates are valid, from an hour ago
// (so a clock a little behind does not reject them) to a day from now.
const certLifetime = 24 * time.Hour

// TestCA is a throwaway certificate authority for TLS tests: an ECDSA P-256
// key and a self-signed CA certificate, made in memory for one test run.
type TestCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey

	// CertPEM is the CA certificate, PEM-encoded: what a client or server
	// is told to trust.
	CertPEM []byte
}

// KeyPair is a certificate issued by a TestCA and its private key, both
// PEM-encoded. The key is PKCS#8 ("PRIVATE KEY"), the form both Go and
// ZooKeeper's PEM key store read.
type KeyPair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// NewTestCA makes a CA whose certificate has the given common name.
func NewTestCA(commonName string) (*TestCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testutil: CA key: %w", err)
	}
	tmpl, err := certTemplate(commonName)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("testutil: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("testutil: CA certificate: %w", err)
	}
	return &TestCA{cert: cert, key: key, CertPEM: pemBlock("CERTIFICATE", der)}, nil
}

// Issue makes a certificate for hosts, signed by the CA, usable by a
// server and by a client alike. Each host that is an IP literal becomes an
// IP address name, any other a DNS name; the common name is the first host,
// or commonName when it is not empty.
func (ca *TestCA) Issue(commonName string, hosts ...string) (KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("testutil: certificate key: %w", err)
	}
	if commonName == "" && len(hosts) > 0 {
		commonName = hosts[0]
	}
	tmpl, err := certTemplate(commonName)
	if err != nil {
		return KeyPair{}, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("testutil: certificate for %s: %w", commonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("testutil: certificate key: %w", err)
	}
	return KeyPair{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", keyDER)}, nil
}

// WriteFiles writes the pair to dir as name.crt (mode 0644) and name.key
// (mode 0600, as a service expects of a private key) and returns their
// paths.
func (kp KeyPair) WriteFiles(dir, name string) (certFile, keyFile string, err error) {
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, kp.CertPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("testutil: write certificate: %w", err)
	}
	if err := os.WriteFile(keyFile, kp.KeyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("testutil: write key: %w", err)
	}
	return certFile, keyFile, nil
}

// WriteCert writes the CA certificate to dir as name.crt and returns its
// path.
func (ca *TestCA) WriteCert(dir, name string) (string, error) {
	path := filepath.Join(dir, name+".crt")
	if err := os.WriteFile(path, ca.CertPEM, 0o644); err != nil {
		return "", fmt.Errorf("testutil: write CA certificate: %w", err)
	}
	return path, nil
}

func certTemplate(commonName string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("testutil: certificate serial: %w", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"zkdns tests"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certLifetime),
	}, nil
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}
