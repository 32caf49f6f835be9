//go:build !linux

package testutil

import "testing"

// InPrivateNetwork skips the test: network namespaces are Linux's.
func InPrivateNetwork(t *testing.T) bool {
	t.Helper()
	t.Skip("binding wildcard addresses in tests needs a Linux network namespace")
	return false
}
