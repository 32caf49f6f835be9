package zkclient

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// lookupTimeout bounds the name lookups of HostProvider.Init.
const lookupTimeout = 3 * time.Second

// HostProvider hands the client its servers to try in turn, as the
// client's own DNSHostProvider does: every address a server's name
// resolves to, shuffled. Unlike it, a name that does not resolve when the
// client starts (a typo in one of five servers, DNS not up yet at boot)
// fails neither the start nor the other servers: it is kept as it is, and
// the dialer looks it up again at every attempt, so it joins as soon as it
// resolves. The client's own provider fails Connect for any such name.
//
// Use a new one for every zk.Connect.
type HostProvider struct {
	// Logger receives one warning per name that does not resolve at Init.
	Logger *slog.Logger
	// lookup is net.Resolver.LookupHost, replaceable by tests.
	lookup func(ctx context.Context, host string) ([]string, error)

	mu         sync.Mutex
	servers    []string
	curr, last int
}

// Init resolves servers (host:port each).
func (p *HostProvider) Init(servers []string) error {
	lookup := p.lookup
	if lookup == nil {
		lookup = net.DefaultResolver.LookupHost
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	var found []string
	for _, server := range servers {
		host, port, err := net.SplitHostPort(server)
		if err != nil {
			return err
		}
		addrs, err := lookup(ctx, host)
		if err != nil || len(addrs) == 0 {
			if err == nil {
				err = errors.New("no addresses")
			}
			if p.Logger != nil {
				p.Logger.Warn("zookeeper server name does not resolve; it is looked up again at every connection attempt (check the name and this host's DNS)",
					"server", server, "err", err)
			}
			found = append(found, server)
			continue
		}
		for _, addr := range addrs {
			found = append(found, net.JoinHostPort(addr, port))
		}
	}
	if len(found) == 0 {
		return errors.New("zkclient: no ZooKeeper servers given")
	}
	rand.Shuffle(len(found), func(i, j int) { found[i], found[j] = found[j], found[i] })
	p.mu.Lock()
	defer p.mu.Unlock()
	p.servers, p.curr, p.last = found, -1, -1
	return nil
}

// Len returns the number of servers.
func (p *HostProvider) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.servers)
}

// Next returns the server to try next; retryStart is true when every one
// has been tried since the last connection.
func (p *HostProvider) Next() (server string, retryStart bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.curr = (p.curr + 1) % len(p.servers)
	retryStart = p.curr == p.last
	if p.last == -1 {
		p.last = 0
	}
	return p.servers[p.curr], retryStart
}

// Connected records that the last server returned by Next took the
// connection.
func (p *HostProvider) Connected() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = p.curr
}
