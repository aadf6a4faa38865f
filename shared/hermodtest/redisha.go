package hermodtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// setupWait bounds how long a helper waits for the servers it started to
// settle (generous: the machine may be busy).
const setupWait = 60 * time.Second

// SentinelMaster is the name the Sentinels of StartRedisSentinel monitor
// their primary under.
const SentinelMaster = "hermod"

// RedisSentinel is a primary, a replica of it and three Sentinels that
// monitor it, each a redis-server process on a free loopback port.
type RedisSentinel struct {
	Primary   *Redis
	Replica   *Redis
	Sentinels []*Redis
}

// URL is the redis-sentinel:// URL of the primary (database 0).
func (s *RedisSentinel) URL() string {
	addrs := make([]string, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		addrs[i] = sn.Addr
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "/0?master=" + SentinelMaster
}

// PrimaryAddr is the address of the primary the first Sentinel that
// answers names.
func (s *RedisSentinel) PrimaryAddr(ctx context.Context) (string, error) {
	var last error
	for _, sn := range s.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr})
		addr, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
		_ = c.Close()
		if err == nil && len(addr) == 2 {
			return addr[0] + ":" + addr[1], nil
		}
		last = err
	}
	return "", fmt.Errorf("no Sentinel names the primary: %v", last)
}

// StartRedisSentinel starts for t a primary, a replica in sync with it and
// three Sentinels (quorum 2) that know the primary, the replica and each
// other. A Sentinel holds the primary down after downAfter without an
// answer and gives a failover failoverTimeout; keep both short in tests.
func StartRedisSentinel(t testing.TB, downAfter, failoverTimeout time.Duration) *RedisSentinel {
	t.Helper()
	s := &RedisSentinel{Primary: StartRedis(t)}
	s.Replica = StartRedisWith(t, "--replicaof", "127.0.0.1", strconv.Itoa(s.Primary.port))
	ctx := context.Background()
	rc := s.Replica.Client(t)
	CheckFor(t, setupWait, 50*time.Millisecond, func() error {
		info, err := rc.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica not in sync: %s", info)
		}
		return nil
	})
	for range 3 {
		s.Sentinels = append(s.Sentinels, startSentinel(t, s.Primary.port, downAfter, failoverTimeout))
	}
	for _, sn := range s.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr})
		CheckFor(t, setupWait, 50*time.Millisecond, func() error {
			peers, err := c.Sentinels(ctx, SentinelMaster).Result()
			if err != nil {
				return err
			}
			replicas, err := c.Replicas(ctx, SentinelMaster).Result()
			if err != nil {
				return err
			}
			if len(peers) != 2 || len(replicas) != 1 {
				return fmt.Errorf("the Sentinel at %s knows %d other Sentinels and %d replicas, want 2 and 1", sn.Addr, len(peers), len(replicas))
			}
			return nil
		})
		_ = c.Close()
	}
	return s
}

func startSentinel(t testing.TB, primaryPort int, downAfter, failoverTimeout time.Duration) *Redis {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 2\n"+
		"sentinel down-after-milliseconds %[1]s %[3]d\n"+
		"sentinel failover-timeout %[1]s %[4]d\n"+
		"sentinel parallel-syncs %[1]s 1\n",
		SentinelMaster, primaryPort, downAfter.Milliseconds(), failoverTimeout.Milliseconds())
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatalf("write sentinel.conf: %v", err)
	}
	r := &Redis{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: dir, port: port, conf: conf}
	if err := r.Start(); err != nil {
		t.Fatalf("start sentinel: %v", err)
	}
	t.Cleanup(r.Stop)
	return r
}

// RedisCluster is a Redis Cluster of primaries, each a redis-server
// process in cluster mode on a free loopback port.
type RedisCluster struct {
	Nodes []*Redis
}

// URL is the redis-cluster:// URL of the cluster.
func (c *RedisCluster) URL() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return "redis-cluster://" + strings.Join(addrs, ",")
}

// StartRedisClusterNodes starts for t a Redis Cluster of n primaries that
// share the 16384 slots evenly, and waits until every node knows the
// others and calls the cluster ok.
func StartRedisClusterNodes(t testing.TB, n int) *RedisCluster {
	t.Helper()
	c := &RedisCluster{}
	ctx := context.Background()
	var clients []*redis.Client
	for i := range n {
		node := startClusterNode(t)
		c.Nodes = append(c.Nodes, node)
		cl := node.Client(t)
		clients = append(clients, cl)
		lo, hi := i*16384/n, (i+1)*16384/n-1
		if err := cl.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			t.Fatalf("assign slots %d-%d: %v", lo, hi, err)
		}
	}
	for _, node := range c.Nodes[1:] {
		// the bus port is not the default (port + 10000): name it
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", node.port, node.bus).Err(); err != nil {
			t.Fatalf("cluster meet %s: %v", node.Addr, err)
		}
	}
	for i, cl := range clients {
		CheckFor(t, setupWait, 50*time.Millisecond, func() error {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r") {
				return fmt.Errorf("cluster node %s not ready: %s", c.Nodes[i].Addr, info)
			}
			return nil
		})
	}
	return c
}

// startClusterNode starts a redis-server in cluster mode, owning no slots.
func startClusterNode(t testing.TB) *Redis {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	bus, err := FreePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	r := &Redis{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: t.TempDir(), port: port, bus: bus,
		args: []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", strconv.Itoa(bus)}}
	if err := r.Start(); err != nil {
		t.Fatalf("start redis cluster node: %v", err)
	}
	t.Cleanup(r.Stop)
	return r
}
