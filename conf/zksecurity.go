package conf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// ZooKeeperSecurity is what [zookeeper.auth] and [zookeeper.tls] point at,
// read from disk and checked. Its zero value means an anonymous session
// over plain TCP.
type ZooKeeperSecurity struct {
	// AuthScheme is the auth scheme ("digest"); empty without
	// [zookeeper.auth].
	AuthScheme string

	// Credentials are the contents of the credentials file without its
	// trailing newline: "user:password" for digest. Nil without
	// [zookeeper.auth].
	Credentials Secret

	// TLS is the client side of the TLS connection: the CA pool, the
	// client certificate if one is configured, and ServerName if set
	// (empty means the host of each server address). Nil without
	// [zookeeper.tls].
	TLS *tls.Config
}

// Secret is a credential read from a file. It prints and logs as
// "[redacted]" whatever the verb or handler, so that a struct holding one
// can be printed while debugging without leaking it; use the bytes only
// to authenticate.
type Secret []byte

// Format prints "[redacted]".
func (Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, "[redacted]") }

// LogValue logs "[redacted]".
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// maxSecretFile bounds what is read of a credentials or key file: either
// is a few hundred bytes, and a huge file is a mistake, not a secret.
const maxSecretFile = 64 << 10

// LoadSecurity reads the files named by [zookeeper.auth] and
// [zookeeper.tls]. It is separate from Parse, which only checks the file's
// own text, because these files are read with the daemon's privileges:
// zkdns serve calls it at start and whenever a reload changes [zookeeper].
//
// A credentials file or a client key that group or others can access is
// refused, as ssh refuses such a private key: the fix is chmod 600 and
// ownership by the user zkdns runs as. Errors name the key and the file
// and never quote a file's contents.
//
// Every file is read, whatever the others hold, and the error reports
// each problem found, in one line ("; " between them), so that all can be
// fixed at once; Check places each at the line of its key.
func (z ZooKeeper) LoadSecurity() (ZooKeeperSecurity, error) {
	var (
		sec  ZooKeeperSecurity
		errs securityErrors
	)
	if a := z.Auth; a != nil {
		creds, err := readCredentials(a.CredentialsFile)
		if err != nil {
			errs = append(errs, err)
		}
		sec.AuthScheme, sec.Credentials = a.Scheme, creds
	}
	if t := z.TLS; t != nil {
		cfg, tlsErrs := clientTLS(t)
		errs = append(errs, tlsErrs...)
		sec.TLS = cfg
	}
	if len(errs) > 0 {
		return ZooKeeperSecurity{}, errs
	}
	return sec, nil
}

// securityErrors are the problems LoadSecurity found, each a *fileError.
// They print on one line, as the daemon logs and reports them.
type securityErrors []error

func (e securityErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e securityErrors) Unwrap() []error { return e }

// readCredentials is ReadCredentials for [zookeeper.auth]: its errors
// name the key.
func readCredentials(path string) (Secret, error) {
	creds, err := ReadCredentials(path)
	if err != nil {
		return nil, atKey("zookeeper.auth.credentials_file", err)
	}
	return creds, nil
}

// ReadCredentials reads a digest credentials file: "user:password" and an
// optional trailing newline. Like every file holding a secret, it must be
// a regular file that neither group nor others can access (see
// readPrivateFile). Errors name the file, never quote what it holds.
// zkdns serve reads [zookeeper.auth] credentials_file with it, and zkdns
// register its auth_file.
func ReadCredentials(path string) (Secret, error) {
	data, err := readPrivateFile(path)
	if err != nil {
		return nil, err
	}
	creds := bytes.TrimRight(data, "\r\n")
	user, _, ok := bytes.Cut(creds, []byte(":"))
	switch {
	case len(creds) == 0:
		return nil, fmt.Errorf("%s is empty; write user:password into it", path)
	case !ok || len(user) == 0:
		return nil, fmt.Errorf("%s does not hold user:password on one line (the digest scheme needs both, separated by a colon)", path)
	case bytes.ContainsAny(creds, "\r\n"):
		return nil, fmt.Errorf("%s has more than one line; it must hold only user:password", path)
	}
	return creds, nil
}

// readPrivateFile reads a file holding a secret, refusing one that group
// or others can access. The mode is checked on the open file, so a file
// swapped in between the check and the read is still checked. Errors are
// the system's (which name the file), or start with the file's name.
//
// A file in systemd's credentials directory (LoadCredential=, which sets
// $CREDENTIALS_DIRECTORY) is not checked: systemd makes it readable by
// this service only, and on a recent kernel does so with an ACL, whose
// mask shows as group bits in the mode.
func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 && !inCredentialsDirectory(path) {
		return nil, fmt.Errorf("%s is accessible by group or others (mode %04o); it holds a secret: chmod 600 %s, owned by the user zkdns runs as",
			path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSecretFile {
		return nil, fmt.Errorf("%s is larger than %d KiB; point it at the right file", path, maxSecretFile>>10)
	}
	return data, nil
}

// atKey is err, about the file that key names, as a fileError whose
// message starts with the key: "key: open …" for the system's errors,
// which name the file themselves, "key FILE is …" for the others.
func atKey(key string, err error) error {
	if _, ok := errors.AsType[*fs.PathError](err); ok {
		return keyError(key, "%s: %w", key, err)
	}
	return keyError(key, "%s %w", key, err)
}

// clientTLS builds the client TLS config: servers verified against the CA
// file only (not the system roots: a ZooKeeper ensemble has its own CA),
// TLS 1.2 or later, and the client certificate when one is configured.
// It returns a problem for each file that has one.
func clientTLS(t *TLS) (*tls.Config, securityErrors) {
	var errs securityErrors
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(t.CAFile); err != nil {
		errs = append(errs, keyError("zookeeper.tls.ca_file", "zookeeper.tls.ca_file: %w", err))
	} else if !pool.AppendCertsFromPEM(pem) {
		errs = append(errs, keyError("zookeeper.tls.ca_file", "zookeeper.tls.ca_file %s holds no PEM certificate", t.CAFile))
	}
	cfg := &tls.Config{
		RootCAs:    pool,
		ServerName: t.ServerName,
		MinVersion: tls.VersionTLS12,
	}
	if t.CertFile != "" {
		certPEM, certErr := os.ReadFile(t.CertFile)
		if certErr != nil {
			errs = append(errs, keyError("zookeeper.tls.cert_file", "zookeeper.tls.cert_file: %w", certErr))
		}
		keyPEM, keyErr := readPrivateFile(t.KeyFile)
		if keyErr != nil {
			errs = append(errs, atKey("zookeeper.tls.key_file", keyErr))
		}
		// Whether the two belong together can only be told of both.
		if certErr == nil && keyErr == nil {
			cert, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				// X509KeyPair's errors describe the PEM blocks, never the key.
				errs = append(errs, keyError("zookeeper.tls.cert_file", "zookeeper.tls cert_file %s and key_file %s: %w", t.CertFile, t.KeyFile, err))
			} else {
				cfg.Certificates = []tls.Certificate{cert}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// fileError is a problem with a file a [zookeeper] key names: the key
// lets Check place it at that key's line.
type fileError struct {
	key string // e.g. zookeeper.tls.key_file
	err error  // the problem, its message starting with the key
}

func (e *fileError) Error() string { return "conf: " + e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// keyError is a fileError about the file that key names, with the
// message fmt.Errorf makes of format and args.
func keyError(key, format string, args ...any) error {
	return &fileError{key: key, err: fmt.Errorf(format, args...)}
}

// inCredentialsDirectory reports whether path lies in the directory
// systemd passes the service's credentials in.
func inCredentialsDirectory(path string) bool {
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return false
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(dir, abs)
	return err == nil && filepath.IsLocal(rel)
}
