package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// toJournal reports whether w is journald's stream for this process.
// systemd sets JOURNAL_STREAM to the device:inode of the stream it
// connects stdout and stderr to; a child whose stderr was redirected
// elsewhere inherits the variable, so w is compared with it. A w that is
// not a file (a test's buffer) is taken as the journal when the variable
// is set.
func toJournal(w io.Writer) bool {
	stream := os.Getenv("JOURNAL_STREAM")
	if stream == "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return true
	}
	dev, ino, ok := strings.Cut(stream, ":")
	if !ok {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return dev == strconv.FormatUint(uint64(st.Dev), 10) && ino == strconv.FormatUint(st.Ino, 10)
}

// journalHandler writes each record as h's inner handler formats it, with
// the record's syslog priority in front ("<4>level=WARN …"). journald
// reads that prefix on a stream (sd-daemon(3)) and files the line at that
// priority; without it every line gets the unit's SyslogLevel (info), and
// `journalctl -p warning` shows none of zkdns's warnings.
type journalHandler struct {
	slog.Handler // formats into out
	out          *priorityWriter
}

// priorityWriter puts the priority of the record being handled in front
// of what the inner handler writes for it. slog's handlers write a record
// in one Write, so one prefix per Write is one per line.
type priorityWriter struct {
	mu     sync.Mutex // held from Handle's start to its end: guards prefix
	w      io.Writer
	prefix string
}

func newJournalHandler(w io.Writer, inner func(io.Writer) slog.Handler) *journalHandler {
	out := &priorityWriter{w: w}
	return &journalHandler{Handler: inner(out), out: out}
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.prefix = journalPriority(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &journalHandler{Handler: h.Handler.WithAttrs(attrs), out: h.out}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{Handler: h.Handler.WithGroup(name), out: h.out}
}

// Write is called by the inner handler with mu held by Handle.
func (p *priorityWriter) Write(b []byte) (int, error) {
	line := make([]byte, 0, len(p.prefix)+len(b))
	line = append(append(line, p.prefix...), b...)
	n, err := p.w.Write(line)
	return max(n-len(p.prefix), 0), err
}

// journalPriority maps a slog level to the syslog priority prefix:
// err, warning, info, debug. Levels between slog's own round down to
// the less severe one, as slog's level names do (WARN+2 is a warning).
func journalPriority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	default:
		return "<7>"
	}
}
