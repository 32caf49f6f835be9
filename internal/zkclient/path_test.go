package zkclient_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdns/zkdns/internal/testutil"
	"github.com/zkdns/zkdns/internal/zkclient"
)

// TestCreatePath: the path and its missing ancestors come into being as
// empty persistent znodes open to all, znodes that exist keep their data,
// an ancestor that cannot have children fails with ZooKeeper's error and
// the path that failed, and a path that is not absolute is refused.
func TestCreatePath(t *testing.T) {
	z := testutil.StartZooKeeperFor(t, testutil.ZooKeeperOptions{})
	conn := testutil.ConnectZK(t, z.Addr(), 10*time.Second)
	root := testutil.TestRoot(t, conn)
	testutil.CreateZnode(t, conn, root+"/kept/svc", "svc data", 0)
	testutil.CreateZnode(t, conn, root+"/partial", "partial data", 0)
	testutil.CreateZnode(t, conn, root+"/eph", "", zk.FlagEphemeral)

	cases := []struct {
		name    string
		path    string
		created []string          // znodes that must now be empty, persistent and open to all
		kept    map[string]string // znodes whose data must be as it was
		wantErr error
		errHead string // how a failure's message starts
	}{
		{name: "root", path: "/"},
		{name: "all missing", path: root + "/a/b/c", created: []string{root + "/a", root + "/a/b", root + "/a/b/c"}},
		{name: "exists", path: root + "/kept/svc", kept: map[string]string{root + "/kept": "", root + "/kept/svc": "svc data"}},
		{name: "ancestor exists", path: root + "/partial/x/y", created: []string{root + "/partial/x", root + "/partial/x/y"}, kept: map[string]string{root + "/partial": "partial data"}},
		{name: "under an ephemeral", path: root + "/eph/x", wantErr: zk.ErrNoChildrenForEphemerals, errHead: "create " + root + "/eph/x: "},
		{name: "empty", path: "", wantErr: zk.ErrInvalidPath, errHead: "stat : "},
		{name: "relative", path: "a/b", wantErr: zk.ErrInvalidPath, errHead: "stat a/b: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := zkclient.CreatePath(conn, tc.path)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("CreatePath(%s) = %v, want %v", tc.path, err, tc.wantErr)
			}
			if err != nil {
				if !strings.HasPrefix(err.Error(), tc.errHead) {
					t.Errorf("error %q does not start with %q", err, tc.errHead)
				}
				return
			}
			for _, p := range tc.created {
				data, stat, err := conn.Get(p)
				if err != nil {
					t.Fatalf("get %s: %v", p, err)
				}
				if len(data) != 0 || stat.EphemeralOwner != 0 {
					t.Errorf("%s: data %q, ephemeral owner %#x; want empty and persistent", p, data, stat.EphemeralOwner)
				}
				acl, _, err := conn.GetACL(p)
				if err != nil {
					t.Fatalf("get ACL of %s: %v", p, err)
				}
				if len(acl) != 1 || acl[0] != zk.WorldACL(zk.PermAll)[0] {
					t.Errorf("%s: ACL %v, want open to all", p, acl)
				}
			}
			for p, want := range tc.kept {
				data, _, err := conn.Get(p)
				if err != nil || string(data) != want {
					t.Errorf("%s: data %q (%v), want %q", p, data, err, want)
				}
			}
		})
	}
}
