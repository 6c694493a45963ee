package queue

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/queue/queuetest"
)

// A pull someone asks for folds into a pending pull and gets one
// follow-up beside a running one, never more; notified pulls fold per
// debounce period.
func TestPullTaskIDsFold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, err := OpenRedis(ctx, queuetest.RedisURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	c := NewClient(r, "pull-test")
	t.Cleanup(func() { c.Close() })
	now := time.Unix(1_800_000_000, 0)
	for i := range 4 {
		if err := c.EnqueuePull(ctx, "con_1", false); err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
		if err := c.EnqueuePullRequested(ctx, "con_1", false); err != nil {
			t.Fatalf("requested pull %d: %v", i, err)
		}
	}
	in := NewInspector(r, "pull-test")
	t.Cleanup(func() { in.Close() })
	// A pending pull absorbs every request.
	if sz, err := in.Sizes(ctx); err != nil || sz.Pending != 1 {
		t.Fatalf("sizes %+v %v, want 1 pending pull", sz, err)
	}
	// While it runs, requests queue one follow-up.
	srv := NewServer(r, CalendarQueue("pull-test"), 1, nil)
	running, release := make(chan struct{}, 1), make(chan struct{})
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypeCalendarPull, func(context.Context, *asynq.Task) error {
		select {
		case running <- struct{}{}:
		default:
		}
		<-release
		return nil
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	<-running
	for range 3 {
		if err := c.EnqueuePullRequested(ctx, "con_1", false); err != nil {
			t.Fatal(err)
		}
	}
	if sz, err := in.Sizes(ctx); err != nil || sz.Active != 1 || sz.Pending != 1 {
		t.Fatalf("sizes %+v %v, want the running pull and one follow-up", sz, err)
	}
	close(release)
	// Notifications within one debounce period: one scheduled pull.
	for _, at := range []time.Duration{0, 500 * time.Millisecond, 1900 * time.Millisecond} {
		if err := c.EnqueuePullAfterNotice(ctx, "con_2", 2*time.Second, now.Add(at)); err != nil {
			t.Fatal(err)
		}
	}
	if sz, err := in.Sizes(ctx); err != nil || sz.Scheduled != 1 {
		t.Fatalf("sizes %+v %v, want 1 scheduled notified pull", sz, err)
	}
}
