package signing_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hermodhq/hermod/shared/signing"
)

// secretOf builds a whsec_ secret from n bytes of a recognisable pattern.
func secretOf(n int, fill byte) string {
	return signing.Prefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, n))
}

func TestKeyLengthsTable(t *testing.T) {
	type tc struct {
		name   string
		secret string
		want   int // decoded key length; 0 = must be rejected
	}
	cases := []tc{
		{"23 bytes too short", secretOf(23, 1), 0},
		{"65 bytes too long", secretOf(65, 1), 0},
		{"0 bytes", signing.Prefix, 0},
		{"prefix only with padding", signing.Prefix + "====", 0},
		{"missing prefix", base64.StdEncoding.EncodeToString(make([]byte, 32)), 0},
		{"upper-case prefix", "WHSEC_" + base64.StdEncoding.EncodeToString(make([]byte, 32)), 0},
		{"prefix without underscore", "whsec" + base64.StdEncoding.EncodeToString(make([]byte, 32)), 0},
		{"prefix twice", signing.Prefix + secretOf(32, 1), 0},
		{"raw (unpadded) base64 of 32 bytes", signing.Prefix + base64.RawStdEncoding.EncodeToString(make([]byte, 32)), 0},
		{"url-safe alphabet", signing.Prefix + strings.Repeat("-_", 22), 0},
		{"not base64 at all", signing.Prefix + "this is not base64!", 0},
		{"empty string", "", 0},
		{"leading space", " " + secretOf(32, 1), 0},
	}
	// Every length from 24 to 64 bytes is accepted and decodes to exactly
	// those bytes.
	for n := 24; n <= 64; n++ {
		cases = append(cases, tc{"accepted " + strconv.Itoa(n) + " bytes", secretOf(n, byte(n)), n})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key, err := signing.Key(c.secret)
			if c.want == 0 {
				if err == nil {
					t.Fatalf("Key(%q) accepted a %d-byte key", c.secret, len(key))
				}
				if !errors.Is(err, signing.ErrBadSecret) {
					t.Errorf("Key(%q) error %v is not ErrBadSecret", c.secret, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Key(%q): %v", c.secret, err)
			}
			if !bytes.Equal(key, bytes.Repeat([]byte{byte(c.want)}, c.want)) {
				t.Errorf("Key(%q) = %x", c.secret, key)
			}
		})
	}
}

func TestGenerateProducesValidDistinctSecrets(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		s, err := signing.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s, signing.Prefix) {
			t.Fatalf("generated secret %q lacks the prefix", s)
		}
		key, err := signing.Key(s)
		if err != nil {
			t.Fatalf("generated secret %q rejected: %v", s, err)
		}
		if len(key) != 32 {
			t.Fatalf("generated key of %d bytes, want 32", len(key))
		}
		if seen[s] {
			t.Fatalf("secret %q generated twice", s)
		}
		seen[s] = true
		// The Standard Webhooks library accepts it as a secret too.
		if _, err := standardwebhooks.NewWebhook(s); err != nil {
			t.Fatalf("standard webhooks rejects %q: %v", s, err)
		}
	}
}

// stdHeaders builds the three Standard Webhooks headers.
func stdHeaders(id string, ts int64, sig string) http.Header {
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, id)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	return h
}

// TestSignTableVerifiedByStandardWebhooks signs with one and with two keys
// and checks the header with the Standard Webhooks reference library: every
// secret that signed verifies; any other secret fails.
func TestSignTableVerifiedByStandardWebhooks(t *testing.T) {
	current := secretOf(32, 0xC1)
	previous := secretOf(48, 0xB2)
	stranger := secretOf(32, 0x0F)
	short := secretOf(24, 0x24)
	long := secretOf(64, 0x64)
	key := func(s string) []byte {
		k, err := signing.Key(s)
		if err != nil {
			t.Fatalf("Key(%q): %v", s, err)
		}
		return k
	}
	id := "0b8b7c1e-2d3f-4a5b-8c6d-7e8f9a0b1c2d"
	body := []byte(`{"id":"ev-1","event_type":"deployment.applied","timestamp":"2026-11-24T10:00:00Z","data":{"agent_id":"a-1","n":1}}`)
	ts := time.Now().Unix() // the library refuses timestamps more than 5 minutes off

	for _, c := range []struct {
		name     string
		signWith []string
		verifyOK []string
		verifyNo []string
	}{
		{"one key", []string{current}, []string{current}, []string{previous, stranger}},
		{"rotation: current and previous", []string{current, previous}, []string{current, previous}, []string{stranger}},
		{"rotation order reversed", []string{previous, current}, []string{current, previous}, []string{stranger}},
		{"24-byte key", []string{short}, []string{short}, []string{current}},
		{"64-byte key", []string{long}, []string{long}, []string{current}},
	} {
		t.Run(c.name, func(t *testing.T) {
			keys := make([][]byte, len(c.signWith))
			for i, s := range c.signWith {
				keys[i] = key(s)
			}
			sig := signing.NewSigner(keys...).Sign(id, ts, body)
			if strings.Contains(sig, "  ") || strings.HasPrefix(sig, " ") || strings.HasSuffix(sig, " ") {
				t.Errorf("signature header %q is not single-space separated", sig)
			}
			parts := strings.Split(sig, " ")
			if len(parts) != len(c.signWith) {
				t.Fatalf("%d signatures in %q, want %d", len(parts), sig, len(c.signWith))
			}
			for i, p := range parts {
				b64, ok := strings.CutPrefix(p, "v1,")
				if !ok {
					t.Fatalf("signature %q does not start with v1,", p)
				}
				raw, err := base64.StdEncoding.DecodeString(b64)
				if err != nil || len(raw) != 32 {
					t.Errorf("signature %q is not base64 of a SHA-256 HMAC: %v", p, err)
				}
				// Part i is the signature of key i alone.
				if one := signing.NewSigner(keys[i]).Sign(id, ts, body); one != p {
					t.Errorf("part %d = %q, single-key signature %q", i, p, one)
				}
			}
			for _, s := range c.verifyOK {
				wh, err := standardwebhooks.NewWebhook(s)
				if err != nil {
					t.Fatal(err)
				}
				if err := wh.Verify(body, stdHeaders(id, ts, sig)); err != nil {
					t.Errorf("standard webhooks rejects a signature by %q: %v", s, err)
				}
				if !signing.Verify(key(s), id, ts, body, sig) {
					t.Errorf("signing.Verify rejects a signature by %q", s)
				}
			}
			for _, s := range c.verifyNo {
				wh, err := standardwebhooks.NewWebhook(s)
				if err != nil {
					t.Fatal(err)
				}
				err = wh.Verify(body, stdHeaders(id, ts, sig))
				if !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
					t.Errorf("standard webhooks with the wrong secret %q: %v, want ErrNoMatchingSignature", s, err)
				}
				if signing.Verify(key(s), id, ts, body, sig) {
					t.Errorf("signing.Verify accepts the wrong secret %q", s)
				}
			}
			// The library's own signature with the first secret equals ours.
			wh, _ := standardwebhooks.NewWebhook(c.signWith[0])
			ref, err := wh.Sign(id, time.Unix(ts, 0), body)
			if err != nil || ref != parts[0] {
				t.Errorf("reference signature %q (%v), ours %q", ref, err, parts[0])
			}
		})
	}
}

// The signature binds the id, the timestamp and the body: the reference
// library rejects a change to any of them.
func TestSignatureBindsIDTimestampAndBody(t *testing.T) {
	secret := secretOf(32, 7)
	k, _ := signing.Key(secret)
	id := "d-1"
	ts := time.Now().Unix()
	body := []byte(`{"a":1}`)
	sig := signing.NewSigner(k).Sign(id, ts, body)
	wh, _ := standardwebhooks.NewWebhook(secret)
	for _, c := range []struct {
		name string
		id   string
		ts   int64
		body []byte
		ok   bool
	}{
		{"untouched", id, ts, body, true},
		{"other id", "d-2", ts, body, false},
		{"id with a dot moved", "d-1.", ts, body, false},
		{"timestamp +1", id, ts + 1, body, false},
		{"timestamp -1", id, ts - 1, body, false},
		{"body with trailing newline", id, ts, append(append([]byte{}, body...), '\n'), false},
		{"empty body", id, ts, nil, false},
		{"reformatted body", id, ts, []byte(`{"a": 1}`), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := wh.Verify(c.body, stdHeaders(c.id, c.ts, sig))
			if (err == nil) != c.ok {
				t.Errorf("standard webhooks verify: %v, want ok=%v", err, c.ok)
			}
			if got := signing.Verify(k, c.id, c.ts, c.body, sig); got != c.ok {
				t.Errorf("signing.Verify = %v, want %v", got, c.ok)
			}
		})
	}
}

func TestVerifyHeaderForms(t *testing.T) {
	k1, _ := signing.Key(secretOf(32, 1))
	k2, _ := signing.Key(secretOf(32, 2))
	id, ts, body := "msg", int64(1_700_000_000), []byte("payload")
	good := signing.NewSigner(k1).Sign(id, ts, body)
	other := signing.NewSigner(k2).Sign(id, ts, body)
	b64 := strings.TrimPrefix(good, "v1,")
	for _, c := range []struct {
		name   string
		header string
		want   bool
	}{
		{"exact", good, true},
		{"second of two", other + " " + good, true},
		{"first of two", good + " " + other, true},
		{"surrounded by spaces", "  " + good + "  ", true},
		{"tab separated", other + "\t" + good, true},
		{"only another key's", other, false},
		{"empty header", "", false},
		{"bare base64 without version", b64, false},
		{"wrong version", "v2," + b64, false},
		{"v1a (asymmetric) label", "v1a," + b64, false},
		{"truncated", good[:len(good)-2], false},
		{"upper-cased", strings.ToUpper(good), false},
		{"comma separated list", other + "," + good, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := signing.Verify(k1, id, ts, body, c.header); got != c.want {
				t.Errorf("Verify(%q) = %v, want %v", c.header, got, c.want)
			}
		})
	}
}

func TestSignWithoutKeysIsEmpty(t *testing.T) {
	if got := signing.NewSigner().Sign("id", 1, []byte("x")); got != "" {
		t.Errorf("signature without keys = %q", got)
	}
}

// BenchmarkSign is the signature of one attempt with a signer made once per
// secret change (what the delivery engine does).
func BenchmarkSign(b *testing.B) {
	key, err := signing.Key("whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	if err != nil {
		b.Fatal(err)
	}
	s := signing.NewSigner(key)
	body := make([]byte, 1024)
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Sign("2b0c6c3e-1111-4a4a-9c9c-0123456789ab", 1767225600, body)
	}
}
