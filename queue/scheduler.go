package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// defaultLeaseTTL bounds how long periodic work pauses when the leading
// scheduler dies without releasing its lease.
const defaultLeaseTTL = 15 * time.Second

// renewLease extends the lease only if we still hold it.
var renewLease = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)

// releaseLease deletes the lease only if we still hold it.
var releaseLease = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

// Scheduler enqueues the periodic tasks (outbox sweep, retention purge).
// Any number may run; a Redis lease makes exactly one of them active.
type Scheduler struct {
	redis      *Redis
	queue      string
	sweepEvery time.Duration
	purgeEvery time.Duration
	logger     *slog.Logger

	leaseKey string
	leaseTTL time.Duration
	token    string
	leader   atomic.Bool
	now      func() time.Time
}

// NewScheduler returns a scheduler for queueName that enqueues outbox:sweep
// every sweepEvery and retention:purge every purgeEvery while it holds the
// lease.
func NewScheduler(r *Redis, queueName string, sweepEvery, purgeEvery time.Duration, logger *slog.Logger) *Scheduler {
	if logger == nil {
		logger = slog.Default()
	}
	return &Scheduler{
		redis:      r,
		queue:      queueName,
		sweepEvery: sweepEvery,
		purgeEvery: purgeEvery,
		logger:     logger,
		leaseKey:   "termind:scheduler:lease:" + queueName,
		leaseTTL:   defaultLeaseTTL,
		token:      newToken(),
		now:        time.Now,
	}
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}

// Leader reports whether this scheduler currently holds the lease.
func (s *Scheduler) Leader() bool { return s.leader.Load() }

type periodic struct {
	typ   string
	every time.Duration
	next  time.Time
}

// Run blocks until ctx is done, taking the lease when it is free and
// enqueueing the periodic tasks while holding it. On return the lease is
// released so that another scheduler can take over at once.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.sweepEvery <= 0 || s.purgeEvery <= 0 {
		return fmt.Errorf("scheduler: periods must be positive")
	}
	client := asynq.NewClient(s.redis.ConnOpt())
	defer client.Close()

	jobs := []*periodic{
		{typ: TypeOutboxSweep, every: s.sweepEvery},
		{typ: TypeRetentionPurge, every: s.purgeEvery},
	}
	// Check often enough to renew the lease well before it ends and to hit
	// the shortest period on time.
	tick := min(s.leaseTTL/3, s.sweepEvery, s.purgeEvery)
	t := time.NewTicker(tick)
	defer t.Stop()
	defer s.release()

	for {
		s.step(ctx, client, jobs)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *Scheduler) step(ctx context.Context, client *asynq.Client, jobs []*periodic) {
	was := s.leader.Load()
	is, err := s.holdLease(ctx, was)
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Warn("scheduler: lease check failed", "err", err)
		}
		// Without an answer we cannot know whether someone else took over;
		// stop acting as leader until the lease is confirmed again.
		is = false
	}
	s.leader.Store(is)
	switch {
	case is && !was:
		s.logger.Info("scheduler: became leader", "queue", s.queue)
		now := s.now()
		for _, j := range jobs {
			j.next = now // run at once; per-period ids absorb a duplicate
		}
	case !is && was:
		s.logger.Info("scheduler: lost leadership", "queue", s.queue)
	}
	if !is {
		return
	}
	now := s.now()
	for _, j := range jobs {
		if now.Before(j.next) {
			continue
		}
		created, err := enqueuePeriodic(ctx, client, s.queue, j.typ, j.every, now)
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Warn("scheduler: enqueue failed", "task_type", j.typ, "err", err)
			}
			continue // try again on the next tick
		}
		s.logger.Debug("scheduler: periodic task", "task_type", j.typ, "created", created)
		j.next = now.Truncate(j.every).Add(j.every)
	}
}

// holdLease takes the lease (if not held) or renews it (if held) and
// reports whether we hold it afterwards.
func (s *Scheduler) holdLease(ctx context.Context, held bool) (bool, error) {
	c := s.redis.Client()
	if held {
		n, err := renewLease.Run(ctx, c, []string{s.leaseKey}, s.token, s.leaseTTL.Milliseconds()).Int64()
		if err != nil {
			return false, fmt.Errorf("renew lease: %w", err)
		}
		if n == 1 {
			return true, nil
		}
		// Lost it (expired and maybe taken); fall through and try to take it.
	}
	ok, err := c.SetNX(ctx, s.leaseKey, s.token, s.leaseTTL).Result()
	if err != nil {
		return false, fmt.Errorf("take lease: %w", err)
	}
	return ok, nil
}

func (s *Scheduler) release() {
	if !s.leader.Swap(false) {
		return
	}
	// The run context is done by now; give the release its own short one.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := releaseLease.Run(ctx, s.redis.Client(), []string{s.leaseKey}, s.token).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		s.logger.Warn("scheduler: release lease failed", "err", err)
		return
	}
	s.logger.Info("scheduler: released leadership", "queue", s.queue)
}
