package queue

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
)

// Inspector reads and tidies the queues of one queue name: its own and
// its calendar queue (see CalendarQueue), as one (operators, purges).
type Inspector struct {
	i      *asynq.Inspector
	redis  *Redis
	queues []string
}

// NewInspector returns an inspector for queueName and its calendar queue.
func NewInspector(r *Redis, queueName string) *Inspector {
	return &Inspector{i: asynq.NewInspector(r.ConnOpt()), redis: r, queues: []string{queueName, CalendarQueue(queueName)}}
}

// Sizes counts the tasks of a queue by state.
type Sizes struct {
	Pending   int
	Active    int
	Scheduled int
	Retry     int
	Archived  int
	Completed int
}

// allQueuesKey is the set in which asynq lists known queues. asynq adds a
// queue to it only on a client's first enqueue, so after Redis lost its
// data a long-lived client never re-announces it and asynq's per-queue
// inspector calls fail. Announcing the queue we serve ourselves fixes that.
const allQueuesKey = "asynq:queues"

func (in *Inspector) announce(ctx context.Context) error {
	return in.redis.Client().SAdd(ctx, allQueuesKey, in.queues[0], in.queues[1]).Err()
}

// Sizes returns the current task counts (all zero for a queue never used).
// asynq's inspector takes no context; ctx bounds our own Redis call.
func (in *Inspector) Sizes(ctx context.Context) (Sizes, error) {
	if err := in.announce(ctx); err != nil {
		return Sizes{}, fmt.Errorf("queue sizes: %w", err)
	}
	var sz Sizes
	for _, q := range in.queues {
		qi, err := in.i.GetQueueInfo(q)
		if err != nil {
			return Sizes{}, fmt.Errorf("queue sizes: %w", err)
		}
		sz.Pending += qi.Pending
		sz.Active += qi.Active
		sz.Scheduled += qi.Scheduled
		sz.Retry += qi.Retry
		sz.Archived += qi.Archived
		sz.Completed += qi.Completed
	}
	return sz, nil
}

// DeleteArchived deletes the queue's archived tasks (those that ran out of
// retries) and reports how many. Their ids become free again, so the
// outbox sweeper can re-enqueue what the store still considers due.
func (in *Inspector) DeleteArchived(ctx context.Context) (int, error) {
	if err := in.announce(ctx); err != nil {
		return 0, fmt.Errorf("delete archived: %w", err)
	}
	total := 0
	for _, q := range in.queues {
		n, err := in.i.DeleteAllArchivedTasks(q)
		if err != nil {
			return total, fmt.Errorf("delete archived: %w", err)
		}
		total += n
	}
	return total, nil
}

// TaskState returns the state of a task by id ("pending", "scheduled", …),
// or "" if the queue does not hold it.
func (in *Inspector) TaskState(ctx context.Context, id string) (string, error) {
	_ = ctx
	for _, q := range in.queues {
		ti, err := in.i.GetTaskInfo(q, id)
		if err == nil {
			return ti.State.String(), nil
		}
		if !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
			return "", fmt.Errorf("task state: %w", err)
		}
	}
	return "", nil
}

// Close releases the inspector's connections.
func (in *Inspector) Close() error {
	if err := in.i.Close(); err != nil {
		return fmt.Errorf("inspector close: %w", err)
	}
	return nil
}
