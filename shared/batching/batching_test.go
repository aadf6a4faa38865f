package batching

import (
	"slices"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func lenOf(s string) int { return len(s) }

// What is queued goes in batches within the count and the size; an item
// that would pass the size starts the next batch; one larger than the size
// goes alone; nothing waits for more.
func TestNext(t *testing.T) {
	in := make(chan string, 16)
	for _, s := range []string{"a", "bb", "ccc", "dddd", "eeeee", "ffffffffffff", "g"} {
		in <- s
	}
	close(in)
	src := NewSource(in, 3, 8, lenOf)
	var got [][]string
	for b := src.Next(true); b != nil; b = src.Next(true) {
		got = append(got, b)
	}
	want := [][]string{{"a", "bb", "ccc"}, {"dddd"}, {"eeeee"}, {"ffffffffffff"}, {"g"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches %q, want %q", got, want)
	}
}

// Without wait, an empty queue gives no batch; a lone item is a batch of
// one, at once.
func TestNextWithoutWaiting(t *testing.T) {
	in := make(chan string, 4)
	src := NewSource(in, 10, 100, lenOf)
	if b := src.Next(false); b != nil {
		t.Errorf("a batch %q from an empty queue", b)
	}
	in <- "x"
	if b := src.Next(false); !slices.Equal(b, []string{"x"}) {
		t.Errorf("batch %q, want the lone item", b)
	}
}
