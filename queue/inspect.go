package queue

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
)

// Inspector reads and tidies one queue (operators, readiness, purges).
type Inspector struct {
	i     *asynq.Inspector
	redis *Redis
	queue string
}

// NewInspector returns an inspector for queueName.
func NewInspector(r *Redis, queueName string) *Inspector {
	return &Inspector{i: asynq.NewInspector(r.ConnOpt()), redis: r, queue: queueName}
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
	return in.redis.Client().SAdd(ctx, allQueuesKey, in.queue).Err()
}

// Sizes returns the current task counts (all zero for a queue never used).
// asynq's inspector takes no context; ctx bounds our own Redis call.
func (in *Inspector) Sizes(ctx context.Context) (Sizes, error) {
	if err := in.announce(ctx); err != nil {
		return Sizes{}, fmt.Errorf("queue sizes: %w", err)
	}
	qi, err := in.i.GetQueueInfo(in.queue)
	if err != nil {
		return Sizes{}, fmt.Errorf("queue sizes: %w", err)
	}
	return Sizes{
		Pending:   qi.Pending,
		Active:    qi.Active,
		Scheduled: qi.Scheduled,
		Retry:     qi.Retry,
		Archived:  qi.Archived,
		Completed: qi.Completed,
	}, nil
}

// DeleteArchived deletes the queue's archived tasks (those that ran out of
// retries) and reports how many. Their ids become free again, so the
// outbox sweeper can re-enqueue what the store still considers due.
func (in *Inspector) DeleteArchived(ctx context.Context) (int, error) {
	if err := in.announce(ctx); err != nil {
		return 0, fmt.Errorf("delete archived: %w", err)
	}
	n, err := in.i.DeleteAllArchivedTasks(in.queue)
	if err != nil {
		return 0, fmt.Errorf("delete archived: %w", err)
	}
	return n, nil
}

// TaskState returns the state of a task by id ("pending", "scheduled", …),
// or "" if the queue does not hold it.
func (in *Inspector) TaskState(ctx context.Context, id string) (string, error) {
	_ = ctx
	ti, err := in.i.GetTaskInfo(in.queue, id)
	if err != nil {
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			return "", nil
		}
		return "", fmt.Errorf("task state: %w", err)
	}
	return ti.State.String(), nil
}

// Close releases the inspector's connections.
func (in *Inspector) Close() error {
	if err := in.i.Close(); err != nil {
		return fmt.Errorf("inspector close: %w", err)
	}
	return nil
}
