package conf

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a config file. Parse and Load report every
// problem they find as an *Error, joined with errors.Join in line order, so
// a caller can print one per line or walk them with errors.As.
type Error struct {
	// File is the config file's path as given to Load or Parse.
	File string
	// Line is the line to fix, counted from 1, or 0 when the problem has
	// no place in the file (a required table that is missing altogether).
	Line int
	// Msg names the key, as in service[1].name (array elements counted
	// from 0), and says what to write instead.
	Msg string
}

// Error returns "file:line: msg", leaving out whichever of file and line is
// unknown.
func (e *Error) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	case e.File != "":
		return e.File + ": " + e.Msg
	case e.Line > 0:
		return "line " + strconv.Itoa(e.Line) + ": " + e.Msg
	default:
		return e.Msg
	}
}

// OneLine returns err with its lines, one per problem as Parse and Load
// join them, joined by "; " instead: for a log line, or a message that
// must stay one entry in a journal. It wraps err, so errors.As still
// finds each *Error in it. OneLine(nil) is nil.
func OneLine(err error) error {
	if err == nil {
		return nil
	}
	return oneLineError{err}
}

type oneLineError struct{ err error }

func (e oneLineError) Error() string { return strings.ReplaceAll(e.err.Error(), "\n", "; ") }
func (e oneLineError) Unwrap() error { return e.err }

// problems collects the *Errors of one Parse: first from decoding, then
// from validation.
type problems struct {
	file  string
	lines lineIndex
	// undecoded holds the paths whose value could not be decoded, and
	// their elements'. Validation says nothing about them: the decode
	// error already did, and a second "is required" would mislead.
	undecoded map[string]bool
	errs      []*Error
}

func newProblems(file string, src []byte) *problems {
	return &problems{
		file:      file,
		lines:     locateLines(src),
		undecoded: make(map[string]bool),
	}
}

// addf reports a problem with the value at p.
func (ps *problems) addf(p keyPath, format string, args ...any) {
	ps.add(p, p.String()+": "+fmt.Sprintf(format, args...))
}

func (ps *problems) add(p keyPath, msg string) {
	ps.errs = append(ps.errs, &Error{File: ps.file, Line: ps.lines.line(p), Msg: msg})
}

// undecodable reports that the value at p did not decode, and keeps
// validation quiet about it.
func (ps *problems) undecodable(p keyPath, format string, args ...any) {
	ps.addf(p, format, args...)
	ps.undecoded[p.String()] = true
}

// invalid reports a value that decoded but breaks a rule, quoting the value
// after the key: `service[1].name "Pay_ments": must be …`.
func (ps *problems) invalid(p keyPath, value string, format string, args ...any) {
	if ps.quiet(p) {
		return
	}
	ps.add(p, fmt.Sprintf("%s %q: ", p, value)+fmt.Sprintf(format, args...))
}

// missing reports a value that breaks a rule where quoting it would not
// help (a required value that is absent, an empty list).
func (ps *problems) missing(p keyPath, format string, args ...any) {
	if ps.quiet(p) {
		return
	}
	ps.addf(p, format, args...)
}

// quiet reports whether p, or anything that contains it, failed to decode.
func (ps *problems) quiet(p keyPath) bool {
	for i := 1; i <= len(p); i++ {
		prefix := slices.Clone(p[:i])
		if ps.undecoded[prefix.String()] {
			return true
		}
		if last := &prefix[i-1]; last.indexed {
			last.indexed = false
			if ps.undecoded[prefix.String()] {
				return true
			}
		}
	}
	return false
}

// err returns the problems in line order (those without a line last) as
// one joined error, or nil when there are none.
func (ps *problems) err() error {
	if len(ps.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(ps.errs, func(a, b *Error) int {
		return cmp.Compare(lineOrder(a.Line), lineOrder(b.Line))
	})
	errs := make([]error, len(ps.errs))
	for i, e := range ps.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// lineOrder sorts unknown lines (0) after every known one.
func lineOrder(line int) int {
	if line <= 0 {
		return math.MaxInt
	}
	return line
}
