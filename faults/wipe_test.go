package faults_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdns/zkdns/internal/testutil"
)

// renewLine is what zkdns and zkdns register log, once, when they give
// up on a session no server takes back.
const renewLine = "no ZooKeeper server accepts this session; starting a new one"

// startRegister runs `zkdns register` for a hostport instance id at
// addr:80 under path, with a 2 s session and no drain, and returns at
// once; the process is killed when the test ends, if it still runs.
func startRegister(t *testing.T, servers []string, path, id, addr string) *process {
	t.Helper()
	return startProcess(t, []string{"register", "-servers", strings.Join(servers, ","),
		"-session-timeout", "2s", "-path", path, "-id", id, "-address", addr, "-port", "80",
		"-format", "hostport", "-drain", "0s"}, nil, nil)
}

// raiseZxid makes n writes, so that every client connected meanwhile has
// seen a zxid that a server rebuilt from nothing takes long to reach.
func raiseZxid(t *testing.T, conn *zk.Conn, base string, n int) {
	t.Helper()
	mkdirAll(t, conn, base+"/filler")
	for i := range n {
		retry(t, "filler write", func() error {
			_, err := conn.Create(fmt.Sprintf("%s/filler/n%d", base, i), nil, 0, zk.WorldACL(zk.PermAll))
			if errors.Is(err, zk.ErrNodeExists) {
				return nil
			}
			return err
		})
	}
}

// TestZooKeeperDataLost rebuilds ZooKeeper with empty data under zkdns
// and zkdns register: a standalone server whose data directory is wiped,
// and an ensemble rebuilt from nothing after an election raised its
// epoch. The rebuilt servers refuse every client that saw a newer zxid
// than theirs, so both must give up their old session and start a new
// one: zkdns converges to what the rebuilt ZooKeeper holds (the old
// instances gone, the register instance back) within convergeBound of
// the rebuild, plus the registrar's own session timeout (2 s) for its
// re-registration, and says once why it started over.
func TestZooKeeperDataLost(t *testing.T) {
	tests := []struct {
		name string
		// start returns the servers and a function that rebuilds them
		// with empty data.
		start func(t *testing.T) ([]string, func(context.Context) error)
	}{
		{name: "standalone server", start: func(t *testing.T) ([]string, func(context.Context) error) {
			dir := t.TempDir()
			z := testutil.StartZooKeeperFor(t, testutil.ZooKeeperOptions{Dir: dir})
			return []string{z.Addr()}, func(ctx context.Context) error {
				if err := z.Kill(); err != nil {
					return err
				}
				if err := os.RemoveAll(filepath.Join(dir, "data")); err != nil {
					return err
				}
				return z.Restart(ctx)
			}
		}},
		{name: "ensemble with a newer epoch", start: func(t *testing.T) ([]string, func(context.Context) error) {
			e := startEnsemble(t)
			// A new leader starts a new epoch (the zxid's high 32 bits):
			// clients then hold zxids a rebuilt ensemble (epoch 1) never
			// reaches.
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			leader := waitLeader(t, e, -1)
			if err := e.Member(leader).Kill(); err != nil {
				t.Fatal(err)
			}
			waitLeader(t, e, leader)
			if err := e.Member(leader).Restart(ctx); err != nil {
				t.Fatal(err)
			}
			var dataDirs []string
			for i := range e.Size() {
				conf, err := testutil.FourLetterWord(ctx, e.Member(i).Addr(), "conf")
				if err != nil {
					t.Fatal(err)
				}
				dataDirs = append(dataDirs, confValue(t, conf, "dataDir"))
			}
			return e.Addrs(), func(ctx context.Context) error {
				for i := range e.Size() {
					if err := e.Member(i).Kill(); err != nil {
						return err
					}
				}
				for _, d := range dataDirs {
					if err := os.RemoveAll(d); err != nil {
						return err
					}
				}
				return e.Start(ctx)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servers, rebuild := tt.start(t)
			conn := connectZK(t, servers)
			base := "/" + strings.ReplaceAll(t.Name(), " ", "_")
			services := []service{{"alpha", base + "/alpha"}}
			putInstance(t, conn, services[0].path, "old", "192.0.2.1")
			raiseZxid(t, conn, base, 200)
			reg := startRegister(t, servers, services[0].path, "reg", "192.0.2.9")
			d := startDaemon(t, writeConfig(t, servers, "127.0.0.1:0", services...))
			testutil.Eventually(t, waitLimit, "zkdns answers the old and the register instance", func() (bool, string) {
				got, err := fromDNS(d.dns, services)
				if err != nil {
					return false, err.Error()
				}
				return got["alpha"].a == "192.0.2.1,192.0.2.9", got["alpha"].String()
			})

			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			err := rebuild(ctx)
			cancel()
			if err != nil {
				t.Fatalf("rebuild ZooKeeper: %v", err)
			}
			back := time.Now()
			// A new client has seen no zxid, so the rebuilt servers take it.
			fresh := connectZK(t, servers)
			putInstance(t, fresh, services[0].path, "new", "192.0.2.2")
			testutil.Eventually(t, convergeBound+2*time.Second, "zkdns register registers again", func() (bool, string) {
				ok, _, err := fresh.Exists(services[0].path + "/reg")
				return ok, fmt.Sprintf("exists %v, err %v", ok, err)
			})
			waitConverged(t, d, fresh, services, back, convergeBound+2*time.Second)
			got, err := fromDNS(d.dns, services)
			if err != nil {
				t.Fatal(err)
			}
			if got["alpha"].a != "192.0.2.2,192.0.2.9" {
				t.Errorf("after the rebuild zkdns answers %v, want the new and the register instance", got["alpha"])
			}
			for who, logs := range map[string]string{"zkdns": d.logText(), "zkdns register": reg.logText()} {
				if n := strings.Count(logs, renewLine); n != 1 {
					t.Errorf("%s logged %q %d times, want once", who, renewLine, n)
				}
			}
		})
	}
}

// confValue returns the value of key in a `conf` four-letter word reply.
func confValue(t *testing.T, conf, key string) string {
	t.Helper()
	for _, line := range strings.Split(conf, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && k == key {
			return v
		}
	}
	t.Fatalf("no %s in the conf reply:\n%s", key, conf)
	return ""
}
