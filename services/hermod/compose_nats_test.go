package allinone_test

// deploy/compose/nats.conf: the accounts and the auth callout of the shipped
// configuration. A real nats-server is started from it (the configuration
// parser of the server the tests embed), with hermod-api as its callout.
// How the Compose files use it is checked in deploytest (make test-compose),
// where `docker compose config` reads them.

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/agentauth"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
)

// calloutKey runs `hermod-api callout-key` and returns the two values it prints.
func calloutKey(t *testing.T) (seed, issuer string) {
	t.Helper()
	out, err := exec.Command(binPath(t, "hermod-api"), "callout-key").Output()
	if err != nil {
		t.Fatalf("hermod-api callout-key: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "HERMOD_AUTH_CALLOUT_SEED="); ok {
			seed = v
		}
		if v, ok := strings.CutPrefix(line, "NATS_CALLOUT_ISSUER="); ok {
			issuer = v
		}
	}
	c, err := agentauth.NewCallout(seed, "", nil, zerolog.Nop())
	if err != nil || c.Issuer() != issuer {
		t.Fatalf("callout-key printed a seed and an issuer that do not match (%v):\n%s", err, out)
	}
	return seed, issuer
}

// The shipped nats.conf, loaded by the real configuration parser with the
// variables .env would give: the services' and the system user connect
// (exempt from the callout), an agent registered through the API connects
// through hermod-api's callout, lands in the services' account with its
// grant's permissions and delivers, an unknown agent is refused, and a
// revoked one is kicked through the system account.
func TestComposeNATSConfigWithCallout(t *testing.T) {
	root, err := hermodtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	seed, issuer := calloutKey(t)
	const hermodPW, sysPW = "pw_hermod0123456789abcdef", "pw_sys0123456789abcdef"
	t.Setenv("NATS_HERMOD_PASSWORD", hermodPW)
	t.Setenv("NATS_SYSTEM_PASSWORD", sysPW)
	t.Setenv("NATS_CALLOUT_ISSUER", issuer)
	opts, err := server.ProcessConfigFile(filepath.Join(root, "deploy", "compose", "nats.conf"))
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
	// As on the Compose command line (-js -sd), on loopback and a free port.
	opts.Host, opts.Port, opts.JetStream, opts.StoreDir = "127.0.0.1", -1, true, t.TempDir()
	opts.NoSigs, opts.NoLog, opts.HTTPPort = true, true, 0
	if opts.AuthCallout == nil || opts.AuthCallout.Issuer != issuer || opts.SystemAccount != "SYS" {
		t.Fatalf("nats.conf: auth callout %+v, system account %q", opts.AuthCallout, opts.SystemAccount)
	}
	ns := hermodtest.Server(t, opts)
	addr := ns.Addr().String()
	serviceURL, systemURL := "nats://hermod:"+hermodPW+"@"+addr, "nats://sys:"+sysPW+"@"+addr

	// The system user is in the system account.
	sys, err := nats.Connect(systemURL)
	if err != nil {
		t.Fatalf("system user: %v", err)
	}
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer acancel()
	if acc, err := agentauth.AccountOf(actx, sys); err != nil || acc != "SYS" {
		t.Errorf("system user in account %q (%v), want SYS", acc, err)
	}
	sys.Close()

	rd := hermodtest.StartRedis(t)
	env := map[string]string{"HERMOD_NATS_URL": serviceURL, "HERMOD_REDIS_URL": rd.URL(), "HERMOD_ENCRYPTION_KEY": testEncKey,
		"HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8"}
	p, _, _ := startFleet(t, env, map[string]string{"HERMOD_AUTH_CALLOUT_SEED": seed, "HERMOD_NATS_SYSTEM_URL": systemURL}, 1)

	token := p.registerAgent("eu-1", "env:production")
	agentSink, brokerSink := hermodtest.NewSink(t), hermodtest.NewSink(t)
	agentHook := p.createWebhook(map[string]any{"name": "in-cluster", "url": agentSink.URL, "event_types": []string{"alert.*"},
		"target_labels": []string{"env:production"}})
	brokerHook := p.createWebhook(map[string]any{"name": "central", "url": brokerSink.URL, "event_types": []string{"alert.*"}})

	url := "nats://" + addr
	// An unknown agent, a wrong token and no credentials are refused.
	for what, o := range map[string]nats.Option{"unknown agent": nats.UserInfo("ghost", "hagt_nothing"),
		"wrong token": nats.UserInfo("eu-1", "hagt_wrong"), "no credentials": func(*nats.Options) error { return nil }} {
		if nc, err := nats.Connect(url, o, nats.MaxReconnects(0)); err == nil {
			nc.Close()
			t.Errorf("%s connected", what)
		}
	}
	// The agent's credentials: its own label set, nothing else; placed in the services' account.
	k := connectAgentClient(t, url, "eu-1", token)
	if err := k.consumerInfo([]string{"env:production"}); err != nil {
		t.Errorf("the agent's own label set refused: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	_, err = k.js.Stream(ctx, streams.EventsStream)
	cancel()
	if err == nil {
		t.Errorf("the agent's credentials read the event stream")
	}
	cz, err := ns.Connz(&server.ConnzOptions{Username: true, User: agentauth.UserName("eu-1")})
	if err != nil || len(cz.Conns) != 1 || cz.Conns[0].Account != "HERMOD" {
		t.Errorf("agent connection %+v (%v), want one in account HERMOD", cz, err)
	}
	k.nc.Close()

	// The agent delivers its label set; the deliverer the rest.
	startReady(t, "hermod-agent", map[string]string{"HERMOD_NATS_URL": url, "HERMOD_AGENT_ID": "eu-1", "HERMOD_AGENT_TOKEN": token})
	p.publish("alert.triggered", map[string]any{})
	if ds := p.waitStatus(agentHook, "success", 1, 20*time.Second); ds[0]["delivered_by"] != "agent:eu-1" {
		t.Errorf("agent webhook delivered by %v", ds[0]["delivered_by"])
	}
	if ds := p.waitStatus(brokerHook, "success", 1, 20*time.Second); ds[0]["delivered_by"] != "broker" {
		t.Errorf("central webhook delivered by %v", ds[0]["delivered_by"])
	}
	// Revoked: kicked through the system account of nats.conf.
	p.must(204, "DELETE", "/api/v1/agents/eu-1", nil)
	hermodtest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error { return noAgentConns(t, ns, "eu-1") })
}
