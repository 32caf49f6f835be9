package conf

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Ports filled in for addresses written without one.
const (
	zooKeeperPort = "2181"
	dnsPort       = 53
)

const maxTTL = 24 * time.Hour

// check normalises c in place, which is safe because Parse has not handed
// it out yet, and reports every rule it breaks.
func (ps *problems) check(c *Config) {
	ps.checkZooKeeper(&c.ZooKeeper)
	listen := ps.checkDNS(&c.DNS)
	ps.checkAdmin(&c.Admin, c.DNS.Listen, listen)
	ps.checkLog(&c.Log)
	servicePaths := ps.checkServices(c.Services)
	ps.checkDiscovers(c.Discover, servicePaths)
	ps.checkWatched(c)
}

// checkWatched refuses a config that watches nothing. zkdns would serve
// no name at all, which no one means; but a file read while it is being
// written (cut off before its first [[service]]) looks just like that,
// and applied live it would take every name out of DNS until the rest
// was written.
func (ps *problems) checkWatched(c *Config) {
	if len(c.Services) > 0 || len(c.Discover) > 0 || ps.quiet(pathOf("service")) || ps.quiet(pathOf("discover")) {
		return
	}
	ps.errs = append(ps.errs, &Error{File: ps.file,
		Msg: "nothing to watch: add a [[service]] or [[discover]] table; zkdns refuses a config that would serve no names, " +
			"as a file read half written would be"})
}

func (ps *problems) checkZooKeeper(z *ZooKeeper) {
	servers := pathOf("zookeeper", "servers")
	if len(z.Servers) == 0 {
		ps.missing(servers, `required: list at least one ZooKeeper server as host:port, e.g. ["127.0.0.1:2181"]`)
	}
	seen := make(map[string]int, len(z.Servers))
	for i, s := range z.Servers {
		server, problem := normaliseServer(s)
		if problem != "" {
			ps.invalid(servers.at(i), s, "%s", problem)
			continue
		}
		z.Servers[i] = server
		key := strings.ToLower(server) // host names are case-insensitive
		if j, dup := seen[key]; dup {
			ps.invalid(servers.at(i), s, "already listed as %s; list each server once", servers.at(j))
			continue
		}
		seen[key] = i
	}

	ps.checkDuration(pathOf("zookeeper", "session_timeout"), z.SessionTimeout, 100*time.Millisecond, 5*time.Minute)

	if z.Root != "" {
		if problem := zkPathProblem(z.Root); problem != "" {
			ps.invalid(pathOf("zookeeper", "root"), z.Root,
				`must be empty for no chroot, or an absolute ZooKeeper path like "/zkdns" (%s)`, problem)
		}
	}

	if a := z.Auth; a != nil {
		auth := pathOf("zookeeper", "auth")
		switch a.Scheme {
		case "digest":
		case "":
			ps.missing(auth.child("scheme"), `required: set scheme = "digest"`)
		default:
			ps.invalid(auth.child("scheme"), a.Scheme, `must be "digest", the only scheme zkdns supports`)
		}
		if a.CredentialsFile == "" {
			ps.missing(auth.child("credentials_file"), `required: the path of a file holding "user:password"`)
		}
	}

	if t := z.TLS; t != nil {
		tls := pathOf("zookeeper", "tls")
		if t.CAFile == "" {
			ps.missing(tls.child("ca_file"), "required: the PEM file of the CA that signed the servers' certificates")
		}
		switch {
		case t.CertFile == "" && t.KeyFile != "":
			ps.missing(tls.child("cert_file"), "required because key_file is set: give the client certificate and its key, or neither")
		case t.CertFile != "" && t.KeyFile == "":
			ps.missing(tls.child("key_file"), "required because cert_file is set: give the client certificate and its key, or neither")
		}
	}
}

// checkDNS checks the [dns] table and returns each listen address that
// parsed, mapped to its index in dns.listen.
func (ps *problems) checkDNS(d *DNS) map[netip.AddrPort]int {
	listen := pathOf("dns", "listen")
	if len(d.Listen) == 0 {
		ps.missing(listen, `required: list at least one IP:port to serve DNS on, e.g. ["127.0.0.1:8600"]`)
	}
	seen := make(map[netip.AddrPort]int, len(d.Listen))
	for i, l := range d.Listen {
		addr, problem := parseListen(l)
		if problem != "" {
			ps.invalid(listen.at(i), l, "%s", problem)
			continue
		}
		switch j, same, overlap := firstOverlap(addr, seen); {
		case same:
			ps.invalid(listen.at(i), l, "already listed as %s; list each address once", listen.at(j))
		case overlap:
			ps.invalid(listen.at(i), l, "overlaps %s %q: %s; list the wildcard alone, or specific addresses only", listen.at(j), d.Listen[j], wildcardOverlap)
		default:
			seen[addr] = i
		}
	}

	zonePath := pathOf("dns", "zone")
	written := d.Zone
	d.Zone = strings.ToLower(d.Zone)
	if d.Zone != "" && !strings.HasSuffix(d.Zone, ".") {
		d.Zone += "."
	}
	switch {
	case d.Zone == "":
		ps.missing(zonePath, `required: the domain zkdns answers for, e.g. "local."`)
	case d.Zone == ".":
		ps.invalid(zonePath, written, `must not be the root: give the domain zkdns answers for, e.g. "local."`)
	default:
		if problem := domainProblem(d.Zone); problem != "" {
			ps.invalid(zonePath, written, `must be a domain name like "local." or "svc.example.com." (%s)`, problem)
		}
	}

	ps.checkTTL(pathOf("dns", "ttl"), d.TTL)
	ps.checkTTL(pathOf("dns", "negative_ttl"), d.NegativeTTL)

	upstreams := pathOf("dns", "upstreams")
	for i, u := range d.Upstreams {
		upstream, ok := normaliseUpstream(u)
		if !ok {
			ps.invalid(upstreams.at(i), u, `must be an IP, or IP:port with a port from 1 to 65535, e.g. "192.0.2.53" or "[2001:db8::53]:53"`)
			continue
		}
		d.Upstreams[i] = upstream.String()
		if j, self := selfUpstream(upstream, seen); self {
			ps.invalid(upstreams.at(i), u, "is zkdns itself (%s): forwarding to it would loop; list other resolvers", listen.at(j))
		}
	}

	ps.checkAllow(d)
	return seen
}

// selfUpstream reports whether upstream reaches one of the listen
// addresses in seen (each parsed address mapped to its index in
// dns.listen), and which: the same address and port, or the same port on
// a wildcard listener when the upstream is a loopback address, or the
// unspecified address, which connects to this host.
func selfUpstream(upstream netip.AddrPort, seen map[netip.AddrPort]int) (int, bool) {
	up := upstream.Addr().Unmap()
	first, found := 0, false
	for l, i := range seen {
		if l.Port() != upstream.Port() || found && i > first {
			continue
		}
		la := l.Addr().Unmap()
		// "::" takes IPv4 too on a dual-stack host; "0.0.0.0" only IPv4.
		wildcard := la.IsUnspecified() && up.IsLoopback() && (la.Is6() || up.Is4())
		if la == up || up.IsUnspecified() || wildcard {
			first, found = i, true
		}
	}
	return first, found
}

// checkAllow validates dns.allow and normalises each entry to a prefix
// in its masked form. An unset list stays nil: the default is decided by
// the DNS server from the addresses it listens on.
func (ps *problems) checkAllow(d *DNS) {
	allow := pathOf("dns", "allow")
	if d.Allow == nil {
		return
	}
	if len(d.Allow) == 0 {
		ps.invalid(allow, "[]", `must list at least one network, e.g. ["127.0.0.0/8", "::1/128"]; remove the key for the default (every source when listening on loopback only, else loopback only)`)
		return
	}
	seen := make(map[netip.Prefix]int, len(d.Allow))
	for i, a := range d.Allow {
		prefix, ok := parseAllow(a)
		if !ok {
			ps.invalid(allow.at(i), a, `must be a network in CIDR form or a single IP, e.g. "10.0.0.0/8", "2001:db8::/32" or "192.0.2.7"`)
			continue
		}
		if j, dup := seen[prefix]; dup {
			ps.invalid(allow.at(i), a, "already listed as %s; list each network once", allow.at(j))
			continue
		}
		seen[prefix] = i
		d.Allow[i] = prefix.String()
	}
}

// parseAllow parses an allow entry: a CIDR prefix, masked to its network
// address, or a bare IP, which is a prefix of one address. IPv6 zones are
// refused: a source address never carries one when it is matched.
func parseAllow(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if addr, err := netip.ParseAddr(s); err == nil {
		if addr.Zone() != "" {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(addr, addr.BitLen()), true
	}
	prefix, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return prefix.Masked(), true
}

// checkAdmin checks [admin]. dnsListen is dns.listen, and parsed those of
// its addresses that parsed, each mapped to its index: zkdns serves DNS
// over TCP on each, so an admin address that takes one of those ports
// cannot be bound beside it, and zkdns would fail to start, or retry a
// reload for ever.
func (ps *problems) checkAdmin(a *Admin, dnsListen []string, parsed map[netip.AddrPort]int) {
	if a.Listen == "" {
		return
	}
	listen := pathOf("admin", "listen")
	host, port, err := net.SplitHostPort(a.Listen)
	if err != nil || !validPort(port, 0) || host != "" && !isIPOrHostname(host) {
		ps.invalid(listen, a.Listen,
			`must be host:port, e.g. "127.0.0.1:8601", or "" to turn the admin endpoint off`)
		return
	}
	n, _ := strconv.ParseUint(port, 10, 16)
	j, exact, clash := dnsClash(host, uint16(n), parsed)
	if !clash {
		return
	}
	dns := pathOf("dns", "listen").at(j)
	switch {
	case ps.lines.line(listen) == 0:
		// The admin address is the default, written nowhere: the DNS
		// address is the line to fix, or the place to add [admin].
		const fix = `set [admin] listen to a port of its own, or "" to turn the admin API off`
		if exact {
			ps.invalid(dns, dnsListen[j], "is also admin.listen (%q by default), the admin API's address; %s", a.Listen, fix)
		} else {
			ps.invalid(dns, dnsListen[j], "overlaps admin.listen (%q by default): %s; %s", a.Listen, wildcardOverlap, fix)
		}
	case exact:
		ps.invalid(listen, a.Listen, "is also %s, where zkdns serves DNS over UDP and TCP; give the admin API a port of its own", dns)
	default:
		ps.invalid(listen, a.Listen, "overlaps %s: %s; give the admin API a port of its own", dns, wildcardOverlap)
	}
}

// wildcardOverlap says why two listen addresses that differ cannot both
// be bound.
const wildcardOverlap = "a wildcard address (0.0.0.0, [::] or no host) takes its port on every address, so zkdns could not bind both"

// dnsClash reports whether an admin address, host and port, takes a port
// that one of the DNS listen addresses (each mapped to its index) takes
// too, and which (the first listed), and whether it is the same address.
// A host name is resolved only when zkdns binds it, so it is found to
// clash with a wildcard only.
func dnsClash(host string, port uint16, dnsListen map[netip.AddrPort]int) (index int, exact, clash bool) {
	ip, err := netip.ParseAddr(host)
	switch {
	case host == "":
		ip = netip.IPv6Unspecified()
	case err != nil:
		ip = netip.Addr{}
	}
	index, same, clash := firstOverlap(netip.AddrPortFrom(ip, port), dnsListen)
	return index, same && host != "", clash
}

// firstOverlap reports which of the listen addresses (each mapped to its
// index, the first listed wins) a socket bound to addr would overlap, if
// any, and whether it is addr itself, however written.
func firstOverlap(addr netip.AddrPort, listen map[netip.AddrPort]int) (index int, same, found bool) {
	for l, i := range listen {
		if !BindsOverlap(addr, l) || found && i > index {
			continue
		}
		index, same, found = i, l.Addr().Unmap() == addr.Addr().Unmap(), true
	}
	return index, same, found
}

// BindsOverlap reports whether sockets bound to a and b take the same
// port, so that the second cannot be bound beside the first: the same
// address, or the same port where either is a wildcard, since Go binds
// 0.0.0.0 and [::] for IPv4 and IPv6 alike. Port 0 never overlaps: each
// socket gets a free port of its own. An address without an IP (a host
// name not resolved yet) overlaps a wildcard only.
func BindsOverlap(a, b netip.AddrPort) bool {
	x, y := a.Addr().Unmap(), b.Addr().Unmap()
	return a.Port() != 0 && a.Port() == b.Port() &&
		(x.IsValid() && x == y || x.IsUnspecified() || y.IsUnspecified())
}

func (ps *problems) checkLog(l *Log) {
	level := strings.ToLower(l.Level)
	switch level {
	case "debug", "info", "warn", "error":
		l.Level = level
	default:
		ps.invalid(pathOf("log", "level"), l.Level, "must be one of debug, info, warn, error")
	}
	format := strings.ToLower(l.Format)
	switch format {
	case "text", "json":
		l.Format = format
	default:
		ps.invalid(pathOf("log", "format"), l.Format, "must be text or json")
	}
}

// checkServices checks the [[service]] tables and returns the index of
// each service path.
func (ps *problems) checkServices(services []Service) map[string]int {
	names := make(map[string]int, len(services))
	paths := make(map[string]int, len(services))
	for i := range services {
		s := &services[i]
		p := pathOf("service").at(i)

		switch {
		case s.Name == "":
			ps.missing(p.child("name"), `required: the DNS label to serve the service under, e.g. "payments"`)
		case !isLabel(s.Name):
			ps.invalid(p.child("name"), s.Name, "%s", labelAdvice(s.Name))
		default:
			if j, dup := names[s.Name]; dup {
				ps.invalid(p.child("name"), s.Name, "already the name of service[%d]; names must be unique", j)
			} else {
				names[s.Name] = i
			}
		}

		ps.checkWatchPath(p.child("path"), s.Path, i, paths, watchPath{
			holds: "the instances", example: "/services/payments", kind: "service",
			dupAdvice: "two services cannot watch one path",
		})

		s.Format = ps.checkWatch(p, s.Format, s.Endpoint, s.Warmup)
	}
	return paths
}

// checkDiscovers checks the [[discover]] tables. servicePaths are the
// [[service]] paths: a path's children are either one service's
// instances or services, and zkdns cannot watch it as both.
func (ps *problems) checkDiscovers(discovers []Discover, servicePaths map[string]int) {
	paths := make(map[string]int, len(discovers))
	for i := range discovers {
		d := &discovers[i]
		p := pathOf("discover").at(i)

		if j, taken := servicePaths[d.Path]; taken {
			ps.invalid(p.child("path"), d.Path, "already the path of service[%d]; "+
				"its children are that service's instances, so it cannot hold services too", j)
		}
		ps.checkWatchPath(p.child("path"), d.Path, i, paths, watchPath{
			holds: "services", example: "/services", kind: "discover",
			dupAdvice: "list each path once",
		})

		d.Format = ps.checkWatch(p, d.Format, d.Endpoint, d.Warmup)
	}
}

// watchPath describes, for messages, what a watched path is for.
type watchPath struct {
	holds     string // what its children are
	example   string
	kind      string // the table it is in: "service" or "discover"
	dupAdvice string
}

// checkWatchPath checks the i-th path of a table: required, an absolute
// ZooKeeper path, and not already in seen (which it is then added to).
func (ps *problems) checkWatchPath(p keyPath, path string, i int, seen map[string]int, w watchPath) {
	switch problem := zkPathProblem(path); {
	case path == "":
		ps.missing(p, "required: the ZooKeeper path whose children are %s, e.g. %q", w.holds, w.example)
	case problem != "":
		ps.invalid(p, path, "must be an absolute ZooKeeper path like %q (%s)", w.example, problem)
	default:
		if j, dup := seen[path]; dup {
			ps.invalid(p, path, "already the path of %s[%d]; %s", w.kind, j, w.dupAdvice)
		} else {
			seen[path] = i
		}
	}
}

// checkWatch checks what services and discovers share, under p: format,
// endpoint and warmup. It returns the format normalised.
func (ps *problems) checkWatch(p keyPath, format, endpoint string, warmup Duration) string {
	normal := strings.ToLower(format)
	if normal == "" {
		normal = "auto"
	}
	switch normal {
	case "auto", "serverset":
	case "curator":
		if endpoint != "" && endpoint != "ssl" {
			ps.invalid(p.child("endpoint"), endpoint, `must be "" or "ssl" for format curator (ssl serves sslPort instead of port)`)
		}
	case "nerve", "dubbo", "hostport":
		if endpoint != "" {
			ps.invalid(p.child("endpoint"), endpoint, "is only used by formats auto, curator and serverset: remove it for format %s", normal)
		}
	default:
		ps.invalid(p.child("format"), format, "must be one of auto, curator, serverset, nerve, dubbo, hostport")
	}
	ps.checkDuration(p.child("warmup"), warmup, 0, maxTTL)
	return normal
}

func (ps *problems) checkDuration(p keyPath, d Duration, lo, hi time.Duration) {
	if d.Duration < lo || d.Duration > hi {
		ps.invalid(p, d.String(), "must be from %s to %s", shortDuration(lo), shortDuration(hi))
	}
}

// checkTTL checks a TTL: DNS carries whole seconds, so "1500ms" would be
// served as 1 s and "500ms" as 0 (not cached at all), which is never what
// was meant.
func (ps *problems) checkTTL(p keyPath, d Duration) {
	switch {
	case d.Duration < 0 || d.Duration > maxTTL:
		ps.invalid(p, d.String(), "must be from 0s to %s", shortDuration(maxTTL))
	case d.Duration%time.Second != 0:
		ps.invalid(p, d.String(), "must be whole seconds (DNS carries TTLs in seconds), like %q", shortDuration(d.Duration.Round(time.Second)))
	}
}

// shortDuration writes d without the zero units time.Duration.String keeps:
// "5m" rather than "5m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// normaliseServer trims a ZooKeeper server address and gives a bare host
// the ZooKeeper port. On failure it returns a message saying what to fix.
func normaliseServer(s string) (string, string) {
	s = strings.TrimSpace(s)
	const want = `must be host:port, e.g. "127.0.0.1:2181"`
	if s == "" {
		return "", want
	}
	bare := s
	if len(bare) >= 2 && bare[0] == '[' && bare[len(bare)-1] == ']' {
		bare = bare[1 : len(bare)-1]
	}
	if _, err := netip.ParseAddr(bare); err == nil {
		return net.JoinHostPort(bare, zooKeeperPort), ""
	}
	host, port := s, zooKeeperPort
	if strings.Contains(s, ":") {
		var err error
		if host, port, err = net.SplitHostPort(s); err != nil {
			return "", want
		}
	}
	if !isIPOrHostname(host) {
		return "", fmt.Sprintf("host %q is neither an IP nor a host name; %s", host, want)
	}
	if !validPort(port, 1) {
		return "", fmt.Sprintf("port %q must be a number from 1 to 65535", port)
	}
	return net.JoinHostPort(host, port), ""
}

// parseListen parses a DNS listen address. On failure it returns a message
// saying what to fix.
func parseListen(s string) (netip.AddrPort, string) {
	addr, err := netip.ParseAddrPort(s)
	if err == nil {
		return addr, ""
	}
	const want = `must be IP:port with a literal IP, e.g. "127.0.0.1:8600" or "[::1]:8600"`
	host, port, err := net.SplitHostPort(s)
	_, ipErr := netip.ParseAddr(host)
	switch {
	case err != nil:
		return netip.AddrPort{}, want
	case host == "":
		return netip.AddrPort{}, want + `; for every address use "0.0.0.0:53" or "[::]:53"`
	case ipErr != nil && isHostname(host):
		return netip.AddrPort{}, want + ", not a host name"
	case ipErr == nil && !validPort(port, 0):
		return netip.AddrPort{}, fmt.Sprintf("port %q must be a number from 0 to 65535 (0 picks a free port)", port)
	default:
		return netip.AddrPort{}, want
	}
}

// normaliseUpstream parses an upstream resolver's IP or IP:port; a bare
// IP gets port 53. Its String is the canonical IP:port form.
func normaliseUpstream(s string) (netip.AddrPort, bool) {
	bare := s
	if len(bare) >= 2 && bare[0] == '[' && bare[len(bare)-1] == ']' {
		bare = bare[1 : len(bare)-1]
	}
	if addr, err := netip.ParseAddr(bare); err == nil {
		return netip.AddrPortFrom(addr, dnsPort), true
	}
	addr, err := netip.ParseAddrPort(s)
	if err != nil || addr.Port() == 0 {
		return netip.AddrPort{}, false
	}
	return addr, true
}

// validPort reports whether port is a decimal number from lo to 65535.
func validPort(port string, lo uint64) bool {
	if port == "" || port[0] < '0' || port[0] > '9' {
		return false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n >= lo
}

func isIPOrHostname(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return isHostname(host)
}

// isHostname reports whether host is a syntactically valid host name:
// dot-separated labels of letters, digits, '-' and '_' (seen in container
// names), none empty or over 63 bytes or starting or ending with '-'.
func isHostname(host string) bool {
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > 253 {
		return false
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := range len(label) {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// isLabel reports whether s is a DNS label as zkdns serves them: 1 to 63
// bytes of lowercase a-z, 0-9 and '-', with no '-' at either end.
func isLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// labelAdvice says why name is not a label, with a corrected name when
// lowercasing and turning '_' and '.' into '-' would make it one.
func labelAdvice(name string) string {
	const rule = "must be a DNS label (a-z, 0-9, '-', at most 63 bytes, no '-' at either end)"
	fixed := strings.Map(func(r rune) rune {
		if r == '_' || r == '.' {
			return '-'
		}
		return r
	}, strings.ToLower(name))
	if isLabel(fixed) {
		return fmt.Sprintf("%s: try %q", rule, fixed)
	}
	return rule
}

// domainProblem says why zone (lowercase, with its trailing dot) is not a
// domain name, or returns "".
func domainProblem(zone string) string {
	name := strings.TrimSuffix(zone, ".")
	if len(name) > 253 {
		return "longer than 253 bytes"
	}
	for label := range strings.SplitSeq(name, ".") {
		switch {
		case label == "":
			return "it has an empty label"
		case !isLabel(label):
			return fmt.Sprintf("label %q is not a-z, 0-9 and '-' of at most 63 bytes with no '-' at either end", label)
		}
	}
	return ""
}

// zkPathProblem says why p is not an absolute ZooKeeper path without a
// trailing "/", or returns "". "/" itself is refused: no service lives at
// the root.
func zkPathProblem(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return `it must start with "/"`
	case strings.HasSuffix(p, "/"):
		return `it must not end with "/"`
	case !utf8.ValidString(p):
		return "it is not valid UTF-8"
	}
	for elem := range strings.SplitSeq(p[1:], "/") {
		switch elem {
		case "":
			return `it has an empty element ("//")`
		case ".", "..":
			return `it has a "." or ".." element`
		}
	}
	for _, r := range p {
		// ZooKeeper refuses these code points in paths. It checks UTF-16
		// units, so everything beyond the BMP (a surrogate pair) is
		// refused too.
		if r < 0x20 || r >= 0x7f && r <= 0x9f || r >= 0xd800 && r <= 0xf8ff || r >= 0xfff0 {
			return fmt.Sprintf("it has the character %U, which ZooKeeper does not allow", r)
		}
	}
	return ""
}
