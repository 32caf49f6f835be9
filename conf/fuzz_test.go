package conf

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzParse feeds Parse arbitrary bytes. It must not panic, must return
// exactly one of a *Config and an error, must report only *Error values
// with lines inside the input, and must give the same answer twice. The
// line locator, which Parse runs only on valid TOML, must also survive
// the input as it is.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		minimalZK,
		minimalZK + "[dns]\nzone = \"Local\"\nttl = 5\n",
		minimalZK + "[[service]]\nname = \"a\"\npath = \"/a\"\n[[service.x]]\ny = 1\n",
		"service = [{name = \"a\", path = \"/a\"}, 1, [2]]\n",
		"a = \"\"\"\n[b]\n\"\"\"\n[[c]]\n",
		"[zookeeper]\nservers = [\"[2001:db8::1]\", \"zk:0\", \":\", \"[\"]\n",
		"x = {a = {b = {c = [[[{d = 1}]]]}}}\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := bytes.Count(data, []byte("\n")) + 1
		for key, line := range locateLines(data) {
			if line < 1 || line > lines {
				t.Fatalf("locator put %s on line %d of a %d-line input", key, line, lines)
			}
		}

		c, err := Parse("f.toml", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse returned %v and %v; want exactly one of them", c, err)
		}
		if err != nil {
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("error %q is not joined", err)
			}
			for _, e := range joined.Unwrap() {
				var ce *Error
				if !errors.As(e, &ce) {
					t.Fatalf("joined error %q is a %T", e, e)
				}
				if ce.Line < 0 || ce.Line > lines {
					t.Fatalf("error %q names line %d of a %d-line input", ce, ce.Line, lines)
				}
			}
		}
		again, err2 := Parse("f.toml", data)
		if !reflect.DeepEqual(again, c) || (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("a second Parse differs: %v, %v then %v, %v", c, err, again, err2)
		}
	})
}
