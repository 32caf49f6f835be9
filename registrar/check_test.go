package registrar

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zkdns/zkdns/internal/testutil"
)

func TestHealthRiseAndFall(t *testing.T) {
	fail := errors.New("down")
	tests := []struct {
		name       string
		rise, fall int
		results    []error
		// want is the verdict after each result: '+' healthy, '-' not.
		want string
	}{
		{"starts unhealthy and rises after rise passes", 2, 3, []error{nil, nil, nil}, "-++"},
		{"a failure restarts the rise", 3, 1, []error{nil, nil, fail, nil, nil, nil}, "-----+"},
		{"falls after fall failures in a row", 1, 3, []error{nil, fail, fail, fail, fail}, "+++--"},
		{"a pass restarts the fall", 1, 2, []error{nil, fail, nil, fail, nil, fail, fail}, "++++++-"},
		{"rise and fall of one flip at once", 1, 1, []error{nil, fail, nil, fail}, "+-+-"},
		{"recovery needs rise passes again", 2, 1, []error{nil, nil, fail, nil, nil}, "-+--+"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := health{rise: tc.rise, fall: tc.fall}
			var got strings.Builder
			prev := false
			for i, err := range tc.results {
				changed := h.observe(err)
				if changed != (h.healthy != prev) {
					t.Errorf("result %d: changed=%v but verdict went %v → %v", i, changed, prev, h.healthy)
				}
				prev = h.healthy
				if h.healthy {
					got.WriteByte('+')
				} else {
					got.WriteByte('-')
				}
			}
			if got.String() != tc.want {
				t.Errorf("verdicts %s, want %s", got.String(), tc.want)
			}
		})
	}
}

func TestProbes(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		case "/down":
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		default:
			w.WriteHeader(status)
		}
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := ln.Addr().String()
	defer ln.Close()
	closedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := closedLn.Addr().String()
	closedLn.Close()

	// Only the cases about the timeout run with a short one: the others
	// must not depend on how fast a loaded machine starts a shell.
	const short, long = 200 * time.Millisecond, 5 * time.Second
	tests := []struct {
		name    string
		check   string
		timeout time.Duration
		wantErr string // "" means the probe passes
	}{
		{"http 2xx passes", srv.URL + "/ok", long, ""},
		{"http redirect fails, saying where to", srv.URL + "/redirect", long,
			"302 Found: redirected to " + srv.URL + "/ok (redirects are not followed)"},
		{"http 503 fails with the status and body", srv.URL + "/down", long, "503 Service Unavailable: database unreachable"},
		{"http timeout names the timeout", srv.URL + "/slow", short, "check timeout of 200ms"},
		{"http refused, the URL unquoted", "http://" + closed + "/", long, "GET http://" + closed + "/: dial tcp " + closed + ": connect: connection refused"},
		{"tcp open passes", "tcp://" + open, long, ""},
		{"tcp refused", "tcp://" + closed, long, "connection refused"},
		{"exec exit 0 passes", "exec:true", long, ""},
		{"exec failure quotes the last output line", "exec:echo starting; echo not ready >&2; exit 3", long, "exit status 3: not ready"},
		{"exec timeout kills the command", "exec:sleep 30", short, "check timeout of 200ms"},
		{"exec timeout kills the children too", "exec:sleep 30 & sleep 30", short, "check timeout of 200ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseCheck(tc.check, newProbeClient())
			if err != nil {
				t.Fatalf("parseCheck(%q): %v", tc.check, err)
			}
			c := &checker{probe: p, timeout: tc.timeout}
			done := make(chan error, 1)
			go func() { done <- c.once(context.Background()) }()
			var got error
			select {
			case got = <-done:
			case <-time.After(waitLimit):
				t.Fatal("the probe did not return: its timeout is not enforced")
			}
			switch {
			case tc.wantErr == "" && got != nil:
				t.Errorf("probe failed: %v", got)
			case tc.wantErr != "" && got == nil:
				t.Errorf("probe passed, want an error containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(got.Error(), tc.wantErr):
				t.Errorf("error %q does not contain %q", got, tc.wantErr)
			}
		})
	}
}

func TestParseCheckAndWarmupErrors(t *testing.T) {
	tests := []struct {
		name    string
		parse   func() error
		wantErr string
	}{
		{"unknown check scheme", func() error { _, err := parseCheck("udp://127.0.0.1:53", nil); return err }, "want http://"},
		{"tcp without port", func() error { _, err := parseCheck("tcp://127.0.0.1", nil); return err }, "tcp://host:port"},
		{"http without host", func() error { _, err := parseCheck("http:///health", nil); return err }, "no host"},
		{"exec without command", func() error { _, err := parseCheck("exec:  ", nil); return err }, "needs a command"},
		{"empty check is no check", func() error {
			p, err := parseCheck("", nil)
			if p != nil {
				return errors.New("got a probe")
			}
			return err
		}, ""},
		{"unknown warm-up", func() error { _, err := parseWarmup("tcp://127.0.0.1:1", 1, nil); return err }, "want exec:COMMAND"},
		{"exec warm-up without command", func() error { _, err := parseWarmup("exec:", 1, nil); return err }, "needs a command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestCheckerReportsEveryVerdict(t *testing.T) {
	logs := &logBuffer{}
	c := &checker{spec: "test", interval: time.Millisecond, timeout: waitLimit, rise: 2, fall: 1, logger: logs.logger()}
	steps := []struct {
		result error
		want   bool
	}{
		{errors.New("refused"), false},
		{nil, false},
		{nil, true},
		{nil, true},
		{errors.New("503"), false},
	}
	results := make([]error, len(steps))
	for i, st := range steps {
		results[i] = st.result
	}
	for i, v := range feedChecker(t, c, results) {
		if st := steps[i]; v.healthy != st.want || v.err != st.result {
			t.Errorf("step %d: verdict healthy=%v err=%v, want healthy=%v err=%v", i, v.healthy, v.err, st.want, st.result)
		}
	}
	got := logs.String()
	for _, want := range []string{"msg=checking", `msg="check failed"`, "reason=refused", "msg=healthy", "msg=unhealthy", "reason=503"} {
		if !strings.Contains(got, want) {
			t.Errorf("logs lack %q:\n%s", want, got)
		}
	}
}

// TestCheckerLogsFailures: a failed check is logged when it follows a
// pass or its reason changes; a failure that goes on is logged once.
func TestCheckerLogsFailures(t *testing.T) {
	refused, down := errors.New("refused"), errors.New("503")
	tests := []struct {
		name       string
		rise, fall int
		results    []error
		// wantFailed and wantUnhealthy count the "check failed" and
		// "unhealthy" lines.
		wantFailed, wantUnhealthy int
	}{
		{"a failure that goes on, once", 1, 3, []error{nil, down, down, down, down, down}, 1, 1},
		{"separate failures among passes, each", 1, 3, []error{nil, down, nil, down, nil, down}, 3, 0},
		{"a changed reason", 1, 3, []error{nil, refused, down}, 2, 0},
		{"failures among passes before the first rise, each", 3, 1, []error{down, nil, down, nil, down}, 3, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logBuffer{}
			c := &checker{spec: "test", interval: time.Millisecond, timeout: waitLimit, rise: tc.rise, fall: tc.fall, logger: logs.logger()}
			feedChecker(t, c, tc.results)
			got := logs.String()
			if n := strings.Count(got, `msg="check failed"`); n != tc.wantFailed {
				t.Errorf("%d check failed lines, want %d:\n%s", n, tc.wantFailed, got)
			}
			if n := strings.Count(got, "msg=unhealthy"); n != tc.wantUnhealthy {
				t.Errorf("%d unhealthy lines, want %d:\n%s", n, tc.wantUnhealthy, got)
			}
		})
	}
}

// feedChecker runs c with a probe that returns results one per check,
// taking each verdict before handing over the next result, so that no
// verdict is replaced unseen; it returns the verdicts once c has stopped.
func feedChecker(t *testing.T, c *checker, results []error) []verdict {
	t.Helper()
	next := make(chan error)
	c.probe = func(ctx context.Context) error {
		select {
		case err := <-next:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan verdict, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(ctx, out)
	}()
	defer func() {
		cancel()
		<-done
	}()
	var verdicts []verdict
	for i, result := range results {
		select {
		case next <- result:
		case <-time.After(waitLimit):
			t.Fatalf("result %d: the checker did not check", i)
		}
		select {
		case v := <-out:
			verdicts = append(verdicts, v)
		case <-time.After(waitLimit):
			t.Fatalf("result %d: no verdict", i)
		}
	}
	return verdicts
}

// TestExecOutputIsBounded: a check or warm-up command that floods its
// output is quoted by its last line, without the registrar holding all of
// it in memory.
func TestExecOutputIsBounded(t *testing.T) {
	const flood = 64 << 20
	p := execProbe(fmt.Sprintf("head -c %d /dev/zero; echo; echo giving up; exit 3", flood))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := probeWithin(t, p)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "exit status 3: giving up") {
		t.Errorf("error %v, want one quoting the last line, giving up", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > flood/4 {
		t.Errorf("running a command that wrote %d MiB allocated %d MiB: its output is held whole", flood>>20, grew>>20)
	}
}

// TestExecLeavesNoProcessBehind: what a check or warm-up command started
// in the background is gone once the command has exited, whether it holds
// the command's output open or not, and the command's own result stands.
func TestExecLeavesNoProcessBehind(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	for _, tc := range []struct{ name, background string }{
		{"holding the output open", "sleep 1000 &"},
		{"with its output elsewhere", "sleep 1000 >/dev/null 2>&1 &"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pidfile := filepath.Join(t.TempDir(), "pid")
			err := probeWithin(t, execProbe(tc.background+" echo $! >"+pidfile+"; exit 0"))
			b, rerr := os.ReadFile(pidfile)
			if rerr != nil {
				t.Fatal(rerr)
			}
			pid, rerr := strconv.Atoi(strings.TrimSpace(string(b)))
			if rerr != nil {
				t.Fatal(rerr)
			}
			t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
			if err != nil {
				t.Errorf("the command exited 0, but the probe failed: %v", err)
			}
			// Killed, it may stay a zombie for a moment until its new
			// parent reaps it.
			testutil.Eventually(t, waitLimit, "the background child to be gone", func() (bool, string) {
				stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
				if err != nil {
					return true, ""
				}
				i := bytes.LastIndexByte(stat, ')')
				return i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X'), string(stat)
			})
		})
	}
}

// probeWithin runs p once, failing the test if it does not return within
// waitLimit.
func probeWithin(t *testing.T, p probe) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p(context.Background()) }()
	select {
	case err := <-done:
		return err
	case <-time.After(waitLimit):
		t.Fatal("the probe did not return")
		return nil
	}
}
