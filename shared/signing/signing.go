// Package signing produces Standard Webhooks signatures and signing secrets.
//
// A secret is "whsec_" followed by the base64 encoding of 24 to 64 random
// bytes. The signature of a message is
// "v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>", one per
// valid secret, separated by spaces while a rotation overlap lasts.
package signing

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// Prefix starts every signing secret.
const Prefix = "whsec_"

// ErrBadSecret is returned for a secret that is not whsec_ + base64 of 24-64 bytes.
var ErrBadSecret = errors.New("secret must be whsec_ followed by base64 of 24 to 64 bytes")

// Generate returns a new secret with 32 random bytes.
func Generate() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return Prefix + base64.StdEncoding.EncodeToString(b), nil
}

// Key decodes the HMAC key of a secret, checking its form.
func Key(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, Prefix)
	// The base64 decoder skips CR and LF: a secret holding them would be
	// kept as given yet sign as another string, which a receiver's library
	// may not decode the same way.
	if !ok || strings.ContainsAny(rest, "\r\n") {
		return nil, ErrBadSecret
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, ErrBadSecret
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, ErrBadSecret
	}
	return key, nil
}

// Signer signs with one or more keys (the current one first). It keeps
// each key's HMAC state for reuse, so signing allocates only the header
// value: build one per secret change, not per message. Safe for concurrent
// use.
type Signer struct {
	keys [][]byte
	macs []sync.Pool // per key: *mac
}

// mac is one key's HMAC state with room for what is hashed besides the
// body, reused across signatures.
type mac struct {
	h   hash.Hash
	buf [128]byte
	sum [sha256.Size]byte
}

// NewSigner builds a signer from decoded keys.
func NewSigner(keys ...[]byte) *Signer {
	s := &Signer{keys: keys, macs: make([]sync.Pool, len(keys))}
	for i, k := range keys {
		s.macs[i].New = func() any { return &mac{h: hmac.New(sha256.New, k)} }
	}
	return s
}

// Sign returns the webhook-signature header value for (id, ts, body).
func (s *Signer) Sign(id string, ts int64, body []byte) string {
	enc := base64.StdEncoding
	var sb strings.Builder
	sb.Grow(len(s.keys) * (len("v1,") + enc.EncodedLen(sha256.Size) + 1))
	for i := range s.keys {
		m := s.macs[i].Get().(*mac)
		m.h.Reset()
		head := append(m.buf[:0], id...)
		head = append(head, '.')
		head = strconv.AppendInt(head, ts, 10)
		head = append(head, '.')
		m.h.Write(head)
		m.h.Write(body)
		sum := m.h.Sum(m.sum[:0])
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString("v1,")
		var b64 [44]byte // base64 of a SHA-256 sum
		enc.Encode(b64[:], sum)
		sb.Write(b64[:])
		s.macs[i].Put(m)
	}
	return sb.String()
}

// Verify reports whether header holds a valid v1 signature of (id, ts, body)
// under key. It is used by tests and the sink of the quickstart.
func Verify(key []byte, id string, ts int64, body []byte, header string) bool {
	want := NewSigner(key).Sign(id, ts, body)
	for _, part := range strings.Fields(header) {
		if hmac.Equal([]byte(part), []byte(want)) {
			return true
		}
	}
	return false
}
