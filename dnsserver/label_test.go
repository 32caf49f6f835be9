package dnsserver

import (
	"maps"
	"strings"
	"testing"
)

func TestLabel(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		want string
	}{
		{name: "already a label", raw: "payments", want: "payments"},
		{name: "upper case", raw: "PayMents", want: "payments"},
		{name: "underscore", raw: "pay_ments", want: "pay-ments"},
		{name: "dots and spaces", raw: "pay.ments v2", want: "pay-ments-v2"},
		{name: "runs collapse and ends trim", raw: "--a__b--", want: "a-b"},
		{name: "non-ASCII bytes", raw: "café-1", want: "caf-1"},
		{name: "digits only", raw: "0000000042", want: "0000000042"},
		{name: "cut at 63 bytes", raw: strings.Repeat("a", 70), want: strings.Repeat("a", 63)},
		{name: "cut leaves no trailing dash", raw: strings.Repeat("a", 62) + "_b", want: strings.Repeat("a", 62)},
		{name: "long run of dashes counts once", raw: "a" + strings.Repeat("_", 100) + "b", want: "a-b"},
		{name: "percent-escapes decoded", raw: "a%2Fb%41", want: "a-ba"},
		{name: "dubbo provider URL", raw: "dubbo%3A%2F%2F192.0.2.10%3A20880%2Fcom.example.DemoService%3Fanyhost%3Dtrue%26weight%3D50",
			want: "dubbo-192-0-2-10-20880-com-example-demoservice-anyhost-true-wei"},
		{name: "not an escape stays as written", raw: "a%zz%4", want: "a-zz-4"},
		{name: "escaped dash collapses", raw: "a%2D-b", want: "a-b"},
		{name: "nothing left hashes the raw name", raw: "!!!", want: "x2d53a722"},
		{name: "nothing left after decoding hashes the raw name", raw: "%2F%2F", want: "xbf66f4d3"}, // FNV-1a of "%2F%2F"
		{name: "empty hashes too", raw: "", want: "x811c9dc5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Label(tc.raw); got != tc.want {
				t.Errorf("Label(%q) = %q, want %q", tc.raw, got, tc.want)
			}
		})
	}
}

func TestResolveLabels(t *testing.T) {
	long := strings.Repeat("L", 70)
	cases := []struct {
		name  string
		names []string
		want  map[string]string
	}{
		{
			name:  "no collisions",
			names: []string{"a", "B", "c_d"},
			want:  map[string]string{"a": "a", "B": "b", "c_d": "c-d"},
		},
		{
			name:  "the name that is its own label keeps it",
			names: []string{"a-b", "a_b"},
			want:  map[string]string{"a-b": "a-b", "a_b": "a-b-1ba468"},
		},
		{
			name:  "both changed, both suffixed",
			names: []string{"A_B", "a.b"},
			want:  map[string]string{"A_B": "a-b-9d8fce", "a.b": "a-b-108bf5"},
		},
		{
			name:  "a name differing only in case does not take the label from its own",
			names: []string{"foo", "Foo", "FOO"},
			want:  map[string]string{"foo": "foo", "Foo": "foo-0c7e16", "FOO": "foo-eccd95"},
		},
		{
			name:  "none is its own label: the first in byte order of the same lowercase form keeps it",
			names: []string{"Foo", "FOO", "%66oo"},
			want:  map[string]string{"FOO": "foo", "Foo": "foo-0c7e16", "%66oo": "foo-f9584b"},
		},
		{
			name:  "suffix keeps the label within 63 bytes",
			names: []string{long + "_", long + "."},
			want: map[string]string{
				long + "_": strings.Repeat("l", 56) + "-12f54b",
				long + ".": strings.Repeat("l", 56) + "-23f566",
			},
		},
		{
			name:  "a suffixed label that is taken is hashed again",
			names: []string{"a-b", "a_b", "a-b-1ba468"},
			want:  map[string]string{"a-b": "a-b", "a-b-1ba468": "a-b-1ba468", "a_b": "a-b-ade9e3"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bases := make(map[string]string, len(tc.names))
			for _, n := range tc.names {
				bases[n] = Label(n)
			}
			got := resolveLabels(bases)
			if !maps.Equal(got, tc.want) {
				t.Errorf("resolveLabels(%q) = %v, want %v", tc.names, got, tc.want)
			}
		})
	}
}
