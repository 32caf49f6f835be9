// Command zkdns serves the service instances registered in ZooKeeper as
// DNS records on the local host. See README.md for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/zkdns/zkdns/conf"
	"github.com/zkdns/zkdns/daemon"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2

	defaultConfig = "/etc/zkdns/zkdns.toml"
)

func main() {
	// Signals become context cancellation here and nowhere else.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: zkdns <command> [flags]

commands:
  serve   [-config FILE]                    run the daemon
  check   [-config FILE]                    validate a config file
  status  [-admin HOST:PORT] [-json]        services and instances as the running daemon sees them
  register [flags]                          register this instance while healthy; deregister and drain on stop
  deregister -pidfile FILE [-timeout D]     make a running register deregister, drain and exit; wait for it
  version                                   print the version

FILE defaults to $ZKDNS_CONFIG, else ` + defaultConfig + `.
`

// errUsage marks an error as the caller's misuse of the command line.
var errUsage = errors.New("usage error")

// errHelp says -h was given and the help printed: asking for help is no
// error, so the command exits 0.
var errHelp = errors.New("help requested")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = serve(ctx, rest, stdout, stderr)
	case "check":
		err = check(rest, stdout, stderr)
	case "status":
		err = status(ctx, rest, stdout, stderr)
	case "register":
		err = register(ctx, rest, stdout, stderr)
	case "deregister":
		err = deregister(ctx, rest, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "zkdns %s\n", versionString())
	case "help", "-h", "-help", "--help":
		if cmd == "help" && len(rest) > 0 {
			// zkdns help serve: the command's own -h.
			return run(ctx, []string{rest[0], "-h"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "zkdns: unknown command %q\n%s", cmd, usage)
		return exitUsage
	}
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	case errors.Is(err, errSilent):
		return exitFailure
	default:
		fmt.Fprintf(stderr, "zkdns: %v\n", err)
		return exitFailure
	}
}

// configFlag parses the flags every config-reading command shares.
func configFlag(name string, args []string, stdout, stderr io.Writer) (string, error) {
	fs := flag.NewFlagSet("zkdns "+name, flag.ContinueOnError)
	def := os.Getenv("ZKDNS_CONFIG")
	if def == "" {
		def = defaultConfig
	}
	path := fs.String("config", def, "config `file`")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "zkdns %s: unexpected argument %q\n", name, fs.Arg(0))
		return "", errUsage
	}
	return *path, nil
}

// catchBrokenStderr keeps a long-running command alive when its stderr
// is a pipe nobody reads any more (a log shipper restarted, `| head`):
// by default the next log line's SIGPIPE ends the process on the spot,
// skipping its clean stop. With the signal caught the write fails with
// EPIPE instead, and slog drops the line. It is caught rather than
// ignored because an ignored signal stays ignored in the commands the
// process runs (register's exec checks), whose pipelines rely on it to
// end. The returned function lets it go.
func catchBrokenStderr() (release func()) {
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	return func() { signal.Stop(pipe) }
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	defer catchBrokenStderr()()
	path, err := configFlag("serve", args, stdout, stderr)
	if err != nil {
		return err
	}
	cfg, err := conf.Load(path)
	if err != nil {
		return fmt.Errorf("config: %w", conf.OneLine(err))
	}
	level := new(slog.LevelVar)
	logger := newLogger(cfg.Log, level, stderr)
	// SIGHUP reloads the config; the daemon reads the channel. The
	// forwarder ends with serve, however daemon.Run returns: a daemon that
	// failed to start (a DNS port in use) reads no more reloads, and the
	// caller's ctx may live on.
	ctx, cancel := context.WithCancel(ctx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{})
	forwarded := make(chan struct{})
	defer func() {
		cancel()
		<-forwarded
	}()
	go func() {
		defer close(forwarded)
		for {
			select {
			case <-hup:
				select {
				case reload <- struct{}{}:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	err = daemon.Run(ctx, daemon.Options{
		Config:     cfg,
		ConfigPath: path,
		Reload:     reload,
		Logger:     logger,
		LogLevel:   level,
		Version:    versionString(),
	})
	if err != nil {
		// Several problems (credentials and TLS files) come one per line.
		return conf.OneLine(err)
	}
	return nil
}

func check(args []string, stdout, stderr io.Writer) error {
	path, err := configFlag("check", args, stdout, stderr)
	if err != nil {
		return err
	}
	// The credential and key files too: as systemd's ExecStartPre, check
	// runs as the service user, so this catches a file the daemon could not
	// read, or one readable by others.
	cfg, err := conf.Check(path)
	if err != nil {
		// One line per problem, each with file:line, so all can be fixed at once.
		fmt.Fprintln(stderr, err)
		return errSilent
	}
	fmt.Fprintf(stdout, "%s: ok (%d services, %d discover paths)\n", path, len(cfg.Services), len(cfg.Discover))
	return nil
}

// parseFlags parses args with fs. A bad flag is reported in one line (the
// flag package's own message) on stderr; -h prints the flags on stdout
// and returns errHelp.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "usage of %s:\n", fs.Name())
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return errHelp
	}
	if err != nil {
		return errUsage
	}
	return nil
}

// errSilent is a failure whose message has already been printed.
var errSilent = errors.New("")

// newLogger logs to w in the configured format at a level that reloads
// may change. Under journald (w is the JOURNAL_STREAM) it leaves
// timestamps out, since the journal stamps every line itself, and puts
// each line's priority in front so that the journal files warnings and
// errors as such.
func newLogger(c conf.Log, level *slog.LevelVar, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(c.Level))
	level.Set(l)
	opts := &slog.HandlerOptions{Level: level}
	journal := toJournal(w)
	if journal {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	format := func(w io.Writer) slog.Handler {
		if c.Format == "json" {
			return slog.NewJSONHandler(w, opts)
		}
		return slog.NewTextHandler(w, opts)
	}
	if journal {
		return slog.New(newJournalHandler(w, format))
	}
	return slog.New(format(w))
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}
