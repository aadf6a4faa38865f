package dispatch

import (
	"context"
	"reflect"
	"sync"

	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// renderers keeps each webhook's compiled format, compiled again only when
// the format or its options change (not per delivery, and not when an
// agent's heartbeat hands out an equal webhook again).
type renderers struct{ m sync.Map } // webhook id -> compiled

type compiled struct {
	hook *webhooks.Webhook // the webhook it was compiled for
	r    *formats.Renderer
	err  error
}

func (rs *renderers) get(h *webhooks.Webhook) (*formats.Renderer, error) {
	if v, ok := rs.m.Load(h.ID); ok {
		if c := v.(*compiled); c.hook == h || (c.hook.Format == h.Format && reflect.DeepEqual(c.hook.FormatOptions, h.FormatOptions)) {
			return c.r, c.err
		}
	}
	r, err := formats.Compile(h.Format, h.FormatOptions)
	rs.m.Store(h.ID, &compiled{hook: h, r: r, err: err})
	return r, err
}

// forget drops a deleted webhook's compiled format.
func (rs *renderers) forget(id string) { rs.m.Delete(id) }

// WebhookChanged is called by the index when a webhook changed; a deleted
// webhook's compiled format (and the decrypted webhook it holds) is dropped.
func (w *Worker) WebhookChanged(id string, hook *webhooks.Webhook) {
	if hook == nil {
		w.formats.forget(id)
	}
}

// render is the body a delivery sends: the envelope in its webhook's
// format. The signature is computed over this body, so it verifies
// whatever the format.
func (w *Worker) render(t ticket) ([]byte, error) {
	if t.hook.Format.OrStandard() == formats.Standard {
		return t.msg.Data(), nil
	}
	r, err := w.formats.get(t.hook)
	if err != nil {
		return nil, err
	}
	return r.Render(context.Background(), t.msg.Data(), w.deps.Now())
}
