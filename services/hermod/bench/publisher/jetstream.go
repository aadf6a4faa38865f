package publisher

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/shared/matching"
	"github.com/hermodhq/hermod/shared/streams"
)

// jsSender publishes event envelopes on the event's subject, as a platform
// service does, without waiting for each acknowledgement.
type jsSender struct {
	eventType string
	nc        *nats.Conn
	js        jetstream.JetStream
	mu        sync.Mutex
	pending   []jetstream.PubAckFuture
}

// maxPending is how many publishes may await their acknowledgement; a
// publish beyond it waits up to stallWait for one to be acknowledged.
const (
	maxPending = 4096
	stallWait  = 30 * time.Second
)

func newJetStreamSender(o Options) (*jsSender, error) {
	if o.NATSURL == "" {
		return nil, fmt.Errorf("publisher: jetstream mode needs the NATS URL")
	}
	nc, err := nats.Connect(o.NATSURL, nats.Name("bench-publisher"))
	if err != nil {
		return nil, fmt.Errorf("publisher: connect to NATS: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(maxPending))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("publisher: jetstream: %w", err)
	}
	return &jsSender{eventType: o.EventType, nc: nc, js: js}, nil
}

func (s *jsSender) send(_ context.Context, id string, sentNS int64) error {
	env := matching.Envelope{ID: id, EventType: s.eventType, Timestamp: time.Unix(0, sentNS).UTC().Format(time.RFC3339Nano),
		Data: eventData(sentNS)}
	body, err := json.Marshal(env)
	if err != nil {
		return err
	}
	f, err := s.js.PublishMsgAsync(&nats.Msg{Subject: streams.EventSubject(s.eventType), Data: body,
		Header: nats.Header{streams.HdrMsgID: {id}}}, jetstream.WithStallWait(stallWait))
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	s.mu.Lock()
	s.pending = append(s.pending, f)
	s.mu.Unlock()
	return nil
}

// finish waits for every acknowledgement (at most a minute, or until ctx ends).
func (s *jsSender) finish(ctx context.Context) []error {
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	select {
	case <-s.js.PublishAsyncComplete():
	case <-wait.Done():
	}
	var errs []error
	for _, f := range s.pending {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, fmt.Errorf("publish ack: %w", err))
		default:
			errs = append(errs, fmt.Errorf("publish ack of %s: none within a minute", f.Msg().Header.Get(streams.HdrMsgID)))
		}
	}
	return errs
}

func (s *jsSender) close() { s.nc.Close() }
