package testutil

import (
	"net"
	"slices"
	"testing"
	"time"
)

// TestNotifySocket sends sd_notify datagrams as zkdns does and reads them
// back: every line counted, STATUS= values in order from a mark.
func TestNotifySocket(t *testing.T) {
	n := ListenNotify(t)
	conn, err := net.Dial("unixgram", n.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, msg := range []string{"READY=1\nSTATUS=serving", "STATUS=disconnected"} {
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	Eventually(t, 5*time.Second, "both datagrams", func() (bool, string) {
		return n.Count() == 3, ""
	})
	if got, want := n.StatusSince(0), []string{"serving", "disconnected"}; !slices.Equal(got, want) {
		t.Errorf("StatusSince(0) = %q, want %q", got, want)
	}
	if got, want := n.StatusSince(2), []string{"disconnected"}; !slices.Equal(got, want) {
		t.Errorf("StatusSince(2) = %q, want %q", got, want)
	}
	if got := n.StatusSince(10); len(got) != 0 {
		t.Errorf("StatusSince past the end = %q, want none", got)
	}
}
