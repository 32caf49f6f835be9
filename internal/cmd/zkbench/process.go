package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a child the bench started and stops. The kernel SIGKILLs it
// should the bench die first, so an interrupted run leaves no server
// behind.
type process struct {
	name    string
	argv    []string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has been reaped
}

// startProcess runs argv with stdout and stderr appended to logPath, and
// env ("KEY=value") added to the bench's environment. With core ≥ 0 it is
// pinned to that CPU with taskset, which execs the command, so the PID is
// the command's own.
func startProcess(name string, core int, logPath string, env []string, argv ...string) (*process, error) {
	if core >= 0 {
		argv = append([]string{"taskset", "-c", strconv.Itoa(core)}, argv...)
	}
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("zkbench: %s log: %w", name, err)
	}
	defer logFile.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("zkbench: start %s (%s): %w", name, strings.Join(argv, " "), err)
	}
	p := &process{name: name, argv: argv, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		// Ends when the process exits; stop and kill make sure it does.
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) commandLine() string { return strings.Join(p.argv, " ") }

// exited reports whether the process has ended, and if so how.
func (p *process) exited() (bool, string) {
	select {
	case <-p.done:
		return true, p.cmd.ProcessState.String()
	default:
		return false, ""
	}
}

// stop sends SIGTERM and waits up to 10 s before SIGKILL. It may be
// called more than once.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(10 * time.Second):
	}
	p.kill()
}

// kill sends SIGKILL and waits until the process is reaped.
func (p *process) kill() {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return
	}
	<-p.done
}

// logTail is the end of the process's log, for error messages.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	return tail(string(b), 15)
}
