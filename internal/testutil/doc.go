// Package testutil holds what zkdns's tests share: throwaway ZooKeeper
// servers and ensembles on loopback, a TCP proxy that can cut a client off,
// test certificates, and helpers to query DNS with real clients.
//
// The ZooKeeper server is the Debian package's, run through
// scripts/zk-local, so tests, the demo and a developer's shell start it the
// same way. StartZooKeeper gives a test its own server; MainWithZooKeeper
// gives a whole test package one shared server from TestMain; StartEnsemble
// starts a three-member ensemble whose members can be killed, hung and
// restarted; NewTCPProxy stands between a client and a server so a test can
// cut the connection while the server keeps running. Dig runs the
// real dig, Resolver is Go's own resolver aimed at one server, and
// BuildBinary builds the daemon for end-to-end tests. UDPDrops and
// BacklogDrops read the kernel's drop counters, so that a test (or the
// bench) counting datagrams can tell what the kernel dropped from what
// the code lost.
package testutil
