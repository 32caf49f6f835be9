package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/miekg/dns"
)

// fleet is the throughput data set loaded in ZooKeeper and served by a
// pinned zkdns, shared by the throughput, churn and propagation targets.
type fleet struct {
	data     dataset
	owner    *zk.Conn // the session holding every instance znode
	zkdns    *dnsServer
	zoneFile string // the same records as a zone file, for the peers
	queries  string // dnsperf query file
}

// fleetSession is the session timeout of zkdns and of the owner of the
// instances in the fleet: long enough that a busy machine never expires
// them during a run.
const fleetSession = 10 * time.Second

func (b *bench) startFleet(ctx context.Context) (*fleet, error) {
	dir, err := b.dir("fleet")
	if err != nil {
		return nil, err
	}
	f := &fleet{data: b.plan.fleet}
	if f.owner, err = connectZK(ctx, b.zk.Addr(), fleetSession); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := createDataset(ctx, f.owner, f.data); err != nil {
		f.close()
		return nil, err
	}
	b.log.Info("fleet registered", "services", f.data.services, "instances", f.data.total(), "took", time.Since(start).Round(time.Millisecond))

	f.zoneFile = filepath.Join(dir, "local.zone")
	f.queries = filepath.Join(dir, "queries.txt")
	if err := writeFile(f.zoneFile, func(w *os.File) error { return writeZone(w, f.data, zone) }); err != nil {
		f.close()
		return nil, err
	}
	if err := writeFile(f.queries, func(w *os.File) error { return writeQueries(w, f.data, zone, b.plan.queryLines, 1) }); err != nil {
		f.close()
		return nil, err
	}

	f.zkdns, _, _, err = launchZkdns(ctx, b.opts.zkdns, filepath.Join(dir, "zkdns"), b.opts.serverCore, zkdnsSettings{
		zookeeper: b.zk.Addr(), sessionTimeout: fleetSession, discoverRoot: f.data.root,
	}, time.Minute)
	if err != nil {
		f.close()
		return nil, err
	}
	last := fmt.Sprintf("svc%d.%s", f.data.services-1, zone)
	if err := waitAnswers(ctx, f.zkdns, last, dns.TypeSRV, f.data.instances, 30*time.Second); err != nil {
		f.close()
		return nil, err
	}
	b.log.Info("zkdns serves the fleet", "dns", f.zkdns.addr, "admin", f.zkdns.admin)
	return f, nil
}

func (f *fleet) close() {
	f.zkdns.stop()
	if f.owner != nil {
		f.owner.Close()
	}
}

// writeFile creates path and fills it with fill.
func writeFile(path string, fill func(*os.File) error) error {
	w, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("zkbench: %w", err)
	}
	if err := fill(w); err != nil {
		w.Close()
		return fmt.Errorf("zkbench: write %s: %w", path, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("zkbench: write %s: %w", path, err)
	}
	return nil
}
