package opsevents

import (
	"time"

	"github.com/hermodhq/hermod/shared/catalog"
)

// Example is a sample of an operational event of type t (nil for another
// type): the Webhooks page's previews and docs/api.md show these.
func Example(t string) Event {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	since := at.Add(-10 * time.Minute)
	const wh = "7d1e0a52-4c3b-4f6e-9a87-2b5c1d3e4f60"
	switch t {
	case catalog.WebhookDegraded:
		return WebhookDegraded{WebhookID: wh, Name: "orders", URLRedacted: "https://receiver.example", Reason: "dead_streak",
			Message: "its last 3 finished deliveries died", DegradedAt: at}
	case catalog.WebhookRecovered:
		return WebhookRecovered{WebhookID: wh, Name: "orders", URLRedacted: "https://receiver.example",
			Message: "it delivers again", DegradedAt: &since, RecoveredAt: at}
	case catalog.DeliveryDead:
		return DeliveryDead{WebhookID: wh, Name: "orders", URLRedacted: "https://receiver.example",
			DeliveryID: "0b1e6a43-2f55-4a07-8d52-1f8c5d0a3c27", EventID: "alert-42", EventType: "alert.triggered",
			Reason: "exhausted", Attempts: 5, LastStatusCode: 503, Error: "HTTP 503",
			Message: "a delivery of alert.triggered died (exhausted) after 5 attempts", Suppressed: 0, DiedAt: at}
	case catalog.AgentInactive:
		return AgentInactive{AgentID: "eu-west-1", Labels: []string{"env:production"}, Message: "no heartbeat for 30s",
			LastSeenAt: &since, InactiveAt: at}
	case catalog.AgentActive:
		return AgentActive{AgentID: "eu-west-1", Labels: []string{"env:production"}, Message: "it sends heartbeats again",
			LastSeenAt: &at, InactiveSince: &since}
	case catalog.ReplayFinished:
		return ReplayFinished{ID: "5a4c2e1f-8b7d-4c3a-9e6f-0d1b2c3a4f5e", WebhookID: wh, State: "done",
			Matched: 120, Requeued: 118, Skipped: 2, Message: "118 of 120 deliveries sent again"}
	}
	return nil
}
