package encryption_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/hermodhq/hermod/shared/encryption"
)

const (
	nonceSize = 12 // AES-GCM standard nonce
	tagSize   = 16 // AES-GCM tag
)

func newBox(t *testing.T, hexKey string) *encryption.Box {
	t.Helper()
	k, err := encryption.ParseKey(hexKey)
	if err != nil {
		t.Fatalf("ParseKey(%q): %v", hexKey, err)
	}
	b, err := encryption.New(k)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

var (
	keyA = strings.Repeat("0123456789abcdef", 4)
	keyB = strings.Repeat("fedcba9876543210", 4)
)

func TestRoundTripTable(t *testing.T) {
	box := newBox(t, keyA)
	for _, c := range []struct {
		name, plain string
	}{
		{"empty", ""},
		{"one byte", "x"},
		{"url with credentials", "https://user:pa55@hooks.example.test/p?token=abc#frag"},
		{"auth header", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"},
		{"signing secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		{"unicode", "clé secrète ✓ 日本語"},
		{"NUL and control bytes", "a\x00b\x01c\r\n"},
		{"invalid UTF-8 bytes", "\xff\xfe\xfd"},
		{"64 KiB", strings.Repeat("abcdefgh", 8192)},
	} {
		t.Run(c.name, func(t *testing.T) {
			sealed, err := box.Seal(c.plain)
			if err != nil {
				t.Fatal(err)
			}
			if c.plain == "" {
				if sealed != "" {
					t.Errorf("empty plaintext sealed to %q, want empty", sealed)
				}
			} else {
				raw, err := base64.StdEncoding.DecodeString(sealed)
				if err != nil {
					t.Fatalf("sealed value is not std base64: %v", err)
				}
				if len(raw) != nonceSize+len(c.plain)+tagSize {
					t.Errorf("sealed length %d, want nonce+plaintext+tag = %d", len(raw), nonceSize+len(c.plain)+tagSize)
				}
				if len(c.plain) >= 4 && (strings.Contains(sealed, c.plain) || bytes.Contains(raw, []byte(c.plain))) {
					t.Errorf("sealed value leaks the plaintext")
				}
			}
			got, err := box.Open(sealed)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got != c.plain {
				t.Errorf("round trip = %.40q, want %.40q", got, c.plain)
			}
			// Another box with the same key opens it too (nothing is kept
			// in the Box between calls).
			if got, err := newBox(t, keyA).Open(sealed); err != nil || got != c.plain {
				t.Errorf("second box with the same key: %.40q %v", got, err)
			}
		})
	}
}

func TestOpenFailuresAreErrDecrypt(t *testing.T) {
	box := newBox(t, keyA)
	sealed, err := box.Seal("https://hooks.example.test/secret-path")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(sealed)
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		return base64.StdEncoding.EncodeToString(b)
	}
	for _, c := range []struct {
		name   string
		box    *encryption.Box
		sealed string
	}{
		{"wrong key", newBox(t, keyB), sealed},
		{"flipped nonce byte", box, flip(0)},
		{"flipped last nonce byte", box, flip(nonceSize - 1)},
		{"flipped ciphertext byte", box, flip(nonceSize)},
		{"flipped tag byte", box, flip(len(raw) - 1)},
		{"truncated by one byte", box, base64.StdEncoding.EncodeToString(raw[:len(raw)-1])},
		{"tag removed", box, base64.StdEncoding.EncodeToString(raw[:len(raw)-tagSize])},
		{"nonce only", box, base64.StdEncoding.EncodeToString(raw[:nonceSize])},
		{"shorter than nonce+tag", box, base64.StdEncoding.EncodeToString(make([]byte, nonceSize+tagSize-1))},
		{"extra byte appended", box, base64.StdEncoding.EncodeToString(append(bytes.Clone(raw), 0))},
		{"zeros of a plausible length", box, base64.StdEncoding.EncodeToString(make([]byte, len(raw)))},
		{"not base64", box, "%%%not-base64%%%"},
		{"url-safe base64 alphabet", box, strings.NewReplacer("+", "-", "/", "_").Replace(sealed) + "-_"},
		{"plaintext given to Open", box, "https://hooks.example.test/"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.box.Open(c.sealed)
			if !errors.Is(err, encryption.ErrDecrypt) {
				t.Errorf("Open = %q, %v; want ErrDecrypt", got, err)
			}
			if got != "" {
				t.Errorf("a failed Open returned %q", got)
			}
		})
	}
}

func TestEmptyOpensToEmptyWithAnyKey(t *testing.T) {
	for _, k := range []string{keyA, keyB} {
		if got, err := newBox(t, k).Open(""); err != nil || got != "" {
			t.Errorf("Open(\"\") = %q, %v", got, err)
		}
	}
}

// Every Seal draws a fresh nonce: sealing the same value many times never
// repeats a ciphertext or a nonce.
func TestNonceUniqueness(t *testing.T) {
	box := newBox(t, keyA)
	const n = 2000
	values := map[string]bool{}
	nonces := map[string]bool{}
	for i := 0; i < n; i++ {
		s, err := box.Seal("same value")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(s)
		if values[s] || nonces[string(raw[:nonceSize])] {
			t.Fatalf("seal %d repeats an earlier ciphertext or nonce", i)
		}
		values[s] = true
		nonces[string(raw[:nonceSize])] = true
	}
	a, _ := box.Seal("v")
	b, _ := box.Seal("v")
	if a == b {
		t.Errorf("two seals of one value are equal")
	}
}

func TestParseKeyTable(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"64 lower-case hex", keyA, true},
		{"64 upper-case hex", strings.ToUpper(keyA), true},
		{"all zeros", strings.Repeat("0", 64), true},
		{"empty", "", false},
		{"63 chars", keyA[:63], false},
		{"65 chars", keyA + "0", false},
		{"32 hex chars (16-byte key)", keyA[:32], false},
		{"128 hex chars", keyA + keyA, false},
		{"non-hex g", strings.Repeat("g", 64), false},
		{"0x prefix", "0x" + keyA[:62], false},
		{"surrounding spaces", " " + keyA[:62] + " ", false},
		{"base64 of 32 bytes plus padding", base64.StdEncoding.EncodeToString(make([]byte, 47)), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, err := encryption.ParseKey(c.in)
			if (err == nil) != c.ok {
				t.Fatalf("ParseKey(%q) = %x, %v; want ok=%v", c.in, k, err, c.ok)
			}
			if c.ok {
				want, _ := hex.DecodeString(c.in)
				if !bytes.Equal(k, want) || len(k) != 32 {
					t.Errorf("ParseKey(%q) = %x", c.in, k)
				}
				return
			}
			if err.Error() == "" {
				t.Errorf("empty error message")
			}
		})
	}
}

func TestNewRejectsKeySizes(t *testing.T) {
	for _, n := range []int{0, 1, 16, 24, 31, 33, 64} {
		if _, err := encryption.New(make([]byte, n)); err == nil {
			t.Errorf("New accepted a %d-byte key", n)
		}
	}
	if _, err := encryption.New(make([]byte, 32)); err != nil {
		t.Errorf("New rejected a 32-byte key: %v", err)
	}
}

func TestGenerateKeyParses(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		k, err := encryption.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		if len(k) != 64 || seen[k] {
			t.Fatalf("generated key %q (len %d, repeated %v)", k, len(k), seen[k])
		}
		seen[k] = true
		newBox(t, k)
	}
}
