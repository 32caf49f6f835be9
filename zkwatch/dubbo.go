package zkwatch

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

const formatDubbo = "dubbo"

// decodeDubbo decodes an Apache Dubbo 2.x provider, registered under
// /dubbo/<interface>/providers as an ephemeral znode whose NAME is the
// provider URL, URL-encoded once:
//
//	dubbo%3A%2F%2F192.0.2.10%3A20880%2Fcom.example.DemoService%3Fanyhost%3Dtrue%26…%26timestamp%3D1700000000000%26weight%3D50
//
// The scheme is the protocol (dubbo, tri, rest, …). The data is ignored:
// it is empty, or the registering host's IP that Curator writes by default.
// The instance is healthy unless enabled=false or a disabled parameter is
// present; it was registered at timestamp (ms); its weight is weight; Meta
// holds every URL parameter as Dubbo wrote it. Dubbo has one endpoint per
// URL, so any endpoint other than "" is an error.
func decodeDubbo(n Node, endpoint string) (Instance, error) {
	scheme, ok := dubboScheme(n.Name)
	if !ok {
		return Instance{}, notThisFormat(formatDubbo, "znode name is not a URL-encoded <scheme>://… URL")
	}
	inst, err := dubboInstance(n, endpoint, scheme)
	if err != nil {
		return Instance{}, invalidPayload(formatDubbo, err)
	}
	return inst, nil
}

// dubboScheme returns the scheme of a name that starts like a URL-encoded
// URL: an RFC 3986 scheme followed by "://" encoded as %3A%2F%2F, in
// either case.
func dubboScheme(name string) (string, bool) {
	const sep = "%3A%2F%2F"
	i := strings.IndexByte(name, '%')
	if i < 1 || len(name) < i+len(sep) || !strings.EqualFold(name[i:i+len(sep)], sep) {
		return "", false
	}
	scheme := name[:i]
	for j := 0; j < len(scheme); j++ {
		c := scheme[j]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return "", false
		}
	}
	return scheme, true
}

func dubboInstance(n Node, endpoint, scheme string) (Instance, error) {
	if endpoint != "" {
		return Instance{}, fmt.Errorf("endpoint %q does not exist: a dubbo provider URL has one endpoint, \"\"", endpoint)
	}
	switch strings.ToLower(scheme) {
	case "consumer", "override", "absent", "route", "condition", "script", "empty":
		return Instance{}, fmt.Errorf("a %s:// URL is not a provider; point the service path at /dubbo/<interface>/providers", scheme)
	}
	// Dubbo encodes with Java's URLEncoder, which writes a space as "+".
	raw, err := url.QueryUnescape(n.Name)
	if err != nil {
		return Instance{}, fmt.Errorf("znode name is not validly URL-encoded: %w", err)
	}
	if !utf8.ValidString(raw) {
		return Instance{}, errors.New("znode name's provider URL is not UTF-8")
	}
	// Parse the way Dubbo does rather than by RFC 3986: Dubbo writes
	// IPv6 hosts unbracketed and separates parameters with ";" as well.
	body, query, _ := strings.Cut(raw[len(scheme)+len("://"):], "?")
	authority, _, _ := strings.Cut(body, "/")
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		authority = authority[at+1:] // credentials are no business of DNS
	}
	host, port, err := splitDubboAuthority(authority)
	if err != nil {
		return Instance{}, err
	}

	inst := Instance{ID: n.Name, Format: formatDubbo, Weight: DefaultWeight, Healthy: true}
	if inst.Address, err = checkAddress(host); err != nil {
		return Instance{}, err
	}
	if inst.Port, err = parsePort(port); err != nil {
		return Instance{}, err
	}

	params := dubboParams(query)
	if category, ok := dubboParam(params, "category"); ok && category != "providers" {
		return Instance{}, fmt.Errorf("URL has category=%s; only providers are instances", clip(category))
	}
	if enabled, _ := dubboParam(params, "enabled"); strings.EqualFold(enabled, "false") {
		inst.Healthy = false
	}
	if _, ok := dubboParam(params, "disabled"); ok {
		inst.Healthy = false
	}
	if w, ok := dubboParam(params, "weight"); ok {
		inst.Weight = parseWeight(w)
	}
	timestamp, _ := dubboParam(params, "timestamp")
	millis, _ := strconv.ParseInt(timestamp, 10, 64)
	inst.Registered = registeredAt(millis, n)
	inst.Meta = params
	return inst, nil
}

// splitDubboAuthority splits host:port, where the host may be an IPv6
// address with or without brackets; without them the port is what follows
// the last colon, as Dubbo reads it.
func splitDubboAuthority(authority string) (host, port string, err error) {
	if rest, ok := strings.CutPrefix(authority, "["); ok {
		host, rest, ok = strings.Cut(rest, "]")
		if !ok {
			return "", "", fmt.Errorf("provider URL host %q lacks its closing bracket", clip(authority))
		}
		port, ok = strings.CutPrefix(rest, ":")
		if !ok || port == "" {
			return "", "", errors.New("provider URL has no port")
		}
		return host, port, nil
	}
	colon := strings.LastIndexByte(authority, ':')
	if colon < 0 || colon == len(authority)-1 {
		return "", "", errors.New("provider URL has no port")
	}
	return authority[:colon], authority[colon+1:], nil
}

// dubboParams splits a provider URL's query the way Dubbo's own parser
// does: pairs separated by "&" or ";", split at the first "=", a bare key
// standing for itself, values left as written. Values that Dubbo encodes a
// second time (monitor, refer, …) therefore stay encoded, as Dubbo's tools
// show them. It returns nil for an empty query.
func dubboParams(query string) map[string]string {
	var params map[string]string
	for pair := range strings.FieldsFuncSeq(query, func(r rune) bool { return r == '&' || r == ';' }) {
		key, value, ok := strings.Cut(pair, "=")
		if key == "" {
			continue
		}
		if !ok {
			value = key
		}
		if params == nil {
			params = make(map[string]string)
		}
		params[key] = value
	}
	return params
}

// dubboParam looks a parameter up as Dubbo does: old providers wrote
// defaults as "default.<key>", which count when <key> itself is absent.
func dubboParam(params map[string]string, key string) (string, bool) {
	if v, ok := params[key]; ok {
		return v, true
	}
	v, ok := params["default."+key]
	return v, ok
}
