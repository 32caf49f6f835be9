package conf

// A model-based randomized test of Watch: a seeded random walk of the
// ways a config file changes on disk (saves of every style, half-written
// saves, deletion and re-creation, invalid content, a symlink into another
// directory and its re-pointing, a ConfigMap's ..data swaps, the whole
// directory removed and made again, touches and rewrites of the same
// content, bursts of saves) while one Watch runs. After each step the
// last Change emitted must come to match what the file holds, only states
// the file went through may have been emitted on the way, no two
// consecutive emits may be the same, and a step that leaves the content
// as it was must emit nothing.
//
// A failure prints its seed and step count; replay it with
//
//	go test ./conf -run TestWatchModel -watchmodel.seed=N -watchmodel.steps=M
//
// make test runs one fixed seed; -watchmodel.seed=-1 draws one from the
// clock, to explore:
//
//	for i in $(seq 20); do go test -race -count=1 ./conf -run TestWatchModel -watchmodel.seed=-1 || break; done

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkdns/zkdns/internal/testutil"
)

var (
	watchModelSeed  = flag.Int64("watchmodel.seed", 0, "TestWatchModel: seed of its random walk (0: a fixed one; -1: from the clock)")
	watchModelSteps = flag.Int("watchmodel.steps", 0, "TestWatchModel: how many steps it takes (0: the default)")
)

const (
	// watchModelDefaultSeed is the seed of a run given none, picked for a
	// walk that takes nearly every kind of step: the directory both
	// removed and renamed away and made again empty and with the file, the
	// ConfigMap layout and its swaps, symlinks, half-written saves, bursts,
	// touches and same-content rewrites (not a symlink's target deleted,
	// nor a return to the last valid content).
	watchModelDefaultSeed = 18
	// watchModelDefaultSteps keeps a run under about 20 s under the race
	// detector on a busy two-core machine: a step that removes the
	// directory waits out the watcher's one-second poll, one that must
	// emit nothing waits out a quiet window.
	watchModelDefaultSteps = 40
	// watchModelSettle bounds the wait for the last emit to match the
	// file: a debounce, or the one-second poll while the directory is
	// gone, with room for a stalled machine. A deadline, not a claim.
	watchModelSettle = 5 * time.Second
	// watchModelQuiet is how long a step that leaves the content as it was
	// is watched for an emit: the debounce and then some. Nothing may come
	// in it; it is a behaviour check, not a timing one.
	watchModelQuiet = 600 * time.Millisecond
	// watchModelLogLines is how many of the watcher's last log lines a
	// failure shows.
	watchModelLogLines = 200
)

// watchModelNames are the service names a valid config picks from.
var watchModelNames = []string{"alpha", "beta", "gamma", "delta", "omega"}

// The layouts of the config path.
const (
	wmPlain     = iota // a regular file at path (or nothing there)
	wmLink             // path is a symlink to store<N>/zkdns.toml beside dir
	wmConfigMap        // path → ..data/zkdns.toml, ..data → a timestamped dir
	wmNoDir            // the directory itself is gone
)

var wmLayoutNames = []string{"plain", "symlink", "configmap", "no directory"}

// watchModel is the walk's view of the file system and of what was emitted.
type watchModel struct {
	t    *testing.T
	rng  *rand.Rand
	seed int64
	root string // t.TempDir(): holds dir and the symlink targets
	dir  string // the config's directory
	path string // the config path Watch watches

	layout int
	real   string // the file the content is in: path, or a link's target
	file   []byte // what real holds; nil when missing
	valid  []byte // the last valid content written, to go back to
	serial int    // makes names and invalid contents unique
	locked bool   // real is chmod 000

	history []string // the steps so far, for a failure
	logs    *testutil.LogTail

	mu      sync.Mutex
	emitted []string // fingerprints of the Changes emitted, in order
	initial string   // fingerprint of what the file held at start
}

func TestWatchModel(t *testing.T) {
	seed, steps := testutil.SeededWalk(*watchModelSeed, watchModelDefaultSeed, *watchModelSteps, watchModelDefaultSteps)
	t.Logf("seed %d, %d steps (replay: -watchmodel.seed=%d -watchmodel.steps=%d)", seed, steps, seed, steps)
	marks := []string{"github.com/fsnotify/fsnotify.", "github.com/zkdns/zkdns/conf.Watch", "github.com/zkdns/zkdns/conf.(*watcher)"}
	baseline := len(testutil.Goroutines(marks...))

	root := t.TempDir()
	m := &watchModel{
		t:    t,
		rng:  rand.New(rand.NewSource(seed)),
		seed: seed,
		root: root,
		dir:  filepath.Join(root, "etc"),
		logs: testutil.NewLogTail(watchModelLogLines),
	}
	m.path = filepath.Join(m.dir, "zkdns.toml")
	m.real = m.path
	if err := os.Mkdir(m.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	first := m.newValid()
	writeInPlace(t, m.path, first)
	m.file, m.valid = first, first
	m.initial = m.expected()
	// The caller's loaded config, so that a step taken before Watch has
	// read the file is compared with it rather than taken as loaded.
	loaded, err := Parse(m.path, first)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(m.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() {
		done <- Watch(ctx, m.path, WatchOptions{Logger: logger, Loaded: loaded}, m.record)
	}()

	for i := range steps {
		m.step(i)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			m.fail("Watch returned %v after its context was cancelled; want nil", err)
		}
	case <-time.After(watchModelSettle):
		m.fail("Watch still running %v after its context was cancelled", watchModelSettle)
	}
	testutil.Eventually(t, watchModelSettle, "no goroutine of Watch or fsnotify left", func() (bool, string) {
		g := testutil.Goroutines(marks...)
		return len(g) <= baseline, fmt.Sprintf("%d goroutines, %d before the test:\n\n%s", len(g), baseline, strings.Join(g, "\n\n"))
	})
	// Restore permissions so that t.TempDir's cleanup can remove it all.
	if m.locked {
		_ = os.Chmod(m.real, 0o644)
	}
}

// record is Watch's emit.
func (m *watchModel) record(c Change) {
	fp := m.fingerprintChange(c)
	m.mu.Lock()
	m.emitted = append(m.emitted, fp)
	m.mu.Unlock()
	_, _ = m.logs.Write([]byte("test: emitted " + fp + "\n"))
}

// fingerprintChange names what a Change says, so that two Changes are the
// same exactly when they say the same.
func (m *watchModel) fingerprintChange(c Change) string {
	switch {
	case c.Err != nil && c.Config == nil:
		return "error: " + c.Err.Error()
	case c.Err == nil && c.Config != nil:
		names := make([]string, len(c.Config.Services))
		for i, s := range c.Config.Services {
			names[i] = s.Name
		}
		fp := fmt.Sprintf("config: ttl %v, services %s", c.Config.DNS.TTL, strings.Join(names, ","))
		if c.Config.File != m.path {
			fp += fmt.Sprintf(" (Config.File %q, want %q)", c.Config.File, m.path)
		}
		return fp
	default:
		return fmt.Sprintf("malformed Change{Config: %v, Err: %v}", c.Config != nil, c.Err)
	}
}

// fingerprintRead is the fingerprint of the Change a read that found
// data, or failed with err, must emit.
func (m *watchModel) fingerprintRead(data []byte, err error) string {
	if err != nil {
		return m.fingerprintChange(Change{Err: fmt.Errorf("conf: read config: %w", err)})
	}
	c, err := Parse(m.path, data)
	return m.fingerprintChange(Change{Config: c, Err: err})
}

// missing is the fingerprint of a missing file.
func (m *watchModel) missing() string {
	return m.fingerprintRead(nil, &fs.PathError{Op: "open", Path: m.path, Err: fs.ErrNotExist})
}

// expected reads the file as Watch does and returns what the last emit
// must say, after checking the file holds what the model says.
func (m *watchModel) expected() string {
	data, err := os.ReadFile(m.path)
	switch {
	case m.locked:
		if !errors.Is(err, fs.ErrPermission) {
			m.fail("model: %s should be unreadable; read %v", m.path, err)
		}
	case m.file == nil:
		if !errors.Is(err, fs.ErrNotExist) {
			m.fail("model: %s should be missing; read %v", m.path, err)
		}
	case err != nil || !bytes.Equal(data, m.file):
		m.fail("model: %s should hold\n%s\nread %v:\n%s", m.path, m.file, err, data)
	}
	return m.fingerprintRead(data, err)
}

func (m *watchModel) fail(format string, args ...any) {
	m.t.Helper()
	m.mu.Lock()
	emitted := slices.Clone(m.emitted)
	m.mu.Unlock()
	m.t.Fatalf("seed %d: %s\n\nsteps:\n  %s\n\nemitted (after %s):\n  %s\n\nwatcher's last log lines:\n%s\n\nreplay: go test ./conf -run TestWatchModel -watchmodel.seed=%d -watchmodel.steps=%d",
		m.seed, fmt.Sprintf(format, args...), strings.Join(m.history, "\n  "), m.initial, strings.Join(emitted, "\n  "),
		m.logs.String(), m.seed, len(m.history))
}

// newValid returns a valid config that differs from what the file holds:
// its TTL and services tell it apart.
func (m *watchModel) newValid() []byte {
	for {
		var b strings.Builder
		b.WriteString(minimalZK)
		fmt.Fprintf(&b, "\n[dns]\nttl = \"%ds\"\n", 1+m.rng.Intn(60))
		for _, name := range watchModelNames {
			if m.rng.Intn(2) == 0 {
				fmt.Fprintf(&b, "\n[[service]]\nname = %q\npath = \"/services/%s\"\n", name, name)
			}
		}
		if data := []byte(b.String()); !bytes.Equal(data, m.file) {
			return data
		}
	}
}

// newInvalid returns content Parse refuses, a TOML syntax error or a
// validation problem, with an error of its own: two invalid contents in a
// row are two different Changes.
func (m *watchModel) newInvalid() []byte {
	m.serial++
	if m.rng.Intn(2) == 0 {
		// The syntax error is on a line of its own number.
		return []byte(minimalZK + strings.Repeat("# padding\n", m.serial%50) + "[dns\n")
	}
	return []byte(fmt.Sprintf("%s[[service]]\nname = \"Bad_%d\"\npath = \"/services/bad\"\n", minimalZK, m.serial))
}

// walkStep is one step of the walk as it goes.
type walkStep struct {
	name    string
	through map[string]bool // fingerprints of states the file passed through
	strict  bool            // the content is as it was at every moment: nothing may be emitted
}

func (s *walkStep) pass(fp string) { s.through[fp] = true }

// step takes one random step and checks what the watcher emits for it.
func (m *watchModel) step(i int) {
	m.mu.Lock()
	n0 := len(m.emitted)
	before := m.initial
	if n0 > 0 {
		before = m.emitted[n0-1]
	}
	m.mu.Unlock()

	s := &walkStep{through: map[string]bool{}}
	m.act(s)
	m.history = append(m.history, fmt.Sprintf("%d: %s [%s]", i, s.name, wmLayoutNames[m.layout]))
	m.t.Logf("step %d: %s", i, s.name)
	want := m.expected()

	if s.strict && want != before {
		m.fail("model: step %q is strict but the file went from %s to %s", s.name, before, want)
	}
	if want == before {
		// Nothing is to change: watch for what comes anyway.
		time.Sleep(watchModelQuiet)
	}
	var since []string
	deadline := time.Now().Add(watchModelSettle)
	for {
		m.mu.Lock()
		since = slices.Clone(m.emitted[n0:])
		m.mu.Unlock()
		last := before
		if len(since) > 0 {
			last = since[len(since)-1]
		}
		if last == want {
			break
		}
		if time.Now().After(deadline) {
			m.fail("step %d (%s): the last emit is %s, %v after the step; the file holds %s", i, s.name, last, watchModelSettle, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.strict && len(since) > 0 {
		m.fail("step %d (%s) left the content as it was, and emitted %q; want nothing", i, s.name, since)
	}
	prev := before
	for _, fp := range since {
		if fp != want && !s.through[fp] {
			m.fail("step %d (%s) emitted %s, which the file never held in it (it now holds %s)", i, s.name, fp, want)
		}
		if fp == prev {
			m.fail("step %d (%s) emitted %s twice in a row", i, s.name, fp)
		}
		prev = fp
	}
}

// act picks and takes a step that makes sense in the current layout.
func (m *watchModel) act(s *walkStep) {
	t := m.t
	if m.locked {
		s.name = "chmod 644 again"
		if err := os.Chmod(m.real, 0o644); err != nil {
			t.Fatal(err)
		}
		m.locked = false
		return
	}
	if m.layout == wmNoDir {
		m.recreateDir(s)
		return
	}
	type op struct {
		weight int
		ok     bool
		do     func(*walkStep)
	}
	exists := m.file != nil
	ops := []op{
		{6, true, m.save},
		{2, exists, m.writeInTwo},
		{2, exists && m.layout != wmConfigMap, m.burst},
		{2, exists, m.writeInvalid},
		{2, exists && !bytes.Equal(m.file, m.valid), m.restoreValid},
		{2, exists, m.delete},
		{2, !exists, m.create},
		{2, exists, m.touch},
		{2, exists, m.rewriteSame},
		{2, true, m.toLink},
		{3, true, m.configMap},
		{1, true, m.removeDir},
		// Unreadable is not possible as root.
		{1, exists && os.Geteuid() != 0, m.lock},
	}
	total := 0
	for _, o := range ops {
		if o.ok {
			total += o.weight
		}
	}
	n := m.rng.Intn(total)
	for _, o := range ops {
		if !o.ok {
			continue
		}
		if n < o.weight {
			o.do(s)
			return
		}
		n -= o.weight
	}
}

// put writes data to the file in the current layout in one of the ways
// tools do, noting the states it passes through.
func (m *watchModel) put(s *walkStep, data []byte) string {
	t := m.t
	if m.layout == wmConfigMap {
		m.swapData(data)
		m.file = data
		return "configmap swap"
	}
	if err := os.MkdirAll(filepath.Dir(m.real), 0o755); err != nil {
		t.Fatal(err)
	}
	var how string
	switch m.rng.Intn(3) {
	case 0:
		how = "in-place write"
		if m.file != nil {
			s.pass(m.fingerprintRead(nil, nil)) // truncated
		}
		writeInPlace(t, m.real, data)
	case 1:
		how = "rename-save"
		renameSave(t, m.real, data)
	default:
		how = "sed -i"
		sedInPlace(t, m.real, data)
	}
	m.file = data
	return how
}

func (m *watchModel) noteValid(data []byte) {
	if _, err := Parse(m.path, data); err == nil {
		m.valid = data
	}
}

// save writes a new valid config.
func (m *watchModel) save(s *walkStep) {
	data := m.newValid()
	if m.file == nil {
		s.pass(m.missing())
	}
	s.name = "save new content by " + m.put(s, data)
	m.noteValid(data)
}

// writeInTwo truncates the file and writes it in two parts with a pause
// between them, shorter or longer than the debounce. A pause longer than
// the debounce may have the half written file emitted first.
func (m *watchModel) writeInTwo(s *walkStep) {
	t := m.t
	data := m.newValid()
	if m.rng.Intn(4) == 0 {
		data = m.newInvalid()
	}
	pause := []time.Duration{20 * time.Millisecond, 80 * time.Millisecond, 300 * time.Millisecond}[m.rng.Intn(3)]
	cut := 1 + m.rng.Intn(len(data)-1)
	s.name = fmt.Sprintf("write in two parts, %d+%d bytes, %v apart", cut, len(data)-cut, pause)
	f, err := os.OpenFile(m.real, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.pass(m.fingerprintRead(nil, nil))
	if _, err := f.Write(data[:cut]); err != nil {
		t.Fatal(err)
	}
	s.pass(m.fingerprintRead(data[:cut], nil))
	time.Sleep(pause)
	if _, err := f.Write(data[cut:]); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	m.file = data
	m.noteValid(data)
}

// burst saves several times within the debounce: only the last counts,
// though a stalled machine may let one in between be read.
func (m *watchModel) burst(s *walkStep) {
	n := 2 + m.rng.Intn(4)
	var hows []string
	for k := range n {
		if k > 0 {
			s.pass(m.fingerprintRead(m.file, nil))
			time.Sleep(time.Duration(m.rng.Intn(30)) * time.Millisecond)
		}
		data := m.newValid()
		if m.rng.Intn(4) == 0 {
			data = m.newInvalid()
		}
		hows = append(hows, m.put(s, data))
		m.noteValid(data)
	}
	s.name = fmt.Sprintf("burst of %d saves: %s", n, strings.Join(hows, ", "))
}

func (m *watchModel) writeInvalid(s *walkStep) {
	data := m.newInvalid()
	s.name = "save invalid content by " + m.put(s, data)
}

func (m *watchModel) restoreValid(s *walkStep) {
	s.name = "save the last valid content again by " + m.put(s, m.valid)
}

// delete removes the file: path itself, or a symlink's target.
func (m *watchModel) delete(s *walkStep) {
	t := m.t
	victim := m.path
	s.name = "delete the file"
	if m.layout == wmLink && m.rng.Intn(2) == 0 {
		victim = m.real
		s.name = "delete the symlink's target"
	} else {
		m.layout, m.real = wmPlain, m.path
	}
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	m.file = nil
}

// create writes the missing file (or a dangling symlink's target).
func (m *watchModel) create(s *walkStep) {
	data := m.newValid()
	if m.rng.Intn(2) == 0 {
		data = m.valid
	}
	s.name = "re-create the file by " + m.put(s, data)
	m.noteValid(data)
}

func (m *watchModel) touch(s *walkStep) {
	s.name = "touch"
	s.strict = true
	now := time.Now()
	if err := os.Chtimes(m.real, now, now); err != nil {
		m.t.Fatal(err)
	}
}

// rewriteSame writes what the file holds. An in-place write truncates
// first, but a read between its two syscalls would take a stall of the
// debounce: strict all the same, as in TestWatchFileStates.
func (m *watchModel) rewriteSame(s *walkStep) {
	s.strict = true
	s.name = "rewrite the same content by " + m.put(&walkStep{through: map[string]bool{}}, m.file)
}

// toLink points path at a file in a new directory beside the config's:
// a symlink made beside path and renamed over it.
func (m *watchModel) toLink(s *walkStep) {
	t := m.t
	m.serial++
	store := filepath.Join(m.root, fmt.Sprintf("store%d", m.serial))
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	data := m.newValid()
	if m.file != nil && m.rng.Intn(3) == 0 {
		data = m.file
	}
	target := filepath.Join(store, "zkdns.toml")
	writeInPlace(t, target, data)
	tmp := m.path + ".link"
	symlink(t, target, tmp)
	if err := os.Rename(tmp, m.path); err != nil {
		t.Fatal(err)
	}
	s.name = fmt.Sprintf("point the path at a file in %s (was %s)", filepath.Base(store), wmLayoutNames[m.layout])
	m.layout, m.real, m.file = wmLink, target, data
	m.noteValid(data)
}

// configMap lays the config out as a ConfigMap volume is, or updates one:
// ..data swapped to a new timestamped directory.
func (m *watchModel) configMap(s *walkStep) {
	t := m.t
	data := m.newValid()
	if m.file != nil && m.rng.Intn(4) == 0 {
		data = m.file // a ConfigMap update that leaves this key alone
	}
	if m.rng.Intn(5) == 0 {
		data = m.newInvalid()
	}
	if m.layout == wmConfigMap {
		s.name = "configmap swap"
		m.swapData(data)
		m.file = data
		m.noteValid(data)
		return
	}
	s.name = fmt.Sprintf("lay out as a configmap (was %s)", wmLayoutNames[m.layout])
	dataLink := filepath.Join(m.dir, "..data")
	if _, err := os.Lstat(dataLink); err == nil {
		// Left from an earlier layout: path no longer leads through it.
		old, _ := os.Readlink(dataLink)
		if err := os.Remove(dataLink); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(m.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
	m.swapData(data)
	tmp := m.path + ".link"
	symlink(t, filepath.Join("..data", "zkdns.toml"), tmp)
	if err := os.Rename(tmp, m.path); err != nil {
		t.Fatal(err)
	}
	m.layout, m.real, m.file = wmConfigMap, filepath.Join(m.dir, "..data", "zkdns.toml"), data
	m.noteValid(data)
}

// swapData writes data to a new timestamped directory, renames a new
// ..data link to it into place and removes the old directory, as the
// kubelet does. path is not touched.
func (m *watchModel) swapData(data []byte) {
	t := m.t
	stamped, err := os.MkdirTemp(m.dir, "..2025_01_02_03_04_05.")
	if err != nil {
		t.Fatal(err)
	}
	writeInPlace(t, filepath.Join(stamped, "zkdns.toml"), data)
	dataLink := filepath.Join(m.dir, "..data")
	old, err := os.Readlink(dataLink)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	tmpLink := filepath.Join(m.dir, "..data_tmp")
	symlink(t, filepath.Base(stamped), tmpLink)
	if err := os.Rename(tmpLink, dataLink); err != nil {
		t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(m.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// removeDir removes the config's directory, or renames it away: the
// watcher loses its watch and polls until one is back.
func (m *watchModel) removeDir(s *walkStep) {
	t := m.t
	if m.rng.Intn(2) == 0 {
		s.name = "remove the directory"
		if err := os.RemoveAll(m.dir); err != nil {
			t.Fatal(err)
		}
	} else {
		m.serial++
		away := fmt.Sprintf("%s.old%d", m.dir, m.serial)
		s.name = "rename the directory away to " + filepath.Base(away)
		if err := os.Rename(m.dir, away); err != nil {
			t.Fatal(err)
		}
	}
	m.layout, m.real, m.file = wmNoDir, m.path, nil
}

// recreateDir makes the directory again, with a file in it or empty, in
// place or by a rename.
func (m *watchModel) recreateDir(s *walkStep) {
	t := m.t
	m.serial++
	tmp := fmt.Sprintf("%s.new%d", m.dir, m.serial)
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	var data []byte
	if m.rng.Intn(4) > 0 {
		data = m.newValid()
		if m.rng.Intn(2) == 0 {
			data = m.valid
		}
		writeInPlace(t, filepath.Join(tmp, "zkdns.toml"), data)
	}
	if err := os.Rename(tmp, m.dir); err != nil {
		t.Fatal(err)
	}
	s.name = "make the directory again"
	if data == nil {
		s.name += ", empty"
	} else {
		s.name += ", with the file"
		m.noteValid(data)
	}
	m.layout, m.real, m.file = wmPlain, m.path, data
}

// lock makes the file unreadable; the next step makes it readable again.
func (m *watchModel) lock(s *walkStep) {
	s.name = "chmod 000"
	if err := os.Chmod(m.real, 0); err != nil {
		m.t.Fatal(err)
	}
	m.locked = true
}
