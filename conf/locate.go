package conf

import (
	"slices"
	"strconv"
	"strings"
)

// keyPath names one value in a config file, such as service[1].name: the
// table and key names from the top down, where an element of an array (of
// tables or of values) carries its index, counted from 0.
type keyPath []keyElem

type keyElem struct {
	name    string
	index   int
	indexed bool
}

// pathOf returns the path of nested keys without indexes.
func pathOf(names ...string) keyPath {
	p := make(keyPath, len(names))
	for i, n := range names {
		p[i] = keyElem{name: n}
	}
	return p
}

// child returns a new path one key below p; p is not modified.
func (p keyPath) child(name string) keyPath {
	return append(slices.Clip(p), keyElem{name: name})
}

// at returns a new path naming element i of the array p names.
func (p keyPath) at(i int) keyPath {
	q := slices.Clone(p)
	q[len(q)-1].index, q[len(q)-1].indexed = i, true
	return q
}

// String writes p the way a user finds it in the file: dotted, with keys
// that are not bare TOML keys quoted, and indexes in brackets.
func (p keyPath) String() string {
	var b strings.Builder
	for i, e := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		if isBareKey(e.name) {
			b.WriteString(e.name)
		} else {
			b.WriteString(strconv.Quote(e.name))
		}
		if e.indexed {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(e.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}

func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if !isBareKeyByte(s[i]) {
			return false
		}
	}
	return true
}

func isBareKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// lineIndex maps keyPath.String() to the line (from 1) where that key, table
// header or array element is first written. BurntSushi/toml keeps positions
// only per key name, not per array element, and does not expose them, so the
// file text is scanned once more to find them.
type lineIndex map[string]int

// line returns the line of p, or of the nearest enclosing thing that is
// written in the file (the array for an element, the table for a key), or 0
// when nothing is.
func (ix lineIndex) line(p keyPath) int {
	for len(p) > 0 {
		if n, ok := ix[p.String()]; ok {
			return n
		}
		if last := p[len(p)-1]; last.indexed {
			p = slices.Clone(p)
			p[len(p)-1].indexed = false
			continue
		}
		p = p[:len(p)-1]
	}
	return 0
}

// KeyLine returns the line, counted from 1, where data, the text of a TOML
// file that Decode accepted, writes the key named by keys (table and key
// names from the top down, as in KeyLine(data, "meta", "zone")): its
// `key = value`, the dotted key it begins, or its [table] header. A key
// not written there gets the line of the nearest enclosing table that is,
// or 0. It lets a program that checks decoded values further report a bad
// one at its line, as an *Error, the way Decode reports its own problems.
func KeyLine(data []byte, keys ...string) int {
	return locateLines(data).line(pathOf(keys...))
}

// maxNesting bounds the recursion into nested arrays and inline tables.
// Past it the scan stops: later keys get no line, which only makes their
// messages less precise.
const maxNesting = 32

// locateLines scans TOML text for table headers, keys and array elements
// and records the line of each. It is meant for text the TOML parser has
// accepted; on anything else it still returns, with fewer entries.
func locateLines(src []byte) lineIndex {
	s := &lineScanner{
		src:    string(src),
		line:   1,
		lines:  make(lineIndex),
		arrays: make(map[string]int),
	}
	s.document()
	return s.lines
}

type lineScanner struct {
	src  string
	pos  int
	line int // of src[pos]

	lines lineIndex
	// arrays counts the [[x]] headers seen, by the path of x with every
	// enclosing array element resolved, so that [[a.b]] numbers its
	// elements afresh under each [[a]].
	arrays map[string]int
}

func (s *lineScanner) eof() bool  { return s.pos >= len(s.src) }
func (s *lineScanner) peek() byte { return s.src[s.pos] }

func (s *lineScanner) has(prefix string) bool { return strings.HasPrefix(s.src[s.pos:], prefix) }

// advance consumes n bytes, counting the newlines among them.
func (s *lineScanner) advance(n int) {
	end := min(s.pos+n, len(s.src))
	s.line += strings.Count(s.src[s.pos:end], "\n")
	s.pos = end
}

func (s *lineScanner) record(p keyPath, line int) {
	if _, ok := s.lines[p.String()]; !ok {
		s.lines[p.String()] = line
	}
}

// skipBlank consumes spaces, tabs and comments, and newlines when
// newlines is set.
func (s *lineScanner) skipBlank(newlines bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance(1)
		case c == '\n' && newlines:
			s.advance(1)
		case c == '#':
			end := strings.IndexByte(s.src[s.pos:], '\n')
			if end < 0 {
				end = len(s.src) - s.pos
			}
			s.advance(end)
		default:
			return
		}
	}
}

func (s *lineScanner) document() {
	var table keyPath
	lost := false // the last header did not scan: its keys get no line
	for {
		s.skipBlank(true)
		if s.eof() {
			return
		}
		start := s.pos
		switch {
		case s.has("[["):
			table, lost = s.header(true)
		case s.peek() == '[':
			table, lost = s.header(false)
		default:
			s.keyValue(table, !lost, 0)
		}
		if s.pos == start {
			// Not TOML this scanner understands: go on at the next line.
			end := strings.IndexByte(s.src[s.pos:], '\n')
			if end < 0 {
				return
			}
			s.advance(end + 1)
		}
	}
}

// header scans a [table] or [[array]] header and returns its path, with the
// array element it opens resolved, and whether it could not be scanned.
func (s *lineScanner) header(array bool) (keyPath, bool) {
	line := s.line
	closing := "]"
	if array {
		closing = "]]"
	}
	s.advance(len(closing))
	names, ok := s.key()
	s.skipBlank(false)
	if !ok || !s.has(closing) {
		return nil, true
	}
	s.advance(len(closing))

	var p keyPath
	for i, name := range names {
		p = p.child(name)
		seen := s.arrays[p.String()]
		switch {
		case array && i == len(names)-1:
			s.arrays[p.String()] = seen + 1
			s.record(p, line) // the array as a whole is where it starts
			p = p.at(seen)
		case seen > 0:
			p = p.at(seen - 1)
		}
	}
	s.record(p, line)
	return p, false
}

// keyValue scans `key = value`, a key possibly dotted or quoted, and
// records the key's line (and that of each dotted prefix) when rec is set.
func (s *lineScanner) keyValue(table keyPath, rec bool, depth int) bool {
	line := s.line
	names, ok := s.key()
	if !ok {
		return false
	}
	s.skipBlank(false)
	if s.eof() || s.peek() != '=' {
		return false
	}
	s.advance(1)
	p := table
	for _, name := range names {
		p = p.child(name)
		if rec {
			s.record(p, line)
		}
	}
	s.value(p, rec, depth)
	return true
}

// key scans a possibly dotted key made of bare, "basic" and 'literal' parts.
func (s *lineScanner) key() ([]string, bool) {
	var names []string
	for {
		s.skipBlank(false)
		if s.eof() {
			return nil, false
		}
		switch s.peek() {
		case '"':
			raw, ok := s.singleLineString('"')
			if !ok {
				return nil, false
			}
			name, err := strconv.Unquote(raw)
			if err != nil {
				// An escape TOML has and Go lacks: close enough for
				// finding a line.
				name = raw[1 : len(raw)-1]
			}
			names = append(names, name)
		case '\'':
			raw, ok := s.singleLineString('\'')
			if !ok {
				return nil, false
			}
			names = append(names, raw[1:len(raw)-1])
		default:
			start := s.pos
			for !s.eof() && isBareKeyByte(s.peek()) {
				s.advance(1)
			}
			if s.pos == start {
				return nil, false
			}
			names = append(names, s.src[start:s.pos])
		}
		s.skipBlank(false)
		if s.eof() || s.peek() != '.' {
			return names, true
		}
		s.advance(1)
	}
}

// singleLineString scans a one-line string opened by quote and returns it
// with its quotes.
func (s *lineScanner) singleLineString(quote byte) (string, bool) {
	start := s.pos
	s.advance(1)
	for !s.eof() {
		switch c := s.peek(); {
		case c == '\n':
			return "", false
		case c == '\\' && quote == '"':
			s.advance(2)
		case c == quote:
			s.advance(1)
			return s.src[start:s.pos], true
		default:
			s.advance(1)
		}
	}
	return "", false
}

// multiLineString scans a string opened by three quotes, through the
// closing three (TOML allows up to two more quotes right before them).
func (s *lineScanner) multiLineString(quote byte) {
	delim := strings.Repeat(string(quote), 3)
	s.advance(3)
	for !s.eof() {
		switch {
		case s.peek() == '\\' && quote == '"':
			s.advance(2)
		case s.has(delim):
			s.advance(3)
			for extra := 0; extra < 2 && !s.eof() && s.peek() == quote; extra++ {
				s.advance(1)
			}
			return
		default:
			s.advance(1)
		}
	}
}

// value scans one value. Inside arrays it records each element's line as
// p[i]; inside inline tables each key's line.
func (s *lineScanner) value(p keyPath, rec bool, depth int) {
	if depth > maxNesting {
		s.pos = len(s.src)
		return
	}
	s.skipBlank(false)
	if s.eof() {
		return
	}
	switch c := s.peek(); {
	case s.has(`"""`):
		s.multiLineString('"')
	case s.has("'''"):
		s.multiLineString('\'')
	case c == '"' || c == '\'':
		s.singleLineString(c)
	case c == '[':
		s.array(p, rec, depth+1)
	case c == '{':
		s.inlineTable(p, rec, depth+1)
	default:
		// A number, boolean or date-time: all on one line, ended by a
		// delimiter.
		for !s.eof() && !strings.ContainsRune(",]}#\n", rune(s.peek())) {
			s.advance(1)
		}
	}
}

func (s *lineScanner) array(p keyPath, rec bool, depth int) {
	s.advance(1)
	// An element of an element (nested arrays) has no path of its own.
	rec = rec && len(p) > 0 && !p[len(p)-1].indexed
	for i := 0; ; i++ {
		s.skipBlank(true)
		if s.eof() {
			return
		}
		if s.peek() == ']' {
			s.advance(1)
			return
		}
		var elem keyPath
		if rec {
			elem = p.at(i)
			s.record(elem, s.line)
		}
		s.value(elem, rec, depth)
		s.skipBlank(true)
		if s.eof() {
			return
		}
		switch s.peek() {
		case ',':
			s.advance(1)
		case ']':
			s.advance(1)
			return
		default:
			return
		}
	}
}

func (s *lineScanner) inlineTable(p keyPath, rec bool, depth int) {
	s.advance(1)
	for {
		s.skipBlank(true)
		if s.eof() {
			return
		}
		switch s.peek() {
		case '}':
			s.advance(1)
			return
		case ',':
			s.advance(1)
			continue
		}
		if !s.keyValue(p, rec, depth) {
			return
		}
	}
}
