package faults_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/zkdns/zkdns/dnsserver"
)

// restartBound is how long a restarted zkdns may take from its start to
// its first correct answer: process start-up (a race-detector build),
// connecting, and one full sync, on a loaded machine.
const restartBound = 10 * time.Second

// freeDNSAddr returns a loopback address whose port was free for both UDP
// and TCP a moment ago (zkdns binds both), so that a restarted zkdns can
// listen where the first one did, as a real deployment does. It is on its
// own loopback address, away from the ephemeral ports other tests' client
// connections take on 127.0.0.1.
func freeDNSAddr(t *testing.T) string {
	t.Helper()
	ls, err := dnsserver.Listen([]string{"127.0.0.4:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	return ls.Addrs()[0]
}

// TestRestartZkdns stops zkdns (cleanly, then by crash), changes the
// instances while it is down, and starts it again on the same config and
// port: the new process must answer SERVFAIL until its first sync and then
// exactly what ZooKeeper holds, never the set from before the stop, never
// an empty answer, and it must be ready (/readyz 200) only once its answers
// are right.
func TestRestartZkdns(t *testing.T) {
	z := startStandalone(t)
	servers := []string{z.Addr()}
	conn := connectZK(t, servers)

	tests := []struct {
		name string
		stop func(d *daemon, t *testing.T)
	}{
		{name: "SIGTERM then start", stop: (*daemon).terminate},
		{name: "SIGKILL then start", stop: (*daemon).kill},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := "/" + t.Name()
			services := []service{{"alpha", base + "/alpha"}}
			putInstance(t, conn, services[0].path, "leaves", "192.0.2.1")
			putInstance(t, conn, services[0].path, "stays", "192.0.2.2")
			config := writeConfig(t, servers, freeDNSAddr(t), services...)
			first := startDaemon(t, config)
			waitConverged(t, first, conn, services, time.Now(), waitLimit)

			tt.stop(first, t)
			if err := conn.Delete(services[0].path+"/leaves", -1); err != nil {
				t.Fatal(err)
			}
			putInstance(t, conn, services[0].path, "joins", "192.0.2.3")
			want := "192.0.2.2,192.0.2.3"

			startedAt := time.Now()
			second := startDaemon(t, config)
			if second.dns != first.dns {
				t.Fatalf("restarted zkdns listens on %s, want %s as before", second.dns, first.dns)
			}
			c := &dns.Client{Timeout: 2 * time.Second}
			q := new(dns.Msg)
			q.SetQuestion("alpha.local.", dns.TypeA)
			var correctAt time.Time
			servfails := 0
			for correctAt.IsZero() || time.Since(correctAt) < time.Second {
				r, _, err := c.Exchange(q, second.dns)
				switch {
				case err != nil:
					t.Fatalf("restarted zkdns did not answer: %v", err)
				case r.Rcode == dns.RcodeServerFailure && correctAt.IsZero():
					servfails++ // before the first sync, by design
				case r.Rcode != dns.RcodeSuccess:
					t.Fatalf("restarted zkdns answered %s after it had answered correctly", dns.RcodeToString[r.Rcode])
				case joinSorted(addrsOf(r)) != want:
					t.Fatalf("restarted zkdns answered %v, want exactly %s: no stale or partial state", addrsOf(r), want)
				case correctAt.IsZero():
					correctAt = time.Now()
					t.Logf("correct %s after the restart, %d SERVFAILs before its first sync (bound %s)",
						correctAt.Sub(startedAt).Round(time.Millisecond), servfails, restartBound)
				}
				if correctAt.IsZero() && time.Since(startedAt) > restartBound {
					t.Fatalf("restarted zkdns did not answer correctly within %s", restartBound)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if code, body := second.get(t, "/readyz"); code != http.StatusOK {
				t.Errorf("/readyz after correct answers = %d %q, want 200", code, body)
			}
			if n := second.metric(t, "zkdns_zookeeper_full_syncs_total"); n != 1 {
				t.Errorf("zkdns_zookeeper_full_syncs_total = %v, want the one sync", n)
			}
			waitConverged(t, second, conn, services, time.Now(), convergeBound)
		})
	}
}

// TestReadyOnlyWhenCorrect restarts zkdns and checks, from its start, that
// /readyz turns 200 only when its answers are already right: a load
// balancer or systemd that trusts readiness never sees stale answers.
func TestReadyOnlyWhenCorrect(t *testing.T) {
	z := startStandalone(t)
	servers := []string{z.Addr()}
	conn := connectZK(t, servers)
	services := []service{{"alpha", "/" + t.Name() + "/alpha"}, {"beta", "/" + t.Name() + "/beta"}}
	putInstance(t, conn, services[0].path, "a1", "192.0.2.1")
	putInstance(t, conn, services[1].path, "b1", "198.51.100.1")
	config := writeConfig(t, servers, freeDNSAddr(t), services...)

	for run := range 3 {
		d := startDaemon(t, config)
		deadline := time.Now().Add(restartBound)
		for {
			code, _ := d.get(t, "/readyz")
			if code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %d: not ready within %s", run+1, restartBound)
			}
			time.Sleep(5 * time.Millisecond)
		}
		want, err := fromZooKeeper(conn, services)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fromDNS(d.dns, services)
		if err != nil || !equalSets(got, want) {
			t.Fatalf("run %d: ready, but answers %v (%v), want %v", run+1, got, err, want)
		}
		d.terminate(t)
	}
}
