package zkclient

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

func TestHostProvider(t *testing.T) {
	dns := map[string][]string{
		"zk1.example": {"192.0.2.1", "192.0.2.2"},
		"zk2.example": {"2001:db8::3"},
	}
	lookup := func(_ context.Context, host string) ([]string, error) {
		if addrs, ok := dns[host]; ok {
			return addrs, nil
		}
		if strings.HasPrefix(host, "192.0.2.") {
			return []string{host}, nil
		}
		return nil, errors.New("no such host")
	}
	cases := []struct {
		name    string
		servers []string
		want    []string // every server Next hands out, sorted
		warned  []string // servers warned about
		err     bool
	}{
		{name: "names resolve to their addresses", servers: []string{"zk1.example:2181", "zk2.example:2182"},
			want: []string{"192.0.2.1:2181", "192.0.2.2:2181", "[2001:db8::3]:2182"}},
		{name: "a name that does not resolve is kept as it is", servers: []string{"zk1.example:2181", "gone.example:2181", "192.0.2.9:2181"},
			want:   []string{"192.0.2.1:2181", "192.0.2.2:2181", "192.0.2.9:2181", "gone.example:2181"},
			warned: []string{"gone.example:2181"}},
		{name: "no name resolves", servers: []string{"gone.example:2181"},
			want: []string{"gone.example:2181"}, warned: []string{"gone.example:2181"}},
		{name: "no port", servers: []string{"zk1.example"}, err: true},
		{name: "no server", servers: nil, err: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			p := &HostProvider{Logger: slog.New(slog.NewTextHandler(&logs, nil)), lookup: lookup}
			err := p.Init(tc.servers)
			if (err != nil) != tc.err {
				t.Fatalf("Init(%q) = %v, want an error: %v", tc.servers, err, tc.err)
			}
			if err != nil {
				return
			}
			var got []string
			for range p.Len() {
				server, retryStart := p.Next()
				if retryStart {
					t.Fatalf("retryStart before every server was tried once")
				}
				got = append(got, server)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("servers handed out: %q, want %q", got, tc.want)
			}
			for _, w := range tc.warned {
				if !strings.Contains(logs.String(), "server="+w) {
					t.Errorf("no warning about %s in:\n%s", w, logs.String())
				}
			}
			if n := strings.Count(logs.String(), "level=WARN"); n != len(tc.warned) {
				t.Errorf("%d warnings, want %d:\n%s", n, len(tc.warned), logs.String())
			}
		})
	}
}

// TestHostProviderRetryStart: the client pauses when Next says every
// server has been tried since the last connection.
func TestHostProviderRetryStart(t *testing.T) {
	p := &HostProvider{lookup: func(_ context.Context, host string) ([]string, error) { return []string{host}, nil }}
	if err := p.Init([]string{"192.0.2.1:1", "192.0.2.2:1", "192.0.2.3:1"}); err != nil {
		t.Fatal(err)
	}
	var starts []bool
	for range 7 {
		_, retryStart := p.Next()
		starts = append(starts, retryStart)
		if len(starts) == 5 {
			p.Connected() // the fifth server handed out took the connection
		}
	}
	want := []bool{false, false, false, true, false, false, false}
	if !slices.Equal(starts, want) {
		t.Errorf("retryStart over 7 calls = %v, want %v", starts, want)
	}
}
