package queue

import (
	"context"
	"testing"
	"time"

	"github.com/termind/termind/queue/queuetest"
)

// A pull someone asks for is not absorbed by the connection's pending (or
// running) pull, but requests within one second fold into one; notified
// pulls fold per debounce period.
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
	steps := []func() error{
		func() error { return c.EnqueuePull(ctx, "con_1", false) },
		func() error { return c.EnqueuePull(ctx, "con_1", false) },                                     // folded
		func() error { return c.EnqueuePullRequested(ctx, "con_1", false, now) },                       // its own
		func() error { return c.EnqueuePullRequested(ctx, "con_1", false, now.Add(time.Millisecond)) }, // folded
		func() error { return c.EnqueuePullRequested(ctx, "con_1", false, now.Add(time.Second)) },      // its own
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	in := NewInspector(r, "pull-test")
	t.Cleanup(func() { in.Close() })
	if sz, err := in.Sizes(ctx); err != nil || sz.Pending != 3 {
		t.Fatalf("sizes %+v %v, want 3 pending pulls", sz, err)
	}
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
