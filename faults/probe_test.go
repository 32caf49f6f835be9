package faults_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/zkdns/zkdns/internal/testutil"
)

// prober is the resolver loop every scenario runs: it queries zkdns over
// UDP with miekg/dns (A and SRV for each service, back to back) and, every
// few rounds, through Go's own resolver, and records every answer that
// breaks the guarantee: a SERVFAIL or other error rcode, an empty answer,
// a query that got no reply, or an answer set the scenario does not allow.
type prober struct {
	server   string
	services []string
	// allowed, when set, vets each A answer's sorted addresses.
	allowed func(svc string, addrs []string) error

	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex // guards everything below
	rounds   int
	problems map[string]int // kind → count
	samples  []string       // the first problems, with their time
	started  time.Time
}

// goResolverEvery is how many rounds pass between two queries through
// Go's resolver, which is slower than a bare exchange.
const goResolverEvery = 5

// maxSamples bounds how many problem descriptions a report keeps.
const maxSamples = 10

// startProber starts the loop against server for services (their names
// in the zone local.); it runs until stop.
func startProber(server string, allowed func(string, []string) error, services ...string) *prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{
		server:   server,
		services: services,
		allowed:  allowed,
		cancel:   cancel,
		done:     make(chan struct{}),
		problems: map[string]int{},
		started:  time.Now(),
	}
	go p.run(ctx)
	return p
}

func (p *prober) run(ctx context.Context) {
	defer close(p.done)
	client := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	resolver := testutil.Resolver(p.server)
	for round := 0; ctx.Err() == nil; round++ {
		for _, svc := range p.services {
			p.exchange(ctx, client, svc, dns.TypeA)
			p.exchange(ctx, client, svc, dns.TypeSRV)
			if round%goResolverEvery == 0 {
				p.goResolver(ctx, resolver, svc)
			}
		}
		p.mu.Lock()
		p.rounds++
		p.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (p *prober) exchange(ctx context.Context, c *dns.Client, svc string, qtype uint16) {
	q := new(dns.Msg)
	q.SetQuestion(svc+".local.", qtype)
	r, _, err := c.ExchangeContext(ctx, q, p.server)
	what := svc + " " + dns.TypeToString[qtype]
	switch {
	case ctx.Err() != nil:
		return // the loop is stopping; this query does not count
	case err != nil:
		p.problem("no reply", what, err.Error())
	case r.Rcode != dns.RcodeSuccess:
		p.problem(dns.RcodeToString[r.Rcode], what, "")
	case len(r.Answer) == 0:
		p.problem("empty answer", what, "")
	case qtype == dns.TypeA && p.allowed != nil:
		if err := p.allowed(svc, addrsOf(r)); err != nil {
			p.problem("answer not allowed", what, err.Error())
		}
	}
}

func (p *prober) goResolver(ctx context.Context, r *net.Resolver, svc string) {
	lookupCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	name := svc + ".local."
	_, srvs, err := r.LookupSRV(lookupCtx, "", "", name)
	if ctx.Err() != nil {
		return
	}
	if err != nil || len(srvs) == 0 {
		p.problem("go resolver SRV failed", svc, fmt.Sprint(err))
		return
	}
	addrs, err := r.LookupHost(lookupCtx, name)
	if ctx.Err() != nil {
		return
	}
	if err != nil || len(addrs) == 0 {
		p.problem("go resolver A failed", svc, fmt.Sprint(err))
		return
	}
	if p.allowed != nil {
		sort.Strings(addrs)
		if err := p.allowed(svc, addrs); err != nil {
			p.problem("answer not allowed", svc+" via go resolver", err.Error())
		}
	}
}

func (p *prober) problem(kind, what, detail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems[kind]++
	if len(p.samples) < maxSamples {
		p.samples = append(p.samples, fmt.Sprintf("+%s %s: %s %s",
			time.Since(p.started).Round(time.Millisecond), what, kind, detail))
	}
}

// stop ends the loop and fails the test if any answer broke the
// guarantee; it logs how many rounds ran.
func (p *prober) stop(t *testing.T) {
	t.Helper()
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	t.Logf("resolver loop: %d rounds over %s, %d queries each", p.rounds,
		time.Since(p.started).Round(time.Millisecond), 2*len(p.services))
	if p.rounds == 0 {
		t.Error("the resolver loop never completed a round")
	}
	if len(p.problems) > 0 {
		t.Errorf("the resolver loop saw answers that break the guarantee: %v\n%s",
			p.problems, strings.Join(p.samples, "\n"))
	}
}

// addrsOf returns the sorted addresses of a reply's A and AAAA records.
func addrsOf(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	sort.Strings(out)
	return out
}

// exactly allows only the given address set for every service.
func exactly(want map[string][]string) func(string, []string) error {
	return func(svc string, addrs []string) error {
		if !slices.Equal(addrs, want[svc]) {
			return fmt.Errorf("got %v, want %v", addrs, want[svc])
		}
		return nil
	}
}

// within allows any non-empty subset of the given addresses: what a
// service may show while it moves from one set to another.
func within(union map[string][]string) func(string, []string) error {
	return func(svc string, addrs []string) error {
		for _, a := range addrs {
			if !slices.Contains(union[svc], a) {
				return fmt.Errorf("got %v: %s was never registered under %s here", addrs, a, svc)
			}
		}
		return nil
	}
}

// oneOf allows exactly one of the given whole views: a service may show
// the old set or the new one, and, because the swap is one update for all
// services, nothing in between.
func oneOf(views ...map[string][]string) func(string, []string) error {
	return func(svc string, addrs []string) error {
		for _, v := range views {
			if slices.Equal(addrs, v[svc]) {
				return nil
			}
		}
		return fmt.Errorf("got %v, want one of the whole sets %v", addrs, views)
	}
}

// including allows any answer that holds the given addresses (the
// instances that never leave), whatever else comes and goes.
func including(anchors map[string][]string) func(string, []string) error {
	return func(svc string, addrs []string) error {
		for _, a := range anchors[svc] {
			if !slices.Contains(addrs, a) {
				return fmt.Errorf("got %v without %s, which never left", addrs, a)
			}
		}
		return nil
	}
}

// waitRounds returns once the loop has completed n more rounds, so a
// fault is injected while queries are known to flow.
func (p *prober) waitRounds(t *testing.T, n int) {
	t.Helper()
	p.mu.Lock()
	target := p.rounds + n
	p.mu.Unlock()
	testutil.Eventually(t, waitLimit, fmt.Sprintf("the resolver loop to complete %d rounds", n), func() (bool, string) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.rounds >= target, fmt.Sprintf("%d rounds", p.rounds)
	})
}
