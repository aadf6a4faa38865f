package dispatch

import (
	"context"
	"sync"

	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// renderers keeps each webhook's compiled format, compiled once per webhook
// change (the index and the agent hand out a new *Webhook for every change),
// never per delivery.
type renderers struct{ m sync.Map } // webhook id -> compiled

type compiled struct {
	hook *webhooks.Webhook
	r    *formats.Renderer
	err  error
}

func (rs *renderers) get(h *webhooks.Webhook) (*formats.Renderer, error) {
	if c, ok := rs.m.Load(h.ID); ok && c.(*compiled).hook == h {
		return c.(*compiled).r, c.(*compiled).err
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
	if t.hook.Format == "" || t.hook.Format == formats.Standard {
		return t.msg.Data(), nil
	}
	r, err := w.formats.get(t.hook)
	if err != nil {
		return nil, err
	}
	return r.Render(context.Background(), t.msg.Data(), w.deps.Now())
}
