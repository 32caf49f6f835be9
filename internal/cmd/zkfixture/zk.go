package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"path"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/zkdns/zkdns/internal/zkclient"
)

// sessionWait bounds how long connect waits for a session.
const sessionWait = 30 * time.Second

// connect opens a session and returns once it is set up, so that the
// first create cannot fail for a slow handshake.
func connect(ctx context.Context, servers string, session time.Duration) (*zk.Conn, error) {
	conn, _, err := zk.Connect(strings.Split(servers, ","), session,
		zk.WithLogger(log.New(io.Discard, "", 0)))
	if err != nil {
		return nil, fmt.Errorf("connect to ZooKeeper %s: %w", servers, err)
	}
	ctx, cancel := context.WithTimeout(ctx, sessionWait)
	defer cancel()
	if err := zkclient.AwaitSession(ctx, conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect to ZooKeeper %s: %w", servers, err)
	}
	return conn, nil
}

// ephemeral creates p holding data, owned by conn's session, and its
// missing parents as persistent znodes.
func ephemeral(conn *zk.Conn, p string, data []byte) error {
	if err := zkclient.CreatePath(conn, path.Dir(p)); err != nil {
		return err
	}
	if _, err := conn.Create(p, data, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	return nil
}

func curatorPayload(name, id, addr string, port int, meta map[string]string) []byte {
	b, _ := json.Marshal(map[string]any{
		"name": name, "id": id, "address": addr, "port": port, "sslPort": nil,
		"payload": map[string]any{
			"@class":   "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance",
			"id":       id,
			"name":     name,
			"metadata": meta,
		},
		"registrationTimeUTC": time.Now().UnixMilli(),
		"serviceType":         "DYNAMIC",
		"uriSpec":             map[string]any{"parts": []map[string]any{{"value": "scheme", "variable": true}}},
	})
	return b
}

func serversetPayload(host string, port int, status string, shard int) []byte {
	b, _ := json.Marshal(map[string]any{
		"serviceEndpoint":     map[string]any{"host": host, "port": port},
		"additionalEndpoints": map[string]any{"http": map[string]any{"host": host, "port": port + 1}},
		"status":              status,
		"shard":               shard,
	})
	return b
}

// registerDemo creates the instances the example config watches, in
// several payload formats.
func registerDemo(conn *zk.Conn) error {
	steps := []struct {
		path string
		data []byte
	}{
		{"/services/payments/6c1a4e0e-1d2b-4b5e-9c1a-000000000001",
			curatorPayload("payments", "6c1a4e0e-1d2b-4b5e-9c1a-000000000001", "127.0.0.11", 8080, map[string]string{"zone": "a", "instance_status": "UP"})},
		{"/services/payments/6c1a4e0e-1d2b-4b5e-9c1a-000000000002",
			curatorPayload("payments", "6c1a4e0e-1d2b-4b5e-9c1a-000000000002", "127.0.0.12", 8080, map[string]string{"zone": "b", "instance_status": "UP"})},
		{"/services/payments/6c1a4e0e-1d2b-4b5e-9c1a-000000000003",
			curatorPayload("payments", "6c1a4e0e-1d2b-4b5e-9c1a-000000000003", "::1", 8080, map[string]string{"zone": "c"})},
		{"/services/orders/orders-1", []byte("127.0.0.21:9000")},
		{"/services/orders/orders-2", []byte("127.0.0.22:9000")},
		{"/aurora/search/member_0000000001", serversetPayload("127.0.0.31", 31010, "ALIVE", 0)},
		{"/aurora/search/member_0000000002", serversetPayload("127.0.0.32", 31010, "ALIVE", 1)},
		{"/aurora/search/member_0000000003", serversetPayload("127.0.0.33", 31010, "STOPPING", 2)},
		{"/dubbo/com.example.DemoService/providers/" + dubboName("127.0.0.41", 20880), nil},
	}
	for _, s := range steps {
		if err := ephemeral(conn, s.path, s.data); err != nil {
			return err
		}
	}
	return nil
}

func dubboName(host string, port int) string {
	u := fmt.Sprintf("dubbo://%s:%d/com.example.DemoService?anyhost=true&application=demo-provider&interface=com.example.DemoService&side=provider&timestamp=%d&weight=100",
		host, port, time.Now().UnixMilli())
	return strings.NewReplacer(":", "%3A", "/", "%2F", "?", "%3F", "=", "%3D", "&", "%26").Replace(u)
}
