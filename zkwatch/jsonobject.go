package zkwatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// This file reads the JSON payloads (curator, serverset, nerve). A payload
// is checked whole by encoding/json and then split into its members in
// place, without decoding them: every instance of a sync comes through
// here, and unmarshalling each payload into a map of copied values made
// several times the garbage of the instance it yielded.

// jsonObject is a JSON object split into its members, whose values are
// still raw, so that a decoder can tell a missing key from a null one and
// read numbers exactly as written. Members are in document order; when a
// key repeats, its last member counts, as with encoding/json. Keys and
// values point into the payload, so the accessors return copies: nothing a
// decoder keeps holds on to the payload.
type jsonObject []jsonMember

type jsonMember struct {
	key   []byte // unquoted
	value []byte // raw, without the space around it
}

// parseJSONObject splits data, which must be one JSON object. When it is
// not one, reason says why, in words that fit after "data ".
func parseJSONObject(data []byte) (obj jsonObject, reason string) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, "is empty"
	}
	if data[0] != '{' {
		return nil, "is not a JSON object"
	}
	// encoding/json would quietly replace bad bytes with U+FFFD; a payload
	// that is not UTF-8 was not written by a JSON encoder.
	if !utf8.Valid(data) {
		return nil, "is not valid JSON: not UTF-8"
	}
	if !json.Valid(data) {
		// Unmarshal checks the syntax before decoding anything, so its
		// error is the syntax error, saying what is wrong and where.
		var raw json.RawMessage
		err := json.Unmarshal(data, &raw)
		if err == nil {
			err = errors.New("invalid syntax")
		}
		return nil, "is not valid JSON: " + err.Error()
	}
	return splitObject(data), ""
}

// splitObject splits a valid JSON object, without the space around it,
// into its members.
func splitObject(obj []byte) jsonObject {
	// Payloads have a handful of members: collect them on the stack and
	// allocate the result once, at its size.
	var buf [16]jsonMember
	members := buf[:0]
	i := skipJSONSpace(obj, 1)
	for i < len(obj) && obj[i] == '"' {
		keyEnd := jsonStringEnd(obj, i)
		key := unquoteJSON(obj[i:keyEnd])
		i = skipJSONSpace(obj, skipJSONSpace(obj, keyEnd)+1) // past the colon
		valueEnd := jsonValueEnd(obj, i)
		members = append(members, jsonMember{key: key, value: obj[i:valueEnd]})
		i = skipJSONSpace(obj, skipJSONSpace(obj, valueEnd)+1) // past the comma or the closing brace
	}
	out := make(jsonObject, len(members))
	copy(out, members)
	return out
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// jsonStringEnd returns the index just past the string that starts at
// b[i] (its opening quote).
func jsonStringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++ // whatever is escaped, it is not the closing quote
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// jsonValueEnd returns the index just past the valid JSON value that
// starts at b[i].
func jsonValueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return jsonStringEnd(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = jsonStringEnd(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	}
	// A number, true, false or null runs to the next delimiter.
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// unquoteJSON returns the text of a valid JSON string (quotes included).
// Only a string with escapes needs decoding, and so a copy.
func unquoteJSON(quoted []byte) []byte {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return quoted[1 : len(quoted)-1]
	}
	var s string
	if json.Unmarshal(quoted, &s) != nil {
		return quoted[1 : len(quoted)-1] // not reached: the payload is valid JSON
	}
	return []byte(s)
}

// get returns the raw value of key, as the last member with that key has
// it.
func (o jsonObject) get(key string) ([]byte, bool) {
	for i := len(o) - 1; i >= 0; i-- {
		if string(o[i].key) == key {
			return o[i].value, true
		}
	}
	return nil, false
}

// hasAnyKey reports whether any of keys is present, even with a null
// value.
func (o jsonObject) hasAnyKey(keys ...string) bool {
	for _, k := range keys {
		if _, ok := o.get(k); ok {
			return true
		}
	}
	return false
}

// keys returns the distinct keys, sorted.
func (o jsonObject) keys() []string {
	keys := make([]string, 0, len(o))
	for _, m := range o {
		keys = append(keys, string(m.key))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// str returns the string at key; ok is false when it is missing or null.
func (o jsonObject) str(key string) (s string, ok bool, err error) {
	v, present := o.get(key)
	if !present || isJSONNull(v) {
		return "", false, nil
	}
	if v[0] != '"' {
		return "", false, fmt.Errorf("%s is %s, want a string", key, jsonKind(v))
	}
	return string(unquoteJSON(v)), true, nil
}

// number returns the text of the number at key, which may also be written
// as a JSON string; ok is false when it is missing or null.
func (o jsonObject) number(key string) (text string, ok bool, err error) {
	v, present := o.get(key)
	if !present || isJSONNull(v) {
		return "", false, nil
	}
	switch v[0] {
	case '"':
		return string(bytes.TrimSpace(unquoteJSON(v))), true, nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(v), true, nil
	}
	return "", false, fmt.Errorf("%s is %s, want a number", key, jsonKind(v))
}

// port returns the port at key; ok is false when it is missing or null.
func (o jsonObject) port(key string) (port uint16, ok bool, err error) {
	text, ok, err := o.number(key)
	if !ok || err != nil {
		return 0, ok, err
	}
	port, err = parsePort(text)
	if err != nil && key != "port" {
		err = fmt.Errorf("%s: %w", key, err)
	}
	return port, true, err
}

// integer returns the integer at key; ok is false when it is missing or
// null.
func (o jsonObject) integer(key string) (n int64, ok bool, err error) {
	text, ok, err := o.number(key)
	if !ok || err != nil {
		return 0, ok, err
	}
	n, err = strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, true, fmt.Errorf("%s %q is not an integer", key, clip(text))
	}
	return n, true, nil
}

// object returns the object at key; ok is false when it is missing or null.
func (o jsonObject) object(key string) (obj jsonObject, ok bool, err error) {
	v, present := o.get(key)
	if !present || isJSONNull(v) {
		return nil, false, nil
	}
	if v[0] != '{' {
		return nil, false, fmt.Errorf("%s is %s, want an object", key, jsonKind(v))
	}
	return splitObject(v), true, nil
}

// flatten turns an object of metadata into strings: strings as they are,
// numbers as written, booleans as true/false. Nulls, arrays, nested
// objects and empty keys have no key=value form and are skipped. It
// returns nil for an object with nothing to keep.
func (o jsonObject) flatten() map[string]string {
	var meta map[string]string
	for _, m := range o {
		if len(m.key) == 0 {
			continue
		}
		var s string
		switch m.value[0] {
		case '"':
			s = string(unquoteJSON(m.value))
		case 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			s = string(m.value)
		default:
			// Of a repeated key only the last value counts, even one
			// that is skipped.
			delete(meta, string(m.key))
			continue
		}
		if meta == nil {
			meta = make(map[string]string, len(o))
		}
		meta[string(m.key)] = s
	}
	if len(meta) == 0 {
		return nil
	}
	return meta
}

// isJSONNull reports whether a raw value, without the space around it, is
// null.
func isJSONNull(v []byte) bool { return string(v) == "null" }

// jsonKind names the type of a raw JSON value for error messages.
func jsonKind(v []byte) string {
	switch v[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
