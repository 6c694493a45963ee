package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

func TestCreateNotificationsIdempotency(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		sendAt := time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC()

		first := create(t, s, item(tn.ID, "a", sendAt))
		if first.Status != store.StatusScheduled || first.ID[:4] != "ntf_" {
			t.Fatalf("created %+v: want scheduled with ntf_ id", first)
		}
		if want := sendAt.Add(tn.NotificationRetention); !first.ExpiresAt.Equal(want) {
			t.Errorf("ExpiresAt = %v, want SendAt + retention = %v", first.ExpiresAt, want)
		}
		got, err := s.GetNotification(ctx, tn.ID, first.ID)
		if err != nil {
			t.Fatalf("GetNotification: %v", err)
		}
		if !reflect.DeepEqual(got, first) {
			t.Errorf("stored row differs from returned one:\n got %+v\nwant %+v", got, first)
		}
		if _, err := s.GetSubject(ctx, tn.ID, "subj-a"); err != nil {
			t.Errorf("subject row not created: %v", err)
		}

		changed := item(tn.ID, "a", sendAt)
		changed.RequestHash = "other"
		tests := []struct {
			name string
			in   store.Notification
			want store.CreateOutcome
		}{
			{"same key same request", item(tn.ID, "a", sendAt), store.Existing},
			{"same key other request", changed, store.Mismatch},
		}
		for _, tc := range tests {
			res, err := s.CreateNotifications(ctx, []store.Notification{tc.in})
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if res[0].Outcome != tc.want || res[0].Notification.ID != first.ID {
				t.Errorf("%s: outcome %v id %s, want %v id %s", tc.name, res[0].Outcome, res[0].Notification.ID, tc.want, first.ID)
			}
		}

		// Duplicates inside one call meet the earlier item of the call.
		b1, b2, b3 := item(tn.ID, "b", sendAt), item(tn.ID, "b", sendAt), item(tn.ID, "b", sendAt)
		b3.RequestHash = "different"
		res, err := s.CreateNotifications(ctx, []store.Notification{b1, b2, b3})
		if err != nil {
			t.Fatalf("batch with duplicates: %v", err)
		}
		if res[0].Outcome != store.Created || res[1].Outcome != store.Existing || res[2].Outcome != store.Mismatch {
			t.Errorf("outcomes %v %v %v, want Created Existing Mismatch", res[0].Outcome, res[1].Outcome, res[2].Outcome)
		}
		if res[1].Notification.ID != res[0].Notification.ID {
			t.Errorf("Existing points at %s, want %s", res[1].Notification.ID, res[0].Notification.ID)
		}

		// The same key in another tenant is a different notification.
		other, _ := storetest.NewTenant(t, s)
		if n := create(t, s, item(other.ID, "a", sendAt)); n.ID == first.ID {
			t.Errorf("other tenant got the same row")
		}

		if _, err := s.CreateNotifications(ctx, []store.Notification{item("tnt_missing", "x", sendAt)}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown tenant: err %v, want ErrNotFound", err)
		}
	})
}

func TestCreateNotificationsBatchOf1000(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		items := make([]store.Notification, 1000)
		for i := range items {
			items[i] = item(tn.ID, keyN(i), time.Now())
			items[i].SubjectID = fmt.Sprintf("subj-%d", i%10)
		}
		start := time.Now()
		res, err := s.CreateNotifications(ctx, items)
		if err != nil {
			t.Fatalf("CreateNotifications: %v", err)
		}
		t.Logf("1,000 items in %v", time.Since(start))
		ids := map[string]bool{}
		for i, r := range res {
			if r.Outcome != store.Created || r.Notification.IdempotencyKey != keyN(i) {
				t.Fatalf("item %d: outcome %v key %s", i, r.Outcome, r.Notification.IdempotencyKey)
			}
			ids[r.Notification.ID] = true
		}
		if len(ids) != 1000 {
			t.Errorf("%d distinct ids, want 1000", len(ids))
		}
		var rows int
		if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM notifications").Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows != 1000 {
			t.Errorf("%d rows stored, want 1000", rows)
		}
		// Replaying the batch stores nothing new.
		res, err = s.CreateNotifications(ctx, items)
		if err != nil {
			t.Fatalf("replay: %v", err)
		}
		for i, r := range res {
			if r.Outcome != store.Existing {
				t.Fatalf("replay item %d: outcome %v, want Existing", i, r.Outcome)
			}
		}
	})
}

func TestCreateNotificationsConcurrentSameKey(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		const workers = 10
		var wg sync.WaitGroup
		var created atomic.Int32
		ids := make([]string, workers)
		errs := make([]error, workers)
		for w := range workers {
			wg.Go(func() {
				// Several keys in opposite orders also checks for lock-order deadlocks.
				batch := []store.Notification{item(tn.ID, "k1", time.Now()), item(tn.ID, "k2", time.Now()), item(tn.ID, "k3", time.Now())}
				if w%2 == 1 {
					batch[0], batch[2] = batch[2], batch[0]
				}
				res, err := s.CreateNotifications(ctx, batch)
				if err != nil {
					errs[w] = err
					return
				}
				for _, r := range res {
					if r.Outcome == store.Created {
						created.Add(1)
					}
					if r.Notification.IdempotencyKey == "k2" {
						ids[w] = r.Notification.ID
					}
				}
			})
		}
		wg.Wait()
		for w, err := range errs {
			if err != nil {
				t.Fatalf("worker %d: %v", w, err)
			}
		}
		if created.Load() != 3 {
			t.Errorf("%d Created outcomes, want 3 (one per key)", created.Load())
		}
		for w := range ids {
			if ids[w] != ids[0] {
				t.Errorf("worker %d saw k2 as %s, worker 0 as %s", w, ids[w], ids[0])
			}
		}
	})
}

func TestGetNotificationTenantScope(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		a, _ := storetest.NewTenant(t, s)
		b, _ := storetest.NewTenant(t, s)
		n := create(t, s, item(a.ID, "x", time.Now()))
		tests := []struct {
			name, tenant, id string
			wantErr          error
		}{
			{"own", a.ID, n.ID, nil},
			{"other tenant", b.ID, n.ID, store.ErrNotFound},
			{"unknown id", a.ID, "ntf_missing", store.ErrNotFound},
		}
		for _, tc := range tests {
			_, err := s.GetNotification(ctx, tc.tenant, tc.id)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: err %v, want %v", tc.name, err, tc.wantErr)
			}
		}
		if _, err := s.CancelNotification(ctx, b.ID, n.ID, time.Now()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("cancel by other tenant: err %v, want ErrNotFound", err)
		}
		if _, err := s.GetNotificationByID(ctx, n.ID); err != nil {
			t.Errorf("GetNotificationByID: %v", err)
		}
	})
}

func TestClaimRace(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		now := time.Now()
		n := create(t, s, item(tn.ID, "race", now.Add(-time.Second)))
		const workers = 20
		var wg sync.WaitGroup
		var wins atomic.Int32
		errs := make(chan error, workers)
		for range workers {
			wg.Go(func() {
				got, ok, err := s.ClaimNotification(ctx, n.ID, now, now.Add(time.Minute))
				if err != nil {
					errs <- err
					return
				}
				if ok {
					wins.Add(1)
				}
				if got.Status != store.StatusSending {
					errs <- fmt.Errorf("claim returned status %s, want sending", got.Status)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if wins.Load() != 1 {
			t.Errorf("%d workers won the claim, want exactly 1", wins.Load())
		}
	})
}

func TestClaimNotification(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		now := time.Now()
		future := create(t, s, item(tn.ID, "future", now.Add(time.Hour)))
		due := create(t, s, item(tn.ID, "due", now.Add(-time.Minute)))

		if n, ok, err := s.ClaimNotification(ctx, future.ID, now, now.Add(time.Minute)); err != nil || ok || n.Status != store.StatusScheduled {
			t.Errorf("claim before send_at: ok %v status %s err %v, want not claimed", ok, n.Status, err)
		}
		lease := now.Add(time.Minute)
		n, ok, err := s.ClaimNotification(ctx, due.ID, now, lease)
		if err != nil || !ok {
			t.Fatalf("claim due: ok %v err %v", ok, err)
		}
		if n.Status != store.StatusSending || !n.ClaimedUntil.Equal(lease.Truncate(time.Millisecond)) {
			t.Errorf("claimed row: status %s lease %v, want sending until %v", n.Status, n.ClaimedUntil, lease)
		}
		if _, ok, err := s.ClaimNotification(ctx, due.ID, now, lease); ok || err != nil {
			t.Errorf("second claim: ok %v err %v, want ok=false", ok, err)
		}
		if _, _, err := s.ClaimNotification(ctx, "ntf_missing", now, lease); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("claim missing: err %v, want ErrNotFound", err)
		}
	})
}

func TestFinishAttempt(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		now := time.Now().UTC().Truncate(time.Millisecond)

		tests := []struct {
			name   string
			result store.AttemptResult
			check  func(t *testing.T, n store.Notification)
		}{
			{
				name: "sent",
				result: store.AttemptResult{Status: store.StatusSent, ProviderID: "SM1",
					Attempt: store.Attempt{Outcome: "sent", ProviderID: "SM1"}},
				check: func(t *testing.T, n store.Notification) {
					if n.ProviderID != "SM1" || !n.FinalAt.Equal(now) || !n.ExpiresAt.Equal(now.Add(tn.NotificationRetention)) {
						t.Errorf("sent row: provider %q final %v expires %v", n.ProviderID, n.FinalAt, n.ExpiresAt)
					}
				},
			},
			{
				name: "failed",
				result: store.AttemptResult{Status: store.StatusFailed, Reason: "smtp 550",
					Attempt: store.Attempt{Outcome: "failed", ErrorCode: "550"}},
				check: func(t *testing.T, n store.Notification) {
					if n.StatusReason != "smtp 550" || n.FinalAt.IsZero() || !n.ClaimedUntil.IsZero() {
						t.Errorf("failed row: reason %q final %v lease %v", n.StatusReason, n.FinalAt, n.ClaimedUntil)
					}
				},
			},
			{
				name:   "suppressed",
				result: store.AttemptResult{Status: store.StatusSuppressed, Reason: "no_consent:notify.sms"},
				check: func(t *testing.T, n store.Notification) {
					if n.StatusReason != "no_consent:notify.sms" || n.FinalAt.IsZero() {
						t.Errorf("suppressed row: reason %q final %v", n.StatusReason, n.FinalAt)
					}
				},
			},
			{
				name: "retry",
				result: store.AttemptResult{Status: store.StatusScheduled, Reason: "smtp 421", RetryAt: now.Add(time.Minute),
					Attempt: store.Attempt{Outcome: "retry", ErrorCode: "421"}},
				check: func(t *testing.T, n store.Notification) {
					if !n.SendAt.Equal(now.Add(time.Minute)) || !n.ClaimedUntil.IsZero() || !n.FinalAt.IsZero() {
						t.Errorf("retried row: send_at %v lease %v final %v", n.SendAt, n.ClaimedUntil, n.FinalAt)
					}
				},
			},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				n := create(t, s, item(tn.ID, tc.name, now.Add(-time.Second)))
				claim(t, s, n.ID, now)
				got, err := s.FinishAttempt(ctx, n.ID, now, tc.result)
				if err != nil {
					t.Fatalf("FinishAttempt: %v", err)
				}
				if got.Status != tc.result.Status {
					t.Errorf("status %s, want %s", got.Status, tc.result.Status)
				}
				if len(got.Attempts) != 1 || got.Attempts[0].N != 1 || got.Attempts[0].At.IsZero() {
					t.Errorf("attempts %+v, want one numbered 1 with a time", got.Attempts)
				}
				tc.check(t, got)
				stored, err := s.GetNotificationByID(ctx, n.ID)
				if err != nil || !reflect.DeepEqual(stored, got) {
					t.Errorf("stored row differs (err %v):\n got %+v\nwant %+v", err, stored, got)
				}
				// Not sending any more: a second finish is a conflict.
				cur, err := s.FinishAttempt(ctx, n.ID, now, tc.result)
				if !errors.Is(err, store.ErrConflict) || cur.ID != n.ID {
					t.Errorf("second finish: err %v row %q, want ErrConflict with the row", err, cur.ID)
				}
			})
		}

		n := create(t, s, item(tn.ID, "not-claimed", now))
		if _, err := s.FinishAttempt(ctx, n.ID, now, store.AttemptResult{Status: store.StatusSent}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("finish unclaimed: err %v, want ErrConflict", err)
		}
		if _, err := s.FinishAttempt(ctx, "ntf_missing", now, store.AttemptResult{Status: store.StatusSent}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("finish missing: err %v, want ErrNotFound", err)
		}
	})
}

func TestRetryThenSendKeepsAttempts(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		now := time.Now()
		n := create(t, s, item(tn.ID, "r", now))
		claim(t, s, n.ID, now)
		if _, err := s.FinishAttempt(ctx, n.ID, now, store.AttemptResult{Status: store.StatusScheduled, RetryAt: now,
			Attempt: store.Attempt{Outcome: "retry", Error: "timeout"}}); err != nil {
			t.Fatal(err)
		}
		due, err := s.DueNotifications(ctx, store.DueQuery{Before: now, Limit: 10})
		if err != nil || len(due) != 1 || due[0].Attempt != 1 {
			t.Fatalf("due after retry: %+v err %v, want one with Attempt 1", due, err)
		}
		claim(t, s, n.ID, now)
		got, err := s.FinishAttempt(ctx, n.ID, now, store.AttemptResult{Status: store.StatusSent, ProviderID: "<m@x>",
			Attempt: store.Attempt{Outcome: "sent", ProviderID: "<m@x>"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Attempts) != 2 || got.Attempts[0].Outcome != "retry" || got.Attempts[1].N != 2 || got.ProviderID != "<m@x>" {
			t.Errorf("attempts %+v provider %q", got.Attempts, got.ProviderID)
		}
	})
}

func TestCancelNotification(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		now := time.Now().UTC().Truncate(time.Millisecond)

		n := create(t, s, item(tn.ID, "c", now.Add(time.Hour)))
		got, err := s.CancelNotification(ctx, tn.ID, n.ID, now)
		if err != nil {
			t.Fatalf("cancel scheduled: %v", err)
		}
		if got.Status != store.StatusCancelled || !got.FinalAt.Equal(now) || !got.ExpiresAt.Equal(now.Add(tn.NotificationRetention)) {
			t.Errorf("cancelled row: status %s final %v expires %v", got.Status, got.FinalAt, got.ExpiresAt)
		}
		if cur, err := s.CancelNotification(ctx, tn.ID, n.ID, now); !errors.Is(err, store.ErrConflict) || cur.Status != store.StatusCancelled {
			t.Errorf("cancel twice: err %v status %s, want ErrConflict with cancelled row", err, cur.Status)
		}

		sent := create(t, s, item(tn.ID, "s", now))
		claim(t, s, sent.ID, now)
		if _, err := s.FinishAttempt(ctx, sent.ID, now, store.AttemptResult{Status: store.StatusSent}); err != nil {
			t.Fatal(err)
		}
		cur, err := s.CancelNotification(ctx, tn.ID, sent.ID, now)
		if !errors.Is(err, store.ErrConflict) || cur.Status != store.StatusSent {
			t.Errorf("cancel sent: err %v status %s, want ErrConflict with sent row", err, cur.Status)
		}
	})
}

func TestUpdateDeliveryStatus(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		now := time.Now().UTC().Truncate(time.Millisecond)
		later := now.Add(time.Minute)

		sent := func(key, sid string) store.Notification {
			n := create(t, s, item(tn.ID, key, now))
			claim(t, s, n.ID, now)
			n, err := s.FinishAttempt(ctx, n.ID, now, store.AttemptResult{Status: store.StatusSent, ProviderID: sid})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		sent("d", "SM-d")
		sent("u", "SM-u")

		got, err := s.UpdateDeliveryStatus(ctx, "SM-d", store.StatusDelivered, "", later)
		if err != nil || got.Status != store.StatusDelivered || !got.FinalAt.Equal(later) || !got.ExpiresAt.Equal(later.Add(tn.NotificationRetention)) {
			t.Errorf("delivered: status %s final %v expires %v err %v", got.Status, got.FinalAt, got.ExpiresAt, err)
		}
		if again, err := s.UpdateDeliveryStatus(ctx, "SM-d", store.StatusDelivered, "", later.Add(time.Hour)); err != nil || !again.UpdatedAt.Equal(got.UpdatedAt) {
			t.Errorf("repeated report: err %v updated %v, want a no-op", err, again.UpdatedAt)
		}
		if _, err := s.UpdateDeliveryStatus(ctx, "SM-d", store.StatusUndelivered, "30003", later); !errors.Is(err, store.ErrConflict) {
			t.Errorf("delivered → undelivered: err %v, want ErrConflict", err)
		}
		got, err = s.UpdateDeliveryStatus(ctx, "SM-u", store.StatusUndelivered, "twilio 30003", later)
		if err != nil || got.Status != store.StatusUndelivered || got.StatusReason != "twilio 30003" {
			t.Errorf("undelivered: status %s reason %q err %v", got.Status, got.StatusReason, err)
		}
		if _, err := s.UpdateDeliveryStatus(ctx, "SM-none", store.StatusDelivered, "", later); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown provider id: err %v, want ErrNotFound", err)
		}
		if _, err := s.UpdateDeliveryStatus(ctx, "", store.StatusDelivered, "", later); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("empty provider id: err %v, want ErrNotFound", err)
		}
		if _, err := s.UpdateDeliveryStatus(ctx, "SM-u", store.StatusSent, "", later); err == nil {
			t.Errorf("status sent accepted as a delivery report")
		}

		sending := create(t, s, item(tn.ID, "sending", now))
		claim(t, s, sending.ID, now)
		if _, err := s.DB().ExecContext(ctx, "UPDATE notifications SET provider_id = 'SM-early' WHERE id = '"+sending.ID+"'"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateDeliveryStatus(ctx, "SM-early", store.StatusDelivered, "", later); !errors.Is(err, store.ErrConflict) {
			t.Errorf("report on a sending row: err %v, want ErrConflict", err)
		}
	})
}

func TestDueStaleAndInterrupted(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		now := time.Now().UTC().Truncate(time.Millisecond)

		d2 := create(t, s, item(tn.ID, "due2", now.Add(-time.Minute)))
		d1 := create(t, s, item(tn.ID, "due1", now.Add(-2*time.Minute)))
		create(t, s, item(tn.ID, "future", now.Add(time.Hour)))
		stale := create(t, s, item(tn.ID, "stale", now.Add(-3*time.Minute)))
		fresh := create(t, s, item(tn.ID, "fresh", now.Add(-3*time.Minute)))
		if _, ok, err := s.ClaimNotification(ctx, stale.ID, now.Add(-2*time.Minute), now.Add(-time.Minute)); !ok || err != nil {
			t.Fatalf("claim stale: %v %v", ok, err)
		}
		claim(t, s, fresh.ID, now)

		due, err := s.DueNotifications(ctx, store.DueQuery{Before: now, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(due) != 2 || due[0].ID != d1.ID || due[1].ID != d2.ID || due[0].TenantID != tn.ID || due[0].Attempt != 0 || !due[0].SendAt.Equal(d1.SendAt) {
			t.Errorf("due = %+v, want due1 then due2", due)
		}
		first, _ := s.DueNotifications(ctx, store.DueQuery{Before: now, Limit: 1})
		if len(first) != 1 || first[0].ID != d1.ID {
			t.Fatalf("limit 1 gave %+v, want due1", first)
		}
		next, _ := s.DueNotifications(ctx, store.DueQuery{Before: now, Limit: 1, After: first[0]})
		if len(next) != 1 || next[0].ID != d2.ID {
			t.Errorf("page after due1 = %+v, want due2", next)
		}
		if rest, _ := s.DueNotifications(ctx, store.DueQuery{Before: now, Limit: 1, After: next[0]}); len(rest) != 0 {
			t.Errorf("page after due2 = %+v, want none", rest)
		}
		// Rows written at or after UntouchedBefore are left to whoever wrote
		// them (due2 was written first).
		if recent, _ := s.DueNotifications(ctx, store.DueQuery{Before: now, UntouchedBefore: d2.UpdatedAt, Limit: 10}); len(recent) != 0 {
			t.Errorf("untouched filter gave %+v, want none (both rows were written at or after it)", recent)
		}
		if all, _ := s.DueNotifications(ctx, store.DueQuery{Before: now, UntouchedBefore: d1.UpdatedAt.Add(time.Hour), Limit: 10}); len(all) != 2 {
			t.Errorf("untouched filter in the future gave %d rows, want 2", len(all))
		}

		ids, err := s.StaleSending(ctx, now, 10)
		if err != nil || len(ids) != 1 || ids[0] != stale.ID {
			t.Errorf("stale = %v err %v, want [%s]", ids, err, stale.ID)
		}

		if _, err := s.MarkInterrupted(ctx, fresh.ID, now); !errors.Is(err, store.ErrConflict) {
			t.Errorf("interrupt a live lease: err %v, want ErrConflict", err)
		}
		if _, err := s.MarkInterrupted(ctx, d1.ID, now); !errors.Is(err, store.ErrConflict) {
			t.Errorf("interrupt a scheduled row: err %v, want ErrConflict", err)
		}
		got, err := s.MarkInterrupted(ctx, stale.ID, now)
		if err != nil {
			t.Fatalf("MarkInterrupted: %v", err)
		}
		if got.Status != store.StatusFailed || got.StatusReason != store.ReasonOutcomeUnknown || !got.NeedsReconciliation ||
			len(got.Attempts) != 1 || got.Attempts[0].Outcome != store.AttemptInterrupted || !got.FinalAt.Equal(now) {
			t.Errorf("interrupted row: %+v", got)
		}
		if ids, _ := s.StaleSending(ctx, now, 10); len(ids) != 0 {
			t.Errorf("stale after interrupt = %v, want none", ids)
		}
	})
}
