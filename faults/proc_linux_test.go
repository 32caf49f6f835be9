package faults_test

import "syscall"

// childProcAttr has the kernel SIGKILL zkdns and the instance owners
// should the test binary die without cleaning up (a -timeout panic), so
// no daemon outlives its test.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
