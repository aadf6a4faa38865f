package api

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"
)

// FuzzParseReplay: any replay body is either refused with a 400 or a 422
// naming a field, or gives a non-empty set of replayable statuses (each
// once) and a range of at most MaxReplayRange, since before until and not
// in the future, in UTC to the millisecond.
func FuzzParseReplay(f *testing.F) {
	for _, s := range []string{
		`{"statuses":["dead","failed"],"since":"2026-03-01T00:00:00Z","until":"2026-03-02T00:00:00Z"}`,
		`{"statuses":["dead"],"since":"2026-03-01T00:00:00.9999999+14:00","until":"2026-03-01T00:00:01-12:00"}`,
		`{"statuses":["dead","dead"],"since":"2026-03-01T00:00:00Z","until":"2026-03-02T00:00:00Z"}`,
		`{"statuses":["success"],"since":"2026-03-01T00:00:00Z","until":"2026-03-02T00:00:00Z"}`,
		`{"statuses":[],"since":"","until":""}`,
		`{"statuses":["dead"],"since":1e400,"until":99999999999999999999999}`,
		`{"statuses":["dead\u0000"],"since":"2026-03-01T00:00:00Z\r\n","until":"x"}`,
		`{"statuses":null} {}`,
		`{"zz":1}`,
		`[[[[`,
		``,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		statuses, since, until, err := parseReplay(body, now)
		if err != nil {
			var ae *APIError
			if !errors.As(err, &ae) || ae.Message == "" {
				t.Fatalf("refusal %v is not an APIError", err)
			}
			if ae.Status == http.StatusUnprocessableEntity && ae.Details["field"] == nil {
				t.Fatalf("422 %v names no field", err)
			}
			if ae.Status != http.StatusBadRequest && ae.Status != http.StatusUnprocessableEntity {
				t.Fatalf("refusal %v is not a 400 or 422", err)
			}
			return
		}
		if len(statuses) == 0 || len(slices.Compact(slices.Clone(statuses))) != len(statuses) {
			t.Fatalf("accepted %q with statuses %v", body, statuses)
		}
		for _, s := range statuses {
			if !slices.Contains(ReplayStatuses, s) {
				t.Fatalf("accepted %q with status %s", body, s)
			}
		}
		if !since.Before(until) || until.Sub(since) > MaxReplayRange || since.After(now) ||
			since.Location() != time.UTC || since.Nanosecond()%int(time.Millisecond) != 0 {
			t.Fatalf("accepted %q with range %v – %v", body, since, until)
		}
	})
}
