// Package workers holds one asynq handler per task type: notify:send and
// notify:batch (Notifier), outbox:sweep (Sweeper), retention:purge (Purger) and
// calendar:revoke (Revoker).
//
// Handlers load everything they need from the store by id: a task payload
// carries ids only, and the store, not the queue, decides what is due.
package workers

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/queue"
)

// Enqueuer puts a notify:send task on the queue (queue.Client). A task id
// the queue already holds is not an error.
type Enqueuer interface {
	EnqueueNotification(ctx context.Context, id string, attempt int, at time.Time) error
}

// Register installs the handlers on mux. A nil handler is left out (a
// process that runs no sweeps, for example).
func Register(mux *asynq.ServeMux, n *Notifier, s *Sweeper, p *Purger) {
	if n != nil {
		mux.Handle(queue.TypeNotifySend, n)
		mux.HandleFunc(queue.TypeNotifyBatch, n.ProcessBatch)
	}
	if s != nil {
		mux.Handle(queue.TypeOutboxSweep, s)
	}
	if p != nil {
		mux.Handle(queue.TypeRetentionPurge, p)
	}
}

// RegisterRevoker installs the calendar:revoke handler on mux; a nil
// revoker is left out.
func RegisterRevoker(mux *asynq.ServeMux, r *Revoker) {
	if r != nil {
		mux.Handle(queue.TypeCalendarRevoke, r)
	}
}

// ExponentialBackoff returns exponential backoff with full jitter: a
// random delay in [0, min(limit, base·2^attempt)). Full jitter spreads
// retries of many messages that failed together (a provider outage).
func ExponentialBackoff(base, limit time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		d := limit
		if attempt < 40 && base<<attempt > 0 {
			d = min(base<<attempt, limit)
		}
		if d <= 0 {
			return 0
		}
		return rand.N(d)
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Provider errors (connectors/mail, connectors/sms) describe themselves
// through these methods; an error with none of them is treated as temporary
// (a network failure, most likely).
type (
	temporaryError  interface{ Temporary() bool }
	codedError      interface{ Code() string }
	retryAfterError interface{ RetryAfter() time.Duration }
)

type providerFailure struct {
	temporary  bool
	code       string
	retryAfter time.Duration
}

func classify(err error) providerFailure {
	f := providerFailure{temporary: true}
	var te temporaryError
	if errors.As(err, &te) {
		f.temporary = te.Temporary()
	}
	var ce codedError
	if errors.As(err, &ce) {
		f.code = ce.Code()
	}
	var re retryAfterError
	if errors.As(err, &re) {
		f.retryAfter = re.RetryAfter()
	}
	return f
}
