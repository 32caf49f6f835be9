package registrar

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// probe runs one health check or warm-up step; nil means it passed.
type probe func(ctx context.Context) error

// parseCheck turns Options.Check into a probe. An empty spec yields nil:
// the instance is healthy without checking. Its errors start with the spec,
// to follow the field's name in an *OptionError.
func parseCheck(spec string, client *http.Client) (probe, error) {
	switch {
	case spec == "":
		return nil, nil
	case strings.HasPrefix(spec, "http://"), strings.HasPrefix(spec, "https://"):
		u, err := parseHTTPURL(spec)
		if err != nil {
			return nil, err
		}
		return httpProbe(client, u), nil
	case strings.HasPrefix(spec, "tcp://"):
		addr := strings.TrimPrefix(spec, "tcp://")
		if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("%q: want tcp://host:port", spec)
		}
		return tcpProbe(addr), nil
	case strings.HasPrefix(spec, "exec:"):
		command := strings.TrimSpace(strings.TrimPrefix(spec, "exec:"))
		if command == "" {
			return nil, fmt.Errorf("%q: exec: needs a command, as in exec:/usr/local/bin/healthy", spec)
		}
		return execProbe(command), nil
	default:
		return nil, fmt.Errorf("%q: want http://…, https://…, tcp://host:port or exec:COMMAND", spec)
	}
}

func parseHTTPURL(spec string) (string, error) {
	u, err := url.Parse(spec)
	if err != nil {
		return "", fmt.Errorf("%q is not a URL: %w", spec, err)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%q has no host", spec)
	}
	return u.String(), nil
}

// newProbeClient returns the client for HTTP checks and warm-ups. It opens
// a new connection for every request, so that a check sees what a new
// client would (a listener that stopped accepting fails at once), and it
// ignores proxy settings in the environment: the service is on this host.
// It follows no redirect: a health endpoint that redirects (to a login
// page, say) is not answering for the service, however well the page it
// points to answers.
func newProbeClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// httpProbe passes when a GET of u answers 2xx; a redirect fails.
func httpProbe(client *http.Client, u string) probe {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		var uerr *url.Error
		if errors.As(err, &uerr) {
			// Worded as a failed status is, without the quotes url.Error
			// puts around the URL: the reason ends up quoted in a log
			// line, and quotes within it come out escaped.
			return fmt.Errorf("GET %s: %w", u, uerr.Err)
		}
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		// Read a little so that a short body can be quoted in the error;
		// the connection is not reused, so the rest need not be drained.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		if loc, err := resp.Location(); err == nil && resp.StatusCode >= 300 && resp.StatusCode <= 399 {
			return fmt.Errorf("GET %s: %s: redirected to %s (redirects are not followed)", u, resp.Status, loc)
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			if text := firstLine(body); text != "" {
				return fmt.Errorf("GET %s: %s: %s", u, resp.Status, text)
			}
			return fmt.Errorf("GET %s: %s", u, resp.Status)
		}
		return nil
	}
}

// tcpProbe passes when a TCP connection to addr opens.
func tcpProbe(addr string) probe {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// execProbe passes when command, run by /bin/sh -c, exits 0.
func execProbe(command string) probe {
	return func(ctx context.Context) error {
		return runShell(ctx, command)
	}
}

// waitDelay bounds how long a command's output is waited for once the
// command and its process group have been killed: a process that left the
// group (setsid) and keeps the pipe open must not hang the registrar.
const waitDelay = time.Second

// runShell runs command with /bin/sh -c in a process group of its own,
// which is killed as a whole when ctx ends, and also once sh has exited:
// a check or warm-up runs every interval, so whatever it started in the
// background and left behind would pile up, one set of processes per run.
// A failure carries the last line of the command's output, and not the
// command: the lines that report it name the check or warm-up already,
// and a command quoted inside a logged reason comes out escaped twice.
func runShell(ctx context.Context, command string) error {
	// The output goes to a pipe of our own rather than through exec's
	// copying, whose Wait would wait for every process holding the pipe
	// (a background child) before the group could be killed.
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pipe for the output: %w", err)
	}
	defer r.Close()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The negative pid names the group: sh and whatever it started.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = waitDelay
	cmd.Stdout, cmd.Stderr = w, w
	// Only the output's tail is kept: a command that floods its output
	// until the timeout must not cost the registrar memory in proportion.
	out := &tailBuffer{max: maxTail}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(out, r)
	}()
	err = cmd.Start()
	w.Close() // the children hold their own copies
	if err == nil {
		err = cmd.Wait()
		// What sh left in its group goes with it. While the group has
		// a member, the kernel does not hand its id out as a new pid, so
		// this reaches them and no one else; with none left, the id could
		// name another group only if the pids wrapped around since sh
		// was reaped, a moment ago.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-copied:
	case <-time.After(waitDelay):
		r.Close() // ends the copy
		<-copied
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
	}
	if text := lastLine(out.Bytes()); text != "" {
		return fmt.Errorf("%w: %s", err, text)
	}
	return err
}

// maxTail is how much of a command's output runShell keeps: enough for
// the last line that an error quotes (clipped to maxQuoted).
const maxTail = 4 << 10

// tailBuffer keeps the last max bytes written to it, up to twice that
// between trims.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > t.max {
		p = p[len(p)-t.max:]
	}
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return n, nil
}

func (t *tailBuffer) Bytes() []byte { return t.b }

// maxQuoted bounds the output quoted in an error, which ends up in logs.
const maxQuoted = 200

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	return clip(string(line))
}

func lastLine(b []byte) string {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return clip(string(b))
}

func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxQuoted {
		return s[:maxQuoted] + "…"
	}
	return s
}

// health turns a series of check results into a verdict: healthy after
// rise passes in a row, unhealthy after fall failures in a row. It starts
// unhealthy, so nothing is registered before the first rise.
type health struct {
	rise, fall int
	healthy    bool
	passes     int // consecutive passes while unhealthy
	failures   int // consecutive failures while healthy
}

// observe records one result and reports whether the verdict changed.
func (h *health) observe(err error) (changed bool) {
	if err == nil {
		h.failures = 0
		if h.healthy {
			return false
		}
		h.passes++
		if h.passes < h.rise {
			return false
		}
		h.healthy, h.passes = true, 0
		return true
	}
	h.passes = 0
	if !h.healthy {
		return false
	}
	h.failures++
	if h.failures < h.fall {
		return false
	}
	h.healthy, h.failures = false, 0
	return true
}

// verdict is the state of the health checks after one more result.
type verdict struct {
	healthy bool
	err     error // the result that led to it; nil for a pass
}

// checker runs the health check every interval and reports each verdict.
type checker struct {
	probe    probe // nil: always healthy
	spec     string
	interval time.Duration
	timeout  time.Duration
	rise     int
	fall     int
	logger   *slog.Logger
}

// run checks until ctx ends, sending a verdict after every check. out has
// room for one verdict; a verdict the receiver has not taken yet is
// replaced by the newer one, so a busy receiver never stalls the checks
// and always sees the current state.
func (c *checker) run(ctx context.Context, out chan verdict) {
	if c.probe == nil {
		c.logger.Info("healthy", "check", "none")
		send(out, verdict{healthy: true})
		return
	}
	c.logger.Info("checking", "check", c.spec, "interval", c.interval, "rise", c.rise, "fall", c.fall)
	h := health{rise: c.rise, fall: c.fall}
	ticker := time.NewTicker(c.interval)
	defer ticker.Stop()
	var lastReason string
	for {
		err := c.once(ctx)
		if ctx.Err() != nil {
			return
		}
		changed := h.observe(err)
		if err == nil {
			// A failure after a pass is news whatever its reason: only
			// a failure that goes on is logged once.
			lastReason = ""
		}
		switch {
		case changed && h.healthy:
			c.logger.Info("healthy", "passes", c.rise)
		case changed:
			c.logger.Warn("unhealthy", "reason", err.Error(), "failures", c.fall)
			lastReason = err.Error()
		case err != nil && err.Error() != lastReason:
			// Not a change of verdict, but the operator waiting for a
			// registration wants to know why it has not happened.
			c.logger.Info("check failed", "reason", err.Error(), "healthy", h.healthy)
			lastReason = err.Error()
		}
		send(out, verdict{healthy: h.healthy, err: err})
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (c *checker) once(ctx context.Context) error {
	ctx, cancel := context.WithTimeoutCause(ctx, c.timeout,
		fmt.Errorf("no answer within the check timeout of %v", c.timeout))
	defer cancel()
	err := c.probe(ctx)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
	}
	return err
}

// send puts v in the one-slot mailbox out, replacing a value not yet
// received. Only one goroutine may send on out.
func send(out chan verdict, v verdict) {
	select {
	case <-out:
	default:
	}
	out <- v
}
