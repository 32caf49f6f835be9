package zkwatch

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunOn checks that every call is made once, on no more goroutines at
// once than asked for, on the caller's own with one worker, and that the
// error returned is one a call returned.
func TestRunOn(t *testing.T) {
	tests := []struct {
		n, workers  int
		failing     map[int]bool
		wantInline  bool // every call on the caller's goroutine
		wantMaxBusy int  // at most this many calls at once
	}{
		{n: 0, workers: 4, wantInline: true},
		{n: 1, workers: 4, wantInline: true, wantMaxBusy: 1},
		{n: 50, workers: 1, wantInline: true, wantMaxBusy: 1},
		{n: 50, workers: 0, wantInline: true, wantMaxBusy: 1},
		{n: 3, workers: 8, wantMaxBusy: 3},
		{n: 200, workers: 4, wantMaxBusy: 4},
		{n: 200, workers: 4, failing: map[int]bool{7: true, 150: true}, wantMaxBusy: 4},
		{n: 20, workers: 1, failing: map[int]bool{3: true, 4: true}, wantInline: true, wantMaxBusy: 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d calls on %d workers, %d failing", tt.n, tt.workers, len(tt.failing)), func(t *testing.T) {
			caller := goroutineID()
			calls := make([]atomic.Int32, tt.n)
			var busy, maxBusy atomic.Int32
			var elsewhere atomic.Bool
			release := make(chan struct{})
			// Hold the first calls until as many as may run at once have
			// started, so that a pool wider than asked for would show.
			var held atomic.Int32
			err := runOn(tt.n, tt.workers, func(i int) error {
				if goroutineID() != caller {
					elsewhere.Store(true)
				}
				b := busy.Add(1)
				for {
					m := maxBusy.Load()
					if b <= m || maxBusy.CompareAndSwap(m, b) {
						break
					}
				}
				if !tt.wantInline && int(held.Add(1)) <= tt.wantMaxBusy {
					if int(held.Load()) == tt.wantMaxBusy {
						close(release)
					}
					select {
					case <-release:
					case <-time.After(5 * time.Second): // fewer at once than asked for
					}
				}
				calls[i].Add(1)
				busy.Add(-1)
				if tt.failing[i] {
					return fmt.Errorf("call %d: %w", i, errFailed)
				}
				return nil
			})
			for i := range calls {
				if c := calls[i].Load(); c != 1 {
					t.Errorf("call %d made %d times, want once", i, c)
				}
			}
			if got := int(maxBusy.Load()); got > tt.wantMaxBusy {
				t.Errorf("%d calls at once, want at most %d", got, tt.wantMaxBusy)
			}
			if !tt.wantInline && int(maxBusy.Load()) != tt.wantMaxBusy {
				t.Errorf("%d calls at once, want %d", maxBusy.Load(), tt.wantMaxBusy)
			}
			if tt.wantInline && elsewhere.Load() {
				t.Error("calls ran off the caller's goroutine")
			}
			switch {
			case len(tt.failing) == 0 && err != nil:
				t.Errorf("runOn = %v, want nil", err)
			case len(tt.failing) > 0 && !errors.Is(err, errFailed):
				t.Errorf("runOn = %v, want a call's error", err)
			}
		})
	}
}

var errFailed = errors.New("failed")

// goroutineID is the running goroutine's number, from the first line of
// its stack trace ("goroutine 7 [running]:"): the runtime offers no other
// way to tell goroutines apart.
func goroutineID() string {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	id, _, _ := strings.Cut(strings.TrimPrefix(string(buf[:n]), "goroutine "), " ")
	return id
}
