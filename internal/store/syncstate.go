package store

// The sync state of connections: links (what we last wrote or read per
// item), imported events at the consented privacy level, busy time built
// from them, and the outcome of sync runs.

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Link kinds.
const (
	LinkAppointment = "appointment" // our copy of an appointment
	LinkEvent       = "event"       // an imported calendar object
	LinkBlocker     = "blocker"     // our blocker for busy time elsewhere (blocking.go)
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

const linkCols = "connection_id, item_kind, item_id, remote_id, remote_href, remote_etag, content_hash, synced_version, updated_at"

func scanLink(r rowScanner) (Link, error) {
	var l Link
	var updated int64
	if err := r.Scan(&l.ConnectionID, &l.ItemKind, &l.ItemID, &l.RemoteID, &l.RemoteHref, &l.RemoteETag,
		&l.ContentHash, &l.SyncedVersion, &updated); err != nil {
		return Link{}, err
	}
	l.UpdatedAt = fromMS(updated)
	return l, nil
}

// lockActive is checkActive inside a write transaction, holding the
// connection row so that a revocation cannot commit between the check and
// the transaction's own commit (PostgreSQL: a shared row lock, which
// BeginRevocation's update and FinishRevocation's FOR UPDATE wait for;
// SQLite: write transactions are serialised anyway). It does not take the
// write fence, so it may run inside CalendarWrite's fn.
func (s *Store) lockActive(ctx context.Context, tx *sql.Tx, id string) error {
	if s.dialect == DialectPostgres {
		var got string
		err := tx.QueryRowContext(ctx, "SELECT id FROM connections WHERE id = $1 FOR SHARE", id).Scan(&got)
		if err != nil {
			return notFound(err)
		}
	}
	return s.checkActive(ctx, tx, id)
}

// GetLink returns ErrNotFound if there is none.
func (s *Store) GetLink(ctx context.Context, connectionID, kind, itemID string) (Link, error) {
	l, err := scanLink(s.read.QueryRowContext(ctx, s.rebind("SELECT "+linkCols+
		" FROM links WHERE connection_id = ? AND item_kind = ? AND item_id = ?"), connectionID, kind, itemID))
	if err != nil {
		return Link{}, fmt.Errorf("get link: %w", notFound(err))
	}
	return l, nil
}

// ListLinks lists a connection's links of one kind.
// They are ordered by item id.
func (s *Store) ListLinks(ctx context.Context, connectionID, kind string) ([]Link, error) {
	out, err := queryAll(ctx, s.read, scanLink, s.rebind("SELECT "+linkCols+
		" FROM links WHERE connection_id = ? AND item_kind = ? ORDER BY item_id"), connectionID, kind)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	return out, nil
}

// UpsertLink stores a link. ErrNotActive once the connection is not active
// (a sync that runs across a revocation must not leave rows behind).
//
// The check runs in the transaction that writes the link (see lockActive):
// ErrRestricted for a restricted subject, ErrNotFound for an unknown
// connection. UpdatedAt is set to now. Kind is LinkAppointment, LinkEvent or
// LinkBlocker.
func (s *Store) UpsertLink(ctx context.Context, l Link) error {
	if l.ConnectionID == "" || l.ItemID == "" {
		return errors.New("upsert link: connection and item are required")
	}
	if l.ItemKind != LinkAppointment && l.ItemKind != LinkEvent && l.ItemKind != LinkBlocker {
		return fmt.Errorf("upsert link: unknown kind %q", l.ItemKind)
	}
	l.UpdatedAt = time.Now()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.lockActive(ctx, tx, l.ConnectionID); err != nil {
			return err
		}
		return s.upsertLinksTx(ctx, tx, []Link{l})
	})
	if err != nil {
		return fmt.Errorf("upsert link: %w", err)
	}
	return nil
}

// DeleteLink removes a link (no error if absent).
func (s *Store) DeleteLink(ctx context.Context, connectionID, kind, itemID string) error {
	if _, err := s.db.ExecContext(ctx, s.rebind("DELETE FROM links WHERE connection_id = ? AND item_kind = ? AND item_id = ?"),
		connectionID, kind, itemID); err != nil {
		return fmt.Errorf("delete link: %w", err)
	}
	return nil
}

// ReplaceExternalEvents replaces the imported occurrences of one remote
// object (uid) with events, stored at the connection's privacy level only:
// the store blanks title/location (busy) and description (busy, details)
// whatever the caller passes. ErrNotActive once the connection is not
// active.
//
// One transaction: the connection is checked as in UpsertLink, the
// object's rows are deleted and events inserted (their ConnectionID and
// UID are those given; two with the same RecurrenceID: the later wins).
// No events removes the object.
func (s *Store) ReplaceExternalEvents(ctx context.Context, connectionID, uid string, events []ExternalEvent) error {
	if connectionID == "" || uid == "" {
		return errors.New("replace external events: connection and uid are required")
	}
	// The batch path with one object and no link: the same statements,
	// so the single and the bulk import cannot drift apart.
	obj := []ImportedObject{{UID: uid, Events: events}}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.importTx(ctx, tx, connectionID, obj, false)
	})
	if err != nil {
		return fmt.Errorf("replace external events: %w", err)
	}
	return nil
}

// atPrivacy blanks what a privacy level does not allow to keep. An unknown
// level keeps no details.
func atPrivacy(e ExternalEvent, privacy string) ExternalEvent {
	switch privacy {
	case PrivacyFull:
	case PrivacyDetails:
		e.Description = ""
	default:
		e.Title, e.Location, e.Description = "", "", ""
	}
	return e
}

// DeleteExternalEvents removes the imported occurrences of uid.
// It is allowed in every state of the connection.
func (s *Store) DeleteExternalEvents(ctx context.Context, connectionID, uid string) error {
	if _, err := s.db.ExecContext(ctx, s.rebind("DELETE FROM external_events WHERE connection_id = ? AND uid = ?"),
		connectionID, uid); err != nil {
		return fmt.Errorf("delete external events: %w", err)
	}
	return nil
}

// ExternalEventCount counts a connection's imported occurrences.
func (s *Store) ExternalEventCount(ctx context.Context, connectionID string) (int, error) {
	var n int
	if err := s.read.QueryRowContext(ctx, s.rebind("SELECT count(*) FROM external_events WHERE connection_id = ?"),
		connectionID).Scan(&n); err != nil {
		return 0, fmt.Errorf("external event count: %w", err)
	}
	return n, nil
}

// BusyInterval is one merged busy period.
type BusyInterval struct{ Start, End time.Time }

// BusyIntervals merges the busy time of a subject's active connections that
// allow reading (privacy any, direction import or both) in [from, to):
// transparent events excluded, our own copies never imported in the first
// place. Overlapping and touching intervals are merged.
//
// Intervals are not clipped to the window: one that starts before from or
// ends after to is returned whole (merged with its neighbours), so a
// caller sees the true extent of a period that crosses the window's edge.
// A restricted subject has none (Art. 18: nothing processed). Events
// without duration are ignored. Ordered by start.
func (s *Store) BusyIntervals(ctx context.Context, tenantID, subjectID string, from, to time.Time) ([]BusyInterval, error) {
	rows, err := s.read.QueryContext(ctx, s.rebind(`SELECT e.start_at, e.end_at
		FROM connections c JOIN external_events e ON e.connection_id = c.id
		WHERE c.tenant_id = ? AND c.subject_id = ? AND c.state = 'active' AND c.direction IN ('import', 'both')
			AND NOT EXISTS (SELECT 1 FROM subjects sub WHERE sub.tenant_id = c.tenant_id AND sub.id = c.subject_id AND sub.restricted)
			AND e.transparent = FALSE AND e.start_at < ? AND e.end_at > ? AND e.end_at > e.start_at
		ORDER BY e.start_at, e.end_at`), tenantID, subjectID, ms(to), ms(from))
	if err != nil {
		return nil, fmt.Errorf("busy intervals: %w", err)
	}
	defer rows.Close()
	var raw []BusyInterval
	for rows.Next() {
		var start, end int64
		if err := rows.Scan(&start, &end); err != nil {
			return nil, fmt.Errorf("busy intervals: %w", err)
		}
		raw = append(raw, BusyInterval{Start: fromMS(start), End: fromMS(end)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("busy intervals: %w", err)
	}
	return mergeBusy(raw), nil
}

// mergeBusy merges overlapping and touching intervals.
func mergeBusy(in []BusyInterval) []BusyInterval {
	slices.SortFunc(in, func(a, b BusyInterval) int { return cmp.Or(a.Start.Compare(b.Start), a.End.Compare(b.End)) })
	var out []BusyInterval
	for _, iv := range in {
		if n := len(out); n > 0 && !iv.Start.After(out[n-1].End) {
			if iv.End.After(out[n-1].End) {
				out[n-1].End = iv.End
			}
			continue
		}
		out = append(out, iv)
	}
	return out
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

// syncRun is a SyncResult as stored in connections.last_run (the cursor
// is stored in sync_cursor only).
type syncRun struct {
	Full      bool   `json:"full,omitempty"`
	Imported  int    `json:"imported"`
	Removed   int    `json:"removed"`
	Pushed    int    `json:"pushed"`
	Restored  int    `json:"restored"`
	Error     string `json:"error,omitempty"`
	Attention string `json:"attention,omitempty"`
	At        int64  `json:"at"`
}

// RecordSync stores a sync run's outcome on the connection: cursor (when
// the run succeeded), last sync time, counts, last error, attention.
//
// A run without Error succeeded: the cursor becomes r.Cursor, LastSyncAt
// and (for a full run) LastFullAt become r.At, LastError is cleared and
// Attention set as given ("" clears it). A failed run keeps the cursor
// and LastSyncAt (the last successful sync), sets LastError, and sets
// Attention only when given (a transient failure does not clear a
// person's to-do). Either way the run becomes LastRun. A zero At is now.
// A revoking or revoked connection records nothing (ErrNotActive: its
// cursor is being deleted); ErrNotFound for an unknown one.
func (s *Store) RecordSync(ctx context.Context, connectionID string, r SyncResult) error {
	if r.At.IsZero() {
		r.At = time.Now()
	}
	at := ms(r.At)
	run, err := json.Marshal(syncRun{Full: r.Full, Imported: r.Imported, Removed: r.Removed, Pushed: r.Pushed,
		Restored: r.Restored, Error: r.Error, Attention: r.Attention, At: at})
	if err != nil {
		return fmt.Errorf("record sync: %w", err)
	}
	var set string
	var args []any
	switch {
	case r.Error == "":
		set = "sync_cursor = ?, last_sync_at = ?, last_error = '', attention = ?, last_run = ?"
		args = []any{r.Cursor, at, r.Attention, string(run)}
		if r.Full {
			set += ", last_full_at = ?"
			args = append(args, at)
		}
	default:
		set = "last_error = ?, last_run = ?"
		args = []any{r.Error, string(run)}
		if r.Attention != "" {
			set += ", attention = ?"
			args = append(args, r.Attention)
		}
	}
	res, err := s.db.ExecContext(ctx, s.rebind("UPDATE connections SET "+set+" WHERE id = ? AND state IN "+liveStates),
		append(args, connectionID)...)
	if err != nil {
		return fmt.Errorf("record sync: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("record sync: %w", s.whyNotLive(ctx, s.db, connectionID))
	}
	return nil
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
// LastRun is zero before the first run and never carries the cursor.
// ErrNotFound for an unknown connection.
func (s *Store) GetSyncStatus(ctx context.Context, connectionID string) (SyncStatus, error) {
	var st SyncStatus
	var lastSync, lastFull int64
	var lastRun string
	err := s.read.QueryRowContext(ctx, s.rebind(`SELECT c.last_sync_at, c.last_full_at, c.last_error, c.attention, c.last_run,
			(SELECT count(*) FROM external_events e WHERE e.connection_id = c.id)
		FROM connections c WHERE c.id = ?`), connectionID).Scan(&lastSync, &lastFull, &st.LastError, &st.Attention, &lastRun, &st.Imported)
	if err != nil {
		return SyncStatus{}, fmt.Errorf("get sync status: %w", notFound(err))
	}
	st.LastSyncAt, st.LastFullAt = fromMS(lastSync), fromMS(lastFull)
	if lastRun != "" {
		var run syncRun
		if err := json.Unmarshal([]byte(lastRun), &run); err != nil {
			return SyncStatus{}, fmt.Errorf("get sync status: last run: %w", err)
		}
		st.LastRun = SyncResult{Full: run.Full, Imported: run.Imported, Removed: run.Removed, Pushed: run.Pushed,
			Restored: run.Restored, Error: run.Error, Attention: run.Attention, At: fromMS(run.At)}
	}
	return st, nil
}

// DefaultDueLimit is the page size ConnectionsDueForSync uses when given 0 or less.
const DefaultDueLimit = 1000

// ConnectionsDueForSync lists active connections whose last sync is older
// than their poll interval (jitter is applied by the scheduler).
//
// The caller passes before = now minus the poll interval: due are active
// connections whose last successful sync (LastSyncAt) is before it or that
// never synced, never-synced and oldest first. Connections of restricted
// subjects are left out (nothing is synced for them). A failed run does
// not move LastSyncAt, so a failing connection stays due: backing off is
// up to the caller.
func (s *Store) ConnectionsDueForSync(ctx context.Context, before time.Time, limit int) ([]string, error) {
	if limit <= 0 {
		limit = DefaultDueLimit
	}
	ids, err := queryStrings(ctx, s.read, s.rebind(`SELECT c.id FROM connections c
		WHERE c.state = 'active' AND c.last_sync_at < ?
			AND NOT EXISTS (SELECT 1 FROM subjects sub WHERE sub.tenant_id = c.tenant_id AND sub.id = c.subject_id AND sub.restricted)
		ORDER BY c.last_sync_at, c.id LIMIT ?`), ms(before), limit)
	if err != nil {
		return nil, fmt.Errorf("connections due for sync: %w", err)
	}
	return ids, nil
}
