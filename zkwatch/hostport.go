package zkwatch

import (
	"fmt"
	"net"
	"strings"
)

const formatHostport = "hostport"

// decodeHostport decodes the plainest registration there is: data holding
// host:port ("192.0.2.10:8080", "[2001:db8::10]:8080", "web-1.example:8080",
// surrounding whitespace ignored) or, when the data is empty, a znode NAME
// that is host:port. The instance is healthy while its znode exists. There
// is one endpoint, so any endpoint other than "" is an error.
func decodeHostport(n Node, endpoint string) (Instance, error) {
	text, source := strings.TrimSpace(string(n.Data)), "data"
	if text == "" {
		text, source = n.Name, "znode name"
	}
	host, port, err := net.SplitHostPort(text)
	if err != nil || port == "" || strings.Trim(port, "0123456789") != "" {
		return Instance{}, notThisFormat(formatHostport, source+" is not host:port")
	}
	if endpoint != "" {
		return Instance{}, invalidPayload(formatHostport,
			fmt.Errorf("endpoint %q does not exist: host:port has one endpoint, \"\"", endpoint))
	}
	inst, err := hostportInstance(n, host, port)
	if err != nil {
		return Instance{}, invalidPayload(formatHostport, fmt.Errorf("%s: %w", source, err))
	}
	return inst, nil
}

func hostportInstance(n Node, host, port string) (Instance, error) {
	inst := Instance{ID: n.Name, Format: formatHostport, Weight: DefaultWeight, Healthy: true, Registered: n.Ctime}
	var err error
	if inst.Address, err = checkAddress(host); err != nil {
		return Instance{}, err
	}
	if inst.Port, err = parsePort(port); err != nil {
		return Instance{}, err
	}
	return inst, nil
}
