package zkwatch

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// formatAuto is the format that tries every concrete decoder in turn.
const formatAuto = "auto"

// decoder is one concrete payload format. Its decode function is pure: it
// reads only its arguments, so it is safe for concurrent use.
type decoder struct {
	format string
	decode func(n Node, endpoint string) (Instance, error)
}

// decoders lists the concrete formats in the order format "auto" tries
// them. The order matters where shapes could overlap: the JSON formats are
// told apart by their distinctive keys, and the formats that read the znode
// name (dubbo, hostport) come after those that read the data.
func decoders() []decoder {
	return []decoder{
		{formatCurator, decodeCurator},
		{formatServerset, decodeServerset},
		{formatNerve, decodeNerve},
		{formatDubbo, decodeDubbo},
		{formatHostport, decodeHostport},
	}
}

// Formats returns the concrete payload formats, in the order format "auto"
// tries them. The caller owns the returned slice.
func Formats() []string {
	ds := decoders()
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.format
	}
	return names
}

// Decode turns one child znode of a service path into an Instance.
//
// format is "auto" (or "", which means the same) or one of Formats().
// endpoint picks the port for formats that publish several: a serverset
// additionalEndpoints key, or "ssl" for a curator sslPort; "" is the
// format's main endpoint.
//
// With "auto" the concrete decoders are tried in the order of Formats();
// the first whose shape the payload has decides, with its Instance or its
// error. A payload that has no known shape yields an error wrapping
// ErrNotThisFormat. Every error names the format and what is wrong.
func Decode(format, endpoint string, n Node) (Instance, error) {
	if format == "" || format == formatAuto {
		return decodeAuto(n, endpoint)
	}
	for _, d := range decoders() {
		if d.format == format {
			return d.decode(n, endpoint)
		}
	}
	return Instance{}, fmt.Errorf("zkwatch: unknown payload format %q (want %s or one of %s)",
		format, formatAuto, strings.Join(Formats(), ", "))
}

func decodeAuto(n Node, endpoint string) (Instance, error) {
	for _, d := range decoders() {
		inst, err := d.decode(n, endpoint)
		if errors.Is(err, ErrNotThisFormat) {
			continue
		}
		return inst, err
	}
	return Instance{}, &shapeError{
		format: formatAuto,
		reason: fmt.Sprintf("%s, so it matches no known payload format (tried %s); set the service's format explicitly to see why that format rejects it",
			describePayload(n), strings.Join(Formats(), ", ")),
	}
}

// describePayload says in a few words what a payload that no decoder
// recognised looks like, so that the operator knows where to look.
func describePayload(n Node) string {
	data := bytes.TrimSpace(n.Data)
	switch {
	case len(data) == 0:
		return "data is empty and the znode name is neither host:port, a nerve base64_ name nor a URL-encoded dubbo URL"
	case data[0] == '{':
		if _, reason := parseJSONObject(data); reason != "" {
			return "data " + reason
		}
		return "data is a JSON object without the keys that identify a format (curator: address and one of registrationTimeUTC, serviceType, payload, sslPort, uriSpec; serverset: serviceEndpoint; nerve: host and port)"
	default:
		return "data is neither JSON nor host:port"
	}
}

// shapeError reports that a payload does not have a format's shape at all.
// It wraps ErrNotThisFormat so that format "auto" moves on to the next
// decoder.
type shapeError struct {
	format string
	reason string
}

func (e *shapeError) Error() string {
	if e.format == formatAuto {
		return "zkwatch: payload: " + e.reason
	}
	return "zkwatch: " + e.format + " payload: " + e.reason
}

func (e *shapeError) Unwrap() error { return ErrNotThisFormat }

// notThisFormat builds the error of a decoder that does not recognise the
// payload as its own.
func notThisFormat(format, reason string) error {
	return &shapeError{format: format, reason: reason}
}

// invalidPayload builds the error of a decoder that recognised the payload
// as its own but found something wrong in it.
func invalidPayload(format string, err error) error {
	return fmt.Errorf("zkwatch: %s payload: %w", format, err)
}

// checkAddress validates an instance address and returns it in canonical
// form: an IP literal (IPv4, or IPv6 without a zone, which means nothing
// off this host) in its shortest form, or a hostname made of RFC 1123
// labels, at most 253 bytes, without its trailing dot. The unspecified
// addresses 0.0.0.0 and :: are refused: they are what a service bound to,
// not where it can be reached.
func checkAddress(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("address is empty")
	}
	if ip, err := netip.ParseAddr(addr); err == nil {
		if ip.Zone() != "" {
			return "", fmt.Errorf("address %q has an IPv6 zone, which is only meaningful on its own host", clip(addr))
		}
		ip = ip.Unmap()
		if ip.IsUnspecified() {
			return "", fmt.Errorf("address %s is unspecified; the registrar must publish an address clients can reach", addr)
		}
		return ip.String(), nil
	}
	host := strings.TrimSuffix(addr, ".")
	if !isHostname(host) {
		return "", fmt.Errorf("address %q is neither an IP address nor a valid hostname", clip(addr))
	}
	return host, nil
}

// isHostname reports whether s (without a trailing dot) is a hostname of
// RFC 1123 labels: letters, digits and inner hyphens, 1–63 bytes each, 253
// bytes in all. A name whose last label is all digits is refused: it is a
// malformed IPv4 address (such as 192.0.2.300), not a host.
func isHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	allDigits := false
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		allDigits = true
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				allDigits = false
			default:
				return false
			}
		}
	}
	return !allDigits
}

// checkPort validates a port number.
func checkPort(port int64) (uint16, error) {
	if port < 1 || port > math.MaxUint16 {
		return 0, fmt.Errorf("port %d out of range (want 1-65535)", port)
	}
	return uint16(port), nil
}

// parsePort parses a decimal port number, as JSON text or as found in a
// URL or host:port string.
func parsePort(s string) (uint16, error) {
	p, err := strconv.ParseInt(s, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("port %s out of range (want 1-65535)", clip(s))
	}
	if err != nil {
		return 0, fmt.Errorf("port %q is not an integer", clip(s))
	}
	return checkPort(p)
}

// parseWeight reads a base weight from its text (a JSON number or a
// decimal string). A weight above 65535 is clamped; one that is missing,
// negative or not a number yields DefaultWeight, since a bad weight is no
// reason to drop an otherwise healthy instance.
func parseWeight(s string) uint16 {
	s = strings.TrimSpace(s)
	if w, err := strconv.ParseInt(s, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case w < 0:
			return DefaultWeight
		case w > math.MaxUint16:
			return math.MaxUint16
		}
		return uint16(w)
	}
	// Only decimal notation: ParseFloat would also take "Inf", "NaN" and
	// hex floats, which no registrar means as a weight.
	if strings.Trim(s, "0123456789.eE+-") != "" {
		return DefaultWeight
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) || f < 0 {
		return DefaultWeight
	}
	return uint16(math.Min(math.Round(f), math.MaxUint16))
}

// registeredAt returns the registration time a payload gives in
// milliseconds since the epoch, or the znode's ctime when it gives none.
func registeredAt(millis int64, n Node) time.Time {
	if millis <= 0 {
		return n.Ctime
	}
	return time.UnixMilli(millis).UTC()
}

// clip shortens text quoted in an error message: payloads and znode names
// can be tens of kilobytes, and a log line needs only the start.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
