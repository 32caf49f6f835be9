package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zkdns/zkdns/conf"
	"github.com/zkdns/zkdns/registrar"
)

// registerConfig is what `zkdns register` reads from its flags and its
// optional TOML file; the TOML keys are the flag names in snake_case.
type registerConfig struct {
	Servers        serverList `toml:"servers"`
	SessionTimeout duration   `toml:"session_timeout"`
	AuthFile       string     `toml:"auth_file"`
	Path           string     `toml:"path"`
	ID             string     `toml:"id"`
	Name           string     `toml:"name"`
	Address        string     `toml:"address"`
	Port           int        `toml:"port"`
	Format         string     `toml:"format"`
	Meta           metadata   `toml:"meta"`
	Weight         int        `toml:"weight"`
	Check          string     `toml:"check"`
	Interval       duration   `toml:"interval"`
	Timeout        duration   `toml:"timeout"`
	Rise           int        `toml:"rise"`
	Fall           int        `toml:"fall"`
	Warmup         string     `toml:"warmup"`
	WarmupRequests int        `toml:"warmup_requests"`
	WarmupTimeout  duration   `toml:"warmup_timeout"`
	Drain          duration   `toml:"drain"`
	Pidfile        string     `toml:"pidfile"`

	// from is where the settings above came from; see origins.
	from origins `toml:"-"`
}

// origins records where the settings of `zkdns register` came from, so
// that a value that cannot work is reported where its user can fix it.
type origins struct {
	flags map[string]bool // the flags given on the command line, by name
	meta  map[string]bool // the metadata keys given by -meta
	file  string          // the -config file, or "" for none
	data  []byte          // its contents
}

// lineOf returns the line where the -config file sets the top-level key,
// or 0 when it does not: a key may be set to its zero value, so the
// decoded config cannot tell.
func (o *origins) lineOf(key string) int {
	if o.data == nil {
		return 0
	}
	return conf.KeyLine(o.data, key)
}

// flagName returns the flag of the setting with TOML key key.
func flagName(key string) string { return strings.ReplaceAll(key, "_", "-") }

// report reports that the setting with TOML key key cannot work, msg
// saying why, where it was given: a value from a flag is a usage error
// naming the flag; one from the -config file is a problem at the key's
// line, worded as conf.Decode words the file's own. Flags override the
// file, except that -meta only adds keys to its [meta], and -meta itself
// rejects the one thing about the metadata as a whole that cannot work (an
// empty key), so a bad meta is the file's whenever the file has one; a bad
// entry is reportMeta's. It returns nil for a setting that neither gave:
// that holds its default.
func (o *origins) report(key, msg string) error {
	line := o.lineOf(key)
	switch {
	case o.flags[flagName(key)] && !(key == "meta" && line > 0):
		return fmt.Errorf("%w: zkdns register: -%s: %s", errUsage, flagName(key), msg)
	case line > 0:
		return &conf.Error{File: o.file, Line: line, Msg: key + ": " + msg}
	}
	return nil
}

// reportMeta reports that the metadata entry with key key cannot work, msg
// saying why, where it was given: a -meta flag, which replaces the file's
// entry, or the entry's line in the file's [meta]. It returns nil for an
// entry that neither gave.
func (o *origins) reportMeta(key, msg string) error {
	if o.meta[key] {
		return fmt.Errorf("%w: zkdns register: -meta %s: %s", errUsage, key, msg)
	}
	if o.data == nil {
		return nil
	}
	line := conf.KeyLine(o.data, "meta", key)
	if line == 0 {
		line = o.lineOf("meta")
	}
	if line == 0 {
		return nil
	}
	return &conf.Error{File: o.file, Line: line, Msg: "meta." + key + ": " + msg}
}

// failure reports that the file named by the setting with TOML key key
// cannot be used, err saying why, where the name was given: after the flag,
// or at the key's line in the -config file. Unlike a bad value (see
// report), a file that is missing or unreadable is a failure, not a usage
// error: the same command may work once the file is fixed.
func (o *origins) failure(key string, err error) error {
	if line := o.lineOf(key); line > 0 && !o.flags[flagName(key)] {
		return fmt.Errorf("%s:%d: %s: %w", o.file, line, key, err)
	}
	return fmt.Errorf("register: -%s: %w", flagName(key), err)
}

// optionKey returns the TOML key of the setting that fills the
// registrar.Options field option: the registerConfig field of the same
// name, but for Metadata (Meta, -meta) and Auth (AuthFile, -auth-file). It
// returns "" for a field no setting fills.
func optionKey(option string) string {
	switch option {
	case "Metadata":
		option = "Meta"
	case "Auth":
		option = "AuthFile"
	}
	f, ok := reflect.TypeFor[registerConfig]().FieldByName(option)
	if !ok {
		return ""
	}
	key, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if key == "-" {
		return ""
	}
	return key
}

// metadataEntry returns the key of the Metadata entry that the
// registrar.OptionError option names, as in Metadata["weight"], and
// whether it names one.
func metadataEntry(option string) (string, bool) {
	quoted, ok := strings.CutPrefix(option, "Metadata[")
	if !ok {
		return "", false
	}
	key, err := strconv.Unquote(strings.TrimSuffix(quoted, "]"))
	return key, err == nil
}

// newRegistrar checks cfg and makes its registrar, logging to logger. A
// setting that cannot work is reported where it was given (see
// origins.report).
func (cfg *registerConfig) newRegistrar(logger *slog.Logger) (*registrar.Registrar, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	opts.Logger = logger
	r, err := registrar.New(opts)
	if errors.Is(err, registrar.ErrInvalidOptions) {
		return nil, cfg.invalidOptions(err)
	}
	return r, err
}

// invalidOptions reports an error of registrar.New for options that
// cannot work where the option at fault was set (see origins.report). One
// set nowhere has its default, which New accepts; should it not, or should
// the error name no option, it is a usage error in the registrar's words.
func (cfg *registerConfig) invalidOptions(err error) error {
	var oe *registrar.OptionError
	if errors.As(err, &oe) {
		if entry, ok := metadataEntry(oe.Option); ok {
			if bad := cfg.from.reportMeta(entry, oe.Err.Error()); bad != nil {
				return bad
			}
		} else if key := optionKey(oe.Option); key != "" {
			if bad := cfg.from.report(key, oe.Err.Error()); bad != nil {
				return bad
			}
		}
	}
	return fmt.Errorf("%w: zkdns register: %v", errUsage, err)
}

// badSetting reports the setting with TOML key key as one that cannot
// work, msg saying why, where it was given (see origins.report). A
// value given nowhere was not checked by the time it got here; naming the
// flag still tells how to set it.
func (cfg *registerConfig) badSetting(key, msg string) error {
	if err := cfg.from.report(key, msg); err != nil {
		return err
	}
	return fmt.Errorf("%w: zkdns register: -%s: %s", errUsage, flagName(key), msg)
}

// registerFlags binds every flag of `zkdns register` to cfg, with the
// values cfg holds as defaults, and configPath to -config.
func registerFlags(cfg *registerConfig, configPath *string) *flag.FlagSet {
	fs := flag.NewFlagSet("zkdns register", flag.ContinueOnError)
	fs.StringVar(configPath, "config", *configPath, "TOML `file` with the same settings (keys in snake_case); flags override it")
	fs.Var(&cfg.Servers, "servers", "ZooKeeper `host:port` list, comma-separated (required)")
	fs.Var(&cfg.SessionTimeout, "session-timeout", "ZooKeeper session timeout, a `duration` (default 10s)")
	fs.StringVar(&cfg.AuthFile, "auth-file", cfg.AuthFile, "`file` holding digest credentials user:password")
	fs.StringVar(&cfg.Path, "path", cfg.Path, "the service's `znode`, e.g. /services/payments (required)")
	fs.StringVar(&cfg.ID, "id", cfg.ID, "instance znode name (default address-port; serverset: member_N)")
	fs.StringVar(&cfg.Name, "name", cfg.Name, "service name in curator payloads (default the last element of -path; nerve's name is the instance ID)")
	fs.StringVar(&cfg.Address, "address", cfg.Address, "address clients reach the instance at (default this host's primary IP)")
	fs.IntVar(&cfg.Port, "port", cfg.Port, "the instance's port (required)")
	fs.StringVar(&cfg.Format, "format", cfg.Format, "payload format: curator, serverset, nerve or hostport (default curator)")
	fs.Var(&cfg.Meta, "meta", "metadata `key=value`; repeat for more")
	fs.IntVar(&cfg.Weight, "weight", cfg.Weight, "base SRV weight 1-65535 (default none, read as 100)")
	fs.StringVar(&cfg.Check, "check", cfg.Check, "health check: http://…, https://…, tcp://host:port or exec:COMMAND (default none)")
	fs.Var(&cfg.Interval, "interval", "`duration` between health checks (default 2s)")
	fs.Var(&cfg.Timeout, "timeout", "time limit of one health check, a `duration` (default 1s)")
	fs.IntVar(&cfg.Rise, "rise", cfg.Rise, "passes in a row before registering (default 2)")
	fs.IntVar(&cfg.Fall, "fall", cfg.Fall, "failures in a row before deregistering (default 3)")
	fs.StringVar(&cfg.Warmup, "warmup", cfg.Warmup, "before the first registration: exec:COMMAND, or an http(s) URL to GET -warmup-requests times")
	fs.IntVar(&cfg.WarmupRequests, "warmup-requests", cfg.WarmupRequests, "GETs of an HTTP warm-up (default 10)")
	fs.Var(&cfg.WarmupTimeout, "warmup-timeout", "time limit of one warm-up attempt, a `duration` (default 1m)")
	fs.Var(&cfg.Drain, "drain", "`duration` to wait after deregistering, before exiting; 0 for none (default 10s)")
	fs.StringVar(&cfg.Pidfile, "pidfile", cfg.Pidfile, "write the process id to `file` while running, for zkdns deregister")
	return fs
}

// parseRegisterArgs reads the flags and the -config file they name; flags
// win over the file, and the config's from records which gave each
// setting. Errors wrap errUsage when the command line is at fault; a
// problem in the file is a failure like zkdns check's, and -h returns
// errHelp.
func parseRegisterArgs(args []string, stdout, stderr io.Writer) (registerConfig, error) {
	var (
		cfg        registerConfig
		configPath string
		flagsAlone registerConfig
	)
	// The first pass only finds -config, so that the file can be read
	// before the flags that override it, and the metadata -meta gives
	// apart from the file's.
	fs := registerFlags(&flagsAlone, &configPath)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("%w: zkdns register: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if configPath != "" {
		if err := loadRegisterConfig(configPath, &cfg); err != nil {
			return cfg, err
		}
	}
	fs = registerFlags(&cfg, &configPath)
	fs.SetOutput(io.Discard) // the first pass reported any problem
	if err := fs.Parse(args); err != nil {
		return cfg, fmt.Errorf("%w: zkdns register: %v", errUsage, err)
	}
	cfg.from.flags = make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { cfg.from.flags[f.Name] = true })
	cfg.from.meta = make(map[string]bool)
	for k := range flagsAlone.Meta {
		cfg.from.meta[k] = true
	}
	return cfg, nil
}

// loadRegisterConfig decodes the TOML file at path onto cfg with the
// decoder zkdns check uses: every unknown key and bad value is reported at
// once, each as file:line: key: what to write instead. They are not usage
// errors: the command line named the file correctly, and zkdns serve and
// check exit 1 for the same kind of problem in theirs.
func loadRegisterConfig(path string, cfg *registerConfig) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("register config: %w", err)
	}
	if err := conf.Decode(path, data, cfg); err != nil {
		// On one line, as zkdns serve reports its config: register runs
		// as a service too, and in the journal or a container log every
		// line is an entry of its own, so the problems after the first
		// would lose the "zkdns:" that ties them to this failure. Each
		// still starts with the file and line, after "; ".
		return conf.OneLine(err)
	}
	cfg.from.file, cfg.from.data = path, data
	return nil
}

// options turns the parsed settings into registrar options, checking what
// the registrar cannot know came from flags or the file: a required setting
// given nowhere, a duration given as zero. A required setting missing
// altogether is a usage error; any other bad value is reported where it
// was given (see origins.report).
func (cfg *registerConfig) options() (registrar.Options, error) {
	var (
		missing []string
		bad     error // the first required setting given as nothing
	)
	for _, r := range []struct {
		key  string
		zero bool
		msg  string // when given as nothing, which a flag or key can be
	}{
		{"servers", len(cfg.Servers) == 0, `must list at least one ZooKeeper server as host:port, e.g. ["192.0.2.1:2181"]`},
		{"path", cfg.Path == "", "must not be empty: give the service's znode, e.g. /services/payments"},
		{"port", cfg.Port == 0, "0 is out of range (want 1-65535)"},
	} {
		if !r.zero {
			continue
		}
		err := cfg.from.report(r.key, r.msg)
		switch {
		case err == nil: // given nowhere
			missing = append(missing, "-"+flagName(r.key))
		case bad == nil:
			bad = err
		}
	}
	// Missing settings first: with nothing to point at, they say what the
	// command needs.
	if len(missing) > 0 {
		return registrar.Options{}, fmt.Errorf("%w: zkdns register: missing %s (as flags or in the -config file)", errUsage, strings.Join(missing, ", "))
	}
	if bad != nil {
		return registrar.Options{}, bad
	}
	// In the order of the flags, so that of several bad ones the same is
	// reported every time.
	for _, d := range []struct {
		key   string
		value duration
	}{
		{"session_timeout", cfg.SessionTimeout}, {"interval", cfg.Interval},
		{"timeout", cfg.Timeout}, {"warmup_timeout", cfg.WarmupTimeout},
	} {
		if d.value.set && d.value.d <= 0 {
			return registrar.Options{}, cfg.badSetting(d.key, fmt.Sprintf("must be positive, not %v", d.value.d))
		}
	}
	if cfg.Drain.set && cfg.Drain.d < 0 {
		return registrar.Options{}, cfg.badSetting("drain", fmt.Sprintf("must be positive, or 0 for no drain, not %v", cfg.Drain.d))
	}
	opts := registrar.Options{
		Servers:        cfg.Servers,
		SessionTimeout: cfg.SessionTimeout.d,
		Path:           cfg.Path,
		ID:             cfg.ID,
		Name:           cfg.Name,
		Address:        cfg.Address,
		Port:           cfg.Port,
		Format:         cfg.Format,
		Metadata:       cfg.Meta,
		Weight:         cfg.Weight,
		Check:          cfg.Check,
		Interval:       cfg.Interval.d,
		Timeout:        cfg.Timeout.d,
		Rise:           cfg.Rise,
		Fall:           cfg.Fall,
		Warmup:         cfg.Warmup,
		WarmupRequests: cfg.WarmupRequests,
		WarmupTimeout:  cfg.WarmupTimeout.d,
		Drain:          cfg.Drain.d,
	}
	if cfg.Drain.set && cfg.Drain.d == 0 {
		opts.Drain = registrar.NoDrain
	}
	if cfg.AuthFile != "" {
		// Read as zkdns serve reads its credentials_file.
		creds, err := conf.ReadCredentials(cfg.AuthFile)
		if err != nil {
			return registrar.Options{}, cfg.from.failure("auth_file", err)
		}
		opts.Auth = &registrar.Auth{Scheme: "digest", Credentials: string(creds)}
	}
	return opts, nil
}

// register runs `zkdns register`. A usage error is printed here, since
// run prints only runtime errors.
func register(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return printUsageError(runRegister(ctx, args, stdout, stderr), stderr)
}

// deregister runs `zkdns deregister`.
func deregister(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return printUsageError(runDeregister(ctx, args, stdout, stderr), stderr)
}

// printUsageError prints the message of a usage error that carries one
// and returns errUsage for it; other errors pass through.
func printUsageError(err error, stderr io.Writer) error {
	if errors.Is(err, errUsage) && err != errUsage {
		fmt.Fprintln(stderr, strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		return errUsage
	}
	return err
}

func runRegister(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// By default SIGHUP and SIGPIPE end the process on the spot, which
	// skips the offline step: the znode would stay until the session
	// expires and the pidfile would be left behind. Both are taken from
	// the start, before anything is registered (see catchBrokenStderr).
	defer catchBrokenStderr()()
	// SIGHUP comes from a terminal that closed, or from a habit of
	// reloading daemons with it; register has nothing to reload, and
	// going offline is SIGTERM's job.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	cfg, err := parseRegisterArgs(args, stdout, stderr)
	if err != nil {
		return err
	}
	logger := newLogger(conf.Log{Level: "info", Format: "text"}, new(slog.LevelVar), stderr)
	r, err := cfg.newRegistrar(logger)
	if err != nil {
		return err
	}
	if cfg.Pidfile != "" {
		remove, err := writePidfile(cfg.Pidfile)
		if err != nil {
			return err
		}
		defer remove()
	}
	// Answered until Run has returned, the drain included.
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-hup:
				logger.Info("SIGHUP ignored: zkdns register has nothing to reload; SIGTERM deregisters",
					"component", "registrar")
			case <-done:
				return
			}
		}
	})
	defer func() {
		close(done)
		wg.Wait()
	}()
	return r.Run(ctx)
}

// writePidfile records this process's id at path, refusing when another
// running registrar holds it, and returns the function that removes it
// again (only while it still names this process).
func writePidfile(path string) (remove func(), err error) {
	if pid, err := readPidfile(path); err == nil && pid != os.Getpid() && isRegistrar(pid) {
		return nil, fmt.Errorf("pidfile %s: zkdns register (pid %d) is already running with it", path, pid)
	}
	self := strconv.Itoa(os.Getpid()) + "\n"
	// Written whole and renamed into place, so deregister never reads half.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("pidfile: %w", err)
	}
	_, err = tmp.WriteString(self)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("pidfile: %w", err)
	}
	return func() {
		if b, err := os.ReadFile(path); err == nil && string(b) == self {
			os.Remove(path)
		}
	}, nil
}

func readPidfile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pidfile %s does not hold a process id", path)
	}
	return pid, nil
}

// running reports whether pid is a live process; a zombie, which has
// exited and only waits for its parent, counts as gone.
func running(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// The state follows the command name, which is in parentheses and may
	// itself contain spaces or parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z' && stat[i+2] != 'X'
	}
	return true
}

// isRegistrar reports whether pid is a running `zkdns register`, so that a
// pidfile left by a crash never gets an unrelated process that reused the
// id signalled. Without /proc to ask, a running pid is trusted.
func isRegistrar(pid int) bool {
	if !running(pid) {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return errors.Is(err, os.ErrPermission)
	}
	return slices.Contains(strings.Split(string(cmdline), "\x00"), "register")
}

// deregisterPoll is how often deregister looks whether the registrar has
// exited.
const deregisterPoll = 50 * time.Millisecond

func runDeregister(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("zkdns deregister", flag.ContinueOnError)
	pidfile := fs.String("pidfile", "", "the `file` zkdns register -pidfile writes (required)")
	timeout := fs.Duration("timeout", time.Minute, "how long to wait for the registrar to drain and exit")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("%w: zkdns deregister: unexpected argument %q", errUsage, fs.Arg(0))
	case *pidfile == "":
		return fmt.Errorf("%w: zkdns deregister: -pidfile is required", errUsage)
	case *timeout <= 0:
		return fmt.Errorf("%w: zkdns deregister: -timeout must be positive", errUsage)
	}
	pid, err := readPidfile(*pidfile)
	if errors.Is(err, os.ErrNotExist) {
		// The registrar removes its pidfile on exit: nothing left to do,
		// which a preStop hook run twice must not treat as a failure. The
		// path is printed as given, so that a typo in the hook shows.
		fmt.Fprintf(stdout, "zkdns deregister: pidfile %q does not exist: no registrar is running with it, nothing to do (if one is, check the path)\n", *pidfile)
		return nil
	}
	if err != nil {
		return err
	}
	if !running(pid) {
		fmt.Fprintf(stdout, "zkdns deregister: pid %d from %s is not running\n", pid, *pidfile)
		return nil
	}
	if !isRegistrar(pid) {
		return fmt.Errorf("pid %d from %s is not a zkdns register; a stale pidfile? (not signalled)", pid, *pidfile)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal pid %d from %s: %w", pid, *pidfile, err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	tick := time.NewTicker(deregisterPoll)
	defer tick.Stop()
	for running(pid) {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("zkdns register (pid %d) still running %v after SIGTERM; raise -timeout above its -drain", pid, *timeout)
			}
			return fmt.Errorf("interrupted while zkdns register (pid %d) drains", pid)
		case <-tick.C:
		}
	}
	return nil
}

// serverList is a flag and TOML value: a comma-separated list on the
// command line, an array of strings in the file.
type serverList []string

func (l *serverList) String() string { return strings.Join(*l, ",") }

func (l *serverList) Set(s string) error {
	*l = nil
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	if len(*l) == 0 {
		return errors.New("no servers given")
	}
	return nil
}

// metadata collects repeated -meta key=value flags; on top of the file's
// [meta] table, a flag replaces only its own key.
type metadata map[string]string

func (m *metadata) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(*m)) {
		parts = append(parts, k+"="+(*m)[k])
	}
	return strings.Join(parts, ",")
}

func (m *metadata) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", s)
	}
	if *m == nil {
		*m = metadata{}
	}
	(*m)[k] = v
	return nil
}

// duration is a flag and TOML value ("10s") that remembers whether it was
// given, so that an explicit 0 can mean something other than the default.
type duration struct {
	d   time.Duration
	set bool
}

func (d *duration) String() string {
	if !d.set {
		return ""
	}
	return d.d.String()
}

func (d *duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 500ms, 10s or 1m", s)
	}
	d.d, d.set = v, true
	return nil
}

// UnmarshalTOML reads the duration from the -config file as conf.Duration
// does, so that a bad one gets the messages zkdns serve gives for its own.
func (d *duration) UnmarshalTOML(v any) error {
	var cd conf.Duration
	if err := cd.UnmarshalTOML(v); err != nil {
		return err
	}
	d.d, d.set = cd.Duration, true
	return nil
}
