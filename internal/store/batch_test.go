package store_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

func TestClaimAndFinishInBatches(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		now := time.Now().UTC().Truncate(time.Millisecond)
		sent := create(t, s, item(tn.ID, "sent", now.Add(-time.Second)))
		failed := create(t, s, item(tn.ID, "failed", now.Add(-time.Second)))
		retry := create(t, s, item(tn.ID, "retry", now.Add(-time.Second)))
		future := create(t, s, item(tn.ID, "future", now.Add(time.Hour)))
		cancelled := create(t, s, item(tn.ID, "cancelled", now.Add(-time.Second)))
		if _, err := s.CancelNotification(ctx, tn.ID, cancelled.ID, now); err != nil {
			t.Fatal(err)
		}

		claimed, err := s.ClaimNotifications(ctx, []string{sent.ID, failed.ID, retry.ID, future.ID, cancelled.ID, "ntf_missing"}, now, now.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, n := range claimed {
			if n.Status != store.StatusSending || !n.ClaimedUntil.Equal(now.Add(time.Minute)) {
				t.Errorf("claimed row %s: status %s, lease %v", n.ID, n.Status, n.ClaimedUntil)
			}
			ids = append(ids, n.ID)
		}
		slices.Sort(ids)
		want := []string{sent.ID, failed.ID, retry.ID}
		slices.Sort(want)
		if !slices.Equal(ids, want) {
			t.Fatalf("claimed %v, want only the due scheduled rows %v", ids, want)
		}
		// A second claim of the same ids gets nothing: one sender per row.
		if again, err := s.ClaimNotifications(ctx, want, now, now.Add(time.Minute)); err != nil || len(again) != 0 {
			t.Fatalf("second claim: %d rows, %v", len(again), err)
		}

		retryAt := now.Add(time.Minute)
		items := []store.Finish{
			{ID: sent.ID, Result: store.AttemptResult{Status: store.StatusSent, ProviderID: "<m1@x>", Attempt: store.Attempt{Outcome: "sent", ProviderID: "<m1@x>"}}},
			{ID: failed.ID, Result: store.AttemptResult{Status: store.StatusFailed, Reason: "smtp 550", Attempt: store.Attempt{Outcome: "failed", ErrorCode: "550"}}},
			{ID: retry.ID, Result: store.AttemptResult{Status: store.StatusScheduled, Reason: "smtp 451", RetryAt: retryAt, Attempt: store.Attempt{Outcome: "retry", ErrorCode: "451"}}},
			{ID: future.ID, Result: store.AttemptResult{Status: store.StatusSent}}, // not sending: must not change
		}
		done, err := s.FinishAttempts(ctx, now, items)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(done)
		if !slices.Equal(done, want) {
			t.Fatalf("recorded %v, want %v", done, want)
		}
		check := func(id, status, reason string) store.Notification {
			t.Helper()
			n, err := s.GetNotificationByID(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if n.Status != status || n.StatusReason != reason || len(n.Attempts) != 1 || n.Attempts[0].N != 1 || !n.ClaimedUntil.IsZero() {
				t.Errorf("%s: status %s reason %q attempts %+v lease %v; want %s %q with attempt 1", id, n.Status, n.StatusReason, n.Attempts, n.ClaimedUntil, status, reason)
			}
			return n
		}
		if n := check(sent.ID, store.StatusSent, ""); n.ProviderID != "<m1@x>" || !n.FinalAt.Equal(now) || !n.ExpiresAt.Equal(now.Add(tn.NotificationRetention)) {
			t.Errorf("sent row: provider %q final %v expires %v", n.ProviderID, n.FinalAt, n.ExpiresAt)
		}
		if n := check(failed.ID, store.StatusFailed, "smtp 550"); n.Attempts[0].ErrorCode != "550" || !n.FinalAt.Equal(now) {
			t.Errorf("failed row: %+v", n)
		}
		if n := check(retry.ID, store.StatusScheduled, "smtp 451"); !n.SendAt.Equal(retryAt) || !n.FinalAt.IsZero() {
			t.Errorf("retried row: send_at %v final %v, want %v and no final time", n.SendAt, n.FinalAt, retryAt)
		}
		if n, _ := s.GetNotificationByID(ctx, future.ID); n.Status != store.StatusScheduled || len(n.Attempts) != 0 {
			t.Errorf("future row changed: %+v", n)
		}
		// Recording twice changes nothing: the rows are no longer sending.
		if again, err := s.FinishAttempts(ctx, now, items[:2]); err != nil || len(again) != 0 {
			t.Errorf("second finish: %v %v, want nothing recorded", again, err)
		}
		if _, err := s.ClaimNotifications(ctx, make([]string, store.MaxBatch+1), now, now); err == nil {
			t.Error("an oversized batch was accepted")
		}
	})
}

// A batch claim is not a send: rows of an expired claim that were never
// dispatched go back to scheduled; dispatched ones end in doubt.
func TestInterruptedBatchReleasesUndispatchedRows(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		now := time.Now().UTC().Truncate(time.Millisecond)
		var ids []string
		for i := range 4 {
			ids = append(ids, create(t, s, item(tn.ID, fmt.Sprintf("wave-%d", i), now.Add(-time.Minute))).ID)
		}
		claimed, err := s.ClaimNotifications(ctx, ids, now, now.Add(time.Minute))
		if err != nil || len(claimed) != 4 {
			t.Fatalf("claim: %d, %v", len(claimed), err)
		}
		// The first wave went to the provider, then the worker died.
		if err := s.DispatchNotifications(ctx, ids[:2], now); err != nil {
			t.Fatal(err)
		}
		later := now.Add(2 * time.Minute)
		for i, id := range ids {
			got, err := s.MarkInterrupted(ctx, id, later)
			if err != nil {
				t.Fatalf("MarkInterrupted %d: %v", i, err)
			}
			if i < 2 {
				if got.Status != store.StatusFailed || got.StatusReason != store.ReasonOutcomeUnknown || !got.NeedsReconciliation {
					t.Errorf("dispatched row %d: %s %s, want failed outcome_unknown", i, got.Status, got.StatusReason)
				}
				continue
			}
			if got.Status != store.StatusScheduled || len(got.Attempts) != 0 || got.NeedsReconciliation {
				t.Errorf("undispatched row %d: %s, %d attempts, reconciliation %v; want scheduled again, untouched",
					i, got.Status, len(got.Attempts), got.NeedsReconciliation)
			}
		}
		// Released rows are claimed and sent like any other.
		again, err := s.ClaimNotifications(ctx, ids, later, later.Add(time.Minute))
		if err != nil || len(again) != 2 || again[0].ID != ids[2] && again[1].ID != ids[2] {
			t.Errorf("re-claim: %d rows, %v", len(again), err)
		}
		// A single send is dispatched from its claim on.
		single := create(t, s, item(tn.ID, "single", now.Add(-time.Minute)))
		if _, ok, err := s.ClaimNotification(ctx, single.ID, now, now.Add(time.Minute)); !ok || err != nil {
			t.Fatalf("claim single: %v %v", ok, err)
		}
		if got, err := s.MarkInterrupted(ctx, single.ID, later); err != nil || got.Status != store.StatusFailed {
			t.Errorf("interrupted single send: %s, %v; want failed (in doubt)", got.Status, err)
		}
	})
}

// Recording one wave dispatches the next in the same commit.
func TestFinishAndDispatch(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		now := time.Now().UTC().Truncate(time.Millisecond)
		var ids []string
		for i := range 3 {
			ids = append(ids, create(t, s, item(tn.ID, fmt.Sprintf("fd-%d", i), now.Add(-time.Minute))).ID)
		}
		if _, err := s.ClaimNotifications(ctx, ids, now, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.DispatchNotifications(ctx, ids[:1], now); err != nil {
			t.Fatal(err)
		}
		done, err := s.FinishAndDispatch(ctx, now, []store.Finish{{ID: ids[0], Result: store.AttemptResult{Status: store.StatusSent,
			ProviderID: "<fd0@x>", Attempt: store.Attempt{Outcome: "sent"}}}}, ids[1:2])
		if err != nil || len(done) != 1 || done[0] != ids[0] {
			t.Fatalf("FinishAndDispatch: %v, %v", done, err)
		}
		later := now.Add(2 * time.Minute)
		want := []string{store.StatusSent, store.StatusFailed, store.StatusScheduled}
		for i, id := range ids {
			got, err := s.GetNotificationByID(ctx, id)
			if i > 0 {
				got, err = s.MarkInterrupted(ctx, id, later)
			}
			if err != nil || got.Status != want[i] {
				t.Errorf("row %d: %s, %v; want %s", i, got.Status, err, want[i])
			}
		}
	})
}
