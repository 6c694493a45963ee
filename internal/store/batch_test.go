package store_test

import (
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
