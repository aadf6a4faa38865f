package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/matching"
)

// FuzzDecodeEvent: any event body is either refused with a 400 or 422
// envelope error, or makes an envelope of a catalogue type whose data is
// valid JSON and which marshals and parses back.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		`{"event_type":"alert.triggered","data":{"a":1}}`,
		`{"event_type":"alert.triggered","data":null,"id":"ev-1","labels":{"env":"prod"}}`,
		`{"event_type":"alert.triggered","data":[1e400,99999999999999999999999]}`,
		`{"event_type":"webhook.test","data":{}}`,
		`{"event_type":"alert.triggered","data":{},"labels":{"env":"a\u0000b"}}`,
		`{"event_type":"alert.triggered","data":{},"id":"a\r\nb"}`,
		`{"event_type":"alert.triggered"} {}`,
		`{"data":{},"zz":1}`,
		`[[[[`,
		`{"a":{"a":{"a":`,
		``,
	} {
		f.Add([]byte(s))
	}
	cat := catalog.New(catalog.Default)
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := decodeEvent(body, cat)
		if err != nil {
			var ae *APIError
			if !errors.As(err, &ae) || (ae.Status != http.StatusBadRequest && ae.Status != http.StatusUnprocessableEntity) ||
				ae.Message == "" {
				t.Fatalf("refusal %v is not a 400 or 422 APIError", err)
			}
			return
		}
		if !cat.Known(env.EventType) || env.EventType == catalog.TestEventType || env.ID == "" || !json.Valid(env.Data) {
			t.Fatalf("accepted %q as %+v", body, env)
		}
		payload, err := json.Marshal(env)
		if err != nil {
			t.Fatalf("marshal %+v: %v", env, err)
		}
		if _, _, err := matching.ParseEnvelope(payload); err != nil {
			t.Fatalf("accepted %q, whose envelope does not parse: %v", body, err)
		}
	})
}
