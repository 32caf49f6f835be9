package faults_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestReloadAddsServicesWhileZooKeeperDown adds services to the config
// (an editor's rename-save) while ZooKeeper is down. An added service
// cannot be listed until ZooKeeper is back, but it is configured: it must
// answer NODATA at once, never NXDOMAIN (which would also deny every
// instance name below it to resolvers' negative caches), while the
// services zkdns knew keep their answers; once ZooKeeper is back it
// converges to the added services' instances.
func TestReloadAddsServicesWhileZooKeeperDown(t *testing.T) {
	z := startStandalone(t)
	servers := []string{z.Addr()}
	conn := connectZK(t, servers)
	base := "/" + t.Name()
	known := service{"alpha", base + "/alpha"}
	putInstance(t, conn, known.path, "a", "192.0.2.1")
	var added []service
	for i := range 10 {
		s := service{fmt.Sprintf("s%d", i), fmt.Sprintf("%s/s%d", base, i)}
		putInstance(t, conn, s.path, "i", fmt.Sprintf("192.0.2.%d", 10+i))
		added = append(added, s)
	}
	config := writeConfig(t, servers, "127.0.0.1:0", known)
	d := startDaemon(t, config)
	waitConverged(t, d, conn, []service{known}, time.Now(), waitLimit)

	if err := z.Kill(); err != nil {
		t.Fatal(err)
	}
	// Rename-save, as editors do, in the config's own directory.
	next := writeConfig(t, servers, "127.0.0.1:0", append([]service{known}, added...)...)
	tmp := filepath.Join(filepath.Dir(config), ".zkdns.toml.tmp")
	data, err := os.ReadFile(next)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, config); err != nil {
		t.Fatal(err)
	}

	c := &dns.Client{Timeout: 2 * time.Second}
	ask := func(name string) (*dns.Msg, error) {
		q := new(dns.Msg)
		q.SetQuestion(name+".local.", dns.TypeA)
		r, _, err := c.Exchange(q, d.dns)
		return r, err
	}
	deadline := time.Now().Add(waitLimit)
	for {
		r, err := ask("s7")
		if err == nil && r.Rcode == dns.RcodeSuccess {
			if len(r.Answer) != 0 {
				t.Fatalf("s7 answered %v while ZooKeeper is down, want NODATA", r.Answer)
			}
			break
		}
		if err == nil && r.Rcode != dns.RcodeNameError {
			t.Fatalf("s7 answered %s while ZooKeeper is down, want NODATA", dns.RcodeToString[r.Rcode])
		}
		if time.Now().After(deadline) {
			t.Fatalf("s7 does not answer NODATA %s after the reload (last: %v, %v)", waitLimit, r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, s := range added {
		if r, err := ask(s.name); err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
			t.Errorf("%s while ZooKeeper is down: %v, %v; want NODATA", s.name, r, err)
		}
	}
	if got, err := fromDNS(d.dns, []service{known}); err != nil || got["alpha"].a != "192.0.2.1" {
		t.Errorf("alpha while ZooKeeper is down: %v, %v; want its last known instance", got, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := z.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, d, conn, append([]service{known}, added...), time.Now(), convergeBound)
}
