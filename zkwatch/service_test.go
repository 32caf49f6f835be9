package zkwatch

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
)

// TestServiceUpdate checks how a pass over a service's children changes
// what it publishes: instances sorted by name, undecodable children
// counted but not served, and a slice that was published never changed
// afterwards.
func TestServiceUpdate(t *testing.T) {
	valid := func(name string, port uint16) nodeRead {
		return nodeRead{name: name, mzxid: 1000 + int64(port), inst: Instance{ID: name, Format: formatHostport, Address: "192.0.2.1", Port: port}}
	}
	invalid := func(name string) nodeRead {
		return nodeRead{name: name, mzxid: 7, err: errors.New("zkwatch: hostport payload: data is not host:port")}
	}
	denied := func(name string) nodeRead { return nodeRead{name: name, err: errAccessDenied} }
	cases := []struct {
		name        string
		start       []nodeRead
		gone        []string
		reads       []nodeRead
		want        []string // served instances as name:port, in order
		wantInvalid int
		wantDenied  int
	}{
		{
			name:  "first listing is sorted by name",
			reads: []nodeRead{valid("c", 3), valid("a", 1), valid("b", 2)},
			want:  []string{"a:1", "b:2", "c:3"},
		},
		{
			name:        "an undecodable child is counted, not served",
			reads:       []nodeRead{valid("a", 1), invalid("b")},
			want:        []string{"a:1"},
			wantInvalid: 1,
		},
		{
			name:        "a child an ACL refuses is counted apart from undecodable ones",
			reads:       []nodeRead{valid("a", 1), invalid("b"), denied("c"), denied("d")},
			want:        []string{"a:1"},
			wantInvalid: 1,
			wantDenied:  2,
		},
		{
			name:  "a child whose ACL was lifted is served again",
			start: []nodeRead{denied("a"), valid("b", 2)},
			reads: []nodeRead{valid("a", 1)},
			want:  []string{"a:1", "b:2"},
		},
		{
			name:        "a child that becomes readable but does not decode moves to invalid",
			start:       []nodeRead{denied("a"), valid("b", 2)},
			reads:       []nodeRead{invalid("a")},
			want:        []string{"b:2"},
			wantInvalid: 1,
		},
		{
			name:  "departures keep the rest in order",
			start: []nodeRead{valid("a", 1), valid("b", 2), valid("c", 3)},
			gone:  []string{"b", "a"},
			want:  []string{"c:3"},
		},
		{
			name:  "a changed child replaces its old version",
			start: []nodeRead{valid("a", 1), valid("b", 2)},
			reads: []nodeRead{valid("a", 10)},
			want:  []string{"a:10", "b:2"},
		},
		{
			name:        "a child whose payload broke stops being served",
			start:       []nodeRead{valid("a", 1), valid("b", 2)},
			reads:       []nodeRead{invalid("a")},
			want:        []string{"b:2"},
			wantInvalid: 1,
		},
		{
			name:  "a child whose payload was fixed is served again",
			start: []nodeRead{invalid("a"), valid("b", 2)},
			reads: []nodeRead{valid("a", 1)},
			want:  []string{"a:1", "b:2"},
		},
		{
			name:  "an undecodable child that leaves is no longer counted",
			start: []nodeRead{invalid("a"), valid("b", 2)},
			gone:  []string{"a"},
			want:  []string{"b:2"},
		},
		{
			name:  "arrivals merge between the kept instances",
			start: []nodeRead{valid("b", 2), valid("d", 4), valid("f", 6)},
			gone:  []string{"d"},
			reads: []nodeRead{valid("g", 7), valid("a", 1), valid("c", 3), valid("e", 5)},
			want:  []string{"a:1", "b:2", "c:3", "e:5", "f:6", "g:7"},
		},
		{
			name:        "undecodable arrivals are skipped in the merge",
			start:       []nodeRead{valid("b", 2), valid("d", 4)},
			reads:       []nodeRead{invalid("e"), valid("c", 3), invalid("a")},
			want:        []string{"b:2", "c:3", "d:4"},
			wantInvalid: 2,
		},
		{
			name:  "everything leaves",
			start: []nodeRead{valid("a", 1), invalid("b"), denied("c")},
			gone:  []string{"a", "b", "c"},
			want:  []string{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &service{}
			s.update(nil, tc.start)
			before := s.state().Instances
			kept := slices.Clone(before)

			s.update(tc.gone, tc.reads)
			st := s.state()
			got := []string{}
			for _, in := range st.Instances {
				got = append(got, fmt.Sprintf("%s:%d", in.ID, in.Port))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("instances = %q, want %q", got, tc.want)
			}
			if st.Invalid != tc.wantInvalid || st.Denied != tc.wantDenied {
				t.Errorf("Invalid = %d, Denied = %d; want %d, %d", st.Invalid, st.Denied, tc.wantInvalid, tc.wantDenied)
			}
			if st.Instances == nil {
				t.Error("Instances is nil, want an empty slice")
			}
			if cap(st.Instances) != len(st.Instances) {
				t.Errorf("Instances has room for %d but holds %d; a sync keeps every slice, so none may be oversized",
					cap(st.Instances), len(st.Instances))
			}
			if !reflect.DeepEqual(before, kept) {
				t.Errorf("the slice published before the update changed: %v, was %v", before, kept)
			}
			// Every child read, served or not, keeps the version read,
			// whether it was read in this pass or an earlier one.
			want := map[string]int64{}
			for _, r := range tc.start {
				want[r.name] = r.mzxid
			}
			for _, name := range tc.gone {
				delete(want, name)
			}
			for _, r := range tc.reads {
				want[r.name] = r.mzxid
			}
			if got := maps.Collect(s.children()); !maps.Equal(got, want) {
				t.Errorf("children = %v, want %v", got, want)
			}
			if s.childCount() != len(want) {
				t.Errorf("childCount = %d, want %d", s.childCount(), len(want))
			}
			for name, mzxid := range want {
				if v, ok := s.version(name); !ok || v != mzxid {
					t.Errorf("version(%q) = %d, %v; want %d", name, v, ok, mzxid)
				}
			}
			for _, name := range tc.gone {
				if _, ok := s.version(name); ok {
					t.Errorf("version(%q) is still known, but the child left", name)
				}
			}
		})
	}
}
