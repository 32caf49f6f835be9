//go:build unix && !linux

package testutil

import "syscall"

// childProcAttr puts the server in its own process group. Outside Linux there
// is no parent-death signal, so only Stop ends the server.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
