package conf

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestChanged(t *testing.T) {
	base := func() *Config {
		c, err := Parse("t.toml", []byte(minimalZK+watchOne))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string
	}{
		{"nothing", func(*Config) {}, nil},
		{"another file name only", func(c *Config) { c.File = "other.toml" }, nil},
		{"log level", func(c *Config) { c.Log.Level = "debug" }, []string{"log.level"}},
		{"log format", func(c *Config) { c.Log.Format = "json" }, []string{"log.format"}},
		{"allow", func(c *Config) { c.DNS.Allow = []string{"10.0.0.0/8"} }, []string{"dns.allow"}},
		{"an empty list of upstreams is none", func(c *Config) { c.DNS.Upstreams = []string{} }, nil},
		{"auth added", func(c *Config) { c.ZooKeeper.Auth = &Auth{Scheme: "digest", CredentialsFile: "/a"} }, []string{"zookeeper.auth"}},
		{"a service's warm-up", func(c *Config) { c.Services[0].Warmup = Duration{time.Second} }, []string{"service"}},
		{"a discover added", func(c *Config) { c.Discover = []Discover{{Path: "/services", Format: "auto"}} }, []string{"discover"}},
		{
			name: "several, in the order of the file's tables",
			change: func(c *Config) {
				c.Log.Level = "warn"
				c.Admin.Pprof = true
				c.ZooKeeper.SessionTimeout = Duration{time.Second}
				c.DNS.TTL = Duration{time.Second}
			},
			want: []string{"zookeeper.session_timeout", "dns.ttl", "admin.pprof", "log.level"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := base()
			tt.change(next)
			if got := Changed(base(), next); !slices.Equal(got, tt.want) {
				t.Errorf("Changed = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestChangedNamesEveryKey changes each key of Config alone, the whole of
// each table under it, and each array of tables, and wants that key
// named: a key added to Config is covered without a list to update.
func TestChangedNamesEveryKey(t *testing.T) {
	base := Default()
	base.ZooKeeper.Servers = []string{"192.0.2.10:2181"}
	var keys []string
	top := reflect.TypeFor[Config]()
	for i := range top.NumField() {
		name, ok := tomlKey(top.Field(i))
		if !ok {
			continue
		}
		f := top.Field(i)
		if f.Type.Kind() != reflect.Struct {
			keys = append(keys, name)
			continue
		}
		for j := range f.Type.NumField() {
			if key, ok := tomlKey(f.Type.Field(j)); ok {
				keys = append(keys, name+"."+key)
			}
		}
	}
	if !slices.Contains(keys, "log.level") || !slices.Contains(keys, "zookeeper.tls") || !slices.Contains(keys, "service") {
		t.Fatalf("the walk of Config missed keys; found %q", keys)
	}
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			next := deepCopy(t, base)
			v := reflect.ValueOf(next).Elem()
			for _, name := range strings.Split(key, ".") {
				v = fieldByKey(t, v, name)
			}
			alter(t, v)
			if got := Changed(base, next); !slices.Equal(got, []string{key}) {
				t.Errorf("Changed after changing %s = %q, want [%s]", key, got, key)
			}
		})
	}
}

func fieldByKey(t *testing.T, v reflect.Value, key string) reflect.Value {
	t.Helper()
	for i := range v.NumField() {
		if name, ok := tomlKey(v.Type().Field(i)); ok && name == key {
			return v.Field(i)
		}
	}
	t.Fatalf("no field %q in %s", key, v.Type())
	return reflect.Value{}
}

// alter sets v to a value other than the one it holds.
func alter(t *testing.T, v reflect.Value) {
	t.Helper()
	switch {
	case v.Type() == reflect.TypeFor[Duration]():
		v.Set(reflect.ValueOf(Duration{v.Interface().(Duration).Duration + time.Second}))
	case v.Kind() == reflect.String:
		v.SetString(v.String() + "x")
	case v.Kind() == reflect.Bool:
		v.SetBool(!v.Bool())
	case v.Kind() == reflect.Slice:
		v.Set(reflect.Append(v, reflect.New(v.Type().Elem()).Elem()))
	case v.Kind() == reflect.Pointer && v.IsNil():
		v.Set(reflect.New(v.Type().Elem()))
	case v.Kind() == reflect.Pointer:
		v.Set(reflect.Zero(v.Type()))
	default:
		t.Fatalf("no way to change a %s", v.Type())
	}
}

// deepCopy copies c with slices of its own: a change to a copy that
// shared one with c would change both, and Changed would see none.
func deepCopy(t *testing.T, c *Config) *Config {
	t.Helper()
	d := *c
	d.ZooKeeper.Servers = slices.Clone(c.ZooKeeper.Servers)
	d.DNS.Listen = slices.Clone(c.DNS.Listen)
	d.DNS.Upstreams = slices.Clone(c.DNS.Upstreams)
	d.DNS.Allow = slices.Clone(c.DNS.Allow)
	d.Services = slices.Clone(c.Services)
	d.Discover = slices.Clone(c.Discover)
	if !reflect.DeepEqual(&d, c) {
		t.Fatal("the copy differs from the original")
	}
	return &d
}
