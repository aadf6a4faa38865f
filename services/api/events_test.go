package api

import (
	"errors"
	"net/http"
	"testing"

	"github.com/hermodhq/hermod/shared/catalog"
)

// The hermod family is Hermod's own: the API refuses to publish it, known
// type or not, with a 422 naming the field and saying why (a preview of
// one is fine: it publishes nothing).
func TestPublishRefusesOperationalEvents(t *testing.T) {
	cat := catalog.New(catalog.Default)
	for _, typ := range []string{catalog.WebhookDegraded, catalog.DeliveryDead, catalog.AgentActive, catalog.ReplayFinished} {
		env, err := decodeEvent([]byte(`{"event_type":"`+typ+`","data":{"webhook_id":"w"}}`), cat)
		if err == nil {
			err = publishable(env.EventType)
		}
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity || ae.Code != "reserved_event_type" ||
			ae.Details["field"] != "event_type" {
			t.Errorf("%s: %v, want 422 reserved_event_type on event_type", typ, err)
		}
	}
	var ae *APIError
	if _, err := decodeEvent([]byte(`{"event_type":"hermod.made.up","data":{}}`), cat); !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity {
		t.Errorf("an unknown hermod type: %v, want 422", err)
	}
	if err := publishable("alert.triggered"); err != nil {
		t.Errorf("a platform event refused: %v", err)
	}
}
