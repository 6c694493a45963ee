package store

// Cross-calendar blocking: a connection with Blocking set gets, for each
// busy period imported from the subject's other connections, a blocker
// event that says "Busy" and nothing else (the sync engine writes it; its
// links have kind LinkBlocker). Blockers are termind's own objects, so
// they are never imported, and no blocker is made of a blocker.

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// writeGranted is the condition, on a row of connections, that the latest
// decision for a purpose (first argument) recorded on the connection is
// a given decision (second argument): the consent rule of every calendar
// write. Appointment copies and blockers share it.
const writeGranted = `(SELECT k.decision FROM consents k
			WHERE k.tenant_id = connections.tenant_id AND k.subject_id = connections.subject_id
				AND k.connection_id = connections.id AND k.purpose = ?
			ORDER BY k.created_at DESC, k.id DESC LIMIT 1) = ?`

// BusyElsewhere is one imported occurrence of another connection of the
// same subject: what a blocker stands for.
type BusyElsewhere struct {
	ConnectionID string // the connection it was imported from
	UID          string
	RecurrenceID string
	Start, End   time.Time
	AllDay       bool
	TimeZone     string
}

// BusyElsewhere lists the busy occurrences, overlapping [from, to), that
// were imported from the other active, importing connections of the
// subject of connectionID: transparent events and events without duration
// left out, the connection itself never included, nor another connection
// of the same calendar (its events are there already). Ordered by start,
// then source. ErrNotFound for an unknown connection.
func (s *Store) BusyElsewhere(ctx context.Context, connectionID string, from, to time.Time) ([]BusyElsewhere, error) {
	var tenantID, subjectID, provider, calendarURL string
	err := s.read.QueryRowContext(ctx, s.rebind("SELECT tenant_id, subject_id, provider, calendar_url FROM connections WHERE id = ?"), connectionID).
		Scan(&tenantID, &subjectID, &provider, &calendarURL)
	if err != nil {
		return nil, fmt.Errorf("busy elsewhere: %w", notFound(err))
	}
	out, err := queryAll(ctx, s.read, func(r rowScanner) (BusyElsewhere, error) {
		var b BusyElsewhere
		var start, end int64
		if err := r.Scan(&b.ConnectionID, &b.UID, &b.RecurrenceID, &start, &end, &b.AllDay, &b.TimeZone); err != nil {
			return BusyElsewhere{}, err
		}
		b.Start, b.End = fromMS(start), fromMS(end)
		return b, nil
	}, s.rebind(`SELECT e.connection_id, e.uid, e.recurrence_id, e.start_at, e.end_at, e.all_day, e.time_zone
		FROM connections c JOIN external_events e ON e.connection_id = c.id
		WHERE c.tenant_id = ? AND c.subject_id = ? AND c.id <> ? AND c.state = 'active'
			AND c.direction IN ('import', 'both') AND NOT (c.provider = ? AND c.calendar_url = ?)
			AND e.transparent = FALSE AND e.start_at < ? AND e.end_at > ? AND e.end_at > e.start_at
		ORDER BY e.start_at, e.connection_id, e.uid, e.recurrence_id`), tenantID, subjectID, connectionID, provider, calendarURL, ms(to), ms(from))
	if err != nil {
		return nil, fmt.Errorf("busy elsewhere: %w", err)
	}
	return out, nil
}

// BlockingAllowed reports whether blockers belong on the connection now:
// it is active, has Blocking set, its direction includes export and the
// latest calendar.write decision recorded on it is granted (the rule of
// appointment copies). ErrNotFound for an unknown connection.
func (s *Store) BlockingAllowed(ctx context.Context, connectionID string) (bool, error) {
	var n int
	err := s.read.QueryRowContext(ctx, s.rebind(`SELECT count(*) FROM connections
		WHERE id = ? AND state = 'active' AND blocking AND direction IN ('export', 'both') AND `+writeGranted),
		connectionID, ConsentCalendarWrite, DecisionGranted).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("blocking allowed: %w", err)
	}
	if n == 0 {
		if _, err := s.GetConnectionByID(ctx, connectionID); err != nil {
			return false, fmt.Errorf("blocking allowed: %w", err)
		}
	}
	return n > 0, nil
}

// CalendarWriteGranted reports whether the latest calendar.write decision
// recorded on the connection is granted. ErrNotFound for an unknown one.
func (s *Store) CalendarWriteGranted(ctx context.Context, connectionID string) (bool, error) {
	var n int
	err := s.read.QueryRowContext(ctx, s.rebind(`SELECT count(*) FROM connections WHERE id = ? AND `+writeGranted),
		connectionID, ConsentCalendarWrite, DecisionGranted).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("calendar write granted: %w", err)
	}
	if n == 0 {
		if _, err := s.GetConnectionByID(ctx, connectionID); err != nil {
			return false, fmt.Errorf("calendar write granted: %w", err)
		}
	}
	return n > 0, nil
}

// BlockingPeers lists the other active connections of the subject of
// connectionID that have Blocking set: those whose blockers may change
// when connectionID's imports do. Oldest first.
func (s *Store) BlockingPeers(ctx context.Context, connectionID string) ([]string, error) {
	ids, err := queryStrings(ctx, s.read, s.rebind(`SELECT p.id FROM connections c
		JOIN connections p ON p.tenant_id = c.tenant_id AND p.subject_id = c.subject_id AND p.id <> c.id
		WHERE c.id = ? AND p.state = 'active' AND p.blocking
		ORDER BY p.created_at, p.id`), connectionID)
	if err != nil {
		return nil, fmt.Errorf("blocking peers: %w", err)
	}
	return ids, nil
}

// SetConnectionBlocking turns blocking on or off on a live (active,
// paused, broken) connection of the tenant and writes audit in the same
// transaction (its target is the connection; Action defaults to
// "connection.blocking"). ErrNotFound for an unknown connection or
// another tenant's, ErrNotActive for a revoking or revoked one. Setting
// the value it has changes nothing and writes no audit entry.
func (s *Store) SetConnectionBlocking(ctx context.Context, tenantID, id string, blocking bool, audit AuditEntry) (Connection, error) {
	now := truncMS(time.Now())
	var c Connection
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = scanConnection(tx.QueryRowContext(ctx, s.rebind("SELECT "+connCols+
			" FROM connections WHERE tenant_id = ? AND id = ?"+s.forUpdate()), tenantID, id))
		if err != nil {
			return notFound(err)
		}
		switch c.State {
		case ConnActive, ConnPaused, ConnBroken:
		default:
			return fmt.Errorf("connection is %s: %w", c.State, ErrNotActive)
		}
		if c.Blocking == blocking {
			return nil
		}
		c, err = scanConnection(tx.QueryRowContext(ctx, s.rebind(`UPDATE connections SET blocking = ?, updated_at = ?
			WHERE id = ? RETURNING `+connCols), blocking, ms(now), id))
		if err != nil {
			return err
		}
		audit.TenantID, audit.TargetKind, audit.TargetID, audit.SubjectID = c.TenantID, "connection", c.ID, c.SubjectID
		if audit.Action == "" {
			audit.Action = "connection.blocking"
		}
		if audit.Detail == "" {
			audit.Detail = fmt.Sprintf("blocking=%t", blocking)
		}
		return s.insertAudit(ctx, tx, &audit, now)
	})
	if err != nil {
		return Connection{}, fmt.Errorf("set connection blocking: %w", err)
	}
	return c, nil
}
