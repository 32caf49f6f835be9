package registrar

import (
	"encoding/json"
	"fmt"
	"strings"
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
			map[string]string{"zone": "b", "shard": "2", "name": "web-1"}, time.Time{}},
		{"nerve draining is not a thing", FormatNerve, info, true, "web-1", true, 25,
			map[string]string{"zone": "b", "shard": "2", "name": "web-1"}, time.Time{}},
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

// TestWarnUnwritable checks which options each format says it cannot
// write: no place at all, a serverset shard that is not a number, and a
// nerve name label, which nerve's own name field (the instance ID) hides.
func TestWarnUnwritable(t *testing.T) {
	tests := []struct {
		format   string
		weight   int
		meta     map[string]string
		wantWarn string // "" for no warning
	}{
		{FormatCurator, 5, map[string]string{"name": "x", "shard": "a"}, ""},
		{FormatServerset, 0, map[string]string{"shard": "3"}, ""},
		{FormatServerset, 5, map[string]string{"shard": "east", "zone": "a"}, `ignored="metadata shard, metadata zone, weight"`},
		{FormatNerve, 5, map[string]string{"zone": "a"}, ""},
		{FormatNerve, 5, map[string]string{"name": "mine", "zone": "a"}, `ignored="metadata name"`},
		{FormatHostport, 5, map[string]string{"zone": "a"}, `ignored="metadata zone, weight"`},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.format, tc.weight, tc.meta), func(t *testing.T) {
			logs := &logBuffer{}
			r, err := New(Options{Servers: []string{"127.0.0.1:2181"}, Path: "/svc", Address: "192.0.2.1", Port: 80,
				Format: tc.format, Weight: tc.weight, Metadata: tc.meta, Logger: logs.logger()})
			if err != nil {
				t.Fatal(err)
			}
			r.warnUnwritable()
			got := logs.String()
			if warned := strings.Contains(got, "no place for some options"); warned != (tc.wantWarn != "") || !strings.Contains(got, tc.wantWarn) {
				t.Errorf("logged %q, want a warning with %q (none if empty)", got, tc.wantWarn)
			}
		})
	}
}
