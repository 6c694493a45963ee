package queue

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/queue/queuetest"
)

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func openRedis(t *testing.T, url string) *Redis {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := OpenRedis(ctx, url, testLogger(t))
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("close redis: %v", err)
		}
	})
	return r
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type ran struct {
	payload NotifyPayload
	taskID  string
	at      time.Time
}

// startServer runs a server on queueName whose notify:send handler records
// what it ran.
func startServer(t *testing.T, r *Redis, queueName string) (runs func() []ran) {
	t.Helper()
	var mu sync.Mutex
	var got []ran
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypeNotifySend, func(ctx context.Context, task *asynq.Task) error {
		p, err := ParseNotifyPayload(task.Payload())
		if err != nil {
			return err
		}
		id, _ := asynq.GetTaskID(ctx)
		mu.Lock()
		got = append(got, ran{payload: p, taskID: id, at: time.Now()})
		mu.Unlock()
		return nil
	})
	srv := NewServer(r, queueName, 4, testLogger(t))
	if err := srv.Start(mux); err != nil {
		t.Fatalf("server start: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return func() []ran {
		mu.Lock()
		defer mu.Unlock()
		return append([]ran(nil), got...)
	}
}

func newClient(t *testing.T, r *Redis, queueName string) *Client {
	t.Helper()
	c := NewClient(r, queueName)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestEmbeddedRedisRunsImmediateAndScheduledTasks(t *testing.T) {
	t.Parallel()
	r := openRedis(t, "")
	if !r.Embedded() {
		t.Fatal("empty url should start the embedded server")
	}
	runs := startServer(t, r, DefaultQueue)
	c := newClient(t, r, DefaultQueue)
	ctx := context.Background()

	if err := c.EnqueueNotification(ctx, "n-now", 0, time.Time{}); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	runAt := time.Now().Add(1500 * time.Millisecond)
	if err := c.EnqueueNotification(ctx, "n-later", 3, runAt); err != nil {
		t.Fatalf("enqueue scheduled: %v", err)
	}

	eventually(t, 15*time.Second, "both tasks to run", func() bool { return len(runs()) == 2 })
	byID := map[string]ran{}
	for _, x := range runs() {
		byID[x.payload.NotificationID] = x
	}
	if got := byID["n-now"]; got.taskID != "notify:n-now:0" || got.payload.Attempt != 0 {
		t.Errorf("immediate task = %+v, want id notify:n-now:0 attempt 0", got)
	}
	later := byID["n-later"]
	if later.taskID != "notify:n-later:3" || later.payload.Attempt != 3 {
		t.Errorf("scheduled task = %+v, want id notify:n-later:3 attempt 3", later)
	}
	if later.at.Before(runAt) {
		t.Errorf("scheduled task ran at %s, before its time %s", later.at, runAt)
	}
}

// Key TTLs on the embedded server only pass if the clock is driven; the
// scheduler lease and asynq's own leases depend on it.
func TestEmbeddedRedisExpiresKeys(t *testing.T) {
	t.Parallel()
	r := openRedis(t, "")
	ctx := context.Background()
	if err := r.Client().Set(ctx, "ttl-probe", "x", 300*time.Millisecond).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	eventually(t, 5*time.Second, "key to expire", func() bool {
		n, err := r.Client().Exists(ctx, "ttl-probe").Result()
		return err == nil && n == 0
	})
}

func TestOpenRedisRejectsBadURLAndUnreachable(t *testing.T) {
	t.Parallel()
	for _, url := range []string{"http://127.0.0.1:6379", "redis://127.0.0.1:1/0"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := OpenRedis(ctx, url, testLogger(t))
		cancel()
		if err == nil {
			_ = r.Close()
			t.Errorf("OpenRedis(%q) succeeded, want error", url)
		}
	}
}

func TestEnqueueNotificationTaskIDConflictIsNil(t *testing.T) {
	t.Parallel()
	r := openRedis(t, queuetest.RedisURL(t))
	c := newClient(t, r, "conflict")
	in := NewInspector(r, "conflict")
	t.Cleanup(func() { _ = in.Close() })
	ctx := context.Background()
	at := time.Now().Add(time.Hour)

	for i := range 2 {
		if err := c.EnqueueNotification(ctx, "n1", 0, at); err != nil {
			t.Fatalf("enqueue #%d: %v", i+1, err)
		}
	}
	if err := c.EnqueueNotification(ctx, "n1", 1, at); err != nil {
		t.Fatalf("enqueue next attempt: %v", err)
	}
	sz, err := in.Sizes(ctx)
	if err != nil {
		t.Fatalf("sizes: %v", err)
	}
	if sz.Scheduled != 2 {
		t.Errorf("scheduled = %d, want 2 (one per attempt id)", sz.Scheduled)
	}
	for _, id := range []string{"notify:n1:0", "notify:n1:1"} {
		st, err := in.TaskState(ctx, id)
		if err != nil || st != "scheduled" {
			t.Errorf("TaskState(%s) = %q, %v; want scheduled", id, st, err)
		}
	}
	if st, err := in.TaskState(ctx, "notify:n1:2"); err != nil || st != "" {
		t.Errorf("TaskState(absent) = %q, %v; want empty", st, err)
	}
}

func TestInspectorDeleteArchived(t *testing.T) {
	t.Parallel()
	r := openRedis(t, queuetest.RedisURL(t))
	ctx := context.Background()
	in := NewInspector(r, "archive")
	t.Cleanup(func() { _ = in.Close() })

	// A queue asynq has never seen is simply empty.
	if n, err := in.DeleteArchived(ctx); err != nil || n != 0 {
		t.Fatalf("DeleteArchived(unknown queue) = %d, %v; want 0, nil", n, err)
	}
	if sz, err := in.Sizes(ctx); err != nil || sz != (Sizes{}) {
		t.Fatalf("Sizes(unknown queue) = %+v, %v; want zero", sz, err)
	}

	c := newClient(t, r, "archive")
	for _, id := range []string{"a", "b"} {
		if err := c.EnqueueNotification(ctx, id, 0, time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("enqueue: %v", err)
		}
	}
	ai := asynq.NewInspector(r.ConnOpt())
	t.Cleanup(func() { _ = ai.Close() })
	if err := ai.ArchiveTask("archive", "notify:a:0"); err != nil {
		t.Fatalf("archive: %v", err)
	}

	n, err := in.DeleteArchived(ctx)
	if err != nil || n != 1 {
		t.Fatalf("DeleteArchived = %d, %v; want 1, nil", n, err)
	}
	sz, err := in.Sizes(ctx)
	if err != nil {
		t.Fatalf("sizes: %v", err)
	}
	if sz.Archived != 0 || sz.Scheduled != 1 {
		t.Errorf("sizes after delete = %+v, want 0 archived, 1 scheduled", sz)
	}
	// The id is free again.
	if err := c.EnqueueNotification(ctx, "a", 0, time.Time{}); err != nil {
		t.Fatalf("re-enqueue: %v", err)
	}
	if st, _ := in.TaskState(ctx, "notify:a:0"); st != "pending" {
		t.Errorf("re-enqueued task state = %q, want pending", st)
	}
}

func TestEnqueuePeriodicDedupsWithinPeriod(t *testing.T) {
	t.Parallel()
	r := openRedis(t, queuetest.RedisURL(t))
	ac := asynq.NewClient(r.ConnOpt())
	t.Cleanup(func() { _ = ac.Close() })
	ctx := context.Background()
	period := time.Hour
	start := time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)

	tests := []struct {
		name string
		now  time.Time
		want bool
	}{
		{"first in period", start.Add(time.Minute), true},
		{"same period later", start.Add(59 * time.Minute), false},
		{"next period", start.Add(period), true},
		{"next period again", start.Add(period + time.Second), false},
	}
	for _, tt := range tests {
		created, err := enqueuePeriodic(ctx, ac, "periodic", TypeOutboxSweep, period, tt.now)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if created != tt.want {
			t.Errorf("%s: created = %v, want %v", tt.name, created, tt.want)
		}
	}
	in := NewInspector(r, "periodic")
	t.Cleanup(func() { _ = in.Close() })
	for _, at := range []time.Time{start, start.Add(period)} {
		id := TypeOutboxSweep + ":" + strconv.FormatInt(at.Unix(), 10)
		if st, err := in.TaskState(ctx, id); err != nil || st != "pending" {
			t.Errorf("TaskState(%s) = %q, %v; want pending", id, st, err)
		}
	}
}
