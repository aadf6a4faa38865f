package dispatch

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/shared/batching"

	"github.com/hermodhq/hermod/shared/streams"
)

// Success outcomes travel to the results stream in batches: a settler takes
// the first delivered message waiting, adds whatever else is waiting at that
// moment (up to the limits below; package batching), publishes their outcomes as one message
// (streams.NewOutcomeBatch) and acks every message of the batch once that
// message is acknowledged. It never waits for more: a lone delivery is
// published as soon as a settler is free, so latency at low load does not
// grow; under load the queue fills while the settlers wait for their
// acknowledgements, and batches grow with it. One results message, and one
// message for the recorder to fetch and ack, then stands for many
// deliveries.
const (
	// outcomeBatchMax is the most outcomes in one message.
	outcomeBatchMax = 128
	// outcomeBatchBytes bounds a batch's outcomes (a success outcome is a
	// few KiB at most, its answer's excerpt included), well under the
	// NATS max payload (1 MiB by default).
	outcomeBatchBytes = 512 << 10
)

// batchLimits bound an outcome batch.
type batchLimits struct {
	max   int // outcomes
	bytes int // encoded outcomes, in total
}

var defaultBatchLimits = batchLimits{max: outcomeBatchMax, bytes: outcomeBatchBytes}

// settlement is a delivered message waiting for its outcome to be stored
// before it is acked; settling off the worker frees it for the next attempt.
type settlement struct {
	msg      jetstream.Msg
	outcome  []byte // the success outcome, JSON
	delivery string
}

// batches is a settler's source of batches from the queue of settlements.
func (w *Worker) batches() *batching.Source[settlement] {
	return batching.NewSource(w.settle, w.batch.max, w.batch.bytes, func(s settlement) int { return len(s.outcome) })
}

// settleBatches is one settler: it settles the batches taken from the
// queue until the queue is closed and empty.
func (w *Worker) settleBatches() {
	src := w.batches()
	for b := src.Next(true); b != nil; b = src.Next(true) {
		w.settleBatch(b)
	}
}

// settleBatch publishes the outcomes of a batch as one message and acks
// every delivered message of it once that message is in the results
// stream (publishing it again with retries when the first publish failed);
// if that fails, none is acked: their leases expire and the deliveries are
// attempted again (at-least-once; the recorder's merge ignores an outcome
// it already has).
func (w *Worker) settleBatch(batch []settlement) {
	outcomes := make([][]byte, len(batch))
	for i, s := range batch {
		outcomes[i] = s.outcome
	}
	if err := w.deps.publishAll(streams.NewOutcomeBatch(w.deps.OutcomeSubject, outcomes)); err != nil {
		for _, s := range batch {
			w.deps.Log.Error().Err(err).Str("delivery_id", s.delivery).
				Msg("outcome not recorded; the lease will expire and the delivery is retried")
		}
		return
	}
	for _, s := range batch {
		_ = s.msg.Ack()
	}
}
