package allinone_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	allinone "github.com/hermodhq/hermod/services/hermod"

	"github.com/hermodhq/hermod/shared/agentauth"
	"github.com/hermodhq/hermod/shared/envconfig"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
)

// agentConns counts the server's open connections of an agent.
func agentConns(t *testing.T, ns *server.Server, id string) int {
	t.Helper()
	cz, err := ns.Connz(&server.ConnzOptions{Username: true, User: agentauth.UserName(id)})
	if err != nil {
		t.Fatal(err)
	}
	return len(cz.Conns)
}

// noAgentConns says whether the server has no open connection of an agent.
func noAgentConns(t *testing.T, ns *server.Server, id string) error {
	t.Helper()
	if n := agentConns(t, ns, id); n != 0 {
		return fmt.Errorf("%d connection(s) of agent %s still open", n, id)
	}
	return nil
}

// kickClient is a plain NATS client connected with an agent's credentials,
// recording its permission violations and reconnections.
type kickClient struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	violations chan error
	reconnects atomic.Int64
}

func connectAgentClient(t *testing.T, url, id, token string) *kickClient {
	t.Helper()
	k := &kickClient{violations: make(chan error, 64)}
	nc, err := nats.Connect(url, nats.UserInfo(id, token), nats.CustomInboxPrefix(agentauth.InboxPrefix(id)),
		nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectHandler(func(*nats.Conn) { k.reconnects.Add(1) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case k.violations <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("agent credentials refused: %v", err)
	}
	t.Cleanup(nc.Close)
	k.nc = nc
	k.js, _ = jetstream.New(nc)
	return k
}

// consumerInfo asks for a label-set consumer's info (allowed only for the
// label sets the connection's grant covers).
func (k *kickClient) consumerInfo(labels []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := k.js.Consumer(ctx, streams.DeliveriesStream, streams.AgentConsumerName(labels))
	return err
}

// A grant narrowed with PUT reaches an open connection's NATS permissions at
// once (hermod-api kicks it through the system account; it reconnects and is
// authorized with the new grant), not after the user JWT's five minutes; a
// connection of an agent revoked with DELETE is closed at once, and the
// credentials can no longer connect.
func TestAgentCredentialsKickedOnGrantChangeAndRevoke(t *testing.T) {
	p, cn := calloutFleet(t, 0)

	token := p.registerAgent("k1", "env:production", "env:staging")
	sink := hermodtest.NewSink(t)
	prod, staging := []string{"env:production"}, []string{"env:staging"}
	for name, labels := range map[string][]string{"prod": prod, "staging": staging} {
		p.createWebhook(map[string]any{"name": name, "url": sink.URL, "event_types": []string{"alert.*"}, "target_labels": labels})
	}
	url := "nats://" + cn.Server.Addr().String()
	k := connectAgentClient(t, url, "k1", token)
	for _, labels := range [][]string{prod, staging} {
		if err := k.consumerInfo(labels); err != nil {
			t.Fatalf("label set %v refused before the grant changed: %v", labels, err)
		}
	}

	// PUT narrows the grant to production: the staging label set is refused
	// by NATS at once, on the connection the client already had.
	p.must(200, "PUT", "/api/v1/agents/k1", map[string]any{"labels": prod})
	changed := time.Now()
	hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := k.reconnects.Load(); n < 1 || !k.nc.IsConnected() {
			return fmt.Errorf("the client has reconnected %d times and is %s; want kicked and connected again", n, k.nc.Status())
		}
		return nil
	})
	for len(k.violations) > 0 {
		<-k.violations
	}
	if err := k.consumerInfo(staging); err == nil {
		t.Fatalf("the staging label set is still allowed after the grant was narrowed")
	}
	select {
	case err := <-k.violations:
		if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(err.Error(), "Permissions Violation") ||
			!strings.Contains(err.Error(), streams.AgentConsumerName(staging)) {
			t.Errorf("staging refused, but not by a permissions violation: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("no permissions violation for the staging label set")
	}
	if err := k.consumerInfo(prod); err != nil {
		t.Errorf("the production label set is refused after the grant change: %v", err)
	}
	if took := time.Since(changed); took > 10*time.Second {
		t.Errorf("the grant change took %s to reach NATS", took)
	}
	if n := agentConns(t, cn.Server, "k1"); n != 1 {
		t.Errorf("%d connections of k1 after the grant change, want 1 (the reconnected one)", n)
	}

	// An agent cannot publish on the kick subject, but it can name any reply
	// subject for its own JetStream requests, and the server publishes the
	// answer there. Such an answer is not a kick request: the victim stays.
	victim := connectAgentClient(t, url, "victim", p.registerAgent("victim", prod...))
	if err := k.nc.PublishRequest("$JS.API.CONSUMER.INFO."+streams.DeliveriesStream+"."+streams.AgentConsumerName(prod),
		streams.AgentKickSubject("victim"), nil); err != nil {
		t.Fatal(err)
	}
	_ = k.nc.Flush()
	// The kick service handles each request in its subscription's callback,
	// where it refuses a malformed one before anything else: once it has
	// logged the refusal of this answer, the answer has kicked nobody and
	// never will.
	hermodtest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if !p.logged("ignoring a malformed kick request", streams.AgentKickSubject("victim")) {
			return fmt.Errorf("the kick service has not refused the JetStream answer on %svictim yet; the victim has %d connection(s), %d reconnections",
				streams.AgentKickPrefix, agentConns(t, cn.Server, "victim"), victim.reconnects.Load())
		}
		return nil
	})
	if victim.reconnects.Load() != 0 || agentConns(t, cn.Server, "victim") != 1 {
		t.Fatalf("a JetStream answer sent to the kick subject kicked another agent")
	}

	// DELETE: the open connection is closed at once and cannot come back.
	p.must(204, "DELETE", "/api/v1/agents/k1", nil)
	hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if err := noAgentConns(t, cn.Server, "k1"); err != nil {
			return err
		}
		if k.nc.IsConnected() {
			return errors.New("the revoked agent's client is still connected")
		}
		return nil
	})
	hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		return refusedByAuthorization(k.nc.LastError())
	})
	if k.nc.IsConnected() || agentConns(t, cn.Server, "k1") != 0 {
		t.Errorf("the revoked credentials reconnected")
	}
	if nc, err := nats.Connect(url, nats.UserInfo("k1", token), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Errorf("revoked credentials connected")
	}
}

// A running hermod-agent is disconnected when it is revoked, at once (not at
// its next heartbeat, and not when its user JWT expires), and can no longer
// connect.
func TestE2ERevokedAgentDisconnected(t *testing.T) {
	p, cn := calloutFleet(t, 0)

	token := p.registerAgent("eu-1", "env:production")
	sink := hermodtest.NewSink(t)
	id := p.createWebhook(map[string]any{"name": "prod", "url": sink.URL, "event_types": []string{"alert.*"},
		"target_labels": []string{"env:production"}})
	url := "nats://" + cn.Server.Addr().String()
	agent, ops := startReady(t, "hermod-agent", map[string]string{"HERMOD_NATS_URL": url, "HERMOD_AGENT_ID": "eu-1", "HERMOD_AGENT_TOKEN": token})
	p.publish("alert.triggered", map[string]any{})
	if ds := p.waitStatus(id, "success", 1, 20*time.Second); ds[0]["delivered_by"] != "agent:eu-1" {
		t.Fatalf("delivered by %v", ds[0]["delivered_by"])
	}
	if n := agentConns(t, cn.Server, "eu-1"); n != 1 {
		t.Fatalf("%d connections of the running agent, want 1", n)
	}

	p.must(204, "DELETE", "/api/v1/agents/eu-1", nil)
	revoked := time.Now()
	hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error { return noAgentConns(t, cn.Server, "eu-1") })
	if took := time.Since(revoked); took >= 5*time.Second {
		t.Errorf("disconnected after %s", took)
	}
	hermodtest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error { return logRefusedByAuthorization(t, agent) })
	hermodtest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		if code, body := httpGet("http://" + ops + "/readyz"); code != 503 {
			return fmt.Errorf("the revoked agent's /readyz answers %d %s, want 503", code, tail(body, 300))
		}
		return nil
	})
	if n := agentConns(t, cn.Server, "eu-1"); n != 0 {
		t.Errorf("the revoked agent reconnected (%d connections)", n)
	}
	p.publish("alert.resolved", map[string]any{})
	p.waitStatus(id, "pending", 1, 10*time.Second)
	if sink.Count() != 1 {
		t.Errorf("the revoked agent delivered again (%d requests)", sink.Count())
	}
}

// The all-in-one listening for agents (HERMOD_NATS_LISTEN) runs the auth
// callout on its embedded NATS: only its own user (password in the data
// dir) and registered agents connect, an agent gets its grant's permissions
// and delivers, and a revoked agent is kicked at once.
func TestAllInOneListeningRunsTheCallout(t *testing.T) {
	rd := hermodtest.StartRedis(t)
	natsAddr, apiAddr := freeAddr(t), freeAddr(t)
	cfg, err := allinone.LoadConfig(envconfig.NewFrom(func(string) (string, bool) { return "", false }))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RedisURL, cfg.DataDir, cfg.APIAddr, cfg.NATSListen = rd.URL(), t.TempDir(), apiAddr, natsAddr
	cfg.AdminKeys, cfg.EncryptionKey, cfg.ShutdownTimeout = []string{testAdminKey}, testEncKey, 15*time.Second
	logs := &hermodtest.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- allinone.Main(ctx, cfg, zerolog.New(logs), io.Discard) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("all-in-one stopped with error: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("all-in-one did not stop")
		}
		if t.Failed() {
			t.Logf("--- all-in-one log ---\n%s", tail(logs.String(), 4000))
		}
	})
	hermodtest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if code, body := httpGet("http://" + apiAddr + "/readyz"); code != 200 {
			return fmt.Errorf("the all-in-one is not ready: %d %s", code, tail(body, 300))
		}
		return nil
	})
	p := &pipeline{t: t, Base: "http://" + apiAddr, hc: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(p.hc.CloseIdleConnections)
	url := "nats://" + natsAddr

	token := p.registerAgent("a1", "env:production")
	sink := hermodtest.NewSink(t)
	id := p.createWebhook(map[string]any{"name": "prod", "url": sink.URL, "event_types": []string{"alert.*"},
		"target_labels": []string{"env:production"}})

	// Its own user connects with the password kept in the data dir; no
	// credentials, an unknown agent and a wrong token do not.
	pw, err := os.ReadFile(filepath.Join(cfg.DataDir, "nats_password"))
	if err != nil {
		t.Fatal(err)
	}
	own, err := nats.Connect(url, nats.UserInfo("hermod", strings.TrimSpace(string(pw))), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("the all-in-one's own user refused: %v", err)
	}
	own.Close()
	for what, o := range map[string]nats.Option{"no credentials": func(*nats.Options) error { return nil },
		"unknown agent": nats.UserInfo("ghost", "hagt_x"), "wrong token": nats.UserInfo("a1", "hagt_wrong")} {
		if nc, err := nats.Connect(url, o, nats.MaxReconnects(0)); err == nil {
			nc.Close()
			t.Errorf("%s connected", what)
		}
	}
	// The agent's credentials: its label set, not the event stream.
	k := connectAgentClient(t, url, "a1", token)
	if err := k.consumerInfo([]string{"env:production"}); err != nil {
		t.Errorf("the agent's own label set refused: %v", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	_, err = k.js.Stream(sctx, streams.EventsStream)
	scancel()
	if err == nil {
		t.Errorf("the agent's credentials read the event stream")
	}
	// The agent delivers through the callout; revoked, it is kicked at once.
	agent, _ := startReady(t, "hermod-agent", map[string]string{"HERMOD_NATS_URL": url, "HERMOD_AGENT_ID": "a1", "HERMOD_AGENT_TOKEN": token})
	p.publish("alert.triggered", map[string]any{})
	if ds := p.waitStatus(id, "success", 1, 20*time.Second); ds[0]["delivered_by"] != "agent:a1" {
		t.Errorf("delivered by %v", ds[0]["delivered_by"])
	}
	p.must(204, "DELETE", "/api/v1/agents/a1", nil)
	hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if k.nc.IsConnected() {
			return errors.New("the revoked client is still connected")
		}
		return refusedByAuthorization(k.nc.LastError())
	})
	hermodtest.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error { return logRefusedByAuthorization(t, agent) })
	if !strings.Contains(logs.String(), "agent connections kicked") {
		t.Errorf("no kick logged")
	}
}

// With the shipped configuration (the auth callout), a label set and a
// webhook first used after the agent connected are picked up without a
// restart: the agent notices at its next heartbeat that its grant's label
// sets or webhooks changed and reconnects, so NATS authorizes the new
// permissions (which it fixes at connect). It also parks a retry of the new
// webhook on that webhook's delay subject, which needs the new permissions.
func TestE2EAgentFollowsNewLabelSetUnderCallout(t *testing.T) {
	p, cn := calloutFleet(t, 1)
	token := p.registerAgent("eu-2", "env:production", "region:eu")
	sink := hermodtest.NewSink(t)
	first := p.createWebhook(map[string]any{"name": "prod", "url": sink.URL + "/first", "event_types": []string{"alert.*"},
		"target_labels": []string{"env:production"}})
	url := "nats://" + cn.Server.Addr().String()
	agent, _ := startReady(t, "hermod-agent", map[string]string{"HERMOD_NATS_URL": url, "HERMOD_AGENT_ID": "eu-2", "HERMOD_AGENT_TOKEN": token})
	p.publish("alert.triggered", map[string]any{"n": 1})
	p.waitStatus(first, "success", 1, 20*time.Second)

	// A new label set, first used now; its first attempt fails, so the agent
	// must park the retry on the new webhook's delay subject.
	sink.SetAnswer(func(n int, r *http.Request) int {
		if r.URL.Path == "/late" && n == 2 {
			return 503
		}
		return 200
	})
	late := p.createWebhook(map[string]any{"name": "eu", "url": sink.URL + "/late", "event_types": []string{"cluster.*"},
		"target_labels": []string{"region:eu"}})
	p.publish("cluster.degraded", map[string]any{"n": 2})
	ds := p.waitStatus(late, "success", 1, 40*time.Second)
	if ds[0]["delivered_by"] != "agent:eu-2" || ds[0]["attempts"].(float64) != 2 {
		t.Fatalf("the late label set's delivery: %v", ds[0])
	}
	log := readFile(t, agent.log)
	if !strings.Contains(log, "reconnecting so NATS authorizes the new permissions") {
		t.Errorf("the agent did not reconnect for its new permissions:\n%s", tail(log, 2000))
	}
	if strings.Contains(log, "Permissions Violation") && strings.Contains(log, "hermod.delay."+late) {
		t.Errorf("parking the retry was refused:\n%s", tail(log, 2000))
	}
}

// refusedByAuthorization says whether a client's last error is the
// server's refusal of its credentials.
func refusedByAuthorization(err error) error {
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		return fmt.Errorf("the client's last error is %v, want an authorization violation", err)
	}
	return nil
}

// logRefusedByAuthorization says whether a process logged the server's
// refusal of its credentials.
func logRefusedByAuthorization(t *testing.T, p *proc) error {
	t.Helper()
	if log := readFile(t, p.log); !strings.Contains(strings.ToLower(log), "authorization violation") {
		return fmt.Errorf("%s has not logged an authorization violation:\n%s", p.name, tail(log, 1000))
	}
	return nil
}

// calloutFleet starts NATS with the auth callout and a system account, a
// redis-server, and hermod-api (the callout and the kicker), hermod-router
// and n hermod-deliverers as processes; deliveries may reach loopback.
func calloutFleet(t *testing.T, n int) (*pipeline, *hermodtest.CalloutNATS) {
	t.Helper()
	cn := hermodtest.NATSWithCallout(t)
	rd := hermodtest.StartRedis(t)
	env := map[string]string{"HERMOD_NATS_URL": cn.ServiceURL, "HERMOD_REDIS_URL": rd.URL(), "HERMOD_ENCRYPTION_KEY": testEncKey,
		"HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8"}
	p, _, _ := startFleet(t, env, map[string]string{"HERMOD_AUTH_CALLOUT_SEED": cn.Seed, "HERMOD_NATS_SYSTEM_URL": cn.SystemURL}, n)
	return p, cn
}
