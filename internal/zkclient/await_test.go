package zkclient_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdns/zkdns/internal/testutil"
	"github.com/zkdns/zkdns/internal/zkclient"
)

// TestAwaitSession: once AwaitSession returns, the first request goes
// through even though connection attempts failed before, where the client
// would have failed a request queued during them; a server never reached
// is the context's error.
func TestAwaitSession(t *testing.T) {
	z := testutil.StartZooKeeperFor(t, testutil.ZooKeeperOptions{})
	cases := []struct {
		name    string
		restore time.Duration // when the proxy lets connections through; 0 never
		wantErr bool
	}{
		{name: "server reachable after failed attempts", restore: 1500 * time.Millisecond},
		{name: "server never reachable", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			proxy := testutil.ProxyTo(t, z.Addr())
			proxy.Cut()
			if tc.restore > 0 {
				restore := time.AfterFunc(tc.restore, proxy.Restore)
				t.Cleanup(func() { restore.Stop() })
			}
			conn, _, err := zk.Connect([]string{proxy.Addr()}, time.Second, zk.WithLogger(quiet{}))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			err = zkclient.AwaitSession(ctx, conn)
			if tc.wantErr {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("AwaitSession with a server never reached: %v, want the context's deadline", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := "/" + strings.ReplaceAll(t.Name(), "/", "-")
			if _, err := conn.Create(p, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatalf("first create after AwaitSession: %v", err)
			}
		})
	}
}
