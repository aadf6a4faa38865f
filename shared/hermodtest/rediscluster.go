package hermodtest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartRedisCluster starts redis-server for t in cluster mode as a cluster
// of one node that owns all 16384 slots. A plain client works against it,
// and it refuses, as every Redis Cluster does, a command or script call
// whose keys hash to different slots (CROSSSLOT).
func StartRedisCluster(t testing.TB) *Redis {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	bus, err := FreePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	r := &Redis{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: t.TempDir(), port: port,
		args: []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", strconv.Itoa(bus)}}
	if err := r.Start(); err != nil {
		t.Fatalf("start redis cluster node: %v", err)
	}
	t.Cleanup(r.Stop)
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer func() { _ = c.Close() }()
	ctx := context.Background()
	if err := c.ClusterAddSlotsRange(ctx, 0, 16383).Err(); err != nil {
		t.Fatalf("assign slots: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := c.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster node not ready: %v %s", err, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
