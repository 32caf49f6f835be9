package testutil

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// zkLocal runs scripts/zk-local with args and extra environment, and
// returns its stdout, stderr and exit code.
func zkLocal(t *testing.T, ctx context.Context, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "zk-local"), args...)
	cmd.Env = append(os.Environ(), env...)
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout = &outBuf
	cmd.Stderr = &errBuf
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("zk-local %v: %v", args, err)
	}
	return outBuf.String(), errBuf.String(), code
}

// processRunning reports whether pid is alive; a zombie counts as gone.
func processRunning(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z' && stat[i+2] != 'X'
}

func TestZkLocalUsage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "help", args: []string{"--help"}, wantCode: 0, wantStdout: "Usage: zk-local"},
		{name: "no command", args: nil, wantCode: 2, wantStderr: "missing command"},
		{name: "unknown command", args: []string{"launch"}, wantCode: 2, wantStderr: "unknown command 'launch'"},
		{name: "run without port", args: []string{"run", t.TempDir()}, wantCode: 2, wantStderr: "run needs DIR and PORT"},
		{name: "run with a bad port", args: []string{"run", t.TempDir(), "70000"}, wantCode: 2, wantStderr: "PORT must be"},
		{name: "stop without dir", args: []string{"stop"}, wantCode: 2, wantStderr: "stop needs DIR"},
		{name: "stop of a missing dir", args: []string{"stop", filepath.Join(t.TempDir(), "gone")}, wantCode: 0},
		{name: "install when installed", args: []string{"install"}, wantCode: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := zkLocal(t, ctx, nil, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stdout, tt.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout, tt.wantStdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantStderr)
			}
			if tt.wantStdout == "" && stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

func TestZkLocalStartStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addrLine := regexp.MustCompile(`^127\.0\.0\.1:[0-9]+\n$`)

	tests := []struct {
		name string
		// dir is passed to start; empty lets start make a temporary one.
		dir          string
		env          []string
		wantTick     string
		wantDirAfter bool
	}{
		{name: "temporary dir", wantTick: "200", wantDirAfter: false},
		{name: "given dir and tick", dir: filepath.Join(t.TempDir(), "zk"), env: []string{"ZK_TICK_MS=300"}, wantTick: "300", wantDirAfter: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"start"}
			if tt.dir != "" {
				args = append(args, tt.dir)
			}
			stdout, stderr, code := zkLocal(t, ctx, tt.env, args...)
			if code != 0 {
				t.Fatalf("zk-local start: exit code %d\n%s", code, stderr)
			}
			dir := strings.TrimSpace(stderr)
			if !filepath.IsAbs(dir) {
				t.Fatalf("stderr %q is not the server's directory", stderr)
			}
			t.Cleanup(func() { _, _, _ = zkLocal(t, context.Background(), nil, "stop", dir) })
			if tt.dir != "" && dir != tt.dir {
				t.Errorf("start reported dir %s, want %s", dir, tt.dir)
			}
			if !addrLine.MatchString(stdout) {
				t.Fatalf("stdout %q, want exactly one line 127.0.0.1:PORT", stdout)
			}
			addr := strings.TrimSpace(stdout)
			if saved, err := os.ReadFile(filepath.Join(dir, "zk.addr")); err != nil || strings.TrimSpace(string(saved)) != addr {
				t.Errorf("zk.addr = %q, %v; want %s", saved, err, addr)
			}
			pidText, err := os.ReadFile(filepath.Join(dir, "zk.pid"))
			if err != nil {
				t.Fatal(err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
			if err != nil || !processRunning(pid) {
				t.Fatalf("zk.pid %q does not name a running process (%v)", pidText, err)
			}
			if reply, err := fourLetterWord(ctx, addr, "srvr"); err != nil || !strings.Contains(reply, "Mode:") {
				t.Fatalf("srvr reply %q, %v; want a serving server", reply, err)
			}
			if tick, err := serverConf(ctx, addr, "tickTime"); err != nil || tick != tt.wantTick {
				t.Errorf("tickTime = %q, %v; want %s", tick, err, tt.wantTick)
			}

			for i := range 2 {
				if _, stderr, code := zkLocal(t, ctx, nil, "stop", dir); code != 0 {
					t.Fatalf("stop call %d: exit code %d\n%s", i+1, code, stderr)
				}
			}
			if processRunning(pid) {
				t.Errorf("server pid %d still runs after stop", pid)
			}
			if reply, err := fourLetterWord(ctx, addr, "srvr"); err == nil {
				t.Errorf("stopped server answered srvr: %q", reply)
			}
			_, err = os.Stat(dir)
			if gotDir := err == nil; gotDir != tt.wantDirAfter {
				t.Errorf("dir exists after stop = %v, want %v (%v)", gotDir, tt.wantDirAfter, err)
			}
			if tt.wantDirAfter {
				if _, err := os.Stat(filepath.Join(dir, "zk.pid")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("zk.pid left after stop: %v", err)
				}
			}
		})
	}
}
