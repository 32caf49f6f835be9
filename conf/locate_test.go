package conf

import (
	"testing"

	"github.com/BurntSushi/toml"
)

func TestLocateLines(t *testing.T) {
	const doc = `# top comment with [brackets] and key = "value"
title = "x"   # a top-level key

[zookeeper]
servers = [
  "192.0.2.10:2181",  # first
  # a comment between elements
  "192.0.2.11:2181",
]
auth.scheme = "digest"
tls = { ca_file = "/ca.pem",
        cert_file = "/c.pem" }

[ dns ]
"quoted key" = 1
'literal.key' = 2
notes = """
fake = "not a key"
[not.a.table]
"""
raw = '''
[[nor.this]]
'''
zone = "local."

[[service]]
name = "a"
path = "/a"

[[service]]
name = "b#not-a-comment"
path = "/b"

[[service.tag]]
key = "t0"

[[service.tag]]
key = "t1"

[[service]]
name = "c"

[[service.tag]]
key = "c0"

[service.extra]
k = 1

[log]
matrix = [[1, 2], [3]]
inline = [{ a = 1 }, { a = 2 }]
level = "info"
`
	ix := locateLines([]byte(doc))
	tests := []struct {
		path string
		want int
	}{
		{"title", 2},
		{"zookeeper", 4},
		{"zookeeper.servers", 5},
		{"zookeeper.servers[0]", 6},
		{"zookeeper.servers[1]", 8},
		{"zookeeper.auth", 10},
		{"zookeeper.auth.scheme", 10},
		{"zookeeper.tls", 11},
		{"zookeeper.tls.ca_file", 11},
		{"zookeeper.tls.cert_file", 12},
		{"dns", 14},
		{"dns.notes", 17},
		{"dns.raw", 21},
		{"dns.zone", 24},
		{"service", 26},
		{"service[0]", 26},
		{"service[0].name", 27},
		{"service[1]", 30},
		{"service[1].name", 31},
		{"service[1].path", 32},
		{"service[1].tag[0]", 34},
		{"service[1].tag[0].key", 35},
		{"service[1].tag[1].key", 38},
		{"service[2].name", 41},
		{"service[2].tag[0].key", 44},
		{"service[2].extra.k", 47},
		{"log.matrix", 50},
		{"log.matrix[1]", 50},
		{"log.inline[1].a", 51},
		{"log.level", 52},

		// Fallbacks: the array for an element, the table for a key.
		{"zookeeper.servers[7]", 5},
		{"zookeeper.root", 4},
		{"service[2].path", 40},
		{"service[9].name", 26},
		{"admin.listen", 0},
		{"fake", 0},
		{"not.a.table", 0},
		{"nor.this", 0},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := ix.line(parsePath(t, tt.path)); got != tt.want {
				t.Errorf("line of %s = %d, want %d", tt.path, got, tt.want)
			}
		})
	}

	quoted := []struct {
		name string
		path keyPath
		want int
	}{
		{"basic quoted key", pathOf("dns", "quoted key"), 15},
		{"literal key with a dot", pathOf("dns", "literal.key"), 16},
		{"dotted path is not the literal key", pathOf("dns", "literal", "key"), 14},
	}
	for _, tt := range quoted {
		t.Run(tt.name, func(t *testing.T) {
			if got := ix.line(tt.path); got != tt.want {
				t.Errorf("line of %s = %d, want %d", tt.path, got, tt.want)
			}
		})
	}
}

func TestKeyPathString(t *testing.T) {
	tests := []struct {
		name string
		path keyPath
		want string
	}{
		{"empty", nil, ""},
		{"nested", pathOf("zookeeper", "auth", "scheme"), "zookeeper.auth.scheme"},
		{"element", pathOf("service").at(1).child("name"), "service[1].name"},
		{"quoted", pathOf("dns", "a b", "c.d", ""), `dns."a b"."c.d".""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.path.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("child and at leave the receiver alone", func(t *testing.T) {
		base := make(keyPath, 1, 4)
		base[0] = keyElem{name: "service"}
		a := base.child("a")
		b := base.child("b")
		c := base.at(3)
		if a.String() != "service.a" || b.String() != "service.b" || c.String() != "service[3]" || base.String() != "service" {
			t.Errorf("got %s, %s, %s from %s", a, b, c, base)
		}
	})
}

func TestKeyLine(t *testing.T) {
	const doc = `servers = ["192.0.2.1:2181"]
# port = 1
port = 70000
labels.zone = "a"
"quoted key" = 1
rise = { a = 1,
  b = 2 }

[meta]
"" = "x"
rack = "r1"

[[service]]
name = "a"
`
	tests := []struct {
		name string
		keys []string
		want int
	}{
		{"top-level key", []string{"port"}, 3},
		{"first key", []string{"servers"}, 1},
		{"dotted key's table", []string{"labels"}, 4},
		{"dotted key", []string{"labels", "zone"}, 4},
		{"quoted key", []string{"quoted key"}, 5},
		{"key in an inline table on a later line", []string{"rise", "b"}, 7},
		{"empty key in a table", []string{"meta", ""}, 10},
		{"key in a table", []string{"meta", "rack"}, 11},
		{"array of tables", []string{"service"}, 13},
		{"key not written: its table", []string{"meta", "absent"}, 9},
		{"key not written at the top level", []string{"drain"}, 0},
		{"commented out", []string{"# port"}, 0},
		{"no keys", nil, 0},
	}
	var parsed map[string]any
	if _, err := toml.Decode(doc, &parsed); err != nil {
		t.Fatalf("the test's TOML does not parse: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KeyLine([]byte(doc), tt.keys...); got != tt.want {
				t.Errorf("KeyLine(%q) = %d, want %d", tt.keys, got, tt.want)
			}
		})
	}
}
