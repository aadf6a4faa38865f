package receiver

import "sync"

// Concurrency is how many requests one path prefix had open at once.
type Concurrency struct {
	// Now is the requests open at the moment asked.
	Now int `json:"now"`
	// Max is the most open at once since the receiver started.
	Max int `json:"max"`
}

// Inflight counts the requests open per path prefix, and the most open
// at once; safe for concurrent use. With one webhook per prefix, Max is
// the most attempts the sender had in flight to that webhook.
type Inflight struct {
	mu       sync.Mutex
	prefixes map[string]*Concurrency
}

// NewInflight returns an empty count.
func NewInflight() *Inflight { return &Inflight{prefixes: map[string]*Concurrency{}} }

// Enter counts a request open at prefix; the returned function counts it
// closed, once.
func (in *Inflight) Enter(prefix string) (leave func()) {
	in.mu.Lock()
	c := in.prefixes[prefix]
	if c == nil {
		c = &Concurrency{}
		in.prefixes[prefix] = c
	}
	c.Now++
	c.Max = max(c.Max, c.Now)
	in.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			in.mu.Lock()
			c.Now--
			in.mu.Unlock()
		})
	}
}

// Counts returns the concurrency of every prefix seen so far.
func (in *Inflight) Counts() map[string]Concurrency {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make(map[string]Concurrency, len(in.prefixes))
	for name, c := range in.prefixes {
		out[name] = *c
	}
	return out
}
