package conf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/zkdns/zkdns/internal/testutil"
)

// waitLimit bounds every wait for the watcher. It is a deadline for a hung
// test, not a performance claim.
const waitLimit = 5 * time.Second

// serviceConfig returns a valid config file whose only service is name.
func serviceConfig(name string) []byte {
	return []byte(minimalZK + "\n[[service]]\nname = \"" + name + "\"\npath = \"/services/" + name + "\"\n")
}

// invalidConfig has a bad service name on line 4.
var invalidConfig = []byte(minimalZK + "[[service]]\nname = \"Bad_Name\"\npath = \"/services/bad\"\n")

// A saver replaces the config file at path with data the way one tool
// does. The first call may find no file at path.
type saver func(t *testing.T, path string, data []byte)

// writeInPlace is os.WriteFile: open with O_TRUNC, write, close. The
// inode stays the same.
func writeInPlace(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// renameSave writes a sibling temp file and renames it over path, as
// editors that save atomically do.
func renameSave(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	writeInPlace(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// vimSave moves the old file aside as a backup, writes a new file at path
// and deletes the backup: for a moment there is no file at path.
func vimSave(t *testing.T, path string, data []byte) {
	t.Helper()
	backup := path + "~"
	if err := os.Rename(path, backup); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	writeInPlace(t, path, data)
	if err := os.Remove(backup); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

// sedInPlace writes a randomly named temp file in the same directory,
// copies the mode and renames it over path, as `sed -i` does.
func sedInPlace(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.CreateTemp(filepath.Dir(path), "sed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Chmod(0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		t.Fatal(err)
	}
}

// mvFromElsewhere writes the file in another directory and moves it over
// path. The watched directory sees a single event: the file arriving.
func mvFromElsewhere(t *testing.T, path string, data []byte) {
	t.Helper()
	other := filepath.Join(t.TempDir(), "other.toml")
	writeInPlace(t, other, data)
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
}

// truncateThenWrite empties the file, then writes it in two halves, each
// step a separate syscall on the same inode. Read between the steps, the
// file would be empty or cut off mid-line.
func truncateThenWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.Truncate(path, 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	half := len(data) / 2
	for _, part := range [][]byte{data[:half], data[half:]} {
		if _, err := f.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// kubernetesSwap updates the file the way the kubelet updates a ConfigMap
// volume: path is a symlink to ..data/<name>, ..data is a symlink to a
// timestamped directory, and an update writes a new timestamped directory,
// points a new ..data_tmp symlink at it, renames that over ..data and
// removes the old directory. Nothing named path is touched after the
// first call.
func kubernetesSwap(t *testing.T, path string, data []byte) {
	t.Helper()
	dir, name := filepath.Split(path)
	stamped, err := os.MkdirTemp(dir, "..2025_01_02_03_04_05.")
	if err != nil {
		t.Fatal(err)
	}
	writeInPlace(t, filepath.Join(stamped, name), data)

	dataLink := filepath.Join(dir, "..data")
	old, err := os.Readlink(dataLink)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	tmpLink := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(stamped), tmpLink); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmpLink, dataLink); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		if err := os.Symlink(filepath.Join("..data", name), path); err != nil {
			t.Fatal(err)
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// linkedElsewhere keeps the config in another directory, store/, with
// path a symlink to it (a stow or config-management layout), and
// rename-saves it there: nothing in path's own directory changes.
func linkedElsewhere(t *testing.T, path string, data []byte) {
	t.Helper()
	target := filepath.Join(filepath.Dir(path), "store", "zkdns.toml")
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	renameSave(t, target, data)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		symlink(t, filepath.Join("store", "zkdns.toml"), path)
	}
}

// linkChain is linkedElsewhere through two links in two directories,
// relative ones: path → a/link.toml → ../b/zkdns.toml, written in place.
func linkChain(t *testing.T, path string, data []byte) {
	t.Helper()
	dir := filepath.Dir(path)
	for _, sub := range []string{"a", "b"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeInPlace(t, filepath.Join(dir, "b", "zkdns.toml"), data)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		symlink(t, filepath.Join("..", "b", "zkdns.toml"), filepath.Join(dir, "a", "link.toml"))
		symlink(t, filepath.Join("a", "link.toml"), path)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// An expect checks one emitted Change.
type expect func(t *testing.T, path string, c Change)

// wantService expects a valid config read from path whose only service is name.
func wantService(name string) expect {
	return func(t *testing.T, path string, c Change) {
		t.Helper()
		if c.Err != nil || c.Config == nil {
			t.Fatalf("got Change{Config: %v, Err: %v}; want the config with service %q", c.Config != nil, c.Err, name)
		}
		if c.Config.File != path {
			t.Errorf("Config.File = %q, want %q", c.Config.File, path)
		}
		if len(c.Config.Services) != 1 || c.Config.Services[0].Name != name {
			t.Errorf("services = %+v, want one named %q", c.Config.Services, name)
		}
	}
}

// wantInvalidAt expects the validation problems of path, the first on line.
func wantInvalidAt(line int) expect {
	return func(t *testing.T, path string, c Change) {
		t.Helper()
		if c.Config != nil || c.Err == nil {
			t.Fatalf("got Change{Config: %v, Err: %v}; want validation problems", c.Config != nil, c.Err)
		}
		var ce *Error
		if !errors.As(c.Err, &ce) {
			t.Fatalf("Err %q (%T) holds no *Error", c.Err, c.Err)
		}
		if ce.File != path || ce.Line != line {
			t.Errorf("*Error at %s:%d, want %s:%d (%v)", ce.File, ce.Line, path, line, ce)
		}
	}
}

// wantNotExist expects the read error of a missing file.
func wantNotExist(t *testing.T, _ string, c Change) {
	t.Helper()
	if c.Config != nil || !errors.Is(c.Err, fs.ErrNotExist) {
		t.Fatalf("got Change{Config: %v, Err: %v}; want an error wrapping fs.ErrNotExist", c.Config != nil, c.Err)
	}
	if !strings.HasPrefix(c.Err.Error(), "conf: read config: ") {
		t.Errorf("Err %q lacks the %q prefix", c.Err, "conf: read config: ")
	}
}

// describe shows a Change in a failure message.
func describe(c Change) string {
	if c.Err != nil {
		return "error: " + c.Err.Error()
	}
	names := make([]string, len(c.Config.Services))
	for i, s := range c.Config.Services {
		names[i] = s.Name
	}
	return fmt.Sprintf("config with services %q", names)
}

// harness runs one watcher on one file until the test ends.
type harness struct {
	path    string
	changes chan Change
	settled chan struct{}       // a debounced read finished
	reads   atomic.Int32        // debounced reads so far
	logs    *testutil.LogBuffer // what the watcher logged, at debug level and up
}

// startWatcher watches path as Watch does, with opts and a test logger, and stops the watcher, checking
// that it returns, when the test ends.
func startWatcher(t *testing.T, path string, opts WatchOptions) *harness {
	t.Helper()
	return startWatcherAdding(t, path, opts, nil)
}

// startWatcherAdding is startWatcher with add in place of fsnotify's Add.
func startWatcherAdding(t *testing.T, path string, opts WatchOptions, add func(*fsnotify.Watcher, string) error) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{
		path:    path,
		changes: make(chan Change, 16),
		settled: make(chan struct{}, 1),
		logs:    &testutil.LogBuffer{},
	}
	opts.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), h.logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := newWatcherAdding(path, opts, func(c Change) {
		select {
		case h.changes <- c:
		case <-ctx.Done():
		}
	}, add)
	if err != nil {
		cancel()
		t.Fatalf("newWatcher: %v", err)
	}
	w.settled = func() {
		h.reads.Add(1)
		select {
		case h.settled <- struct{}{}:
		default:
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitLimit):
			t.Errorf("watcher still running %v after its context was cancelled", waitLimit)
		}
		w.close()
	})
	return h
}

// step does something to the watched directory and checks what follows.
type step struct {
	name string
	do   func(t *testing.T, path string)
	// want checks the next Change. Nil means the debounced read that
	// follows do must emit nothing.
	want expect
}

func (h *harness) run(t *testing.T, s step) {
	t.Helper()
	select {
	case <-h.settled: // left over from an earlier step
	default:
	}
	s.do(t, h.path)
	if s.want == nil {
		select {
		case <-h.settled:
		case <-time.After(waitLimit):
			t.Fatalf("%s: the file was not read within %v", s.name, waitLimit)
		}
		select {
		case c := <-h.changes:
			t.Fatalf("%s: got %s; want nothing emitted", s.name, describe(c))
		default:
		}
		return
	}
	select {
	case c := <-h.changes:
		s.want(t, h.path, c)
	case <-time.After(waitLimit):
		t.Fatalf("%s: nothing emitted within %v", s.name, waitLimit)
	}
	// Let the read that emitted finish, so its signal is not taken for
	// the next step's.
	select {
	case <-h.settled:
	case <-time.After(waitLimit):
		t.Fatalf("%s: the read that emitted did not finish within %v", s.name, waitLimit)
	}
}

// save returns a step's do that saves data with s.
func save(s saver, data []byte) func(*testing.T, string) {
	return func(t *testing.T, path string) { s(t, path, data) }
}

// TestWatchSaveStyles checks that each way of replacing the file emits the
// new config exactly once. A second save of other content follows: were the
// first save emitted twice, or a half-done state emitted before it, the
// second change would not be the next one.
func TestWatchSaveStyles(t *testing.T) {
	tests := []struct {
		name     string
		save     saver
		debounce time.Duration
	}{
		{name: "in-place write", save: writeInPlace},
		{name: "rename-save", save: renameSave},
		{name: "vim save with a backup", save: vimSave},
		{name: "sed -i", save: sedInPlace},
		{name: "mv from another directory", save: mvFromElsewhere},
		// A second between two syscalls would take a stalled machine; a
		// read in between would emit the empty or cut-off file first.
		{name: "truncate then write in two steps", save: truncateThenWrite, debounce: time.Second},
		{name: "kubernetes configmap symlink swap", save: kubernetesSwap},
		{name: "symlink into another directory, saved there", save: linkedElsewhere},
		{name: "chain of symlinks across directories, saved at its end", save: linkChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "zkdns.toml")
			tt.save(t, path, serviceConfig("before"))
			h := startWatcher(t, path, WatchOptions{Debounce: tt.debounce})
			for _, s := range []step{
				{name: "first save", do: save(tt.save, serviceConfig("after")), want: wantService("after")},
				{name: "second save", do: save(tt.save, serviceConfig("again")), want: wantService("again")},
			} {
				h.run(t, s)
			}
		})
	}
}

// TestWatchSinceLoaded: given the config its caller loaded, Watch compares
// the file with it at start: a change made between the caller's read and
// Watch's start is emitted, the same config written otherwise is not, and
// later changes are emitted as usual.
func TestWatchSinceLoaded(t *testing.T) {
	cases := []struct {
		name    string
		atStart []byte
		want    expect // nil: nothing emitted at start
	}{
		{"changed between the load and the watch", serviceConfig("after"), wantService("after")},
		{"the same config written otherwise", append([]byte("# reformatted\n\n"), serviceConfig("before")...), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "zkdns.toml")
			writeInPlace(t, path, serviceConfig("before"))
			loaded, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			writeInPlace(t, path, tc.atStart)
			h := startWatcher(t, path, WatchOptions{Loaded: loaded})
			for _, s := range []step{
				{name: "start", do: func(*testing.T, string) {}, want: tc.want},
				{name: "a later save", do: save(writeInPlace, serviceConfig("later")), want: wantService("later")},
			} {
				h.run(t, s)
			}
		})
	}
}

// TestWatchDirectoryGoneSinceLoaded: a directory removed between the
// caller's load and the watch's start (replaced whole by a deploy just
// then) does not fail the start when the caller loaded the file: it is
// warned about and the file reported missing, as for a directory removed
// later, and a directory made again there is watched, its config emitted.
func TestWatchDirectoryGoneSinceLoaded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "zkdns.toml")
	writeInPlace(t, path, serviceConfig("before"))
	loaded, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	h := startWatcher(t, path, WatchOptions{Debounce: 50 * time.Millisecond, Loaded: loaded})
	for _, s := range []step{
		{name: "start", do: func(*testing.T, string) {}, want: wantNotExist},
		{name: "the directory is back with a config", do: func(t *testing.T, path string) {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			writeInPlace(t, path, serviceConfig("after"))
		}, want: wantService("after")},
		{name: "a save in it", do: save(writeInPlace, serviceConfig("later")), want: wantService("later")},
	} {
		h.run(t, s)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, `level=WARN msg="config directory removed or renamed`) || !strings.Contains(logs, `level=INFO msg="config directory is back`) {
		t.Errorf("want the warning and the line saying the directory is back:\n%s", logs)
	}
}

// TestWatchDirectoryWatchRefused: a kernel out of inotify watches (a busy
// host) refuses the config directory's watch at the start. The watch
// still starts: it reads the file every second, warns once naming the
// sysctl, and watches the directory as soon as the kernel allows.
func TestWatchDirectoryWatchRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "zkdns.toml")
	writeInPlace(t, path, serviceConfig("before"))
	var refuse atomic.Bool
	refuse.Store(true)
	add := func(n *fsnotify.Watcher, name string) error {
		if name == dir && refuse.Load() {
			return syscall.ENOSPC
		}
		return n.Add(name)
	}
	h := startWatcherAdding(t, path, WatchOptions{Debounce: 50 * time.Millisecond}, add)
	for _, s := range []step{
		{name: "saved while the watch is refused", do: save(writeInPlace, serviceConfig("polled")), want: wantService("polled")},
		{name: "saved again", do: save(writeInPlace, serviceConfig("repolled")), want: wantService("repolled")},
	} {
		h.run(t, s)
	}
	refuse.Store(false)
	testutil.Eventually(t, waitLimit, "the directory watched", func() (bool, string) {
		return strings.Contains(h.logs.String(), `level=INFO msg="config directory watched again"`), h.logs.String()
	})
	h.run(t, step{name: "saved once watched", do: save(writeInPlace, serviceConfig("watched")), want: wantService("watched")})
	logs := h.logs.String()
	if n := strings.Count(logs, `level=WARN msg="cannot watch the config directory`); n != 1 || !strings.Contains(logs, "fs.inotify.max_user_watches") {
		t.Errorf("%d warnings about the refused watch, want one naming fs.inotify.max_user_watches:\n%s", n, logs)
	}
	if strings.Contains(logs, "removed or renamed") {
		t.Errorf("a refused watch is logged as a directory gone:\n%s", logs)
	}
}

// TestWatchFileStates checks what is emitted, and what is not, as the file
// becomes invalid, unchanged, missing and present again.
func TestWatchFileStates(t *testing.T) {
	remove := func(t *testing.T, path string) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	// danglingLink puts a link to nothing where the file was: an event
	// for the config's name after which the file is still missing, so
	// nothing is emitted again. The next step writes through the link or
	// renames a file over it.
	danglingLink := func(t *testing.T, path string) {
		symlink(t, "nowhere.toml", path)
	}
	// recreateDir makes the file's directory again, as a deployment that
	// replaces the whole directory does, and writes the file into it.
	recreateDir := func(data []byte) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			writeInPlace(t, path, data)
		}
	}
	initial := serviceConfig("initial")
	// dirLogs are the lines an operator sees when the directory goes and
	// comes back: warned of once it is still gone after the debounce.
	dirLogs := []string{
		"level=WARN msg=\"config directory removed or renamed; reading the config every second until it is back\"",
		"level=INFO msg=\"config directory is back; watching it again\"",
	}
	tests := []struct {
		name    string
		initial []byte // nil: no file at start
		steps   []step
		logs    []string // logged by the end, in this order
	}{
		{
			name:    "invalid content is reported with its line",
			initial: initial,
			steps: []step{
				{name: "write invalid", do: save(writeInPlace, invalidConfig), want: wantInvalidAt(4)},
				{name: "fix it", do: save(writeInPlace, serviceConfig("fixed")), want: wantService("fixed")},
			},
		},
		{
			name:    "a TOML syntax error is reported with its line",
			initial: initial,
			steps: []step{
				{name: "write broken", do: save(writeInPlace, []byte(minimalZK+"[dns\n")), want: wantInvalidAt(3)},
				{name: "fix it", do: save(writeInPlace, serviceConfig("fixed")), want: wantService("fixed")},
			},
		},
		{
			name:    "rewriting the loaded content emits nothing",
			initial: initial,
			steps: []step{
				{name: "rewrite in place", do: save(writeInPlace, initial)},
				{name: "rename-save the same", do: save(renameSave, initial)},
				{name: "real change", do: save(writeInPlace, serviceConfig("changed")), want: wantService("changed")},
			},
		},
		{
			name:    "rewriting invalid content reports it once",
			initial: initial,
			steps: []step{
				{name: "write invalid", do: save(writeInPlace, invalidConfig), want: wantInvalidAt(4)},
				{name: "rewrite invalid", do: save(writeInPlace, invalidConfig)},
				{name: "go back to the loaded content", do: save(writeInPlace, initial), want: wantService("initial")},
			},
		},
		{
			name:    "a deleted file is reported once and emitted again when re-created",
			initial: initial,
			steps: []step{
				{name: "delete", do: remove, want: wantNotExist},
				{name: "deleted again, through a dangling link in its place", do: danglingLink},
				{name: "re-create with the same content", do: save(writeInPlace, initial), want: wantService("initial")},
			},
		},
		{
			name:    "a file missing at start is emitted when it appears",
			initial: nil,
			steps: []step{
				{name: "still missing, through a dangling link in its place", do: danglingLink},
				{name: "create", do: save(renameSave, serviceConfig("new")), want: wantService("new")},
			},
		},
		{
			name:    "a removed directory reports the file missing, and is watched again when re-created",
			initial: initial,
			steps: []step{
				{name: "remove the directory", do: func(t *testing.T, path string) {
					if err := os.RemoveAll(filepath.Dir(path)); err != nil {
						t.Fatal(err)
					}
				}, want: wantNotExist},
				{name: "re-create it with the file", do: recreateDir(serviceConfig("back")), want: wantService("back")},
				{name: "edit the file in the new directory", do: save(writeInPlace, serviceConfig("edited")), want: wantService("edited")},
			},
			logs: dirLogs,
		},
		{
			name:    "a directory renamed away is watched again when one takes its place",
			initial: initial,
			steps: []step{
				{name: "rename the directory", do: func(t *testing.T, path string) {
					dir := filepath.Dir(path)
					if err := os.Rename(dir, dir+".old"); err != nil {
						t.Fatal(err)
					}
				}, want: wantNotExist},
				{name: "put a new one in its place", do: recreateDir(serviceConfig("new")), want: wantService("new")},
				{name: "rename-save in the new directory", do: save(renameSave, serviceConfig("edited")), want: wantService("edited")},
			},
			logs: dirLogs,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A directory of its own, so that removing it leaves t.TempDir
			// for the test to clean up.
			dir := filepath.Join(t.TempDir(), "etc")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "zkdns.toml")
			if tt.initial != nil {
				writeInPlace(t, path, tt.initial)
			}
			h := startWatcher(t, path, WatchOptions{Debounce: 50 * time.Millisecond})
			for _, s := range tt.steps {
				h.run(t, s)
			}
			logs := h.logs.String()
			at := 0
			for _, want := range tt.logs {
				i := strings.Index(logs[at:], want)
				if i < 0 {
					t.Fatalf("no %q (after the lines before it) in the log:\n%s", want, logs)
				}
				at += i + len(want)
			}
			if n := strings.Count(logs, "level=WARN"); n != strings.Count(strings.Join(tt.logs, "\n"), "level=WARN") {
				t.Errorf("%d warnings logged, want one per warning expected:\n%s", n, logs)
			}
		})
	}
}

// TestWatchRelativePath checks that a relative path keeps naming the file
// it named at start after the working directory changes, and that messages
// name it as given.
func TestWatchRelativePath(t *testing.T) {
	tests := []struct {
		name string
		save saver
		data []byte
		want expect
	}{
		{name: "valid config", save: renameSave, data: serviceConfig("after"), want: wantService("after")},
		{name: "invalid config", save: writeInPlace, data: invalidConfig, want: wantInvalidAt(4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			const path = "zkdns.toml"
			writeInPlace(t, path, serviceConfig("before"))
			h := startWatcher(t, path, WatchOptions{Debounce: 50 * time.Millisecond})
			t.Chdir(t.TempDir())
			h.run(t, step{
				name: "save through the absolute path",
				do:   func(t *testing.T, _ string) { tt.save(t, filepath.Join(dir, path), tt.data) },
				want: tt.want,
			})
		})
	}
}

// TestWatchStartErrors checks that Watch fails at once, with a message
// naming the problem, when it cannot watch.
func TestWatchStartErrors(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	writeInPlace(t, regular, []byte("not a directory\n"))
	ignore := func(Change) {}
	tests := []struct {
		name     string
		path     string
		emit     func(Change)
		wantIs   error // nil: not checked
		wantText string
	}{
		{
			name:     "directory does not exist",
			path:     filepath.Join(dir, "missing", "zkdns.toml"),
			emit:     ignore,
			wantIs:   fs.ErrNotExist,
			wantText: "conf: watch config directory: stat " + filepath.Join(dir, "missing") + ": no such file or directory",
		},
		{
			name:     "directory is a regular file",
			path:     filepath.Join(regular, "zkdns.toml"),
			emit:     ignore,
			wantText: "conf: watch config directory: " + regular + " is not a directory",
		},
		{
			name:     "no emit function",
			path:     filepath.Join(dir, "zkdns.toml"),
			emit:     nil,
			wantText: "conf: watch config: emit is nil; pass a function to receive changes",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Were Watch to start instead of failing, it would return nil
			// at this deadline.
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			err := Watch(ctx, tt.path, WatchOptions{}, tt.emit)
			if err == nil {
				t.Fatal("Watch returned nil; want an error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q does not wrap %v", err, tt.wantIs)
			}
			if err.Error() != tt.wantText {
				t.Errorf("error %q, want %q", err, tt.wantText)
			}
		})
	}
}

// TestWatchStops checks that Watch returns nil once its context ends, and
// emits nothing after, even with a change waiting out its debounce. (The
// harness of the other tests checks the same of a watcher that has run.)
func TestWatchStops(t *testing.T) {
	tests := []struct {
		name        string
		cancelFirst bool // cancel before Watch is called
		pending     bool // write a change just before cancelling
	}{
		{name: "context cancelled before the call", cancelFirst: true},
		{name: "context cancelled while running"},
		{name: "context cancelled with a change pending", pending: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "zkdns.toml")
			writeInPlace(t, path, serviceConfig("initial"))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancelFirst {
				cancel()
			}
			var emitted atomic.Int32
			done := make(chan error, 1)
			go func() {
				// An hour of debounce: nothing may be read before the cancel.
				done <- Watch(ctx, path, WatchOptions{Debounce: time.Hour}, func(Change) { emitted.Add(1) })
			}()
			if tt.pending {
				writeInPlace(t, path, serviceConfig("pending"))
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Watch returned %v after cancel; want nil", err)
				}
			case <-time.After(waitLimit):
				t.Fatalf("Watch still running %v after its context was cancelled", waitLimit)
			}
			if n := emitted.Load(); n != 0 {
				t.Errorf("emit called %d times; want none", n)
			}
		})
	}
}

// linkedConfig makes a config path that is a symlink to target("old"),
// which holds service "before", beside an empty target("new") directory.
func linkedConfig(t *testing.T) (path string, target func(sub string) string) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "zkdns.toml")
	target = func(sub string) string { return filepath.Join(dir, sub, "zkdns.toml") }
	for _, sub := range []string{"old", "new"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeInPlace(t, target("old"), serviceConfig("before"))
	symlink(t, target("old"), path)
	return path, target
}

// TestWatchSymlinkRepointed points the config symlink at a file in a new
// directory: that file's edits must be seen from then on, and the old
// target's no longer.
func TestWatchSymlinkRepointed(t *testing.T) {
	path, target := linkedConfig(t)
	h := startWatcher(t, path, WatchOptions{Debounce: 50 * time.Millisecond})
	for _, s := range []step{
		{name: "old target edited", do: func(t *testing.T, _ string) { writeInPlace(t, target("old"), serviceConfig("edited")) },
			want: wantService("edited")},
		{name: "link re-pointed", do: func(t *testing.T, path string) {
			writeInPlace(t, target("new"), serviceConfig("moved"))
			symlink(t, target("new"), path+".tmp")
			if err := os.Rename(path+".tmp", path); err != nil {
				t.Fatal(err)
			}
		}, want: wantService("moved")},
		{name: "new target edited", do: func(t *testing.T, _ string) { writeInPlace(t, target("new"), serviceConfig("again")) },
			want: wantService("again")},
		{name: "old target edited after the move", do: func(t *testing.T, _ string) {
			// Nothing to emit: the file read is the new target. Writing
			// it unchanged makes sure a read follows.
			writeInPlace(t, target("old"), serviceConfig("stale"))
			writeInPlace(t, target("new"), serviceConfig("again"))
		}},
	} {
		h.run(t, s)
	}
}

// TestWatchEditWhileRepointIsEmitted: the link is re-pointed into a
// directory not watched yet, and the file there is edited while the
// daemon takes the read that followed (emit runs on Watch's goroutine).
// The new directory must be watched before that read, or the edit would
// go unseen until some other event.
func TestWatchEditWhileRepointIsEmitted(t *testing.T) {
	path, target := linkedConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 16)
	w, err := newWatcher(path, WatchOptions{Debounce: 50 * time.Millisecond}, func(c Change) {
		if c.Config != nil && len(c.Config.Services) == 1 && c.Config.Services[0].Name == "moved" {
			writeInPlace(t, target("new"), serviceConfig("edited"))
		}
		got <- describe(c)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx)
	}()
	defer func() { cancel(); <-done }()
	writeInPlace(t, target("new"), serviceConfig("moved"))
	symlink(t, target("new"), path+".tmp")
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	want := `config with services ["edited"]`
	var seen []string
	deadline := time.After(waitLimit)
	for {
		select {
		case d := <-got:
			if seen = append(seen, d); d == want {
				return
			}
		case <-deadline:
			t.Fatalf("the file holds service \"edited\"; emitted only %q", seen)
		}
	}
}

// TestWatchReread: each value on Reread emits what the file holds at
// once, changed or not (a SIGHUP's reload), and what it read counts as
// emitted: a save back to the content before is emitted after it.
func TestWatchReread(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zkdns.toml")
	writeInPlace(t, path, serviceConfig("before"))
	reread := make(chan struct{})
	got := make(chan string, 16)
	w, err := newWatcher(path, WatchOptions{Debounce: 50 * time.Millisecond, Reread: reread}, func(c Change) { got <- describe(c) })
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx)
	}()
	defer func() { cancel(); <-done }()
	next := func(want string) {
		t.Helper()
		select {
		case d := <-got:
			if d != want {
				t.Fatalf("emitted %s, want %s", d, want)
			}
		case <-time.After(waitLimit):
			t.Fatalf("nothing emitted, want %s", want)
		}
	}
	reread <- struct{}{}
	next(`config with services ["before"]`)
	writeInPlace(t, path, serviceConfig("during"))
	reread <- struct{}{}
	next(`config with services ["during"]`)
	writeInPlace(t, path, serviceConfig("before"))
	next(`config with services ["before"]`)
}

// TestInotifyLimit: the errnos the kernel gives for its inotify limits
// name the limit to raise; other errors pass as they are.
func TestInotifyLimit(t *testing.T) {
	cases := []struct {
		err  error
		want string // in the message; "" for the error unchanged
	}{
		{syscall.ENOSPC, "sysctl fs.inotify.max_user_watches"},
		{fmt.Errorf("couldn't initialize inotify: %w", syscall.EMFILE), "sysctl fs.inotify.max_user_instances"},
		{syscall.EACCES, ""},
	}
	for _, tc := range cases {
		got := inotifyLimit(tc.err)
		if !errors.Is(got, tc.err) {
			t.Errorf("inotifyLimit(%v) = %v, which no longer wraps it", tc.err, got)
		}
		if tc.want == "" && got.Error() != tc.err.Error() || tc.want != "" && !strings.Contains(got.Error(), tc.want) {
			t.Errorf("inotifyLimit(%v) = %q, want it to name %q", tc.err, got, tc.want)
		}
	}
}

// TestWatchDirectoryLinkSwapped watches a config whose directory is a
// symlink, as a deploy tool lays out releases (current -> releases/N):
// swapping the link to another release, atomically or by removing and
// making it again, must be seen, and so must edits in the release it
// points to from then on, though none of this happens in the directory
// the config's path names.
func TestWatchDirectoryLinkSwapped(t *testing.T) {
	dir := t.TempDir()
	release := func(n string) string { return filepath.Join(dir, "releases", n) }
	for _, n := range []string{"1", "2", "3"} {
		if err := os.MkdirAll(release(n), 0o755); err != nil {
			t.Fatal(err)
		}
		writeInPlace(t, filepath.Join(release(n), "zkdns.toml"), serviceConfig("release-"+n))
	}
	current := filepath.Join(dir, "current")
	symlink(t, filepath.Join("releases", "1"), current)
	path := filepath.Join(current, "zkdns.toml")
	// Long enough that the link is made again within it even when the
	// test is descheduled between the unlink and the link (a loaded host).
	h := startWatcher(t, path, WatchOptions{Debounce: 500 * time.Millisecond})
	for _, s := range []step{
		{name: "link swapped atomically", do: func(t *testing.T, _ string) {
			symlink(t, filepath.Join("releases", "2"), current+".tmp")
			if err := os.Rename(current+".tmp", current); err != nil {
				t.Fatal(err)
			}
		}, want: wantService("release-2")},
		{name: "config edited in the new release", do: func(t *testing.T, _ string) {
			writeInPlace(t, filepath.Join(release("2"), "zkdns.toml"), serviceConfig("edited"))
		}, want: wantService("edited")},
		{name: "link removed and made again", do: func(t *testing.T, _ string) {
			// As ln -sfn does it: unlink, then link. The pause, well
			// inside the debounce, lets the watcher see the link gone.
			if err := os.Remove(current); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
			symlink(t, filepath.Join("releases", "3"), current)
		}, want: wantService("release-3")},
		{name: "old releases deleted, the current one edited", do: func(t *testing.T, _ string) {
			for _, n := range []string{"1", "2"} {
				if err := os.RemoveAll(release(n)); err != nil {
					t.Fatal(err)
				}
			}
			writeInPlace(t, filepath.Join(release("3"), "zkdns.toml"), serviceConfig("edited-3"))
		}, want: wantService("edited-3")},
	} {
		h.run(t, s)
	}
	// The path led to a directory all along, though the link was remade
	// and the releases it led to deleted: an operator has nothing to be
	// warned of.
	if logs := h.logs.String(); strings.Contains(logs, "level=WARN") {
		t.Errorf("a warning was logged while the path always led to the config:\n%s", logs)
	}
}

// TestWatchBusyDirectory saves the config while another file in its
// directory is written more often than the debounce: the edit must still
// be read, not put off for as long as the other file keeps changing.
func TestWatchBusyDirectory(t *testing.T) {
	const debounce = 50 * time.Millisecond
	path := filepath.Join(t.TempDir(), "zkdns.toml")
	writeInPlace(t, path, serviceConfig("before"))
	h := startWatcher(t, path, WatchOptions{Debounce: debounce})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		log := filepath.Join(filepath.Dir(path), "busy.log")
		tick := time.NewTicker(debounce / 5)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				f, err := os.OpenFile(log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
				if err == nil {
					_, _ = f.WriteString("line\n")
					f.Close()
				}
			}
		}
	}()
	defer func() { close(stop); <-done }()
	renameSave(t, path, serviceConfig("after"))
	select {
	case c := <-h.changes:
		wantService("after")(t, path, c)
	case <-time.After(waitLimit):
		t.Fatalf("the edit was not read within %v while another file in the directory kept changing", waitLimit)
	}
}

// TestWatchLinkDirectoryReplaced deletes the directory the config symlink
// points into and makes it again (a deploy tool replacing its output),
// both beside the link and elsewhere: edits in the new directory must be
// seen as before, though the watch on the old one is gone with it.
func TestWatchLinkDirectoryReplaced(t *testing.T) {
	for _, beside := range []bool{true, false} {
		t.Run(fmt.Sprintf("beside=%v", beside), func(t *testing.T) {
			dir := t.TempDir()
			store := filepath.Join(t.TempDir(), "store")
			if beside {
				store = filepath.Join(dir, "store")
			}
			target := filepath.Join(store, "zkdns.toml")
			path := filepath.Join(dir, "zkdns.toml")
			if err := os.MkdirAll(store, 0o755); err != nil {
				t.Fatal(err)
			}
			writeInPlace(t, target, serviceConfig("before"))
			symlink(t, target, path)
			h := startWatcher(t, path, WatchOptions{Debounce: 50 * time.Millisecond})
			for _, s := range []step{
				{name: "directory deleted", do: func(t *testing.T, _ string) {
					if err := os.RemoveAll(store); err != nil {
						t.Fatal(err)
					}
				}, want: wantNotExist},
				{name: "directory made again, with the config, by a rename", do: func(t *testing.T, _ string) {
					tmp := store + ".tmp"
					if err := os.MkdirAll(tmp, 0o755); err != nil {
						t.Fatal(err)
					}
					writeInPlace(t, filepath.Join(tmp, "zkdns.toml"), serviceConfig("back"))
					if err := os.Rename(tmp, store); err != nil {
						t.Fatal(err)
					}
				}, want: wantService("back")},
				{name: "config edited in the new directory", do: func(t *testing.T, _ string) {
					writeInPlace(t, target, serviceConfig("edited"))
				}, want: wantService("edited")},
			} {
				h.run(t, s)
			}
		})
	}
}

// TestWatchIgnoresOtherFiles writes other files in the config's
// directories, as a log file kept beside the config is written, then
// rename-saves the config: the other files' events must be neither logged
// nor read for. A log at debug level in the config directory used to log
// an event line for each of its own writes, without end. The save's
// emit comes after every earlier event has been taken from the queue,
// so by then each one was either ignored or counted.
func TestWatchIgnoresOtherFiles(t *testing.T) {
	appendTo := func(t *testing.T, name string) {
		for range 100 {
			f, err := os.OpenFile(name, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("level=DEBUG msg=\"config directory event\"\n"); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	cases := []struct {
		name  string
		setup saver // lays out the config before the watch starts
		busy  func(dir string) string
	}{
		{"log beside a plain file", writeInPlace, func(dir string) string { return filepath.Join(dir, "serve.log") }},
		{"log beside a ConfigMap", kubernetesSwap, func(dir string) string { return filepath.Join(dir, "serve.log") }},
		{"log in the directory a symlink leads into", linkedElsewhere, func(dir string) string {
			return filepath.Join(dir, "store", "serve.log")
		}},
		{"an editor's swap file beside the config", writeInPlace, func(dir string) string { return filepath.Join(dir, ".zkdns.toml.swp") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "zkdns.toml")
			tc.setup(t, path, serviceConfig("before"))
			busy := tc.busy(dir)
			// A save is a few events (a ConfigMap swap's rename and removal,
			// an in-place write's truncate and write): as in
			// TestWatchSaveStyles, only a stall of a second between them
			// would make it two reads.
			h := startWatcher(t, path, WatchOptions{Debounce: time.Second})
			appendTo(t, busy)
			h.run(t, step{name: "config saved after the other file's writes", do: save(tc.setup, serviceConfig("after")),
				want: wantService("after")})
			if logs := h.logs.String(); strings.Contains(logs, filepath.Base(busy)) {
				t.Errorf("events for %s logged:\n%s", busy, logs)
			}
			if n := h.reads.Load(); n != 1 {
				t.Errorf("%d reads of the config; want 1, for the save alone", n)
			}
			select {
			case c := <-h.changes:
				t.Errorf("emitted %s after the save; want nothing more", describe(c))
			default:
			}
		})
	}
}
