package zkwatch

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

const formatNerve = "nerve"

// nerveNamePrefix starts the child name of a nerve reporter with
// use_path_encoding, which carries the whole payload in the name so that
// a watcher can list a service without reading every child.
const nerveNamePrefix = "base64_"

// decodeNerve decodes what Airbnb's nerve (SmartStack) registers:
//
//	{"host":"192.0.2.10","port":3000,"name":"i-0abc","weight":2,"labels":{"az":"us-east-1a"}}
//
// either as the znode's data or, when the data is empty, encoded in the
// child name as base64_<length>_<base64 of the JSON>_<sequence>. The
// instance is healthy while its znode exists: nerve deletes it when the
// health checks fail. Meta holds the labels plus name. Nerve has one
// endpoint, so any endpoint other than "" is an error.
func decodeNerve(n Node, endpoint string) (Instance, error) {
	obj, err := nerveObject(n)
	if err != nil {
		return Instance{}, err
	}
	inst, err := nerveInstance(n, endpoint, obj)
	if err != nil {
		return Instance{}, invalidPayload(formatNerve, err)
	}
	return inst, nil
}

// nerveObject finds the registration: in the data or, when that is empty,
// in an encoded child name.
func nerveObject(n Node) (jsonObject, error) {
	if len(bytes.TrimSpace(n.Data)) != 0 {
		obj, reason := parseJSONObject(n.Data)
		if reason != "" {
			return nil, notThisFormat(formatNerve, "data "+reason)
		}
		if !obj.hasAnyKey("host") || !obj.hasAnyKey("port") {
			return nil, notThisFormat(formatNerve, `JSON object lacks "host" or "port"`)
		}
		return obj, nil
	}
	if !strings.HasPrefix(n.Name, nerveNamePrefix) {
		return nil, notThisFormat(formatNerve, "data is empty and the znode name does not start with "+nerveNamePrefix)
	}
	// The name claims to be nerve's: from here on, faults are errors.
	data, err := nerveNamePayload(n.Name)
	if err != nil {
		return nil, invalidPayload(formatNerve, err)
	}
	obj, reason := parseJSONObject(data)
	if reason != "" {
		return nil, invalidPayload(formatNerve, errors.New("znode name's decoded payload "+reason))
	}
	if !obj.hasAnyKey("host") || !obj.hasAnyKey("port") {
		return nil, invalidPayload(formatNerve, errors.New(`znode name's decoded payload lacks "host" or "port"`))
	}
	return obj, nil
}

func nerveInstance(n Node, endpoint string, obj jsonObject) (Instance, error) {
	if endpoint != "" {
		return Instance{}, fmt.Errorf("endpoint %q does not exist: nerve instances have one endpoint, \"\"", endpoint)
	}
	inst := Instance{ID: n.Name, Format: formatNerve, Weight: DefaultWeight, Healthy: true, Registered: n.Ctime}

	host, _, err := obj.str("host")
	if err != nil {
		return Instance{}, err
	}
	if inst.Address, err = checkAddress(host); err != nil {
		return Instance{}, err
	}
	// The shape check saw "port", but it may be null.
	port, ok, err := obj.port("port")
	if err == nil && !ok {
		err = errors.New("port is null")
	}
	if err != nil {
		return Instance{}, err
	}
	inst.Port = port

	// nerve itself refuses a weight that is not a non-negative integer, so
	// anything else came from another writer; it is not worth dropping the
	// instance over.
	if w, ok, err := obj.number("weight"); err == nil && ok {
		inst.Weight = parseWeight(w)
	}
	labels, _, _ := obj.object("labels")
	inst.Meta = labels.flatten()
	if name, ok, _ := obj.str("name"); ok && name != "" {
		if inst.Meta == nil {
			inst.Meta = make(map[string]string, 1)
		}
		inst.Meta["name"] = name
	}
	return inst, nil
}

// nerveNamePayload extracts the JSON from a nerve child name of the form
// base64_<length>_<base64>_<sequence>. The length is needed because the
// URL-safe alphabet nerve uses contains "_" itself. Both alphabets are
// accepted, with or without padding.
func nerveNamePayload(name string) ([]byte, error) {
	rest := strings.TrimPrefix(name, nerveNamePrefix)
	digits, rest, ok := strings.Cut(rest, "_")
	if !ok {
		return nil, fmt.Errorf("znode name is not %s<length>_<base64>_<sequence>", nerveNamePrefix)
	}
	length, err := strconv.Atoi(digits)
	if err != nil || length <= 0 || length > len(rest) {
		return nil, fmt.Errorf("znode name: encoded length %q does not fit the name", clip(digits))
	}
	encoded, tail := rest[:length], rest[length:]
	// nerve appends "_" to the name, then ZooKeeper the sequence number of
	// an ephemeral_sequential node.
	if seq, ok := strings.CutPrefix(tail, "_"); !ok || strings.Trim(seq, "0123456789") != "" {
		return nil, fmt.Errorf("znode name: %q after the encoded payload is not _<sequence>", clip(tail))
	}
	// Map the standard alphabet onto the URL-safe one and drop the padding,
	// so one decoder reads every variant.
	encoded = strings.TrimRight(encoded, "=")
	encoded = strings.NewReplacer("+", "-", "/", "_").Replace(encoded)
	data, err := base64.RawURLEncoding.DecodeString(encoded)
	if err != nil {
		return nil, fmt.Errorf("znode name: encoded payload is not base64: %w", err)
	}
	return data, nil
}
