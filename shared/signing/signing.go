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
	"strconv"
	"strings"
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
	if !ok {
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

// Signer signs with one or more keys (the current one first).
type Signer struct {
	keys [][]byte
}

// NewSigner builds a signer from decoded keys.
func NewSigner(keys ...[]byte) *Signer { return &Signer{keys: keys} }

// Sign returns the webhook-signature header value for (id, ts, body).
func (s *Signer) Sign(id string, ts int64, body []byte) string {
	var sb strings.Builder
	tsb := strconv.AppendInt(nil, ts, 10)
	sum := make([]byte, 0, sha256.Size)
	for i, k := range s.keys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(id))
		m.Write([]byte{'.'})
		m.Write(tsb)
		m.Write([]byte{'.'})
		m.Write(body)
		sum = m.Sum(sum[:0])
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString("v1,")
		sb.WriteString(base64.StdEncoding.EncodeToString(sum))
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
