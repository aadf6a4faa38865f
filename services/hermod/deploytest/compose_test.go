//go:build compose

package deploytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/services/hermod/bench/fleet"
	"github.com/hermodhq/hermod/services/hermod/bench/publisher"
	"github.com/hermodhq/hermod/services/hermod/bench/receiver"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/signing"
)

// The stack's network: the CI override gives it this subnet, and the
// cluster file's fixed Redis and Sentinel addresses are in it.
const (
	subnetPrefix = "172.30.213"
	subnet       = subnetPrefix + ".0/24"
)

// stack is one `docker compose` project of Hermod's stack.
type stack struct {
	t       *testing.T
	dir     string // deploy/compose
	project string
	envFile string
	files   []string // compose files, in order
	env     []string // the compose command's own environment (the agent's credentials)
	api     string   // http://127.0.0.1:port
	nats    string   // nats://hermod:password@127.0.0.1:port
	recv    string   // http://127.0.0.1:port
	key     string   // an admin key
	hc      *http.Client
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func freePort(t *testing.T) string {
	p, err := hermodtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(p)
}

// up writes the stack's .env as a user would (keys generated, the callout
// key from hermod-api's own command) and starts it from compose.yaml, the
// given override files and compose.ci.yaml (then ciFiles) with three
// deliverers, waiting until every container is healthy.
func up(t *testing.T, secret string, files, ciFiles []string) *stack {
	root, err := hermodtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, dir: filepath.Join(root, "deploy", "compose"), project: "hermodci" + randomHex(t, 3),
		key: "ci-admin-" + randomHex(t, 16), hc: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(s.hc.CloseIdleConnections)
	callout, err := exec.Command("docker", "run", "--rm", "hermod-api:local", "hermod-api", "callout-key").Output()
	if err != nil {
		t.Fatalf("hermod-api callout-key: %v", err)
	}
	natsPassword := randomHex(t, 12)
	apiPort, natsPort, recvPort := freePort(t), freePort(t), freePort(t)
	env := []string{
		"HERMOD_ADMIN_KEYS=" + s.key,
		"HERMOD_ENCRYPTION_KEY=" + randomHex(t, 32),
		"NATS_HERMOD_PASSWORD=" + natsPassword,
		"NATS_SYSTEM_PASSWORD=" + randomHex(t, 12),
		"HERMOD_API_PORT=127.0.0.1:" + apiPort,
		"HERMOD_CI_NATS_PORT=" + natsPort,
		"HERMOD_CI_RECEIVER_PORT=" + recvPort,
		"HERMOD_CI_RECEIVER_SECRET=" + secret,
		"HERMOD_CI_SUBNET=" + subnet,
		"HERMOD_CLUSTER_NET=" + subnetPrefix,
		// The deliverers' SSRF guard allows the stack's own network only.
		"HERMOD_DELIVERY_ALLOW_CIDRS=" + subnet,
		"HERMOD_SHUTDOWN_TIMEOUT=10s",
		"HERMOD_STOP_GRACE_PERIOD=20s",
	}
	for _, line := range strings.Split(string(callout), "\n") {
		if strings.HasPrefix(line, "HERMOD_AUTH_CALLOUT_SEED=") || strings.HasPrefix(line, "NATS_CALLOUT_ISSUER=") {
			env = append(env, line)
		}
	}
	for _, f := range append(append(append([]string{"compose.yaml"}, files...), "compose.ci.yaml"), ciFiles...) {
		s.files = append(s.files, "--file", filepath.Join(s.dir, f))
	}
	s.envFile = filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(s.envFile, []byte(strings.Join(env, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.api, s.recv = "http://127.0.0.1:"+apiPort, "http://127.0.0.1:"+recvPort
	s.nats = "nats://hermod:" + natsPassword + "@127.0.0.1:" + natsPort
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := s.compose("--profile", "agent", "logs", "--no-color", "--tail", "80")
			t.Logf("--- compose logs ---\n%s", out)
		}
		if out, err := s.compose("--profile", "agent", "down", "--volumes", "--remove-orphans", "--timeout", "20"); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	s.must("up", "--detach", "--wait", "--wait-timeout", "180", "--scale", "deliverer=3")
	return s
}

// compose runs docker compose on the stack's project.
func (s *stack) compose(args ...string) (string, error) {
	base := append([]string{"compose", "--project-name", s.project, "--project-directory", s.dir}, s.files...)
	base = append(base, "--env-file", s.envFile)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append(base, args...)...)
	cmd.Env = append(os.Environ(), s.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *stack) must(args ...string) string {
	s.t.Helper()
	out, err := s.compose(args...)
	if err != nil {
		s.t.Fatalf("docker compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// ips are the addresses of a service's containers on the stack's network.
func (s *stack) ips(service string) []string {
	s.t.Helper()
	var ips []string
	for _, id := range strings.Fields(s.must("ps", "--quiet", service)) {
		out, err := exec.Command("docker", "inspect", "--format",
			"{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", id).Output()
		if err != nil {
			s.t.Fatalf("docker inspect %s: %v", id, err)
		}
		ips = append(ips, strings.Fields(string(out))...)
	}
	sort.Strings(ips)
	return ips
}

// call sends one API request with the admin key and decodes the answer.
func (s *stack) call(method, path string, body any, want int) map[string]any {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.api+path, rd)
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		s.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func (s *stack) getJSON(url string, v any) error { return fleet.GetJSON(s.hc, url, v) }

// arrived waits until the receiver counted want distinct deliveries on
// path, and returns what it saw there.
func (s *stack) arrived(path string, want int) receiver.Check {
	s.t.Helper()
	var ch receiver.Check
	hermodtest.CheckFor(s.t, 3*time.Minute, 250*time.Millisecond, func() error {
		var checks map[string]receiver.Check
		if err := s.getJSON(s.recv+"/checks", &checks); err != nil {
			return err
		}
		ch = checks[path]
		if ch.Distinct < want {
			return fmt.Errorf("%s: %d of %d deliveries arrived", path, ch.Distinct, want)
		}
		return nil
	})
	return ch
}

// docker compose up as users run it: NATS with JetStream and the auth
// callout as shipped, Redis with AOF and noeviction, api, router, three
// deliverers and an agent, every one from an image built here. Webhooks
// are created through the API; events are published to NATS and through
// the API; the receiver container gets every delivery once, signed, from
// every deliverer container, and the label-targeted ones from the agent
// container.
func TestComposeUp(t *testing.T) {
	secret, err := signing.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s := up(t, secret, nil, nil)

	const perHook = 150
	for _, name := range []string{"alpha", "beta"} {
		s.call(http.MethodPost, "/api/v1/webhooks", map[string]any{"name": name, "url": "http://receiver:9000/fast/" + name,
			"event_types": []string{"deployment.*"}, "secret": secret}, http.StatusCreated)
	}
	// Half the events straight to NATS, half through the API.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, o := range []publisher.Options{
		{Mode: publisher.ModeJetStream, NATSURL: s.nats, EventType: "deployment.applied", Events: perHook / 2, IDPrefix: "ci-js-"},
		{Mode: publisher.ModeHTTP, APIURL: s.api, AdminKey: s.key, Conns: 4, EventType: "deployment.failed", Events: perHook / 2, IDPrefix: "ci-http-"},
	} {
		res, err := publisher.Run(ctx, o)
		if err != nil || res.Accepted != o.Events {
			t.Fatalf("publish %s: %+v %v", o.Mode, res, err)
		}
	}
	senders := map[string]int{}
	for _, name := range []string{"alpha", "beta"} {
		ch := s.arrived("/fast/"+name, perHook)
		t.Logf("webhook %s: %d deliveries in %d requests; %d verified, %d not; by sender %v",
			name, ch.Distinct, ch.Requests, ch.Verified, ch.Unverified, ch.Sources)
		if ch.Distinct != perHook || ch.Unverified != 0 || ch.Verified != ch.Requests {
			t.Errorf("webhook %s: %d deliveries in %d requests, %d verified and %d not; want %d, all verified",
				name, ch.Distinct, ch.Requests, ch.Verified, ch.Unverified, perHook)
		}
		for ip, n := range ch.Sources {
			senders[ip] += n
		}
	}
	deliverers := s.ips("deliverer")
	if len(deliverers) != 3 {
		t.Fatalf("deliverer containers at %v, want 3", deliverers)
	}
	for _, ip := range deliverers {
		if senders[ip] == 0 {
			t.Errorf("the deliverer at %s sent nothing (senders %v)", ip, senders)
		}
	}
	for ip := range senders {
		if !contains(deliverers, ip) {
			t.Errorf("a delivery came from %s, which is no deliverer %v", ip, deliverers)
		}
	}

	// The agent: registered through the API, started with its credentials
	// as the compose file's comment says, and sent the webhooks that target
	// its labels.
	creds := s.call(http.MethodPost, "/api/v1/agents", map[string]any{"id": "ci-agent", "labels": []string{"env:ci"}}, http.StatusCreated)
	cr, _ := creds["credentials"].(map[string]any)
	s.env = []string{fmt.Sprintf("HERMOD_AGENT_ID=%v", cr["agent_id"]), fmt.Sprintf("HERMOD_AGENT_TOKEN=%v", cr["token"])}
	s.must("--profile", "agent", "up", "--detach", "--wait", "--wait-timeout", "120", "agent")
	s.call(http.MethodPost, "/api/v1/webhooks", map[string]any{"name": "in-cluster", "url": "http://receiver:9000/fast/agent",
		"event_types": []string{"alert.*"}, "target_labels": []string{"env:ci"}, "secret": secret}, http.StatusCreated)
	const alerts = 20
	for i := range alerts {
		s.call(http.MethodPost, "/api/v1/events", map[string]any{"event_type": "alert.triggered",
			"data": map[string]any{"alert_id": fmt.Sprintf("a-%d", i)}, "labels": map[string]string{"env": "ci"}}, http.StatusAccepted)
	}
	ch := s.arrived("/fast/agent", alerts)
	agent := s.ips("agent")
	t.Logf("agent webhook: %d deliveries in %d requests; %d verified; by sender %v (agent %v)", ch.Distinct, ch.Requests, ch.Verified, ch.Sources, agent)
	if ch.Distinct != alerts || ch.Unverified != 0 || len(agent) != 1 || ch.Sources[agent[0]] != ch.Requests {
		t.Errorf("agent webhook: %d deliveries, %d unverified, senders %v; want %d, all verified, all from the agent %v",
			ch.Distinct, ch.Unverified, ch.Sources, alerts, agent)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
