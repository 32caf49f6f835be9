package testutil

import "testing"

// TestParseZKFrames reads requests and replies as the relays see them,
// built with ZKFrame as ZooKeeper lays them out.
func TestParseZKFrames(t *testing.T) {
	cases := []struct {
		name  string
		frame []byte
		want  ZKRequest
		ok    bool
	}{
		{"getChildren2 with a watch", ZKFrame(int32(7), int32(12), "/svc/a", true), ZKRequest{Xid: 7, Op: 12, Path: "/svc/a"}, true},
		{"delete", ZKFrame(int32(9), int32(2), "/svc/b", int32(-1)), ZKRequest{Xid: 9, Op: 2, Path: "/svc/b"}, true},
		{"ping, no path", ZKFrame(int32(-2), int32(11)), ZKRequest{Xid: -2, Op: 11}, true},
		{"a path longer than the frame", ZKFrame(int32(3), int32(4), int32(100)), ZKRequest{Xid: 3, Op: 4}, true},
		{"too short", ZKFrame(int32(1)), ZKRequest{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseZKRequest(tc.frame)
			if ok != tc.ok || got != tc.want {
				t.Errorf("ParseZKRequest = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if xid, ok := ZKReplyXid(ZKFrame(int32(42), int64(1000), int32(0))); !ok || xid != 42 {
		t.Errorf("ZKReplyXid = %d, %v; want 42", xid, ok)
	}
	if _, ok := ZKReplyXid(ZKFrame()); ok {
		t.Error("ZKReplyXid read an xid from an empty frame")
	}
}
