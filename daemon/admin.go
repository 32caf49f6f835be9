package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/zkdns/zkdns/zkwatch"
)

// ServicesResponse is the body of GET /v1/services.
type ServicesResponse struct {
	Services []ServiceInfo `json:"services"`
	// Readiness is what /readyz says ("ready", "ready (ZooKeeper
	// connection lost, …)", "not ready: …"): anything but "ready" means
	// Services may be the last state the daemon knew. Empty from a daemon
	// that predates it.
	Readiness string `json:"readiness,omitempty"`
	// Switching is set while a reload's move to another ZooKeeper
	// ensemble waits for the new ensemble's first full sync; Services
	// and Readiness are still the current ensemble's.
	Switching *SwitchInfo `json:"switching,omitempty"`
}

// SwitchInfo is a move to another ZooKeeper ensemble that a reload began
// and that waits for the new ensemble's first full sync. Answers come from
// the current ensemble until then; a new ensemble that cannot be reached
// or read keeps it waiting.
type SwitchInfo struct {
	Servers []string `json:"servers"`
	// Changed names the [zookeeper] keys the move changes from the
	// session answers come from ("zookeeper.servers", "zookeeper.tls", …).
	Changed []string  `json:"changed"`
	Since   time.Time `json:"since"` // when the reload began the move
	// Connection is the new ensemble's: "connected to host:port" (its
	// watched tree being read), "disconnected for 5s", or "no session yet".
	Connection string `json:"connection"`
}

// ServiceInfo is one watched service as the daemon sees it.
type ServiceInfo struct {
	Name         string         `json:"name"`
	Label        string         `json:"label"` // DNS label it is served under; "" before the first sync
	Path         string         `json:"path"`
	Format       string         `json:"format"`
	DiscoveredBy string         `json:"discovered_by,omitempty"`
	Exists       bool           `json:"exists"`        // the path exists in ZooKeeper
	Invalid      int            `json:"invalid"`       // children skipped: their payload does not decode
	Denied       int            `json:"denied"`        // children skipped: a ZooKeeper ACL denies zkdns reading them
	AccessDenied bool           `json:"access_denied"` // an ACL denies zkdns the path itself: its instances cannot be listed, it answers NODATA
	Instances    []InstanceInfo `json:"instances"`
}

// InstanceInfo is one instance of a service, served or not.
type InstanceInfo struct {
	ID         string    `json:"id"`
	Label      string    `json:"label"` // "" when not served (unhealthy)
	Format     string    `json:"format"`
	Address    string    `json:"address"`
	Port       uint16    `json:"port"`
	Weight     uint16    `json:"weight"`      // SRV weight served now (below base while warming up)
	BaseWeight uint16    `json:"base_weight"` // the payload's weight, or 100
	Healthy    bool      `json:"healthy"`
	Registered time.Time `json:"registered"`
}

func listenAdmin(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("daemon: bind admin listener %s: %w", addr, err)
	}
	return ln, nil
}

func (d *daemon) startAdmin(ctx context.Context, ln net.Listener) *task {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		// Liveness: the process serves HTTP. Whether answers are current
		// is readiness's business.
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ok, reason := d.readiness()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, reason+"\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	// The Go runtime's profiles, while [admin] pprof is on. The switch is
	// checked per request, so a reload turns them on or off without
	// restarting this server. (Importing net/http/pprof also registers
	// them on http.DefaultServeMux, which zkdns never serves.)
	mux.Handle("GET /debug/pprof/", d.whenPprof(pprof.Index))
	mux.Handle("GET /debug/pprof/cmdline", d.whenPprof(pprof.Cmdline))
	mux.Handle("GET /debug/pprof/profile", d.whenPprof(pprof.Profile))
	mux.Handle("GET /debug/pprof/symbol", d.whenPprof(pprof.Symbol))
	mux.Handle("POST /debug/pprof/symbol", d.whenPprof(pprof.Symbol))
	mux.Handle("GET /debug/pprof/trace", d.whenPprof(pprof.Trace))
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_, readiness := d.readiness()
		services, switching := d.pub.view()
		_ = enc.Encode(ServicesResponse{Services: services, Readiness: readiness, Switching: switching})
	})
	d.logger.Info("admin listening", "addr", ln.Addr().String())
	t := d.startTask(ctx, "admin server", func(ctx context.Context) error {
		return serveAdmin(ctx, ln, mux)
	})
	t.addr = ln.Addr()
	return t
}

// adminGrace is how long a stopping admin server lets requests in flight
// finish before it closes their connections. Their contexts are cancelled
// at once, so a profile or a slow scrape ends early; the grace is for
// writing what they have. It leaves the rest of stopTimeout for closing.
const adminGrace = stopTimeout / 2

// serveAdmin serves h on ln until ctx ends, then stops the server and
// returns once nothing of it runs: the listener and every connection are
// closed and every connection's goroutine has finished. A reload that
// moves [admin] listen relies on this: a request on the old address must
// not outlive the stop.
func serveAdmin(ctx context.Context, ln net.Listener, h http.Handler) error {
	// conns counts the connections' goroutines, which net/http starts
	// and Shutdown and Close do not wait for. StateNew is reported on the
	// serving goroutine before the connection's own starts, and StateClosed
	// last thing on the connection's goroutine.
	var conns sync.WaitGroup
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		// Requests end with the task, not with the daemon: a stopped
		// admin server must not keep serving.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ConnState: func(_ net.Conn, state http.ConnState) {
			switch state {
			case http.StateNew:
				conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				conns.Done()
			}
		},
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var err error
	select {
	case err = <-served:
		// Serve failed on its own (the listener broke); stop what it
		// started before reporting it.
		_ = srv.Close()
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), adminGrace)
		if srv.Shutdown(sctx) != nil {
			// The grace ran out: cut the connections still open.
			_ = srv.Close()
		}
		cancel()
		err = <-served
	}
	conns.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serve admin API on %s: %w", ln.Addr(), err)
}

// whenPprof serves h while [admin] pprof is on, and otherwise a 404 that
// says how to turn it on.
func (d *daemon) whenPprof(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !d.pprof.Load() {
			http.Error(w, "profiles are off; set pprof = true under [admin] in the config and reload", http.StatusNotFound)
			return
		}
		h(w, r)
	})
}

// readiness says whether the answers are current: the first full sync
// has happened, and the session has not been lost for longer than its
// timeout (past that, changes may have been missed, though the last known
// answers are still served).
func (d *daemon) readiness() (bool, string) {
	if !d.pub.isReady() {
		return false, "not ready: waiting for the first full sync from ZooKeeper"
	}
	st, timeout, ok := d.pub.servedStatus()
	if !ok || st.State == zk.StateHasSession || st.DisconnectedSince.IsZero() {
		return true, "ready"
	}
	if lost := time.Since(st.DisconnectedSince); lost > timeout {
		return false, fmt.Sprintf("not ready: ZooKeeper unreachable for %s (longer than the %s session timeout); answering from the last known state",
			lost.Round(time.Second), timeout)
	}
	return true, "ready (ZooKeeper connection lost, within the session timeout)"
}

// statusLine is the one-line summary shown by systemctl status.
func (d *daemon) statusLine() string {
	services, instances := d.pub.summary()
	now := time.Now()
	zkState := "no session yet"
	if st, _, ok := d.pub.servedStatus(); ok {
		zkState = connectionState(st, now)
	}
	synced := d.handler.Current().Synced()
	line := fmt.Sprintf("serving %d services, %d instances; ZooKeeper %s", services, instances, zkState)
	if !synced {
		line = "waiting for the first sync; ZooKeeper " + zkState
	}
	if sw, ok := d.pub.switching(); ok {
		line += fmt.Sprintf("; moving to ZooKeeper %s for %s: %s", sw.Describe(), now.Sub(sw.Since).Round(time.Second), sw.Connection)
		if synced {
			line += "; answering from the current session until the new one has synced"
		}
	}
	if d.refused != nil {
		// Where systemctl status shows it, beside the error in the log.
		line += "; the config saved last is not applied yet, retrying"
	}
	if d.needsRestart {
		line += "; the config saved last needs a restart to apply"
	}
	return line
}

// Describe names where the switch goes and what it changes, as in
// "192.0.2.7:2181 (zookeeper.tls changed)".
func (s *SwitchInfo) Describe() string {
	out := strings.Join(s.Servers, ",")
	if len(s.Changed) > 0 {
		out += " (" + strings.Join(s.Changed, ", ") + " changed)"
	}
	return out
}

// connectionState says where a watcher's ZooKeeper connection stands. A
// watcher that never had a session says so: one that cannot reach its
// ensemble at all is not one that lost it.
func connectionState(st zkwatch.Status, now time.Time) string {
	switch {
	case st.State == zk.StateHasSession:
		return "connected to " + st.Server
	case st.SessionID != 0 && !st.DisconnectedSince.IsZero():
		return fmt.Sprintf("disconnected for %s", now.Sub(st.DisconnectedSince).Round(time.Second))
	}
	return "no session yet"
}

// FetchServices asks the admin API at addr (host:port) for the services,
// as `zkdns status` does.
func FetchServices(ctx context.Context, addr string) (*ServicesResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/services", nil)
	if err != nil {
		return nil, fmt.Errorf("admin address %q: %w", addr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the zkdns admin API at %s (is zkdns serve running, with [admin].listen = %q?): %w", addr, addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("zkdns admin API at %s answered %s", addr, resp.Status)
	}
	var out ServicesResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("zkdns admin API at %s: unreadable answer: %w", addr, err)
	}
	return &out, nil
}
