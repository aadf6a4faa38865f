package connect

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/hermodhq/hermod/shared/hermodtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*fileStore).flushStreamStateLoop"))
}

// A publish whose acknowledgement never comes (here: a subscriber that
// takes the message and never answers, as when a stream's leader dies with
// it) fails after PubAckTimeout, so the caller publishes it again, instead
// of waiting half a minute.
func TestLostPubAckFailsSoon(t *testing.T) {
	ns := hermodtest.NATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("lost.pubacks")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	js, err := JetStream(nc)
	if err != nil {
		t.Fatal(err)
	}
	f, err := js.PublishMsgAsync(&nats.Msg{Subject: "lost.pubacks", Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.Ok():
		t.Fatal("acknowledged by nobody")
	case err := <-f.Err():
		if !errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			t.Errorf("error %v, want the PubAck timeout", err)
		}
	case <-time.After(6 * PubAckTimeout): // the old timeout was 30 s
		t.Fatalf("no failure after %v: a lost PubAck holds the publish", 6*PubAckTimeout)
	}
}
