package testutil

import (
	"testing"
	"time"
)

// Eventually polls cond until it holds, failing the test after limit with
// what was awaited and cond's account of the last try. Tests wait on
// behaviour this way, never on a fixed sleep.
func Eventually(t testing.TB, limit time.Duration, what string, cond func() (ok bool, last string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", limit, what, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
