package zkwatch

import (
	"testing"
	"time"
)

func TestDecodeCurator(t *testing.T) {
	springUUID := "585ddd0b-7d30-4225-afda-758f05b75c8f"
	cases := []decodeCase{
		{
			name: "spring cloud zookeeper with empty metadata",
			node: Node{Name: springUUID, Data: samplePayload(t, "curator/spring-cloud-zookeeper.json")},
			want: Instance{
				ID: springUUID, Format: "curator", Address: "192.0.2.106", Port: 8004,
				Weight: DefaultWeight, Healthy: true,
				Registered: time.UnixMilli(1698197224917),
			},
		},
		{
			name: "spring with hostname address, enabled true and status UP",
			node: Node{Name: "52d26182-d7aa-4704-b2a8-6a557f9e2db8", Data: samplePayload(t, "curator/spring-hostname-enabled.json")},
			want: Instance{
				ID: "52d26182-d7aa-4704-b2a8-6a557f9e2db8", Format: "curator",
				Address: "DESKTOP-P1EQ07J.mshome.net", Port: 8002, Weight: DefaultWeight, Healthy: true,
				Registered: time.UnixMilli(1680508528147),
				Meta:       map[string]string{"instance_status": "UP"},
			},
		},
		{
			name: "spring OUT_OF_SERVICE in any case is unhealthy",
			node: Node{Name: "0f0a2cbc", Data: samplePayload(t, "curator/spring-out-of-service.json")},
			want: Instance{
				ID: "0f0a2cbc", Format: "curator", Address: "192.0.2.11", Port: 8080,
				Weight: DefaultWeight, Healthy: false,
				Registered: time.UnixMilli(1700000000000),
				Meta:       map[string]string{"instance_status": "out_of_service", "zone": "eu-west-1a"},
			},
		},
		{
			name: "metadata: weight, plain numbers and booleans, nested values skipped, IPv6 canonical",
			node: Node{Name: "31efec0b", Data: samplePayload(t, "curator/spring-metadata.json")},
			want: Instance{
				ID: "31efec0b", Format: "curator", Address: "2001:db8::2a", Port: 8443,
				Weight: 250, Healthy: true,
				Registered: time.UnixMilli(1546512992955),
				Meta: map[string]string{
					"instance_status": "UP", "weight": "250", "version": "2.4.1",
					"git.commit.id.abbrev": "7cec61d", "canary": "false", "threads": "200",
				},
			},
		},
		{
			name:     "endpoint ssl selects sslPort",
			node:     Node{Name: "31efec0b", Data: samplePayload(t, "curator/spring-metadata.json")},
			endpoint: "ssl",
			want: Instance{
				ID: "31efec0b", Format: "curator", Address: "2001:db8::2a", Port: 9443,
				Weight: 250, Healthy: true,
				Registered: time.UnixMilli(1546512992955),
				Meta: map[string]string{
					"instance_status": "UP", "weight": "250", "version": "2.4.1",
					"git.commit.id.abbrev": "7cec61d", "canary": "false", "threads": "200",
				},
			},
		},
		{
			name: "curator enabled false is unhealthy; null payload; trailing dot stripped",
			node: Node{Name: "b3c5e1f0", Data: samplePayload(t, "curator/curator-disabled.json")},
			want: Instance{
				ID: "b3c5e1f0", Format: "curator", Address: "search-3.example.net", Port: 9200,
				Weight: DefaultWeight, Healthy: false,
				Registered: time.UnixMilli(1712000000000),
			},
		},
		{
			name: "non-object payload is ignored; zero registrationTimeUTC falls back to ctime",
			node: Node{Name: "5d1b7c2e", Data: samplePayload(t, "curator/curator-string-payload.json")},
			want: Instance{
				ID: "5d1b7c2e", Format: "curator", Address: "198.51.100.7", Port: 7000,
				Weight: DefaultWeight, Healthy: true, Registered: decodeTestCtime(),
			},
		},
		{
			name: "missing registrationTimeUTC falls back to ctime",
			node: Node{Name: "a", Data: []byte(`{"address":"192.0.2.1","port":80,"serviceType":"DYNAMIC"}`)},
			want: Instance{
				ID: "a", Format: "curator", Address: "192.0.2.1", Port: 80,
				Weight: DefaultWeight, Healthy: true, Registered: decodeTestCtime(),
			},
		},
		{
			name: "numeric weight clamped; non-numeric weight ignored elsewhere",
			node: Node{Name: "a", Data: []byte(`{"address":"192.0.2.1","port":80,"payload":{"metadata":{"weight":70000}}}`)},
			want: Instance{
				ID: "a", Format: "curator", Address: "192.0.2.1", Port: 80,
				Weight: 65535, Healthy: true, Registered: decodeTestCtime(),
				Meta: map[string]string{"weight": "70000"},
			},
		},
		{
			name: "non-numeric weight gives the default",
			node: Node{Name: "a", Data: []byte(`{"address":"192.0.2.1","port":80,"payload":{"metadata":{"weight":"heavy"}}}`)},
			want: Instance{
				ID: "a", Format: "curator", Address: "192.0.2.1", Port: 80,
				Weight: DefaultWeight, Healthy: true, Registered: decodeTestCtime(),
				Meta: map[string]string{"weight": "heavy"},
			},
		},
		{
			name: "status DOWN is not OUT_OF_SERVICE",
			node: Node{Name: "a", Data: []byte(`{"address":"192.0.2.1","port":80,"payload":{"metadata":{"instance_status":"DOWN"}}}`)},
			want: Instance{
				ID: "a", Format: "curator", Address: "192.0.2.1", Port: 80,
				Weight: DefaultWeight, Healthy: true, Registered: decodeTestCtime(),
				Meta: map[string]string{"instance_status": "DOWN"},
			},
		},
		{
			name:    "port out of range",
			node:    Node{Name: "a", Data: []byte(`{"address":"192.0.2.1","port":70000,"serviceType":"DYNAMIC"}`)},
			wantErr: "zkwatch: curator payload: port 70000 out of range (want 1-65535)",
		},
		{
			name:    "port zero",
			node:    Node{Name: "a", Data: []byte(`{"address":"192.0.2.1","port":0,"serviceType":"DYNAMIC"}`)},
			wantErr: "zkwatch: curator payload: port 0 out of range",
		},
		{
			name:    "port not an integer",
			node:    Node{Name: "a", Data: []byte(`{"address":"192.0.2.1","port":80.5,"serviceType":"DYNAMIC"}`)},
			wantErr: `zkwatch: curator payload: port "80.5" is not an integer`,
		},
		{
			name:    "port of the wrong type",
			node:    Node{Name: "a", Data: []byte(`{"address":"192.0.2.1","port":true,"serviceType":"DYNAMIC"}`)},
			wantErr: "zkwatch: curator payload: port is a boolean, want a number",
		},
		{
			name:    "port missing",
			node:    Node{Name: "a", Data: []byte(`{"address":"192.0.2.1","serviceType":"DYNAMIC"}`)},
			wantErr: `zkwatch: curator payload: port is missing or null, so endpoint "" has no port`,
		},
		{
			name:     "ssl endpoint without sslPort",
			node:     Node{Name: springUUID, Data: samplePayload(t, "curator/spring-cloud-zookeeper.json")},
			endpoint: "ssl",
			wantErr:  `zkwatch: curator payload: sslPort is missing or null, so endpoint "ssl" has no port`,
		},
		{
			name:     "unknown endpoint",
			node:     Node{Name: springUUID, Data: samplePayload(t, "curator/spring-cloud-zookeeper.json")},
			endpoint: "http",
			wantErr:  `zkwatch: curator payload: endpoint "http" does not exist`,
		},
		{
			name:    "bad address",
			node:    Node{Name: "a", Data: []byte(`{"address":"my_laptop","port":80,"serviceType":"DYNAMIC"}`)},
			wantErr: `zkwatch: curator payload: address "my_laptop" is neither an IP address nor a valid hostname`,
		},
		{
			name:    "empty address",
			node:    Node{Name: "a", Data: []byte(`{"address":"","port":80,"serviceType":"DYNAMIC"}`)},
			wantErr: "zkwatch: curator payload: address is empty",
		},
		{
			name:    "null address",
			node:    Node{Name: "a", Data: []byte(`{"address":null,"port":80,"serviceType":"DYNAMIC"}`)},
			wantErr: "zkwatch: curator payload: address is empty",
		},
		{
			name:    "address of the wrong type",
			node:    Node{Name: "a", Data: []byte(`{"address":["192.0.2.1"],"port":80,"serviceType":"DYNAMIC"}`)},
			wantErr: "zkwatch: curator payload: address is an array, want a string",
		},
		{
			name:    "unspecified address",
			node:    Node{Name: "a", Data: []byte(`{"address":"0.0.0.0","port":80,"serviceType":"DYNAMIC"}`)},
			wantErr: "zkwatch: curator payload: address 0.0.0.0 is unspecified",
		},
		{
			name:    "registrationTimeUTC not an integer",
			node:    Node{Name: "a", Data: []byte(`{"address":"192.0.2.1","port":80,"registrationTimeUTC":"yesterday"}`)},
			wantErr: `zkwatch: curator payload: registrationTimeUTC "yesterday" is not an integer`,
		},
		{
			name:          "truncated JSON",
			node:          Node{Name: "a", Data: samplePayload(t, "curator/spring-cloud-zookeeper.json")[:120]},
			wantErr:       "zkwatch: curator payload: data is not valid JSON: unexpected end of JSON input",
			notThisFormat: true,
		},
		{
			name:          "not UTF-8",
			node:          Node{Name: "a", Data: []byte("{\"address\":\"192.0.2.1\",\"port\":80,\"serviceType\":\"DYN\xffAMIC\"}")},
			wantErr:       "zkwatch: curator payload: data is not valid JSON: not UTF-8",
			notThisFormat: true,
		},
		{
			name:          "empty data",
			node:          Node{Name: "a"},
			wantErr:       "zkwatch: curator payload: data is empty",
			notThisFormat: true,
		},
		{
			name:          "JSON array",
			node:          Node{Name: "a", Data: []byte(`[{"address":"192.0.2.1"}]`)},
			wantErr:       "zkwatch: curator payload: data is not a JSON object",
			notThisFormat: true,
		},
		{
			name:          "object without address",
			node:          Node{Name: "a", Data: samplePayload(t, "serverset/finagle.json")},
			wantErr:       `zkwatch: curator payload: JSON object has no "address"`,
			notThisFormat: true,
		},
		{
			name:          "address without any curator key",
			node:          Node{Name: "a", Data: []byte(`{"address":"192.0.2.1","port":80}`)},
			wantErr:       `zkwatch: curator payload: JSON object has "address" but none of registrationTimeUTC`,
			notThisFormat: true,
		},
	}
	runDecodeCases(t, "curator", cases)
}
