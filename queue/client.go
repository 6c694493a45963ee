package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Notify task options. MaxRetry covers infrastructure errors only (store or
// Redis unreachable); provider retries are recorded in the store and
// re-enqueued by the worker under the next attempt's task id.
const (
	notifyMaxRetry = 20
	notifyTimeout  = 2 * time.Minute
)

// Sync task options: a pull of a large calendar takes a while; provider
// trouble is retried with asynq's backoff.
const (
	syncMaxRetry = 10
	syncTimeout  = 10 * time.Minute
)

// Revoke task options: removing our copies of a large calendar takes a
// while, and asynq's retries (exponential, up to days) keep the cleanup
// going while a provider is down.
const (
	revokeMaxRetry = 25
	revokeTimeout  = 10 * time.Minute
)

// Client enqueues notification and maintenance tasks on a queue, and
// calendar tasks on its calendar queue.
type Client struct {
	c        *asynq.Client
	in       *asynq.Inspector
	queue    string
	calendar string
}

// CalendarQueue is the queue of the calendar tasks (pull, push, revoke,
// block, watch renewal) that go with queueName. Workers serve it with a
// concurrency of its own, so that many slow calendar pulls can never hold
// the slots notifications are sent in.
func CalendarQueue(queueName string) string { return queueName + ":calendar" }

// NewClient returns a client that enqueues on queueName and its calendar
// queue.
func NewClient(r *Redis, queueName string) *Client {
	return &Client{c: asynq.NewClient(r.ConnOpt()), in: asynq.NewInspector(r.ConnOpt()), queue: queueName, calendar: CalendarQueue(queueName)}
}

// EnqueueNotification enqueues notify:send for a notification whose store
// row has attempt attempts recorded, to run at at (now, if at is not in the
// future). If the queue already holds a task with the same id, that is not
// an error: the notification is already on its way.
func (c *Client) EnqueueNotification(ctx context.Context, id string, attempt int, at time.Time) error {
	task, err := NewNotifyTask(id, attempt)
	if err != nil {
		return fmt.Errorf("enqueue notification: %w", err)
	}
	opts := []asynq.Option{
		asynq.TaskID(NotifyTaskID(id, attempt)),
		asynq.Queue(c.queue),
		asynq.MaxRetry(notifyMaxRetry),
		asynq.Timeout(notifyTimeout),
	}
	if at.After(time.Now()) {
		// asynq keeps whole seconds and may run a task up to a second before
		// the given time; round up so that it never runs before send_at.
		if r := at.Truncate(time.Second); !r.Equal(at) {
			at = r.Add(time.Second)
		}
		opts = append(opts, asynq.ProcessAt(at))
	}
	if _, err := c.c.EnqueueContext(ctx, task, opts...); err != nil {
		if errors.Is(err, asynq.ErrTaskIDConflict) {
			return nil
		}
		return fmt.Errorf("enqueue notification: %w", err)
	}
	return nil
}

// EnqueueNotificationBatch enqueues notifications that are due now in
// notify:batch tasks of up to MaxNotifyBatch ids. The store is the record:
// if this fails part way, the outbox sweeper enqueues what is left.
func (c *Client) EnqueueNotificationBatch(ctx context.Context, ids []string) error {
	for start := 0; start < len(ids); start += MaxNotifyBatch {
		chunk := ids[start:min(start+MaxNotifyBatch, len(ids))]
		task, err := NewNotifyBatchTask(chunk)
		if err != nil {
			return fmt.Errorf("enqueue notification batch: %w", err)
		}
		_, err = c.c.EnqueueContext(ctx, task,
			asynq.TaskID(NotifyBatchTaskID(chunk)),
			asynq.Queue(c.queue),
			asynq.MaxRetry(notifyMaxRetry),
			asynq.Timeout(notifyTimeout))
		if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("enqueue notification batch: %w", err)
		}
	}
	return nil
}

// EnqueuePull asks for a pull of one connection; while one is pending,
// another request is folded into it.
func (c *Client) EnqueuePull(ctx context.Context, connectionID string, full bool) error {
	return c.enqueueOnce(ctx, "pull", TypeCalendarPull, PullPayload{ConnectionID: connectionID, Full: full},
		PullTaskID(connectionID, full), syncMaxRetry, syncTimeout)
}

// EnqueuePullRequested asks for a pull someone asked for now (POST
// /v1/connections/{id}/sync). A pending pull of the connection absorbs it,
// as with EnqueuePull; a running one must not (it may have listed the
// calendar before the change the request is about), so then one
// follow-up pull is queued beside it. At most two pulls per connection and
// kind are ever queued however often it is asked.
func (c *Client) EnqueuePullRequested(ctx context.Context, connectionID string, full bool) error {
	p := PullPayload{ConnectionID: connectionID, Full: full}
	id := PullTaskID(connectionID, full)
	queued, err := c.enqueueTask(ctx, "pull", TypeCalendarPull, p, id, syncMaxRetry, syncTimeout)
	if err != nil || queued {
		return err
	}
	info, err := c.in.GetTaskInfo(c.calendar, id)
	if err != nil || info.State != asynq.TaskStateActive {
		// Pending (or gone meanwhile: then it ran after the request).
		return nil
	}
	return c.enqueueOnce(ctx, "pull", TypeCalendarPull, p, id+":again", syncMaxRetry, syncTimeout)
}

// EnqueuePullAfterNotice asks for a pull after a push notification,
// debounced: notifications within one period of length debounce fold
// into one pull at the period's end.
func (c *Client) EnqueuePullAfterNotice(ctx context.Context, connectionID string, debounce time.Duration, now time.Time) error {
	if debounce <= 0 {
		debounce = time.Second
	}
	period := now.UnixNano() / int64(debounce)
	return c.enqueueOnce(ctx, "pull", TypeCalendarPull, PullPayload{ConnectionID: connectionID},
		PushPullTaskID(connectionID, period), syncMaxRetry, syncTimeout,
		asynq.ProcessAt(time.Unix(0, (period+1)*int64(debounce))))
}

// EnqueueWatchRenew asks for a connection's push channel to be opened or
// renewed.
func (c *Client) EnqueueWatchRenew(ctx context.Context, connectionID string) error {
	return c.enqueueOnce(ctx, "watch renew", TypeCalendarWatchRenew, ConnectionPayload{ConnectionID: connectionID},
		WatchRenewTaskID(connectionID), syncMaxRetry, syncTimeout)
}

// EnqueuePush asks for an appointment's copy on one connection to be
// written at the given version.
func (c *Client) EnqueuePush(ctx context.Context, p PushPayload) error {
	return c.enqueueOnce(ctx, "push", TypeCalendarPush, p,
		PushTaskID(p.ConnectionID, p.AppointmentID, p.Version), syncMaxRetry, syncTimeout)
}

// EnqueueRevoke enqueues the cleanup of a connection whose revocation has
// committed. It retries until done: the cleanup must finish even if the
// provider is down for a while (the store's revoking state is the record,
// and the sweeper re-enqueues revocations that stay unfinished).
func (c *Client) EnqueueRevoke(ctx context.Context, connectionID string) error {
	if connectionID == "" {
		return fmt.Errorf("enqueue revoke: empty connection id")
	}
	return c.enqueueOnce(ctx, "revoke", TypeCalendarRevoke, ConnectionPayload{ConnectionID: connectionID},
		RevokeTaskID(connectionID), revokeMaxRetry, revokeTimeout)
}

// enqueueOnce enqueues a calendar task on the calendar queue under its
// deterministic id; a task the queue already holds under that id absorbs
// the request.
func (c *Client) enqueueOnce(ctx context.Context, what, typ string, payload any, id string, maxRetry int, timeout time.Duration, opts ...asynq.Option) error {
	_, err := c.enqueueTask(ctx, what, typ, payload, id, maxRetry, timeout, opts...)
	return err
}

// enqueueTask is enqueueOnce that reports whether the task was new (false:
// the queue held one with that id).
func (c *Client) enqueueTask(ctx context.Context, what, typ string, payload any, id string, maxRetry int, timeout time.Duration, opts ...asynq.Option) (bool, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return false, fmt.Errorf("enqueue %s: %w", what, err)
	}
	opts = append([]asynq.Option{asynq.TaskID(id), asynq.Queue(c.calendar), asynq.MaxRetry(maxRetry), asynq.Timeout(timeout)}, opts...)
	_, err = c.c.EnqueueContext(ctx, asynq.NewTask(typ, b), opts...)
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("enqueue %s: %w", what, err)
	}
	return true, nil
}

// enqueuePeriodic enqueues a payload-less periodic task for the period that
// contains now. The task id names the period and the task is retained for
// the period, so a second enqueue in the same period (a failover) is
// rejected as a conflict. It reports whether the task was new.
func enqueuePeriodic(ctx context.Context, c *asynq.Client, queueName, typ string, period time.Duration, now time.Time) (bool, error) {
	start := now.Truncate(period)
	id := fmt.Sprintf("%s:%d", typ, start.Unix())
	_, err := c.EnqueueContext(ctx, asynq.NewTask(typ, nil),
		asynq.TaskID(id),
		asynq.Queue(queueName),
		asynq.Retention(period),
		asynq.MaxRetry(3),
		// A periodic run that cannot finish within its period is superseded
		// by the next one anyway.
		asynq.Timeout(max(period, time.Minute)),
	)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("enqueue %s: %w", typ, err)
	}
	return true, nil
}

// Close releases the client's connections.
func (c *Client) Close() error {
	if err := errors.Join(c.c.Close(), c.in.Close()); err != nil {
		return fmt.Errorf("queue client close: %w", err)
	}
	return nil
}
