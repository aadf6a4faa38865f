package streams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
)

// Results messages in batches. A message on an outcome subject, or on
// EnqueuedSubject, with the header HdrBatch carries several entries:
//
//	{"v":1,"outcomes":[<Outcome>, …]}   on an outcome subject
//	{"v":1,"records":[<Enqueued>, …]}   on EnqueuedSubject
//
// each entry exactly what a single message would carry. A message without
// the header carries one entry, its body; a batch of one is sent that way.
// The recorder tells the two apart by the header alone (Entries), reads
// each entry on its own (a broken entry loses only itself), and counts a
// batch as its entries in its own batches (EntryCount).

// HdrBatch marks a batch message; its value is how many entries it holds.
const HdrBatch = "Hermod-Batch"

// NewOutcomeBatch is the message carrying outcomes (each an encoded
// Outcome) on subject.
func NewOutcomeBatch(subject string, outcomes [][]byte) *nats.Msg {
	return newBatch(subject, "outcomes", outcomes)
}

// NewEnqueuedBatch is the message carrying enqueue records (each an encoded
// Enqueued).
func NewEnqueuedBatch(records [][]byte) *nats.Msg {
	return newBatch(EnqueuedSubject, "records", records)
}

// newBatch is the message carrying entries on subject: the entry itself
// when there is one, else {"v":..,"<field>":[entries]} marked by HdrBatch.
func newBatch(subject, field string, entries [][]byte) *nats.Msg {
	if len(entries) == 1 {
		return &nats.Msg{Subject: subject, Data: entries[0]}
	}
	n := 16 + len(field) // {"v":1,"<field>":[...]}
	for _, e := range entries {
		n += len(e) + 1
	}
	var b bytes.Buffer
	b.Grow(n)
	b.WriteString(`{"v":`)
	b.WriteString(strconv.Itoa(SchemaVersion))
	b.WriteString(`,"` + field + `":[`)
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(e)
	}
	b.WriteString(`]}`)
	return &nats.Msg{Subject: subject, Data: b.Bytes(), Header: nats.Header{HdrBatch: {strconv.Itoa(len(entries))}}}
}

// EntryCount is how many entries a results message carries: its HdrBatch,
// else 1.
func EntryCount(h nats.Header) int {
	v := h.Get(HdrBatch)
	if v == "" {
		return 1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// batchBody is the body of a batch message (one of its lists is set).
type batchBody struct {
	V        int               `json:"v"`
	Outcomes []json.RawMessage `json:"outcomes"`
	Records  []json.RawMessage `json:"records"`
}

// Entries are the entries a results message carries, each still to be
// decoded: its body, or the entries of a batch message. An error means a
// batch body as a whole is unreadable (not a batch, of a newer version, or
// empty).
func Entries(h nats.Header, data []byte) ([]json.RawMessage, error) {
	if h.Get(HdrBatch) == "" {
		return []json.RawMessage{data}, nil
	}
	var b batchBody
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	if b.V > SchemaVersion || b.V < 1 {
		return nil, fmt.Errorf("batch of version %d", b.V)
	}
	entries := append(b.Outcomes, b.Records...)
	if len(entries) == 0 {
		return nil, errors.New("batch without entries")
	}
	return entries, nil
}
