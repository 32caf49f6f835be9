package daemon

import (
	"strings"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
)

// notifier speaks the sd_notify protocol to systemd when NOTIFY_SOCKET is
// set, and does nothing otherwise. Its zero value is ready to use.
type notifier struct{}

// notify sends the given state assignments ("READY=1", "STATUS=…") as one
// datagram. A failure is not worth stopping for: systemd will notice a
// daemon that never reports ready, or stops pinging its watchdog.
func (notifier) notify(states ...string) {
	_, _ = sddaemon.SdNotify(false, strings.Join(states, "\n"))
}

// watchdogInterval is WATCHDOG_USEC when systemd asked for pings, else 0.
func (notifier) watchdogInterval() time.Duration {
	d, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return d
}
