package testutil

import (
	"os"
	"testing"
)

// sharedZK is the server MainWithZooKeeper starts for this package's tests.
var sharedZK *ZooKeeper

func TestMain(m *testing.M) {
	os.Exit(MainWithZooKeeper(m, &sharedZK))
}
