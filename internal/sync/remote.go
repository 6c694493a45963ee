// Package sync is termind's two-way calendar sync engine. It knows the
// business rules — the window, which events are imported and at which
// privacy level, that the booking system's appointments are authoritative,
// the mass-delete guard — and nothing about any calendar protocol: a
// Remote (one per provider, e.g. the caldavremote package) reads and
// writes the external calendar, the store keeps what was imported and
// the link table.
//
// Pull imports a connection's calendar into the store: incrementally from
// the connection's cursor, or in full (no cursor, an invalid cursor, or a
// daily reconciliation), reconciling against the link table so that
// nothing is imported twice. termind's own copies (recognised by the
// Remote by their marker) are never imported; when someone edited or
// deleted one, Pull writes it back and reports it on the appointment.
//
// Push writes one appointment's copy to one connection: created, moved or
// removed, with conditional writes; on a conflict (the copy changed
// between our read and our write) the appointment wins.
//
// Every remote write runs inside store.CalendarWrite, so none reaches a
// calendar after a revocation committed, or while the subject's
// processing is restricted.
package sync

import (
	"context"
	"errors"
	"time"

	"github.com/termind/termind/internal/store"
)

// Kinds of remote failure. A Remote wraps its provider's errors so that
// errors.Is finds one of these; the engine and the workers decide on them.
var (
	// ErrCursorInvalid: the remote no longer accepts the cursor; Pull
	// starts again without one (a full resync).
	ErrCursorInvalid = errors.New("sync: cursor no longer valid")
	// ErrCredentialsRejected: the remote refused the credentials. Retrying
	// will not help until the user reconnects.
	ErrCredentialsRejected = errors.New("sync: credentials rejected")
	// ErrUnavailable: network failure, timeout, 5xx, rate limit. Retry later.
	ErrUnavailable = errors.New("sync: remote unavailable")
	// ErrPrecondition: a conditional write failed (412): the object
	// exists, or changed since its ETag was read.
	ErrPrecondition = errors.New("sync: remote object changed meanwhile")
	// ErrNotFound: no such remote object.
	ErrNotFound = errors.New("sync: remote object not found")
	// ErrRefused: the remote refused the request for a reason retrying
	// will not change (the calendar is gone, the object was refused).
	ErrRefused = errors.New("sync: remote refused the request")
	// ErrQuotaExceeded: the provider's quota is used up for hours
	// (Google's daily quota). The connection is paused, not retried.
	ErrQuotaExceeded = errors.New("sync: remote quota exceeded")
	// ErrMassDelete: the mass-delete guard stopped a pull; nothing was
	// deleted and the connection is marked for attention.
	ErrMassDelete = errors.New("sync: remote calendar looks emptied; nothing deleted")
)

// Window is the span of time a pull imports, From inclusive, To exclusive.
type Window struct{ From, To time.Time }

// Occurrence is one instance of a remote event in the window: instants
// in UTC plus the zone it was written in; for all-day events midnight UTC
// of the dates.
type Occurrence struct {
	UID          string
	RecurrenceID string // "" for a single event
	Start, End   time.Time
	AllDay       bool
	TimeZone     string
	Transparent  bool
	// Cancelled instances are never busy time; they are dropped on import.
	Cancelled                    bool
	Title, Location, Description string
}

// Item is one remote object (a CalDAV resource, a Google event), decoded.
type Item struct {
	Name string // the object's id in the calendar (link RemoteID)
	Href string
	ETag string
	// UIDs are the event UIDs in the object (usually one). Imports are
	// stored and linked per UID.
	UIDs []string
	// Ours: the object carries termind's marker; it is the copy of
	// AppointmentID and never imported.
	Ours          bool
	AppointmentID string
	// Hash is the object's content hash, comparable with what Encode
	// returned when termind wrote it.
	Hash        string
	Occurrences []Occurrence // in the window asked for
}

// Changes is what changed in the remote calendar since a cursor.
type Changes struct {
	// Items are new and changed objects; with Full, every object.
	Items []Item
	// Deleted names objects removed since the cursor (not with Full).
	Deleted []string
	// DeletedSeries names recurring series removed as a whole since the
	// cursor, for remotes whose objects are single instances named
	// <series>_<instance> (Google): every such object goes.
	DeletedSeries []string
	// Full: the answer lists the whole calendar. Present then names every
	// object in it, Items or not (objects that could not be decoded are
	// present but not in Items).
	Full    bool
	Present []string
	// Cursor is where the next incremental pull starts.
	Cursor string
}

// Condition makes a write conditional; the zero value writes
// unconditionally (the engine never does).
type Condition struct {
	IfMatch     string // the object still has this ETag
	IfNoneMatch bool   // the object does not exist yet
}

// Remote reads and writes one external calendar. Errors wrap the kinds
// above.
type Remote interface {
	// Changes reports what changed since cursor; "" lists everything
	// (Full). An unusable cursor gives ErrCursorInvalid.
	Changes(ctx context.Context, cursor string, w Window) (Changes, error)
	// Get reads one object (without occurrences); ErrNotFound if absent.
	Get(ctx context.Context, name string) (Item, error)
	// Put writes an object and returns its new ETag.
	Put(ctx context.Context, name string, data []byte, cond Condition) (etag string, err error)
	// Delete removes an object while it has etag ("" unconditionally);
	// an absent object is not an error.
	Delete(ctx context.Context, name, etag string) error
	// Encode returns termind's copy of an appointment: its object name,
	// data and content hash.
	Encode(a store.Appointment) (name string, data []byte, hash string, err error)
}

// RemoteFactory builds the Remote of a connection from its decrypted
// credentials.
type RemoteFactory func(conn store.Connection, credentials []byte) (Remote, error)

// Store is what the engine needs from the store (*store.Store).
type Store interface {
	GetConnectionByID(ctx context.Context, id string) (store.Connection, error)
	ConnectionCredentials(ctx context.Context, id string) ([]byte, error)
	CalendarWrite(ctx context.Context, connectionID string, fn func(ctx context.Context) error) error

	GetAppointment(ctx context.Context, tenantID, id string) (store.Appointment, error)
	AppointmentConnections(ctx context.Context, tenantID, appointmentID string) ([]store.Connection, error)
	ConnectionAppointments(ctx context.Context, connectionID string, from, to time.Time) ([]store.Appointment, error)
	SetAppointmentSyncError(ctx context.Context, tenantID, id, msg string) error

	GetLink(ctx context.Context, connectionID, kind, itemID string) (store.Link, error)
	ListLinks(ctx context.Context, connectionID, kind string) ([]store.Link, error)
	UpsertLink(ctx context.Context, l store.Link) error
	DeleteLink(ctx context.Context, connectionID, kind, itemID string) error

	// ImportObjects and RemoveObjects write a pull's imports in bulk.
	ImportObjects(ctx context.Context, connectionID string, objs []store.ImportedObject) error
	RemoveObjects(ctx context.Context, connectionID string, uids []string) error
	RecordSync(ctx context.Context, connectionID string, r store.SyncResult) error
}
