package registrar

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"strconv"
	"time"
)

// The payload formats Run can write. Each is read back by zkwatch's
// decoder of the same name.
const (
	// FormatCurator writes an Apache Curator ServiceInstance, as Spring
	// Cloud Zookeeper does, at Path/ID. Draining sets "enabled" to false.
	FormatCurator = "curator"
	// FormatServerset writes a Finagle/Aurora serverset member at
	// Path/member_NNNNNNNNNN (a sequential znode; ID is not used).
	// Draining sets "status" to STOPPING.
	FormatServerset = "serverset"
	// FormatNerve writes an Airbnb nerve registration at Path/ID. It has no
	// draining mark: the znode is only deleted.
	FormatNerve = "nerve"
	// FormatHostport writes "host:port" at Path/ID. It has no draining
	// mark: the znode is only deleted.
	FormatHostport = "hostport"
)

// formats lists the accepted formats, for validation and messages.
func formats() []string {
	return []string{FormatCurator, FormatServerset, FormatNerve, FormatHostport}
}

// springInstanceClass is what Spring Cloud Zookeeper puts in @class, so
// that Spring clients deserialise the payload as their own.
const springInstanceClass = "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance"

// instanceInfo is what every payload is built from.
type instanceInfo struct {
	name     string
	id       string
	address  string
	port     int
	weight   int // 0: not written
	metadata map[string]string
}

// The structs below fix the key order of the JSON, which keeps the
// payloads readable in zkCli and stable in tests.

type curatorInstance struct {
	Name                string         `json:"name"`
	ID                  string         `json:"id"`
	Address             string         `json:"address"`
	Port                int            `json:"port"`
	SSLPort             *int           `json:"sslPort"`
	Payload             springInstance `json:"payload"`
	RegistrationTimeUTC int64          `json:"registrationTimeUTC"`
	ServiceType         string         `json:"serviceType"`
	URISpec             *struct{}      `json:"uriSpec"`
	Enabled             bool           `json:"enabled"`
}

type springInstance struct {
	Class    string            `json:"@class"`
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Metadata map[string]string `json:"metadata"`
}

type serversetMember struct {
	ServiceEndpoint     serversetEndpoint            `json:"serviceEndpoint"`
	AdditionalEndpoints map[string]serversetEndpoint `json:"additionalEndpoints"`
	Status              string                       `json:"status"`
	Shard               *int                         `json:"shard,omitempty"`
}

type serversetEndpoint struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

type nerveRegistration struct {
	Host   string            `json:"host"`
	Port   int               `json:"port"`
	Name   string            `json:"name"`
	Weight int               `json:"weight,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// encodePayload returns the znode data for in. registered is the time
// written where the format carries one (curator registrationTimeUTC).
// draining asks for the variant that tells readers to stop sending traffic
// while the znode still exists; formats without one (see hasDrainingMark)
// ignore it.
func encodePayload(format string, in instanceInfo, registered time.Time, draining bool) ([]byte, error) {
	var v any
	switch format {
	case FormatCurator:
		// Spring's metadata is a map of strings, so the weight is one too;
		// zkwatch reads it either way.
		meta := make(map[string]string, len(in.metadata)+1)
		maps.Copy(meta, in.metadata)
		if in.weight > 0 {
			meta["weight"] = strconv.Itoa(in.weight)
		}
		v = curatorInstance{
			Name:    in.name,
			ID:      in.id,
			Address: in.address,
			Port:    in.port,
			Payload: springInstance{
				Class:    springInstanceClass,
				ID:       in.id,
				Name:     in.name,
				Metadata: meta,
			},
			RegistrationTimeUTC: registered.UnixMilli(),
			ServiceType:         "DYNAMIC",
			Enabled:             !draining,
		}
	case FormatServerset:
		status := "ALIVE"
		if draining {
			status = "STOPPING"
		}
		m := serversetMember{
			ServiceEndpoint:     serversetEndpoint{Host: in.address, Port: in.port},
			AdditionalEndpoints: map[string]serversetEndpoint{},
			Status:              status,
		}
		// shard is the one piece of metadata a serverset has a place for.
		if s, err := strconv.Atoi(in.metadata["shard"]); err == nil {
			m.Shard = &s
		}
		v = m
	case FormatNerve:
		// nerve writes its instance_id as name, and Synapse reads it so.
		v = nerveRegistration{
			Host:   in.address,
			Port:   in.port,
			Name:   in.id,
			Weight: in.weight,
			Labels: in.metadata,
		}
	case FormatHostport:
		return []byte(net.JoinHostPort(in.address, strconv.Itoa(in.port))), nil
	default:
		return nil, fmt.Errorf("registrar: unknown payload format %q", format)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("registrar: encode %s payload: %w", format, err)
	}
	return data, nil
}

// hasDrainingMark reports whether format can say "draining" in the data of
// a znode that still exists.
func hasDrainingMark(format string) bool {
	return format == FormatCurator || format == FormatServerset
}

// isSequential reports whether format's znodes are named by ZooKeeper
// (member_NNNNNNNNNN) rather than by the instance ID.
func isSequential(format string) bool {
	return format == FormatServerset
}

// serversetPrefix is the name of a serverset member before ZooKeeper
// appends its sequence number.
const serversetPrefix = "member_"
