package testutil

import (
	"os"
	"slices"
	"strconv"
	"strings"
)

// UDPDrops is how many datagrams the kernel dropped at the UDP sockets
// bound to the local ports, IPv4 and IPv6, since each opened: a full
// receive buffer, mostly. A test that counts datagrams subtracts two
// readings to tell a datagram the code lost from one the socket never
// took. It reads 0 where /proc/net/udp cannot be read.
func UDPDrops(ports ...int) int64 {
	var total int64
	for _, file := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		if table, err := os.ReadFile(file); err == nil {
			total += udpDropsIn(table, ports)
		}
	}
	return total
}

// udpDropsIn sums the drops column of a /proc/net/udp table over the
// sockets bound to the local ports. Lines look like
//
//	sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
//	12: 0100007F:9C4F 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4711 2 0000000000000000 3
func udpDropsIn(table []byte, ports []int) int64 {
	var total int64
	for line := range strings.SplitSeq(string(table), "\n") {
		f := strings.Fields(line)
		if len(f) < 13 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || !slices.Contains(ports, int(p)) {
			continue
		}
		if n, err := strconv.ParseInt(f[len(f)-1], 10, 64); err == nil {
			total += n
		}
	}
	return total
}

// BacklogDrops is how many packets the kernel dropped, on all CPUs since
// boot, because its per-CPU input backlog (net.core.netdev_max_backlog)
// was full: on loopback, what a sender outrunning a starved softirq loses
// before any socket sees it. It reads 0 where /proc/net/softnet_stat
// cannot be read.
func BacklogDrops() int64 {
	stat, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		return 0
	}
	return backlogDropsIn(stat)
}

// backlogDropsIn sums the second column, hexadecimal, of softnet_stat.
func backlogDropsIn(stat []byte) int64 {
	var total int64
	for line := range strings.SplitSeq(string(stat), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if n, err := strconv.ParseInt(f[1], 16, 64); err == nil {
			total += n
		}
	}
	return total
}
