module github.com/zkdns/zkdns

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/go-zookeeper/zk v1.0.4
	github.com/miekg/dns v1.1.73
	golang.org/x/sync v0.24.0
)

require (
	golang.org/x/net v0.57.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)
