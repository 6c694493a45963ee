package store_test

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// setExpiry moves rows' expires_at (and created_at, for the stats day) directly.
func setExpiry(t *testing.T, s *store.Store, id string, created, expires time.Time) {
	t.Helper()
	q := "UPDATE notifications SET created_at = ?, created_day = ?, expires_at = ? WHERE id = ?"
	if s.Dialect() == store.DialectPostgres {
		q = "UPDATE notifications SET created_at = $1, created_day = $2, expires_at = $3 WHERE id = $4"
	}
	if _, err := s.DB().ExecContext(testCtx(t), q, created.UnixMilli(), created.UTC().Format("2006-01-02"), expires.UnixMilli(), id); err != nil {
		t.Fatalf("set expiry: %v", err)
	}
}

func countRows(t *testing.T, s *store.Store) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRowContext(testCtx(t), "SELECT count(*) FROM notifications").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPurgeExpired(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		a, _ := storetest.NewTenant(t, s)
		b, _ := storetest.NewTenant(t, s)
		now := time.Now().UTC().Truncate(time.Millisecond)
		day1 := time.Date(2026, 1, 10, 23, 59, 0, 0, time.UTC)
		day2 := day1.Add(2 * time.Minute) // the next UTC day

		// 23 expired rows over two tenants, two days, two channels and
		// statuses; 5 live ones that must stay.
		var expired []string
		var live []string
		for i := range 28 {
			tn := a
			if i%3 == 0 {
				tn = b
			}
			n := item(tn.ID, fmt.Sprintf("p-%02d", i), now.Add(-time.Hour))
			if i%2 == 0 {
				n.Channel = store.ChannelSMS
			}
			n = create(t, s, n)
			if i%4 == 0 {
				claim(t, s, n.ID, now)
				if _, err := s.FinishAttempt(ctx, n.ID, now, store.AttemptResult{Status: store.StatusSent}); err != nil {
					t.Fatal(err)
				}
			}
			created := day1
			if i%5 == 0 {
				created = day2
			}
			switch {
			case i >= 23:
				setExpiry(t, s, n.ID, created, now.Add(time.Millisecond))
				live = append(live, n.ID)
			default:
				setExpiry(t, s, n.ID, created, now.Add(-time.Duration(i)*time.Minute))
				expired = append(expired, n.ID)
			}
		}

		// What the stats should say, computed from the rows themselves.
		want := map[string]map[store.DeliveryStat]int64{}
		for _, id := range expired {
			n, err := s.GetNotificationByID(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			k := store.DeliveryStat{TenantID: n.TenantID, Day: day1.Format("2006-01-02"), Channel: n.Channel, Template: n.Template, Status: n.Status}
			if n.CreatedAt.Equal(day2) {
				k.Day = day2.Format("2006-01-02")
			}
			if want[n.TenantID] == nil {
				want[n.TenantID] = map[store.DeliveryStat]int64{}
			}
			want[n.TenantID][k]++
		}

		dry, err := s.PurgeExpired(ctx, now, 5, true)
		if err != nil {
			t.Fatal(err)
		}
		if dry.Notifications != 23 || dry.Batches != 5 || countRows(t, s) != 28 {
			t.Errorf("dry run: %+v with %d rows left; want 23 in 5 batches and nothing deleted", dry, countRows(t, s))
		}
		if st, _ := s.DeliveryStats(ctx, a.ID); len(st) != 0 {
			t.Errorf("dry run wrote stats: %+v", st)
		}

		rep, err := s.PurgeExpired(ctx, now, 5, false)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Notifications != 23 || rep.Batches != 5 {
			t.Errorf("purge: %+v, want 23 rows in 5 batches", rep)
		}
		for _, id := range expired {
			if _, err := s.GetNotificationByID(ctx, id); err == nil {
				t.Errorf("expired %s still there", id)
			}
		}
		for _, id := range live {
			if _, err := s.GetNotificationByID(ctx, id); err != nil {
				t.Errorf("live %s: %v", id, err)
			}
		}
		for _, tn := range []store.Tenant{a, b} {
			got, err := s.DeliveryStats(ctx, tn.ID)
			if err != nil {
				t.Fatal(err)
			}
			gotMap := map[store.DeliveryStat]int64{}
			for _, st := range got {
				c := st.Count
				st.Count = 0
				gotMap[st] = c
			}
			if !reflect.DeepEqual(gotMap, want[tn.ID]) {
				t.Errorf("stats of %s:\n got %v\nwant %v", tn.ID, gotMap, want[tn.ID])
			}
		}

		// A second run finds nothing; a later one purges the rest and adds
		// to the existing counters.
		if rep, err := s.PurgeExpired(ctx, now, 5, false); err != nil || rep.Notifications != 0 || rep.Batches != 1 {
			t.Errorf("second purge: %+v, %v; want nothing", rep, err)
		}
		before := sumStats(t, s, a.ID) + sumStats(t, s, b.ID)
		if rep, err := s.PurgeExpired(ctx, now.Add(time.Second), 0, false); err != nil || rep.Notifications != 5 {
			t.Errorf("later purge: %+v, %v; want the 5 remaining", rep, err)
		}
		if after := sumStats(t, s, a.ID) + sumStats(t, s, b.ID); after != before+5 {
			t.Errorf("stats total %d after the later purge, want %d", after, before+5)
		}
		if countRows(t, s) != 0 {
			t.Errorf("%d rows left", countRows(t, s))
		}
	})
}

func sumStats(t *testing.T, s *store.Store, tenantID string) int64 {
	t.Helper()
	st, err := s.DeliveryStats(testCtx(t), tenantID)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, d := range st {
		n += d.Count
	}
	return n
}

// Purging while notifications are being created must neither fail nor
// touch the new rows.
func TestPurgeWhileInserting(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		now := time.Now()
		items := make([]store.Notification, 500)
		for i := range items {
			items[i] = item(tn.ID, keyN(i), now.Add(-2*tn.NotificationRetention))
		}
		if _, err := s.CreateNotifications(ctx, items); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var insertErr error
		inserted := 0
		wg.Go(func() {
			for i := range 20 {
				batch := []store.Notification{item(tn.ID, fmt.Sprintf("live-%d-a", i), now), item(tn.ID, fmt.Sprintf("live-%d-b", i), now)}
				if _, err := s.CreateNotifications(ctx, batch); err != nil {
					insertErr = err
					return
				}
				inserted += len(batch)
			}
		})
		rep, err := s.PurgeExpired(ctx, now, 50, false)
		wg.Wait()
		if err != nil || insertErr != nil {
			t.Fatalf("purge err %v, insert err %v", err, insertErr)
		}
		if rep.Notifications != 500 || rep.Batches != 11 {
			t.Errorf("purge: %+v, want 500 rows in 11 batches", rep)
		}
		if got := countRows(t, s); got != inserted {
			t.Errorf("%d rows left, want the %d live ones", got, inserted)
		}
	})
}

// Two handles on one SQLite file (a CLI beside the daemon) or one
// PostgreSQL database: concurrent writers wait for each other instead of
// failing with "database is locked".
func TestConcurrentWritersAcrossHandles(t *testing.T) {
	t.Parallel()
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			url := storetest.URL(t, d)
			first := storetest.Open(t, url)
			if err := first.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			second := storetest.Open(t, url)
			tn, _ := storetest.NewTenant(t, first)
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for w := range 8 {
				s := first
				if w%2 == 1 {
					s = second
				}
				wg.Go(func() {
					for i := range 10 {
						batch := make([]store.Notification, 20)
						for j := range batch {
							batch[j] = item(tn.ID, fmt.Sprintf("w%d-%d-%d", w, i, j), time.Now())
						}
						if _, err := s.CreateNotifications(ctx, batch); err != nil {
							errs <- err
							return
						}
						if _, err := s.RecordConsent(ctx, store.Consent{TenantID: tn.ID, SubjectID: "p", Purpose: store.ConsentNotifySMS, Decision: store.DecisionGranted}); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if got := countRows(t, first); got != 8*10*20 {
				t.Errorf("%d rows, want %d", got, 8*10*20)
			}
		})
	}
}

func TestPurgeExpiredProgress(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		now := time.Now().UTC().Truncate(time.Millisecond)
		for i := range 5 {
			n := create(t, s, item(tn.ID, fmt.Sprintf("progress-%d", i), now.Add(-time.Hour)))
			setExpiry(t, s, n.ID, now.Add(-48*time.Hour), now.Add(-time.Minute))
		}
		var steps []string
		rep, err := s.PurgeExpiredProgress(ctx, now, 2, func(step string, r store.PurgeReport) {
			steps = append(steps, fmt.Sprintf("%s %d/%d", step, r.Batches, r.Notifications))
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"notifications 1/2", "notifications 2/4", "notifications 3/5", "audit 3/5", "oauth_states 3/5"}
		if !reflect.DeepEqual(steps, want) || rep.Notifications != 5 || countRows(t, s) != 0 {
			t.Fatalf("steps %v, report %+v, %d rows left; want %v and nothing left", steps, rep, countRows(t, s), want)
		}
	})
}
