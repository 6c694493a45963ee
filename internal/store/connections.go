package store

// Connections, the audit log, OAuth states and data-subject rights. The
// signatures here are the contract that api and workers code against; the
// bodies are filled in with the schema of migration 0002.

import (
	"context"
	"errors"
	"time"
)

var errUnimplemented = errors.New("store: not implemented")

// ErrNotActive: a calendar read or write was refused because the connection
// is not active (revoking, revoked, paused or broken).
var ErrNotActive = errors.New("connection not active")

// Connection providers, states, privacy levels and directions.
const (
	ProviderGoogle = "google"
	ProviderCalDAV = "caldav"

	ConnActive   = "active"
	ConnPaused   = "paused"
	ConnBroken   = "broken"
	ConnRevoking = "revoking"
	ConnRevoked  = "revoked"

	PrivacyBusy    = "busy"
	PrivacyDetails = "details"
	PrivacyFull    = "full"

	DirectionImport = "import"
	DirectionExport = "export"
	DirectionBoth   = "both"
)

// Connection is one external calendar of a subject. Its credentials are
// never part of this struct: they are sealed at rest and read only through
// ConnectionCredentials.
type Connection struct {
	ID           string
	TenantID     string
	SubjectID    string
	Provider     string
	CalendarURL  string // CalDAV collection URL, or the Google calendar id
	CalendarName string
	Privacy      string
	Direction    string
	State        string
	StateReason  string // why broken/paused/revoking ("invalid_grant", "admin: <reason>", …)
	SyncCursor   string // provider sync token; cleared on revocation
	// KeepCopiesOnRevoke leaves our copies in the external calendar when the
	// connection is revoked (default false: they are removed).
	KeepCopiesOnRevoke bool
	// EraseOnRevoke is set by subject erasure: when the revocation finishes,
	// the connection row itself is deleted.
	EraseOnRevoke     bool
	LastSyncAt        time.Time
	LastError         string
	CreatedAt         time.Time
	UpdatedAt         time.Time
	RevokeRequestedAt time.Time
	RevokedAt         time.Time
}

// Sealer encrypts credentials at rest (internal/secrets.Keyring).
type Sealer interface {
	Encrypt(plaintext, aad []byte) (string, error)
	Decrypt(envelope string, aad []byte) ([]byte, error)
	NeedsRotation(envelope string) bool
	Reencrypt(envelope string, aad []byte) (string, error)
}

// UseSealer sets how credentials are sealed; writing credentials without
// one is an error. Call it once after Open.
func (s *Store) UseSealer(k Sealer) {}

// AuditEntry is one line of the append-only audit log. It holds who did
// what to which target, never secrets or message bodies.
type AuditEntry struct {
	ID         string
	TenantID   string
	Actor      string // "api_key:<id>", "cli", "system", "oauth_callback"
	Action     string // "consent.granted", "connection.create", "connection.revoke", "subject.export", …
	TargetKind string // "subject", "connection", "notification", "tenant"
	TargetID   string
	SubjectID  string // the person concerned, if any ("" after erasure)
	SourceIP   string
	Detail     string // short, non-personal
	CreatedAt  time.Time
	ExpiresAt  time.Time // CreatedAt + the tenant's audit retention (default 365 days)
}

// Audit appends an entry (ID, CreatedAt and ExpiresAt set by the store).
func (s *Store) Audit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	return AuditEntry{}, errUnimplemented
}

// ListAudit returns a tenant's entries about a subject ("" = all of the
// tenant), oldest first.
func (s *Store) ListAudit(ctx context.Context, tenantID, subjectID string) ([]AuditEntry, error) {
	return nil, errUnimplemented
}

// CreateConnection stores a new active connection, its sealed credentials
// (associated data: the connection id), the consent decisions that allow it
// (their ConnectionID is set) and an audit entry — in one transaction.
// Returns the stored connection with ID and times set.
func (s *Store) CreateConnection(ctx context.Context, c Connection, credentials []byte, consents []Consent, audit AuditEntry) (Connection, error) {
	return Connection{}, errUnimplemented
}

// GetConnection returns ErrNotFound for an unknown id or another tenant's.
func (s *Store) GetConnection(ctx context.Context, tenantID, id string) (Connection, error) {
	return Connection{}, errUnimplemented
}

// GetConnectionByID loads a connection for a worker (no tenant scope).
func (s *Store) GetConnectionByID(ctx context.Context, id string) (Connection, error) {
	return Connection{}, errUnimplemented
}

// ListConnections lists a tenant's connections, of one subject when
// subjectID is not "", oldest first.
func (s *Store) ListConnections(ctx context.Context, tenantID, subjectID string) ([]Connection, error) {
	return nil, errUnimplemented
}

// ConnectionCredentials decrypts a connection's credentials. A revoked
// connection has none: ErrNotFound.
func (s *Store) ConnectionCredentials(ctx context.Context, id string) ([]byte, error) {
	return nil, errUnimplemented
}

// UpdateConnectionCredentials replaces the sealed credentials (a rotated
// OAuth refresh token). ErrNotActive unless active/paused/broken.
func (s *Store) UpdateConnectionCredentials(ctx context.Context, id string, credentials []byte) error {
	return errUnimplemented
}

// SetConnectionState moves an active/paused/broken connection to state
// (active, paused or broken) with a reason, audited as actor. A revoking or
// revoked connection is never moved back: ErrNotActive.
func (s *Store) SetConnectionState(ctx context.Context, id, state, reason, actor string) (Connection, error) {
	return Connection{}, errUnimplemented
}

// Revocation says who revokes a connection and why.
type Revocation struct {
	Actor         string
	Reason        string
	PolicyVersion string
	SourceIP      string
	UserAgent     string
}

// BeginRevocation is the commit after which no worker reads or writes the
// calendar: in one transaction the connection becomes revoking, the ledger
// gets a "revoked" decision for every purpose granted on it, and the audit
// log an entry. It waits for calendar writes in flight (CalendarWrite) to
// finish first. Revoking a revoking or revoked connection returns it
// unchanged (idempotent).
func (s *Store) BeginRevocation(ctx context.Context, tenantID, id string, r Revocation) (Connection, error) {
	return Connection{}, errUnimplemented
}

// FinishRevocation ends a revoking connection: credentials, imported
// events, links and the sync cursor are deleted and the state becomes
// revoked (or the row is deleted when EraseOnRevoke is set). Idempotent.
func (s *Store) FinishRevocation(ctx context.Context, id string, now time.Time) error {
	return errUnimplemented
}

// RevokingConnections lists connections still revoking since before the
// given time, so a sweeper can re-enqueue their cleanup.
func (s *Store) RevokingConnections(ctx context.Context, before time.Time, limit int) ([]string, error) {
	return nil, errUnimplemented
}

// CalendarWrite runs fn while holding the connection's write fence: fn runs
// only if the connection is active (else ErrNotActive), and BeginRevocation
// cannot commit while fn runs — so no write reaches a calendar after the
// revocation commits. fn must be bounded in time (it holds a database lock
// on PostgreSQL; on SQLite the fence is in-process, which matches its
// single-node use).
func (s *Store) CalendarWrite(ctx context.Context, connectionID string, fn func(ctx context.Context) error) error {
	return errUnimplemented
}

// OAuthState is the server side of a Google authorization in progress,
// keyed by the nonce carried in the signed state parameter.
type OAuthState struct {
	Nonce         string
	TenantID      string
	SubjectID     string
	Verifier      string // PKCE verifier: sealed at rest
	Purposes      []string
	Privacy       string
	Direction     string
	PolicyVersion string
	SourceIP      string
	UserAgent     string
	RedirectAfter string
	Actor         string
	ExpiresAt     time.Time
}

// SaveOAuthState stores a pending authorization.
func (s *Store) SaveOAuthState(ctx context.Context, st OAuthState) error { return errUnimplemented }

// ConsumeOAuthState returns and deletes the state (single use). Unknown,
// already used or expired → ErrNotFound.
func (s *Store) ConsumeOAuthState(ctx context.Context, nonce string, now time.Time) (OAuthState, error) {
	return OAuthState{}, errUnimplemented
}

// SubjectExport is everything stored about a person (GDPR Art. 15/20).
type SubjectExport struct {
	Subject        Subject
	Consents       []Consent
	Connections    []Connection // without credentials
	Notifications  []Notification
	ExternalEvents []ExternalEvent
	Audit          []AuditEntry
}

// ExternalEvent is an event imported from a connection, at the consented
// privacy level only (busy: times and transparency; details: + title and
// location; full: + description). Filled by calendar sync.
type ExternalEvent struct {
	ConnectionID string
	UID          string
	Start, End   time.Time
	AllDay       bool
	TimeZone     string
	Transparent  bool
	Title        string
	Location     string
	Description  string
}

// ExportSubject collects a subject's records. ErrNotFound if the tenant
// holds nothing about them.
func (s *Store) ExportSubject(ctx context.Context, tenantID, subjectID string) (SubjectExport, error) {
	return SubjectExport{}, errUnimplemented
}

// EraseReport says what an erasure did.
type EraseReport struct {
	// Revoking lists the subject's connections that were put into
	// revocation; the caller enqueues calendar:revoke for each. Their rows
	// are deleted when the revocation finishes.
	Revoking []string
	Rows     int64 // personal rows deleted now
}

// EraseSubject deletes every personal row of a subject (notifications,
// consents, the subject row, imported events, links, audit entries about
// them) in one transaction, begins revocation of their connections (marked
// EraseOnRevoke) and leaves a non-personal audit trace (no subject id).
func (s *Store) EraseSubject(ctx context.Context, tenantID, subjectID, actor, sourceIP string) (EraseReport, error) {
	return EraseReport{}, errUnimplemented
}

// RotateSecrets re-encrypts every sealed value not under the sealer's
// current key, in batches; it reports how many values were rewritten.
func (s *Store) RotateSecrets(ctx context.Context, progress func(done int)) (int, error) {
	return 0, errUnimplemented
}
