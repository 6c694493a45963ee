package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/internal/store"
	calsync "github.com/termind/termind/internal/sync"
	"github.com/termind/termind/queue"
)

// RevokerStore is what the revoker needs from the store.
type RevokerStore interface {
	GetConnectionByID(ctx context.Context, id string) (store.Connection, error)
	ConnectionCredentials(ctx context.Context, id string) ([]byte, error)
	FinishRevocation(ctx context.Context, id string, now time.Time) error
	Audit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error)
}

// OurCopiesRemover removes termind's own copies from one external calendar
// and leaves the user's events alone (caldav.Client).
type OurCopiesRemover interface {
	RemoveOurCopies(ctx context.Context) (removed int, err error)
}

// CalDAVRemoverFactory builds the remover for a connection from its
// decrypted credentials. CalDAVRemovers is the one the daemon uses for
// CalDAV; the Google one comes from the googleremote package.
type CalDAVRemoverFactory func(conn store.Connection, credentials []byte) (OurCopiesRemover, error)

// ChannelStopper stops a connection's push channels (*Watcher).
type ChannelStopper interface {
	StopAll(ctx context.Context, conn store.Connection, credentials []byte) (int, error)
}

// TokenRevoker revokes an OAuth token at the provider (google.OAuth). A
// token the provider no longer knows counts as revoked.
type TokenRevoker interface {
	Revoke(ctx context.Context, token string) error
}

// caldavCredentials is how a CalDAV connection's credentials are stored.
type caldavCredentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// googleCredentials is the part of a Google connection's stored token
// that revocation needs.
type googleCredentials struct {
	RefreshToken string `json:"refresh_token"`
	AccessToken  string `json:"access_token"`
}

// CalDAVRemovers returns the factory that reaches a CalDAV connection's
// calendar with hc, which must come from caldav.NewHTTPClient (the address
// rules for user-supplied URLs live there).
func CalDAVRemovers(hc *http.Client) CalDAVRemoverFactory {
	return func(conn store.Connection, credentials []byte) (OurCopiesRemover, error) {
		var cr caldavCredentials
		if err := json.Unmarshal(credentials, &cr); err != nil {
			// The error text could quote the credentials: leave it out.
			return nil, errors.New("caldav credentials are not valid JSON")
		}
		return caldav.NewClient(hc, conn.CalendarURL, cr.Username, cr.Password), nil
	}
}

// DefaultCleanupDeadline is how long after a revocation began the revoker
// keeps retrying to remove copies and revoke tokens while the provider is
// unreachable. After it, the revocation finishes without them and the
// audit log says so: credentials are not kept for ever because a server
// went away.
const DefaultCleanupDeadline = 7 * 24 * time.Hour

// RevokerConfig configures the revoker. Store is required. CalDAV and
// Google may be nil when that provider is not configured; a connection of
// that provider then waits (retries) until the deadline.
type RevokerConfig struct {
	Store  RevokerStore
	CalDAV CalDAVRemoverFactory
	Google TokenRevoker
	// GoogleCopies removes our copies from Google calendars; Channels
	// stops push channels (nil: none are opened).
	GoogleCopies CalDAVRemoverFactory
	Channels     ChannelStopper
	// CleanupDeadline: see DefaultCleanupDeadline (the default).
	CleanupDeadline time.Duration
	Now             func() time.Time
	Logger          *slog.Logger
	// Peers and BlockQueue, when set, re-block the subject's other
	// blocking calendars once the revocation removed this one's imports
	// (block.go).
	Peers      BlockPeers
	BlockQueue BlockEnqueuer
}

// Revoker handles calendar:revoke: once a revocation has committed
// (store.BeginRevocation), it removes our copies from the external
// calendar while the credentials still work, revokes the OAuth grant,
// and then deletes credentials, imported events, links and the sync
// cursor (store.FinishRevocation). Every step may run again: a task that
// runs twice, or is retried halfway, does no harm.
type Revoker struct {
	cfg RevokerConfig
	log *slog.Logger
}

// NewRevoker returns a revoker with defaults filled in.
func NewRevoker(cfg RevokerConfig) *Revoker {
	if cfg.CleanupDeadline <= 0 {
		cfg.CleanupDeadline = DefaultCleanupDeadline
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Revoker{cfg: cfg, log: cfg.Logger}
}

// ProcessTask implements asynq.Handler for calendar:revoke. An error
// return makes asynq retry the task with backoff; the connection stays
// revoking meanwhile, which the API shows.
func (rv *Revoker) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := queue.ParseConnectionPayload(t.Payload())
	if err != nil {
		// A malformed payload will not improve with retries.
		return fmt.Errorf("revoke: %v: %w", err, asynq.SkipRetry)
	}
	return rv.Revoke(ctx, p.ConnectionID)
}

// What the revoker writes to the audit log: one entry per cleanup step,
// action and outcome, with a short non-personal detail. Tests and
// operators read them with store.ListAudit.
const (
	AuditActionCopies = "connection.revoke_copies"
	AuditActionToken  = "connection.revoke_token"

	OutcomeRemoved      = "removed"       // copies removed; detail count=N
	OutcomeKept         = "kept"          // KeepCopiesOnRevoke
	OutcomeCalendarGone = "calendar_gone" // nothing left to remove them from
	OutcomeNoneWritten  = "none_written"  // termind wrote no copies there
	OutcomeNotRemoved   = "not_removed"   // with a reason
	OutcomeRevoked      = "revoked"       // the OAuth grant ended
	OutcomeNotRevoked   = "not_revoked"   // with a reason

	ReasonCredentialsRejected = "credentials_rejected"
	ReasonNoCredentials       = "no_credentials"
	ReasonBadCredentials      = "bad_credentials"
	ReasonProviderRefused     = "refused"
	ReasonDeadlinePassed      = "deadline_passed"
)

// Revoke runs the cleanup of one connection, as ProcessTask does.
func (rv *Revoker) Revoke(ctx context.Context, connectionID string) error {
	c, err := rv.cfg.Store.GetConnectionByID(ctx, connectionID)
	if errors.Is(err, store.ErrNotFound) {
		// Finished before, with the row erased (subject erasure).
		rv.log.Debug("revoke: connection gone", "connection_id", connectionID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("revoke %s: load connection: %w", connectionID, err)
	}
	switch c.State {
	case store.ConnRevoked:
		rv.log.Debug("revoke: already done", "connection_id", c.ID)
		return nil
	case store.ConnRevoking:
	default:
		rv.log.Info("revoke: connection not revoking, nothing to clean", "connection_id", c.ID, "state", c.State)
		return nil
	}

	creds, err := rv.cfg.Store.ConnectionCredentials(ctx, c.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		creds = nil // nothing to reach the calendar with, nothing to revoke
	case err != nil:
		// Decryption failed (a key missing from the keyring) or the store
		// did not answer: try again, until the deadline.
		if !rv.pastDeadline(c) {
			return fmt.Errorf("revoke %s: credentials: %w", c.ID, err)
		}
		rv.log.Error("revoke: credentials unreadable past the deadline, finishing without cleanup", "connection_id", c.ID, "err", err)
		creds = nil
	}

	// Channels first: the deletions below would only notify us.
	if rv.cfg.Channels != nil {
		n, err := rv.cfg.Channels.StopAll(ctx, c, creds)
		if err != nil {
			if !rv.pastDeadline(c) {
				return fmt.Errorf("revoke %s: stop channels: %w", c.ID, err)
			}
			rv.log.Error("revoke: channels not stopped past the deadline; they expire by themselves", "connection_id", c.ID, "err", err)
		} else if n > 0 {
			rv.log.Info("revoke: channels stopped", "connection_id", c.ID, "channels", n)
		}
	}
	if err := rv.removeCopies(ctx, c, creds); err != nil {
		return err
	}
	if err := rv.revokeToken(ctx, c, creds); err != nil {
		return err
	}
	// Asked before the connection row may go (erasure).
	peers := rv.blockingPeers(ctx, c.ID)
	if err := rv.cfg.Store.FinishRevocation(ctx, c.ID, rv.cfg.Now()); err != nil {
		return fmt.Errorf("revoke %s: finish: %w", c.ID, err)
	}
	rv.enqueueBlocks(ctx, c.ID, peers)
	rv.log.Info("revoke: done", "connection_id", c.ID, "tenant_id", c.TenantID, "provider", c.Provider)
	return nil
}

// removeCopies removes our copies from the external calendar unless the
// connection keeps them. A failure that retrying can mend is returned;
// one it cannot is recorded and the cleanup goes on.
func (rv *Revoker) removeCopies(ctx context.Context, c store.Connection, creds []byte) error {
	if c.KeepCopiesOnRevoke {
		if err := rv.removeBlockers(ctx, c, creds); err != nil {
			return err
		}
		return rv.record(ctx, c, AuditActionCopies, OutcomeKept, "")
	}
	switch c.Provider {
	case store.ProviderCalDAV:
		return rv.removeCalDAVCopies(ctx, c, creds)
	case store.ProviderGoogle:
		return rv.removeGoogleCopies(ctx, c, creds)
	}
	return rv.record(ctx, c, AuditActionCopies, OutcomeNotRemoved, "unknown_provider")
}

func (rv *Revoker) removeCalDAVCopies(ctx context.Context, c store.Connection, creds []byte) error {
	if creds == nil {
		return rv.record(ctx, c, AuditActionCopies, OutcomeNotRemoved, ReasonNoCredentials)
	}
	if rv.cfg.CalDAV == nil {
		return rv.retryOrGiveUp(ctx, c, AuditActionCopies, OutcomeNotRemoved, errors.New("no CalDAV client configured"))
	}
	remover, err := rv.cfg.CalDAV(c, creds)
	if err != nil {
		rv.log.Warn("revoke: caldav credentials unusable, copies not removed", "connection_id", c.ID, "err", err)
		return rv.record(ctx, c, AuditActionCopies, OutcomeNotRemoved, ReasonBadCredentials)
	}
	removed, err := remover.RemoveOurCopies(ctx)
	switch {
	case err == nil:
		rv.log.Info("revoke: copies removed", "connection_id", c.ID, "removed", removed)
		return rv.record(ctx, c, AuditActionCopies, OutcomeRemoved, "count="+strconv.Itoa(removed))
	case ctx.Err() != nil:
		return fmt.Errorf("revoke %s: remove copies: %w", c.ID, err)
	case errors.Is(err, caldav.ErrCredentialsRejected):
		// The user withdrew the password (or deleted the account): the
		// copies cannot be reached any more, and retrying will not change
		// that.
		rv.log.Warn("revoke: credentials rejected, copies not removed", "connection_id", c.ID, "removed", removed)
		return rv.record(ctx, c, AuditActionCopies, OutcomeNotRemoved, ReasonCredentialsRejected)
	case errors.Is(err, caldav.ErrCalendarNotFound):
		rv.log.Info("revoke: calendar gone, no copies to remove", "connection_id", c.ID)
		return rv.record(ctx, c, AuditActionCopies, OutcomeCalendarGone, "")
	case errors.Is(err, caldav.ErrForbiddenAddress), errors.Is(err, caldav.ErrInvalidURL),
		errors.Is(err, caldav.ErrNotCalDAV), errors.Is(err, caldav.ErrRefused):
		rv.log.Warn("revoke: server refused, copies not removed", "connection_id", c.ID, "err", err)
		return rv.record(ctx, c, AuditActionCopies, OutcomeNotRemoved, ReasonProviderRefused)
	}
	// Unreachable, or copies changing under us: try again later.
	return rv.retryOrGiveUp(ctx, c, AuditActionCopies, OutcomeNotRemoved, err)
}

// removeGoogleCopies deletes the events marked as ours, before the token
// that can reach them is revoked.
func (rv *Revoker) removeGoogleCopies(ctx context.Context, c store.Connection, creds []byte) error {
	if creds == nil {
		return rv.record(ctx, c, AuditActionCopies, OutcomeNotRemoved, ReasonNoCredentials)
	}
	if rv.cfg.GoogleCopies == nil {
		return rv.retryOrGiveUp(ctx, c, AuditActionCopies, OutcomeNotRemoved, errors.New("no Google client configured"))
	}
	remover, err := rv.cfg.GoogleCopies(c, creds)
	if err != nil {
		rv.log.Warn("revoke: google credentials unusable, copies not removed", "connection_id", c.ID)
		return rv.record(ctx, c, AuditActionCopies, OutcomeNotRemoved, ReasonBadCredentials)
	}
	removed, err := remover.RemoveOurCopies(ctx)
	switch {
	case err == nil:
		rv.log.Info("revoke: copies removed", "connection_id", c.ID, "removed", removed)
		return rv.record(ctx, c, AuditActionCopies, OutcomeRemoved, "count="+strconv.Itoa(removed))
	case ctx.Err() != nil:
		return fmt.Errorf("revoke %s: remove copies: %w", c.ID, err)
	case errors.Is(err, calsync.ErrCredentialsRejected):
		rv.log.Warn("revoke: credentials rejected, copies not removed", "connection_id", c.ID, "removed", removed)
		return rv.record(ctx, c, AuditActionCopies, OutcomeNotRemoved, ReasonCredentialsRejected)
	case errors.Is(err, calsync.ErrRefused):
		rv.log.Warn("revoke: google refused, copies not removed", "connection_id", c.ID, "err", err)
		return rv.record(ctx, c, AuditActionCopies, OutcomeNotRemoved, ReasonProviderRefused)
	}
	return rv.retryOrGiveUp(ctx, c, AuditActionCopies, OutcomeNotRemoved, err)
}

// revokeToken ends the OAuth grant of a Google connection. Revoking the
// refresh token ends the whole grant, access tokens included.
func (rv *Revoker) revokeToken(ctx context.Context, c store.Connection, creds []byte) error {
	if c.Provider != store.ProviderGoogle || creds == nil {
		return nil
	}
	var tok googleCredentials
	if err := json.Unmarshal(creds, &tok); err != nil {
		rv.log.Warn("revoke: google credentials unreadable, token not revoked", "connection_id", c.ID)
		return rv.record(ctx, c, AuditActionToken, OutcomeNotRevoked, ReasonBadCredentials)
	}
	token := tok.RefreshToken
	if token == "" {
		token = tok.AccessToken
	}
	if token == "" {
		return rv.record(ctx, c, AuditActionToken, OutcomeNotRevoked, ReasonNoCredentials)
	}
	if rv.cfg.Google == nil {
		return rv.retryOrGiveUp(ctx, c, AuditActionToken, OutcomeNotRevoked, errors.New("no Google client configured"))
	}
	err := rv.cfg.Google.Revoke(ctx, token)
	switch {
	case err == nil:
		rv.log.Info("revoke: token revoked", "connection_id", c.ID)
		return rv.record(ctx, c, AuditActionToken, OutcomeRevoked, "")
	case ctx.Err() != nil:
		return fmt.Errorf("revoke %s: revoke token: %w", c.ID, err)
	case !temporary(err):
		// A final answer other than invalid_token (which the connector
		// counts as revoked): retrying will not help.
		rv.log.Warn("revoke: token revocation refused", "connection_id", c.ID, "err", err)
		return rv.record(ctx, c, AuditActionToken, OutcomeNotRevoked, ReasonProviderRefused)
	}
	return rv.retryOrGiveUp(ctx, c, AuditActionToken, OutcomeNotRevoked, err)
}

// temporary reports whether err says it may pass (google.OAuthError,
// google.TemporaryError); an error that does not say is taken as
// temporary.
func temporary(err error) bool {
	var te temporaryError
	if errors.As(err, &te) {
		return te.Temporary()
	}
	return true
}

// retryOrGiveUp returns err for asynq to retry, unless the revocation is
// older than the deadline: then the failure is recorded and the cleanup
// goes on without the step.
func (rv *Revoker) retryOrGiveUp(ctx context.Context, c store.Connection, action, outcome string, err error) error {
	if !rv.pastDeadline(c) {
		rv.log.Warn("revoke: will retry", "connection_id", c.ID, "step", action, "err", err)
		return fmt.Errorf("revoke %s: %s: %w", c.ID, action, err)
	}
	rv.log.Error("revoke: giving up on a step past the deadline", "connection_id", c.ID, "step", action, "err", err)
	return rv.record(ctx, c, action, outcome, ReasonDeadlinePassed)
}

func (rv *Revoker) pastDeadline(c store.Connection) bool {
	return !c.RevokeRequestedAt.IsZero() && rv.cfg.Now().Sub(c.RevokeRequestedAt) > rv.cfg.CleanupDeadline
}

// record writes the outcome of a cleanup step to the audit log: short and
// non-personal.
func (rv *Revoker) record(ctx context.Context, c store.Connection, action, outcome, detail string) error {
	if detail != "" {
		outcome += ":" + detail
	}
	_, err := rv.cfg.Store.Audit(ctx, store.AuditEntry{
		TenantID:   c.TenantID,
		Actor:      "system",
		Action:     action,
		TargetKind: "connection",
		TargetID:   c.ID,
		SubjectID:  c.SubjectID,
		Detail:     outcome,
	})
	if err != nil {
		return fmt.Errorf("revoke %s: audit: %w", c.ID, err)
	}
	return nil
}
