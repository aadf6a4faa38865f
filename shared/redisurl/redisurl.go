// Package redisurl turns HERMOD_REDIS_URL into a go-redis client: a single
// server (redis://, rediss://), a primary found through Redis Sentinel
// (redis-sentinel://, rediss-sentinel://) or a Redis Cluster
// (redis-cluster://, rediss-cluster://).
//
// The Sentinel and Cluster forms list their hosts comma-separated:
//
//	redis-sentinel://[user:pass@]host1:26379,host2:26379,host3:26379[/db]?master=mymaster[&sentinel_username=u][&sentinel_password=p]
//	redis-cluster://[user:pass@]host1:6379,host2:6379,host3:6379
//
// The user and password are those of the Redis servers holding the data;
// a Sentinel's own credentials, when it has any, are the query parameters
// sentinel_username and sentinel_password. Both forms also take
// dial_timeout, read_timeout, write_timeout (Go durations) and pool_size.
package redisurl

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Kind is the shape of the Redis deployment a URL names.
type Kind string

// The kinds of deployment.
const (
	Single   Kind = "single server"
	Sentinel Kind = "sentinel"
	Cluster  Kind = "cluster"
)

// Config is a parsed URL: enough to open a client, and a description of
// where it points that holds no password.
type Config struct {
	Kind     Kind
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// Where describes the servers a Config points at (no credentials).
func (c *Config) Where() string {
	switch c.Kind {
	case Sentinel:
		return fmt.Sprintf("primary %q from the Sentinels at %s", c.failover.MasterName, strings.Join(c.failover.SentinelAddrs, ","))
	case Cluster:
		return "the cluster at " + strings.Join(c.cluster.Addrs, ",")
	default:
		return c.single.Addr
	}
}

// Tune sets the pool size to at least minPool and the retries of a
// command to retries, on whichever kind of client c opens.
func (c *Config) Tune(minPool, retries int) {
	switch c.Kind {
	case Sentinel:
		c.failover.PoolSize = max(c.failover.PoolSize, minPool)
		c.failover.MaxRetries = retries
	case Cluster:
		c.cluster.PoolSize = max(c.cluster.PoolSize, minPool)
		c.cluster.MaxRetries = retries
	default:
		c.single.PoolSize = max(c.single.PoolSize, minPool)
		c.single.MaxRetries = retries
	}
}

// Client opens a client for c (it connects lazily, on the first command).
func (c *Config) Client() redis.UniversalClient {
	switch c.Kind {
	case Sentinel:
		return redis.NewFailoverClient(c.failover)
	case Cluster:
		return redis.NewClusterClient(c.cluster)
	default:
		return redis.NewClient(c.single)
	}
}

// Parse reads a Redis URL in one of the package's forms. Its errors name
// the problem and never hold the password.
func Parse(raw string) (*Config, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("not a URL: want redis://, rediss://, redis-sentinel:// or redis-cluster://")
	}
	switch scheme {
	case "redis", "rediss":
		u, err := url.Parse(raw)
		if err != nil {
			// url's errors quote the URL, password and all
			return nil, errMalformed
		}
		o, err := redis.ParseURL(raw)
		if err != nil {
			msg := err.Error()
			if p, ok := u.User.Password(); ok && p != "" {
				msg = strings.ReplaceAll(msg, p, "****")
			}
			return nil, fmt.Errorf("%s", msg)
		}
		if _, port, err := net.SplitHostPort(o.Addr); err != nil || !goodPort(port) {
			return nil, fmt.Errorf("%s URL: host %q has a bad port", scheme, u.Host)
		}
		return &Config{Kind: Single, single: o}, nil
	case "redis-sentinel", "rediss-sentinel":
		return parseSentinel(scheme, rest)
	case "redis-cluster", "rediss-cluster":
		return parseCluster(scheme, rest)
	}
	return nil, fmt.Errorf("unknown scheme %q: want redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster", scheme)
}

var errMalformed = errors.New("malformed URL: check the host, the port and the percent-encoding of the user and password")

// multi is the common part of the Sentinel and Cluster forms.
type multi struct {
	tls            *tls.Config
	user, password string
	hosts          []string
	path           string
	query          url.Values
}

// parseMulti splits rest (what follows scheme://) into credentials, hosts
// (each given defaultPort when it has none), path and query.
func parseMulti(scheme, rest, defaultPort string) (*multi, error) {
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	m := &multi{}
	if strings.HasPrefix(scheme, "rediss") {
		// No ServerName: each connection checks the certificate against the
		// host it dials.
		m.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	hostList := authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		hostList = authority[at+1:]
		u, err := url.Parse("x://" + authority[:at] + "@h")
		if err != nil || u.User == nil {
			return nil, fmt.Errorf("%s URL: malformed user and password (percent-encode @ : / ? , in them)", scheme)
		}
		m.user = u.User.Username()
		m.password, _ = u.User.Password()
	}
	for _, h := range strings.Split(hostList, ",") {
		if h == "" {
			return nil, fmt.Errorf("%s URL: empty host in the host list %q", scheme, hostList)
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// no port given
			host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), defaultPort
		}
		if host == "" {
			return nil, fmt.Errorf("%s URL: host %q has no name", scheme, h)
		}
		if !goodPort(port) {
			return nil, fmt.Errorf("%s URL: host %q has a bad port", scheme, h)
		}
		m.hosts = append(m.hosts, net.JoinHostPort(host, port))
	}
	u, err := url.Parse("x://h" + tail)
	if err == nil {
		m.query, err = url.ParseQuery(u.RawQuery)
	}
	if err != nil {
		// url's errors quote the query, which may hold sentinel_password
		return nil, fmt.Errorf("%s URL: malformed path or query (percent-encode special characters)", scheme)
	}
	m.path = u.Path
	return m, nil
}

func goodPort(port string) bool {
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}

// common reads the query parameters both forms take and reports any left.
type common struct {
	dial, read, write time.Duration
	pool              int
}

func (m *multi) common(scheme string, own ...string) (common, error) {
	var c common
	known := map[string]bool{"dial_timeout": true, "read_timeout": true, "write_timeout": true, "pool_size": true}
	for _, k := range own {
		known[k] = true
	}
	for k, vs := range m.query {
		if !known[k] {
			return c, fmt.Errorf("%s URL: unknown parameter %q", scheme, k)
		}
		if len(vs) != 1 {
			return c, fmt.Errorf("%s URL: parameter %q given %d times", scheme, k, len(vs))
		}
	}
	for k, d := range map[string]*time.Duration{"dial_timeout": &c.dial, "read_timeout": &c.read, "write_timeout": &c.write} {
		if v := m.query.Get(k); v != "" {
			p, err := time.ParseDuration(v)
			if err != nil || p <= 0 {
				return c, fmt.Errorf("%s URL: %s=%q is not a positive duration such as 3s", scheme, k, v)
			}
			*d = p
		}
	}
	if v := m.query.Get("pool_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return c, fmt.Errorf("%s URL: pool_size=%q is not a positive number", scheme, v)
		}
		c.pool = n
	}
	return c, nil
}

func parseSentinel(scheme, rest string) (*Config, error) {
	m, err := parseMulti(scheme, rest, "26379")
	if err != nil {
		return nil, err
	}
	c, err := m.common(scheme, "master", "sentinel_username", "sentinel_password")
	if err != nil {
		return nil, err
	}
	master := m.query.Get("master")
	if master == "" {
		return nil, fmt.Errorf("%s URL: the primary's name is missing: add ?master=<name> (the name the Sentinels monitor)", scheme)
	}
	db := 0
	if p := strings.Trim(m.path, "/"); p != "" {
		if db, err = strconv.Atoi(p); err != nil || db < 0 {
			return nil, fmt.Errorf("%s URL: path %q is not a database number", scheme, m.path)
		}
	}
	return &Config{Kind: Sentinel, failover: &redis.FailoverOptions{
		MasterName: master, SentinelAddrs: m.hosts,
		SentinelUsername: m.query.Get("sentinel_username"), SentinelPassword: m.query.Get("sentinel_password"),
		Username: m.user, Password: m.password, DB: db, TLSConfig: m.tls,
		DialTimeout: c.dial, ReadTimeout: c.read, WriteTimeout: c.write, PoolSize: c.pool,
	}}, nil
}

func parseCluster(scheme, rest string) (*Config, error) {
	m, err := parseMulti(scheme, rest, "6379")
	if err != nil {
		return nil, err
	}
	c, err := m.common(scheme)
	if err != nil {
		return nil, err
	}
	if p := strings.Trim(m.path, "/"); p != "" && p != "0" {
		return nil, fmt.Errorf("%s URL: path %q: a Redis Cluster has only database 0", scheme, m.path)
	}
	return &Config{Kind: Cluster, cluster: &redis.ClusterOptions{
		Addrs: m.hosts, Username: m.user, Password: m.password, TLSConfig: m.tls,
		DialTimeout: c.dial, ReadTimeout: c.read, WriteTimeout: c.write, PoolSize: c.pool,
	}}, nil
}
