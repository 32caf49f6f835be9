package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/zkdns/zkdns/conf"
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
			if strings.Contains(out, "time=") || !strings.HasPrefix(out, "level=INFO") {
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
