package main

// End-to-end tests of running zkdns for real: live config reloads by every
// way a file gets saved, SIGHUP, the sd_notify protocol through a real
// NOTIFY_SOCKET, the admin API, zkdns status, and moving to a new ensemble
// or new addresses without a restart.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/zkdns/zkdns/daemon"
	"github.com/zkdns/zkdns/internal/testutil"
)

// opsConfig is a config serving the given services, each watching
// base/<name> with hostport payloads; its admin API is on a free port.
func opsConfig(zkAddr, base string, services ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[zookeeper]\nservers = [%q]\nsession_timeout = \"5s\"\n[dns]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n", zkAddr)
	for _, s := range services {
		fmt.Fprintf(&b, "[[service]]\nname = %q\npath = %q\nformat = \"hostport\"\n", s, base+"/"+s)
	}
	return b.String()
}

// resolves reports whether name has an A answer right now.
func resolves(t *testing.T, server, name string) (bool, string) {
	r := query(t, server, name, dns.TypeA, false)
	return r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0, r.String()
}

func TestLiveReloadSaveStyles(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn)
	testutil.CreateZnode(t, conn, base+"/alpha/a1", "192.0.2.1:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/beta/b1", "192.0.2.2:80", zk.FlagEphemeral)
	before := opsConfig(zkServer.Addr(), base, "alpha")
	after := opsConfig(zkServer.Addr(), base, "alpha", "beta")

	styles := []struct {
		name string
		// setup lays out the config (returning the path zkdns is given);
		// save replaces its content the way the style does.
		setup func(t *testing.T, dir string) string
		save  func(t *testing.T, path string)
	}{
		{"in-place write", plainFile(before), func(t *testing.T, path string) {
			writeFile(t, path, after)
		}},
		{"editor rename-save", plainFile(before), func(t *testing.T, path string) {
			tmp := path + ".swp"
			writeFile(t, tmp, after)
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"sed -i", plainFile(before), func(t *testing.T, path string) {
			// Append the beta service with sed's own rename-save.
			script := `$a [[service]]\nname = "beta"\npath = "` + base + `/beta"\nformat = "hostport"`
			if out, err := exec.Command("sed", "-i", script, path).CombinedOutput(); err != nil {
				t.Fatalf("sed -i: %v\n%s", err, out)
			}
		}},
		{"mv over the file", plainFile(before), func(t *testing.T, path string) {
			other := filepath.Join(filepath.Dir(path), "incoming.toml")
			writeFile(t, other, after)
			if out, err := exec.Command("mv", other, path).CombinedOutput(); err != nil {
				t.Fatalf("mv: %v\n%s", err, out)
			}
		}},
		{"kubernetes configmap symlink swap", func(t *testing.T, dir string) string {
			// dir/zkdns.toml -> ..data/zkdns.toml, ..data -> ..v1: what a
			// ConfigMap volume looks like.
			writeFile(t, filepath.Join(dir, "..v1", "zkdns.toml"), before)
			symlink(t, "..v1", filepath.Join(dir, "..data"))
			symlink(t, filepath.Join("..data", "zkdns.toml"), filepath.Join(dir, "zkdns.toml"))
			return filepath.Join(dir, "zkdns.toml")
		}, func(t *testing.T, path string) {
			dir := filepath.Dir(path)
			writeFile(t, filepath.Join(dir, "..v2", "zkdns.toml"), after)
			symlink(t, "..v2", filepath.Join(dir, "..data_tmp"))
			if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, st := range styles {
		t.Run(st.name, func(t *testing.T) {
			d := startDaemonAt(t, st.setup(t, t.TempDir()))
			eventually(t, "alpha served", func() (bool, string) { return resolves(t, d.dns, "alpha.local") })
			if r := query(t, d.dns, "beta.local", dns.TypeA, false); r.Rcode != dns.RcodeNameError {
				t.Fatalf("beta.local before the change: %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
			}
			pid := d.cmd.Process.Pid
			start := time.Now()
			st.save(t, d.config)
			eventually(t, "beta served after the save", func() (bool, string) { return resolves(t, d.dns, "beta.local") })
			t.Logf("%s: beta resolvable %s after the save", st.name, time.Since(start).Round(time.Millisecond))
			if d.cmd.ProcessState != nil || d.cmd.Process.Pid != pid {
				t.Fatalf("zkdns restarted; a reload must keep the process")
			}
			if ok, _ := resolves(t, d.dns, "alpha.local"); !ok {
				t.Errorf("alpha stopped resolving after an unrelated reload")
			}
		})
	}
}

func TestLiveReloadLifecycle(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn)
	testutil.CreateZnode(t, conn, base+"/alpha/a1", "192.0.2.1:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/beta/b1", "192.0.2.2:80", zk.FlagEphemeral)
	d := startDaemon(t, zkServer.Addr(), opsConfig("%ZK%", base, "alpha", "beta"))
	eventually(t, "both served", func() (bool, string) {
		a, _ := resolves(t, d.dns, "alpha.local")
		b, s := resolves(t, d.dns, "beta.local")
		return a && b, s
	})

	t.Run("removed service answers NXDOMAIN", func(t *testing.T) {
		writeFile(t, d.config, opsConfig(zkServer.Addr(), base, "alpha"))
		eventually(t, "beta NXDOMAIN", func() (bool, string) {
			r := query(t, d.dns, "beta.local", dns.TypeA, false)
			return r.Rcode == dns.RcodeNameError, r.String()
		})
	})

	t.Run("broken file keeps the running config", func(t *testing.T) {
		failures := metricValue(t, d.admin, "zkdns_config_reloads_total", "result", "failure")
		good := opsConfig(zkServer.Addr(), base, "alpha")
		writeFile(t, d.config, good+"[[service]]\nname = \"Bad_Name\"\npath = \"/x\"\n")
		where := fmt.Sprintf("zkdns.toml:%d:", strings.Count(good, "\n")+2) // the bad name's line
		eventually(t, "failure counted", func() (bool, string) {
			v := metricValue(t, d.admin, "zkdns_config_reloads_total", "result", "failure")
			return v == failures+1, fmt.Sprint(v)
		})
		if ok, s := resolves(t, d.dns, "alpha.local"); !ok {
			t.Errorf("alpha not served after a broken edit: %s", s)
		}
		if !strings.Contains(d.logText(), where) {
			t.Errorf("the reload error was not logged with file:line:\n%s", d.logText())
		}
		if out, code := runZkdns(t, "check", "-config", d.config); code != 1 || !strings.Contains(out, where) {
			t.Errorf("zkdns check on the broken file: exit %d, want 1 naming %s\n%s", code, where, out)
		}
	})

	t.Run("file cut off before its services keeps the running config", func(t *testing.T) {
		failures := metricValue(t, d.admin, "zkdns_config_reloads_total", "result", "failure")
		writeFile(t, d.config, opsConfig(zkServer.Addr(), base))
		eventually(t, "failure counted", func() (bool, string) {
			v := metricValue(t, d.admin, "zkdns_config_reloads_total", "result", "failure")
			return v == failures+1, fmt.Sprint(v)
		})
		if ok, s := resolves(t, d.dns, "alpha.local"); !ok {
			t.Errorf("alpha not served after a save that watches nothing: %s", s)
		}
		if !strings.Contains(d.logText(), "zkdns.toml: nothing to watch") {
			t.Errorf("the refusal does not say the file watches nothing:\n%s", d.logText())
		}
	})

	t.Run("admin port held by zkdns itself", func(t *testing.T) {
		// Another address on the admin port zkdns serves: the bind fails,
		// and the refusal must say that zkdns itself holds the port, so
		// that only a restart applies it.
		_, port, err := net.SplitHostPort(d.admin)
		if err != nil {
			t.Fatal(err)
		}
		failures := metricValue(t, d.admin, "zkdns_config_reloads_total", "result", "failure")
		cfg := strings.Replace(opsConfig(zkServer.Addr(), base, "alpha"), `[admin]
listen = "127.0.0.1:0"`, `[admin]
listen = "localhost:`+port+`"`, 1)
		writeFile(t, d.config, cfg)
		eventually(t, "failure counted", func() (bool, string) {
			v := metricValue(t, d.admin, "zkdns_config_reloads_total", "result", "failure")
			return v == failures+1, fmt.Sprint(v)
		})
		if !strings.Contains(d.logText(), "zkdns itself holds this port for its admin API at "+d.admin) {
			t.Errorf("the refusal does not say zkdns holds the port; logs:\n%s", d.logText())
		}
		if !strings.Contains(d.logText(), `msg="config not reloaded: it needs a restart; keeping the running config"`) {
			t.Errorf("the refusal does not say it needs a restart; logs:\n%s", d.logText())
		}
	})

	t.Run("fixed file reloads", func(t *testing.T) {
		writeFile(t, d.config, opsConfig(zkServer.Addr(), base, "alpha", "beta"))
		eventually(t, "beta back", func() (bool, string) { return resolves(t, d.dns, "beta.local") })
	})

	t.Run("SIGHUP reloads", func(t *testing.T) {
		successes := metricValue(t, d.admin, "zkdns_config_reloads_total", "result", "success")
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		eventually(t, "SIGHUP reload counted", func() (bool, string) {
			v := metricValue(t, d.admin, "zkdns_config_reloads_total", "result", "success")
			return v == successes+1, fmt.Sprint(v)
		})
	})

	t.Run("log level follows the config", func(t *testing.T) {
		testutil.CreateZnode(t, conn, base+"/alpha/a2", "192.0.2.3:80", zk.FlagEphemeral)
		eventually(t, "join logged at info", func() (bool, string) {
			return strings.Contains(d.logText(), `msg="instance joined" service=alpha id=a2`), ""
		})
		successes := metricValue(t, d.admin, "zkdns_config_reloads_total", "result", "success")
		writeFile(t, d.config, opsConfig(zkServer.Addr(), base, "alpha", "beta")+"[log]\nlevel = \"warn\"\n")
		eventually(t, "level reload applied", func() (bool, string) {
			v := metricValue(t, d.admin, "zkdns_config_reloads_total", "result", "success")
			return v == successes+1, fmt.Sprint(v)
		})
		testutil.CreateZnode(t, conn, base+"/alpha/a3", "192.0.2.4:80", zk.FlagEphemeral)
		eventually(t, "a3 served", func() (bool, string) {
			r := query(t, d.dns, "a3.alpha.local", dns.TypeA, false)
			return len(r.Answer) == 1, r.String()
		})
		time.Sleep(200 * time.Millisecond) // the join line follows the publish
		if strings.Contains(d.logText(), "id=a3") {
			t.Errorf("an info line was logged after the level was set to warn:\n%s", d.logText())
		}
	})

	t.Run("log format waits for a restart", func(t *testing.T) {
		cfg := opsConfig(zkServer.Addr(), base, "alpha", "beta") + "[log]\nlevel = \"warn\"\nformat = \"%s\"\n"
		successes := metricValue(t, d.admin, "zkdns_config_reloads_total", "result", "success")
		writeFile(t, d.config, fmt.Sprintf(cfg, "json"))
		eventually(t, "format change deferred", func() (bool, string) {
			return strings.Contains(d.logText(), `msg="log.format changes take effect at the next restart" running=text configured=json`), ""
		})
		// Set back to the format zkdns runs with: nothing to wait for.
		writeFile(t, d.config, fmt.Sprintf(cfg, "text"))
		eventually(t, "both reloads applied", func() (bool, string) {
			v := metricValue(t, d.admin, "zkdns_config_reloads_total", "result", "success")
			return v == successes+2, fmt.Sprint(v)
		})
		if n := strings.Count(d.logText(), "log.format changes take effect"); n != 1 {
			t.Errorf("%d deferred format changes logged, want 1 (for json only):\n%s", n, d.logText())
		}
	})

	t.Run("deleted file keeps the running config", func(t *testing.T) {
		if err := os.Remove(d.config); err != nil {
			t.Fatal(err)
		}
		eventually(t, "deletion logged", func() (bool, string) {
			return strings.Contains(d.logText(), "keeping the running config") && strings.Contains(d.logText(), "no such file"), ""
		})
		if ok, s := resolves(t, d.dns, "beta.local"); !ok {
			t.Errorf("beta not served after the config file was deleted: %s", s)
		}
	})
}

// TestSystemdNotify drives the sd_notify protocol through a real
// NOTIFY_SOCKET: READY=1 only after the first sync, watchdog pings,
// RELOADING=1 then READY=1 around a reload, STOPPING=1 at the end.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	messages := make(chan string, 256)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ln.Read(buf)
			if err != nil {
				close(messages)
				return
			}
			messages <- string(buf[:n])
		}
	}()
	// waitFor waits for a datagram with a line that match accepts,
	// returning what came before it.
	waitFor := func(want string, match func(line string) bool) []string {
		t.Helper()
		var seen []string
		deadline := time.After(waitLimit)
		for {
			select {
			case m, ok := <-messages:
				if !ok {
					t.Fatalf("notify socket closed waiting for %q; seen %q", want, seen)
				}
				if slices.ContainsFunc(strings.Split(m, "\n"), match) {
					return seen
				}
				seen = append(seen, m)
			case <-deadline:
				t.Fatalf("no %q within %s; seen %q", want, waitLimit, seen)
			}
		}
	}
	expect := func(want string) []string {
		t.Helper()
		return waitFor(want, func(line string) bool { return line == want })
	}

	proxy := testutil.ProxyTo(t, zkServer.Addr())
	proxy.Cut() // no ZooKeeper at first: no READY=1 may be sent
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn)
	testutil.CreateZnode(t, conn, base+"/alpha/a1", "192.0.2.1:80", zk.FlagEphemeral)
	d := startDaemon(t, proxy.Addr(), opsConfig("%ZK%", base, "alpha"),
		"NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000")

	time.Sleep(time.Second)
	early := drain(messages)
	for _, m := range early {
		if strings.Contains(m, "READY=1") {
			t.Fatalf("READY=1 sent before the first sync: %q", early)
		}
	}
	if !containsLine(early, "WATCHDOG=1") {
		t.Errorf("no watchdog ping within a second at WATCHDOG_USEC=400000: %q", early)
	}
	if !containsPrefix(early, "STATUS=waiting for the first sync") {
		t.Errorf("no STATUS while waiting for ZooKeeper: %q", early)
	}
	proxy.Restore()
	expect("READY=1")
	expect("STATUS=serving 1 services, 1 instances; ZooKeeper connected to " + proxy.Addr())
	if ok, s := resolves(t, d.dns, "alpha.local"); !ok {
		t.Errorf("READY=1 sent but alpha does not resolve: %s", s)
	}
	expect("WATCHDOG=1")

	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	expect("RELOADING=1")
	expect("READY=1")

	// A reload to an ensemble that does not answer keeps the current
	// one serving; the status line says both.
	writeFile(t, d.config, strings.ReplaceAll(opsConfig("%ZK%", base, "alpha"), "%ZK%", "127.0.0.1:1"))
	moving := "STATUS=serving 1 services, 1 instances; ZooKeeper connected to " + proxy.Addr() + "; moving to ZooKeeper 127.0.0.1:1 (zookeeper.servers changed) for "
	const waiting = ": no session yet; answering from the current session until the new one has synced"
	waitFor(moving+"…"+waiting, func(line string) bool { return strings.HasPrefix(line, moving) && strings.HasSuffix(line, waiting) })

	d.stop(t)
	expect("STOPPING=1")
}

func TestAdminAPIAndStatus(t *testing.T) {
	proxy := testutil.ProxyTo(t, zkServer.Addr())
	proxy.Cut()
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	// The test's session may read what it locks zkdns out of, and so
	// clear it at the next run.
	if err := conn.AddAuth("digest", []byte("owner:owner-pw")); err != nil {
		t.Fatal(err)
	}
	ownerOnly := zk.DigestACL(zk.PermAll, "owner", "owner-pw")
	base := testutil.TestRoot(t, conn)
	testutil.CreateZnode(t, conn, base+"/alpha/a1", "192.0.2.1:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, conn, base+"/alpha/bad", "not an address", zk.FlagEphemeral)
	for _, n := range []struct{ path, data string }{
		{base + "/alpha/locked", "192.0.2.2:80"}, // zkdns may list it, not read it
		{base + "/delta", ""},                    // zkdns may not even list it
	} {
		if _, err := conn.Create(n.path, []byte(n.data), 0, ownerOnly); err != nil {
			t.Fatalf("create %s: %v", n.path, err)
		}
	}
	testutil.CreateZnode(t, conn, base+"/delta/d1", "192.0.2.3:80", zk.FlagEphemeral)
	d := startDaemon(t, proxy.Addr(), opsConfig("%ZK%", base, "alpha", "delta", "gamma"))

	t.Run("readyz before the first sync", func(t *testing.T) {
		code, body := httpGet(t, d.admin, "/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "first full sync") {
			t.Errorf("/readyz = %d %q, want 503 with the reason", code, body)
		}
		// zkdns status prints the same reason above a table it cannot vouch for.
		_, body = httpGet(t, d.admin, "/v1/services")
		var resp daemon.ServicesResponse
		if err := json.Unmarshal([]byte(body), &resp); err != nil || !strings.HasPrefix(resp.Readiness, "not ready: waiting for the first full sync") {
			t.Errorf("/v1/services readiness %q (%v), want /readyz's reason", resp.Readiness, err)
		}
		if code, _ := httpGet(t, d.admin, "/healthz"); code != http.StatusOK {
			t.Errorf("/healthz = %d, want 200 while alive", code)
		}
	})
	proxy.Restore()
	eventually(t, "ready", func() (bool, string) {
		code, body := httpGet(t, d.admin, "/readyz")
		return code == http.StatusOK, body
	})

	t.Run("services", func(t *testing.T) {
		_, body := httpGet(t, d.admin, "/v1/services")
		var resp daemon.ServicesResponse
		if err := json.Unmarshal([]byte(body), &resp); err != nil {
			t.Fatalf("/v1/services is not JSON: %v\n%s", err, body)
		}
		if len(resp.Services) != 3 || resp.Services[0].Name != "alpha" || resp.Services[1].Name != "delta" || resp.Services[2].Name != "gamma" {
			t.Fatalf("services = %+v", resp.Services)
		}
		if resp.Readiness != "ready" {
			t.Errorf("readiness %q, want ready", resp.Readiness)
		}
		alpha := resp.Services[0]
		if alpha.Invalid != 1 || alpha.Denied != 1 || alpha.AccessDenied || len(alpha.Instances) != 1 || alpha.Instances[0].Address != "192.0.2.1" ||
			alpha.Instances[0].Label != "a1" || !alpha.Instances[0].Healthy || alpha.Instances[0].Registered.IsZero() {
			t.Errorf("alpha (one instance, one undecodable, one refused by ACL) = %+v", alpha)
		}
		if delta := resp.Services[1]; !delta.AccessDenied || !delta.Exists || len(delta.Instances) != 0 {
			t.Errorf("delta (path refused by ACL) = %+v", delta)
		}
		if gamma := resp.Services[2]; gamma.Exists || gamma.AccessDenied || len(gamma.Instances) != 0 {
			t.Errorf("gamma (no path) = %+v", gamma)
		}
		for _, key := range []string{`"invalid": 1`, `"denied": 1`, `"access_denied": true`} {
			if !strings.Contains(body, key) {
				t.Errorf("/v1/services lacks %s:\n%s", key, body)
			}
		}
	})

	t.Run("metrics parse and move", func(t *testing.T) {
		before := metricValue(t, d.admin, "zkdns_dns_requests_total", "qtype", "A")
		for range 5 {
			query(t, d.dns, "alpha.local", dns.TypeA, false)
		}
		if after := metricValue(t, d.admin, "zkdns_dns_requests_total", "qtype", "A"); after != before+5 {
			t.Errorf("A queries counted %v → %v, want +5", before, after)
		}
		for _, name := range []string{"zkdns_service_instances", "zkdns_zookeeper_connected", "zkdns_zookeeper_payload_decode_errors_total",
			"zkdns_zookeeper_watch_events_total", "zkdns_config_reloads_total", "zkdns_zookeeper_event_to_publish_seconds", "zkdns_zookeeper_read_to_publish_seconds",
			"zkdns_dns_request_duration_seconds", "zkdns_build_info"} {
			if _, ok := scrape(t, d.admin)[name]; !ok {
				t.Errorf("metric %s missing", name)
			}
		}
		if v := metricValue(t, d.admin, "zkdns_service_instances", "health", "healthy"); v != 1 {
			t.Errorf("zkdns_service_instances{health=healthy} summed = %v, want 1", v)
		}
	})

	t.Run("zkdns status", func(t *testing.T) {
		out, err := exec.Command(zkdnsBin, "status", "-admin", d.admin).CombinedOutput()
		if err != nil {
			t.Fatalf("zkdns status: %v\n%s", err, out)
		}
		for _, want := range []string{"SERVICE", "alpha", "a1", "192.0.2.1", "80", "true", "gamma", "does not exist yet"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("status output lacks %q:\n%s", want, out)
			}
		}
		// Each reason for not serving a znode is told apart.
		for _, want := range []string{
			`(?m)^alpha +\(1 znodes skipped: payload does not decode\)`,
			`(?m)^alpha +\(1 znodes skipped: ZooKeeper ACL denies zkdns reading them\)`,
			`(?m)^delta +\(ZooKeeper ACL denies zkdns reading path ` + regexp.QuoteMeta(base+"/delta") + `\)`,
		} {
			if !regexp.MustCompile(want).Match(out) {
				t.Errorf("status output has no line matching %s:\n%s", want, out)
			}
		}
		out, err = exec.Command(zkdnsBin, "status", "-json", "-admin", d.admin).Output()
		var resp daemon.ServicesResponse
		if err != nil || json.Unmarshal(out, &resp) != nil || len(resp.Services) != 3 {
			t.Errorf("zkdns status -json: %v\n%s", err, out)
		}
	})

	t.Run("zkdns status without a daemon", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		out, code := runZkdns(t, "status", "-admin", addr)
		if code != 1 {
			t.Fatalf("exit = %d, want 1", code)
		}
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "is zkdns serve running") {
			t.Errorf("want one line saying the daemon is not reachable, got:\n%s", out)
		}
	})
}

// TestAdminPprof turns [admin] pprof on and off by live reloads: the Go
// runtime's profiles are served only while it is on, and the admin
// endpoint says how to turn them on while it is off.
func TestAdminPprof(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn)
	testutil.CreateZnode(t, conn, base+"/alpha/a1", "192.0.2.1:80", zk.FlagEphemeral)
	off := opsConfig(zkServer.Addr(), base, "alpha")
	on := strings.Replace(off, "[admin]\n", "[admin]\npprof = true\n", 1)
	d := startDaemon(t, zkServer.Addr(), off)

	isOff := func() (bool, string) {
		code, body := httpGet(t, d.admin, "/debug/pprof/")
		return code == http.StatusNotFound && strings.Contains(body, "pprof = true"), fmt.Sprintf("%d %s", code, body)
	}
	if ok, got := isOff(); !ok {
		t.Fatalf("/debug/pprof/ with pprof unset = %s, want 404 saying how to turn it on", got)
	}

	writeFile(t, d.config, on)
	eventually(t, "profiles served", func() (bool, string) {
		code, body := httpGet(t, d.admin, "/debug/pprof/")
		return code == http.StatusOK && strings.Contains(body, "goroutine"), fmt.Sprintf("%d %.200s", code, body)
	})
	for _, tc := range []struct{ path, want string }{
		{"/debug/pprof/heap?debug=1", "heap profile:"},
		{"/debug/pprof/goroutine?debug=1", "goroutine profile:"},
		{"/debug/pprof/profile?seconds=1", "\x1f\x8b"}, // a gzipped profile
	} {
		code, body := httpGet(t, d.admin, tc.path)
		if code != http.StatusOK || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s = %d %.80q, want 200 with %q", tc.path, code, body, tc.want)
		}
	}
	if !strings.Contains(d.logText(), "admin.pprof") {
		t.Errorf("the reload did not log admin.pprof as changed:\n%s", d.logText())
	}

	writeFile(t, d.config, off)
	eventually(t, "profiles off again", isOff)
}

// TestReloadMovesEnsembleAndAddresses changes [zookeeper] to another
// ensemble and [dns].listen to another port, live: answers never stop, come
// from the new ensemble once it has synced, and move to the new port.
func TestReloadMovesEnsembleAndAddresses(t *testing.T) {
	other := testutil.StartZooKeeperFor(t, testutil.ZooKeeperOptions{})
	oldConn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, oldConn)
	newConn := testutil.ConnectZK(t, other.Addr(), 10*time.Second)
	testutil.CreateZnode(t, oldConn, base+"/alpha/a1", "192.0.2.1:80", zk.FlagEphemeral)
	testutil.CreateZnode(t, newConn, base+"/alpha/a2", "192.0.2.2:80", zk.FlagEphemeral)

	d := startDaemon(t, zkServer.Addr(), opsConfig("%ZK%", base, "alpha"))
	eventually(t, "served from the first ensemble", func() (bool, string) {
		r := query(t, d.dns, "alpha.local", dns.TypeA, false)
		return answers(r) == "alpha.local.\t0\tIN\tA\t192.0.2.1", r.String()
	})

	t.Run("new ensemble that does not answer", func(t *testing.T) {
		// Until the new ensemble has synced, answers come from the first,
		// and so does zkdns_zookeeper_connected: the new watcher failing
		// to connect is no outage of what is served.
		writeFile(t, d.config, opsConfig("127.0.0.1:1", base, "alpha"))
		eventually(t, "the new ensemble tried and refused", func() (bool, string) {
			return strings.Contains(d.logText(), "moving to a new ZooKeeper ensemble") &&
				strings.Contains(d.logText(), "cannot connect to ZooKeeper server"), d.logText()
		})
		f, ok := scrape(t, d.admin)["zkdns_zookeeper_connected"]
		if !ok || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetGauge().GetValue() != 1 {
			t.Errorf("zkdns_zookeeper_connected = %v while serving from a connected ensemble, want 1", f)
		}
		r := query(t, d.dns, "alpha.local", dns.TypeA, false)
		if got := answers(r); got != "alpha.local.\t0\tIN\tA\t192.0.2.1" {
			t.Errorf("answer while the new ensemble is unreachable: %s", r)
		}
		// The config names an ensemble that is not the one answered
		// from: the admin API, zkdns status and a gauge say so.
		wantSwitching(t, d, "127.0.0.1:1")
	})

	t.Run("reverted before the new ensemble answered", func(t *testing.T) {
		// Back to the ensemble served: the waiting move is called off,
		// and no new session is opened to the one zkdns never left.
		moves := strings.Count(d.logText(), "moving to a new ZooKeeper ensemble")
		writeFile(t, d.config, opsConfig(zkServer.Addr(), base, "alpha"))
		eventually(t, "the move called off", func() (bool, string) {
			return strings.Contains(d.logText(), "move to new ZooKeeper settings called off"), d.logText()
		})
		if n := strings.Count(d.logText(), "moving to a new ZooKeeper ensemble"); n != moves {
			t.Errorf("the revert began a move of its own; logs:\n%s", d.logText())
		}
		wantSwitching(t, d, "")
		testutil.CreateZnode(t, oldConn, base+"/alpha/a5", "192.0.2.5:80", zk.FlagEphemeral)
		eventually(t, "still following the first ensemble", func() (bool, string) {
			r := query(t, d.dns, "alpha.local", dns.TypeA, false)
			return answers(r) == "alpha.local.\t0\tIN\tA\t192.0.2.1\nalpha.local.\t0\tIN\tA\t192.0.2.5", r.String()
		})
		if err := oldConn.Delete(base+"/alpha/a5", -1); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a5 gone", func() (bool, string) {
			r := query(t, d.dns, "alpha.local", dns.TypeA, false)
			return answers(r) == "alpha.local.\t0\tIN\tA\t192.0.2.1", r.String()
		})
	})

	t.Run("new ensemble that cannot start", func(t *testing.T) {
		// The new ensemble's credentials file is missing: the reload must
		// be refused whole (the DNS address added beside it stays unbound),
		// and a SIGHUP once the credentials exist must then apply all of
		// it: the refused change must not count as the running config.
		creds := filepath.Join(t.TempDir(), "zk.auth")
		cfg := strings.Replace(opsConfig(other.Addr(), base, "alpha"), `listen = ["127.0.0.1:0"]`, `listen = ["127.0.0.1:0", "127.0.0.5:0"]`, 1) +
			fmt.Sprintf("[zookeeper.auth]\nscheme = \"digest\"\ncredentials_file = %q\n", creds)
		writeFile(t, d.config, cfg)
		eventually(t, "the reload refused", func() (bool, string) {
			return strings.Contains(d.logText(), "config not reloaded"), d.logText()
		})
		// Named at the key's line, as zkdns check names it for the same file.
		where := fmt.Sprintf("zkdns.toml:%d: zookeeper.auth.credentials_file", strings.Count(cfg[:strings.Index(cfg, "credentials_file")], "\n")+1)
		if !strings.Contains(d.logText(), where) {
			t.Errorf("the refusal does not name the missing credentials file at %s; logs:\n%s", where, d.logText())
		}
		if out, code := runZkdns(t, "check", "-config", d.config); code != 1 || !strings.Contains(out, where) {
			t.Errorf("zkdns check on the same file: exit %d, want 1 naming %s\n%s", code, where, out)
		}
		if strings.Contains(d.logText(), "127.0.0.5") {
			t.Errorf("the refused reload bound its DNS address; logs:\n%s", d.logText())
		}
		r := query(t, d.dns, "alpha.local", dns.TypeA, false)
		if got := answers(r); got != "alpha.local.\t0\tIN\tA\t192.0.2.1" {
			t.Errorf("answer after the refused reload: %s", r)
		}

		if err := os.WriteFile(creds, []byte("zkdns:secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		d.boundDNS(t, "127.0.0.5")
		eventually(t, "served from the new ensemble", func() (bool, string) {
			r := query(t, d.dns, "alpha.local", dns.TypeA, false)
			return answers(r) == "alpha.local.\t0\tIN\tA\t192.0.2.2", r.String()
		})
	})

	t.Run("credentials dropped", func(t *testing.T) {
		// The same ensemble without [zookeeper.auth]: a change to the
		// auth alone is a move to a new session, and the answers stay
		// the same throughout it.
		takeovers := strings.Count(d.logText(), "now serving from the new ZooKeeper ensemble")
		writeFile(t, d.config, opsConfig(other.Addr(), base, "alpha"))
		deadline := time.Now().Add(waitLimit)
		for strings.Count(d.logText(), "now serving from the new ZooKeeper ensemble") == takeovers {
			r := query(t, d.dns, "alpha.local", dns.TypeA, false)
			if got := answers(r); got != "alpha.local.\t0\tIN\tA\t192.0.2.2" {
				t.Fatalf("answer while moving sessions: %s", r)
			}
			if time.Now().After(deadline) {
				t.Fatalf("the new session never took over; logs:\n%s", d.logText())
			}
			time.Sleep(10 * time.Millisecond)
		}
		// The first ensemble, left two moves ago, still does not count.
		testutil.CreateZnode(t, oldConn, base+"/alpha/a3", "192.0.2.3:80", zk.FlagEphemeral)
		testutil.CreateZnode(t, newConn, base+"/alpha/a4", "192.0.2.4:80", zk.FlagEphemeral)
		eventually(t, "follows the new ensemble only", func() (bool, string) {
			r := query(t, d.dns, "alpha.local", dns.TypeA, false)
			return answers(r) == "alpha.local.\t0\tIN\tA\t192.0.2.2\nalpha.local.\t0\tIN\tA\t192.0.2.4", r.String()
		})
		wantSwitching(t, d, "")
	})

	t.Run("added DNS address", func(t *testing.T) {
		// The first address stays, port 0 and all: it must keep its
		// socket, and so its port, while the second is bound beside it.
		cfg := strings.Replace(opsConfig(other.Addr(), base, "alpha"), `listen = ["127.0.0.1:0"]`, `listen = ["127.0.0.1:0", "127.0.0.4:0"]`, 1)
		refusals := strings.Count(d.logText(), "config not reloaded")
		writeFile(t, d.config, cfg)
		added := d.boundDNS(t, "127.0.0.4")
		eventually(t, "answers on the added address", func() (bool, string) {
			return resolvesQuietly(added, "alpha.local")
		})
		if ok, s := resolvesQuietly(d.dns, "alpha.local"); !ok {
			t.Errorf("the kept address %s stopped answering: %s\nlogs:\n%s", d.dns, s, d.logText())
		}
		if strings.Count(d.logText(), "config not reloaded") != refusals {
			t.Errorf("reload refused; logs:\n%s", d.logText())
		}
		kept := regexp.MustCompile(`msg="dns listening".* addr=` + regexp.QuoteMeta(d.dns) + `\b`)
		if n := len(kept.FindAllString(d.logText(), -1)); n != 1 {
			t.Errorf("the kept address logged as listening %d times, want once (at start); logs:\n%s", n, d.logText())
		}
	})

	t.Run("new DNS address", func(t *testing.T) {
		// Another loopback address with a port of the kernel's choosing:
		// picking a free port in the test could race with other sockets.
		cfg := strings.Replace(opsConfig(other.Addr(), base, "alpha"), `listen = ["127.0.0.1:0"]`, `listen = ["127.0.0.3:0"]`, 1)
		oldAddr := d.dns
		writeFile(t, d.config, cfg)
		newAddr := d.boundDNS(t, "127.0.0.3")
		eventually(t, "answers on the new address", func() (bool, string) {
			return resolvesQuietly(newAddr, "alpha.local")
		})
		eventually(t, "old address released", func() (bool, string) {
			ok, s := resolvesQuietly(oldAddr, "alpha.local")
			return !ok, s
		})
		// The socket closes before its line is logged.
		eventually(t, "a log line for the released "+oldAddr, func() (bool, string) {
			return strings.Contains(d.logText(), `msg="dns no longer listening" component=dnsserver addr=`+oldAddr), d.logText()
		})
	})
}

// wantSwitching checks what the admin API, zkdns status and
// zkdns_zookeeper_ensemble_switch_pending say of a move to another
// ensemble: under way to servers, or none when servers is "".
func wantSwitching(t *testing.T, d *runningDaemon, servers string) {
	t.Helper()
	_, body := httpGet(t, d.admin, "/v1/services")
	var resp daemon.ServicesResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("/v1/services is not JSON: %v\n%s", err, body)
	}
	status, code := runZkdns(t, "status", "-admin", d.admin)
	f := scrape(t, d.admin)["zkdns_zookeeper_ensemble_switch_pending"]
	pending := len(f.GetMetric()) == 1 && f.GetMetric()[0].GetGauge().GetValue() == 1
	if servers == "" {
		if resp.Switching != nil || strings.Contains(status, "moving to ZooKeeper") || pending {
			t.Errorf("a switch still shows as pending: /v1/services %+v, gauge %v, zkdns status:\n%s", resp.Switching, f, status)
		}
		return
	}
	// Only the servers change here, to ones that never answer.
	if sw := resp.Switching; sw == nil || strings.Join(sw.Servers, ",") != servers || sw.Since.IsZero() ||
		strings.Join(sw.Changed, ",") != "zookeeper.servers" || sw.Connection != "no session yet" {
		t.Errorf("/v1/services switching = %+v, want the move to %s, zookeeper.servers changed, with no session yet", resp.Switching, servers)
	}
	if resp.Readiness != "ready" {
		t.Errorf("readiness %q while the current ensemble serves, want ready", resp.Readiness)
	}
	if code != 0 || !strings.Contains(status, "zkdns is moving to ZooKeeper "+servers+" (zookeeper.servers changed) since ") {
		t.Errorf("zkdns status (exit %d) does not say it is moving to %s:\n%s", code, servers, status)
	}
	if !pending {
		t.Errorf("zkdns_zookeeper_ensemble_switch_pending = %v, want 1", f)
	}
}

// boundDNS waits for the daemon to log a DNS socket bound on ip, and
// returns its address.
func (d *runningDaemon) boundDNS(t *testing.T, ip string) string {
	t.Helper()
	re := regexp.MustCompile(`msg="dns listening".* addr=(` + regexp.QuoteMeta(ip) + `:\d+)`)
	var addr string
	eventually(t, "a DNS socket bound on "+ip, func() (bool, string) {
		m := re.FindStringSubmatch(d.logText())
		if m == nil {
			return false, d.logText()
		}
		addr = m[1]
		return true, ""
	})
	return addr
}

// resolvesQuietly is resolves for an address that may not answer.
func resolvesQuietly(server, name string) (bool, string) {
	c := &dns.Client{Timeout: 300 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	r, _, err := c.Exchange(m, server)
	if err != nil {
		return false, err.Error()
	}
	return r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0, r.String()
}

func plainFile(content string) func(t *testing.T, dir string) string {
	return func(t *testing.T, dir string) string {
		path := filepath.Join(dir, "zkdns.toml")
		writeFile(t, path, content)
		return path
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func httpGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// scrape fetches /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := httpGet(t, addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return families
}

// metricValue sums the samples of a counter or gauge family whose label
// has the given value.
func metricValue(t *testing.T, addr, family, label, value string) float64 {
	t.Helper()
	f, ok := scrape(t, addr)[family]
	if !ok {
		return 0
	}
	sum := 0.0
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && lp.GetValue() == value {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func drain(c <-chan string) []string {
	var out []string
	for {
		select {
		case m := <-c:
			out = append(out, m)
		default:
			return out
		}
	}
}

func containsLine(msgs []string, line string) bool {
	for _, m := range msgs {
		for _, l := range strings.Split(m, "\n") {
			if l == line {
				return true
			}
		}
	}
	return false
}

func containsPrefix(msgs []string, prefix string) bool {
	for _, m := range msgs {
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, prefix) {
				return true
			}
		}
	}
	return false
}

// TestWarmupWeights registers an instance just now in a service with a
// 4 s warm-up window: its SRV weight must rise over the window (sampled
// several times, without any ZooKeeper event) and equal the base after it,
// while an instance registered long ago keeps its base weight throughout.
func TestWarmupWeights(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn)
	old := `{"name":"svc","id":"old","address":"192.0.2.1","port":80,"payload":{"metadata":{"weight":"40"}},"registrationTimeUTC":1600000000000,"serviceType":"DYNAMIC"}`
	testutil.CreateZnode(t, conn, base+"/svc/old", old, zk.FlagEphemeral)
	d := startDaemon(t, zkServer.Addr(), `
[zookeeper]
servers = ["%ZK%"]
[dns]
listen = ["127.0.0.1:0"]
[admin]
listen = ""
[[service]]
name = "svc"
path = "`+base+`/svc"
format = "curator"
warmup = "4s"
`)
	eventually(t, "old instance served", func() (bool, string) { return resolves(t, d.dns, "svc.local") })
	fresh := fmt.Sprintf(`{"name":"svc","id":"new","address":"192.0.2.2","port":80,"payload":{"metadata":{"weight":"80"}},"registrationTimeUTC":%d,"serviceType":"DYNAMIC"}`,
		time.Now().UnixMilli())
	testutil.CreateZnode(t, conn, base+"/svc/new", fresh, zk.FlagEphemeral)

	weights := func() (oldW, newW int) {
		r := query(t, d.dns, "svc.local", dns.TypeSRV, false)
		oldW, newW = -1, -1
		for _, rr := range r.Answer {
			srv := rr.(*dns.SRV)
			switch srv.Target {
			case "old.svc.local.":
				oldW = int(srv.Weight)
			case "new.svc.local.":
				newW = int(srv.Weight)
			}
		}
		return oldW, newW
	}
	var seen []int
	deadline := time.Now().Add(waitLimit)
	for {
		oldW, newW := weights()
		if oldW != 40 {
			t.Fatalf("the settled instance's weight = %d, want its base 40 throughout", oldW)
		}
		if newW >= 0 && (len(seen) == 0 || seen[len(seen)-1] != newW) {
			seen = append(seen, newW)
		}
		if newW == 80 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new instance's weight never reached its base 80; seen %v", seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("weights seen while warming: %v", seen)
	if len(seen) < 4 {
		t.Errorf("weight rose in %d steps %v; want a ramp with several steps over 4 s", len(seen), seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] < seen[i-1] {
			t.Errorf("weight went down while warming: %v", seen)
		}
	}
	if seen[0] >= 80/2 {
		t.Errorf("first weight seen %d; a fresh instance should start near 1", seen[0])
	}
}

// TestServeOutlivesClosedStderr reads zkdns serve's log until its DNS
// address and then goes, as a log shipper that restarts or `| head`
// does: the lines zkdns logs after that cannot be written, and it must
// go on answering (with its SIGPIPE left to kill it, the first of them
// did), then stop cleanly on SIGTERM.
func TestServeOutlivesClosedStderr(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := testutil.TestRoot(t, conn)
	file := filepath.Join(t.TempDir(), "zkdns.toml")
	writeFile(t, file, opsConfig(zkServer.Addr(), base, "alpha"))
	r, run := startWithStderrPipe(t, exec.Command(zkdnsBin, "serve", "-config", file))
	var addr string
	for sc := bufio.NewScanner(r); addr == "" && sc.Scan(); {
		if m := listenLine.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	r.Close()
	if addr == "" {
		t.Fatal("zkdns did not report its DNS address")
	}
	// Each of these is logged, to a stderr nobody reads.
	for _, n := range []string{"a1", "a2"} {
		testutil.CreateZnode(t, conn, base+"/alpha/"+n, "192.0.2.1:80", zk.FlagEphemeral)
		eventually(t, n+" served", func() (bool, string) {
			return resolves(t, addr, n+".alpha.local")
		})
	}
	if err := run.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := run.exit(); err != nil {
		t.Errorf("zkdns serve ended by %v after SIGTERM, want exit 0", err)
	}
}
