package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hermodhq/hermod/shared/streams"
)

// exerciseReplays runs every replay operation of the store (a replay of
// webhook wh, created at now).
func exerciseReplays(t *testing.T, s *Store, wh string, now time.Time) {
	t.Helper()
	ctx := context.Background()
	r := &Replay{ID: "rp-" + wh[:4], WebhookID: wh, Statuses: []streams.Status{streams.StatusDead},
		Since: now.Add(-time.Hour), Until: now.Add(time.Hour), CreatedAt: now}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err := s.CreateReplay(ctx, r, time.Hour)
	must("create replay", err)
	_, err = s.GetReplay(ctx, r.ID)
	must("get replay", err)
	_, _, err = s.ListReplays(ctx, wh, 10, "")
	must("list replays", err)
	_, err = s.RunningReplays(ctx)
	must("running replays", err)
	_, err = s.ClaimReplay(ctx, r.ID, "me", now, now.Add(time.Minute))
	must("claim replay", err)
	_, err = s.ReplayProgress(ctx, r.ID, "me", ReplayStep{Matched: 1}, now.Add(time.Minute))
	must("replay progress", err)
	_, _, err = s.ListDeliveriesBetween(ctx, wh, streams.StatusDead, r.Since, r.Until, 10, "")
	must("deliveries between", err)
	_, err = s.CountDeliveriesBetween(ctx, wh, streams.StatusFailed, r.Since, r.Until)
	must("count between", err)
	_, err = s.Payload(ctx, "ev-d-1")
	must("payload", err)
	_, err = s.FinishReplay(ctx, r, "me", ReplayDone, "", now, time.Hour)
	must("finish replay", err)
	_, err = s.CancelReplay(ctx, r, now, time.Hour)
	if !errors.Is(err, ErrReplayFinished) {
		t.Fatalf("cancel a finished replay: %v", err)
	}
}

// A replay goes from running to exactly one final state; one runs per
// webhook at a time; the lease goes to one runner until it ends.
func TestReplayTransitions(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	r := &Replay{ID: "rp-1", WebhookID: "wh-1", Statuses: []streams.Status{streams.StatusDead, streams.StatusFailed},
		Since: now.Add(-time.Hour), Until: now, CreatedAt: now}
	if _, err := s.CreateReplay(ctx, r, time.Hour); err != nil {
		t.Fatal(err)
	}
	r2 := *r
	r2.ID = "rp-2"
	if cur, err := s.CreateReplay(ctx, &r2, time.Hour); !errors.Is(err, ErrReplayRunning) || cur != "rp-1" {
		t.Fatalf("second replay of a webhook: %q %v, want rp-1 running", cur, err)
	}
	got, err := s.GetReplay(ctx, "rp-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != ReplayRunning || !got.Since.Equal(r.Since) || !got.Until.Equal(r.Until) || len(got.Statuses) != 2 {
		t.Fatalf("stored replay %+v", got)
	}
	// The lease: one runner at a time until it lapses.
	if ok, err := s.ClaimReplay(ctx, "rp-1", "a", now, now.Add(10*time.Second)); err != nil || !ok {
		t.Fatalf("first claim: %v %v", ok, err)
	}
	if ok, _ := s.ClaimReplay(ctx, "rp-1", "b", now.Add(5*time.Second), now.Add(15*time.Second)); ok {
		t.Fatal("b took a live lease")
	}
	if ok, _ := s.ClaimReplay(ctx, "rp-1", "b", now.Add(11*time.Second), now.Add(21*time.Second)); !ok {
		t.Fatal("b could not take a lapsed lease")
	}
	if _, err := s.ReplayProgress(ctx, "rp-1", "a", ReplayStep{Matched: 5}, now.Add(time.Minute)); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("progress of the runner that lost its lease: %v", err)
	}
	st, err := s.ReplayProgress(ctx, "rp-1", "b", ReplayStep{Matched: 3, Requeued: 2, Skipped: 1, PosStatus: 1, PosCursor: "c"}, now.Add(time.Minute))
	if err != nil || st != ReplayRunning {
		t.Fatalf("progress: %v %v", st, err)
	}
	// A cancel while b holds the lease: b is told at its next step, and
	// what it did meanwhile still counts.
	live, err := s.CancelReplay(ctx, got, now, time.Hour)
	if err != nil || !live {
		t.Fatalf("cancel: live %v %v", live, err)
	}
	if st, err := s.ReplayProgress(ctx, "rp-1", "b", ReplayStep{Matched: 1, Requeued: 1}, now.Add(time.Minute)); err != nil || st != ReplayCancelled {
		t.Fatalf("progress after the cancel: %v %v", st, err)
	}
	if _, err := s.CancelReplay(ctx, got, now, time.Hour); !errors.Is(err, ErrReplayFinished) {
		t.Fatalf("second cancel: %v", err)
	}
	if ok, err := s.FinishReplay(ctx, got, "b", ReplayDone, "", now, time.Hour); err != nil || ok {
		t.Fatalf("finishing a cancelled replay: %v %v", ok, err)
	}
	if ok, _ := s.ClaimReplay(ctx, "rp-1", "c", now.Add(time.Hour), now.Add(2*time.Hour)); ok {
		t.Fatal("claimed a cancelled replay")
	}
	got, _ = s.GetReplay(ctx, "rp-1")
	if got.State != ReplayCancelled || got.Matched != 4 || got.Requeued != 3 || got.Skipped != 1 || got.FinishedAt.IsZero() {
		t.Fatalf("cancelled replay %+v", got)
	}
	if ids, _ := s.RunningReplays(ctx); len(ids) != 0 {
		t.Fatalf("running after the cancel: %v", ids)
	}
	// The webhook is free for another replay, finished by its runner.
	if _, err := s.CreateReplay(ctx, &r2, time.Hour); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.ClaimReplay(ctx, "rp-2", "a", now, now.Add(time.Minute)); !ok {
		t.Fatal("claim rp-2")
	}
	if ok, err := s.FinishReplay(ctx, &r2, "b", ReplayDone, "", now, time.Hour); err != nil || ok {
		t.Fatalf("a runner without the lease finished it: %v %v", ok, err)
	}
	if ok, err := s.FinishReplay(ctx, &r2, "a", ReplayFailed, "the webhook was deleted", now, time.Hour); err != nil || !ok {
		t.Fatalf("finish: %v %v", ok, err)
	}
	got, _ = s.GetReplay(ctx, "rp-2")
	if got.State != ReplayFailed || got.Error != "the webhook was deleted" {
		t.Fatalf("failed replay %+v", got)
	}
	list, _, err := s.ListReplays(ctx, "wh-1", 10, "")
	if err != nil || len(list) != 2 || list[0].ID != "rp-2" {
		t.Fatalf("list: %v %v", list, err)
	}
	if _, err := s.GetReplay(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown replay: %v", err)
	}
}

// ListDeliveriesBetween pages a status through [since, until) oldest
// first, and deliveries that leave the status between pages shift nothing.
func TestListDeliveriesBetween(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var want []string
	for i := range 12 {
		id := fmt.Sprintf("d-%02d", i)
		e := enqueued(id)
		// Two deliveries share each millisecond: the cursor tells them apart.
		e.CreatedAt = base.Add(time.Duration(i/2) * time.Millisecond).UnixMilli()
		apply(t, s, []streams.Outcome{func() streams.Outcome {
			o := outcome(id, 0, 1, streams.StatusDead, streams.StatusFailed, 500)
			o.CreatedAt = e.CreatedAt
			return o
		}()}, e)
		if i >= 2 && i < 10 {
			want = append(want, id)
		}
	}
	since, until := base.Add(time.Millisecond), base.Add(5*time.Millisecond)
	if n, err := s.CountDeliveriesBetween(ctx, "wh-1", streams.StatusDead, since, until); err != nil || n != 8 {
		t.Fatalf("count %d %v, want 8", n, err)
	}
	var got []string
	cursor := ""
	for {
		ds, next, err := s.ListDeliveriesBetween(ctx, "wh-1", streams.StatusDead, since, until, 3, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			got = append(got, d.ID)
			if err := s.Requeue(ctx, d, lim); err != nil { // leaves the dead index
				t.Fatal(err)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("paged %v, want %v", got, want)
	}
	if _, _, err := s.ListDeliveriesBetween(ctx, "wh-1", streams.StatusDead, since, until, 3, "!!"); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
}
