package formats

import (
	"context"
	"encoding/json"
	"testing"
)

// Rendering never panics, whatever the envelope: a body that is not one is
// an error, and every format's output is JSON.
func FuzzRender(f *testing.F) {
	f.Add([]byte(`{"id":"e","event_type":"alert.triggered","data":{"alert_id":"a","url":"https://x"}}`))
	f.Add([]byte(`{"id":"e","event_type":"alert.resolved","data":[1,2]}`))
	f.Add([]byte(`{"event_type":"x","data":"not an object","labels":{"a":"b"}}`))
	f.Add([]byte(`{"event_type":"deployment.failed","data":{"deployment_id":1e400}}`))
	f.Add([]byte(`not json`))
	renderers := []*Renderer{}
	for _, c := range []struct {
		n Name
		o *Options
	}{{Slack, nil}, {PagerDuty, &Options{RoutingKey: routingKey}}, {Datadog, nil}, {Alertmanager, nil}, {Teams, nil},
		{Template, &Options{Template: `{t: .event_type, d: .data}`}}} {
		r, err := Compile(c.n, c.o)
		if err != nil {
			f.Fatal(err)
		}
		renderers = append(renderers, r)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, r := range renderers {
			out, err := r.Render(context.Background(), body, now)
			if err == nil && !json.Valid(out) {
				t.Errorf("%s rendered no JSON: %q", r.Name(), out)
			}
		}
	})
}
