package testutil

import (
	"bytes"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// LogBuffer collects what a logger writes, for tests that assert on what
// was logged while the code under test still runs: Write and String may be
// called from any goroutine. The zero value is an empty buffer.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Goroutines returns the stacks of the running goroutines that hold any
// of marks (a function's qualified name, say) in a frame, for tests that
// check a component left nothing running. The "created by" line does not
// count: a goroutine that a server's Serve started and that runs on after
// it names Serve there, and is not Serve still running.
func Goroutines(marks ...string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		var frames strings.Builder
		for line := range strings.Lines(g) {
			if !strings.HasPrefix(line, "created by ") {
				frames.WriteString(line)
			}
		}
		for _, m := range marks {
			if strings.Contains(frames.String(), m) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// LogTail keeps the last lines a logger wrote, for a long test that shows
// them when it fails without its log growing the heap. Write and String
// may be called from any goroutine.
type LogTail struct {
	mu    sync.Mutex
	size  int
	lines []string // a ring once full; next is the oldest
	next  int
}

// NewLogTail returns a LogTail keeping the last size lines.
func NewLogTail(size int) *LogTail { return &LogTail{size: max(size, 1)} }

// Write keeps p, one line of a logger's output.
func (l *LogTail) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) < l.size {
		l.lines = append(l.lines, line)
	} else {
		l.lines[l.next] = line
		l.next = (l.next + 1) % l.size
	}
	return len(p), nil
}

// String returns the lines kept, oldest first.
func (l *LogTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(append(slices.Clone(l.lines[l.next:]), l.lines[:l.next]...), "\n")
}
