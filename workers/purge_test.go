package workers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	"github.com/termind/termind/queue"
	"github.com/termind/termind/queue/queuetest"
)

func TestPurgerDeletesExpired(t *testing.T) {
	t.Parallel()
	redisURL := queuetest.RedisURL(t)
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			qn := "purge-" + dialect
			r, client := openQueue(t, redisURL, qn)
			e := newEnv(t, dialect, client)

			done := e.create(nil)
			if err := e.notifier(nil).Deliver(ctx, done.ID); err != nil {
				t.Fatal(err)
			}
			sentRow := e.waitStatus(done.ID, store.StatusSent)
			pending := e.create(func(n *store.Notification) { n.SendAt = time.Now().Add(time.Hour) })

			// An archived task (ran out of retries) to be cleaned up.
			if err := client.EnqueueNotification(ctx, "gone", 0, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			ai := asynq.NewInspector(r.ConnOpt())
			defer ai.Close()
			if err := ai.ArchiveTask(qn, queue.NotifyTaskID("gone", 0)); err != nil {
				t.Fatalf("archive: %v", err)
			}
			in := queue.NewInspector(r, qn)
			defer in.Close()

			after := sentRow.ExpiresAt.Add(time.Minute)
			p := NewPurger(PurgerConfig{Store: e.store, Archive: in, Now: func() time.Time { return after }, Logger: testLogger(t)})

			rep, err := p.Purge(ctx, true)
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if rep.Notifications != 1 {
				t.Errorf("dry run counted %d, want 1", rep.Notifications)
			}
			e.get(done.ID) // still there
			if sz, _ := in.Sizes(ctx); sz.Archived != 1 {
				t.Errorf("dry run touched the queue: %+v", sz)
			}

			// Through the queue, as the scheduler triggers it.
			startWorker(t, r, qn, nil, nil, p)
			if _, err := asynq.NewClient(r.ConnOpt()).EnqueueContext(ctx, asynq.NewTask(queue.TypeRetentionPurge, nil), asynq.Queue(qn)); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(15 * time.Second)
			for {
				_, err := e.store.GetNotificationByID(ctx, done.ID)
				if errors.Is(err, store.ErrNotFound) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("expired notification still there: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if got := e.get(pending.ID); got.Status != store.StatusScheduled {
				t.Errorf("unexpired notification = %s", got.Status)
			}
			deadline = time.Now().Add(5 * time.Second)
			for {
				sz, err := in.Sizes(ctx)
				if err == nil && sz.Archived == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("archived tasks left: %+v %v", sz, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			stats, err := e.store.DeliveryStats(ctx, e.tenant.ID)
			if err != nil || len(stats) == 0 {
				t.Errorf("delivery stats = %v, %v; want the purged row counted", stats, err)
			}
		})
	}
}

// A connection broken for longer than the tenant's window is revoked by
// the purge, and its cleanup goes to the queue.
func TestPurgerRevokesBrokenConnections(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			e := newRevokeEnv(t, dialect)
			ctx := testCtx(t)
			c := e.connectCalDAV("https://dav.example.org/cal/", "pw", false)
			if _, err := e.store.SetConnectionState(ctx, c.ID, store.ConnBroken, "invalid_grant", "system"); err != nil {
				t.Fatal(err)
			}
			rec := &revokeRecorder{}
			later := time.Now().Add(31 * store.Day)
			p := NewPurger(PurgerConfig{Store: e.store, Revokes: rec, Now: func() time.Time { return later }, Logger: testLogger(t)})
			if rep, err := p.Purge(ctx, true); err != nil || rep.ConnectionsRevoked != 1 || len(rec.enqueued()) != 0 {
				t.Fatalf("dry run: %+v, %v, enqueued %v", rep, err, rec.enqueued())
			}
			rep, err := p.Purge(ctx, false)
			if err != nil || rep.ConnectionsRevoked != 1 {
				t.Fatalf("purge: %+v, %v", rep, err)
			}
			if got := rec.enqueued(); len(got) != 1 || got[0] != c.ID {
				t.Errorf("enqueued %v, want [%s]", got, c.ID)
			}
			if got, err := e.store.GetConnection(ctx, e.tenant.ID, c.ID); err != nil || got.State != store.ConnRevoking {
				t.Errorf("connection after the purge: %+v, %v", got, err)
			}
		})
	}
}

// The hourly purge erases a tenant once its offboarding grace period ends.
func TestPurgerErasesOffboardedTenants(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s := storetest.New(t, dialect)
			tn, _ := storetest.NewTenant(t, s)
			if _, err := s.RecordConsent(ctx, store.Consent{TenantID: tn.ID, SubjectID: "cust-1", Purpose: store.ConsentNotifySMS,
				Decision: store.DecisionGranted}); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if _, err := s.BeginOffboarding(ctx, tn.ID, store.OffboardRequest{Actor: "cli", Now: start}); err != nil {
				t.Fatal(err)
			}
			now := start
			p := NewPurger(PurgerConfig{Store: s, Now: func() time.Time { return now }, Logger: testLogger(t)})
			if _, err := p.Purge(ctx, false); err != nil {
				t.Fatal(err)
			}
			if l, err := s.ListConsents(ctx, tn.ID, "cust-1"); err != nil || len(l) != 1 {
				t.Fatalf("ledger within the grace period: %d entries, %v", len(l), err)
			}
			now = start.Add(store.DefaultOffboardingGrace + time.Minute)
			if _, err := p.Purge(ctx, false); err != nil {
				t.Fatal(err)
			}
			if l, err := s.ListConsents(ctx, tn.ID, "cust-1"); err != nil || len(l) != 0 {
				t.Errorf("ledger after the grace period: %d entries, %v", len(l), err)
			}
			if o, err := s.GetOffboarding(ctx, tn.ID); err != nil || o.PurgedAt.IsZero() {
				t.Errorf("offboarding after purge: %+v, %v", o, err)
			}
		})
	}
}
