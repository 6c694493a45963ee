package workers

// Push channels (Google events.watch): calendar:watch_renew opens a
// channel for an active Google connection and renews it before it
// expires, overlapping — the new channel is open before the old one is
// stopped, so no change goes unnoticed in between. The poller's sweep
// schedules the renewals (Watcher.Schedule); revocation stops the
// channels (Watcher.StopAll). Notifications are a hint, not a record:
// the jittered poll stays as the backstop.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/connectors/google"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/queue"
)

// WatchStore is what the watcher needs from the store.
type WatchStore interface {
	GetConnectionByID(ctx context.Context, id string) (store.Connection, error)
	ConnectionCredentials(ctx context.Context, id string) ([]byte, error)
	AddWatchChannel(ctx context.Context, w store.WatchChannel) error
	ListWatchChannels(ctx context.Context, connectionID string) ([]store.WatchChannel, error)
	DeleteWatchChannel(ctx context.Context, id string) error
	WatchRenewalsDue(ctx context.Context, provider string, before time.Time, limit int) ([]string, error)
}

// ChannelOpener opens and stops push channels on one calendar
// (*google.Calendar).
type ChannelOpener interface {
	Watch(ctx context.Context, id, address, token string, ttl time.Duration) (google.Channel, error)
	Stop(ctx context.Context, id, resourceID string) error
}

// ChannelOpenerFactory reaches a connection's calendar with its
// decrypted credentials.
type ChannelOpenerFactory func(conn store.Connection, credentials []byte) (ChannelOpener, error)

// WatchEnqueuer enqueues calendar:watch_renew (queue.Client).
type WatchEnqueuer interface {
	EnqueueWatchRenew(ctx context.Context, connectionID string) error
}

// Defaults of WatcherConfig.
const (
	DefaultWatchTTL         = 7 * 24 * time.Hour
	DefaultWatchRenewBefore = 24 * time.Hour
)

// WatcherConfig configures the watcher. Store, Calendars and Address are
// required; Queue only for Schedule.
type WatcherConfig struct {
	Store     WatchStore
	Calendars ChannelOpenerFactory
	Queue     WatchEnqueuer
	// Address is the webhook URL Google posts notifications to.
	Address string
	// TTL is the channel lifetime asked for (DefaultWatchTTL; Google may
	// grant less). RenewBefore: a channel expiring within it is replaced
	// (DefaultWatchRenewBefore).
	TTL, RenewBefore time.Duration
	Now              func() time.Time
	Logger           *slog.Logger
}

// Watcher opens, renews and stops push channels.
type Watcher struct {
	cfg WatcherConfig
	log *slog.Logger
}

// NewWatcher returns a watcher with defaults filled in.
func NewWatcher(cfg WatcherConfig) *Watcher {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultWatchTTL
	}
	if cfg.RenewBefore <= 0 {
		cfg.RenewBefore = DefaultWatchRenewBefore
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Watcher{cfg: cfg, log: cfg.Logger}
}

// RegisterWatch installs the calendar:watch_renew handler; a nil watcher
// is left out.
func RegisterWatch(mux *asynq.ServeMux, w *Watcher) {
	if w != nil {
		mux.HandleFunc(queue.TypeCalendarWatchRenew, w.ProcessTask)
	}
}

// ProcessTask handles calendar:watch_renew.
func (w *Watcher) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := queue.ParseConnectionPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("watch renew: %v: %w", err, asynq.SkipRetry)
	}
	return w.Renew(ctx, p.ConnectionID)
}

// Schedule enqueues a renewal for every active Google connection whose
// newest channel expires within RenewBefore, or that has none. It runs
// from the sweep, next to the poller.
func (w *Watcher) Schedule(ctx context.Context) error {
	ids, err := w.cfg.Store.WatchRenewalsDue(ctx, store.ProviderGoogle, w.cfg.Now().Add(w.cfg.RenewBefore), 0)
	if err != nil {
		return fmt.Errorf("watch schedule: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if err := w.cfg.Queue.EnqueueWatchRenew(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Renew makes sure an active Google connection has a channel that lives
// longer than RenewBefore: it opens a new one, records it, and only then
// stops the ones it replaces. A connection that is not active is left
// alone (revocation stops its channels).
func (w *Watcher) Renew(ctx context.Context, connectionID string) error {
	conn, err := w.cfg.Store.GetConnectionByID(ctx, connectionID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("watch renew %s: %w", connectionID, err)
	}
	if conn.Provider != store.ProviderGoogle || conn.State != store.ConnActive {
		return nil
	}
	now := w.cfg.Now()
	old, err := w.cfg.Store.ListWatchChannels(ctx, conn.ID)
	if err != nil {
		return fmt.Errorf("watch renew %s: %w", conn.ID, err)
	}
	if n := len(old); n > 0 && old[n-1].ExpiresAt.After(now.Add(w.cfg.RenewBefore)) {
		return nil // renewed meanwhile
	}
	cal, err := w.calendar(ctx, conn)
	if err != nil {
		return err
	}
	id, token := "tmc_"+randomToken(16), randomToken(32)
	ch, err := cal.Watch(ctx, id, w.cfg.Address, token, w.cfg.TTL)
	if err != nil {
		return w.failed(conn, "open channel", err)
	}
	expires := ch.Expiration
	if expires.IsZero() {
		expires = now.Add(w.cfg.TTL)
	}
	err = w.cfg.Store.AddWatchChannel(ctx, store.WatchChannel{ID: id, ConnectionID: conn.ID, ResourceID: ch.ResourceID,
		TokenHash: store.HashChannelToken(token), ExpiresAt: expires, CreatedAt: now})
	if err != nil {
		// Revoked meanwhile, or not recorded: a channel we do not know
		// must not stay open.
		if serr := cal.Stop(ctx, id, ch.ResourceID); serr != nil && !errors.Is(serr, google.ErrNotFound) {
			w.log.Warn("watch: unrecorded channel not stopped", "connection_id", conn.ID, "err", serr)
		}
		if errors.Is(err, store.ErrNotActive) {
			return nil
		}
		return fmt.Errorf("watch renew %s: record: %w", conn.ID, err)
	}
	w.log.Info("watch: channel opened", "connection_id", conn.ID, "expires_at", expires, "replaces", len(old))
	return w.stop(ctx, conn, cal, old)
}

// StopAll stops every channel of a connection (revocation). Without
// credentials nothing can be stopped at Google — the channels expire by
// themselves and their notifications find no channel here — so they are
// only forgotten.
func (w *Watcher) StopAll(ctx context.Context, conn store.Connection, credentials []byte) (int, error) {
	chans, err := w.cfg.Store.ListWatchChannels(ctx, conn.ID)
	if err != nil || len(chans) == 0 {
		return 0, err
	}
	var cal ChannelOpener
	if credentials != nil {
		cal, err = w.cfg.Calendars(conn, credentials)
		if err != nil {
			w.log.Warn("watch: credentials unusable, channels left to expire", "connection_id", conn.ID)
			cal = nil
		}
	}
	if err := w.stop(ctx, conn, cal, chans); err != nil {
		return 0, err
	}
	return len(chans), nil
}

// stop stops chans at Google (cal nil: only forgets them). A channel
// Google no longer knows is stopped already; credentials Google refuses
// cannot stop anything, so the channel is forgotten and expires.
func (w *Watcher) stop(ctx context.Context, conn store.Connection, cal ChannelOpener, chans []store.WatchChannel) error {
	for _, c := range chans {
		if cal != nil {
			err := cal.Stop(ctx, c.ID, c.ResourceID)
			switch {
			case err == nil, errors.Is(err, google.ErrNotFound), errors.Is(err, google.ErrInvalidGrant), errors.Is(err, google.ErrUnauthorized):
			default:
				return fmt.Errorf("watch %s: stop channel: %w", conn.ID, err)
			}
		}
		if err := w.cfg.Store.DeleteWatchChannel(ctx, c.ID); err != nil {
			return fmt.Errorf("watch %s: %w", conn.ID, err)
		}
	}
	return nil
}

func (w *Watcher) calendar(ctx context.Context, conn store.Connection) (ChannelOpener, error) {
	creds, err := w.cfg.Store.ConnectionCredentials(ctx, conn.ID)
	if err != nil {
		return nil, fmt.Errorf("watch %s: credentials: %w", conn.ID, err)
	}
	cal, err := w.cfg.Calendars(conn, creds)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w: %w", conn.ID, err, asynq.SkipRetry)
	}
	return cal, nil
}

// failed decides whether a failed watch call is retried: refused
// credentials and final refusals are not (the sync reports the broken
// connection; the poll covers the missing channel).
func (w *Watcher) failed(conn store.Connection, step string, err error) error {
	var t interface{ Temporary() bool }
	if errors.As(err, &t) && t.Temporary() {
		return fmt.Errorf("watch %s: %s: %w", conn.ID, step, err)
	}
	w.log.Warn("watch: refused, not retried", "connection_id", conn.ID, "step", step, "err", err)
	return fmt.Errorf("watch %s: %s: %w: %w", conn.ID, step, err, asynq.SkipRetry)
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
