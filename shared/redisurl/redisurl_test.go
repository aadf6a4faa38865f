package redisurl

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseForms(t *testing.T) {
	c, err := Parse("redis://:pw@127.0.0.1:6380/2")
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != Single || c.single.Addr != "127.0.0.1:6380" || c.single.DB != 2 || c.single.Password != "pw" {
		t.Errorf("single: %+v", c.single)
	}
	c, err = Parse("rediss-sentinel://app:p%40ss@10.0.0.1:26380,10.0.0.2,[::1]:26381/3?master=main&sentinel_username=s&sentinel_password=sp&dial_timeout=2s&pool_size=50")
	if err != nil {
		t.Fatal(err)
	}
	f := c.failover
	if c.Kind != Sentinel || f.MasterName != "main" || f.DB != 3 || f.Username != "app" || f.Password != "p@ss" ||
		f.SentinelUsername != "s" || f.SentinelPassword != "sp" || f.TLSConfig == nil || f.DialTimeout != 2*time.Second || f.PoolSize != 50 {
		t.Errorf("sentinel: %+v", f)
	}
	if got := strings.Join(f.SentinelAddrs, " "); got != "10.0.0.1:26380 10.0.0.2:26379 [::1]:26381" {
		t.Errorf("sentinel addresses %s", got)
	}
	if w := c.Where(); strings.Contains(w, "p@ss") || strings.Contains(w, "sp") || !strings.Contains(w, `"main"`) {
		t.Errorf("Where() = %q", w)
	}
	c, err = Parse("redis-cluster://:pw@c1:7000,c2,c3:7002?read_timeout=1s")
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != Cluster || c.cluster.Password != "pw" || c.cluster.TLSConfig != nil || c.cluster.ReadTimeout != time.Second ||
		strings.Join(c.cluster.Addrs, " ") != "c1:7000 c2:6379 c3:7002" {
		t.Errorf("cluster: %+v", c.cluster)
	}
	c.Tune(32, 2)
	if c.cluster.PoolSize != 32 || c.cluster.MaxRetries != 2 {
		t.Errorf("tuned cluster: pool %d retries %d", c.cluster.PoolSize, c.cluster.MaxRetries)
	}
	for _, u := range []string{"redis-cluster://c1", "redis-cluster://c1/", "redis-cluster://c1/0"} {
		if _, err := Parse(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// A bad URL is refused with an error that says what is wrong and never
// holds a password.
func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"127.0.0.1:6379", "not a URL"},
		{"http://:secretpw@h:6379", `unknown scheme "http"`},
		{"redis-sentinel://:secretpw@s1,s2/0", "?master=<name>"},
		{"redis-sentinel://:secretpw@s1,,s2/0?master=m", "empty host"},
		{"redis-sentinel://:secretpw@s1:port/0?master=m", "bad port"},
		{"redis-sentinel://:secretpw@s1:0/0?master=m", "bad port"},
		{"redis-sentinel://:secretpw@s1/x?master=m", "not a database number"},
		{"redis-sentinel://s1?master=m&sentinel_password=secretpw&mastr=n", `unknown parameter "mastr"`},
		{"redis-sentinel://s1?master=m&master=n&sentinel_password=secretpw", `"master" given 2 times`},
		{"redis-sentinel://s1?master=m&sentinel_password=secretpw&dial_timeout=3", "not a positive duration"},
		{"redis-sentinel://s1?master=m&sentinel_password=secretpw%zz", "malformed path or query"},
		{"redis-cluster://:secretpw@c1,c2/1", "only database 0"},
		{"redis-cluster://:secretpw@c1?pool_size=-1", "pool_size"},
		{"redis-cluster://:secretpw@:6379", "has no name"},
		{"redis://:secretpw@h:6379/zz", "invalid database number"},
		{"redis://:secretpw@h:99999999999999999999", "bad port"},
		{"redis://:secretpw@h:6379/%zz", "malformed URL"},
		{"redis://:secretpw@h:6379/0?nope=1", "nope"},
	} {
		_, err := Parse(c.url)
		if err == nil {
			t.Errorf("%s: accepted", c.url)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want it to say %q", c.url, err, c.want)
		}
		if strings.Contains(err.Error(), "secretpw") {
			t.Errorf("%s: the error shows the password: %v", c.url, err)
		}
	}
}
