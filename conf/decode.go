package conf

import (
	"bytes"
	"encoding"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Decode decodes data, the TOML contents of the file named file, onto dst,
// a non-nil pointer to a struct whose fields carry toml tags. It is the
// decoder Parse uses, for zkdns's other TOML files (zkdns register's
// -config), so that they report problems as the config file does.
//
// Decoding is strict: a key that no field's tag names is an error, and so
// is a value of the wrong type. A key the file leaves out leaves its field
// as it was, so dst may hold defaults. A field may be:
//   - a string, bool, integer or float, or a slice of them;
//   - a struct (a table), a pointer to one, or a slice of them (an array
//     of tables, [[name]]);
//   - a map with string keys (a table whose keys are data, not names
//     Decode knows), each value decoded as a field would be;
//   - a type that decodes itself. If its pointer implements
//     toml.Unmarshaler, it is handed the value as toml parsed it (string,
//     int64, float64, bool, time.Time, []any or map[string]any), and its
//     error, worded to follow the key's name as Duration's is, becomes the
//     problem's message. Otherwise, if its pointer implements
//     encoding.TextUnmarshaler, it is handed a string.
//
// A slice or map in the file replaces what the field held.
//
// On failure Decode returns every problem found as *Error values joined
// with errors.Join, in line order, and dst may hold some of the file's
// values. A TOML syntax error stops decoding, so it is reported alone. A
// dst that is not a pointer to a struct is the caller's bug, reported as a
// plain error.
func Decode(file string, data []byte, dst any) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("conf: Decode needs a non-nil pointer to a struct, not %T", dst)
	}
	ps, err := decode(file, data, v.Elem())
	if err != nil {
		return err
	}
	return ps.err()
}

// decode decodes data onto dst, a struct, and returns the problems found
// for the caller to add to (Parse validates next), or the syntax error
// that stopped it.
func decode(file string, data []byte, dst reflect.Value) (*problems, error) {
	var raw map[string]toml.Primitive
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		return nil, syntaxError(file, data, err)
	}
	ps := newProblems(file, data)
	d := decoder{md: &md, problems: ps}
	d.table(nil, raw, dst)
	return ps, nil
}

// decoder copies parsed TOML onto structs one key at a time.
// toml.Decode would stop at the first value of the wrong type and reports
// unknown keys without the array element they are in; going key by key
// reports every such problem at its own line. The structs' toml tags are
// the only list of keys.
type decoder struct {
	md       *toml.MetaData
	problems *problems
}

// table decodes the keys of one table onto dst, a struct.
func (d *decoder) table(p keyPath, raw map[string]toml.Primitive, dst reflect.Value) {
	t := dst.Type()
	fields := make(map[string]int, t.NumField())
	var known []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = i
		known = append(known, name)
	}
	for _, key := range slices.Sorted(maps.Keys(raw)) {
		i, ok := fields[key]
		if !ok {
			d.problems.undecodable(p.child(key), "%s", unknownKey(p, key, known))
			continue
		}
		d.value(p.child(key), raw[key], dst.Field(i))
	}
}

// value decodes one value onto dst, choosing by dst's type as Decode
// documents.
func (d *decoder) value(p keyPath, prim toml.Primitive, dst reflect.Value) {
	t := dst.Type()
	switch {
	// A type that decodes itself may well be a struct (Duration is), so
	// it must be asked before its kind is.
	case decodesTOML(t):
		d.unmarshal(p, prim, dst)
	case decodesText(t):
		d.text(p, prim, dst)
	case t.Kind() == reflect.Pointer:
		v := reflect.New(t.Elem())
		d.value(p, prim, v.Elem())
		dst.Set(v)
	case t.Kind() == reflect.Struct:
		d.subtable(p, prim, dst)
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		d.mapTable(p, prim, dst)
	case t.Kind() == reflect.Slice && (t.Elem().Kind() == reflect.Struct || decodesItself(t.Elem())):
		d.array(p, prim, dst)
	default:
		d.leaf(p, prim, dst)
	}
}

func decodesTOML(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(reflect.TypeFor[toml.Unmarshaler]())
}

func decodesText(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]())
}

func decodesItself(t reflect.Type) bool { return decodesTOML(t) || decodesText(t) }

// unmarshal hands the value to dst's UnmarshalTOML, whose error is the
// problem.
func (d *decoder) unmarshal(p keyPath, prim toml.Primitive, dst reflect.Value) {
	if err := dst.Addr().Interface().(toml.Unmarshaler).UnmarshalTOML(d.peek(prim)); err != nil {
		d.problems.undecodable(p, "%s", err)
	}
}

// text hands a string value to dst's UnmarshalText, whose error is the
// problem.
func (d *decoder) text(p keyPath, prim toml.Primitive, dst reflect.Value) {
	v := d.peek(prim)
	s, ok := v.(string)
	if !ok {
		// toml decodes some such types from other values too: a
		// time.Time from a TOML date-time.
		if d.md.PrimitiveDecode(prim, dst.Addr().Interface()) != nil {
			d.problems.undecodable(p, "must be a string, not %s", describeValue(v))
		}
		return
	}
	if err := dst.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
		d.problems.undecodable(p, "%s", err)
	}
}

// rawTable returns the keys of the table at p, or reports that the value
// there is not a table.
func (d *decoder) rawTable(p keyPath, prim toml.Primitive) (map[string]toml.Primitive, bool) {
	// toml decodes a non-table into a map as an empty map, without an
	// error, so look at what is there first.
	v := d.peek(prim)
	if _, ok := v.(map[string]any); !ok {
		d.problems.undecodable(p, "must be a table, not %s", describeValue(v))
		return nil, false
	}
	var raw map[string]toml.Primitive
	if err := d.md.PrimitiveDecode(prim, &raw); err != nil {
		d.problems.undecodable(p, "must be a table (%v)", err)
		return nil, false
	}
	return raw, true
}

func (d *decoder) subtable(p keyPath, prim toml.Primitive, dst reflect.Value) {
	if raw, ok := d.rawTable(p, prim); ok {
		d.table(p, raw, dst)
	}
}

// mapTable decodes a table whose keys are data onto dst, a map with string
// keys, replacing what it held. Each value is decoded on its own, so that
// every bad one is reported at its own line.
func (d *decoder) mapTable(p keyPath, prim toml.Primitive, dst reflect.Value) {
	raw, ok := d.rawTable(p, prim)
	if !ok {
		return
	}
	t := dst.Type()
	m := reflect.MakeMapWithSize(t, len(raw))
	for _, key := range slices.Sorted(maps.Keys(raw)) {
		v := reflect.New(t.Elem()).Elem()
		d.value(p.child(key), raw[key], v)
		m.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), v)
	}
	dst.Set(m)
}

// array decodes an array onto dst, a slice, one element at a time,
// replacing what it held: [[name]] tables (or an array of inline tables)
// when the elements are structs, any array when they decode themselves.
func (d *decoder) array(p keyPath, prim toml.Primitive, dst reflect.Value) {
	tables := !decodesItself(dst.Type().Elem())
	v := d.peek(prim)
	switch v.(type) {
	case []map[string]any, []any:
	default:
		if tables {
			d.problems.undecodable(p, "must be an array of tables, written [[%s]], not %s", p[len(p)-1].name, describeValue(v))
		} else {
			d.problems.undecodable(p, "must be an array, not %s", describeValue(v))
		}
		return
	}
	var items []toml.Primitive
	if err := d.md.PrimitiveDecode(prim, &items); err != nil {
		d.problems.undecodable(p, "must be an array (%v)", err)
		return
	}
	s := reflect.MakeSlice(dst.Type(), len(items), len(items))
	for i, item := range items {
		d.value(p.at(i), item, s.Index(i))
	}
	dst.Set(s)
}

func (d *decoder) leaf(p keyPath, prim toml.Primitive, dst reflect.Value) {
	if err := d.md.PrimitiveDecode(prim, dst.Addr().Interface()); err == nil {
		return
	}
	got := d.peek(prim)
	if s, ok := got.(string); ok && dst.Kind() == reflect.Slice {
		d.problems.undecodable(p, "must be %s, not a string: write [%q]", describeType(dst.Type()), s)
		return
	}
	if n, ok := got.(int64); ok && isInteger(dst.Kind()) {
		// The integer is of the right type and too large (or negative)
		// for the field.
		lo, hi := integerRange(dst.Type())
		d.problems.undecodable(p, "must be an integer from %d to %d, not %d", lo, hi, n)
		return
	}
	d.problems.undecodable(p, "must be %s, not %s", describeType(dst.Type()), describeValue(got))
}

// peek returns the value as toml parsed it: string, int64, float64, bool,
// time.Time, []any, []map[string]any or map[string]any.
func (d *decoder) peek(prim toml.Primitive) any {
	var v any
	if err := d.md.PrimitiveDecode(prim, &v); err != nil {
		return nil
	}
	return v
}

func describeValue(v any) string {
	switch v := v.(type) {
	case string:
		return "a string"
	case int64:
		return fmt.Sprintf("the integer %d", v)
	case float64:
		return fmt.Sprintf("the number %v", v)
	case bool:
		return fmt.Sprintf("the boolean %t", v)
	case time.Time:
		return "a date-time"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return "a value of another type"
	}
}

// describeType names what a field of type t takes, in the words
// describeValue uses for what the file holds: the user wrote TOML and
// should never meet a Go type name such as main.metadata.
func describeType(t reflect.Type) string {
	switch k := t.Kind(); {
	case t == reflect.TypeFor[time.Time]():
		return "a date-time"
	case k == reflect.String:
		return "a string"
	case k == reflect.Bool:
		return "true or false"
	case isInteger(k):
		return "an integer"
	case k == reflect.Float32 || k == reflect.Float64:
		return "a number"
	case k == reflect.Slice || k == reflect.Array:
		return "an array of " + describeElems(t.Elem())
	case k == reflect.Struct || k == reflect.Map:
		return "a table"
	case k == reflect.Pointer:
		return describeType(t.Elem())
	default:
		return "a value of another type"
	}
}

// describeElems is describeType in the plural, for an array's elements.
func describeElems(t reflect.Type) string {
	switch k := t.Kind(); {
	case t == reflect.TypeFor[time.Time]():
		return "date-times"
	case k == reflect.String:
		return "strings"
	case k == reflect.Bool:
		return "booleans"
	case isInteger(k):
		return "integers"
	case k == reflect.Float32 || k == reflect.Float64:
		return "numbers"
	case k == reflect.Slice || k == reflect.Array:
		return "arrays"
	case k == reflect.Struct || k == reflect.Map:
		return "tables"
	case k == reflect.Pointer:
		return describeElems(t.Elem())
	default:
		return "values"
	}
}

func isInteger(k reflect.Kind) bool { return k >= reflect.Int && k <= reflect.Uint64 }

// integerRange returns the least and greatest values of t, an integer
// type, as int64 and uint64 hold each end.
func integerRange(t reflect.Type) (lo int64, hi uint64) {
	bits := t.Bits()
	if t.Kind() >= reflect.Uint {
		return 0, math.MaxUint64 >> (64 - bits)
	}
	return -1 << (bits - 1), 1<<(bits-1) - 1
}

// unknownKey says what to do about key, which the table at p does not
// have: a likely spelling when there is one, else the keys there are.
func unknownKey(p keyPath, key string, known []string) string {
	best, bestDistance := "", 3
	for _, k := range known {
		// A typo is at most two edits, and fewer in a short key, else
		// every short key would look like every other.
		d := editDistance(strings.ToLower(key), k)
		if d < bestDistance && d*3 <= len(k) {
			best, bestDistance = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key; did you mean %q?", best)
	}
	where := "the top level"
	if len(p) > 0 {
		last := p[len(p)-1]
		bare := slices.Clone(p)
		bare[len(bare)-1].indexed = false
		where = "[" + bare.String() + "]"
		if last.indexed {
			where = "[" + where + "]"
		}
	}
	return fmt.Sprintf("unknown key; %s takes only %s", where, strings.Join(known, ", "))
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
