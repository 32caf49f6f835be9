package zkwatch

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"testing"
	"unicode/utf8"
)

// referenceObject reads data the straightforward way, unmarshalling it into
// a map: what parseJSONObject must agree with, member for member.
func referenceObject(data []byte) (map[string]json.RawMessage, string) {
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0:
		return nil, "is empty"
	case data[0] != '{':
		return nil, "is not a JSON object"
	case !utf8.Valid(data):
		return nil, "is not valid JSON: not UTF-8"
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, "is not valid JSON: " + err.Error()
	}
	return obj, ""
}

// referenceFlatten is flatten over the reference map.
func referenceFlatten(ref map[string]json.RawMessage) map[string]string {
	var meta map[string]string
	for k, v := range ref {
		var s string
		switch {
		case k == "":
			continue
		case v[0] == '"':
			if json.Unmarshal(v, &s) != nil {
				continue
			}
		case v[0] == 't' || v[0] == 'f' || v[0] == '-' || v[0] >= '0' && v[0] <= '9':
			s = string(v)
		default:
			continue
		}
		if meta == nil {
			meta = map[string]string{}
		}
		meta[k] = s
	}
	return meta
}

// compareWithReference fails t where obj, parsed from the same text as
// ref, differs from it: keys, raw values, flattened metadata, strings, and
// nested objects down to depth levels.
func compareWithReference(t *testing.T, obj jsonObject, ref map[string]json.RawMessage, depth int) {
	t.Helper()
	if got, want := obj.keys(), slices.Sorted(maps.Keys(ref)); !slices.Equal(got, want) {
		t.Fatalf("keys = %q, want %q", got, want)
	}
	if got, want := obj.flatten(), referenceFlatten(ref); !reflect.DeepEqual(got, want) {
		t.Errorf("flatten = %v, want %v", got, want)
	}
	for k, want := range ref {
		got, ok := obj.get(k)
		if !ok || !bytes.Equal(got, want) {
			t.Errorf("get(%q) = %q, %v; want %q", k, got, ok, want)
		}
		s, ok, err := obj.str(k)
		var refStr string
		refErr := json.Unmarshal(want, &refStr)
		switch {
		case isJSONNull(want):
			if ok || err != nil {
				t.Errorf("str(%q) = %v, %v for null, want not ok and no error", k, ok, err)
			}
		case refErr != nil:
			if err == nil {
				t.Errorf("str(%q) = %q for %s, want an error", k, s, want)
			}
		case !ok || err != nil || s != refStr:
			t.Errorf("str(%q) = %q, %v, %v; want %q", k, s, ok, err, refStr)
		}
		if want[0] == '{' && depth > 0 {
			nested, ok, err := obj.object(k)
			var nestedRef map[string]json.RawMessage
			if !ok || err != nil || json.Unmarshal(want, &nestedRef) != nil {
				t.Fatalf("object(%q) = %v, %v for %s", k, ok, err, want)
			}
			compareWithReference(t, nested, nestedRef, depth-1)
		}
	}
}

func TestParseJSONObject(t *testing.T) {
	cases := []struct {
		name string
		data string
	}{
		{"curator payload", `{"name":"p","id":"1","address":"192.0.2.1","port":8080,"sslPort":null,"payload":{"@class":"x","metadata":{"instance_status":"UP","weight":"50","zone":"a"}},"registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"address","variable":true}]},"enabled":true}`},
		{"empty object", `{}`},
		{"space everywhere", " \n{ \"a\" :\t1 ,\r\n \"b\" : [ 1 , { \"c\" : \"}\" } ] , \"d\":{ } }\n "},
		{"repeated key, last wins", `{"a":"first","a":"second"}`},
		{"repeated key whose last value has no text", `{"a":"first","a":null,"b":1,"b":[2]}`},
		{"escaped key and value", `{"addr\u0065ss":"192.0.2.\u0031","q\"k":"v\\\"w","\/":"\/"}`},
		{"braces and quotes inside strings", `{"a":"{[\"]}","b":"\\","c":{"d":"}"}}`},
		{"numbers as written", `{"a":-1.5e3,"b":0,"c":12345678901234567890,"d":true,"e":false}`},
		{"empty key", `{"":"x","y":""}`},
		{"more members than the stack buffer", `{"k01":1,"k02":2,"k03":3,"k04":4,"k05":5,"k06":6,"k07":7,"k08":8,"k09":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k18":18}`},
		{"not UTF-8", "{\"a\":\"\xff\"}"},
		{"truncated", `{"a":"b`},
		{"trailing garbage", `{"a":1} x`},
		{"two objects", `{"a":1}{"b":2}`},
		{"an array", `[{"a":1}]`},
		{"empty", " \t\n"},
		{"trailing comma", `{"a":1,}`},
		{"single quotes", `{'a':1}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj, reason := parseJSONObject([]byte(tc.data))
			ref, wantReason := referenceObject([]byte(tc.data))
			if reason != wantReason {
				t.Fatalf("reason = %q, want %q", reason, wantReason)
			}
			if reason != "" {
				if obj != nil {
					t.Errorf("obj = %v alongside reason %q", obj, reason)
				}
				return
			}
			compareWithReference(t, obj, ref, 3)
		})
	}
}

// FuzzJSONObject checks parseJSONObject against encoding/json on arbitrary
// text: the same verdict and reason, the same members, the same metadata.
func FuzzJSONObject(f *testing.F) {
	f.Add([]byte(`{"name":"p","address":"192.0.2.1","port":8080,"payload":{"metadata":{"weight":"5"}}}`))
	f.Add([]byte(`{"a":"x","a":null,"\u0062":"\"}"}`))
	f.Add([]byte(` {"a" : [1, {"b": "]"}], "c": {}} `))
	f.Add([]byte(`{"a":1,}`))
	f.Add([]byte("{\"a\":\"\xc3\x28\"}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, reason := parseJSONObject(data)
		ref, wantReason := referenceObject(data)
		if reason != wantReason {
			t.Fatalf("reason = %q, want %q", reason, wantReason)
		}
		if reason == "" {
			compareWithReference(t, obj, ref, 4)
		}
	})
}
