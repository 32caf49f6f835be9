package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/zkdns/zkdns/conf"
)

// FuzzLoadRegisterConfig feeds loadRegisterConfig arbitrary files. It
// runs conf.Decode over the field types only register has (a map decoded
// key by key, durations that decode themselves, a named list) and conf's
// line locator over whatever the file holds, so any of those may meet
// input it did not expect. It must not panic; it must either fill in a
// config or return an error on one line that starts with the file's
// path, every problem in it a *conf.Error naming the file and no line
// outside the input, and that is not a usage error (the command line was
// fine); a config it fills in must record as set by the file only keys
// register knows, each at a line of the input, for a value found bad
// later to be reported there; and it must give the same answer twice.
func FuzzLoadRegisterConfig(f *testing.F) {
	// The seed corpus, in testdata/fuzz/FuzzLoadRegisterConfig, holds the
	// register tests' files; these add the error paths' odd corners.
	for _, s := range []string{
		"",
		"port = 80\n[meta]\n\"a.b\" = \"c\"\n",
		"[\"x(\"]\ny = 1\n",
		"'[' = 1\n",
		"a.b.c = 1\n",
		"[[servers]]\nx = 1\n",
		"port = 99999999999999999999\n",
		"meta = {zone = 1}\n",
	} {
		f.Add([]byte(s))
	}
	path := filepath.Join(f.TempDir(), "r.toml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var cfg registerConfig
		err := loadRegisterConfig(path, &cfg)
		if err != nil {
			if errors.Is(err, errUsage) {
				t.Fatalf("error %q is a usage error; the file is at fault, not the command line", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, path) {
				t.Fatalf("error %q does not name the file first", err)
			}
			if strings.Contains(msg, "\n") {
				t.Fatalf("error %q is not on one line", err)
			}
			var joined interface{ Unwrap() []error }
			if !errors.As(err, &joined) {
				t.Fatalf("error %q does not join its problems", err)
			}
			lines := bytes.Count(data, []byte("\n")) + 1
			for _, problem := range joined.Unwrap() {
				var ce *conf.Error
				switch {
				case !errors.As(problem, &ce):
					t.Fatalf("problem %q is a %T, not a *conf.Error", problem, problem)
				case ce.File != path:
					t.Fatalf("problem %q names file %q, not %q", problem, ce.File, path)
				case ce.Line < 0 || ce.Line > lines:
					t.Fatalf("problem %q names line %d of a %d-line file", problem, ce.Line, lines)
				}
			}
		}
		if err == nil {
			known := registerFlags(&registerConfig{}, new(string))
			lines := bytes.Count(data, []byte("\n")) + 1
			// Every key the file sets, as TOML reads it, is a setting that
			// lineOf finds inside the input: a bad value for it is then
			// reported at its line, not taken for one given nowhere.
			var raw map[string]toml.Primitive
			if _, err := toml.Decode(string(data), &raw); err != nil {
				t.Fatalf("the file decoded onto the config but not as TOML: %v", err)
			}
			for key := range raw {
				if known.Lookup(flagName(key)) == nil {
					t.Fatalf("key %q set by the file is not a setting", key)
				}
				if line := cfg.from.lineOf(key); line < 1 || line > lines {
					t.Fatalf("key %q is at line %d of a %d-line file", key, line, lines)
				}
			}
		}
		var again registerConfig
		err2 := loadRegisterConfig(path, &again)
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() || err == nil && !reflect.DeepEqual(cfg, again) {
			t.Fatalf("a second load differs: %+v, %v then %+v, %v", cfg, err, again, err2)
		}
	})
}
