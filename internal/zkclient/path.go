package zkclient

import (
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"
)

// CreatePath creates the znode p, an absolute path, and its missing
// ancestors as empty persistent znodes open to all, since every registrar
// of a service shares them whatever its credentials. Znodes that exist
// are left as they are, and a p that exists costs one request, which is
// the common case for a service registered before; the root, which always
// exists, costs none. A p that is not absolute fails with
// zk.ErrInvalidPath.
func CreatePath(conn *zk.Conn, p string) error {
	if p == "/" {
		return nil
	}
	if exists, _, err := conn.Exists(p); err != nil {
		return fmt.Errorf("stat %s: %w", p, err)
	} else if exists {
		return nil
	}
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		_, err := conn.Create(p[:i], nil, 0, zk.WorldACL(zk.PermAll))
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("create %s: %w", p[:i], err)
		}
	}
	return nil
}
