package hermodtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// StartRedisCluster starts redis-server for t in cluster mode as a cluster
// of one node that owns all 16384 slots. A plain client works against it,
// and it refuses, as every Redis Cluster does, a command or script call
// whose keys hash to different slots (CROSSSLOT).
func StartRedisCluster(t testing.TB) *Redis {
	t.Helper()
	r := startClusterNode(t)
	c := r.Client(t)
	ctx := context.Background()
	if err := c.ClusterAddSlotsRange(ctx, 0, 16383).Err(); err != nil {
		t.Fatalf("assign slots: %v", err)
	}
	CheckFor(t, setupWait, 50*time.Millisecond, func() error {
		info, err := c.ClusterInfo(ctx).Result()
		if err == nil && !strings.Contains(info, "cluster_state:ok") {
			err = fmt.Errorf("not ready: %s", info)
		}
		return err
	})
	return r
}
