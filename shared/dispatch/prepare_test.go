package dispatch

import (
	"strings"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/signing"
	"github.com/hermodhq/hermod/shared/streams"
	"github.com/hermodhq/hermod/shared/webhooks"
)

const (
	secretA = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	secretB = "whsec_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
)

// verifies says whether sig holds a valid signature of (id, ts, body) under
// secret.
func verifies(t *testing.T, secret, id string, ts int64, body []byte, sig string) bool {
	t.Helper()
	k, err := signing.Key(secret)
	if err != nil {
		t.Fatal(err)
	}
	return signing.Verify(k, id, ts, body, sig)
}

// Attempts are signed with signers prepared once per secret change: the
// current secret, and both while a rotation overlap lasts.
func TestWorkerSignsWithPreparedSigners(t *testing.T) {
	b := newBundle(t)
	hook := b.hooks.hooks["w1"]
	hook.Secret, hook.PrevSecret, hook.PrevSecretExpiresAt = secretB, secretA, t0.Add(time.Hour)
	w := b.worker(WorkerOptions{})
	w.Handle(pulled(b.msg(streams.DeliverSubject("w1"), streams.Meta{}), t0))
	settle(w)
	req := b.sender.calls[0]
	if req.Signer == nil || req.Secrets != nil {
		t.Fatalf("request signer %v, secrets %v: want a prepared signer", req.Signer, req.Secrets)
	}
	sig := req.Signer.Sign(req.DeliveryID, 1700000000, req.Body)
	if len(strings.Fields(sig)) != 2 || !verifies(t, secretB, req.DeliveryID, 1700000000, req.Body, sig) ||
		!verifies(t, secretA, req.DeliveryID, 1700000000, req.Body, sig) {
		t.Errorf("during the overlap the signature %q must verify with both secrets", sig)
	}
	p := w.prep.get(hook)
	if p.signer(t0.Add(2*time.Hour)) != p.current || p.signer(t0) != p.overlap {
		t.Error("the overlap signer is not chosen by the time of the attempt")
	}
	if w.prep.get(hook) != p {
		t.Error("prepared again for the same webhook")
	}
	rotated := *hook // a new rotation: new secrets, prepared again
	rotated.Secret, rotated.PrevSecret = secretA, secretB
	q := w.prep.get(&rotated)
	if q == p || !verifies(t, secretA, "d", 1, nil, q.current.Sign("d", 1, nil)) {
		t.Error("a secret change did not prepare a new signer")
	}
	w.WebhookChanged("w1", nil)
	if _, ok := w.prep.m.Load("w1"); ok {
		t.Error("a deleted webhook's preparations are kept")
	}
}

// A secret that cannot be decoded makes no signer: the request carries the
// secrets and the client refuses the attempt, saying why.
func TestPreparedWithoutAValidSecret(t *testing.T) {
	var ps preparations
	p := ps.get(&webhooks.Webhook{ID: "w", Secret: "whsec_x"})
	if p.signer(t0) != nil {
		t.Error("a signer was made from an invalid secret")
	}
	p = ps.get(&webhooks.Webhook{ID: "w2", Secret: secretA, PrevSecret: "whsec_y", PrevSecretExpiresAt: t0.Add(time.Hour)})
	if p.signer(t0) != nil || p.signer(t0.Add(2*time.Hour)) != nil {
		t.Error("a signer was made while the previous secret is invalid")
	}
}
