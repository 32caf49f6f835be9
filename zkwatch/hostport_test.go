package zkwatch

import (
	"testing"
)

func TestDecodeHostport(t *testing.T) {
	want := func(id, addr string, port uint16) Instance {
		return Instance{
			ID: id, Format: "hostport", Address: addr, Port: port,
			Weight: DefaultWeight, Healthy: true, Registered: decodeTestCtime(),
		}
	}
	cases := []decodeCase{
		{name: "IPv4 data", node: Node{Name: "i1", Data: []byte("192.0.2.40:8080")}, want: want("i1", "192.0.2.40", 8080)},
		{name: "data with surrounding whitespace", node: Node{Name: "i1", Data: []byte(" \t198.51.100.40:80\r\n")}, want: want("i1", "198.51.100.40", 80)},
		{name: "bracketed IPv6 data", node: Node{Name: "i1", Data: []byte("[2001:db8::40]:443")}, want: want("i1", "2001:db8::40", 443)},
		{name: "hostname data with trailing dot", node: Node{Name: "i1", Data: []byte("web-1.example.com.:8080")}, want: want("i1", "web-1.example.com", 8080)},
		{name: "name when data is empty", node: Node{Name: "192.0.2.41:9000"}, want: want("192.0.2.41:9000", "192.0.2.41", 9000)},
		{name: "IPv6 name when data is empty", node: Node{Name: "[2001:db8::41]:9000"}, want: want("[2001:db8::41]:9000", "2001:db8::41", 9000)},
		{name: "data wins over the name", node: Node{Name: "192.0.2.42:1", Data: []byte("192.0.2.43:2")}, want: want("192.0.2.42:1", "192.0.2.43", 2)},
		{name: "highest port", node: Node{Name: "i1", Data: []byte("192.0.2.44:65535")}, want: want("i1", "192.0.2.44", 65535)},
		{
			name:    "port zero",
			node:    Node{Name: "i1", Data: []byte("192.0.2.45:0")},
			wantErr: "zkwatch: hostport payload: data: port 0 out of range (want 1-65535)",
		},
		{
			name:    "port out of range in the name",
			node:    Node{Name: "192.0.2.45:65536"},
			wantErr: "zkwatch: hostport payload: znode name: port 65536 out of range (want 1-65535)",
		},
		{
			name:    "huge port",
			node:    Node{Name: "i1", Data: []byte("192.0.2.45:123456789012345678901234567890")},
			wantErr: "zkwatch: hostport payload: data: port 123456789012345678901234567890 out of range",
		},
		{
			name:    "empty host",
			node:    Node{Name: "i1", Data: []byte(":8080")},
			wantErr: "zkwatch: hostport payload: data: address is empty",
		},
		{
			name:    "bad hostname",
			node:    Node{Name: "i1", Data: []byte("-web.example:8080")},
			wantErr: `zkwatch: hostport payload: data: address "-web.example" is neither an IP address nor a valid hostname`,
		},
		{
			name:    "zone in the address",
			node:    Node{Name: "i1", Data: []byte("[fe80::1%eth0]:8080")},
			wantErr: `zkwatch: hostport payload: data: address "fe80::1%eth0" has an IPv6 zone`,
		},
		{
			name:    "not UTF-8",
			node:    Node{Name: "i1", Data: []byte("web\xff.example:8080")},
			wantErr: "zkwatch: hostport payload: data: address \"web\\xff.example\" is neither an IP address nor a valid hostname",
		},
		{
			name:     "endpoint set",
			node:     Node{Name: "i1", Data: []byte("192.0.2.46:8080")},
			endpoint: "http",
			wantErr:  `zkwatch: hostport payload: endpoint "http" does not exist`,
		},
		{
			name:          "no port",
			node:          Node{Name: "i1", Data: []byte("192.0.2.47")},
			wantErr:       "zkwatch: hostport payload: data is not host:port",
			notThisFormat: true,
		},
		{
			name:          "empty port",
			node:          Node{Name: "i1", Data: []byte("192.0.2.47:")},
			wantErr:       "zkwatch: hostport payload: data is not host:port",
			notThisFormat: true,
		},
		{
			name:          "named port",
			node:          Node{Name: "i1", Data: []byte("web.example:http")},
			wantErr:       "zkwatch: hostport payload: data is not host:port",
			notThisFormat: true,
		},
		{
			name:          "signed port",
			node:          Node{Name: "i1", Data: []byte("192.0.2.47:+80")},
			wantErr:       "zkwatch: hostport payload: data is not host:port",
			notThisFormat: true,
		},
		{
			name:          "unbracketed IPv6",
			node:          Node{Name: "i1", Data: []byte("2001:db8::47:80")},
			wantErr:       "zkwatch: hostport payload: data is not host:port",
			notThisFormat: true,
		},
		{
			name:          "URL",
			node:          Node{Name: "i1", Data: []byte("http://192.0.2.47:80/")},
			wantErr:       "zkwatch: hostport payload: data is not host:port",
			notThisFormat: true,
		},
		{
			name:          "JSON data",
			node:          Node{Name: "192.0.2.47:80", Data: samplePayload(t, "serverset/finagle.json")},
			wantErr:       "zkwatch: hostport payload: data is not host:port",
			notThisFormat: true,
		},
		{
			name:          "empty data and a plain name",
			node:          Node{Name: "member_0000000001"},
			wantErr:       "zkwatch: hostport payload: znode name is not host:port",
			notThisFormat: true,
		},
	}
	runDecodeCases(t, "hostport", cases)
}
