// Package dnsserver owns the DNS side of zkdns: the immutable record
// snapshot, the query handler, the UDP and TCP listeners and their limits,
// the policy of whom to answer, and forwarding to upstream resolvers.
//
// It knows nothing of ZooKeeper. The daemon describes each change to the
// served set as an Update, applies it to the current Snapshot to get a new
// one, and publishes that on a Handler. A query loads the current snapshot
// once, through an atomic pointer, and is answered from records that were
// built when the snapshot was; a query for the zone takes no locks, does no
// I/O and writes no logs.
//
// A Handler's Policy, swapped whole by SetPolicy, says which client
// networks are answered and which upstreams get the names outside the
// zone. Without upstreams those names are REFUSED: zkdns is no open
// resolver. Serve bounds the work any client can cause (see ServeOptions).
package dnsserver
