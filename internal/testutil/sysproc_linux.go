package testutil

import "syscall"

// childProcAttr puts the server in its own process group, so a Ctrl-C meant
// for `go test` reaches it only through the test binary's cleanup, and has
// the kernel SIGKILL it should the test binary die without cleaning up.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
