package dnsserver

import (
	"fmt"
	"maps"
	"testing"
)

func TestIndexEditLeavesTheOldVersionAlone(t *testing.T) {
	base := newIndex[int]().edit()
	for i := range 1000 {
		base.set(fmt.Sprint("k", i), i)
	}
	old := base.done()
	want := maps.Collect(old.all())

	tests := []struct {
		name    string
		edit    func(e *indexEdit[int])
		wantLen int
		check   map[string]int // key → value in the new version; -1 for absent
	}{
		{
			name:    "set a new key",
			edit:    func(e *indexEdit[int]) { e.set("new", 7) },
			wantLen: 1001,
			check:   map[string]int{"new": 7, "k1": 1},
		},
		{
			name:    "overwrite a key",
			edit:    func(e *indexEdit[int]) { e.set("k5", 50) },
			wantLen: 1000,
			check:   map[string]int{"k5": 50, "k6": 6},
		},
		{
			name:    "delete a key",
			edit:    func(e *indexEdit[int]) { e.del("k9") },
			wantLen: 999,
			check:   map[string]int{"k9": -1, "k8": 8},
		},
		{
			name:    "delete a missing key",
			edit:    func(e *indexEdit[int]) { e.del("nope") },
			wantLen: 1000,
			check:   map[string]int{"nope": -1},
		},
		{
			name: "set then delete in one edit",
			edit: func(e *indexEdit[int]) {
				e.set("tmp", 1)
				e.del("tmp")
				e.del("k0")
				e.set("k0", 100)
			},
			wantLen: 1000,
			check:   map[string]int{"tmp": -1, "k0": 100},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := old.edit()
			tc.edit(e)
			next := e.done()
			if next.len() != tc.wantLen {
				t.Errorf("len() = %d, want %d", next.len(), tc.wantLen)
			}
			if got := len(maps.Collect(next.all())); got != tc.wantLen {
				t.Errorf("all() yields %d entries, want %d", got, tc.wantLen)
			}
			for k, v := range tc.check {
				got, ok := maps.Collect(next.all())[k]
				switch {
				case v == -1 && ok:
					t.Errorf("%q = %d, want absent", k, got)
				case v != -1 && (!ok || got != v || next.get(k) != v || next.getBytes([]byte(k)) != v):
					t.Errorf("%q = %d (get %d), want %d", k, got, next.get(k), v)
				}
			}
			if old.len() != 1000 || !maps.Equal(maps.Collect(old.all()), want) {
				t.Error("the edit changed the version it started from")
			}
		})
	}
}
