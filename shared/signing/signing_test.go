package signing

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func TestKey(t *testing.T) {
	for _, c := range []struct {
		name   string
		secret string
		ok     bool
	}{
		{"24 bytes", Prefix + base64.StdEncoding.EncodeToString(make([]byte, 24)), true},
		{"64 bytes", Prefix + base64.StdEncoding.EncodeToString(make([]byte, 64)), true},
		{"23 bytes", Prefix + base64.StdEncoding.EncodeToString(make([]byte, 23)), false},
		{"65 bytes", Prefix + base64.StdEncoding.EncodeToString(make([]byte, 65)), false},
		{"no prefix", base64.StdEncoding.EncodeToString(make([]byte, 32)), false},
		{"not base64", Prefix + "!!!!", false},
		{"empty", "", false},
	} {
		_, err := Key(c.secret)
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v", c.name, err)
		}
	}
	s, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if k, err := Key(s); err != nil || len(k) != 32 {
		t.Errorf("generated secret %q: %v", s, err)
	}
	if s2, _ := Generate(); s2 == s {
		t.Errorf("two generated secrets are equal")
	}
}

// Signatures verify with the Standard Webhooks reference library, with one
// secret and with both secrets during a rotation; a wrong secret fails.
func TestSignatureVerifiesWithStandardWebhooks(t *testing.T) {
	current, _ := Generate()
	previous, _ := Generate()
	other, _ := Generate()
	kc, _ := Key(current)
	kp, _ := Key(previous)
	id := "5f1e0e5c-3a6b-4c1e-9a57-0d9a1f7b2c11"
	body := []byte(`{"id":"e1","event_type":"deployment.applied","timestamp":"2026-11-24T00:00:00Z","data":{"x":1}}`)
	ts := time.Now().Unix()
	for _, c := range []struct {
		name    string
		signer  *Signer
		secret  string
		wantOK  bool
		wantSig int
	}{
		{"one secret", NewSigner(kc), current, true, 1},
		{"rotation, current", NewSigner(kc, kp), current, true, 2},
		{"rotation, previous", NewSigner(kc, kp), previous, true, 2},
		{"wrong secret", NewSigner(kc), other, false, 1},
	} {
		sig := c.signer.Sign(id, ts, body)
		if n := len(strings.Fields(sig)); n != c.wantSig {
			t.Errorf("%s: %d signatures in %q", c.name, n, sig)
		}
		for _, part := range strings.Fields(sig) {
			if !strings.HasPrefix(part, "v1,") {
				t.Errorf("%s: %q is not a v1 signature", c.name, part)
			}
		}
		wh, err := standardwebhooks.NewWebhook(c.secret)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		h.Set("webhook-signature", sig)
		err = wh.Verify(body, h)
		if (err == nil) != c.wantOK {
			t.Errorf("%s: standard webhooks verify: %v", c.name, err)
		}
		key, _ := Key(c.secret)
		if Verify(key, id, ts, body, sig) != c.wantOK {
			t.Errorf("%s: Verify disagrees", c.name)
		}
	}
	// The reference library's own signature equals ours.
	wh, _ := standardwebhooks.NewWebhook(current)
	ref, err := wh.Sign(id, time.Unix(ts, 0), body)
	if err != nil {
		t.Fatal(err)
	}
	if got := NewSigner(kc).Sign(id, ts, body); got != ref {
		t.Errorf("signature %q, reference %q", got, ref)
	}
	// Any change to id, timestamp or body breaks it.
	sig := NewSigner(kc).Sign(id, ts, body)
	if Verify(kc, id+"x", ts, body, sig) || Verify(kc, id, ts+1, body, sig) || Verify(kc, id, ts, append(body, ' '), sig) {
		t.Errorf("a tampered message verifies")
	}
}
