package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkdns/zkdns/conf"
	"github.com/zkdns/zkdns/internal/testutil"
)

var zkServer *testutil.ZooKeeper

func TestMain(m *testing.M) {
	os.Exit(testutil.MainWithZooKeeper(m, &zkServer))
}

// waitLimit bounds every wait for the daemon to do something; it
// normally takes well under a second.
const waitLimit = 20 * time.Second

var adminListening = regexp.MustCompile(`msg="admin listening" addr=(\S+)`)

// adminAddrs returns the addresses the admin server was started on, in
// order, as logs tells them.
func adminAddrs(logs *testutil.LogBuffer) []string {
	var out []string
	for _, m := range adminListening.FindAllStringSubmatch(logs.String(), -1) {
		out = append(out, m[1])
	}
	return out
}

// saveConfig writes content to path by renaming it into place, so the
// config watcher never reads half a file.
func saveConfig(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// adminDaemon is a daemon that Run runs on a config file holding
// adminConfig("127.0.0.1:0"), logging at debug level into logs.
type adminDaemon struct {
	path string
	logs *testutil.LogBuffer
	stop func() error // cancels Run and returns what it returned; later calls return the same
}

// runAdminDaemon starts an adminDaemon with opts (Config, ConfigPath and
// Logger are filled in), waits for its admin server, and stops it when
// the test ends.
func runAdminDaemon(t *testing.T, opts Options) *adminDaemon {
	t.Helper()
	d := &adminDaemon{path: filepath.Join(t.TempDir(), "zkdns.toml"), logs: &testutil.LogBuffer{}}
	saveConfig(t, d.path, adminConfig("127.0.0.1:0"))
	cfg, err := conf.Load(d.path)
	if err != nil {
		t.Fatal(err)
	}
	opts.Config, opts.ConfigPath = cfg, d.path
	opts.Logger = slog.New(slog.NewTextHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- Run(ctx, opts) }()
	d.stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-ran:
			if err != nil {
				return fmt.Errorf("Run: %w", err)
			}
			return nil
		case <-time.After(waitLimit):
			return errors.New("Run did not return after its context ended")
		}
	})
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Error(err)
		}
	})
	testutil.Eventually(t, waitLimit, "the admin server", func() (bool, string) {
		return len(adminAddrs(d.logs)) == 1, d.logs.String()
	})
	return d
}

// adminConfig is a config with pprof on and the admin API on listen. Its
// one service, which a config needs, has no znode: it answers NODATA.
func adminConfig(listen string) string {
	return fmt.Sprintf("[zookeeper]\nservers = [%q]\nsession_timeout = \"5s\"\n[dns]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = %q\npprof = true\n"+
		"[[service]]\nname = \"absent\"\npath = \"/admin-test/absent\"\n", zkServer.Addr(), listen)
}

// adminGoroutines returns the stacks of the goroutines that belong to an
// admin server: its task, the server's Serve and Shutdown and, withConns,
// the goroutines of its connections, which are awaited separately.
func adminGoroutines(withConns bool) []string {
	marks := []string{"daemon.serveAdmin", "daemon.(*daemon).startAdmin", "net/http.(*Server).Serve", "net/http.(*Server).Shutdown", "net/http/pprof."}
	if withConns {
		marks = append(marks, "net/http.(*conn).serve")
	}
	return testutil.Goroutines(marks...)
}

// TestAdminServerStops holds the admin server to its stop: a reload that
// moves [admin] listen ends the requests on the old address, and once Run
// has returned nothing of any admin server runs, even with a client that
// connected and never finished its request.
func TestAdminServerStops(t *testing.T) {
	d := runAdminDaemon(t, Options{})
	defer d.stop()
	write := func(content string) { saveConfig(t, d.path, content) }
	oldAddr := adminAddrs(d.logs)[0]

	// A CPU profile far longer than the test: only the server ending the
	// request ends it.
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	profileDone := make(chan error, 1)
	go func() {
		resp, err := client.Get("http://" + oldAddr + "/debug/pprof/profile?seconds=3600")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		profileDone <- err
	}()
	testutil.Eventually(t, waitLimit, "the profile request being served", func() (bool, string) {
		for _, g := range adminGoroutines(false) {
			if strings.Contains(g, "net/http/pprof.Profile") {
				return true, ""
			}
		}
		return false, "no goroutine in pprof.Profile"
	})

	// localhost:0 is a different listen setting: the reload moves the
	// admin server to a new port.
	write(adminConfig("localhost:0"))
	testutil.Eventually(t, waitLimit, "the admin server on its new address", func() (bool, string) {
		return len(adminAddrs(d.logs)) == 2, d.logs.String()
	})
	newAddr := adminAddrs(d.logs)[1]
	select {
	case <-profileDone:
	case <-time.After(waitLimit):
		t.Fatalf("a request on the old admin address %s still runs after the reload moved the server to %s", oldAddr, newAddr)
	}
	if resp, err := client.Get("http://" + newAddr + "/healthz"); err != nil {
		t.Fatalf("the admin server on its new address: %v", err)
	} else {
		resp.Body.Close()
	}
	if _, err := net.Dial("tcp", oldAddr); err == nil {
		t.Errorf("the old admin address %s still accepts connections", oldAddr)
	}

	// A client that sends half a request holds a graceful shutdown for as
	// long as it lets it wait.
	stalled, err := net.Dial("tcp", newAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if _, err := io.WriteString(stalled, "GET /healthz HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitLimit, "the stalled connection being served", func() (bool, string) {
		for _, g := range adminGoroutines(true) {
			if strings.Contains(g, "net/http.(*conn).serve") {
				return true, ""
			}
		}
		return false, "no connection goroutine"
	})

	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	// The server's own goroutines are awaited by the stop; a connection's
	// goroutine may still be unwinding after it has said it is closed.
	if left := adminGoroutines(false); len(left) > 0 {
		t.Fatalf("after Run returned, %d goroutines of an admin server still run:\n\n%s", len(left), strings.Join(left, "\n\n"))
	}
	testutil.Eventually(t, waitLimit, "the admin connections' goroutines to end", func() (bool, string) {
		left := adminGoroutines(true)
		return len(left) == 0, strings.Join(left, "\n\n")
	})
	if err := stalled.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stalled).ReadString('\n'); err == nil {
		t.Errorf("the stalled connection was answered %q after the stop, want it closed", line)
	}
}
