package zkwatch

import (
	"testing"
)

func TestDecodeServerset(t *testing.T) {
	cases := []decodeCase{
		{
			name: "finagle member without shard",
			node: Node{Name: "member_0000000001", Data: samplePayload(t, "serverset/finagle.json")},
			want: Instance{
				ID: "member_0000000001", Format: "serverset", Address: "192.0.2.20", Port: 10000,
				Weight: DefaultWeight, Healthy: true, Registered: decodeTestCtime(),
			},
		},
		{
			name: "aurora serviceEndpoint with shard",
			node: Node{Name: "member_0000000003", Data: samplePayload(t, "serverset/aurora.json")},
			want: Instance{
				ID: "member_0000000003", Format: "serverset", Address: "192.0.2.9", Port: 15510,
				Weight: DefaultWeight, Healthy: true, Registered: decodeTestCtime(),
				Meta: map[string]string{"shard": "3"},
			},
		},
		{
			name:     "aurora additional endpoint",
			node:     Node{Name: "member_0000000003", Data: samplePayload(t, "serverset/aurora.json")},
			endpoint: "aurora",
			want: Instance{
				ID: "member_0000000003", Format: "serverset", Address: "192.0.2.7", Port: 15508,
				Weight: DefaultWeight, Healthy: true, Registered: decodeTestCtime(),
				Meta: map[string]string{"shard": "3"},
			},
		},
		{
			name: "aurora scheduler with a hostname",
			node: Node{Name: "member_0000000058", Data: samplePayload(t, "serverset/aurora-scheduler.json")},
			want: Instance{
				ID: "member_0000000058", Format: "serverset", Address: "aurora-scheduler-1.example.com", Port: 8082,
				Weight: DefaultWeight, Healthy: true, Registered: decodeTestCtime(),
			},
		},
		{
			name: "STOPPING is unhealthy",
			node: Node{Name: "member_0000000009", Data: samplePayload(t, "serverset/stopping.json")},
			want: Instance{
				ID: "member_0000000009", Format: "serverset", Address: "192.0.2.21", Port: 31943,
				Weight: DefaultWeight, Healthy: false, Registered: decodeTestCtime(),
				Meta: map[string]string{"shard": "0"},
			},
		},
		{
			name: "STOPPING is unhealthy on an additional endpoint too",
			node: Node{Name: "member_0000000009", Data: samplePayload(t, "serverset/stopping.json")}, endpoint: "health",
			want: Instance{
				ID: "member_0000000009", Format: "serverset", Address: "192.0.2.21", Port: 31944,
				Weight: DefaultWeight, Healthy: false, Registered: decodeTestCtime(),
				Meta: map[string]string{"shard": "0"},
			},
		},
		{
			name: "status is case-sensitive",
			node: Node{Name: "m", Data: []byte(`{"serviceEndpoint":{"host":"192.0.2.22","port":80},"status":"alive"}`)},
			want: Instance{
				ID: "m", Format: "serverset", Address: "192.0.2.22", Port: 80,
				Weight: DefaultWeight, Healthy: false, Registered: decodeTestCtime(),
			},
		},
		{
			name: "missing status is unhealthy",
			node: Node{Name: "m", Data: []byte(`{"serviceEndpoint":{"host":"2001:db8::22","port":80}}`)},
			want: Instance{
				ID: "m", Format: "serverset", Address: "2001:db8::22", Port: 80,
				Weight: DefaultWeight, Healthy: false, Registered: decodeTestCtime(),
			},
		},
		{
			name: "DEAD and a quoted shard",
			node: Node{Name: "m", Data: []byte(`{"serviceEndpoint":{"host":"192.0.2.23","port":80},"status":"DEAD","shard":"7"}`)},
			want: Instance{
				ID: "m", Format: "serverset", Address: "192.0.2.23", Port: 80,
				Weight: DefaultWeight, Healthy: false, Registered: decodeTestCtime(),
				Meta: map[string]string{"shard": "7"},
			},
		},
		{
			name: "malformed additionalEndpoints does not matter for serviceEndpoint",
			node: Node{Name: "m", Data: []byte(`{"serviceEndpoint":{"host":"192.0.2.27","port":80},"additionalEndpoints":[],"status":"ALIVE"}`)},
			want: Instance{
				ID: "m", Format: "serverset", Address: "192.0.2.27", Port: 80,
				Weight: DefaultWeight, Healthy: true, Registered: decodeTestCtime(),
			},
		},
		{
			name:     "malformed additionalEndpoints when one is asked for",
			node:     Node{Name: "m", Data: []byte(`{"serviceEndpoint":{"host":"192.0.2.27","port":80},"additionalEndpoints":[],"status":"ALIVE"}`)},
			endpoint: "http",
			wantErr:  "zkwatch: serverset payload: additionalEndpoints is an array, want an object",
		},
		{
			name:     "additional endpoint that is not an object",
			node:     Node{Name: "m", Data: []byte(`{"additionalEndpoints":{"http":"192.0.2.27:80"},"status":"ALIVE"}`)},
			endpoint: "http",
			wantErr:  "zkwatch: serverset payload: additionalEndpoints: http is a string, want an object",
		},
		{
			name:     "additional endpoint missing",
			node:     Node{Name: "member_0000000003", Data: samplePayload(t, "serverset/aurora.json")},
			endpoint: "admin",
			wantErr:  "zkwatch: serverset payload: additionalEndpoints.admin is missing (additional endpoints: aurora, http)",
		},
		{
			name:     "additional endpoint asked of a member with none",
			node:     Node{Name: "member_0000000001", Data: samplePayload(t, "serverset/finagle.json")},
			endpoint: "http",
			wantErr:  "zkwatch: serverset payload: additionalEndpoints.http is missing (additional endpoints: none)",
		},
		{
			name:    "only additional endpoints, none chosen",
			node:    Node{Name: "m", Data: []byte(`{"additionalEndpoints":{"http":{"host":"192.0.2.24","port":80}},"status":"ALIVE"}`)},
			wantErr: "zkwatch: serverset payload: serviceEndpoint is missing (additional endpoints: http)",
		},
		{
			name:    "port out of range",
			node:    Node{Name: "m", Data: []byte(`{"serviceEndpoint":{"host":"192.0.2.25","port":70000},"status":"ALIVE"}`)},
			wantErr: "zkwatch: serverset payload: serviceEndpoint: port 70000 out of range (want 1-65535)",
		},
		{
			name:    "port missing",
			node:    Node{Name: "m", Data: []byte(`{"serviceEndpoint":{"host":"192.0.2.25"},"status":"ALIVE"}`)},
			wantErr: "zkwatch: serverset payload: serviceEndpoint: port is missing",
		},
		{
			name:     "bad host on an additional endpoint",
			node:     Node{Name: "m", Data: []byte(`{"serviceEndpoint":{"host":"192.0.2.25","port":80},"additionalEndpoints":{"http":{"host":"host name","port":80}},"status":"ALIVE"}`)},
			endpoint: "http",
			wantErr:  `zkwatch: serverset payload: additionalEndpoints.http: address "host name" is neither an IP address nor a valid hostname`,
		},
		{
			name:    "endpoint that is not an object",
			node:    Node{Name: "m", Data: []byte(`{"serviceEndpoint":"192.0.2.25:80","status":"ALIVE"}`)},
			wantErr: "zkwatch: serverset payload: serviceEndpoint is a string, want an object",
		},
		{
			name:    "status that is not a string",
			node:    Node{Name: "m", Data: []byte(`{"serviceEndpoint":{"host":"192.0.2.25","port":80},"status":2}`)},
			wantErr: "zkwatch: serverset payload: status is a number, want a string",
		},
		{
			name:          "truncated JSON",
			node:          Node{Name: "m", Data: samplePayload(t, "serverset/aurora.json")[:60]},
			wantErr:       "zkwatch: serverset payload: data is not valid JSON: unexpected end of JSON input",
			notThisFormat: true,
		},
		{
			name:          "not UTF-8",
			node:          Node{Name: "m", Data: []byte("{\"serviceEndpoint\":{\"host\":\"192.0.2.25\",\"port\":80},\"status\":\"ALIVE\xfe\"}")},
			wantErr:       "zkwatch: serverset payload: data is not valid JSON: not UTF-8",
			notThisFormat: true,
		},
		{
			name:          "thrift-encoded member, not JSON",
			node:          Node{Name: "member_0000000001", Data: []byte("\x0c\x00\x01\x0b\x00\x01\x00\x00\x00\x0a192.0.2.26")},
			wantErr:       "zkwatch: serverset payload: data is not a JSON object",
			notThisFormat: true,
		},
		{
			name:          "JSON without endpoints",
			node:          Node{Name: "m", Data: []byte(`{"status":"ALIVE"}`)},
			wantErr:       `zkwatch: serverset payload: JSON object has neither "serviceEndpoint" nor "additionalEndpoints"`,
			notThisFormat: true,
		},
	}
	runDecodeCases(t, "serverset", cases)
}
