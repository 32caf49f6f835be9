package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
)

// Dig runs the real dig against server ("ip:port") with one try of at most
// 2 s, and returns its standard output. args are passed on as they are, for
// example "payments.local.", "SRV", "+short". A DNS error such as NXDOMAIN
// is an answer, not an error: read it from the output. Dig fails when dig
// is not installed, when the server does not answer, or when dig rejects
// its arguments.
func Dig(ctx context.Context, server string, args ...string) (string, error) {
	digPath, err := exec.LookPath("dig")
	if err != nil {
		return "", fmt.Errorf("testutil: dig is not installed (apt-get install dnsutils): %w", err)
	}
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		return "", fmt.Errorf("testutil: dig server %q is not ip:port: %w", server, err)
	}
	argv := append([]string{"@" + host, "-p", port, "+time=2", "+tries=1"}, args...)
	cmd := exec.CommandContext(ctx, digPath, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		// dig reports an unreachable server on stdout, usage errors on stderr.
		detail := strings.TrimSpace(stderr.String() + "\n" + stdout.String())
		return "", fmt.Errorf("testutil: dig %s: %w: %s", strings.Join(argv, " "), err, detail)
	}
	return stdout.String(), nil
}

// Resolver returns a pure-Go resolver that sends every query to server
// ("ip:port") over the network Go asks for: UDP first, TCP when the answer
// is truncated. The system's /etc/hosts still comes first for host lookups
// and /etc/resolv.conf still sets search domains, so give fully qualified
// names ending in a dot.
func Resolver(server string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		},
	}
}

// BuildBinary builds ./cmd/zkdns of the module that holds the working
// directory, with the race detector, into dir/zkdns, and returns that path.
// Build errors come back with the compiler's output.
func BuildBinary(ctx context.Context, dir string) (string, error) {
	return BuildPackage(ctx, dir, "./cmd/zkdns")
}

// BuildPackage builds the main package pkg (a path relative to the module
// root, like "./cmd/zkdns") with the race detector into dir, naming the
// binary after the package's last element, and returns its path.
func BuildPackage(ctx context.Context, dir, pkg string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out, err := filepath.Abs(filepath.Join(dir, filepath.Base(pkg)))
	if err != nil {
		return "", fmt.Errorf("testutil: build %s: %w", pkg, err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-race", "-o", out, pkg)
	cmd.Dir = root
	if output, err := cmd.CombinedOutput(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("testutil: build %s: the go command is not on PATH: %w", pkg, err)
		}
		return "", fmt.Errorf("testutil: go build -race %s in %s: %w\n%s", pkg, root, err, bytes.TrimSpace(output))
	}
	return out, nil
}
