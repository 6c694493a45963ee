package store

// The methods below are the store's contract. Their bodies are filled in by
// the store implementation; signatures are fixed so that api, workers and cmd
// can be written against them.

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

var errUnimplemented = errors.New("store: not implemented")

// Store is a handle on the database. Safe for concurrent use.
type Store struct{}

// Open connects to the database named by url: "" or a file path or
// "sqlite:PATH" → SQLite (WAL) at that path ("" → ./termind.db);
// "postgres://…" or "postgresql://…" → PostgreSQL through pgx v5.
// Open does not migrate; call Migrate.
func Open(ctx context.Context, url string) (*Store, error) { return nil, errUnimplemented }

// Dialect is "sqlite" or "postgres".
func (s *Store) Dialect() string { return "" }

// Migrate applies the embedded migrations (PostgreSQL: under an advisory lock).
func (s *Store) Migrate(ctx context.Context) error { return errUnimplemented }

// Ping checks the database is reachable (readiness).
func (s *Store) Ping(ctx context.Context) error { return errUnimplemented }

// DB exposes the database handle to tests and tools that check raw rows.
func (s *Store) DB() *sql.DB { return nil }

// Close releases the connections.
func (s *Store) Close() error { return nil }

// CreateTenant stores a tenant with default settings.
func (s *Store) CreateTenant(ctx context.Context, name string) (Tenant, error) {
	return Tenant{}, errUnimplemented
}

// GetTenant returns ErrNotFound for an unknown id.
func (s *Store) GetTenant(ctx context.Context, id string) (Tenant, error) {
	return Tenant{}, errUnimplemented
}

// ListTenants lists all tenants, oldest first.
func (s *Store) ListTenants(ctx context.Context) ([]Tenant, error) { return nil, errUnimplemented }

// CreateAPIKey makes a new key for a tenant and returns its plaintext token
// (shown once; only a hash is stored).
func (s *Store) CreateAPIKey(ctx context.Context, tenantID, role string) (token string, key APIKey, err error) {
	return "", APIKey{}, errUnimplemented
}

// LookupAPIKey authenticates a token (constant-time comparison of hashes).
// Unknown or wrong tokens give ErrNotFound.
func (s *Store) LookupAPIKey(ctx context.Context, token string) (APIKey, error) {
	return APIKey{}, errUnimplemented
}

// GetSubject returns ErrNotFound if the tenant never named this subject.
func (s *Store) GetSubject(ctx context.Context, tenantID, subjectID string) (Subject, error) {
	return Subject{}, errUnimplemented
}

// SetSubjectRestricted sets or clears the Art. 18 restriction (creating the subject row if needed).
func (s *Store) SetSubjectRestricted(ctx context.Context, tenantID, subjectID string, restricted bool) error {
	return errUnimplemented
}

// SetSMSOptedOut marks a subject as opted out of SMS.
func (s *Store) SetSMSOptedOut(ctx context.Context, tenantID, subjectID string) error {
	return errUnimplemented
}

// RecordConsent appends a decision to the ledger (creating the subject row
// if needed) and returns it with ID and CreatedAt set.
func (s *Store) RecordConsent(ctx context.Context, c Consent) (Consent, error) {
	return Consent{}, errUnimplemented
}

// ListConsents returns a subject's ledger, oldest first.
func (s *Store) ListConsents(ctx context.Context, tenantID, subjectID string) ([]Consent, error) {
	return nil, errUnimplemented
}

// ConsentDecision is the latest decision for (subject, purpose), or "" if none.
func (s *Store) ConsentDecision(ctx context.Context, tenantID, subjectID, purpose string) (string, error) {
	return "", errUnimplemented
}

// CreateNotifications inserts notifications in one transaction, honouring
// idempotency keys per tenant: an existing key with the same RequestHash
// yields Existing, with another hash Mismatch; otherwise the item is stored
// (ID, Status=scheduled, CreatedAt, UpdatedAt and ExpiresAt set by the store)
// and creates the subject row if SubjectID is set.
func (s *Store) CreateNotifications(ctx context.Context, items []Notification) ([]CreateResult, error) {
	return nil, errUnimplemented
}

// GetNotification returns ErrNotFound for an unknown id or another tenant's.
func (s *Store) GetNotification(ctx context.Context, tenantID, id string) (Notification, error) {
	return Notification{}, errUnimplemented
}

// GetNotificationByID loads a notification for a worker (no tenant scope:
// task payloads carry only ids).
func (s *Store) GetNotificationByID(ctx context.Context, id string) (Notification, error) {
	return Notification{}, errUnimplemented
}

// CancelNotification moves a scheduled notification to cancelled. A
// notification in any other state gives ErrConflict (with the row).
func (s *Store) CancelNotification(ctx context.Context, tenantID, id string, now time.Time) (Notification, error) {
	return Notification{}, errUnimplemented
}

// ClaimNotification is the compare-and-set scheduled → sending that makes
// one worker the sender (a sending row is never re-claimed: see MarkInterrupted).
// It succeeds only if the row is scheduled and SendAt <= now. On success it
// returns the row with Status=sending and ClaimedUntil=leaseUntil, ok=true.
// Otherwise ok=false and the current row is returned (caller decides).
func (s *Store) ClaimNotification(ctx context.Context, id string, now, leaseUntil time.Time) (n Notification, ok bool, err error) {
	return Notification{}, false, errUnimplemented
}

// FinishAttempt records the outcome of a claimed send: appends the attempt,
// sets status/reason/provider id, and for final states FinalAt and
// ExpiresAt = FinalAt + tenant retention. Only valid while the row is
// sending (else ErrConflict).
func (s *Store) FinishAttempt(ctx context.Context, id string, now time.Time, r AttemptResult) (Notification, error) {
	return Notification{}, errUnimplemented
}

// MarkInterrupted ends a sending row whose lease expired before its outcome
// was recorded: status failed, reason "outcome_unknown", NeedsReconciliation.
// ErrConflict if the row is not sending with an expired lease.
func (s *Store) MarkInterrupted(ctx context.Context, id string, now time.Time) (Notification, error) {
	return Notification{}, errUnimplemented
}

// UpdateDeliveryStatus applies a provider delivery report, found by the
// provider id: sent → delivered | undelivered (with reason). Returns the row;
// ErrNotFound if no notification has that provider id.
func (s *Store) UpdateDeliveryStatus(ctx context.Context, providerID, status, reason string, now time.Time) (Notification, error) {
	return Notification{}, errUnimplemented
}

// DueNotifications lists scheduled notifications with SendAt <= before,
// earliest first, at most limit.
func (s *Store) DueNotifications(ctx context.Context, before time.Time, limit int) ([]DueNotification, error) {
	return nil, errUnimplemented
}

// StaleSending lists ids of sending notifications whose lease ended before now.
func (s *Store) StaleSending(ctx context.Context, now time.Time, limit int) ([]string, error) {
	return nil, errUnimplemented
}

// PurgeExpired deletes notifications with ExpiresAt <= now in batches of
// batchSize until a batch comes back short; each batch is first counted into
// delivery_stats in the same transaction. dryRun counts without deleting.
func (s *Store) PurgeExpired(ctx context.Context, now time.Time, batchSize int, dryRun bool) (PurgeReport, error) {
	return PurgeReport{}, errUnimplemented
}

// DeliveryStats returns a tenant's anonymous counters.
func (s *Store) DeliveryStats(ctx context.Context, tenantID string) ([]DeliveryStat, error) {
	return nil, errUnimplemented
}
