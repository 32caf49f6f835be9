package faults_test

import (
	"errors"
	"fmt"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/miekg/dns"
	"github.com/zkdns/zkdns/internal/zkclient"
)

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// connectZK opens a session to every one of servers, closed when the test
// ends. The tests' own sessions are long (30 s) so that they outlast every
// fault a scenario causes.
func connectZK(t *testing.T, servers []string) *zk.Conn {
	t.Helper()
	// A short session with the capped dialer keeps a just-restarted member
	// from stalling the handshake for ten read timeouts (200 s with a 30 s
	// session), past every wait in these tests. The znodes the tests write
	// are persistent, so the session's length does not matter otherwise.
	const session = 6 * time.Second
	conn, _, err := zk.Connect(servers, session, zk.WithLogger(discardLogger{}),
		zk.WithDialer(zkclient.CappedDialer(session*2/3)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

// retry runs op until it succeeds, retrying while the client has no
// working connection (a member just died, an election runs).
func retry(t *testing.T, what string, op func() error) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		err := op()
		if err == nil {
			return
		}
		if !transient(err) || time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func transient(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrSessionMoved) || errors.Is(err, zk.ErrClosing)
}

// mkdirAll creates p and its missing parents as persistent znodes.
func mkdirAll(t *testing.T, conn *zk.Conn, p string) {
	t.Helper()
	if p == "/" {
		return
	}
	mkdirAll(t, conn, path.Dir(p))
	retry(t, "create "+p, func() error {
		_, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
		if errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
		return err
	})
}

// putInstance registers a persistent instance znode dir/name holding
// "addr:80". Persistent znodes stay exactly as the test leaves them
// whatever happens to sessions, so they are the answers a scenario can
// predict.
func putInstance(t *testing.T, conn *zk.Conn, dir, name, addr string) {
	t.Helper()
	mkdirAll(t, conn, dir)
	retry(t, "create "+dir+"/"+name, func() error {
		_, err := conn.Create(dir+"/"+name, []byte(net.JoinHostPort(addr, "80")), 0, zk.WorldACL(zk.PermAll))
		if errors.Is(err, zk.ErrNodeExists) {
			return nil // an earlier try went through before its reply was lost
		}
		return err
	})
}

// answerSet is what DNS says (or, read from ZooKeeper, should say) for
// one service: its A addresses and its SRV target:port pairs, each sorted
// and joined.
type answerSet struct {
	a, srv string
}

func (s answerSet) String() string { return fmt.Sprintf("A [%s] SRV [%s]", s.a, s.srv) }

// fromZooKeeper reads the answers ZooKeeper's content calls for: one per
// child of each service path, whose data is host:port and whose name is
// already a DNS label.
func fromZooKeeper(conn *zk.Conn, services []service) (map[string]answerSet, error) {
	out := map[string]answerSet{}
	for _, s := range services {
		children, _, err := conn.Children(s.path)
		if errors.Is(err, zk.ErrNoNode) {
			out[s.name] = answerSet{}
			continue
		}
		if err != nil {
			return nil, err
		}
		var addrs, srvs []string
		for _, c := range children {
			data, _, err := conn.Get(s.path + "/" + c)
			if errors.Is(err, zk.ErrNoNode) {
				continue
			}
			if err != nil {
				return nil, err
			}
			host, port, err := net.SplitHostPort(string(data))
			if err != nil {
				return nil, fmt.Errorf("%s/%s holds %q, not host:port", s.path, c, data)
			}
			addrs = append(addrs, host)
			srvs = append(srvs, c+"."+s.name+".local.:"+port)
		}
		out[s.name] = answerSet{joinSorted(addrs), joinSorted(srvs)}
	}
	return out, nil
}

// fromDNS asks zkdns for every service's A and SRV answers.
func fromDNS(server string, services []service) (map[string]answerSet, error) {
	c := &dns.Client{Timeout: 2 * time.Second}
	out := map[string]answerSet{}
	for _, s := range services {
		var set answerSet
		for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV} {
			q := new(dns.Msg)
			q.SetQuestion(s.name+".local.", qtype)
			r, _, err := c.Exchange(q, server)
			if err != nil {
				return nil, err
			}
			if r.Rcode != dns.RcodeSuccess {
				return nil, fmt.Errorf("%s %s: %s", s.name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode])
			}
			if qtype == dns.TypeA {
				set.a = strings.Join(addrsOf(r), ",")
				continue
			}
			var srvs []string
			for _, rr := range r.Answer {
				if srv, ok := rr.(*dns.SRV); ok {
					srvs = append(srvs, srv.Target+":"+strconv.Itoa(int(srv.Port)))
				}
			}
			set.srv = joinSorted(srvs)
		}
		out[s.name] = set
	}
	return out, nil
}

func joinSorted(s []string) string {
	sort.Strings(s)
	return strings.Join(s, ",")
}

// waitConverged polls until zkdns answers exactly what ZooKeeper holds for
// every service, and fails the test if that takes longer than bound after
// since (the end of the fault). It returns how long it took.
func waitConverged(t *testing.T, d *daemon, conn *zk.Conn, services []service, since time.Time, bound time.Duration) time.Duration {
	t.Helper()
	var last string
	for {
		want, err := fromZooKeeper(conn, services)
		if err == nil {
			var got map[string]answerSet
			if got, err = fromDNS(d.dns, services); err == nil {
				if equalSets(got, want) {
					took := time.Since(since)
					t.Logf("converged %s after the fault ended (bound %s)", took.Round(time.Millisecond), bound)
					return took
				}
				last = fmt.Sprintf("DNS %v, ZooKeeper %v", got, want)
			}
		}
		if err != nil {
			last = err.Error()
		}
		if time.Since(since) > bound {
			t.Fatalf("zkdns did not converge to ZooKeeper's state within %s; last: %s", bound, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitGone polls until ZooKeeper no longer holds znode, failing the test
// if that takes longer than bound after since.
func waitGone(t *testing.T, conn *zk.Conn, znode string, since time.Time, bound time.Duration) {
	t.Helper()
	for {
		ok, _, err := conn.Exists(znode)
		if err == nil && !ok {
			return
		}
		if time.Since(since) > bound {
			t.Fatalf("%s still exists (%v) %s after the fault ended", znode, err, bound)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func equalSets(a, b map[string]answerSet) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
