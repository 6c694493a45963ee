package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/internal/store"
)

// SweeperStore is what the outbox sweeper needs from the store.
type SweeperStore interface {
	DueNotifications(ctx context.Context, q store.DueQuery) ([]store.DueNotification, error)
	StaleSending(ctx context.Context, now time.Time, limit int) ([]string, error)
	MarkInterrupted(ctx context.Context, id string, now time.Time) (store.Notification, error)
}

// RevokingLister lists connections whose revocation began before a time
// and has not finished (store.Store).
type RevokingLister interface {
	RevokingConnections(ctx context.Context, before time.Time, limit int) ([]string, error)
}

// RevokeEnqueuer puts a calendar:revoke task on the queue (queue.Client). A
// task id the queue already holds is not an error.
type RevokeEnqueuer interface {
	EnqueueRevoke(ctx context.Context, connectionID string) error
}

// SweeperConfig configures the outbox sweeper. Store and Queue are required.
type SweeperConfig struct {
	Store SweeperStore
	Queue Enqueuer
	// Revoking and Revokes, when both are set, make each sweep also
	// re-enqueue the cleanup of connections still revoking Grace after
	// their revocation began (a lost task, or one that ran out of
	// retries). Either nil: revocations are not swept.
	Revoking RevokingLister
	Revokes  RevokeEnqueuer
	// Poll, when set, runs at the end of each sweep: the calendar sync
	// poller (Poller.Poll), which enqueues the pulls that are due. Its
	// error counts as one failure of the sweep. Nil: no polling.
	Poll func(ctx context.Context) error
	// Lookahead also enqueues rows due this soon, so that they run on time
	// even if the next sweep is a period away (default 1 min).
	Lookahead time.Duration
	// Grace skips rows written less than this long ago: whoever wrote them
	// enqueued them, so only rows that stayed untouched that long can have
	// been lost by the queue (default 1 min; the daemon uses two sweep
	// periods).
	Grace time.Duration
	// BatchSize is the page size (default 500); MaxPages bounds one run
	// (default 20, so at most 10,000 rows per sweep by default).
	BatchSize int
	MaxPages  int
	Now       func() time.Time
	Logger    *slog.Logger
	// Metrics counts interrupted sends marked failed; nil: none.
	Metrics StateMetrics
}

// SweepReport counts what one sweep did.
type SweepReport struct {
	// Enqueued counts due rows handed to the queue (those it already held
	// included: the queue answers them as a conflict, which is fine).
	Enqueued int
	// Interrupted: sends whose outcome is unknown (marked for
	// reconciliation); Released: claimed rows never handed to the
	// provider, sent again.
	Interrupted int
	Released    int
	// Revokes counts calendar:revoke tasks handed to the queue (those it
	// already held included).
	Revokes int
	Failed  int // enqueue or mark errors; the next sweep tries again
}

// Sweeper handles outbox:sweep: the store says what is due and the queue
// gets it again. This is what makes losing Redis harmless.
type Sweeper struct {
	cfg SweeperConfig
	log *slog.Logger
}

// NewSweeper returns a sweeper with defaults filled in.
func NewSweeper(cfg SweeperConfig) *Sweeper {
	if cfg.Lookahead <= 0 {
		cfg.Lookahead = time.Minute
	}
	if cfg.Grace <= 0 {
		cfg.Grace = time.Minute
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.MaxPages <= 0 {
		cfg.MaxPages = 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Sweeper{cfg: cfg, log: cfg.Logger}
}

// ProcessTask implements asynq.Handler for outbox:sweep.
func (s *Sweeper) ProcessTask(ctx context.Context, _ *asynq.Task) error {
	_, err := s.Sweep(ctx)
	return err
}

// Sweep enqueues every scheduled row that is due (or due within the
// lookahead) and ends sending rows whose lease ran out.
func (s *Sweeper) Sweep(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	var errs []error
	now := s.cfg.Now()

	q := store.DueQuery{
		Before:          now.Add(s.cfg.Lookahead),
		UntouchedBefore: now.Add(-s.cfg.Grace),
		Limit:           s.cfg.BatchSize,
	}
	for range s.cfg.MaxPages {
		due, err := s.cfg.Store.DueNotifications(ctx, q)
		if err != nil {
			return rep, fmt.Errorf("sweep: %w", err)
		}
		for _, d := range due {
			if err := s.cfg.Queue.EnqueueNotification(ctx, d.ID, d.Attempt, d.SendAt); err != nil {
				rep.Failed++
				errs = append(errs, err)
				continue
			}
			rep.Enqueued++
		}
		if len(due) < q.Limit {
			break
		}
		q.After = due[len(due)-1]
	}

	stale, err := s.cfg.Store.StaleSending(ctx, now, s.cfg.BatchSize)
	if err != nil {
		errs = append(errs, fmt.Errorf("stale sending: %w", err))
	}
	for _, id := range stale {
		n, err := s.cfg.Store.MarkInterrupted(ctx, id, now)
		switch {
		case err == nil && n.Status == store.StatusScheduled:
			// Claimed by a worker that died before handing it over: never
			// sent, so sent now.
			rep.Released++
			s.log.Info("sweep: claimed send never dispatched, sending again", "notification_id", id)
			if err := s.cfg.Queue.EnqueueNotification(ctx, n.ID, len(n.Attempts), n.SendAt); err != nil {
				rep.Failed++
				errs = append(errs, err)
			}
		case err == nil:
			rep.Interrupted++
			s.cfg.Metrics.NotificationState(n.Channel, n.Template, n.Status)
			s.log.Warn("sweep: interrupted send, outcome unknown", "notification_id", id)
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			// Finished or purged meanwhile.
		default:
			rep.Failed++
			errs = append(errs, err)
		}
	}

	if s.cfg.Revoking != nil && s.cfg.Revokes != nil {
		errs = append(errs, s.sweepRevocations(ctx, now, &rep)...)
	}
	if s.cfg.Poll != nil {
		if err := s.cfg.Poll(ctx); err != nil {
			rep.Failed++
			errs = append(errs, err)
		}
	}

	s.log.Info("sweep: done", "enqueued", rep.Enqueued, "interrupted", rep.Interrupted, "released", rep.Released,
		"revokes", rep.Revokes, "failed", rep.Failed)
	if len(errs) > 0 {
		return rep, fmt.Errorf("sweep: %d errors, first: %w", len(errs), errs[0])
	}
	return rep, nil
}

// sweepRevocations re-enqueues the cleanup of connections left revoking.
// The oldest come first, so a page of BatchSize per sweep works through
// any backlog.
func (s *Sweeper) sweepRevocations(ctx context.Context, now time.Time, rep *SweepReport) []error {
	ids, err := s.cfg.Revoking.RevokingConnections(ctx, now.Add(-s.cfg.Grace), s.cfg.BatchSize)
	if err != nil {
		return []error{fmt.Errorf("revoking connections: %w", err)}
	}
	var errs []error
	for _, id := range ids {
		if err := s.cfg.Revokes.EnqueueRevoke(ctx, id); err != nil {
			rep.Failed++
			errs = append(errs, err)
			continue
		}
		rep.Revokes++
	}
	return errs
}
