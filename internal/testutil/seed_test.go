package testutil

import "testing"

func TestSeededWalk(t *testing.T) {
	cases := []struct {
		name      string
		seed      int64
		steps     int
		wantSeed  int64 // 0: drawn, anything but 0, -1 and the default
		wantSteps int
	}{
		{name: "defaults", seed: 0, steps: 0, wantSeed: 7, wantSteps: 25},
		{name: "given", seed: 42, steps: 3, wantSeed: 42, wantSteps: 3},
		{name: "drawn seed, negative steps", seed: -1, steps: -5, wantSeed: 0, wantSteps: 25},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seed, steps := SeededWalk(tc.seed, 7, tc.steps, 25)
			if steps != tc.wantSteps {
				t.Errorf("steps %d, want %d", steps, tc.wantSteps)
			}
			switch {
			case tc.wantSeed != 0 && seed != tc.wantSeed:
				t.Errorf("seed %d, want %d", seed, tc.wantSeed)
			case tc.wantSeed == 0 && (seed == 0 || seed == -1 || seed == 7):
				t.Errorf("seed %d, want one drawn from the clock", seed)
			}
		})
	}
}
