package main

import (
	"fmt"
	"slices"
	"testing"
)

func TestChurnModel(t *testing.T) {
	d := dataset{root: "/bench", services: 1000, instances: 5}
	tests := []struct {
		name     string
		services int
		changes  int
		// wantKinds counts the kinds of change made.
		wantKinds map[churnKind]int
		// service and its expected SRV set after the changes.
		service int
		want    []string
	}{
		{
			name: "no changes leave the data set's own instances", services: 3, changes: 0,
			wantKinds: map[churnKind]int{},
			service:   2,
			want: []string{"inst0.svc2.local.:8080", "inst1.svc2.local.:8080", "inst2.svc2.local.:8080",
				"inst3.svc2.local.:8080", "inst4.svc2.local.:8080"},
		},
		{
			name: "round-robin: a data change, then an extra instance", services: 3, changes: 6,
			wantKinds: map[churnKind]int{churnSetData: 3, churnCreate: 3},
			service:   1,
			want: []string{"inst0.svc1.local.:10000", "inst1.svc1.local.:8080", "inst2.svc1.local.:8080",
				"inst3.svc1.local.:8080", "inst4.svc1.local.:8080", "inst5.svc1.local.:8080"},
		},
		{
			name: "half data changes, a quarter each create and delete", services: 2, changes: 400,
			wantKinds: map[churnKind]int{churnSetData: 200, churnCreate: 100, churnDelete: 100},
			service:   0,
			// 200 changes to svc0: 100 moves over 5 instances, the last
			// at change 198; 100 toggles over 5 extras, 20 each: all off.
			want: []string{"inst0.svc0.local.:10190", "inst1.svc0.local.:10192", "inst2.svc0.local.:10194",
				"inst3.svc0.local.:10196", "inst4.svc0.local.:10198"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newChurnModel(d, tt.services)
			kinds := map[churnKind]int{}
			present := map[string]bool{}
			for seq := range tt.changes {
				op := m.next(seq)
				kinds[op.kind]++
				if op.service != seq%tt.services {
					t.Fatalf("change %d went to svc%d, want round-robin svc%d", seq, op.service, seq%tt.services)
				}
				key := fmt.Sprintf("%d/%d", op.service, op.inst)
				switch op.kind {
				case churnCreate:
					if present[key] || op.inst < d.instances {
						t.Fatalf("change %d creates %s, which exists", seq, key)
					}
					present[key] = true
				case churnDelete:
					if !present[key] {
						t.Fatalf("change %d deletes %s, which does not exist", seq, key)
					}
					delete(present, key)
				case churnSetData:
					if op.inst >= d.instances || op.port == basePort {
						t.Fatalf("change %d moves %s to port %d", seq, key, op.port)
					}
				}
			}
			if len(kinds) != len(tt.wantKinds) {
				t.Errorf("kinds = %v, want %v", kinds, tt.wantKinds)
			}
			for k, n := range tt.wantKinds {
				if kinds[k] != n {
					t.Errorf("%d %s changes, want %d", kinds[k], k, n)
				}
			}
			if got := m.expected(tt.service); !slices.Equal(got, tt.want) {
				t.Errorf("expected(%d) = %v\nwant %v", tt.service, got, tt.want)
			}
		})
	}
}
