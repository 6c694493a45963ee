package workers

// Calendar sync: calendar:pull and calendar:push handlers around the sync
// engine (internal/sync), and the poller that enqueues pulls of
// connections that are due, with jitter, and a daily full reconciliation.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/internal/store"
	calsync "github.com/termind/termind/internal/sync"
	"github.com/termind/termind/queue"
)

// SyncEngine runs pulls and pushes (*sync.Engine).
type SyncEngine interface {
	Pull(ctx context.Context, connectionID string, full bool) (store.SyncResult, error)
	Push(ctx context.Context, connectionID, tenantID, appointmentID string, version int) error
}

// SyncStore is what the sync handlers need from the store beyond the
// engine: marking a connection broken, reporting push failures.
type SyncStore interface {
	SetConnectionState(ctx context.Context, id, state, reason, actor string) (store.Connection, error)
	PauseConnection(ctx context.Context, id, reason string, until time.Time) (store.Connection, error)
	SetAppointmentSyncError(ctx context.Context, tenantID, id, msg string) error
}

// StateCredentialsRejected is the StateReason of a connection whose
// calendar refused its credentials during sync.
const StateCredentialsRejected = "credentials rejected"

// StateQuotaExceeded is the StateReason of a connection paused because
// its provider's quota is used up; it resumes by itself.
const StateQuotaExceeded = "quota exceeded"

// DefaultQuotaPause is how long a connection pauses when Google says the
// quota is used up: daily quotas reset at midnight Pacific time, so
// hours, not minutes.
const DefaultQuotaPause = 6 * time.Hour

// SyncerConfig configures the sync handlers. Engine and Store are required.
type SyncerConfig struct {
	Engine SyncEngine
	Store  SyncStore
	// QuotaPause: how long a connection whose quota is used up pauses
	// (DefaultQuotaPause).
	QuotaPause time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
	// Blocks, Peers and BlockQueue run cross-calendar blocking (block.go);
	// without all three calendar:block is not handled and pulls set off
	// no blocks.
	Blocks     BlockEngine
	Peers      BlockPeers
	BlockQueue BlockEnqueuer
}

// Syncer handles calendar:pull and calendar:push.
//
// Outcomes: a connection that is not active (revoked meanwhile, paused,
// broken) or whose subject is restricted is skipped. Credentials the
// calendar refuses mark the connection broken (the API shows it; the user
// reconnects) and the task ends, so that a wrong password does not cause
// a storm of retries. A refused request and the mass-delete guard are
// recorded and not retried. Anything else (unreachable, 5xx, the store)
// is returned for asynq to retry with backoff; the pull's outcome is
// recorded as the connection's last error meanwhile.
type Syncer struct {
	cfg SyncerConfig
	log *slog.Logger
}

// NewSyncer returns the sync handlers.
func NewSyncer(cfg SyncerConfig) *Syncer {
	if cfg.QuotaPause <= 0 {
		cfg.QuotaPause = DefaultQuotaPause
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Syncer{cfg: cfg, log: cfg.Logger}
}

// RegisterSync installs the calendar:pull and calendar:push handlers on
// mux; a nil syncer is left out.
func RegisterSync(mux *asynq.ServeMux, s *Syncer) {
	if s != nil {
		mux.HandleFunc(queue.TypeCalendarPull, s.ProcessPull)
		mux.HandleFunc(queue.TypeCalendarPush, s.ProcessPush)
		if s.blocking() {
			mux.HandleFunc(queue.TypeCalendarBlock, s.ProcessBlock)
		}
	}
}

// ProcessPull handles calendar:pull.
func (s *Syncer) ProcessPull(ctx context.Context, t *asynq.Task) error {
	p, err := queue.ParsePullPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("pull: %v: %w", err, asynq.SkipRetry)
	}
	res, err := s.cfg.Engine.Pull(ctx, p.ConnectionID, p.Full)
	if err == nil {
		err = s.afterPull(ctx, p.ConnectionID, p.Full, res)
	}
	return s.outcome(ctx, "pull", p.ConnectionID, err, nil)
}

// ProcessPush handles calendar:push.
func (s *Syncer) ProcessPush(ctx context.Context, t *asynq.Task) error {
	p, err := queue.ParsePushPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("push: %v: %w", err, asynq.SkipRetry)
	}
	err = s.cfg.Engine.Push(ctx, p.ConnectionID, p.TenantID, p.AppointmentID, p.Version)
	report := func(msg string) {
		if rerr := s.cfg.Store.SetAppointmentSyncError(ctx, p.TenantID, p.AppointmentID, msg); rerr != nil {
			s.log.Warn("sync: push problem not recorded", "appointment_id", p.AppointmentID, "err", rerr)
		}
	}
	return s.outcome(ctx, "push", p.ConnectionID, err, report)
}

// outcome decides what a failed pull or push means for the task. report,
// when set, records a push problem on the appointment.
func (s *Syncer) outcome(ctx context.Context, what, connID string, err error, report func(string)) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotActive), errors.Is(err, store.ErrRestricted), errors.Is(err, store.ErrNotFound):
		s.log.Info("sync: skipped", "task", what, "connection_id", connID, "reason", err)
		return nil
	case errors.Is(err, calsync.ErrCredentialsRejected):
		s.log.Warn("sync: credentials rejected, connection broken", "task", what, "connection_id", connID)
		if _, serr := s.cfg.Store.SetConnectionState(ctx, connID, store.ConnBroken, StateCredentialsRejected, "system"); serr != nil &&
			!errors.Is(serr, store.ErrNotActive) && !errors.Is(serr, store.ErrNotFound) {
			return fmt.Errorf("%s %s: mark broken: %w", what, connID, serr)
		}
		if report != nil {
			report("could not write the copy: " + StateCredentialsRejected)
		}
		return nil
	case errors.Is(err, calsync.ErrQuotaExceeded):
		// Retrying within hours only spends what is left of the quota of
		// everybody else; the poller resumes the connection afterwards.
		until := s.cfg.Now().Add(s.cfg.QuotaPause)
		s.log.Warn("sync: quota exceeded, connection paused", "task", what, "connection_id", connID, "until", until)
		if _, serr := s.cfg.Store.PauseConnection(ctx, connID, StateQuotaExceeded, until); serr != nil &&
			!errors.Is(serr, store.ErrNotActive) && !errors.Is(serr, store.ErrNotFound) {
			return fmt.Errorf("%s %s: pause: %w", what, connID, serr)
		}
		if report != nil {
			report("could not write the copy yet: " + StateQuotaExceeded)
		}
		return nil
	case errors.Is(err, calsync.ErrMassDelete):
		// Recorded with attention; a person decides.
		return nil
	case errors.Is(err, calsync.ErrRefused):
		s.log.Warn("sync: refused by the calendar", "task", what, "connection_id", connID, "err", err)
		if report != nil {
			report("could not write the copy: the calendar refused it")
		}
		return fmt.Errorf("%s %s: %w: %w", what, connID, err, asynq.SkipRetry)
	}
	if report != nil && lastAttempt(ctx) {
		report("could not write the copy: calendar unreachable")
	}
	s.log.Warn("sync: will retry", "task", what, "connection_id", connID, "err", err)
	return fmt.Errorf("%s %s: %w", what, connID, err)
}

// lastAttempt reports whether asynq will not retry the running task.
func lastAttempt(ctx context.Context) bool {
	n, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && n >= maxRetry
}

// PollerStore is what the poller needs from the store.
type PollerStore interface {
	ConnectionsDueForSync(ctx context.Context, before time.Time, limit int) ([]string, error)
	ResumePausedConnections(ctx context.Context, now time.Time) ([]string, error)
	GetConnectionByID(ctx context.Context, id string) (store.Connection, error)
	GetSyncStatus(ctx context.Context, connectionID string) (store.SyncStatus, error)
}

// PullEnqueuer puts a calendar:pull task on the queue (queue.Client); one
// already pending is not an error.
type PullEnqueuer interface {
	EnqueuePull(ctx context.Context, connectionID string, full bool) error
}

// Defaults of PollerConfig.
const (
	DefaultCalDAVPollInterval = 5 * time.Minute
	DefaultGooglePollInterval = 30 * time.Minute // backstop to push notifications
	DefaultFullSyncEvery      = 24 * time.Hour
	DefaultSyncErrorBackoff   = 15 * time.Minute
)

// PollerConfig configures the poller. Store and Queue are required.
type PollerConfig struct {
	Store PollerStore
	Queue PullEnqueuer
	// Intervals are the poll intervals by provider (defaults: CalDAV
	// 5 min, Google 30 min); a provider not listed uses the CalDAV one.
	Intervals map[string]time.Duration
	// Jitter: a connection becomes due up to this much before its
	// interval is over, drawn anew every poll, so that connections synced
	// together drift apart (default a fifth of the shortest interval).
	Jitter time.Duration
	// FullEvery: a connection whose last full reconciliation is older
	// gets a full pull (default 24 h).
	FullEvery time.Duration
	// ErrorBackoff: a connection whose last run failed waits this long
	// before the poller asks again (asynq's own retries run meanwhile;
	// default 15 min).
	ErrorBackoff time.Duration
	// Providers, when set, are the only providers polled: those the sync
	// engine has a remote for. Others would fail on every poll.
	Providers []string
	// Limit is the page of due connections one poll looks at (default
	// store.DefaultDueLimit).
	Limit  int
	Now    func() time.Time
	Logger *slog.Logger
}

// PollReport counts what one poll did.
type PollReport struct {
	Pulls   int // calendar:pull tasks handed to the queue
	Full    int // of them full reconciliations
	Resumed int // connections whose pause ended
	Failed  int
}

// Poller enqueues pulls of the connections that are due. It runs from
// the outbox sweep (SweeperConfig.Poll), so it needs no schedule of its
// own; the sweep interval is its resolution.
type Poller struct {
	cfg PollerConfig
	log *slog.Logger
}

// NewPoller returns a poller with defaults filled in.
func NewPoller(cfg PollerConfig) *Poller {
	iv := map[string]time.Duration{
		store.ProviderCalDAV: DefaultCalDAVPollInterval,
		store.ProviderGoogle: DefaultGooglePollInterval,
	}
	for k, v := range cfg.Intervals {
		if v > 0 {
			iv[k] = v
		}
	}
	cfg.Intervals = iv
	if cfg.Jitter <= 0 {
		cfg.Jitter = min(iv[store.ProviderCalDAV], iv[store.ProviderGoogle]) / 5
	}
	if cfg.FullEvery <= 0 {
		cfg.FullEvery = DefaultFullSyncEvery
	}
	if cfg.ErrorBackoff <= 0 {
		cfg.ErrorBackoff = DefaultSyncErrorBackoff
	}
	if cfg.Limit <= 0 {
		cfg.Limit = store.DefaultDueLimit
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Poller{cfg: cfg, log: cfg.Logger}
}

func (p *Poller) interval(provider string) time.Duration {
	if d, ok := p.cfg.Intervals[provider]; ok {
		return d
	}
	return p.cfg.Intervals[store.ProviderCalDAV]
}

// Poll enqueues the pulls that are due; it is what SweeperConfig.Poll
// takes.
func (p *Poller) Poll(ctx context.Context) error {
	_, err := p.PollOnce(ctx)
	return err
}

// PollOnce enqueues a pull for every active connection whose last
// successful sync is older than its provider's interval (less a random
// jitter), full when its last full reconciliation is older than
// FullEvery. Connections whose last run failed within ErrorBackoff are
// left to asynq's retries.
func (p *Poller) PollOnce(ctx context.Context) (PollReport, error) {
	var rep PollReport
	now := p.cfg.Now()
	shortest := p.cfg.Intervals[store.ProviderCalDAV]
	for _, d := range p.cfg.Intervals {
		shortest = min(shortest, d)
	}
	var errs []error
	// A connection back from a pause gets a full pull: it reconciles the
	// copies whose pushes were dropped while it was paused.
	resumed, err := p.cfg.Store.ResumePausedConnections(ctx, now)
	if err != nil {
		errs = append(errs, fmt.Errorf("poll: resume: %w", err))
	}
	for _, id := range resumed {
		rep.Resumed++
		if err := p.cfg.Queue.EnqueuePull(ctx, id, true); err != nil {
			rep.Failed++
			errs = append(errs, err)
			continue
		}
		rep.Pulls++
		rep.Full++
	}
	ids, err := p.cfg.Store.ConnectionsDueForSync(ctx, now.Add(-shortest+p.cfg.Jitter), p.cfg.Limit)
	if err != nil {
		return rep, errors.Join(append(errs, fmt.Errorf("poll: %w", err))...)
	}
	for _, id := range ids {
		full, due, err := p.due(ctx, id, now)
		if err != nil {
			rep.Failed++
			errs = append(errs, err)
			continue
		}
		if !due {
			continue
		}
		if err := p.cfg.Queue.EnqueuePull(ctx, id, full); err != nil {
			rep.Failed++
			errs = append(errs, err)
			continue
		}
		rep.Pulls++
		if full {
			rep.Full++
		}
	}
	p.log.Debug("poll: done", "due", len(ids), "pulls", rep.Pulls, "full", rep.Full, "failed", rep.Failed)
	if len(errs) > 0 {
		return rep, fmt.Errorf("poll: %d errors, first: %w", len(errs), errs[0])
	}
	return rep, nil
}

// due decides whether one connection gets a pull now, and which.
func (p *Poller) due(ctx context.Context, id string, now time.Time) (full, due bool, err error) {
	c, err := p.cfg.Store.GetConnectionByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("poll %s: %w", id, err)
	}
	if p.cfg.Providers != nil && !slices.Contains(p.cfg.Providers, c.Provider) {
		return false, false, nil
	}
	st, err := p.cfg.Store.GetSyncStatus(ctx, id)
	if err != nil {
		return false, false, fmt.Errorf("poll %s: %w", id, err)
	}
	if st.LastRun.Error != "" && now.Sub(st.LastRun.At) < p.cfg.ErrorBackoff {
		return false, false, nil
	}
	if !st.LastSyncAt.IsZero() {
		wait := p.interval(c.Provider)
		if p.cfg.Jitter > 0 {
			wait -= rand.N(p.cfg.Jitter)
		}
		if now.Sub(st.LastSyncAt) < wait {
			return false, false, nil
		}
	}
	full = st.LastFullAt.IsZero() || now.Sub(st.LastFullAt) >= p.cfg.FullEvery
	return full, true, nil
}
