package zkwatch

import (
	"errors"
	"time"
)

// Node is one child znode of a service path, as read from ZooKeeper: the
// input of every payload decoder.
type Node struct {
	// Name is the znode's own name (the last path element), not its path.
	Name string
	// Data is the znode's payload; it may be empty.
	Data []byte
	// Ctime is when the znode was created. Decoders use it as the
	// registration time when the payload carries none.
	Ctime time.Time
}

// Instance is one decoded service instance.
type Instance struct {
	// ID is the znode name the instance was read from.
	ID string
	// Format is the decoder that accepted the payload ("curator", …).
	Format string
	// Address is an IP literal or a hostname, never empty.
	Address string
	// Port is the service port, 1–65535.
	Port uint16
	// Weight is the base weight from the payload, or DefaultWeight.
	Weight uint16
	// Healthy is the format's own verdict (e.g. serverset status ALIVE).
	// An unhealthy instance is still reported so operators can see it, but
	// is not served in DNS.
	Healthy bool
	// Registered is the registration time from the payload, or else the
	// znode's ctime.
	Registered time.Time
	// Meta is the format's metadata (curator payload.metadata, serverset
	// shard, nerve labels, dubbo URL parameters). Nil when there is none.
	Meta map[string]string
}

// DefaultWeight is the base weight of an instance whose payload names none.
const DefaultWeight = 100

// ErrNotThisFormat is returned (wrapped) by a decoder when the payload does
// not have its format's shape at all, so that format "auto" can try the
// next decoder. A payload that has the right shape but bad content (a port
// out of range, an address that is not one) is a different error and stops
// "auto" from guessing further.
var ErrNotThisFormat = errors.New("zkwatch: payload is not of this format")
