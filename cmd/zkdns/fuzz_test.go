package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// FuzzLoadRegisterConfig feeds loadRegisterConfig arbitrary files. It
// decodes TOML, takes positions out of the decoder's error text and
// builds a regexp from every unknown key, so any of those may meet input
// it did not expect. It must not panic; it must either fill in a config
// or return an error that names the file, with any line it names inside
// the input, and that is not a usage error (the command line was fine);
// and it must give the same answer twice.
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
	lineOf := regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `:(\d+)`)
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
			// Every problem the file has is reported as file[:line]: ….
			msg := err.Error()
			lines := bytes.Count(data, []byte("\n")) + 1
			for _, problem := range strings.Split(msg, "; "+path) {
				if !strings.HasPrefix(problem, path) {
					problem = path + problem
				}
				if m := lineOf.FindStringSubmatch(problem); m != nil {
					if n, _ := strconv.Atoi(m[1]); n < 1 || n > lines {
						t.Fatalf("error %q names line %d of a %d-line file", err, n, lines)
					}
				}
			}
			if !strings.HasPrefix(msg, path) {
				t.Fatalf("error %q does not name the file first", err)
			}
		}
		var again registerConfig
		err2 := loadRegisterConfig(path, &again)
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() || err == nil && !reflect.DeepEqual(cfg, again) {
			t.Fatalf("a second load differs: %+v, %v then %+v, %v", cfg, err, again, err2)
		}
	})
}
