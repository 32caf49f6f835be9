package conf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"
)

// Load reads the config file at path and returns it parsed, normalised and
// validated, as Parse does.
func Load(path string) (*Config, error) {
	c, _, err := load(path)
	return c, err
}

// load is Load, returning the file's content too.
func load(path string) (*Config, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("conf: read config: %w", err)
	}
	c, err := Parse(path, data)
	return c, data, err
}

// Check loads the config file at path as Load does and reads the files
// its [zookeeper] section names as ZooKeeper.LoadSecurity does: all that
// zkdns serve reads at start. A problem with one of those files is an
// *Error at the line of the key that names it; every such problem is
// reported, joined with errors.Join in line order, as Parse reports the
// file's own.
func Check(path string) (*Config, error) {
	c, data, err := load(path)
	if err != nil {
		return nil, err
	}
	if _, err := c.ZooKeeper.LoadSecurity(); err != nil {
		return nil, locateSecurity(path, data, err)
	}
	return c, nil
}

// LoadSecurity is c.ZooKeeper.LoadSecurity with its problems placed as
// Check places them, at the lines of their keys in c.File, which is read
// again for that only when there is a problem. The daemon reads these
// files when it starts and when a reload changes [zookeeper], long after
// Parse had the file's content; without this, a reload refused for an
// unreadable credentials file would be logged without the file:line that
// zkdns check gives for the same file.
func (c *Config) LoadSecurity() (ZooKeeperSecurity, error) {
	sec, err := c.ZooKeeper.LoadSecurity()
	if err == nil || c.File == "" {
		return sec, err
	}
	data, readErr := os.ReadFile(c.File)
	if readErr != nil {
		return sec, err
	}
	return sec, locateSecurity(c.File, data, err)
}

// locateSecurity turns err, from LoadSecurity, into *Error values at the
// lines of the keys in data, the content of file, joined in line order.
func locateSecurity(file string, data []byte, err error) error {
	errs := []error{err}
	if multi, ok := err.(interface{ Unwrap() []error }); ok {
		errs = multi.Unwrap()
	}
	ps := newProblems(file, data)
	for _, err := range errs {
		var fe *fileError
		if !errors.As(err, &fe) {
			return err
		}
		ps.add(pathOf(strings.Split(fe.key, ".")...), fe.err.Error())
	}
	return ps.err()
}

// Parse decodes data, the contents of the config file named file, onto
// Default() as Decode does, then normalises and validates the result.
//
// Decoding is strict: a key zkdns does not know is an error, as is a value
// of the wrong type. Normalising lowercases dns.zone and gives it its
// trailing dot, lowercases the log level and format and each format, trims
// the ZooKeeper servers and gives a bare host port 2181, gives a bare
// upstream IP port 53, and writes each dns.allow entry as a prefix with
// its host bits cleared (a bare IP becomes a /32 or /128).
//
// On success the *Config is complete and Parse returns a nil error. On
// failure it returns a nil *Config and every problem found as *Error
// values joined with errors.Join, in line order. A TOML syntax error stops
// parsing, so it is reported alone.
func Parse(file string, data []byte) (*Config, error) {
	c := Default()
	c.File = file
	ps, err := decode(file, data, reflect.ValueOf(c).Elem())
	if err != nil {
		return nil, err
	}
	ps.check(c)
	if err := ps.err(); err != nil {
		return nil, err
	}
	return c, nil
}

func syntaxError(file string, data []byte, err error) error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return errors.Join(&Error{File: file, Msg: "invalid TOML: " + err.Error()})
	}
	line := pe.Position.Line
	// When the offending byte is the newline ending a line (an unclosed
	// [table, say), toml counts it on the next line; the user's mistake
	// is on the line the newline ends.
	if start := pe.Position.Start; start >= 0 && start < len(data) && data[start] == '\n' {
		if at := bytes.Count(data[:start], []byte("\n")) + 1; at == line-1 {
			line = at
		}
	}
	return errors.Join(&Error{File: file, Line: line, Msg: "invalid TOML: " + pe.Message})
}
