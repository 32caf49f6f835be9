package registrar

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// routeProbe4 and routeProbe6 are addresses off this host, used only to
// ask the kernel which local address it would send from: connecting a UDP
// socket picks the route and the source address without sending a packet.
// They are documentation addresses, so nothing real is ever named.
const (
	routeProbe4 = "192.0.2.1:9"
	routeProbe6 = "[2001:db8::1]:9"
)

// primaryAddress returns the address other hosts most likely reach this
// host at: the source address of the default route, or else the first
// global unicast address of an interface that is up.
func primaryAddress() (string, error) {
	for _, target := range []string{routeProbe4, routeProbe6} {
		c, err := net.Dial("udp", target)
		if err != nil {
			continue
		}
		local, ok := c.LocalAddr().(*net.UDPAddr)
		c.Close()
		if ok {
			if ip, ok := netip.AddrFromSlice(local.IP); ok && usable(ip.Unmap()) {
				return ip.Unmap().String(), nil
			}
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("registrar: list network interfaces to find this host's address: %w", err)
	}
	var v6 string
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			prefix, err := netip.ParsePrefix(a.String())
			if err != nil || !usable(prefix.Addr()) {
				continue
			}
			if prefix.Addr().Is4() {
				return prefix.Addr().String(), nil
			}
			if v6 == "" {
				v6 = prefix.Addr().String()
			}
		}
	}
	if v6 != "" {
		return v6, nil
	}
	return "", errors.New("registrar: this host has no route and no global address to register; set Address (-address)")
}

// usable reports whether ip can be published for other hosts to reach.
func usable(ip netip.Addr) bool {
	return ip.IsValid() && ip.IsGlobalUnicast() && !ip.IsLinkLocalUnicast() && ip.Zone() == ""
}

// checkAddress validates an explicit Address: an IP literal other than
// the unspecified address, or a hostname made of RFC 1123 labels. It
// returns the address in the form zkdns serves it. Its errors start with
// the address, to follow the field's name in an *OptionError.
func checkAddress(addr string) (string, error) {
	if ip, err := netip.ParseAddr(addr); err == nil {
		ip = ip.Unmap()
		switch {
		case ip.Zone() != "":
			return "", fmt.Errorf("%q has an IPv6 zone, which means nothing off this host", addr)
		case ip.IsUnspecified():
			return "", fmt.Errorf("%s is what a service binds to, not where it is reached; give this host's address", addr)
		}
		return ip.String(), nil
	}
	host := strings.TrimSuffix(addr, ".")
	if !isHostname(host) {
		return "", fmt.Errorf("%q is neither an IP address nor a hostname", addr)
	}
	return host, nil
}

// isHostname reports whether s is a hostname of RFC 1123 labels whose last
// label is not all digits (that would be a malformed IPv4 address).
func isHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	lastAllDigits := false
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		lastAllDigits = true
		for _, c := range []byte(label) {
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				lastAllDigits = false
			default:
				return false
			}
		}
	}
	return !lastAllDigits
}

// defaultID is the instance ID when none is given: address-port, with
// every character that does not belong in a znode name or a DNS label
// (the colons of an IPv6 address) turned into '-'.
func defaultID(address string, port int) string {
	return sanitizeID(fmt.Sprintf("%s-%d", address, port))
}

func sanitizeID(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
			b.WriteByte(c)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// checkID validates an explicit ID as the last element of a znode path.
// Its errors start with the ID, to follow the field's name in an
// *OptionError.
func checkID(id string) error {
	switch {
	case id == "." || id == "..":
		return fmt.Errorf("%q is not a znode name", id)
	case strings.ContainsRune(id, '/'):
		return fmt.Errorf("%q contains '/'; it must be a single znode name", id)
	}
	for _, r := range id {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || (r >= 0xd800 && r <= 0xf8ff) || (r >= 0xfff0 && r <= 0xffff) {
			return fmt.Errorf("%q contains a character ZooKeeper does not allow in a path", id)
		}
	}
	return nil
}
