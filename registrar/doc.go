// Package registrar owns the service side of zkdns: it keeps one service
// instance registered in ZooKeeper as an EPHEMERAL znode for exactly as long
// as the instance should receive traffic.
//
// Run brings an instance online gracefully: it health-checks the service
// until the check has passed Rise times in a row, runs the optional
// warm-up, and only then creates the znode, with a payload that zkdns (and
// the format's own clients: Curator, Finagle, nerve) read back. While it
// runs, Fall failures in a row remove the znode and a recovery re-creates
// it; a ZooKeeper session expiry, which takes the znode with it, is
// followed by a new registration under the new session. A re-registration
// that ZooKeeper caused (an expired session, a znode deleted or taken
// over) writes the registration time of the one before it where the
// format carries one (curator), so that zkdns's warm-up does not ramp an
// instance that stayed healthy up again; one after a fall writes a new
// time. Cancelling Run's context takes the instance offline gracefully: the znode is marked
// draining where the format can say so, deleted, and Run waits for the
// drain period, so that clients holding cached DNS answers move on before
// the service stops.
//
// The package is a library: it installs no signal handlers and never
// exits the process. `zkdns register` is a thin command on top of it.
package registrar
