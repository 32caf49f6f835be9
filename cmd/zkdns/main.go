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
	"strings"
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
  serve   [-config FILE]   run the daemon
  check   [-config FILE]   validate a config file
  version                  print the version

FILE defaults to $ZKDNS_CONFIG, else ` + defaultConfig + `.
`

// errUsage marks an error as the caller's misuse of the command line.
var errUsage = errors.New("usage error")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = serve(ctx, rest, stderr)
	case "check":
		err = check(rest, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "zkdns %s\n", versionString())
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "zkdns: unknown command %q\n%s", cmd, usage)
		return exitUsage
	}
	switch {
	case err == nil:
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
func configFlag(name string, args []string, stderr io.Writer) (string, error) {
	fs := flag.NewFlagSet("zkdns "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := os.Getenv("ZKDNS_CONFIG")
	if def == "" {
		def = defaultConfig
	}
	path := fs.String("config", def, "config `file`")
	if err := fs.Parse(args); err != nil {
		return "", errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "zkdns %s: unexpected argument %q\n", name, fs.Arg(0))
		return "", errUsage
	}
	return *path, nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	path, err := configFlag("serve", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := conf.Load(path)
	if err != nil {
		return fmt.Errorf("config: %w", oneLine(err))
	}
	logger := newLogger(cfg.Log, stderr)
	return daemon.Run(ctx, daemon.Options{Config: cfg, Logger: logger})
}

func check(args []string, stdout, stderr io.Writer) error {
	path, err := configFlag("check", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := conf.Load(path)
	if err != nil {
		// One line per problem, each with file:line, so all can be fixed at once.
		fmt.Fprintln(stderr, err)
		return errSilent
	}
	fmt.Fprintf(stdout, "%s: ok (%d services, %d discover paths)\n", path, len(cfg.Services), len(cfg.Discover))
	return nil
}

// errSilent is a failure whose message has already been printed.
var errSilent = errors.New("")

// oneLine joins a multi-line error (several config problems) into one line.
func oneLine(err error) error {
	return errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
}

func newLogger(c conf.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
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
