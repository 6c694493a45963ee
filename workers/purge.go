package workers

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/internal/store"
)

// PurgerStore is what the purger needs from the store.
type PurgerStore interface {
	PurgeExpired(ctx context.Context, now time.Time, batchSize int, dryRun bool) (store.PurgeReport, error)
}

// OffboardingPurger erases the tenants whose offboarding grace period has
// ended (*store.Store). The purger runs it when its Store implements it.
type OffboardingPurger interface {
	PurgeOffboarded(ctx context.Context, now time.Time, batchSize int) (store.OffboardPurgeReport, error)
}

// ArchiveCleaner deletes the queue's archived tasks (queue.Inspector).
type ArchiveCleaner interface {
	DeleteArchived(ctx context.Context) (int, error)
}

// PurgerConfig configures the purger. Store is required; Archive may be
// nil (a CLI run without the queue).
type PurgerConfig struct {
	Store   PurgerStore
	Archive ArchiveCleaner
	// Revokes, if set, gets the cleanup of every connection the purge put
	// into revocation (broken too long, inactive subjects); without it the
	// sweeper picks them up.
	Revokes   RevokeEnqueuer
	BatchSize int // default 10000
	Now       func() time.Time
	Logger    *slog.Logger
	// Metrics counts purged rows; nil: none.
	Metrics PurgeMetrics
}

// Purger handles retention:purge: personal data whose retention ended is
// deleted (counted into the anonymous statistics first, by the store), and
// tasks that ran out of retries are dropped from the queue.
type Purger struct {
	cfg PurgerConfig
	log *slog.Logger
}

// NewPurger returns a purger with defaults filled in.
func NewPurger(cfg PurgerConfig) *Purger {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 10000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	return &Purger{cfg: cfg, log: cfg.Logger}
}

// ProcessTask implements asynq.Handler for retention:purge.
func (p *Purger) ProcessTask(ctx context.Context, _ *asynq.Task) error {
	_, err := p.Purge(ctx, false)
	return err
}

// Purge deletes expired notifications (dryRun: only counts them) and,
// unless dryRun, the personal data of tenants whose offboarding grace
// period ended and the queue's archived tasks.
func (p *Purger) Purge(ctx context.Context, dryRun bool) (store.PurgeReport, error) {
	rep, err := p.cfg.Store.PurgeExpired(ctx, p.cfg.Now(), p.cfg.BatchSize, dryRun)
	if err != nil {
		return rep, fmt.Errorf("purge: %w", err)
	}
	if !dryRun {
		p.cfg.Metrics.Purged(rep.Notifications)
	}
	if !dryRun && p.cfg.Revokes != nil {
		for _, id := range rep.Revoking {
			if err := p.cfg.Revokes.EnqueueRevoke(ctx, id); err != nil {
				// The revocation has committed; the sweeper retries the cleanup.
				p.log.Warn("purge: enqueue revoke", "connection_id", id, "err", err)
			}
		}
	}
	tenants, heldTenants := 0, 0
	if o, ok := p.cfg.Store.(OffboardingPurger); ok && !dryRun {
		off, err := o.PurgeOffboarded(ctx, p.cfg.Now(), p.cfg.BatchSize)
		if err != nil {
			return rep, fmt.Errorf("purge: %w", err)
		}
		tenants, heldTenants = off.Tenants, off.Held
	}
	archived := 0
	if !dryRun && p.cfg.Archive != nil {
		archived, err = p.cfg.Archive.DeleteArchived(ctx)
		if err != nil {
			return rep, fmt.Errorf("purge: %w", err)
		}
	}
	p.log.Info("purge: done", "dry_run", dryRun, "notifications", rep.Notifications,
		"batches", rep.Batches, "archived_tasks", archived, "audit", rep.Audit,
		"imported_events", rep.ImportedEvents, "connections_revoked", rep.ConnectionsRevoked,
		"subjects_erased", rep.SubjectsErased, "subjects_anonymised", rep.SubjectsAnonymised,
		"holds_expired", rep.HoldsExpired, "held", rep.Held.Total(), "offboarded_tenants", tenants, "offboarding_held", heldTenants)
	return rep, nil
}
