package conf

import (
	"reflect"
	"strings"
)

// Changed returns the keys whose values differ between a and b, named as
// the config file names them ("log.level", "dns.allow"), in the order of
// Config's fields. A table that is there or not as a whole
// (zookeeper.auth, zookeeper.tls) is one key, and so is each array of
// tables ("service", "discover"), whatever changed in it. An empty list
// and an absent one are the same.
//
// It walks the structs' toml tags, as decoding does, so that a key added
// to Config is reported without a list here to keep up.
func Changed(a, b *Config) []string {
	var keys []string
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	t := va.Type()
	for i := range t.NumField() {
		name, ok := tomlKey(t.Field(i))
		if !ok {
			continue
		}
		fa, fb := va.Field(i), vb.Field(i)
		if fa.Kind() != reflect.Struct {
			if !sameValue(fa, fb) {
				keys = append(keys, name)
			}
			continue
		}
		for j := range fa.NumField() {
			key, ok := tomlKey(fa.Type().Field(j))
			if ok && !sameValue(fa.Field(j), fb.Field(j)) {
				keys = append(keys, name+"."+key)
			}
		}
	}
	return keys
}

// tomlKey is the key a struct field is written as, if any.
func tomlKey(f reflect.StructField) (string, bool) {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name, name != "" && name != "-"
}

func sameValue(a, b reflect.Value) bool {
	if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}
