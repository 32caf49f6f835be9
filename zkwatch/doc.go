// Package zkwatch owns the ZooKeeper side of zkdns: the session, the child,
// data and persistent watches on every service path, the payload decoders
// (one file per format) and each service's current instance set. It
// reports changes through Options.Publish and never reaches into DNS.
package zkwatch
