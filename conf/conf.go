// Package conf owns zkdns's TOML configuration: its types, their defaults,
// strict decoding and validation.
//
// Load and Parse return either a complete, normalised and validated *Config
// or every problem found in the file, each with the line to fix. A *Config
// is never mutated after Load or Parse returns it: a reload builds a new one
// and swaps it in, so readers may share it freely without locks.
package conf

import "time"

// Config is a whole zkdns configuration file.
type Config struct {
	ZooKeeper ZooKeeper `toml:"zookeeper"`
	DNS       DNS       `toml:"dns"`
	Admin     Admin     `toml:"admin"`
	Log       Log       `toml:"log"`

	// Services are the watched services, one [[service]] table each, in
	// file order. Names and paths are unique.
	Services []Service `toml:"service"`

	// Discover are the [[discover]] tables: paths whose every child is a
	// service. Paths are unique. Services and Discover are not both
	// empty: a config that watches nothing is refused.
	Discover []Discover `toml:"discover"`

	// File is the path the configuration was read from, as given to Load
	// or Parse. It is not part of the TOML.
	File string `toml:"-"`
}

// ZooKeeper is the [zookeeper] table: where the registry is and how to
// connect to it.
type ZooKeeper struct {
	// Servers are the ensemble members as host:port, at least one, no
	// duplicates. A bare host gets the ZooKeeper port 2181.
	Servers []string `toml:"servers"`

	// SessionTimeout is the session timeout asked of ZooKeeper, between
	// 100ms and 5m. Default 10s. The server may clamp it.
	SessionTimeout Duration `toml:"session_timeout"`

	// Root is a chroot prefix put in front of every service and discover
	// path. Empty (the default) means none; otherwise an absolute path
	// without a trailing "/".
	Root string `toml:"root"`

	// Auth, when set, authenticates the session. Nil means anonymous.
	Auth *Auth `toml:"auth"`

	// TLS, when set, makes the connection use TLS. Nil means plain TCP.
	TLS *TLS `toml:"tls"`
}

// Auth is the [zookeeper.auth] table.
type Auth struct {
	// Scheme is the ZooKeeper auth scheme; only "digest" is supported.
	Scheme string `toml:"scheme"`

	// CredentialsFile holds the "user:password" for the scheme, kept out
	// of the config file so the config can be world-readable. Required.
	CredentialsFile string `toml:"credentials_file"`
}

// TLS is the [zookeeper.tls] table.
type TLS struct {
	// CAFile is the PEM bundle that verifies the servers. Required.
	CAFile string `toml:"ca_file"`

	// CertFile and KeyFile are the client certificate and its key, for
	// servers that require one. Both or neither.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`

	// ServerName overrides the name checked in the servers' certificates.
	// Empty means the host part of each server address.
	ServerName string `toml:"server_name"`
}

// DNS is the [dns] table: where and how zkdns answers.
type DNS struct {
	// Listen are the IP:port addresses to serve, each over UDP and TCP.
	// At least one, no duplicates; the IP is a literal. Port 0 picks a
	// free port and is meant for tests. Default ["127.0.0.1:8600"].
	Listen []string `toml:"listen"`

	// Zone is the domain zkdns is authoritative for, lowercase with a
	// trailing dot. Default "local.".
	Zone string `toml:"zone"`

	// TTL is the TTL of positive answers, 0 to 24h in whole seconds.
	// Default 5s.
	TTL Duration `toml:"ttl"`

	// NegativeTTL is the SOA minimum, which resolvers use to cache
	// NXDOMAIN and NODATA, 0 to 24h in whole seconds. Default 1s.
	NegativeTTL Duration `toml:"negative_ttl"`

	// Upstreams are IP:port resolvers that names outside Zone are
	// forwarded to, tried in this order (a bare IP gets port 53). None
	// means such queries are REFUSED. An upstream that is one of the
	// Listen addresses is an error: zkdns would forward to itself.
	Upstreams []string `toml:"upstreams"`

	// Allow lists the client networks whose queries are answered, as CIDR
	// prefixes ("10.0.0.0/8"); a bare IP means that one address (/32 or
	// /128). Each is normalised to its network address ("10.1.2.3/8"
	// becomes "10.0.0.0/8"). Queries from other sources are dropped over
	// UDP and answered REFUSED over TCP. Unset (the default) allows every
	// source when every Listen address is loopback, since only this host
	// can reach those, and loopback sources only otherwise: exposing zkdns
	// on a network takes an explicit list. An empty list is an error.
	Allow []string `toml:"allow"`
}

// Admin is the [admin] table.
type Admin struct {
	// Listen is the host:port of the HTTP endpoint serving /healthz,
	// /readyz, /metrics and /v1/services. Empty disables it. Default
	// "127.0.0.1:8601". It must not take a port of a DNS.Listen address:
	// the same address, or the same port where either is a wildcard.
	Listen string `toml:"listen"`

	// Pprof also serves the Go runtime's profiles under /debug/pprof/
	// (CPU, heap, goroutines, ...) for diagnosing zkdns's own CPU and
	// memory use. Default false: a CPU profile slows the daemon while it
	// runs and a heap profile holds what the daemon holds, so turn it on
	// only where the admin endpoint is reachable by those you trust.
	Pprof bool `toml:"pprof"`
}

// Log is the [log] table.
type Log struct {
	// Level is the least severe level logged: debug, info, warn or error.
	// Default info.
	Level string `toml:"level"`

	// Format is the log line format: text or json. Default text.
	Format string `toml:"format"`
}

// Service is one [[service]] table: a ZooKeeper path whose children are the
// instances of one service.
type Service struct {
	// Name is the service's DNS label (lowercase a-z, 0-9 and '-', at most
	// 63 bytes), unique across services. Required.
	Name string `toml:"name"`

	// Path is the absolute ZooKeeper path (below Root) whose children are
	// the instances. Required, unique across services.
	Path string `toml:"path"`

	// Format is the instance payload format: auto, curator, serverset,
	// nerve, dubbo or hostport. Empty means auto.
	Format string `toml:"format"`

	// Endpoint picks a named endpoint from the payload: the serverset
	// additionalEndpoints key, or "ssl" for the curator sslPort. Empty means
	// the main endpoint. Only auto, curator and serverset use it.
	Endpoint string `toml:"endpoint"`

	// Warmup is the SRV weight slow-start window after an instance
	// registers, 0 to 24h. Zero means full weight at once.
	Warmup Duration `toml:"warmup"`
}

// Discover is one [[discover]] table: a ZooKeeper path whose every child is
// a service (the Curator and Spring Cloud layout), named after the child.
type Discover struct {
	// Path is the absolute ZooKeeper path (below Root) whose children are
	// services. Required, unique across discovers.
	Path string `toml:"path"`

	// Format, Endpoint and Warmup apply to every discovered service, as
	// the fields of the same name do in Service.
	Format   string   `toml:"format"`
	Endpoint string   `toml:"endpoint"`
	Warmup   Duration `toml:"warmup"`
}

// Default returns a new Config holding every default. It is not valid on
// its own: zookeeper.servers has no default, and it watches nothing.
func Default() *Config {
	return &Config{
		ZooKeeper: ZooKeeper{
			SessionTimeout: Duration{10 * time.Second},
		},
		DNS: DNS{
			Listen:      []string{"127.0.0.1:8600"},
			Zone:        "local.",
			TTL:         Duration{5 * time.Second},
			NegativeTTL: Duration{1 * time.Second},
		},
		Admin: Admin{Listen: "127.0.0.1:8601"},
		Log:   Log{Level: "info", Format: "text"},
	}
}
