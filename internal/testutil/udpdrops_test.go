package testutil

import (
	"net"
	"testing"
)

func TestUDPDropsIn(t *testing.T) {
	table := "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n" +
		"  101: 0100007F:4A15 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1001 2 0000000000000000 17\n" +
		"  102: 0100007F:4A15 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1002 2 0000000000000000 3\n" +
		"  103: 0100007F:D6A5 0100007F:4A15 01 00000000:00000000 00:00000000 00000000     0        0 1003 2 0000000000000000 0\n" +
		"  104: 00000000000000000000000001000000:4A16 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1004 2 0000000000000000 5\n"
	tests := []struct {
		name  string
		ports []int
		want  int64
	}{
		{"two sockets on one port add up", []int{0x4A15}, 20},
		{"a socket without drops", []int{0xD6A5}, 0},
		{"an IPv6 socket", []int{0x4A16}, 5},
		{"two ports add up", []int{0x4A15, 0x4A16}, 25},
		{"a port nobody has", []int{53}, 0},
		{"no port", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := udpDropsIn([]byte(table), tt.ports); got != tt.want {
				t.Errorf("udpDropsIn(%v) = %d, want %d", tt.ports, got, tt.want)
			}
		})
	}
}

func TestBacklogDropsIn(t *testing.T) {
	stat := "17af7a79 0000000a 000006ed 00000000\n184dd332 00000100 000006d0 00000000\n"
	if got := backlogDropsIn([]byte(stat)); got != 0x10a {
		t.Errorf("backlogDropsIn = %d, want %d", got, 0x10a)
	}
}

// TestUDPDropsCountsAFullBuffer overflows a socket's smallest receive
// buffer on this machine's own kernel and reads the count back.
func TestUDPDropsCountsAFullBuffer(t *testing.T) {
	server, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if err := server.SetReadBuffer(1); err != nil { // the kernel's minimum
		t.Fatal(err)
	}
	port := server.LocalAddr().(*net.UDPAddr).Port
	before := UDPDrops(port)
	client, err := net.DialUDP("udp", nil, server.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for range 100 {
		if _, err := client.Write(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if got := UDPDrops(port) - before; got == 0 {
		t.Error("100 datagrams to an unread socket with the smallest buffer: no drops counted")
	}
}
