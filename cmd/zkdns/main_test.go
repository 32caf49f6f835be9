package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/zkdns/zkdns/conf"
	"github.com/zkdns/zkdns/internal/testutil"
)

func TestNewLogger(t *testing.T) {
	cases := []struct {
		name     string
		cfg      conf.Log
		journald bool
		check    func(t *testing.T, out string)
	}{
		{"text with timestamps", conf.Log{Level: "info", Format: "text"}, false, func(t *testing.T, out string) {
			if !strings.HasPrefix(out, "time=") || !strings.Contains(out, `msg="instance joined" service=payments`) {
				t.Errorf("text line = %q", out)
			}
		}},
		{"journald leaves the time to the journal", conf.Log{Level: "info", Format: "text"}, true, func(t *testing.T, out string) {
			if strings.Contains(out, "time=") || !strings.HasPrefix(out, "<6>level=INFO") {
				t.Errorf("journald line = %q", out)
			}
		}},
		{"json", conf.Log{Level: "info", Format: "json"}, false, func(t *testing.T, out string) {
			var m map[string]any
			if err := json.Unmarshal([]byte(out), &m); err != nil || m["msg"] != "instance joined" || m["service"] != "payments" {
				t.Errorf("json line = %q (%v)", out, err)
			}
		}},
		{"level warn drops info", conf.Log{Level: "warn", Format: "text"}, false, func(t *testing.T, out string) {
			if out != "" {
				t.Errorf("info logged at level warn: %q", out)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.journald {
				t.Setenv("JOURNAL_STREAM", "8:12345")
			} else {
				t.Setenv("JOURNAL_STREAM", "")
			}
			var buf bytes.Buffer
			logger := newLogger(tc.cfg, new(slog.LevelVar), &buf)
			logger.Info("instance joined", "service", "payments")
			tc.check(t, buf.String())
		})
	}
}

// TestNewLoggerJournalPriority: on the journal's stream every line starts
// with its syslog priority, which journald strips and files the line
// under, so `journalctl -p warning` finds zkdns's warnings. Loggers
// derived with With and WithGroup keep the prefix.
func TestNewLoggerJournalPriority(t *testing.T) {
	cases := []struct {
		name   string
		format string
		log    func(l *slog.Logger)
		want   string
	}{
		{"debug", "text", func(l *slog.Logger) { l.Debug("watch armed", "path", "/services") },
			"<7>level=DEBUG msg=\"watch armed\" path=/services\n"},
		{"info", "text", func(l *slog.Logger) { l.Info("instance joined", "service", "payments") },
			"<6>level=INFO msg=\"instance joined\" service=payments\n"},
		{"warn", "text", func(l *slog.Logger) { l.Warn("zookeeper unreachable", "server", "192.0.2.1:2181") },
			"<4>level=WARN msg=\"zookeeper unreachable\" server=192.0.2.1:2181\n"},
		{"error", "text", func(l *slog.Logger) { l.Error("config not reloaded") },
			"<3>level=ERROR msg=\"config not reloaded\"\n"},
		{"levels above error are errors", "text", func(l *slog.Logger) { l.Log(context.Background(), slog.LevelError+4, "x") },
			"<3>level=ERROR+4 msg=x\n"},
		{"with attrs and group", "text", func(l *slog.Logger) {
			l.With("component", "conf").WithGroup("g").Warn("w", "k", 1)
		}, "<4>level=WARN msg=w component=conf g.k=1\n"},
		{"each line its own", "text", func(l *slog.Logger) {
			l.Warn("first")
			l.Info("second")
		}, "<4>level=WARN msg=first\n<6>level=INFO msg=second\n"},
		{"json", "json", func(l *slog.Logger) { l.Warn("w") },
			"<4>{\"level\":\"WARN\",\"msg\":\"w\"}\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("JOURNAL_STREAM", "8:12345")
			var buf bytes.Buffer
			logger := newLogger(conf.Log{Level: "debug", Format: tc.format}, new(slog.LevelVar), &buf)
			tc.log(logger)
			if got := buf.String(); got != tc.want {
				t.Errorf("journal bytes = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestToJournal: JOURNAL_STREAM names the journal's stream by device and
// inode; stderr redirected elsewhere by a script the unit runs inherits
// the variable but must not get priority prefixes.
func TestToJournal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		stream string
		want   bool
	}{
		{"unset", "", false},
		{"this file", fmt.Sprintf("%d:%d", st.Dev, st.Ino), true},
		{"another inode", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), false},
		{"malformed", "journal", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("JOURNAL_STREAM", tc.stream)
			if got := toJournal(f); got != tc.want {
				t.Errorf("toJournal with JOURNAL_STREAM=%q = %v, want %v", tc.stream, got, tc.want)
			}
		})
	}
}

func TestNewLoggerLevelFollowsVar(t *testing.T) {
	var buf bytes.Buffer
	level := new(slog.LevelVar)
	logger := newLogger(conf.Log{Level: "info", Format: "text"}, level, &buf)
	logger.Debug("hidden")
	level.Set(slog.LevelDebug) // what a reload to level = "debug" does
	logger.Debug("shown")
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, "shown") {
		t.Errorf("output = %q: the level must follow the LevelVar", out)
	}
}

// TestHelp: asking for help is not a usage error. Every command's -h and
// `zkdns help COMMAND` print that command's flags on stdout and exit 0;
// a flag that does not exist is still one (exit 2, stderr).
func TestHelp(t *testing.T) {
	cases := []struct {
		args []string
		want string // in stdout
	}{
		{[]string{"-h"}, "usage: zkdns <command>"},
		{[]string{"help"}, "usage: zkdns <command>"},
		{[]string{"serve", "-h"}, "-config file"},
		{[]string{"check", "-help"}, "-config file"},
		{[]string{"status", "-h"}, "-admin host:port"},
		{[]string{"register", "-h"}, "-servers host:port"},
		{[]string{"deregister", "--help"}, "-pidfile file"},
		{[]string{"help", "serve"}, "usage of zkdns serve:"},
		{[]string{"help", "register"}, "usage of zkdns register:"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != exitOK || !strings.Contains(stdout.String(), tc.want) || stderr.Len() != 0 {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 0 and %q on stdout alone", code, stdout.String(), stderr.String(), tc.want)
			}
		})
	}
	for _, cmd := range []string{"serve", "check", "status", "register", "deregister"} {
		t.Run(cmd+" with an unknown flag", func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{cmd, "-bogus"}, &stdout, &stderr)
			if code != exitUsage || stdout.Len() != 0 || !strings.Contains(stderr.String(), "flag provided but not defined: -bogus") {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and the flag named on stderr", code, stdout.String(), stderr.String())
			}
		})
	}
}

// TestRegisterNameHelp: -name is the service name in curator payloads
// only; nerve's name is the instance ID, whatever -name says.
func TestRegisterNameHelp(t *testing.T) {
	var stdout bytes.Buffer
	run(context.Background(), []string{"register", "-h"}, &stdout, io.Discard)
	if help := stdout.String(); !strings.Contains(help, "service name in curator payloads") || strings.Contains(help, "and nerve payloads") {
		t.Errorf("register -h says %q; want -name to be the curator service name only", help)
	}
}

// TestServeFailedStartLeavesNothing holds serve to owning what it starts:
// when daemon.Run fails to start, the SIGHUP forwarder ends with serve,
// though the caller's context lives on.
func TestServeFailedStartLeavesNothing(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer takenTCP.Close()
	cases := []struct {
		name  string
		dns   string
		admin string
	}{
		{"dns port in use", taken.LocalAddr().String(), "127.0.0.1:0"},
		{"admin port in use", "127.0.0.1:0", takenTCP.Addr().String()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "zkdns.toml")
			writeFile(t, path, fmt.Sprintf("[zookeeper]\nservers = [%q]\n[dns]\nlisten = [%q]\n[admin]\nlisten = %q\n"+
				"[[service]]\nname = \"payments\"\npath = \"/services/payments\"\n", zkServer.Addr(), tc.dns, tc.admin))
			var stderr bytes.Buffer
			err := serve(context.Background(), []string{"-config", path}, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), "bind") {
				t.Fatalf("serve = %v, want a bind error", err)
			}
			if left := testutil.Goroutines("zkdns/cmd/zkdns.serve"); len(left) > 0 {
				t.Errorf("after serve returned, %d of its goroutines still run:\n\n%s", len(left), strings.Join(left, "\n\n"))
			}
		})
	}
}
