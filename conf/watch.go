package conf

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// defaultDebounce is long enough to cover the few syscalls of one save
// (an editor's write, fsync and rename; a ConfigMap's symlink swap) and
// short enough that an operator sees a change applied at once.
const defaultDebounce = 200 * time.Millisecond

// maxDebounces bounds a burst: the file is read at the latest this many
// debounce periods after the burst's first event, so a config written
// more often than the debounce (a tool rewriting it in a loop) is still
// read while that goes on.
const maxDebounces = 5

// maxLinks bounds the symlinks followed from the config path, as the
// kernel's own limit does.
const maxLinks = 40

// relinkEvery is how often the file is read while a directory its
// symlinks lead into cannot be watched: no event would say it is back.
const relinkEvery = time.Second

// Change is one observed change of the config file.
type Change struct {
	// Config is the new, validated config; nil when Err is set.
	Config *Config
	// Err says why the file could not be used: a read error (the file was
	// deleted or is unreadable: errors.Is(err, fs.ErrNotExist) works) or the
	// validation problems (errors.Join of *Error, as Parse returns).
	Err error
}

// WatchOptions configures Watch. The zero value is usable.
type WatchOptions struct {
	// Debounce is how long the file must be quiet before it is read; zero
	// (or negative) means 200ms. A save is several filesystem events, and
	// reading between them could see a half-written or missing file.
	Debounce time.Duration
	// Logger receives one line per event that concerns the config file,
	// naming its kind, at debug level, and a warning when the directory
	// itself goes away or fsnotify reports an error; nil discards. Events
	// for other files in the directory are not logged: a log file kept
	// there would otherwise log its own writes without end.
	Logger *slog.Logger
	// Loaded is the config the caller runs, as Load or Parse returned it.
	// The file may have changed between that read and Watch's start, so
	// Watch reads it once the debounce has passed and emits it if it no
	// longer holds Loaded. Nil takes whatever the file holds when Watch
	// starts as loaded.
	Loaded *Config
	// Reread, when set, makes Watch read the file at once for each value
	// received, and emit what it holds whether it changed or not: the
	// reload a SIGHUP asks for. Reading it here rather than beside Watch
	// keeps Watch's idea of the content applied true, so a file saved
	// back to its earlier content afterwards is emitted again.
	Reread <-chan struct{}
}

// Watch watches the config file at path until ctx ends, calling emit (from
// one goroutine, never concurrently) once per settled change whose content
// differs from the last content emitted or loaded. What counts as already
// loaded at start is opts.Loaded (a file that no longer holds it is
// emitted once the debounce passes), or when that is nil whatever the file
// holds when Watch starts (so the first emit is the first real change). A
// deleted file emits one Change with a not-exist error; when it
// reappears, its content is emitted as usual. Watch
// returns nil when ctx ends, and an error only when it cannot start (e.g. the
// directory does not exist or fsnotify cannot be set up). A directory
// missing at the start while opts.Loaded is set is not such a case: the
// file was there for the caller, so it is handled as a directory removed
// just after the start (see below).
//
// Watch watches the directory holding the file, not the file itself,
// because a watch on a file follows its inode, and most ways of updating a
// config replace the inode rather than write to it: an editor's
// rename-save and `sed -i` write a new file and rename it over the old
// one, `mv` does the rename alone, and a Kubernetes ConfigMap mount never
// touches the file at all: path is a symlink through `..data`, and an
// update renames a new `..data` symlink into place. After any of these a
// file watch would be left on a deleted inode and see nothing more. The
// directory's entries are what all of them change, so an event for any
// name met on the way to the file (the file, a symlink such as path or
// `..data`, a directory a link leads into) arms the debounce timer, and
// when it fires the file is read through its symlinks and compared with
// the last content by hash. Events for other names in the directory (a
// log file, an editor's swap file before its rename) are ignored, neither
// logged nor read for. Since a file that never falls quiet must not hold
// an edit back, a burst is read at the latest maxDebounces debounce
// periods after its first event.
//
// When path is a symlink, the directories its links lead into are watched
// too, and followed again after every read: a config kept in another
// directory is edited there.
//
// If the directory itself is removed or renamed and is still missing at
// the read that follows (after the debounce), that is logged as a warning
// and the file is reported missing; until a directory of that name is
// back and watched again, the file is read every relinkEvery, and its
// content is emitted as usual once it is there. When one is back by that
// read (a symlink on the way remade, even in two steps as ln -sfn does;
// the directory replaced in one go), it is watched again and nothing is
// logged above debug.
//
// emit runs on Watch's goroutine, so Watch sees no new events while it
// runs; the kernel queues them. Config.File of an emitted Config is path as
// given, and so are the File fields of its *Error values.
func Watch(ctx context.Context, path string, opts WatchOptions, emit func(Change)) error {
	w, err := newWatcher(path, opts, emit)
	if err != nil {
		return err
	}
	defer w.close()
	w.run(ctx)
	return nil
}

// watcher is the state of one Watch call. It is used by one goroutine only.
type watcher struct {
	path     string // as given, for Parse, so messages name what the user wrote
	abs      string // what is read, so a later chdir does not matter
	dir      string // the directory holding path, absolute; always watched
	debounce time.Duration
	log      *slog.Logger
	emit     func(Change)
	notify   *fsnotify.Watcher

	// linkDirs are the other directories watched: those the symlinks on
	// the way from path to the file lead into, where their targets are
	// edited. unwatched are those that could not be watched at the last
	// read.
	linkDirs  []string
	unwatched []string
	// names are the names met on the way from path to the file at the
	// last read: an event for any other name does not concern the config.
	names map[string]bool

	// dirLost is set when dir was removed or renamed, or the kernel
	// refused its watch: no event will say a new one is there. dirWarned
	// says which of the two was logged as a warning (when dir is still
	// unwatched at the read after the event's debounce), until it is
	// watched again.
	dirLost   bool
	dirWarned dirWarning
	add       func(n *fsnotify.Watcher, name string) error // fsnotify's Add, but in tests

	// last is what the file held at the last read, emitted or not.
	last version
	// loaded is WatchOptions.Loaded until the first read, which emits
	// the file only if it no longer holds that config.
	loaded *Config
	reread <-chan struct{} // WatchOptions.Reread

	// settled, when set, is called after each debounced read. Tests use it
	// to know that a burst of events has been dealt with.
	settled func()
}

// version identifies what one read of the file found, so that a burst of
// events that leaves the file as it was emits nothing, and a file that
// stays missing is reported missing once.
type version struct {
	sum     [sha256.Size]byte // of the content, when readErr is empty
	readErr string            // why the file could not be read, or empty
}

// newWatcher sets up the directory watch and takes what counts as loaded:
// opts.Loaded, or the file's content. The watch is added before the
// file is read, so that a change made just after the read is still seen.
func newWatcher(path string, opts WatchOptions, emit func(Change)) (*watcher, error) {
	return newWatcherAdding(path, opts, emit, nil)
}

// newWatcherAdding is newWatcher with add in place of fsnotify's Add when
// it is not nil, for tests of a kernel that refuses watches.
func newWatcherAdding(path string, opts WatchOptions, emit func(Change), add func(n *fsnotify.Watcher, name string) error) (*watcher, error) {
	if emit == nil {
		return nil, errors.New("conf: watch config: emit is nil; pass a function to receive changes")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("conf: watch config %s: %w", path, err)
	}
	dir := filepath.Dir(abs)
	// A directory gone since the caller loaded the file (replaced whole
	// by a deploy just then) is no reason to fail: it is missing as if it
	// had gone after the start, and looked for again at every read.
	gone := func(err error) bool { return errors.Is(err, fs.ErrNotExist) && opts.Loaded != nil }
	info, err := os.Stat(dir)
	switch {
	case gone(err):
	case err != nil:
		return nil, fmt.Errorf("conf: watch config directory: %w", err)
	case !info.IsDir():
		return nil, fmt.Errorf("conf: watch config directory: %s is not a directory", dir)
	}
	notify, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("conf: watch config directory %s: set up fsnotify: %w", dir, inotifyLimit(err))
	}
	if add == nil {
		add = (*fsnotify.Watcher).Add
	}
	dirLost := false
	var refused error
	switch err := add(notify, dir); {
	case gone(err):
		dirLost = true
	case errors.Is(err, syscall.ENOSPC):
		// The kernel's limit on inotify watches, reached on a busy host:
		// the file is read every second instead, as for a directory gone
		// (see run), until a watch is free. A daemon that stopped over
		// it would serve nothing at all.
		dirLost, refused = true, err
	case err != nil:
		notify.Close()
		return nil, fmt.Errorf("conf: watch config directory %s: %w", dir, inotifyLimit(err))
	}

	w := &watcher{
		path:     path,
		abs:      abs,
		dir:      dir,
		debounce: opts.Debounce,
		log:      opts.Logger,
		emit:     emit,
		notify:   notify,
		dirLost:  dirLost,
		reread:   opts.Reread,
		add:      add,
	}
	if w.debounce <= 0 {
		w.debounce = defaultDebounce
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.log = w.log.With("component", "conf", "file", path)
	if refused != nil {
		w.warnRefused(refused)
	}
	// Watched before the first read, as on every later one (see run).
	w.followLinks()
	if opts.Loaded != nil {
		w.loaded = opts.Loaded // last stays zero, which no read matches
	} else {
		w.last = versionOf(os.ReadFile(abs))
	}
	return w, nil
}

// followLinks watches the directories of the symlinks from path to the
// file, and stops watching those no longer on the way (see walkPath). A
// config that is a symlink into another directory (a stow or
// config-management layout) is edited there, and a directory on the way
// that is a symlink (a deploy's current -> releases/N) is swapped in its
// parent, where a watch on path's own directory sees nothing of either. A
// directory that cannot be watched (it is missing, or being replaced) is
// tried again at every read, and the run loop reads every relinkEvery
// while one is left.
func (w *watcher) followLinks() {
	names, dirs := walkPath(w.abs)
	w.names = names
	want := slices.DeleteFunc(dirs, func(dir string) bool { return dir == w.dir })
	for _, dir := range w.linkDirs {
		if !slices.Contains(want, dir) {
			_ = w.notify.Remove(dir) // gone already, perhaps
		}
	}
	var watched, missing []string
	for _, dir := range want {
		// Added at every read, not only when new: a directory deleted and
		// made again is another inode, which the old watch does not
		// follow. Adding one still watched changes nothing.
		if err := w.add(w.notify, dir); err != nil {
			if !slices.Contains(w.unwatched, dir) {
				w.log.Warn("cannot watch a directory on the way to the config through its symlinks; reading the config every second until it can",
					"dir", dir, "err", inotifyLimit(err))
			}
			missing = append(missing, dir)
			continue
		}
		if !slices.Contains(w.linkDirs, dir) {
			w.log.Debug("watching a directory on the way to the config through its symlinks", "dir", dir)
		}
		watched = append(watched, dir)
	}
	w.linkDirs, w.unwatched = watched, missing
}

// walkPath follows abs to the file as the kernel does, and returns what
// the watcher must look at for the file to change:
//
//   - names: the names met on the way, each element of abs and of the
//     target of every symlink followed, whether or not it exists yet. An
//     event in a watched directory concerns the config only if it names
//     one of them: the file itself, a link to it (path, a ConfigMap's
//     ..data), or a directory on the way (one deleted, renamed into
//     place, or a link to one swapped). Names are compared without their
//     directory, so a file that shares its name with one of those
//     directories costs a read, nothing more.
//   - dirs: the real directories where those changes happen, in the
//     order met: each one holding a symlink on the way, where the link is
//     replaced, and the one holding the file, where it is edited. For a
//     path without symlinks that is abs's own directory alone.
func walkPath(abs string) (names map[string]bool, dirs []string) {
	names = map[string]bool{}
	addDir := func(dir string) {
		if !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	todo := strings.Split(abs, "/")
	at := "/" // what the elements so far resolve to
	for links := 0; len(todo) > 0; {
		elem := todo[0]
		todo = todo[1:]
		switch elem {
		case "", ".":
			continue
		case "..":
			at = filepath.Dir(at)
			continue
		}
		names[elem] = true
		p := filepath.Join(at, elem)
		target, err := os.Readlink(p)
		if err != nil || links >= maxLinks {
			at = p // not a link, or missing: later elements are under it
			continue
		}
		links++
		addDir(at)
		if filepath.IsAbs(target) {
			at = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	addDir(filepath.Dir(at))
	return names, dirs
}

// concerns reports whether an event for name (a path in a watched
// directory, or a watched directory itself) may change the config.
func (w *watcher) concerns(name string) bool {
	return name == w.dir || w.names[filepath.Base(name)]
}

// inotifyLimit adds to err, when it is the kernel refusing an inotify
// instance or watch for a limit, which limit and how to raise it: the
// errno alone ("no space left on device", "too many open files") sends
// an operator to the disk or to ulimit -n, and busy hosts (many
// containers watching files) reach these limits first.
func inotifyLimit(err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: the limit on inotify watches is reached; raise it with sysctl fs.inotify.max_user_watches", err)
	case errors.Is(err, syscall.EMFILE):
		return fmt.Errorf("%w: the limit on inotify instances (sysctl fs.inotify.max_user_instances) or on open files is reached", err)
	}
	return err
}

// rewatchDir watches dir again after it was removed or renamed, or its
// watch was refused; it returns why it cannot (fs.ErrNotExist while no
// directory of that name exists).
func (w *watcher) rewatchDir() error {
	_ = w.notify.Remove(w.dir) // dropped already, as a rule
	if err := w.add(w.notify, w.dir); err != nil {
		return err
	}
	w.dirLost = false
	return nil
}

// dirWarning is the warning logged about the config directory while it
// is not watched.
type dirWarning uint8

const (
	dirNotWarned dirWarning = iota
	dirWarnedGone
	dirWarnedRefused
)

// warnRefused logs that the directory's watch was refused for err, once
// until it is watched again.
func (w *watcher) warnRefused(err error) {
	w.dirWarned = dirWarnedRefused
	w.log.Warn("cannot watch the config directory; reading the config every second until it can",
		"dir", w.dir, "err", inotifyLimit(err))
}

// close stops fsnotify, and with it the goroutine fsnotify runs.
func (w *watcher) close() {
	if err := w.notify.Close(); err != nil {
		w.log.Warn("closing config directory watch", "dir", w.dir, "err", err)
	}
}

// run turns directory events into debounced reads until ctx ends.
func (w *watcher) run(ctx context.Context) {
	// Created stopped, unless the file must be compared with what the
	// caller loaded; since Go 1.23 Reset and Stop leave no stale tick in
	// the channel, so re-arming needs no draining.
	quiet := time.NewTimer(w.debounce)
	if w.loaded == nil {
		quiet.Stop()
	}
	defer quiet.Stop()
	var burst time.Time // the first event since the last read; zero for none
	arm := func() {
		now := time.Now()
		if burst.IsZero() {
			burst = now
		}
		quiet.Reset(min(w.debounce, burst.Add(maxDebounces*w.debounce).Sub(now)))
	}
	relink := time.NewTimer(relinkEvery)
	if len(w.unwatched) == 0 && !w.dirLost {
		relink.Stop()
	}
	defer relink.Stop()
	read := func(force bool) {
		burst = time.Time{}
		// Watched again before the read, so that a change made just
		// after it is seen.
		if w.dirLost {
			err := w.rewatchDir()
			switch back := err == nil; {
			case back && w.dirWarned == dirWarnedRefused:
				w.dirWarned = dirNotWarned
				w.log.Info("config directory watched again", "dir", w.dir)
			case back && w.dirWarned == dirWarnedGone:
				w.dirWarned = dirNotWarned
				w.log.Info("config directory is back; watching it again", "dir", w.dir)
			case back:
				// There again within the debounce: a symlink on the way
				// replaced (a deploy moving current -> releases/N on),
				// even in two steps as ln -sfn does, or the directory
				// replaced in one go. Nothing to warn about.
				w.log.Debug("config directory replaced; watching the one the path leads to now", "dir", w.dir)
			case w.dirWarned != dirNotWarned:
				// Said already; said again only after it is watched.
			case !errors.Is(err, fs.ErrNotExist):
				w.warnRefused(err)
			default:
				w.dirWarned = dirWarnedGone
				w.log.Warn("config directory removed or renamed; reading the config every second until it is back",
					"dir", w.dir)
			}
		}
		// The directories the path now leads through too: a link
		// re-pointed into one not watched yet, and the file there
		// edited just after the read, must not go unseen.
		w.followLinks()
		w.check(force)
		if len(w.unwatched) > 0 || w.dirLost {
			relink.Reset(relinkEvery)
		}
		if w.settled != nil {
			w.settled()
		}
	}

	// fsnotify closes its channels only in Close, which runs after run
	// returns; a nil channel keeps a surprise close from spinning the loop.
	events, errs := w.notify.Events, w.notify.Errors
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if !w.concerns(ev.Name) {
				continue
			}
			w.log.Debug("config directory event", "name", ev.Name, "op", ev.Op.String())
			if ev.Name == w.dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				// fsnotify drops the watch of a directory removed or
				// moved away: without a new one on a directory made again
				// at this path (a deployment replacing /etc/zkdns whole),
				// every later edit would go unseen. The read after the
				// debounce watches the one there then, and warns only if
				// there is none.
				w.dirLost = true
			}
			arm()
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// An error is usually a kernel queue overflow: events were
			// lost, so look at the file rather than trust that it is as
			// it was.
			w.log.Warn("watching config directory", "dir", w.dir, "err", err)
			arm()
		case <-quiet.C:
			read(false)
		case <-relink.C:
			read(false)
		case <-w.reread:
			read(true)
		}
	}
}

// check reads the file and emits what it holds if that differs from what
// the last read found, or in any case when force is set.
func (w *watcher) check(force bool) {
	data, err := os.ReadFile(w.abs)
	now := versionOf(data, err)
	if now == w.last && !force {
		w.log.Debug("config file unchanged")
		return
	}
	w.last = now
	if err != nil {
		w.loaded = nil
		w.emit(Change{Err: fmt.Errorf("conf: read config: %w", err)})
		return
	}
	c, err := Parse(w.path, data)
	if loaded := w.loaded; loaded != nil {
		w.loaded = nil
		if err == nil && sameConfig(c, loaded) && !force {
			w.log.Debug("config file holds the config loaded at start")
			return
		}
	}
	w.emit(Change{Config: c, Err: err})
}

// sameConfig reports whether a and b configure the same, wherever they
// were read from.
func sameConfig(a, b *Config) bool {
	x, y := *a, *b
	x.File, y.File = "", ""
	return reflect.DeepEqual(x, y)
}

// versionOf returns the version of one read of the file.
func versionOf(data []byte, err error) version {
	if err != nil {
		return version{readErr: err.Error()}
	}
	return version{sum: sha256.Sum256(data)}
}
