package zkwatch

import (
	"fmt"
	"strings"
)

const formatCurator = "curator"

// curatorSSLEndpoint is the endpoint that selects a curator instance's
// sslPort instead of its port.
const curatorSSLEndpoint = "ssl"

// decodeCurator decodes an Apache Curator x-discovery ServiceInstance, the
// JSON that Curator's ServiceDiscovery and Spring Cloud Zookeeper write:
//
//	{"name":"payments","id":"…","address":"192.0.2.10","port":8080,"sslPort":null,
//	 "payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance",
//	            "id":"payments-1","name":"payments","metadata":{"instance_status":"UP"}},
//	 "registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":{…},"enabled":true}
//
// The endpoint "" selects port, "ssl" selects sslPort. The instance is
// healthy unless enabled is false or payload.metadata.instance_status (set
// by Spring's service-registry endpoint) is OUT_OF_SERVICE. Meta is
// payload.metadata; the weight is its "weight" entry when numeric.
func decodeCurator(n Node, endpoint string) (Instance, error) {
	obj, reason := parseJSONObject(n.Data)
	if reason != "" {
		return Instance{}, notThisFormat(formatCurator, "data "+reason)
	}
	if !obj.hasAnyKey("address") {
		return Instance{}, notThisFormat(formatCurator, `JSON object has no "address"`)
	}
	// "address" alone is too common a key; Curator's serializer also
	// always writes these, null or not.
	if !obj.hasAnyKey("registrationTimeUTC", "serviceType", "payload", "sslPort", "uriSpec") {
		return Instance{}, notThisFormat(formatCurator,
			`JSON object has "address" but none of registrationTimeUTC, serviceType, payload, sslPort, uriSpec`)
	}
	inst, err := curatorInstance(n, endpoint, obj)
	if err != nil {
		return Instance{}, invalidPayload(formatCurator, err)
	}
	return inst, nil
}

func curatorInstance(n Node, endpoint string, obj jsonObject) (Instance, error) {
	inst := Instance{ID: n.Name, Format: formatCurator, Weight: DefaultWeight, Healthy: true}

	addr, _, err := obj.str("address")
	if err != nil {
		return Instance{}, err
	}
	if inst.Address, err = checkAddress(addr); err != nil {
		return Instance{}, err
	}

	var portKey string
	switch endpoint {
	case "":
		portKey = "port"
	case curatorSSLEndpoint:
		portKey = "sslPort"
	default:
		return Instance{}, fmt.Errorf("endpoint %q does not exist: curator instances have \"\" (port) and %q (sslPort)",
			endpoint, curatorSSLEndpoint)
	}
	port, ok, err := obj.port(portKey)
	if err != nil {
		return Instance{}, err
	}
	if !ok {
		return Instance{}, fmt.Errorf("%s is missing or null, so endpoint %q has no port", portKey, endpoint)
	}
	inst.Port = port

	millis, _, err := obj.integer("registrationTimeUTC")
	if err != nil {
		return Instance{}, err
	}
	inst.Registered = registeredAt(millis, n)

	if enabled, ok := obj.get("enabled"); ok && string(enabled) == "false" {
		inst.Healthy = false
	}

	// The payload is of whatever type the registering application chose;
	// only Spring's shape, an object holding a metadata object, means
	// anything here, so any other payload is ignored rather than refused.
	payload, _, _ := obj.object("payload")
	metadata, _, _ := payload.object("metadata")
	if status, _, _ := metadata.str("instance_status"); strings.EqualFold(status, "OUT_OF_SERVICE") {
		inst.Healthy = false
	}
	if w, ok, _ := metadata.number("weight"); ok {
		inst.Weight = parseWeight(w)
	}
	inst.Meta = metadata.flatten()
	return inst, nil
}
