package zkwatch

import (
	"errors"
	"fmt"
	"strings"
)

const formatServerset = "serverset"

// decodeServerset decodes a serverset member, the JSON that Twitter
// commons, Finagle and Apache Aurora write under member_NNNNNNNNNN:
//
//	{"serviceEndpoint":{"host":"192.0.2.10","port":31943},
//	 "additionalEndpoints":{"http":{"host":"192.0.2.10","port":31944}},
//	 "status":"ALIVE","shard":0}
//
// The endpoint "" selects serviceEndpoint, any other the additional
// endpoint of that name. The instance is healthy only while status is
// ALIVE, so a member that announces STOPPING is dropped before its znode
// goes. Meta holds shard when present.
func decodeServerset(n Node, endpoint string) (Instance, error) {
	obj, reason := parseJSONObject(n.Data)
	if reason != "" {
		return Instance{}, notThisFormat(formatServerset, "data "+reason)
	}
	if !obj.hasAnyKey("serviceEndpoint", "additionalEndpoints") {
		return Instance{}, notThisFormat(formatServerset, `JSON object has neither "serviceEndpoint" nor "additionalEndpoints"`)
	}
	inst, err := serversetInstance(n, endpoint, obj)
	if err != nil {
		return Instance{}, invalidPayload(formatServerset, err)
	}
	return inst, nil
}

func serversetInstance(n Node, endpoint string, obj jsonObject) (Instance, error) {
	inst := Instance{ID: n.Name, Format: formatServerset, Weight: DefaultWeight, Registered: n.Ctime}

	// additionalEndpoints matters only when an endpoint is asked for, or
	// to list the choices when the one asked for is missing.
	additional, _, additionalErr := obj.object("additionalEndpoints")
	name := "serviceEndpoint" // for messages
	var (
		ep  jsonObject
		ok  bool
		err error
	)
	if endpoint == "" {
		ep, ok, err = obj.object(name)
	} else {
		name = "additionalEndpoints." + endpoint
		if additionalErr != nil {
			return Instance{}, additionalErr
		}
		if ep, ok, err = additional.object(endpoint); err != nil {
			err = fmt.Errorf("additionalEndpoints: %w", err)
		}
	}
	if err != nil {
		return Instance{}, err
	}
	if !ok {
		return Instance{}, fmt.Errorf("%s is missing (additional endpoints: %s)", name, endpointNames(additional))
	}

	host, _, err := ep.str("host")
	if err != nil {
		return Instance{}, fmt.Errorf("%s: %w", name, err)
	}
	if inst.Address, err = checkAddress(host); err != nil {
		return Instance{}, fmt.Errorf("%s: %w", name, err)
	}
	port, ok, err := ep.port("port")
	if err == nil && !ok {
		err = errors.New("port is missing")
	}
	if err != nil {
		return Instance{}, fmt.Errorf("%s: %w", name, err)
	}
	inst.Port = port

	status, _, err := obj.str("status")
	if err != nil {
		return Instance{}, err
	}
	inst.Healthy = status == "ALIVE"

	// Aurora writes the task's instance number as shard; it is an integer,
	// but a registrar that quotes it loses nothing by being read as text.
	if shard, ok, err := obj.number("shard"); err == nil && ok {
		inst.Meta = map[string]string{"shard": shard}
	}
	return inst, nil
}

// endpointNames lists the names of additional endpoints for an error
// message.
func endpointNames(additional jsonObject) string {
	if len(additional) == 0 {
		return "none"
	}
	return strings.Join(additional.keys(), ", ")
}
