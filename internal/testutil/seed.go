package testutil

import "time"

// SeededWalk resolves the seed and the length of a seeded model test's
// random walk from its flags. A seed of 0 means defSeed: the fixed walk
// that make test runs, so that a failure there points at a change, not
// at the draw. A seed of -1 is drawn from the clock, to explore. Steps of
// 0 or less mean defSteps.
func SeededWalk(seed, defSeed int64, steps, defSteps int) (int64, int) {
	switch seed {
	case 0:
		seed = defSeed
	case -1:
		seed = time.Now().UnixNano()
	}
	if steps <= 0 {
		steps = defSteps
	}
	return seed, steps
}
