package connect

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

// Each form of HERMOD_REDIS_URL opens a client that reaches its servers.
func TestRedisURLForms(t *testing.T) {
	ctx := context.Background()
	single := hermodtest.StartRedis(t)
	sentinel := hermodtest.StartRedisSentinel(t, time.Second, 5*time.Second)
	cluster := hermodtest.StartRedisClusterNodes(t, 3)
	for _, c := range []struct {
		url     string
		cluster bool
	}{{single.URL(), false}, {sentinel.URL(), false}, {cluster.URL(), true}} {
		rdb, err := Redis(ctx, c.url, 30*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if _, ok := rdb.(*redis.ClusterClient); ok != c.cluster {
			t.Errorf("%s opened a %T", c.url, rdb)
		}
		if err := rdb.Set(ctx, "k", c.url, 0).Err(); err != nil {
			t.Errorf("%s: set: %v", c.url, err)
		}
		_ = rdb.Close()
	}
	// Written through the Sentinel URL: on the primary.
	if v := sentinel.Primary.Client(t).Get(ctx, "k").Val(); v != sentinel.URL() {
		t.Errorf("the primary holds %q", v)
	}
}

// A bad or unreachable HERMOD_REDIS_URL fails with an error that names it
// or where it points, and never shows a password.
func TestRedisURLErrors(t *testing.T) {
	ctx := context.Background()
	_, err := Redis(ctx, "redis-sentinel://:hunter2@127.0.0.1:1/0", time.Second)
	if err == nil || !strings.HasPrefix(err.Error(), "HERMOD_REDIS_URL: ") || !strings.Contains(err.Error(), "master=") {
		t.Errorf("no primary name: %v", err)
	}
	port, err := hermodtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	_, err = Redis(ctx, "redis-sentinel://:hunter2@"+addr+"/0?master=main&sentinel_password=hunter3", 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), `primary "main" from the Sentinels at `+addr) {
		t.Errorf("unreachable Sentinel: %v", err)
	}
	if err != nil && (strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "hunter3")) {
		t.Errorf("the error shows a password: %v", err)
	}
}
