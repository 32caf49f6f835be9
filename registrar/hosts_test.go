package registrar

import (
	"testing"
	"time"

	"github.com/zkdns/zkdns/internal/testutil"
)

// TestServerNameThatDoesNotResolve: a server listed by a name that does
// not resolve (".invalid" never does, RFC 6761) leaves the others to
// register with, where the client's own host provider failed the start.
func TestServerNameThatDoesNotResolve(t *testing.T) {
	conn := testutil.ConnectZK(t, zkServer.Addr(), 10*time.Second)
	base := "/" + t.Name() + "/svc"
	start(t, Options{
		Servers: []string{"zk-gone.invalid:2181", zkServer.Addr()},
		Path:    base,
		ID:      "one",
		Address: "192.0.2.71",
		Port:    8080,
		Drain:   NoDrain,
	})
	only(t, conn, base)
}
