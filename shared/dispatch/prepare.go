package dispatch

import (
	"context"
	"reflect"
	"sync"
	"time"

	"github.com/hermodhq/hermod/shared/formats"
	"github.com/hermodhq/hermod/shared/signing"
	"github.com/hermodhq/hermod/shared/webhooks"
)

// preparations keeps what each webhook's attempts need that depends on the
// webhook alone: its compiled format and its signers. They are made again
// only when the format, its options or the secrets change (not per
// delivery, and not when an agent's heartbeat hands out an equal webhook
// again).
type preparations struct{ m sync.Map } // webhook id -> *prepared

type prepared struct {
	hook *webhooks.Webhook // the webhook it was prepared for
	r    *formats.Renderer
	rerr error
	// current signs with the current secret, overlap with it and the
	// previous one (while a rotation overlap lasts); nil when a secret
	// cannot be decoded (the client then refuses the attempt, saying why).
	current, overlap *signing.Signer
}

func (ps *preparations) get(h *webhooks.Webhook) *prepared {
	if v, ok := ps.m.Load(h.ID); ok {
		p := v.(*prepared)
		if p.hook == h {
			return p
		}
		if sameInputs(p.hook, h) {
			// An equal webhook decoded again (the index's resync, an agent's
			// heartbeat): keep what was prepared, under the new pointer, so
			// the next delivery takes the fast path.
			q := &prepared{hook: h, r: p.r, rerr: p.rerr, current: p.current, overlap: p.overlap}
			ps.m.Store(h.ID, q)
			return q
		}
	}
	p := &prepared{hook: h}
	p.r, p.rerr = formats.Compile(h.Format, h.FormatOptions)
	if cur, err := signing.Key(h.Secret); err == nil {
		p.current = signing.NewSigner(cur)
		p.overlap = p.current
		if h.PrevSecret != "" {
			if prev, err := signing.Key(h.PrevSecret); err == nil {
				p.overlap = signing.NewSigner(cur, prev)
			} else {
				p.current, p.overlap = nil, nil
			}
		}
	}
	ps.m.Store(h.ID, p)
	return p
}

// sameInputs says whether a and b prepare the same way.
func sameInputs(a, b *webhooks.Webhook) bool {
	return a.Format == b.Format && a.Secret == b.Secret && a.PrevSecret == b.PrevSecret &&
		a.PrevSecretExpiresAt.Equal(b.PrevSecretExpiresAt) && reflect.DeepEqual(a.FormatOptions, b.FormatOptions)
}

// signer is the signer of an attempt started at now (nil: none could be
// made; the request carries the secrets instead).
func (p *prepared) signer(now time.Time) *signing.Signer {
	if p.hook.InOverlap(now) {
		return p.overlap
	}
	return p.current
}

// forget drops a deleted webhook's preparations.
func (ps *preparations) forget(id string) { ps.m.Delete(id) }

// WebhookChanged is called by the index when a webhook changed; a deleted
// webhook's preparations (and the decrypted webhook they hold) are dropped.
func (w *Worker) WebhookChanged(id string, hook *webhooks.Webhook) {
	if hook == nil {
		w.prep.forget(id)
	}
}

// render is the body a delivery sends: the envelope in its webhook's
// format. The signature is computed over this body, so it verifies
// whatever the format.
func (w *Worker) render(t ticket, p *prepared) ([]byte, error) {
	if t.hook.Format.OrStandard() == formats.Standard {
		return t.msg.Data(), nil
	}
	if p.rerr != nil {
		return nil, p.rerr
	}
	return p.r.Render(context.Background(), t.msg.Data(), w.deps.Now())
}
