package daemon

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zkdns/zkdns/conf"
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
	// Logged once the whole reload is applied, after the admin server
	// that says it listens.
	testutil.Eventually(t, waitLimit, "the reload on retry logged", func() (bool, string) {
		return strings.Contains(logs.String(), `msg="config reloaded: what refused it is fixed"`), logs.String()
	})
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

var dnsListening = regexp.MustCompile(`msg="dns listening" component=dnsserver addr=(\S+)`)

// TestReloadNeedingRestart saves configs that move an address onto a port
// zkdns itself holds at another address: a reload binds the new sockets
// before it lets the old ones go, so these can never apply while zkdns
// runs. Each is refused once with the reason and that it needs a
// restart, shown in the status line, and not tried again; the running
// addresses keep serving.
func TestReloadNeedingRestart(t *testing.T) {
	const retry = 20 * time.Millisecond
	cases := []struct {
		name string
		// config is the config to save, given the running DNS and
		// admin addresses.
		config func(dns, admin string) string
		want   string
	}{
		{
			name:   "DNS and admin ports swapped",
			config: func(dns, admin string) string { return listenConfig(admin, dns) },
			want:   "for its admin API at ",
		},
		{
			name: "admin moved to the wildcard address on its port",
			config: func(dns, admin string) string {
				_, port, _ := net.SplitHostPort(admin)
				return adminConfig(":" + port)
			},
			want: "for its admin API at ",
		},
		{
			name: "DNS moved to the wildcard address on its port",
			config: func(dns, admin string) string {
				_, port, _ := net.SplitHostPort(dns)
				return listenConfig("0.0.0.0:"+port, admin)
			},
			want: "moving between a wildcard and a specific address on one port needs a restart",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			notify := testutil.ListenNotify(t)
			t.Setenv("NOTIFY_SOCKET", notify.Path)
			reg := prometheus.NewRegistry()
			d := runAdminDaemon(t, Options{Registry: reg, ReloadRetry: retry})
			admin := adminAddrs(d.logs)[0]
			dns := dnsListening.FindStringSubmatch(d.logs.String())[1]

			saveConfig(t, d.path, tc.config(dns, admin))
			testutil.Eventually(t, waitLimit, "the reload refused", func() (bool, string) {
				_, failed := reloadCounts(t, reg)
				return failed == 1, d.logs.String()
			})
			logs := d.logs.String()
			if !strings.Contains(logs, `msg="config not reloaded: it needs a restart; keeping the running config"`) || !strings.Contains(logs, tc.want) {
				t.Errorf("the refusal does not say it needs a restart, %q:\n%s", tc.want, logs)
			}
			testutil.Eventually(t, waitLimit, "a status line saying the config needs a restart", func() (bool, string) {
				got := notify.StatusSince(0)
				return slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "needs a restart") }), fmt.Sprintf("%q", got)
			})
			time.Sleep(10 * retry)
			if logs := d.logs.String(); strings.Contains(logs, "config still not reloaded") {
				t.Errorf("a config that needs a restart was tried again:\n%s", logs)
			}
			if _, failed := reloadCounts(t, reg); failed != 1 {
				t.Errorf("failed reloads = %v, want 1", failed)
			}
			if resp, err := http.Get("http://" + admin + "/healthz"); err != nil {
				t.Errorf("the running admin API after the refused reload: %v", err)
			} else {
				resp.Body.Close()
			}
		})
	}
}

// listenConfig is adminConfig with DNS on dns too.
func listenConfig(dns, admin string) string {
	return strings.Replace(adminConfig(admin), `listen = ["127.0.0.1:0"]`, fmt.Sprintf("listen = [%q]", dns), 1)
}

// TestStartAdminOnOwnDNSPort starts zkdns with an admin address that
// zkdns check cannot tell from a DNS address, a host name resolving to
// one: the start fails and says the port is zkdns's own, not some other
// program's.
func TestStartAdminOnOwnDNSPort(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dns := free.Addr().String()
	_, port, _ := net.SplitHostPort(dns)
	free.Close()
	path := filepath.Join(t.TempDir(), "zkdns.toml")
	saveConfig(t, path, listenConfig(dns, "localhost:"+port))
	cfg, err := conf.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	err = Run(ctx, Options{Config: cfg})
	if want := "zkdns itself has just bound this port for DNS at " + dns; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Run = %v, want an error saying %q", err, want)
	}
}

var configReloaded = regexp.MustCompile(`msg="config reloaded" changed=(\[[^]]*\]|"\[[^]]*\]")`)

// TestReloadLogsWhatChanged saves one change after another, each of a
// kind applied in its own way (or at the next restart), and wants each
// reload's log line to name exactly what the save changed.
func TestReloadLogsWhatChanged(t *testing.T) {
	d := runAdminDaemon(t, Options{})
	settings := map[string]string{}
	config := func() string {
		var dns, log, service string
		for _, k := range slices.Sorted(maps.Keys(settings)) {
			table, key, _ := strings.Cut(k, ".")
			line := key + " = " + settings[k] + "\n"
			switch table {
			case "dns":
				dns += line
			case "log":
				log += line
			case "service":
				service += line
			}
		}
		c := strings.Replace(adminConfig("127.0.0.1:0"), "[admin]\n", dns+"[admin]\n", 1) + service
		if log != "" {
			c += "[log]\n" + log
		}
		return c
	}
	steps := []struct {
		key, value string
		want       string
	}{
		{"log.level", `"debug"`, "[log.level]"},
		{"log.format", `"json"`, "[log.format]"},
		{"dns.ttl", `"7s"`, "[dns.ttl]"},
		{"dns.allow", `["127.0.0.0/8"]`, "[dns.allow]"},
		{"dns.upstreams", `["192.0.2.53"]`, "[dns.upstreams]"},
		{"service.warmup", `"30s"`, "[service]"},
		{"log.level", `"info"`, "[log.level]"},
	}
	for i, step := range steps {
		settings[step.key] = step.value
		saveConfig(t, d.path, config())
		var got [][]string
		testutil.Eventually(t, waitLimit, fmt.Sprintf("reload %d, of %s", i+1, step.key), func() (bool, string) {
			got = configReloaded.FindAllStringSubmatch(d.logs.String(), -1)
			return len(got) == i+1, d.logs.String()
		})
		if changed := strings.Trim(got[i][1], `"`); changed != step.want {
			t.Errorf("setting %s = %s logged changed=%s, want %s", step.key, step.value, changed, step.want)
		}
	}
}

// TestSighupReadsThroughTheWatcher: a SIGHUP while the file briefly holds
// other content (an edit undone within the watcher's debounce) applies
// that content, and the save back must then be applied too. Were the file
// read beside the watcher, the watcher would find the bytes it read last
// and emit nothing, leaving the daemon on a config the file no longer
// holds.
func TestSighupReadsThroughTheWatcher(t *testing.T) {
	reload := make(chan struct{})
	d := runAdminDaemon(t, Options{Reload: reload})
	orig := adminConfig("127.0.0.1:0")
	// The watcher's first read, a debounce after its start, finds the
	// config loaded at start and emits nothing.
	testutil.Eventually(t, waitLimit, "the watcher's first read", func() (bool, string) {
		return strings.Contains(d.logs.String(), `msg="config file holds the config loaded at start"`), d.logs.String()
	})
	// The services a reload adds are logged one by one only once the first
	// sync is served; one that comes before it is part of that sync, which
	// is logged as a whole. A slow ZooKeeper handshake must not make the
	// test wait for a line that will never come.
	testutil.Eventually(t, waitLimit, "the first sync", func() (bool, string) {
		return strings.Contains(d.logs.String(), `msg="ready: first full sync from ZooKeeper done`), d.logs.String()
	})
	saveConfig(t, d.path, strings.Replace(orig, `name = "absent"`, `name = "transient"`, 1))
	reload <- struct{}{}
	testutil.Eventually(t, waitLimit, "the SIGHUP's reload", func() (bool, string) {
		return strings.Contains(d.logs.String(), `msg="service added" service=transient`), d.logs.String()
	})
	saveConfig(t, d.path, orig)
	testutil.Eventually(t, waitLimit, "the save back applied", func() (bool, string) {
		return strings.Contains(d.logs.String(), `msg="service added" service=absent`), d.logs.String()
	})
}
