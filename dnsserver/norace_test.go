//go:build !race

package dnsserver

// raceEnabled: see race_test.go.
const raceEnabled = false
