// Package batching gathers what waits on a channel into batches without
// lingering: a batch is the first item waiting plus whatever else is queued
// at that moment, within a count and a size. A lone item goes at once, so
// latency at low load does not grow; under load items queue while the
// consumer is busy (waiting for an acknowledgement), and batches grow with
// the load. The delivery engine's outcome settlers and the router's
// enqueue-record publishers both gather this way.
package batching

// Source hands out the batches of one consumer of a channel.
type Source[T any] struct {
	in       <-chan T
	max      int
	maxBytes int
	size     func(T) int
	// held was taken from the channel but would have passed the size
	// limit: it starts the next batch.
	held    T
	holding bool
}

// NewSource gathers from in batches of at most max items and maxBytes of
// their sizes (an item larger than maxBytes goes alone).
func NewSource[T any](in <-chan T, max, maxBytes int, size func(T) int) *Source[T] {
	return &Source[T]{in: in, max: max, maxBytes: maxBytes, size: size}
}

// Next returns the next batch. With wait it waits for a first item (nil
// once the channel is closed and empty); without, it returns nil when
// nothing is queued. Then it adds the items queued at this moment, within
// the limits; it never waits for more.
func (s *Source[T]) Next(wait bool) []T {
	var batch []T
	size := 0
	add := func(it T) bool {
		n := s.size(it)
		if len(batch) > 0 && size+n > s.maxBytes {
			s.held, s.holding = it, true
			return false
		}
		batch = append(batch, it)
		size += n
		return true
	}
	switch {
	case s.holding:
		it := s.held
		var zero T
		s.held, s.holding = zero, false
		add(it)
	case wait:
		it, ok := <-s.in
		if !ok {
			return nil
		}
		add(it)
	default:
		select {
		case it, ok := <-s.in:
			if !ok {
				return nil
			}
			add(it)
		default:
			return nil
		}
	}
	for len(batch) < s.max {
		select {
		case it, ok := <-s.in:
			if !ok || !add(it) {
				return batch
			}
		default:
			return batch // nothing more queued now
		}
	}
	return batch
}
