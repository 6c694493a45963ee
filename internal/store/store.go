// Package store is termind's source of truth: tenants, API keys, subjects,
// the consent ledger, notifications, calendar connections and the audit
// log, in SQLite (embedded default) or PostgreSQL. Both dialects run the
// same SQL apart from placeholders and the few statements noted where they
// differ.
//
// Times are stored as Unix milliseconds (BIGINT) in both dialects so that
// comparisons, indexes and range deletes behave identically; 0 means unset.
//
// Where things are: db.go (Open, the two dialects, small helpers),
// migrate.go and migrations/ (schema), tenants.go (tenants, API keys),
// subjects.go (subjects, consent ledger), notifications.go (create, claim,
// attempts, delivery reports), purge.go (retention and delivery_stats),
// connections.go (connections, revocation, the calendar write fence),
// audit.go, oauth.go (pending OAuth authorizations), subjectrights.go
// (export, erasure), seal.go (credentials sealed at rest, key rotation),
// appointments.go (appointments, their subjects and notifications),
// syncstate.go (links, imported events, busy time, sync runs).
// Tests get a fresh store per dialect from the storetest package.
package store

import (
	"encoding/json"
	"errors"
	"time"
)

// Errors callers branch on. Wrapped errors keep them visible to errors.Is.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict: the row is not in a state that allows the change
	// (cancel after send, finishing an attempt that is not claimed, …).
	ErrConflict = errors.New("conflict")
)

// API key roles.
const (
	RoleIngest = "ingest"
	RoleAdmin  = "admin"
)

// Notification channels, purposes and statuses (DESIGN.md "Domain model").
const (
	ChannelEmail = "email"
	ChannelSMS   = "sms"

	PurposeTransactional = "transactional"
	PurposeReminder      = "reminder"

	StatusScheduled   = "scheduled"
	StatusSending     = "sending"
	StatusSent        = "sent"
	StatusDelivered   = "delivered"
	StatusUndelivered = "undelivered"
	StatusFailed      = "failed"
	StatusCancelled   = "cancelled"
	StatusSuppressed  = "suppressed"
)

// Consent purposes and decisions.
const (
	ConsentCalendarReadBusy    = "calendar.read.busy"
	ConsentCalendarReadDetails = "calendar.read.details"
	ConsentCalendarWrite       = "calendar.write"
	ConsentNotifySMS           = "notify.sms"
	ConsentNotifyEmail         = "notify.email"

	DecisionGranted = "granted"
	DecisionRefused = "refused"
	DecisionRevoked = "revoked"
)

// Tenant is a platform customer (the controller) and its settings.
type Tenant struct {
	ID            string
	Name          string
	DefaultLocale string // "en" unless set
	// NotificationRetention is how long a notification is kept after its
	// final state (default 30 days).
	NotificationRetention time.Duration
	// AuditRetention is how long an audit entry is kept (default 365 days).
	AuditRetention time.Duration
	// ReminderRules say how long before an appointment's start its
	// reminders go out (default: 24 hours), for appointments that bring no
	// rules of their own. Empty: no reminders.
	ReminderRules []time.Duration
	CreatedAt     time.Time
}

// APIKey is a stored key: only a hash of the secret part is kept.
type APIKey struct {
	ID        string
	TenantID  string
	Role      string
	CreatedAt time.Time
	// Suspended: the tenant is offboarding (see BeginOffboarding).
	Suspended bool
}

// Subject is a person, named by the tenant's own id for them.
type Subject struct {
	TenantID    string
	ID          string
	Restricted  bool // Art. 18: data kept, nothing sent or synced
	SMSOptedOut bool // STOP or Twilio 21610
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Consent is one entry of the append-only ledger.
type Consent struct {
	ID            string
	TenantID      string
	SubjectID     string
	Purpose       string
	Decision      string
	PolicyVersion string
	Actor         string // api key id, "admin:<key id>", "cli", …
	SourceIP      string
	UserAgent     string
	ConnectionID  string // optional
	CreatedAt     time.Time
}

// Notification is one message to one recipient.
type Notification struct {
	ID        string
	TenantID  string
	SubjectID string // optional for email; required for sms
	// AppointmentID links confirmations, reminders and notices planned
	// for an appointment, so a reschedule can cancel its reminders.
	AppointmentID  string
	IdempotencyKey string
	RequestHash    string // hex sha256 of the canonical request
	Purpose        string
	Channel        string
	Recipient      string // address or E.164 number: personal, never logged
	Locale         string
	Template       string
	Data           json.RawMessage
	Status         string
	// StatusReason says why a notification is suppressed, failed or
	// cancelled ("no_consent:notify.sms", "smtp 550", "twilio 21211", …).
	StatusReason string
	SendAt       time.Time
	Attempts     []Attempt
	ProviderID   string // provider's id of the last accepted attempt (Twilio SID, Message-ID)
	// ClaimedUntil is the lease of a worker that set status "sending".
	ClaimedUntil time.Time
	// NeedsReconciliation marks a send whose outcome is unknown: a worker
	// died between claiming and recording the provider's answer.
	NeedsReconciliation bool
	CreatedAt           time.Time
	UpdatedAt           time.Time
	FinalAt             time.Time // zero until a final state
	ExpiresAt           time.Time
}

// Attempt is one try at handing a notification to a provider.
type Attempt struct {
	N          int       `json:"n"`
	At         time.Time `json:"at"`
	Outcome    string    `json:"outcome"` // sent | retry | failed | interrupted
	ProviderID string    `json:"provider_id,omitempty"`
	ErrorCode  string    `json:"error_code,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// CreateOutcome tells what CreateNotifications did with one item.
type CreateOutcome int

const (
	Created  CreateOutcome = iota // new row
	Existing                      // same idempotency key and same request: the stored row
	Mismatch                      // same idempotency key, different request: nothing stored
)

// CreateResult is the per-item result of CreateNotifications.
type CreateResult struct {
	Notification Notification
	Outcome      CreateOutcome
}

// AttemptResult is what a worker reports after trying to send.
type AttemptResult struct {
	// Status is the new status: sent, failed, suppressed, or scheduled
	// (a transient failure; RetryAt says when to try again).
	Status     string
	Reason     string
	RetryAt    time.Time
	Attempt    Attempt
	ProviderID string
}

// DueNotification is what the outbox sweeper needs to re-enqueue a row.
type DueNotification struct {
	ID       string
	TenantID string
	Attempt  int // len(Attempts): part of the deterministic task id
	SendAt   time.Time
}

// DueQuery selects scheduled notifications for the outbox sweeper.
type DueQuery struct {
	Before time.Time // SendAt <= Before
	// UntouchedBefore skips rows written since then: the API or a worker
	// that just wrote them also enqueued them, and re-offering a large
	// fresh backlog to the queue on every sweep would be wasted work.
	// Zero means no such filter.
	UntouchedBefore time.Time
	// After is a keyset cursor: only rows ordered after (SendAt, ID) of the
	// last row of the previous page. Zero starts at the beginning.
	After DueNotification
	Limit int
}

// PurgeReport counts what a purge run did (or would do, on a dry run).
type PurgeReport struct {
	Notifications int64
	// Batches counts the notification batches (see PurgeExpired).
	Batches int
	// Audit counts expired audit entries, OAuthStates expired pending
	// authorizations.
	Audit       int64
	OAuthStates int64
	// ImportedEvents counts imported events past their tenant's window.
	ImportedEvents int64
	// ConnectionsRevoked counts connections broken for longer than their
	// tenant's window and therefore put into revocation.
	ConnectionsRevoked int64
	// SubjectsErased and SubjectsAnonymised count inactive subjects.
	SubjectsErased     int64
	SubjectsAnonymised int64
	// HoldsExpired counts legal holds whose end date passed (recorded and
	// audited by this run).
	HoldsExpired int64
	// Held counts what would have been purged but a legal hold kept.
	Held PurgeHeld
	// Revoking lists the connections this run put into revocation; the
	// caller enqueues their cleanup (the sweeper catches any it misses).
	Revoking []string
}

// PurgeHeld counts records a purge skipped because of a legal hold.
type PurgeHeld struct {
	Notifications  int64
	Audit          int64
	ImportedEvents int64
	Connections    int64
	Subjects       int64
}

// Total is the sum of all held records.
func (h PurgeHeld) Total() int64 {
	return h.Notifications + h.Audit + h.ImportedEvents + h.Connections + h.Subjects
}

// DeliveryStat is one anonymous daily counter.
type DeliveryStat struct {
	TenantID string
	Day      string // YYYY-MM-DD (UTC) of the notification's creation
	Channel  string
	Template string
	Status   string
	Count    int64
}
