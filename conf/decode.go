package conf

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// decoder copies parsed TOML onto the config structs one key at a time.
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

func (d *decoder) value(p keyPath, prim toml.Primitive, dst reflect.Value) {
	t := dst.Type()
	switch {
	case t == reflect.TypeFor[Duration]():
		parsed, problem := parseDuration(d.peek(prim))
		if problem != "" {
			d.problems.undecodable(p, "%s", problem)
			return
		}
		dst.Set(reflect.ValueOf(parsed))
	case t.Kind() == reflect.Struct:
		d.subtable(p, prim, dst)
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		v := reflect.New(t.Elem())
		d.subtable(p, prim, v.Elem())
		dst.Set(v)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		d.tableArray(p, prim, dst)
	default:
		d.leaf(p, prim, dst)
	}
}

func (d *decoder) subtable(p keyPath, prim toml.Primitive, dst reflect.Value) {
	// toml decodes a non-table into a map as an empty map, without an
	// error, so look at what is there first.
	v := d.peek(prim)
	if _, ok := v.(map[string]any); !ok {
		d.problems.undecodable(p, "must be a table, not %s", describeValue(v))
		return
	}
	var raw map[string]toml.Primitive
	if err := d.md.PrimitiveDecode(prim, &raw); err != nil {
		d.problems.undecodable(p, "must be a table (%v)", err)
		return
	}
	d.table(p, raw, dst)
}

// tableArray decodes [[name]] tables (or an array of inline tables) onto
// dst, a slice of structs, replacing what it held.
func (d *decoder) tableArray(p keyPath, prim toml.Primitive, dst reflect.Value) {
	v := d.peek(prim)
	switch v.(type) {
	case []map[string]any, []any:
	default:
		d.problems.undecodable(p, "must be an array of tables, written [[%s]], not %s", p[len(p)-1].name, describeValue(v))
		return
	}
	var items []toml.Primitive
	if err := d.md.PrimitiveDecode(prim, &items); err != nil {
		d.problems.undecodable(p, "must be an array of tables (%v)", err)
		return
	}
	s := reflect.MakeSlice(dst.Type(), len(items), len(items))
	for i, item := range items {
		d.subtable(p.at(i), item, s.Index(i))
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

func describeType(t reflect.Type) string {
	switch {
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "an array of strings"
	default:
		return t.String()
	}
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
