package allinone_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/shared/agentauth"
	"github.com/hermodhq/hermod/shared/hermodtest"
	"github.com/hermodhq/hermod/shared/streams"
)

// Least privilege enforced by NATS: with the auth callout served by
// hermod-api, an agent's credentials can take its granted label sets'
// deliveries (and the agent delivers with them), and a plain NATS client
// using those credentials is refused everything else.
func TestE2EAgentPermissionsEnforcedByNATS(t *testing.T) {
	cn := hermodtest.NATSWithCallout(t)
	rd := hermodtest.StartRedis(t)
	env := map[string]string{"HERMOD_NATS_URL": cn.ServiceURL, "HERMOD_REDIS_URL": rd.URL(), "HERMOD_ENCRYPTION_KEY": testEncKey,
		"HERMOD_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8", "HERMOD_ACQUIRE_TTL": "3s"}
	p, dels, _ := startFleet(t, env, map[string]string{"HERMOD_AUTH_CALLOUT_SEED": cn.Seed}, 1)

	token := p.registerAgent("eu-1", "env:production")
	prod := hermodtest.NewSink(t)
	const auth = "Bearer in-cluster-s3cret"
	prodID := p.createWebhook(map[string]any{"name": "prod", "url": prod.URL + "/p4th", "event_types": []string{"alert.*"},
		"target_labels": []string{"env:production"}, "auth_header": auth, "secret": testSecret})
	p.createWebhook(map[string]any{"name": "staging", "url": prod.URL, "event_types": []string{"alert.*"},
		"target_labels": []string{"env:staging"}})
	p.publish("alert.triggered", map[string]any{"x": 1})
	p.waitStatus(prodID, "pending", 1, 10*time.Second)

	url := "nats://" + cn.Server.Addr().String()
	if nc, err := nats.Connect(url, nats.UserInfo("eu-1", "hagt_wrong"), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatalf("a wrong token connected")
	}
	violations := make(chan error, 64)
	nc, err := nats.Connect(url, nats.UserInfo("eu-1", token), nats.CustomInboxPrefix(agentauth.InboxPrefix("eu-1")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatalf("agent credentials refused: %v", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 1500*time.Millisecond) }

	// Allowed: its own label set. What it can read carries no url, auth header or secret.
	c, cancel := short()
	own, err := js.Consumer(c, streams.DeliveriesStream, streams.AgentConsumerName([]string{"env:production"}))
	cancel()
	if err != nil {
		t.Fatalf("own label set refused: %v", err)
	}
	batch, err := own.Fetch(1, jetstream.FetchMaxWait(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for m := range batch.Messages() {
		read++
		raw := string(m.Data()) + strings.Join(flatten(m.Headers()), " ")
		for _, secret := range []string{"p4th", "in-cluster-s3cret", strings.TrimPrefix(testSecret, "whsec_"), prod.URL} {
			if strings.Contains(raw, secret) {
				t.Errorf("a delivery message holds %q", secret)
			}
		}
		_ = m.Nak()
	}
	if read != 1 {
		t.Errorf("read %d messages from its own label set, want 1", read)
	}
	// Refused: everything else.
	refused := map[string]func() error{
		"read the event stream": func() error {
			c, cancel := short()
			defer cancel()
			_, err := js.Stream(c, streams.EventsStream)
			return err
		},
		"take broker deliveries": func() error {
			c, cancel := short()
			defer cancel()
			_, err := js.Consumer(c, streams.DeliveriesStream, streams.DelivererConsumer)
			return err
		},
		"take another label set": func() error {
			c, cancel := short()
			defer cancel()
			_, err := js.Consumer(c, streams.DeliveriesStream, streams.AgentConsumerName([]string{"env:staging"}))
			return err
		},
		"create a consumer": func() error {
			c, cancel := short()
			defer cancel()
			_, err := js.CreateOrUpdateConsumer(c, streams.DeadStream, jetstream.ConsumerConfig{Durable: "mine", FilterSubject: "hermod.dead.>"})
			return err
		},
		"publish an event": func() error {
			c, cancel := short()
			defer cancel()
			_, err := js.Publish(c, "alert.triggered", []byte(`{"event_type":"alert.triggered","data":{}}`))
			return err
		},
	}
	for what, f := range refused {
		if err := f(); err == nil {
			t.Errorf("agent credentials could %s", what)
		}
	}
	for _, subj := range []string{"alert.>", "hermod.dlv.>", "_INBOX.>", agentauth.InboxPrefix("other") + ".>", "hermod.agenttest.other",
		streams.InFlightSubject(nil), streams.InFlightPrefix + ">", streams.InFlightSubject([]string{"env:staging"})} {
		if _, err := nc.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		select {
		case err := <-violations:
			if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(err.Error(), "Permissions Violation") {
				t.Errorf("subscribe %s: %v", subj, err)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("agent credentials could subscribe to %s", subj)
		}
	}

	// A forged delivery: parked on its own webhook's delay subject (allowed),
	// but naming a broker webhook in its header. It is refused, never sent
	// with that webhook's url and secret.
	other := hermodtest.NewSink(t)
	otherID := p.createWebhook(map[string]any{"name": "broker", "url": other.URL, "event_types": []string{"deployment.*"},
		"secret": testSecret})
	forged := streams.NewMsg(streams.DelaySubject(prodID), "forged-1", streams.Meta{DeliveryID: "00000000-0000-4000-8000-0000000000f0",
		WebhookID: otherID, EventID: "e-forged", EventType: "deployment.applied", CreatedAt: time.Now().UnixMilli()}, []byte(`{"forged":true}`))
	if _, err := js.PublishMsg(ctx, forged); err != nil {
		t.Fatalf("parking on its own webhook's delay subject was refused: %v", err)
	}
	hermodtest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if log := readFile(t, dels[0].log); !strings.Contains(log, "does not match its subject") {
			return fmt.Errorf("the scheduler has not refused the forged delivery:\n%s", tail(log, 1000))
		}
		return nil
	})
	p.publish("deployment.applied", map[string]any{"n": 1})
	hermodtest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error { return sinkGot(other, 1) })
	for _, r := range other.Received() {
		if strings.Contains(string(r.Body), "forged") {
			t.Fatalf("a forged delivery reached another webhook: %s", r.Body)
		}
	}

	// The reply-subject trick: a pull request whose reply subject is an
	// event subject makes JetStream deliver the agent's own pending delivery
	// there, into the event stream. The router drops it (it carries a
	// delivery's headers) instead of replaying the event to every webhook.
	// Counted once the earlier delivery is recorded (its request reaches the
	// sink before its record reaches Redis).
	p.waitStatus(otherID, "success", 1, 10*time.Second)
	before := len(p.deliveries(otherID, ""))
	if err := nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+streams.DeliveriesStream+"."+streams.AgentConsumerName([]string{"env:production"}),
		"deployment.applied", []byte(`{"batch":1,"expires":1000000000}`)); err != nil {
		t.Fatal(err)
	}
	hermodtest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if !p.logged("copy of a delivery message published as an event") {
			return errors.New("the router has not dropped the copied delivery")
		}
		return nil
	})
	if n := len(p.deliveries(otherID, "")); n != before {
		t.Fatalf("a copied delivery was fanned out as an event: %d deliveries, want %d", n, before)
	}

	// Results: the broker's results subject is refused; on its own subject,
	// an outcome for a delivery of a webhook outside its grant is refused
	// by the recorder, and the delivery's record is unchanged.
	brokerDone := p.waitStatus(otherID, "success", 1, 10*time.Second)[0]
	if err := nc.Publish(streams.OutcomeSubject, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	select {
	case err := <-violations:
		if !strings.Contains(err.Error(), "Permissions Violation") {
			t.Errorf("publish on the broker's results subject: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("agent credentials could publish on %s", streams.OutcomeSubject)
	}
	fake, _ := json.Marshal(streams.Outcome{V: streams.SchemaVersion, DeliveryID: brokerDone["id"].(string), WebhookID: otherID,
		Status: streams.StatusDead, Attempt: 9, By: "broker", Error: "forged", CreatedAt: time.Now().UnixMilli()})
	if _, err := js.Publish(ctx, streams.AgentOutcomeSubject("eu-1"), fake); err != nil {
		t.Fatalf("publishing on its own results subject: %v", err)
	}
	hermodtest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if !p.logged("refusing an agent's result") {
			return errors.New("the recorder has not refused the forged outcome")
		}
		return nil
	})
	if d := p.must(200, "GET", "/api/v1/deliveries/"+brokerDone["id"].(string), nil); d["status"] != "success" || d["attempts"].(float64) != 1 {
		t.Fatalf("a forged outcome changed a broker delivery: %v", d)
	}
	nc.Close()

	// The agent itself delivers under these permissions.
	startReady(t, "hermod-agent", map[string]string{"HERMOD_NATS_URL": url, "HERMOD_AGENT_ID": "eu-1", "HERMOD_AGENT_TOKEN": token})
	ds := p.waitStatus(prodID, "success", 1, 20*time.Second)
	if ds[0]["delivered_by"] != "agent:eu-1" || prod.Count() != 1 {
		t.Errorf("delivery %v, sink %d", ds[0], prod.Count())
	}
	got := prod.Received()[0]
	if got.Header.Get("Authorization") != auth {
		t.Errorf("auth header %q", got.Header.Get("Authorization"))
	}
	verifySig(t, testSecret, got)
	// Revoked credentials can no longer connect.
	p.must(204, "DELETE", "/api/v1/agents/eu-1", nil)
	if nc, err := nats.Connect(url, nats.UserInfo("eu-1", token), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Errorf("revoked credentials connected")
	}
}

func flatten(h nats.Header) []string {
	var out []string
	for k, vs := range h {
		out = append(out, k)
		out = append(out, vs...)
	}
	return out
}
