package signing

import (
	"strings"
	"testing"
)

// FuzzVerify: Verify never panics on any header, accepts the header Sign
// makes and a list holding it, and refuses it for another body or id.
func FuzzVerify(f *testing.F) {
	key := make([]byte, 32)
	good := NewSigner(key).Sign("msg_1", 1700000000, []byte(`{"a":1}`))
	for _, h := range []string{good, "v1,", "v1,AAAA v2,BBBB", "", " ", "v1," + strings.Repeat("A", 44), good + "\r\n" + good,
		"v1,\x00", strings.Repeat("v1,x ", 100)} {
		f.Add("msg_1", int64(1700000000), []byte(`{"a":1}`), h)
	}
	f.Fuzz(func(t *testing.T, id string, ts int64, body []byte, header string) {
		_ = Verify(key, id, ts, body, header)
		sig := NewSigner(key).Sign(id, ts, body)
		if !Verify(key, id, ts, body, sig) || !Verify(key, id, ts, body, header+" "+sig) {
			t.Fatalf("own signature refused: id %q ts %d", id, ts)
		}
		if Verify(key, id, ts, append(body, 'x'), sig) || Verify(key, id+"x", ts, body, sig) {
			t.Fatalf("signature accepted for another body or id")
		}
		if _, err := Key(header); err == nil && strings.ContainsAny(header, "\r\n") {
			t.Fatalf("secret %q with CR/LF accepted", header)
		}
	})
}
