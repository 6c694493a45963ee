package queue

import (
	"context"
	"testing"

	"github.com/termind/termind/queue/queuetest"
)

func TestEnqueueRevokeIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, err := OpenRedis(ctx, queuetest.RedisURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	c := NewClient(r, "revoke-test")
	t.Cleanup(func() { c.Close() })
	for range 2 {
		if err := c.EnqueueRevoke(ctx, "con_1"); err != nil {
			t.Fatalf("enqueue: %v", err)
		}
	}
	in := NewInspector(r, "revoke-test")
	t.Cleanup(func() { in.Close() })
	sz, err := in.Sizes(ctx)
	if err != nil || sz.Pending != 1 {
		t.Fatalf("sizes %+v %v, want exactly one pending revoke task", sz, err)
	}
	if state, err := in.TaskState(ctx, RevokeTaskID("con_1")); err != nil || state == "" {
		t.Fatalf("task state %q %v, want the revoke task held", state, err)
	}
	if err := c.EnqueueRevoke(ctx, ""); err == nil {
		t.Fatal("empty connection id accepted")
	}
	p, err := ParseConnectionPayload([]byte(`{"connection_id":"con_1"}`))
	if err != nil || p.ConnectionID != "con_1" {
		t.Fatalf("parse: %+v %v", p, err)
	}
	if _, err := ParseConnectionPayload([]byte(`{}`)); err == nil {
		t.Fatal("empty payload accepted")
	}
}
