package dispatch

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publishRetryPause is the pause between two rounds of publishAll.
const publishRetryPause = 200 * time.Millisecond

// publishAll publishes msgs and waits for every acknowledgement, retrying
// the failed ones until d.PublishRetry has passed (a JetStream leader
// election takes seconds).
func (d *Deps) publishAll(msgs ...*nats.Msg) error {
	pub := d.Pub
	deadline := time.Now().Add(d.PublishRetry)
	pending := msgs
	for {
		var failed []*nats.Msg
		futures := make([]jetstream.PubAckFuture, 0, len(pending))
		var lastErr error
		for _, m := range pending {
			f, err := pub.PublishMsgAsync(m)
			if err != nil {
				failed = append(failed, m)
				lastErr = err
				continue
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				failed = append(failed, f.Msg())
				lastErr = err
			}
		}
		if len(failed) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("publish: %w", lastErr)
		}
		time.Sleep(publishRetryPause)
		pending = failed
	}
}
