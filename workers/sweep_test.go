package workers

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	"github.com/termind/termind/queue"
	"github.com/termind/termind/queue/queuetest"
)

// Losing Redis loses nothing: after a FLUSHDB the sweeper re-enqueues what
// the store says is due, and each notification is then sent once.
func TestSweeperRecoversAfterRedisLoss(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			// FLUSHDB wipes the whole database: this test gets its own.
			redisURL := queuetest.RedisURL(t)
			ctx := context.Background()
			const qn = "sweep"
			r, client := openQueue(t, redisURL, qn)
			e := newEnv(t, dialect, client)

			var due []store.Notification
			for range 5 {
				n := e.create(nil)
				if err := client.EnqueueNotification(ctx, n.ID, 0, n.SendAt); err != nil {
					t.Fatal(err)
				}
				due = append(due, n)
			}
			later := e.create(func(n *store.Notification) { n.SendAt = time.Now().Add(time.Hour) })

			opt, err := redis.ParseURL(redisURL)
			if err != nil {
				t.Fatal(err)
			}
			rc := redis.NewClient(opt)
			defer rc.Close()
			if err := rc.FlushDB(ctx).Err(); err != nil {
				t.Fatalf("flushdb: %v", err)
			}
			in := queue.NewInspector(r, qn)
			defer in.Close()
			if sz, err := in.Sizes(ctx); err != nil || sz != (queue.Sizes{}) {
				t.Fatalf("queue after flush = %+v, %v; want empty", sz, err)
			}

			// Rows written within the grace period are left alone: whoever
			// wrote them enqueued them.
			patient := NewSweeper(SweeperConfig{Store: e.store, Queue: client, Grace: time.Hour, Logger: testLogger(t)})
			if rep, err := patient.Sweep(ctx); err != nil || rep.Enqueued != 0 {
				t.Fatalf("sweep within grace: %+v %v, want nothing enqueued", rep, err)
			}

			time.Sleep(20 * time.Millisecond)
			sw := NewSweeper(SweeperConfig{Store: e.store, Queue: client, BatchSize: 2, Grace: 10 * time.Millisecond, Logger: testLogger(t)})
			rep, err := sw.Sweep(ctx)
			if err != nil {
				t.Fatalf("sweep: %v", err)
			}
			if rep.Enqueued != len(due) {
				t.Errorf("enqueued %d, want %d (paging with batch size 2)", rep.Enqueued, len(due))
			}
			sz, err := in.Sizes(ctx)
			if err != nil || sz.Pending != len(due) {
				t.Errorf("queue = %+v, %v; want %d pending", sz, err, len(due))
			}
			// A second sweep before the workers run adds nothing.
			if _, err := sw.Sweep(ctx); err != nil {
				t.Fatalf("second sweep: %v", err)
			}
			if sz2, _ := in.Sizes(ctx); sz2.Pending != len(due) {
				t.Errorf("after second sweep pending = %d, want %d", sz2.Pending, len(due))
			}

			startWorker(t, r, qn, e.notifier(nil), sw, nil)
			for _, n := range due {
				e.waitStatus(n.ID, store.StatusSent)
			}
			// And sweeping again after they went out sends nothing twice.
			if _, err := sw.Sweep(ctx); err != nil {
				t.Fatalf("third sweep: %v", err)
			}
			time.Sleep(300 * time.Millisecond)
			var ids []string
			for _, s := range e.mail.sends() {
				ids = append(ids, s.mail.ID)
			}
			slices.Sort(ids)
			var want []string
			for _, n := range due {
				want = append(want, n.ID)
			}
			slices.Sort(want)
			if !slices.Equal(ids, want) {
				t.Errorf("sent %v, want each due one once: %v", ids, want)
			}
			if got := e.get(later.ID); got.Status != store.StatusScheduled {
				t.Errorf("future notification = %s, want still scheduled", got.Status)
			}
		})
	}
}

func TestSweeperInterruptsStaleSending(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			q := &enqueueRecorder{}
			e := newEnv(t, dialect, q)
			stale := e.create(nil)
			live := e.create(nil)
			now := time.Now()
			for _, c := range []struct {
				id    string
				lease time.Duration
			}{{stale.ID, time.Millisecond}, {live.ID, time.Hour}} {
				if _, ok, err := e.store.ClaimNotification(ctx, c.id, now, now.Add(c.lease)); err != nil || !ok {
					t.Fatalf("claim: %v %v", ok, err)
				}
			}
			time.Sleep(10 * time.Millisecond)

			rep, err := NewSweeper(SweeperConfig{Store: e.store, Queue: q, Logger: testLogger(t)}).Sweep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Interrupted != 1 || rep.Enqueued != 0 {
				t.Errorf("report = %+v, want 1 interrupted, 0 enqueued", rep)
			}
			if got := e.get(stale.ID); got.Status != store.StatusFailed || !got.NeedsReconciliation {
				t.Errorf("stale row = %s reconcile=%v", got.Status, got.NeedsReconciliation)
			}
			if got := e.get(live.ID); got.Status != store.StatusSending {
				t.Errorf("live row = %s, want still sending", got.Status)
			}
			if len(q.ids()) != 0 {
				t.Errorf("enqueued %v", q.ids())
			}
		})
	}
}
