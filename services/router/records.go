package router

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hermodhq/hermod/shared/batching"
	"github.com/hermodhq/hermod/shared/streams"
)

// Limits of one message of enqueue records: well under the NATS payload
// limit, and small enough that one slow event does not hold many others.
const (
	maxRecordsPerMsg = 128
	maxRecordBytes   = 512 << 10
	// batchRoom is the batch message's own JSON around its records: its
	// head and a comma per record.
	batchRoom = 64 + maxRecordsPerMsg
)

// records publishes the enqueue records of the events in hand, several in
// one results message: a router worker hands its event's records over and
// waits until the message holding them is acknowledged (its event is acked
// only then). Each of two publishers takes the first record waiting and
// whatever else waits at that moment (package batching); there is no linger, so a lone
// event's record goes at once, and records gather only while both
// publishers wait for their acknowledgements. A message of one record is
// an ordinary enqueue record with its message id; a batch has none (a
// record written twice changes nothing: the recorder's merge only moves a
// delivery forward).
type records struct {
	pub      Publisher
	maxBytes int // of one message's records
	queue    chan *recordJob
	done     chan struct{}
}

type recordJob struct {
	data  []byte
	msgID string
	res   chan error // buffered: the publisher never waits for the worker
}

// newRecords starts the two publishers. limit (0: none) is the largest enqueue record message the connection
// takes; a batch stays within it as well as within maxRecordBytes (a
// record larger than that goes alone).
func newRecords(pub Publisher, limit int) *records {
	maxBytes := maxRecordBytes
	if limit > 0 {
		maxBytes = min(maxBytes, limit-batchRoom)
	}
	rs := &records{pub: pub, maxBytes: maxBytes, queue: make(chan *recordJob, 1024), done: make(chan struct{})}
	finished := make(chan struct{}, 2)
	for range 2 {
		go func() {
			defer func() { finished <- struct{}{} }()
			rs.publishLoop()
		}()
	}
	go func() { <-finished; <-finished; close(rs.done) }()
	return rs
}

// close stops the publishers once every record handed over is published.
func (rs *records) close() {
	close(rs.queue)
	<-rs.done
}

// publish hands encoded records over and waits until they are stored.
func (rs *records) publish(data [][]byte, msgIDs []string) error {
	jobs := make([]*recordJob, len(data))
	for i := range data {
		jobs[i] = &recordJob{data: data[i], msgID: msgIDs[i], res: make(chan error, 1)}
		rs.queue <- jobs[i]
	}
	var first error
	for _, j := range jobs {
		if err := <-j.res; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (rs *records) publishLoop() {
	src := batching.NewSource(rs.queue, maxRecordsPerMsg, rs.maxBytes, func(j *recordJob) int { return len(j.data) })
	for batch := src.Next(true); batch != nil; batch = src.Next(true) {
		rs.send(batch)
	}
}

// send publishes one message of batch's records and reports its
// acknowledgement to each.
func (rs *records) send(batch []*recordJob) {
	var msg *nats.Msg
	if len(batch) == 1 {
		msg = &nats.Msg{Subject: streams.EnqueuedSubject, Data: batch[0].data,
			Header: nats.Header{streams.HdrMsgID: {batch[0].msgID}}}
	} else {
		data := make([][]byte, len(batch))
		for i, j := range batch {
			data[i] = j.data
		}
		msg = streams.NewEnqueuedBatch(data)
	}
	f, err := rs.pub.PublishMsgAsync(msg)
	if err == nil {
		err = waitAll([]jetstream.PubAckFuture{f})
	}
	for _, j := range batch {
		j.res <- err
	}
}
