package dispatch

import (
	"encoding/json"

	"github.com/nats-io/nats.go"
)

// answerInFlight tells the API which deliveries of a webhook (the request's
// data) have an attempt running here: "acquired" is derived, never stored.
func (w *Worker) answerInFlight(m *nats.Msg) {
	_ = m.Respond(w.runningFor(string(m.Data)))
}

// runningFor is the JSON array of the deliveries of webhookID being attempted.
func (w *Worker) runningFor(webhookID string) []byte {
	ids := []string{}
	w.running.Range(func(k, v any) bool {
		if v.(string) == webhookID {
			ids = append(ids, k.(string))
		}
		return true
	})
	data, _ := json.Marshal(ids) // strings: cannot fail
	return data
}
