package dispatch

import (
	"time"
)

// Lease rules. A pulled message's lease (the consumer's ack wait) starts
// when it arrives from the server, not when a worker takes it:
//
//   - one that waited over 90% of the lease for a free worker is not
//     attempted (Decide: Leave): it is, or will be, redelivered, and an
//     attempt now could run beside its redelivery;
//   - one that waited over half of it is renewed before the attempt, or
//     before it is parked, held or dead-lettered (Decision.RenewLease);
//   - while a request runs that may outlast half the lease (its webhook's
//     timeout is longer), keepLease renews it every third of the lease;
//   - every lease lost without an outcome is counted (the Hermod-Lost
//     header plus this copy's redeliveries); at Rules.MaxLostLeases the
//     delivery is dead (abandoned).

// renewer is the part of a message that renews its lease.
type renewer interface {
	InProgress() error
}

// needsKeepalive says whether a request that may take timeout can outlast
// half the lease ttl.
func needsKeepalive(timeout, ttl time.Duration) bool { return timeout > ttl/2 }

// keepLease renews msg's lease every ttl/3 while a request that may take
// timeout runs; the returned function stops it. Nothing runs when the
// request cannot outlast half the lease.
func keepLease(msg renewer, timeout, ttl time.Duration) (stop func()) {
	if !needsKeepalive(timeout, ttl) {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(done); <-exited }
}
