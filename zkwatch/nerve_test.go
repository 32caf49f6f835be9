package zkwatch

import (
	"testing"
)

// nerveNameSample is a child name as nerve's ZooKeeper reporter writes it
// with use_path_encoding (Ruby's padded URL-safe Base64, then ZooKeeper's
// sequence number) for
// {"host":"192.0.2.31","port":3000,"name":"i-xxxxxx","labels":{"region":"us-east-1","az":"us-east-1a"}}.
const nerveNameSample = "base64_136_eyJob3N0IjoiMTkyLjAuMi4zMSIsInBvcnQiOjMwMDAsIm5hbWUiOiJpLXh4eHh4eCIsImxhYmVscyI6eyJyZWdpb24iOiJ1cy1lYXN0LTEiLCJheiI6InVzLWVhc3QtMWEifX0=_0000000042"

func TestDecodeNerve(t *testing.T) {
	// {"host":"2001:db8::31","port":8080,"name":"w>>įįį198","weight":7}
	// encodes to Base64 holding "-" and "_" (URL-safe) or "+" and "/"
	// (standard), and ends in padding.
	const (
		urlSafePadded = "base64_92_eyJob3N0IjoiMjAwMTpkYjg6OjMxIiwicG9ydCI6ODA4MCwibmFtZSI6Inc-PsSvxK_ErzE5OCIsIndlaWdodCI6N30=_0000000007"
		urlSafeRaw    = "base64_91_eyJob3N0IjoiMjAwMTpkYjg6OjMxIiwicG9ydCI6ODA4MCwibmFtZSI6Inc-PsSvxK_ErzE5OCIsIndlaWdodCI6N30_0000000007"
		standard      = "base64_92_eyJob3N0IjoiMjAwMTpkYjg6OjMxIiwicG9ydCI6ODA4MCwibmFtZSI6Inc+PsSvxK/ErzE5OCIsIndlaWdodCI6N30=_0000000007"
		persistent    = "base64_92_eyJob3N0IjoiMjAwMTpkYjg6OjMxIiwicG9ydCI6ODA4MCwibmFtZSI6Inc-PsSvxK_ErzE5OCIsIndlaWdodCI6N30=_"
	)
	encodedWant := func(id string) Instance {
		return Instance{
			ID: id, Format: "nerve", Address: "2001:db8::31", Port: 8080, Weight: 7, Healthy: true,
			Registered: decodeTestCtime(), Meta: map[string]string{"name": "w>>įįį198"},
		}
	}
	cases := []decodeCase{
		{
			name: "data with weight, labels and name",
			node: Node{Name: "i-0abc123def_0000000001", Data: samplePayload(t, "nerve/nerve.json")},
			want: Instance{
				ID: "i-0abc123def_0000000001", Format: "nerve", Address: "192.0.2.30", Port: 3000,
				Weight: 2, Healthy: true, Registered: decodeTestCtime(),
				Meta: map[string]string{"region": "us-east-1", "az": "us-east-1a", "name": "i-0abc123def"},
			},
		},
		{
			name: "minimal data with a hostname and a quoted port",
			node: Node{Name: "public_hostname.example.com_0000000003", Data: samplePayload(t, "nerve/nerve-minimal.json")},
			want: Instance{
				ID: "public_hostname.example.com_0000000003", Format: "nerve", Address: "localhost", Port: 3000,
				Weight: DefaultWeight, Healthy: true, Registered: decodeTestCtime(),
				Meta: map[string]string{"name": "public_hostname.example.com"},
			},
		},
		{
			name: "data wins over an encoded name",
			node: Node{Name: nerveNameSample, Data: []byte(`{"host":"198.51.100.30","port":4000}`)},
			want: Instance{
				ID: nerveNameSample, Format: "nerve", Address: "198.51.100.30", Port: 4000,
				Weight: DefaultWeight, Healthy: true, Registered: decodeTestCtime(),
			},
		},
		{
			name: "encoded name as nerve writes it",
			node: Node{Name: nerveNameSample},
			want: Instance{
				ID: nerveNameSample, Format: "nerve", Address: "192.0.2.31", Port: 3000,
				Weight: DefaultWeight, Healthy: true, Registered: decodeTestCtime(),
				Meta: map[string]string{"region": "us-east-1", "az": "us-east-1a", "name": "i-xxxxxx"},
			},
		},
		{name: "encoded name, URL-safe with padding", node: Node{Name: urlSafePadded}, want: encodedWant(urlSafePadded)},
		{name: "encoded name, URL-safe without padding", node: Node{Name: urlSafeRaw}, want: encodedWant(urlSafeRaw)},
		{name: "encoded name, standard alphabet", node: Node{Name: standard}, want: encodedWant(standard)},
		{name: "encoded name of a persistent node, no sequence", node: Node{Name: persistent}, want: encodedWant(persistent)},
		{name: "encoded name with whitespace-only data", node: Node{Name: urlSafePadded, Data: []byte(" \n")}, want: encodedWant(urlSafePadded)},
		{
			name: "weight clamped, labels flattened, name field wins over a name label",
			node: Node{Name: "n", Data: []byte(`{"host":"192.0.2.32","port":1,"name":"real","weight":1000000,"labels":{"name":"label","canary":true,"cores":8,"nested":{"a":1}}}`)},
			want: Instance{
				ID: "n", Format: "nerve", Address: "192.0.2.32", Port: 1, Weight: 65535, Healthy: true,
				Registered: decodeTestCtime(), Meta: map[string]string{"name": "real", "canary": "true", "cores": "8"},
			},
		},
		{
			name: "malformed weight and labels are ignored",
			node: Node{Name: "n", Data: []byte(`{"host":"192.0.2.33","port":65535,"weight":[1],"labels":"az=a"}`)},
			want: Instance{
				ID: "n", Format: "nerve", Address: "192.0.2.33", Port: 65535, Weight: DefaultWeight, Healthy: true,
				Registered: decodeTestCtime(),
			},
		},
		{
			name:    "port out of range",
			node:    Node{Name: "n", Data: []byte(`{"host":"192.0.2.34","port":65536}`)},
			wantErr: "zkwatch: nerve payload: port 65536 out of range (want 1-65535)",
		},
		{
			name:    "negative port",
			node:    Node{Name: "n", Data: []byte(`{"host":"192.0.2.34","port":-80}`)},
			wantErr: "zkwatch: nerve payload: port -80 out of range",
		},
		{
			name:    "port beyond int64",
			node:    Node{Name: "n", Data: []byte(`{"host":"192.0.2.34","port":99999999999999999999}`)},
			wantErr: "zkwatch: nerve payload: port 99999999999999999999 out of range",
		},
		{
			name:    "null port",
			node:    Node{Name: "n", Data: []byte(`{"host":"192.0.2.34","port":null}`)},
			wantErr: "zkwatch: nerve payload: port is null",
		},
		{
			name:    "bad host",
			node:    Node{Name: "n", Data: []byte(`{"host":"http://192.0.2.34","port":80}`)},
			wantErr: `zkwatch: nerve payload: address "http://192.0.2.34" is neither an IP address nor a valid hostname`,
		},
		{
			name:     "endpoint set",
			node:     Node{Name: "n", Data: samplePayload(t, "nerve/nerve.json")},
			endpoint: "http",
			wantErr:  `zkwatch: nerve payload: endpoint "http" does not exist`,
		},
		{
			name:    "encoded name with a wrong length",
			node:    Node{Name: "base64_500_eyJob3N0Ijo_0000000001"},
			wantErr: `zkwatch: nerve payload: znode name: encoded length "500" does not fit the name`,
		},
		{
			name:    "encoded name without a length",
			node:    Node{Name: "base64_eyJob3N0Ijo"},
			wantErr: "zkwatch: nerve payload: znode name is not base64_<length>_<base64>_<sequence>",
		},
		{
			name:    "encoded name with junk after the payload",
			node:    Node{Name: "base64_8_eyJob3N0_x1"},
			wantErr: `zkwatch: nerve payload: znode name: "_x1" after the encoded payload is not _<sequence>`,
		},
		{
			name:    "encoded name that is not base64",
			node:    Node{Name: "base64_8_eyJo!3N0_0000000001"},
			wantErr: "zkwatch: nerve payload: znode name: encoded payload is not base64",
		},
		{
			name:    "encoded name holding truncated JSON",
			node:    Node{Name: "base64_12_eyJob3N0Ijoi_0000000001"},
			wantErr: "zkwatch: nerve payload: znode name's decoded payload is not valid JSON: unexpected end of JSON input",
		},
		{
			name:    "encoded name holding JSON without a port",
			node:    Node{Name: "base64_28_eyJob3N0IjoiMTkyLjAuMi4xIn0=_0000000001"},
			wantErr: `zkwatch: nerve payload: znode name's decoded payload lacks "host" or "port"`,
		},
		{
			name:          "truncated JSON data",
			node:          Node{Name: "n", Data: samplePayload(t, "nerve/nerve.json")[:40]},
			wantErr:       "zkwatch: nerve payload: data is not valid JSON: unexpected end of JSON input",
			notThisFormat: true,
		},
		{
			name:          "not UTF-8",
			node:          Node{Name: "n", Data: []byte("{\"host\":\"192.0.2.35\",\"port\":80,\"name\":\"\xc3\x28\"}")},
			wantErr:       "zkwatch: nerve payload: data is not valid JSON: not UTF-8",
			notThisFormat: true,
		},
		{
			name:          "JSON without port",
			node:          Node{Name: "n", Data: []byte(`{"host":"192.0.2.35"}`)},
			wantErr:       `zkwatch: nerve payload: JSON object lacks "host" or "port"`,
			notThisFormat: true,
		},
		{
			name:          "empty data and a plain name",
			node:          Node{Name: "i-0abc123def_0000000001"},
			wantErr:       "zkwatch: nerve payload: data is empty and the znode name does not start with base64_",
			notThisFormat: true,
		},
	}
	runDecodeCases(t, "nerve", cases)
}
