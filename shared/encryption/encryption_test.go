package encryption

import (
	"errors"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	hexKey, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseKey(hexKey)
	if err != nil {
		t.Fatal(err)
	}
	box, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range []string{"", "https://example.test/hooks/t0ken?x=1", "Bearer s3cret", strings.Repeat("ü", 5000)} {
		sealed, err := box.Seal(pt)
		if err != nil {
			t.Fatal(err)
		}
		if pt != "" && strings.Contains(sealed, pt) {
			t.Errorf("sealed value contains the plaintext")
		}
		got, err := box.Open(sealed)
		if err != nil || got != pt {
			t.Errorf("round trip of %.20q: %q %v", pt, got, err)
		}
	}
	a, _ := box.Seal("same")
	b, _ := box.Seal("same")
	if a == b {
		t.Errorf("two seals of one value are equal (nonce reuse)")
	}
	other, _ := New([]byte(strings.Repeat("k", 32)))
	if _, err := other.Open(a); !errors.Is(err, ErrDecrypt) {
		t.Errorf("wrong key: %v", err)
	}
	tampered := []byte(a)
	tampered[len(tampered)-3] ^= 1
	if _, err := box.Open(string(tampered)); !errors.Is(err, ErrDecrypt) {
		t.Errorf("tampered value: %v", err)
	}
	for _, bad := range []string{"!!", "AAAA"} {
		if _, err := box.Open(bad); !errors.Is(err, ErrDecrypt) {
			t.Errorf("garbage %q: %v", bad, err)
		}
	}
}

func TestParseKey(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{strings.Repeat("ab", 32), true},
		{strings.Repeat("ab", 31), false},
		{strings.Repeat("zz", 32), false},
		{"", false},
	} {
		if _, err := ParseKey(c.in); (err == nil) != c.ok {
			t.Errorf("ParseKey(%q): %v", c.in, err)
		}
	}
	if _, err := New(make([]byte, 16)); err == nil {
		t.Errorf("a 16-byte key was accepted")
	}
}
