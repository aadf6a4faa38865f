package matching_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/matching"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// benchWebhooks is n webhooks, each with a distinct filter expression (none
// when plain), subscribed to "*" (every webhook a candidate of every
// event) or spread over the catalogue's types one type each.
func benchWebhooks(n int, spread, plain bool) []*webhooks.Webhook {
	types := []string{"*"}
	if spread {
		types = nil
		for _, t := range catalog.New(catalog.Default).Types() {
			if t.Type != catalog.TestEventType {
				types = append(types, t.Type)
			}
		}
	}
	ws := make([]*webhooks.Webhook, n)
	for i := range ws {
		w := &webhooks.Webhook{ID: fmt.Sprintf("w-%05d", i), EventTypes: []string{types[i%len(types)]}, Enabled: true}
		team := fmt.Sprintf("team-%d", i)
		if plain {
			w.Filters = &webhooks.Filters{Labels: map[string]string{"team": team}}
		} else {
			// Three shapes, each made distinct by the webhook's number.
			switch i % 3 {
			case 0:
				w.Filter = fmt.Sprintf(`data.severity in ["critical","high"] && labels.team == %q`, team)
			case 1:
				w.Filter = fmt.Sprintf(`has(data.count) && data.count > %d && labels.env == "prod"`, i)
			default:
				w.Filter = fmt.Sprintf(`data.?service.orValue("") == "svc-%d" || event_type.startsWith("never.%d")`, i%50, i)
			}
		}
		ws[i] = w
	}
	return ws
}

const benchEnvelope = `{"id":"7b0f3e2a-1c7e-4c55-9d6c-2f5f6b1d9a10","event_type":"alert.triggered","timestamp":"2026-11-30T12:00:00Z",` +
	`"labels":{"env":"prod","team":"team-42"},"data":{"severity":"critical","count":5000,"service":"svc-7","message":"disk almost full on node-3"}}`

// BenchmarkMatchFilterExpressions10000 routes one event (parse the
// envelope, match) against 10,000 webhooks that each carry a distinct
// filter expression: every webhook a candidate of the event (the worst
// case: 10,000 evaluations per event), and spread over the catalogue's
// types; then 10,000 webhooks with a labels filter instead, for
// comparison. Compile reports the time to build a set of 10,000
// expressions from nothing (the router's start; a change recompiles only
// its webhook's).
func BenchmarkMatchFilterExpressions10000(b *testing.B) {
	const n = 10000
	b.Run("compile", func(b *testing.B) {
		ws := benchWebhooks(n, false, false)
		var per time.Duration
		for b.Loop() {
			start := time.Now()
			s := matching.Build(ws)
			per = time.Since(start)
			if s.Len() != n {
				b.Fatal(s.Len())
			}
		}
		b.ReportMetric(float64(per.Milliseconds()), "ms/10k-compile")
		b.ReportMetric(float64(per.Nanoseconds())/n, "ns/expression")
	})
	for _, c := range []struct {
		name          string
		spread, plain bool
	}{{"every-webhook-a-candidate", false, false}, {"spread-over-types", true, false}, {"labels-filters-no-expressions", false, true}} {
		b.Run(c.name, func(b *testing.B) {
			s := matching.Build(benchWebhooks(n, c.spread, c.plain))
			errs := 0
			var out []*webhooks.Webhook
			matched := 0
			for b.Loop() {
				_, ev, err := matching.ParseEnvelope([]byte(benchEnvelope))
				if err != nil {
					b.Fatal(err)
				}
				ev.OnFilterError = func(*webhooks.Webhook, string, error) { errs++ }
				out = s.Match(ev, out[:0])
				matched = len(out)
			}
			if errs != 0 {
				b.Fatalf("%d filter errors", errs)
			}
			if matched == 0 {
				b.Fatal("the event matched no webhook")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(matched), "matched/event")
		})
	}
}
