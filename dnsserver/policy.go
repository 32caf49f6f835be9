package dnsserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Policy says whom a Handler answers and where it sends the names outside
// its zone. The zero Policy is the default: sources are admitted as Allow
// describes for nil, and names outside the zone are REFUSED.
type Policy struct {
	// Allow lists the client networks whose queries are answered, as CIDR
	// prefixes ("10.0.0.0/8") or bare IPs (that one address). A query from
	// any other source is dropped when it came over UDP, where the source
	// address may be forged and a reply would hit whoever was named, and
	// answered REFUSED, then the connection closed, when it came over TCP,
	// whose handshake proves the source.
	//
	// Nil means the default. Under Serve, that is every source when every
	// listener is on a loopback address (only this host can reach those),
	// and loopback sources only otherwise, so that exposing zkdns on a
	// network takes an explicit list. A direct call of ServeDNS admits
	// every source. An empty, non-nil list admits no one.
	Allow []string

	// Upstreams are the resolvers, as IP:port, that names outside the zone
	// are forwarded to. They are tried in this order: the next one is
	// asked when one times out, fails, or answers SERVFAIL or REFUSED.
	// None means such names are answered REFUSED.
	Upstreams []string
}

// policy is a Policy parsed once, so that queries only compare addresses.
type policy struct {
	allow     []netip.Prefix
	allowSet  bool // Allow was given; otherwise the default applies
	upstreams []netip.AddrPort
}

// SetPolicy makes p apply to every query from now on; queries already in
// hand finish under the policy they started with. It returns an error,
// and keeps the policy in force, when an entry of p does not parse.
func (h *Handler) SetPolicy(p Policy) error {
	compiled, err := compilePolicy(p)
	if err != nil {
		return err
	}
	h.policy.Store(compiled)
	return nil
}

func compilePolicy(p Policy) (*policy, error) {
	c := &policy{allowSet: p.Allow != nil}
	for _, a := range p.Allow {
		prefix, err := parsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("dnsserver: policy: allow %q: want a network like 10.0.0.0/8 or an IP like 192.0.2.7: %w", a, err)
		}
		c.allow = append(c.allow, prefix)
	}
	for _, u := range p.Upstreams {
		ap, err := netip.ParseAddrPort(u)
		if err == nil && ap.Port() == 0 {
			err = errors.New("port 0 is not a resolver's port")
		}
		if err != nil {
			return nil, fmt.Errorf("dnsserver: policy: upstream %q: want an IP and a port, like 192.0.2.53:53: %w", u, err)
		}
		c.upstreams = append(c.upstreams, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	return c, nil
}

// parsePrefix parses a CIDR prefix, masked, or a bare IP as a prefix of
// one address.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		addr = addr.Unmap().WithZone("")
		return netip.PrefixFrom(addr, addr.BitLen()), nil
	}
	prefix, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if prefix.Addr().Is4In6() && prefix.Bits() >= 96 {
		// A client never shows up as ::ffff:a.b.c.d: sources are unmapped
		// before they are matched, so match the IPv4 network instead.
		prefix = netip.PrefixFrom(prefix.Addr().Unmap(), prefix.Bits()-96)
	}
	return prefix.Masked(), nil
}

// admits reports whether a query from src is answered. env is nil for a
// direct ServeDNS call, which admits every source by default. src may be
// as a socket gave it: an IPv4 client of a dual-stack socket comes
// IPv4-mapped and a link-local one with its zone, and prefixes match
// neither form.
func (p *policy) admits(src netip.Addr, env *serveEnv) bool {
	src = src.Unmap().WithZone("")
	if p == nil || !p.allowSet {
		return env == nil || env.openByDefault || src.IsLoopback()
	}
	for _, prefix := range p.allow {
		if prefix.Contains(src) {
			return true
		}
	}
	return false
}

// forwarding reports whether names outside the zone go to upstreams.
func (p *policy) forwarding() bool { return p != nil && len(p.upstreams) > 0 }

// sourceOf returns the address a query came from, unmapped and without an
// IPv6 zone, as prefixes are matched; the zero AddrPort when a is not an
// IP socket address, which only a default policy admits.
func sourceOf(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		if a == nil {
			return netip.AddrPort{}
		}
		parsed, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.AddrPort{}
		}
		ap = parsed
	}
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}
