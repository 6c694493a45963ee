package store

// Appointments and the state of calendar sync. Signatures first, as for
// the other parts of the store: the appointments API and the sync engine
// are built against them side by side; the bodies come with migration 0003.

import (
	"context"
	"errors"
	"time"
)

var errUnimplemented = errors.New("store: not implemented")

// Appointment statuses.
const (
	AppointmentConfirmed = "confirmed"
	AppointmentCancelled = "cancelled"
)

// Appointment belongs to the booking system (single writer): termind
// pushes copies of it to consented calendars and plans its reminders.
type Appointment struct {
	TenantID   string
	ID         string // the booking system's id
	SubjectIDs []string
	// Timed appointments: Start/End instants (UTC) and the IANA zone they
	// are shown in. All-day: StartDate/EndDate (YYYY-MM-DD, end exclusive),
	// Start/End then hold midnight UTC of those dates.
	Start, End           time.Time
	TimeZone             string
	AllDay               bool
	StartDate, EndDate   string
	Title                string
	Location             string
	Description          string
	Status               string
	Reminders            []time.Duration // before Start; nil: the tenant's rules
	Version              int             // +1 on every change of content or status
	SyncError            string          // the last push problem, reported on the appointment
	CreatedAt, UpdatedAt time.Time
}

// AppointmentChange says what UpsertAppointment did.
type AppointmentChange struct {
	Appointment Appointment
	Previous    *Appointment // nil when created
	Created     bool
	Changed     bool // content or status changed (Version was increased)
	Rescheduled bool // start or end moved
}

// UpsertAppointment creates or updates an appointment (and its subjects, as
// subject rows). An identical body changes nothing (Changed false, same
// Version).
func (s *Store) UpsertAppointment(ctx context.Context, a Appointment) (AppointmentChange, error) {
	return AppointmentChange{}, errUnimplemented
}

// GetAppointment returns ErrNotFound for an unknown id or another tenant's.
func (s *Store) GetAppointment(ctx context.Context, tenantID, id string) (Appointment, error) {
	return Appointment{}, errUnimplemented
}

// CancelAppointment sets status cancelled (Version+1). Cancelling a
// cancelled appointment returns it unchanged.
func (s *Store) CancelAppointment(ctx context.Context, tenantID, id string) (AppointmentChange, error) {
	return AppointmentChange{}, errUnimplemented
}

// ConnectionAppointments lists the appointments of the connection's
// subject that overlap [from, to), cancelled ones included (their copies
// must be removed).
func (s *Store) ConnectionAppointments(ctx context.Context, connectionID string, from, to time.Time) ([]Appointment, error) {
	return nil, errUnimplemented
}

// AppointmentConnections lists the active connections that get copies of
// the appointment: of its subjects, direction export or both, and with a
// granted calendar.write on the connection.
func (s *Store) AppointmentConnections(ctx context.Context, tenantID, appointmentID string) ([]Connection, error) {
	return nil, errUnimplemented
}

// SetAppointmentSyncError records ("" clears) a push problem on the appointment.
func (s *Store) SetAppointmentSyncError(ctx context.Context, tenantID, id, msg string) error {
	return errUnimplemented
}

// Link kinds.
const (
	LinkAppointment = "appointment" // our copy of an appointment
	LinkEvent       = "event"       // an imported calendar object
)

// Link is one row of the sync status table: a local item and its remote
// counterpart as last seen.
type Link struct {
	ConnectionID  string
	ItemKind      string
	ItemID        string // appointment id, or the remote UID for imports
	RemoteID      string // CalDAV resource name or Google event id
	RemoteHref    string
	RemoteETag    string
	ContentHash   string // normalised hash of what we last wrote or read
	SyncedVersion int    // appointment version last pushed
	UpdatedAt     time.Time
}

// GetLink returns ErrNotFound if there is none.
func (s *Store) GetLink(ctx context.Context, connectionID, kind, itemID string) (Link, error) {
	return Link{}, errUnimplemented
}

// ListLinks lists a connection's links of one kind.
func (s *Store) ListLinks(ctx context.Context, connectionID, kind string) ([]Link, error) {
	return nil, errUnimplemented
}

// UpsertLink stores a link. ErrNotActive once the connection is not active
// (a sync that runs across a revocation must not leave rows behind).
func (s *Store) UpsertLink(ctx context.Context, l Link) error { return errUnimplemented }

// DeleteLink removes a link (no error if absent).
func (s *Store) DeleteLink(ctx context.Context, connectionID, kind, itemID string) error {
	return errUnimplemented
}

// ReplaceExternalEvents replaces the imported occurrences of one remote
// object (uid) with events, stored at the connection's privacy level only:
// the store blanks title/location (busy) and description (busy, details)
// whatever the caller passes. ErrNotActive once the connection is not
// active.
func (s *Store) ReplaceExternalEvents(ctx context.Context, connectionID, uid string, events []ExternalEvent) error {
	return errUnimplemented
}

// DeleteExternalEvents removes the imported occurrences of uid.
func (s *Store) DeleteExternalEvents(ctx context.Context, connectionID, uid string) error {
	return errUnimplemented
}

// ExternalEventCount counts a connection's imported occurrences.
func (s *Store) ExternalEventCount(ctx context.Context, connectionID string) (int, error) {
	return 0, errUnimplemented
}

// BusyInterval is one merged busy period.
type BusyInterval struct{ Start, End time.Time }

// BusyIntervals merges the busy time of a subject's active connections that
// allow reading (privacy any, direction import or both) in [from, to):
// transparent events excluded, our own copies never imported in the first
// place. Overlapping and touching intervals are merged.
func (s *Store) BusyIntervals(ctx context.Context, tenantID, subjectID string, from, to time.Time) ([]BusyInterval, error) {
	return nil, errUnimplemented
}

// SyncResult is what one sync run of a connection did.
type SyncResult struct {
	Cursor    string // the new sync token ("" keeps none)
	Full      bool   // a full reconciliation ran
	Imported  int    // remote objects imported or updated
	Removed   int    // remote objects whose imports were deleted
	Pushed    int    // copies written
	Restored  int    // copies put back after someone edited or deleted them
	Error     string // "" on success
	Attention string // why the connection needs a person (mass-delete guard), "" if not
	At        time.Time
}

// RecordSync stores a sync run's outcome on the connection: cursor (when
// the run succeeded), last sync time, counts, last error, attention.
func (s *Store) RecordSync(ctx context.Context, connectionID string, r SyncResult) error {
	return errUnimplemented
}

// SyncStatus is what GET /v1/connections/{id} shows of sync.
type SyncStatus struct {
	LastSyncAt time.Time
	LastFullAt time.Time
	LastError  string
	Attention  string
	Imported   int // occurrences held now
	LastRun    SyncResult
}

// GetSyncStatus returns a connection's sync status.
func (s *Store) GetSyncStatus(ctx context.Context, connectionID string) (SyncStatus, error) {
	return SyncStatus{}, errUnimplemented
}

// ConnectionsDueForSync lists active connections whose last sync is older
// than their poll interval (jitter is applied by the scheduler).
func (s *Store) ConnectionsDueForSync(ctx context.Context, before time.Time, limit int) ([]string, error) {
	return nil, errUnimplemented
}

// CancelAppointmentNotifications cancels the appointment's scheduled
// notifications of the given purpose (reminders on reschedule/cancel);
// it returns how many it cancelled.
func (s *Store) CancelAppointmentNotifications(ctx context.Context, tenantID, appointmentID, purpose string) (int, error) {
	return 0, errUnimplemented
}
