package store_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// BenchmarkPurgePostgres purges TERMIND_BENCH_PURGE_ROWS (default 1,000,000)
// expired notifications in batches of 10,000 while another goroutine keeps
// creating live ones, as the hourly purge does in production.
//
//	go test -run '^$' -bench BenchmarkPurgePostgres -benchtime 1x ./internal/store/
func BenchmarkPurgePostgres(b *testing.B) {
	rows := 1_000_000
	if v := os.Getenv("TERMIND_BENCH_PURGE_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("TERMIND_BENCH_PURGE_ROWS=%q: want a positive number", v)
		}
		rows = n
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := storetest.New(b, store.DialectPostgres)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		tn, _ := storetest.NewTenant(b, s)
		now := time.Now()
		seedExpired(ctx, b, s, tn.ID, rows, now)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		var inserted atomic.Int64
		var insertErr atomic.Value
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				batch := make([]store.Notification, 10)
				for k := range batch {
					batch[k] = item(tn.ID, fmt.Sprintf("live-%d-%d", j, k), now.Add(time.Hour))
				}
				if _, err := s.CreateNotifications(ctx, batch); err != nil {
					insertErr.Store(err)
					return
				}
				inserted.Add(int64(len(batch)))
			}
		})

		b.StartTimer()
		start := time.Now()
		rep, err := s.PurgeExpired(ctx, now, store.DefaultPurgeBatch, false)
		elapsed := time.Since(start)
		b.StopTimer()
		close(stop)
		wg.Wait()
		cancel()
		if err != nil {
			b.Fatalf("PurgeExpired: %v", err)
		}
		if err, _ := insertErr.Load().(error); err != nil {
			b.Fatalf("concurrent insert: %v", err)
		}
		if rep.Notifications != int64(rows) {
			b.Fatalf("purged %d rows, want %d", rep.Notifications, rows)
		}
		b.ReportMetric(elapsed.Seconds(), "purge_s")
		b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
		b.ReportMetric(float64(inserted.Load()), "inserts_during_purge")
		b.ReportMetric(float64(rep.Batches), "batches")
	}
}

// seedExpired writes n expired notifications in one INSERT … SELECT and
// analyses the table, as autovacuum would have by the time a purge runs.
func seedExpired(ctx context.Context, b *testing.B, s *store.Store, tenantID string, n int, now time.Time) {
	b.Helper()
	created := now.Add(-40 * 24 * time.Hour).UnixMilli()
	_, err := s.DB().ExecContext(ctx, `INSERT INTO notifications (id, tenant_id, subject_id, idempotency_key,
		request_hash, purpose, channel, recipient, locale, template, data, status, send_at, attempts,
		created_at, created_day, updated_at, final_at, expires_at)
	SELECT 'ntf_bench' || lpad(g::text, 10, '0'), $1, 'subj-' || (g % 5000), 'bench-' || g,
		'h', 'transactional', CASE WHEN g % 3 = 0 THEN 'sms' ELSE 'email' END, 'person@example.org', 'en',
		CASE WHEN g % 2 = 0 THEN 'confirmation' ELSE 'reminder' END, '{}',
		CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'delivered' END,
		$2::bigint - (g % 7) * 86400000, '[]',
		$2::bigint - (g % 7) * 86400000,
		to_char(to_timestamp(($2::bigint - (g % 7) * 86400000) / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
		$3::bigint - g, $3::bigint - g, $3::bigint - g
	FROM generate_series(1, $4::int) AS g`, tenantID, created, now.UnixMilli()-1000, n)
	if err != nil {
		b.Fatalf("seed: %v", err)
	}
	if _, err := s.DB().ExecContext(ctx, "ANALYZE notifications"); err != nil {
		b.Fatalf("analyze: %v", err)
	}
}
