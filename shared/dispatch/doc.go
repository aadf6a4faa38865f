// Package dispatch is Hermod's delivery engine: it takes deliveries from
// JetStream, makes the HTTP attempts, and settles every message by one
// decision.
//
// One pure function, Decide, says what becomes of a delivery message, from
// the facts the plumbing gathers (the message's headers and delivery count,
// the webhook, its breaker and in-flight limit, the lease, the attempt's
// result, the clock). The rest of the package only gathers facts and carries
// decisions out, always in the same order: what must be stored (an outcome,
// a copy, a dead letter) is published and acknowledged by JetStream before
// the message is acked, so a crash at any point leaves the delivery to be
// redelivered, never lost.
//
// The engine is split by job, one file each:
//
//   - decide.go: the transition function and its types;
//   - worker.go: pulls ready deliveries, attempts them, settles them
//     (settle.go; success outcomes go out in batches: batch.go), and
//     answers which attempts are running (inflight.go);
//   - consumers.go: an agent's workers on the label-set consumers it is granted;
//   - scheduler.go: brings delayed deliveries back when they are due;
//   - releaser.go: brings held deliveries back when their webhook resumes,
//     and kills those held too long;
//   - breaker.go: the per-webhook failure breaker and in-flight limit;
//   - lease.go: lease renewal while a long request runs;
//   - publish.go: publishes with retries across a JetStream leader election.
//
// The services compose these components: hermod-deliverer runs a Worker, a
// Scheduler and a Releaser; hermod-agent runs a Worker on its label sets;
// the all-in-one runs what hermod-deliverer runs.
package dispatch
