package registrar

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/zkdns/zkdns/zkwatch"
)

func TestPayloadsDecode(t *testing.T) {
	registered := time.UnixMilli(1700000000123).UTC()
	info := instanceInfo{
		name:     "payments",
		id:       "web-1",
		address:  "192.0.2.80",
		port:     8443,
		weight:   25,
		metadata: map[string]string{"zone": "b", "shard": "2"},
	}
	v6 := info
	v6.address, v6.weight, v6.metadata = "2001:db8::80", 0, nil
	tests := []struct {
		name        string
		format      string
		info        instanceInfo
		draining    bool
		nodeName    string
		wantHealthy bool
		wantWeight  uint16
		wantMeta    map[string]string
		wantTime    time.Time // zero: the znode's ctime
	}{
		{"curator", FormatCurator, info, false, "web-1", true, 25,
			map[string]string{"zone": "b", "shard": "2", "weight": "25"}, registered},
		{"curator draining", FormatCurator, info, true, "web-1", false, 25,
			map[string]string{"zone": "b", "shard": "2", "weight": "25"}, registered},
		{"curator ipv6 without metadata", FormatCurator, v6, false, "web-1", true, 100, nil, registered},
		{"serverset", FormatServerset, info, false, "member_0000000007", true, 100, map[string]string{"shard": "2"}, time.Time{}},
		{"serverset draining", FormatServerset, info, true, "member_0000000007", false, 100, map[string]string{"shard": "2"}, time.Time{}},
		{"serverset ipv6 without shard", FormatServerset, v6, false, "member_0000000008", true, 100, nil, time.Time{}},
		{"nerve", FormatNerve, info, false, "web-1", true, 25,
			map[string]string{"zone": "b", "shard": "2", "name": "payments"}, time.Time{}},
		{"nerve draining is not a thing", FormatNerve, info, true, "web-1", true, 25,
			map[string]string{"zone": "b", "shard": "2", "name": "payments"}, time.Time{}},
		{"hostport ipv6", FormatHostport, v6, false, "web-1", true, 100, nil, time.Time{}},
	}
	ctime := time.UnixMilli(1600000000000).UTC()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := encodePayload(tc.format, tc.info, registered, tc.draining)
			if err != nil {
				t.Fatal(err)
			}
			for _, format := range []string{tc.format, "auto"} {
				inst, err := zkwatch.Decode(format, "", zkwatch.Node{Name: tc.nodeName, Data: data, Ctime: ctime})
				if err != nil {
					t.Fatalf("zkwatch.Decode(%s): %v\n%s", format, err, data)
				}
				if inst.Format != tc.format || inst.Address != tc.info.address || int(inst.Port) != tc.info.port {
					t.Errorf("%s: decoded %s %s:%d, want %s %s:%d", format, inst.Format, inst.Address, inst.Port,
						tc.format, tc.info.address, tc.info.port)
				}
				if inst.Healthy != tc.wantHealthy || inst.Weight != tc.wantWeight {
					t.Errorf("%s: healthy=%v weight=%d, want healthy=%v weight=%d", format, inst.Healthy, inst.Weight, tc.wantHealthy, tc.wantWeight)
				}
				if fmt.Sprint(inst.Meta) != fmt.Sprint(tc.wantMeta) {
					t.Errorf("%s: metadata %v, want %v", format, inst.Meta, tc.wantMeta)
				}
				want := tc.wantTime
				if want.IsZero() {
					want = ctime
				}
				if !inst.Registered.Equal(want) {
					t.Errorf("%s: registered %v, want %v", format, inst.Registered, want)
				}
			}
		})
	}
}

// TestCuratorPayloadShape pins the keys Curator and Spring Cloud
// Zookeeper clients deserialise, which zkwatch does not all read.
func TestCuratorPayloadShape(t *testing.T) {
	data, err := encodePayload(FormatCurator, instanceInfo{name: "payments", id: "web-1", address: "192.0.2.81", port: 80},
		time.UnixMilli(1700000000000), false)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  string
		want any
	}{
		{"name", "payments"},
		{"id", "web-1"},
		{"address", "192.0.2.81"},
		{"port", 80.0},
		{"sslPort", nil},
		{"registrationTimeUTC", 1700000000000.0},
		{"serviceType", "DYNAMIC"},
		{"uriSpec", nil},
		{"enabled", true},
		{"payload", map[string]any{"@class": springInstanceClass, "id": "web-1", "name": "payments", "metadata": map[string]any{}}},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			v, ok := got[tc.key]
			if !ok {
				t.Fatalf("key %s missing from %s", tc.key, data)
			}
			if fmt.Sprint(v) != fmt.Sprint(tc.want) {
				t.Errorf("%s = %v, want %v", tc.key, v, tc.want)
			}
		})
	}
}
