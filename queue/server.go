package queue

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
)

// Retry delays for infrastructure errors returned by handlers (provider
// errors never get here: the notifier records them and reschedules itself).
const (
	retryBase = time.Second
	retryCap  = 10 * time.Minute
)

// NewServer returns an asynq server that works queueName with up to
// concurrency handlers at once. Start it with a mux (see package workers);
// Shutdown stops it, waiting briefly for running handlers.
func NewServer(r *Redis, queueName string, concurrency int, logger *slog.Logger) *asynq.Server {
	if logger == nil {
		logger = slog.Default()
	}
	if concurrency <= 0 {
		concurrency = 10
	}
	return asynq.NewServer(r.ConnOpt(), asynq.Config{
		Concurrency: concurrency,
		Queues:      map[string]int{queueName: 1},
		// Let everything through to slog, which applies the configured level.
		Logger:         slogAdapter{l: logger},
		LogLevel:       asynq.DebugLevel,
		RetryDelayFunc: RetryDelay,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			// Type and id only: error texts may carry details from peers.
			id, _ := asynq.GetTaskID(ctx)
			retried, _ := asynq.GetRetryCount(ctx)
			logger.Warn("queue: task failed", "task_type", t.Type(), "task_id", id, "retried", retried)
		}),
		ShutdownTimeout: 10 * time.Second,
		// Retries and scheduled notifications (backoff, send_at) should not
		// wait the 5 s default after their time.
		DelayedTaskCheckInterval: time.Second,
	})
}

// RetryDelay is exponential backoff with jitter for a task that has failed
// n times: a random delay in [d/2, d) with d = base·2^n capped.
func RetryDelay(n int, _ error, _ *asynq.Task) time.Duration {
	d := retryCap
	if n < 30 {
		d = min(retryBase<<n, retryCap)
	}
	half := d / 2
	return half + rand.N(half)
}

// slogAdapter adapts asynq's logger interface to slog. asynq's Info chatter
// (starting, stopping) goes to debug.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debug(args ...any) { a.l.Debug("asynq: " + fmt.Sprint(args...)) }
func (a slogAdapter) Info(args ...any)  { a.l.Debug("asynq: " + fmt.Sprint(args...)) }
func (a slogAdapter) Warn(args ...any)  { a.l.Warn("asynq: " + fmt.Sprint(args...)) }
func (a slogAdapter) Error(args ...any) { a.l.Error("asynq: " + fmt.Sprint(args...)) }
func (a slogAdapter) Fatal(args ...any) { a.l.Error("asynq: " + fmt.Sprint(args...)) }
