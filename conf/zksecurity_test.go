package conf

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zkdns/zkdns/internal/testutil"
)

// secretPassword appears in every credentials file below, so a test can
// tell that no error quotes it.
const secretPassword = "hunter2-Not-Logged"

// writeMode writes data to dir/name with exactly mode (no umask).
func writeMode(t *testing.T, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadSecurityCredentials(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		file    func(t *testing.T) string
		want    string // the credentials; "" when an error is wanted
		wantErr string // part of the error
		isErr   error  // the error wraps it, when set
	}{
		{
			name: "trailing newline trimmed",
			file: func(t *testing.T) string {
				return writeMode(t, dir, "nl", []byte("zkdns:"+secretPassword+"\n"), 0o600)
			},
			want: "zkdns:" + secretPassword,
		},
		{
			name: "CRLF trimmed, read-only file",
			file: func(t *testing.T) string {
				return writeMode(t, dir, "crlf", []byte("zkdns:"+secretPassword+"\r\n"), 0o400)
			},
			want: "zkdns:" + secretPassword,
		},
		{
			name: "a colon in the password is part of it",
			file: func(t *testing.T) string {
				return writeMode(t, dir, "colon", []byte("zkdns:a:"+secretPassword), 0o600)
			},
			want: "zkdns:a:" + secretPassword,
		},
		{
			name: "group-readable is refused",
			file: func(t *testing.T) string {
				return writeMode(t, dir, "group", []byte("zkdns:"+secretPassword+"\n"), 0o640)
			},
			wantErr: "accessible by group or others (mode 0640); it holds a secret: chmod 600",
		},
		{
			name: "world-readable is refused",
			file: func(t *testing.T) string {
				return writeMode(t, dir, "world", []byte("zkdns:"+secretPassword+"\n"), 0o604)
			},
			wantErr: "(mode 0604)",
		},
		{
			name: "group-writable is refused",
			file: func(t *testing.T) string {
				return writeMode(t, dir, "gw", []byte("zkdns:"+secretPassword+"\n"), 0o620)
			},
			wantErr: "(mode 0620)",
		},
		{
			name:    "missing file",
			file:    func(t *testing.T) string { return filepath.Join(dir, "absent") },
			wantErr: "zookeeper.auth.credentials_file",
			isErr:   fs.ErrNotExist,
		},
		{
			name: "a directory",
			file: func(t *testing.T) string {
				p := filepath.Join(dir, "adir")
				if err := os.Mkdir(p, 0o700); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantErr: "is not a regular file",
		},
		{
			name:    "empty",
			file:    func(t *testing.T) string { return writeMode(t, dir, "empty", []byte("\n"), 0o600) },
			wantErr: "is empty",
		},
		{
			name:    "no user:password",
			file:    func(t *testing.T) string { return writeMode(t, dir, "nocolon", []byte(secretPassword+"\n"), 0o600) },
			wantErr: "does not hold user:password",
		},
		{
			name:    "no user",
			file:    func(t *testing.T) string { return writeMode(t, dir, "nouser", []byte(":"+secretPassword), 0o600) },
			wantErr: "does not hold user:password",
		},
		{
			name: "two lines",
			file: func(t *testing.T) string {
				return writeMode(t, dir, "two", []byte("zkdns:"+secretPassword+"\nother:"+secretPassword+"\n"), 0o600)
			},
			wantErr: "more than one line",
		},
		{
			name: "far too large",
			file: func(t *testing.T) string {
				return writeMode(t, dir, "big", []byte("zkdns:"+strings.Repeat(secretPassword, 10000)), 0o600)
			},
			wantErr: "larger than 64 KiB",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.file(t)
			z := ZooKeeper{Auth: &Auth{Scheme: "digest", CredentialsFile: path}}
			sec, err := z.LoadSecurity()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("LoadSecurity: %v", err)
				}
				if string(sec.Credentials) != tc.want || sec.AuthScheme != "digest" || sec.TLS != nil {
					t.Errorf("LoadSecurity = scheme %q credentials %q TLS %v, want digest %q and no TLS", sec.AuthScheme, sec.Credentials, sec.TLS, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadSecurity accepted %s", path)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantErr) || !strings.HasPrefix(msg, "conf: ") || !strings.Contains(msg, "zookeeper.auth.credentials_file") {
				t.Errorf("error %q: want the conf: prefix, the key and %q", msg, tc.wantErr)
			}
			if tc.isErr != nil && !errors.Is(err, tc.isErr) {
				t.Errorf("error %q does not wrap %v", msg, tc.isErr)
			}
			if strings.Contains(msg, secretPassword) {
				t.Errorf("error quotes the credentials: %s", msg)
			}
			if sec.Credentials != nil {
				t.Errorf("credentials returned alongside an error")
			}
		})
	}
}

// writeTLSFiles makes a test CA and a client certificate it issued for
// zkdns, and writes the CA's certificate and the client's certificate and
// key into dir.
func writeTLSFiles(t *testing.T, dir string) (ca *testutil.TestCA, client testutil.KeyPair, caFile, certFile, keyFile string) {
	t.Helper()
	ca, err := testutil.NewTestCA("conf test CA")
	if err != nil {
		t.Fatal(err)
	}
	if caFile, err = ca.WriteCert(dir, "ca"); err != nil {
		t.Fatal(err)
	}
	if client, err = ca.Issue("zkdns", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if certFile, keyFile, err = client.WriteFiles(dir, "client"); err != nil {
		t.Fatal(err)
	}
	return ca, client, caFile, certFile, keyFile
}

func TestLoadSecurityTLS(t *testing.T) {
	dir := t.TempDir()
	ca, client, caFile, certFile, keyFile := writeTLSFiles(t, dir)
	other, err := ca.Issue("someone-else", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	otherKey := writeMode(t, dir, "other.key", other.KeyPEM, 0o600)
	looseKey := writeMode(t, dir, "loose.key", client.KeyPEM, 0o644)
	notPEM := writeMode(t, dir, "not.pem", []byte("not a certificate\n"), 0o644)

	cases := []struct {
		name     string
		tls      TLS
		wantCert bool
		wantErr  string
	}{
		{"CA only", TLS{CAFile: caFile}, false, ""},
		{"CA, server name and client certificate", TLS{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "zookeeper.test"}, true, ""},
		{"missing CA file", TLS{CAFile: filepath.Join(dir, "absent.crt")}, false, "zookeeper.tls.ca_file"},
		{"CA file without a certificate", TLS{CAFile: notPEM}, false, "holds no PEM certificate"},
		{"key readable by others", TLS{CAFile: caFile, CertFile: certFile, KeyFile: looseKey}, false, "zookeeper.tls.key_file " + looseKey + " is accessible by group or others (mode 0644)"},
		{"key of another certificate", TLS{CAFile: caFile, CertFile: certFile, KeyFile: otherKey}, false, "does not match"},
		{"missing certificate file", TLS{CAFile: caFile, CertFile: filepath.Join(dir, "absent.crt"), KeyFile: keyFile}, false, "zookeeper.tls.cert_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sec, err := ZooKeeper{TLS: &tc.tls}.LoadSecurity()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "conf: ") {
					t.Fatalf("LoadSecurity error = %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadSecurity: %v", err)
			}
			cfg := sec.TLS
			if cfg == nil || cfg.RootCAs == nil || cfg.MinVersion != tls.VersionTLS12 || cfg.ServerName != tc.tls.ServerName {
				t.Fatalf("TLS config = %+v, want the CA pool, TLS 1.2 at least and server name %q", cfg, tc.tls.ServerName)
			}
			if got := len(cfg.Certificates) == 1; got != tc.wantCert {
				t.Errorf("client certificate loaded = %v, want %v", got, tc.wantCert)
			}
			if sec.AuthScheme != "" || sec.Credentials != nil {
				t.Errorf("auth set without [zookeeper.auth]: %q", sec.AuthScheme)
			}
		})
	}

	t.Run("neither table", func(t *testing.T) {
		sec, err := ZooKeeper{Servers: []string{"192.0.2.1:2181"}}.LoadSecurity()
		if err != nil || sec.TLS != nil || sec.AuthScheme != "" || sec.Credentials != nil {
			t.Errorf("LoadSecurity() = %+v, %v; want the zero value", sec, err)
		}
	})
}

func TestSecretNeverPrints(t *testing.T) {
	sec := ZooKeeperSecurity{AuthScheme: "digest", Credentials: Secret("zkdns:" + secretPassword)}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("loaded", "security", sec, "credentials", sec.Credentials)
	cases := []struct {
		name string
		out  string
	}{
		{"%v", fmt.Sprintf("%v", sec)},
		{"%+v", fmt.Sprintf("%+v", sec)},
		{"%#v", fmt.Sprintf("%#v", sec)},
		{"%s of the secret", fmt.Sprintf("%s", sec.Credentials)},
		{"%x of the secret", fmt.Sprintf("%x", sec.Credentials)},
		{"%q of the secret", fmt.Sprintf("%q", sec.Credentials)},
		{"slog", logged.String()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(tc.out, secretPassword) || strings.Contains(tc.out, "zkdns:") || strings.Contains(tc.out, "7a6b646e73") {
				t.Errorf("output shows the credentials: %s", tc.out)
			}
			if !strings.Contains(tc.out, "[redacted]") {
				t.Errorf("output %q does not say [redacted]", tc.out)
			}
		})
	}
	if string(sec.Credentials) != "zkdns:"+secretPassword {
		t.Errorf("the bytes themselves must stay usable, got %d bytes", len(sec.Credentials))
	}
}

// TestCheckPlacesFileProblems checks that Check reports a problem with a
// file the [zookeeper] section names at the line of the key naming it,
// as the config's own problems are, and every such problem, one per
// line in line order: a loose credentials file does not hide a missing
// CA file.
func TestCheckPlacesFileProblems(t *testing.T) {
	dir := t.TempDir()
	creds := writeMode(t, dir, "creds", []byte("zkdns:"+secretPassword+"\n"), 0o600)
	openCreds := writeMode(t, dir, "open", []byte("zkdns:"+secretPassword+"\n"), 0o644)
	missing := filepath.Join(dir, "missing")
	_, client, caFile, certFile, _ := writeTLSFiles(t, dir)
	looseKey := writeMode(t, dir, "loose.key", client.KeyPEM, 0o644)
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	cases := []struct {
		name    string
		src     string
		wantErr string   // "" for a config that checks
		more    []string // the lines after the first, each as it starts
	}{
		{name: "readable credentials", src: minimalZK + "[zookeeper.auth]\nscheme = \"digest\"\ncredentials_file = " + fmt.Sprintf("%q", creds) + "\n" + watchOne},
		{
			name:    "missing credentials file",
			src:     minimalZK + "[zookeeper.auth]\nscheme = \"digest\"\n\ncredentials_file = " + fmt.Sprintf("%q", missing) + "\n" + watchOne,
			wantErr: "c.toml:6: zookeeper.auth.credentials_file: open " + missing + ": no such file or directory",
		},
		{
			name:    "credentials readable by others",
			src:     minimalZK + "[zookeeper.auth]\ncredentials_file = " + fmt.Sprintf("%q", openCreds) + "\nscheme = \"digest\"\n" + watchOne,
			wantErr: "c.toml:4: zookeeper.auth.credentials_file " + openCreds + " is accessible by group or others",
		},
		{
			name:    "missing CA file",
			src:     minimalZK + "[zookeeper.tls]\nserver_name = \"zk\"\nca_file = " + fmt.Sprintf("%q", missing) + "\n" + watchOne,
			wantErr: "c.toml:5: zookeeper.tls.ca_file: open " + missing,
		},
		{
			name: "loose credentials and a missing CA file",
			src: minimalZK + "[zookeeper.auth]\nscheme = \"digest\"\ncredentials_file = " + q(openCreds) + "\n" +
				"[zookeeper.tls]\nca_file = " + q(missing) + "\n" + watchOne,
			wantErr: "c.toml:5: zookeeper.auth.credentials_file " + openCreds + " is accessible by group or others",
			more:    []string{"c.toml:7: zookeeper.tls.ca_file: open " + missing},
		},
		{
			name:    "every TLS file, in line order",
			src:     minimalZK + "[zookeeper.tls]\nkey_file = " + q(looseKey) + "\ncert_file = " + q(missing) + "\nca_file = " + q(missing) + "\n" + watchOne,
			wantErr: "c.toml:4: zookeeper.tls.key_file " + looseKey + " is accessible by group or others",
			more: []string{
				"c.toml:5: zookeeper.tls.cert_file: open " + missing,
				"c.toml:6: zookeeper.tls.ca_file: open " + missing,
			},
		},
		{
			name:    "a good CA beside a loose key",
			src:     minimalZK + "[zookeeper.tls]\nca_file = " + q(caFile) + "\ncert_file = " + q(certFile) + "\nkey_file = " + q(looseKey) + "\n" + watchOne,
			wantErr: "c.toml:6: zookeeper.tls.key_file " + looseKey + " is accessible by group or others",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.toml")
			if err := os.WriteFile(path, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Check(path)
			if tc.wantErr == "" {
				if err != nil || c == nil {
					t.Fatalf("Check = %v, %v; want the config", c, err)
				}
				return
			}
			got := ""
			if err != nil {
				got = strings.ReplaceAll(err.Error(), filepath.Dir(path)+"/", "")
			}
			lines := strings.Split(got, "\n")
			want := append([]string{tc.wantErr}, tc.more...)
			if c != nil || len(lines) != len(want) {
				t.Fatalf("Check error %q, want %d lines starting %q", got, len(want), want)
			}
			for i, line := range lines {
				if !strings.HasPrefix(line, want[i]) {
					t.Errorf("Check error line %d %q, want one starting %q", i+1, line, want[i])
				}
			}
			if strings.Contains(got, secretPassword) {
				t.Errorf("the error quotes the secret: %q", got)
			}
		})
	}
}

// TestLoadSecurityCredentialsDirectory: a file systemd passes with
// LoadCredential= is systemd's to protect. On a recent kernel it grants
// the service access with an ACL, whose mask shows as group bits (0440
// here), so the mode check must not refuse it; the same mode anywhere
// else still is.
func TestLoadSecurityCredentialsDirectory(t *testing.T) {
	creds := t.TempDir()
	elsewhere := t.TempDir()
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	passed := writeMode(t, creds, "zk.auth", []byte("zkdns:"+secretPassword+"\n"), 0o440)
	open := writeMode(t, elsewhere, "zk.auth", []byte("zkdns:"+secretPassword+"\n"), 0o440)
	escape := filepath.Join(creds, "..", filepath.Base(elsewhere), "zk.auth")

	sec, err := ZooKeeper{Auth: &Auth{Scheme: "digest", CredentialsFile: passed}}.LoadSecurity()
	if err != nil || string(sec.Credentials) != "zkdns:"+secretPassword {
		t.Errorf("credentials passed by systemd: %v", err)
	}
	for _, p := range []string{open, escape} {
		if _, err := (ZooKeeper{Auth: &Auth{Scheme: "digest", CredentialsFile: p}}).LoadSecurity(); err == nil ||
			!strings.Contains(err.Error(), "accessible by group or others") {
			t.Errorf("a 0440 file at %s, outside the credentials directory: %v, want it refused", p, err)
		}
	}
}
