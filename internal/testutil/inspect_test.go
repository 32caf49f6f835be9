package testutil

import (
	"strings"
	"testing"
)

// startParked starts a goroutine that runs parkUntil until release is
// closed, and returns: the goroutine's stack then names startParked only
// on its "created by" line.
func startParked(release <-chan struct{}) {
	started := make(chan struct{})
	go parkUntil(started, release)
	<-started
}

func parkUntil(started chan<- struct{}, release <-chan struct{}) {
	close(started)
	<-release
}

func TestGoroutinesMatchesFramesNotCreators(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	startParked(release)
	tests := []struct {
		name string
		mark string
		want bool
	}{
		{name: "the function it runs", mark: "testutil.parkUntil", want: true},
		{name: "the function that started it and returned", mark: "testutil.startParked", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Goroutines(tc.mark)
			if (len(got) > 0) != tc.want {
				t.Errorf("Goroutines(%q) = %d stacks, want found %v:\n%s", tc.mark, len(got), tc.want, strings.Join(got, "\n\n"))
			}
		})
	}
}

func TestLogTailKeepsTheLastLines(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{name: "fewer than it keeps", writes: []string{"a\n", "b\n"}, want: "a\nb"},
		{name: "as many as it keeps", writes: []string{"a\n", "b\n", "c\n"}, want: "a\nb\nc"},
		{name: "more, oldest first", writes: []string{"a\n", "b\n", "c\n", "d\n", "e\n"}, want: "c\nd\ne"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLogTail(3)
			for _, w := range tc.writes {
				if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := l.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}
