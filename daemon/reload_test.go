package daemon

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkdns/zkdns/internal/testutil"
)

// TestRefusedReloadRetried saves a valid config whose admin address is
// taken by another socket: the reload is refused, logged once however
// often it is tried again, shown in the systemd status line, and applied
// as soon as the address is free, with no further save. A refused config
// that the file no longer holds is not tried again.
func TestRefusedReloadRetried(t *testing.T) {
	const retry = 50 * time.Millisecond
	notify := testutil.ListenNotify(t)
	t.Setenv("NOTIFY_SOCKET", notify.Path)
	reg := prometheus.NewRegistry()
	d := runAdminDaemon(t, Options{Registry: reg, ReloadRetry: retry})
	logs := d.logs
	write := func(content string) { saveConfig(t, d.path, content) }
	// hold takes a free port on 127.0.0.1, as another program would.
	hold := func() (net.Listener, string) {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln, ln.Addr().String()
	}

	taken, addr := hold()
	write(adminConfig(addr))
	testutil.Eventually(t, waitLimit, "the reload refused, then tried again", func() (bool, string) {
		return strings.Count(logs.String(), `msg="config still not reloaded"`) >= 3, logs.String()
	})
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d error lines for one refused reload tried again and again, want 1:\n%s", n, logs.String())
	}
	if _, failed := reloadCounts(t, reg); failed != 1 {
		t.Errorf("failed reloads = %v, want 1: retries of the same refusal are not new failures", failed)
	}
	taken.Close()
	testutil.Eventually(t, waitLimit, "the admin server on the freed address", func() (bool, string) {
		return slices.Contains(adminAddrs(logs), addr), logs.String()
	})
	if !strings.Contains(logs.String(), `msg="config reloaded: what refused it is fixed"`) {
		t.Errorf("the reload on retry was not logged:\n%s", logs.String())
	}
	if ok, _ := reloadCounts(t, reg); ok != 1 {
		t.Errorf("successful reloads = %v, want 1", ok)
	}
	const waiting = "the config saved last is not applied yet"
	testutil.Eventually(t, waitLimit, "a status line saying the reload waited, and none since it applied", func() (bool, string) {
		got := notify.StatusSince(0)
		said := slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, waiting) })
		return said && !strings.Contains(got[len(got)-1], waiting), fmt.Sprintf("%q", got)
	})

	// Refused again; then the file is saved with a config that does not
	// parse. The refused one is no longer what the file holds: it must not
	// be applied when its address comes free.
	taken, other := hold()
	write(adminConfig(other))
	testutil.Eventually(t, waitLimit, "the second refusal", func() (bool, string) {
		return strings.Count(logs.String(), "keeping the running config and trying it again until it applies") == 2, logs.String()
	})
	write("[zookeeper\n")
	testutil.Eventually(t, waitLimit, "the unparsable save refused", func() (bool, string) {
		_, failed := reloadCounts(t, reg)
		return failed == 3, logs.String()
	})
	taken.Close()
	time.Sleep(10 * retry)
	if slices.Contains(adminAddrs(logs), other) {
		t.Errorf("a refused config was applied after the file was saved with another:\n%s", logs.String())
	}
}
