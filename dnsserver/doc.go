// Package dnsserver owns the DNS side of zkdns: the immutable record
// snapshot, the query handler, and the UDP and TCP listeners.
//
// It knows nothing of ZooKeeper. The daemon describes each change to the
// served set as an Update, applies it to the current Snapshot to get a new
// one, and publishes that on a Handler. A query loads the current snapshot
// once, through an atomic pointer, and is answered from records that were
// built when the snapshot was; the query path takes no locks, does no I/O
// and writes no logs.
//
// Names outside the zone are refused for now. Forwarding them to upstream
// resolvers is a later feature; it hooks in where Answer maps errNotInZone
// to REFUSED.
package dnsserver
