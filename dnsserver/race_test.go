//go:build race

package dnsserver

// raceEnabled is set when the tests run under the race detector, which
// has sync.Pool drop values at random: code that reuses pooled storage
// (the batch writes of golang.org/x/net) then allocates.
const raceEnabled = true
