package conf

import (
	"errors"
	"strings"
	"testing"
)

// minimalZK is the smallest valid [zookeeper] table: two lines, so in a
// source built as minimalZK+rest, line n of rest is line n+2 of the file.
const minimalZK = "[zookeeper]\nservers = [\"192.0.2.10:2181\"]\n"

// watchOne is a [[service]] table. A config must watch something, so a
// source about anything else ends with it: in minimalZK+rest+watchOne,
// every line of rest stays where it was.
const watchOne = "[[service]]\nname = \"watched\"\npath = \"/watched\"\n"

// messages returns the Error() of each *Error joined in err, in order. It
// fails the test if err holds anything but *Error values.
func messages(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %q is not an errors.Join of *Error", err)
	}
	var out []string
	for _, e := range joined.Unwrap() {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("joined error %q is a %T, not an *Error", e, e)
		}
		out = append(out, ce.Error())
	}
	return out
}

// checkMessages compares the problems Parse reported with want.
func checkMessages(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
}

// parsePath turns "service[1].name" into a keyPath. Keys with dots or
// brackets in them need building by hand.
func parsePath(t *testing.T, s string) keyPath {
	t.Helper()
	var p keyPath
	for part := range strings.SplitSeq(s, ".") {
		name, rest, indexed := strings.Cut(part, "[")
		p = p.child(name)
		if indexed {
			var i int
			for _, c := range strings.TrimSuffix(rest, "]") {
				if c < '0' || c > '9' {
					t.Fatalf("bad index in path %q", s)
				}
				i = i*10 + int(c-'0')
			}
			p = p.at(i)
		}
	}
	return p
}
