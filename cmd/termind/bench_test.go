package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/connectors/google/googletest"
	"github.com/termind/termind/connectors/mail/mailtest"
	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/queue"
	"github.com/termind/termind/queue/queuetest"
)

// The throughput benchmarks of docs/PERFORMANCE.md. Run them in one go so
// that both figures come from the same machine state:
//
//	go test ./cmd/termind -run '^$' -bench 'EndToEndMail|AsynqNoop' -benchtime 20000x -timeout 30m
//
// b.N is the number of mails (or tasks); the reported "mails/s" and
// "tasks/s" are what docs/PERFORMANCE.md compares.

const benchBatch = 1000

func BenchmarkEndToEndMail(b *testing.B) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		b.Run(dialect, func(b *testing.B) { benchmarkMail(b, dialect, postBatches) })
	}
}

// BenchmarkEndToEndMailSingle is the same with one POST /v1/notifications
// per mail (16 concurrent clients): every mail is its own notify:send task.
func BenchmarkEndToEndMailSingle(b *testing.B) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		b.Run(dialect, func(b *testing.B) { benchmarkMail(b, dialect, postSingles) })
	}
}

func benchmarkMail(b *testing.B, dialect string, post func(*testing.B, *stack, []map[string]any, int)) {
	sink := mailtest.StartSink(b)
	st := newStack(b, dialect, func(c *config.Config) {
		c.SMTPURL = sink.URL()
		c.SweepInterval = 5 * time.Second
	})
	items := make([]map[string]any, b.N)
	for i := range items {
		items[i] = mailRequest(fmt.Sprintf("bench-%d", i))
	}
	b.ResetTimer()
	start := time.Now()
	post(b, st, items, 4)
	b.Logf("accepted after %v, delivered so far %d", time.Since(start), sink.Count())
	deadline := time.Now().Add(10 * time.Minute)
	for sink.Count() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d mails arrived", sink.Count(), b.N)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "mails/s")
}

// postSingles submits items one request each from 4×clients goroutines.
func postSingles(b *testing.B, st *stack, items []map[string]any, clients int) {
	b.Helper()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range 4 * clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(items)); i = next.Add(1) - 1 {
				if code := st.do("POST", "/v1/notifications", items[i], nil); code != http.StatusAccepted {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d items were not accepted", n)
	}
}

// postBatches submits items through the batch endpoint from several
// concurrent clients, as a booking system with a backlog would.
func postBatches(b *testing.B, st *stack, items []map[string]any, clients int) {
	b.Helper()
	batches := make(chan []map[string]any)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range batches {
				var res struct {
					Items []struct {
						StatusCode int `json:"status_code"`
					} `json:"items"`
				}
				if code := st.do("POST", "/v1/notifications/batch", map[string]any{"items": batch}, &res); code != http.StatusOK {
					failed.Add(int64(len(batch)))
					continue
				}
				for _, it := range res.Items {
					if it.StatusCode != http.StatusAccepted {
						failed.Add(1)
					}
				}
			}
		}()
	}
	for i := 0; i < len(items); i += benchBatch {
		batches <- items[i:min(i+benchBatch, len(items))]
	}
	close(batches)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d items were not accepted", n)
	}
}

// BenchmarkAsynqNoop is the floor: asynq moving no-op tasks through the same
// Redis with the same worker concurrency as the daemon.
func BenchmarkAsynqNoop(b *testing.B) {
	cfg, err := config.Load(config.FromMap(nil))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	r, err := queue.OpenRedis(ctx, queuetest.RedisURL(b), discardLogger())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	const queueName = "noop"
	var done atomic.Int64
	srv := queue.NewServer(r, queueName, cfg.Concurrency, discardLogger())
	mux := asynq.NewServeMux()
	mux.HandleFunc("noop", func(context.Context, *asynq.Task) error { done.Add(1); return nil })
	if err := srv.Start(mux); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	client := asynq.NewClientFromRedisClient(r.Client())
	defer client.Close()

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				payload := fmt.Appendf(nil, `{"id":"%d"}`, i)
				if _, err := client.EnqueueContext(ctx, asynq.NewTask("noop", payload), asynq.Queue(queueName), asynq.TaskID(fmt.Sprint("noop:", i))); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Minute)
	for done.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d tasks ran", done.Load(), b.N)
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tasks/s")
}

// BenchmarkGooglePushToBusy measures push-to-busy-visible latency: from a
// change in the Google calendar (the fake notifies our webhook at once) to
// the event showing in GET /v1/subjects/{id}/busy. One op is one new
// event; the debounce is the configured TERMIND_GOOGLE_PUSH_DEBOUNCE.
//
//	go test ./cmd/termind -run '^$' -bench GooglePushToBusy -benchtime 10x
func BenchmarkGooglePushToBusy(b *testing.B) {
	for _, debounce := range []time.Duration{2 * time.Second, 100 * time.Millisecond} {
		b.Run("debounce="+debounce.String(), func(b *testing.B) {
			g := googletest.Start(b)
			g.AddCalendar(googleCalendar)
			st := newStack(b, "postgres", withGoogle(g), func(c *config.Config) { c.GooglePushDebounce = debounce })
			connID := connectGoogle(b, st, g, "anna", "calendar.read.busy", "calendar.write")
			waitFor(b, 15*time.Second, "the first sync", func() bool { return !st.connection(connID).LastSyncAt.IsZero() })
			base := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Hour)
			from, to := base.Add(-time.Hour).Format(time.RFC3339), base.Add(30*24*time.Hour).Format(time.RFC3339)
			var busy struct{ Items []struct{ Start string } }
			i := 0
			for b.Loop() {
				g.PutEvent(googleCalendar, googleEvent(fmt.Sprintf("bench%d", i), base.Add(time.Duration(i)*2*time.Hour), time.Hour))
				i++
				for {
					st.do("GET", "/v1/subjects/anna/busy?from="+from+"&to="+to, nil, &busy)
					if len(busy.Items) >= i {
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
}
