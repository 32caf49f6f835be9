package testutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// privateNetworkEnv names, in the child process InPrivateNetwork starts,
// the test that is to run there.
const privateNetworkEnv = "ZKDNS_TEST_PRIVATE_NETWORK"

// InPrivateNetwork lets a test bind wildcard addresses (0.0.0.0, ::)
// without exposing anything beyond the host's loopback: it runs the test
// again in a child process with a network namespace of its own, whose one
// interface is loopback (127.0.0.0/8 and ::1), and reports the child's
// result as the test's. It returns true in that child, where the test goes
// on, and false in the caller, where the test is then over. Where the
// kernel refuses a namespace (no root and no unprivileged user
// namespaces), the test is skipped.
func InPrivateNetwork(t *testing.T) bool {
	t.Helper()
	if os.Getenv(privateNetworkEnv) == t.Name() {
		if err := loopbackUp(); err != nil {
			t.Fatalf("bring up loopback in the test's network namespace: %v", err)
		}
		return true
	}
	var run []string
	for _, part := range strings.Split(t.Name(), "/") {
		run = append(run, "^"+regexp.QuoteMeta(part)+"$")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+strings.Join(run, "/"), "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), privateNetworkEnv+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if uid, gid := os.Getuid(), os.Getgid(); uid != 0 {
		// Without root, a user namespace of its own lets the child own
		// its network namespace, as root there and only there.
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		t.Logf("in a network namespace of its own:\n%s", out)
	case errors.As(err, &exit):
		t.Errorf("in a network namespace of its own: %v\n%s", err, out)
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ENOSPC):
		t.Skipf("cannot make a network namespace here, which the test needs to bind wildcard addresses: %v", err)
	default:
		t.Fatalf("run %s in a network namespace of its own: %v", t.Name(), err)
	}
	return false
}

// loopbackUp sets the loopback interface up: a new network namespace has
// it down, and no addresses until it is up.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("read the flags of lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}
