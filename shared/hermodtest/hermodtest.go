// Package hermodtest starts the real parts Hermod's tests talk to: an
// in-process JetStream server on a free port with its store in a temp dir,
// and a redis-server process on a free port with a temp dir. Nothing here
// touches the machine's shared NATS (4222) or Redis (6379).
package hermodtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/redis/go-redis/v9"
)

// NATS starts an embedded JetStream server for t and returns it.
func NATS(t testing.TB) *server.Server {
	t.Helper()
	ns, err := StartNATS(t.TempDir())
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// StartNATS starts an embedded JetStream server on a free loopback port.
func StartNATS(dir string) (*server.Server, error) {
	return startServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: dir, NoSigs: true, NoLog: true, MaxPayload: 8 << 20})
}

// Server starts an embedded server with opts for t (a test's own accounts,
// users or cluster) and shuts it down when t ends.
func Server(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	ns, err := startServer(opts)
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

func startServer(opts *server.Options) (*server.Server, error) {
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("nats not ready")
	}
	return ns, nil
}

// Redis is a redis-server process owned by a test.
type Redis struct {
	Addr string
	Dir  string
	cmd  *exec.Cmd
	port int
	bus  int      // cluster bus port of a cluster node
	args []string // more redis-server options
	conf string   // a Sentinel's configuration file: run with --sentinel
	mu   sync.Mutex
}

// URL is the redis:// URL of the server.
func (r *Redis) URL() string { return "redis://" + r.Addr + "/0" }

var (
	portsMu sync.Mutex
	given   = map[int]bool{}
)

// FreePort returns a free TCP port on 127.0.0.1, never the same one twice
// in a process (a port handed out may not be bound yet).
func FreePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for i := 0; i < 100; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !given[port] {
			given[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("no fresh free port")
}

// StartRedis starts redis-server for t on a free port, data in a temp dir.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return StartRedisWith(t)
}

// StartRedisWith is StartRedis with more redis-server options, given after
// (and so overriding) the defaults: AOF with appendfsync no, no RDB
// snapshots, maxmemory 1gb with noeviction.
func StartRedisWith(t testing.TB, args ...string) *Redis {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	r := &Redis{Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: t.TempDir(), port: port, args: args}
	if err := r.Start(); err != nil {
		t.Fatalf("start redis: %v", err)
	}
	t.Cleanup(r.Stop)
	return r
}

// Start runs (or restarts) the server on its port.
func (r *Redis) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("redis-server not on PATH (install the redis-server package): %w", err)
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.Dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "no", "--protected-mode", "no", "--daemonize", "no",
		"--maxmemory", "1gb", "--maxmemory-policy", "noeviction")
	if r.conf != "" {
		// a Sentinel keeps its state in its configuration file, not in AOF
		cmd = exec.Command(bin, r.conf, "--sentinel", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
			"--dir", r.Dir, "--protected-mode", "no", "--daemonize", "no")
	}
	cmd.Args = append(cmd.Args, r.args...)
	cmd.Stdout, cmd.Stderr = nil, nil
	cmd.SysProcAttr = ChildProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c := redis.NewClient(&redis.Options{Addr: r.Addr})
		err = c.Ping(context.Background()).Err()
		_ = c.Close()
		if err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on %s not ready: %w", r.Addr, err)
}

// PID is the process id of the running server, 0 when it is stopped.
func (r *Redis) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Stop kills the server (its AOF stays in Dir for a restart).
func (r *Redis) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// Client returns a go-redis client for r, closed at the end of t.
func (r *Redis) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Received is one request a Sink got.
type Received struct {
	At     time.Time
	Path   string
	Header http.Header
	Body   []byte
}

// Sink is an HTTP server on 127.0.0.1 that records what it receives and
// answers with a status chosen per request.
type Sink struct {
	URL     string
	srv     *http.Server
	mu      sync.Mutex
	got     []Received
	count   atomic.Int64
	Answer  func(n int, r *http.Request) int // n counts from 1; nil: 200
	headers func(n int) map[string]string
}

// SetHeaders sets response headers per request (n counts from 1).
func (s *Sink) SetHeaders(f func(n int) map[string]string) {
	s.mu.Lock()
	s.headers = f
	s.mu.Unlock()
}

// NewSink starts a sink for t.
func NewSink(t testing.TB) *Sink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sink listen: %v", err)
	}
	s := &Sink{URL: "http://" + l.Addr().String()}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(ctx)
	})
	return s
}

func (s *Sink) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	n := int(s.count.Add(1))
	s.mu.Lock()
	s.got = append(s.got, Received{At: time.Now(), Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	answer, headers := s.Answer, s.headers
	s.mu.Unlock()
	if headers != nil {
		for k, v := range headers(n) {
			w.Header().Set(k, v)
		}
	}
	code := 200
	if answer != nil {
		code = answer(n, r)
	}
	w.WriteHeader(code)
}

// SetAnswer replaces the answer function.
func (s *Sink) SetAnswer(f func(n int, r *http.Request) int) {
	s.mu.Lock()
	s.Answer = f
	s.mu.Unlock()
}

// Count is the number of requests received.
func (s *Sink) Count() int { return int(s.count.Load()) }

// Received returns a copy of what arrived.
func (s *Sink) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.got...)
}

// CheckFor calls check every interval until it returns nil; when timeout
// passes first, it fails t with the last error check returned, so the
// failure says what was last observed rather than only what was awaited.
func CheckFor(t testing.TB, timeout, interval time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// RepoRoot finds the repository root (the directory holding go.work).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.work not found above the working directory")
		}
		dir = parent
	}
}

// CalloutNATS is a JetStream server that sends every connection other than
// the services' user and the system user to an auth callout (agents).
type CalloutNATS struct {
	Server *server.Server
	// ServiceURL connects as the services' user (exempt from the callout).
	ServiceURL string
	// SystemURL connects as a user of the system account (exempt from the
	// callout): HERMOD_NATS_SYSTEM_URL, for kicking agents' connections.
	SystemURL string
	// Seed is the callout issuer's account seed (HERMOD_AUTH_CALLOUT_SEED).
	Seed string
}

// NATSWithCallout starts such a server for t: the services' user in the
// global account, a system account SYS with the user "sys".
func NATSWithCallout(t testing.TB) *CalloutNATS {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	sys := server.NewAccount("SYS")
	ns := Server(t, &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true, MaxPayload: 8 << 20,
		Accounts:      []*server.Account{sys},
		SystemAccount: "SYS",
		Users: []*server.User{{Username: "hermod", Password: "hermod-service-pw"},
			{Username: "sys", Password: "hermod-system-pw", Account: sys}},
		AuthCallout: &server.AuthCallout{Issuer: pub, AuthUsers: []string{"hermod", "sys"}}})
	addr := ns.Addr().String()
	return &CalloutNATS{Server: ns, ServiceURL: "nats://hermod:hermod-service-pw@" + addr,
		SystemURL: "nats://sys:hermod-system-pw@" + addr, Seed: string(seed)}
}

// LogBuffer collects log lines written from several goroutines (a
// zerolog writer a test reads back).
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
