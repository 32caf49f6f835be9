package main

import (
	"testing"
	"time"
)

func TestParseCons(t *testing.T) {
	tests := []struct {
		name    string
		reply   string
		want    []consSession
		wantErr bool
	}{
		{
			name: "sessions and a connection still in its handshake",
			reply: " /127.0.0.1:43142[1](queued=0,recved=63,sent=63,sid=0x100002128440001,lop=PING,est=1795264671874,to=10000,lcxid=0x3d,lzxid=0x49,lresp=2180110,llat=2,minlat=0,avglat=2,maxlat=8)\n" +
				" /127.0.0.1:43140[1](queued=0,recved=74,sent=74,sid=0x100002128440000,lop=PING,est=1795264669860,to=1000,lcxid=0x47,lzxid=0x49,lresp=2181422,llat=1,minlat=0,avglat=5,maxlat=14)\n" +
				" /127.0.0.1:50560[0](queued=0,recved=1,sent=0)\n\n",
			want: []consSession{
				{id: 0x100002128440001, timeout: 10 * time.Second},
				{id: 0x100002128440000, timeout: time.Second},
			},
		},
		{name: "no connections", reply: "\n", want: nil},
		{name: "a sid that is not hex", reply: " /127.0.0.1:1[1](sid=0xzz,to=1000)\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCons(tt.reply)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("session %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseWatchTotal(t *testing.T) {
	tests := []struct {
		name    string
		reply   string
		want    int
		wantErr bool
	}{
		{"a server with watches", "3 connections watching 41 paths\nTotal watches:41\n", 41, false},
		{"a server without", "0 connections watching 0 paths\nTotal watches:0\n", 0, false},
		{"not a wchs reply", "wchs is not executed because it is not in the whitelist.\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseWatchTotal(tt.reply)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseWatchTotal = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
