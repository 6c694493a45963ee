package queue

import (
	"context"
	"testing"

	"github.com/termind/termind/queue/queuetest"
)

func TestEnqueueBlockFoldsDuplicates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, err := OpenRedis(ctx, queuetest.RedisURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	c := NewClient(r, "block-test")
	t.Cleanup(func() { c.Close() })
	for _, id := range []string{"con_1", "con_1", "con_2"} {
		if err := c.EnqueueBlock(ctx, id); err != nil {
			t.Fatalf("enqueue %s: %v", id, err)
		}
	}
	in := NewInspector(r, "block-test")
	t.Cleanup(func() { in.Close() })
	sz, err := in.Sizes(ctx)
	if err != nil || sz.Pending != 2 {
		t.Fatalf("sizes %+v %v, want one pending block task per connection", sz, err)
	}
	if state, err := in.TaskState(ctx, BlockTaskID("con_1")); err != nil || state == "" {
		t.Fatalf("task state %q %v, want the block task held", state, err)
	}
	if err := c.EnqueueBlock(ctx, ""); err == nil {
		t.Fatal("empty connection id accepted")
	}
	task, err := NewBlockTask("con_1")
	if err != nil || task.Type() != TypeCalendarBlock {
		t.Fatalf("task %v, %v", task, err)
	}
	if p, err := ParseConnectionPayload(task.Payload()); err != nil || p.ConnectionID != "con_1" {
		t.Fatalf("payload %+v, %v", p, err)
	}
}
