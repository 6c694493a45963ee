package store

// Data-subject rights: export (GDPR Art. 15/20) and erasure (Art. 17).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// SubjectExport is everything stored about a person (GDPR Art. 15/20).
type SubjectExport struct {
	Subject       Subject
	Consents      []Consent
	Connections   []Connection // without credentials
	Notifications []Notification
	// Appointments the subject takes part in. SubjectIDs lists only this
	// subject: who else takes part is other people's data.
	Appointments   []Appointment
	ExternalEvents []ExternalEvent
	Audit          []AuditEntry
}

// ExternalEvent is an event imported from a connection, at the consented
// privacy level only (busy: times and transparency; details: + title and
// location; full: + description). Filled by calendar sync.
type ExternalEvent struct {
	ConnectionID string
	UID          string
	// RecurrenceID names one instance of a recurring event ("" for a
	// single event or the series itself).
	RecurrenceID string
	Start, End   time.Time
	AllDay       bool
	TimeZone     string
	Transparent  bool
	Title        string
	Location     string
	Description  string
	UpdatedAt    time.Time
}

// ExportSubject collects a subject's records. ErrNotFound if the tenant
// holds nothing about them. The records are read from one snapshot.
func (s *Store) ExportSubject(ctx context.Context, tenantID, subjectID string) (SubjectExport, error) {
	var opts *sql.TxOptions
	if s.dialect == DialectPostgres {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := s.read.BeginTx(ctx, opts)
	if err != nil {
		return SubjectExport{}, fmt.Errorf("export subject: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	x, found, err := s.exportSubject(ctx, tx, tenantID, subjectID)
	if err != nil {
		return SubjectExport{}, fmt.Errorf("export subject: %w", err)
	}
	if !found {
		return SubjectExport{}, fmt.Errorf("export subject: %w", ErrNotFound)
	}
	return x, nil
}

func (s *Store) exportSubject(ctx context.Context, tx *sql.Tx, tenantID, subjectID string) (x SubjectExport, found bool, err error) {
	var created, updated int64
	err = tx.QueryRowContext(ctx, s.rebind(
		"SELECT tenant_id, id, restricted, sms_opted_out, created_at, updated_at FROM subjects WHERE tenant_id = ? AND id = ?"),
		tenantID, subjectID).Scan(&x.Subject.TenantID, &x.Subject.ID, &x.Subject.Restricted, &x.Subject.SMSOptedOut, &created, &updated)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		x.Subject = Subject{TenantID: tenantID, ID: subjectID}
	case err != nil:
		return x, false, fmt.Errorf("subject: %w", err)
	default:
		found = true
		x.Subject.CreatedAt, x.Subject.UpdatedAt = fromMS(created), fromMS(updated)
	}
	if x.Consents, err = s.queryConsents(ctx, tx, tenantID, subjectID); err != nil {
		return x, false, fmt.Errorf("consents: %w", err)
	}
	if x.Connections, err = s.queryConnections(ctx, tx, "tenant_id = ? AND subject_id = ?", false, tenantID, subjectID); err != nil {
		return x, false, fmt.Errorf("connections: %w", err)
	}
	if x.Notifications, err = s.queryNotifications(ctx, tx, tenantID, subjectID); err != nil {
		return x, false, fmt.Errorf("notifications: %w", err)
	}
	if x.Appointments, err = s.queryAppointments(ctx, tx,
		"JOIN appointment_subjects y ON y.tenant_id = a.tenant_id AND y.appointment_id = a.id",
		"y.tenant_id = ? AND y.subject_id = ?", tenantID, subjectID); err != nil {
		return x, false, fmt.Errorf("appointments: %w", err)
	}
	for i := range x.Appointments {
		x.Appointments[i].SubjectIDs = []string{subjectID}
	}
	if x.ExternalEvents, err = s.queryExternalEvents(ctx, tx, tenantID, subjectID); err != nil {
		return x, false, fmt.Errorf("external events: %w", err)
	}
	if x.Audit, err = s.queryAudit(ctx, tx, tenantID, subjectID); err != nil {
		return x, false, fmt.Errorf("audit: %w", err)
	}
	found = found || len(x.Consents) > 0 || len(x.Connections) > 0 || len(x.Notifications) > 0 ||
		len(x.Appointments) > 0 || len(x.ExternalEvents) > 0 || len(x.Audit) > 0
	return x, found, nil
}

func (s *Store) queryNotifications(ctx context.Context, q querier, tenantID, subjectID string) ([]Notification, error) {
	return queryAll(ctx, q, scanNotification, s.rebind("SELECT "+notificationCols+
		" FROM notifications WHERE tenant_id = ? AND subject_id = ? ORDER BY created_at, id"), tenantID, subjectID)
}

func (s *Store) queryExternalEvents(ctx context.Context, q querier, tenantID, subjectID string) ([]ExternalEvent, error) {
	rows, err := q.QueryContext(ctx, s.rebind(`SELECT e.connection_id, e.uid, e.recurrence_id, e.start_at, e.end_at,
			e.all_day, e.time_zone, e.transparent, e.title, e.location, e.description, e.updated_at
		FROM external_events e JOIN connections c ON c.id = e.connection_id
		WHERE c.tenant_id = ? AND c.subject_id = ?
		ORDER BY e.start_at, e.connection_id, e.uid, e.recurrence_id`), tenantID, subjectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ExternalEvent
	for rows.Next() {
		var e ExternalEvent
		var start, end, updated int64
		if err := rows.Scan(&e.ConnectionID, &e.UID, &e.RecurrenceID, &start, &end, &e.AllDay, &e.TimeZone,
			&e.Transparent, &e.Title, &e.Location, &e.Description, &updated); err != nil {
			return nil, err
		}
		e.Start, e.End, e.UpdatedAt = fromMS(start), fromMS(end), fromMS(updated)
		out = append(out, e)
	}
	return out, rows.Err()
}

// EraseReport says what an erasure did.
type EraseReport struct {
	// Revoking lists the subject's connections that were put into
	// revocation; the caller enqueues calendar:revoke for each. Their rows
	// are deleted when the revocation finishes.
	Revoking []string
	Rows     int64 // personal rows deleted now
}

// errFenceMoved: a connection of the subject appeared between taking the
// write fences and the erasure transaction; EraseSubject tries again.
var errFenceMoved = errors.New("connections changed while fencing")

// EraseSubject deletes every personal row of a subject (notifications,
// consents, the subject row, imported events, links, audit entries about
// them, their part in appointments) in one transaction, begins revocation of their connections (marked
// EraseOnRevoke) and leaves a non-personal audit trace (no subject id).
//
// Details: an appointment is personal data of its subjects. The subject
// is taken off every appointment; an appointment left without subjects is
// deleted together with every notification planned for it (whoever it was
// addressed to), while one that other subjects share stays for them. The
// links of its copies stay like any link of a revoking connection: the
// revocation uses them to remove the copies. Connections not yet revoking become revoking (after calendar
// writes in flight finish, as in BeginRevocation); revoking ones are
// marked EraseOnRevoke; both are listed in Revoking. The links of those
// connections stay until FinishRevocation deletes them with the row: the
// revocation needs them to remove our copies from the calendar. Connections
// already revoked are deleted now, and so are pending OAuth states of the
// subject. The trace is one "subject.erase" entry whose Detail counts rows
// and connections. Erasing a subject the tenant holds nothing about is not
// an error (the request is still audited); an unknown tenant is ErrNotFound.
// A subject under a legal hold (its own or the tenant's) is not erased: a
// *HeldError (errors.Is ErrHeld) names the hold.
func (s *Store) EraseSubject(ctx context.Context, tenantID, subjectID, actor, sourceIP string) (EraseReport, error) {
	var rep EraseReport
	err := s.withSubjectFenced(ctx, tenantID, subjectID, func(tx *sql.Tx, live []string) error {
		var err error
		rep, err = s.eraseSubject(ctx, tx, tenantID, subjectID, actor, sourceIP, live, time.Now(), "")
		return err
	})
	if err != nil {
		return EraseReport{}, fmt.Errorf("erase subject: %w", err)
	}
	return rep, nil
}

// withSubjectFenced runs fn in a write transaction while holding the write
// fences of the subject's live connections (listed to fn), so that no
// calendar write of theirs is in flight when fn revokes them. A connection
// appearing meanwhile (errFenceMoved from fn) makes it try again.
func (s *Store) withSubjectFenced(ctx context.Context, tenantID, subjectID string, fn func(tx *sql.Tx, live []string) error) error {
	for attempt := 0; ; attempt++ {
		live, err := s.liveConnectionIDs(ctx, s.read, tenantID, subjectID)
		if err != nil {
			return err
		}
		release := s.fenceExclusive(live)
		err = s.inTx(ctx, func(tx *sql.Tx) error { return fn(tx, live) })
		release()
		if errors.Is(err, errFenceMoved) && attempt < 5 {
			continue
		}
		return err
	}
}

func (s *Store) liveConnectionIDs(ctx context.Context, q querier, tenantID, subjectID string) ([]string, error) {
	ids, err := queryStrings(ctx, q, s.rebind("SELECT id FROM connections WHERE tenant_id = ? AND subject_id = ? AND state IN "+liveStates+" ORDER BY id"),
		tenantID, subjectID)
	if err != nil {
		return nil, fmt.Errorf("connections: %w", err)
	}
	return ids, nil
}

// eraseSubject is EraseSubject's transaction; fenced lists the live
// connections whose write fences the caller holds (SQLite) or that it
// takes here (PostgreSQL). A non-empty why goes into the trace's Detail
// ("reason=inactivity").
func (s *Store) eraseSubject(ctx context.Context, tx *sql.Tx, tenantID, subjectID, actor, sourceIP string, fenced []string, now time.Time, why string) (EraseReport, error) {
	var rep EraseReport
	if err := s.activeHold(ctx, tx, tenantID, subjectID, now); err != nil {
		return rep, err
	}
	revokedGone, err := s.revokeSubjectConnections(ctx, tx, tenantID, subjectID, fenced, now, &rep)
	if err != nil {
		return rep, err
	}
	now = truncMS(now)
	if rep.Rows, err = s.eraseAppointments(ctx, tx, tenantID, subjectID); err != nil {
		return rep, fmt.Errorf("appointments: %w", err)
	}
	// The anonymous counters keep what is erased, as a purge would.
	if _, err := tx.ExecContext(ctx, s.rebind(statsUpsertHead+`(SELECT tenant_id, created_day, channel, template, status
		FROM notifications WHERE tenant_id = ? AND subject_id = ?)`+statsUpsertTail), tenantID, subjectID); err != nil {
		return rep, fmt.Errorf("notifications: count: %w", err)
	}
	ofSubject := "(SELECT id FROM connections WHERE tenant_id = ? AND subject_id = ?)"
	ofRevoked := "(SELECT id FROM connections WHERE tenant_id = ? AND subject_id = ? AND state = 'revoked')"
	deletes := []struct{ what, sql string }{
		{"external events", "DELETE FROM external_events WHERE connection_id IN " + ofSubject},
		{"links", "DELETE FROM links WHERE connection_id IN " + ofRevoked},
		{"connections", "DELETE FROM connections WHERE tenant_id = ? AND subject_id = ? AND state = 'revoked'"},
		{"notifications", "DELETE FROM notifications WHERE tenant_id = ? AND subject_id = ?"},
		{"consents", "DELETE FROM consents WHERE tenant_id = ? AND subject_id = ?"},
		{"oauth states", "DELETE FROM oauth_states WHERE tenant_id = ? AND subject_id = ?"},
		{"audit", "DELETE FROM audit WHERE tenant_id = ? AND subject_id = ?"},
		{"ended holds", "DELETE FROM legal_holds WHERE tenant_id = ? AND subject_id = ? AND ended_at > 0"},
		{"subject", "DELETE FROM subjects WHERE tenant_id = ? AND id = ?"},
	}
	for _, d := range deletes {
		res, err := tx.ExecContext(ctx, s.rebind(d.sql), tenantID, subjectID)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", d.what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return rep, fmt.Errorf("%s: %w", d.what, err)
		}
		rep.Rows += n
	}
	detail := fmt.Sprintf("rows=%d connections=%d", rep.Rows, int64(len(rep.Revoking))+revokedGone)
	if why != "" {
		detail = "reason=" + why + " " + detail
	}
	trace := AuditEntry{TenantID: tenantID, Actor: actor, Action: "subject.erase", TargetKind: "subject",
		SourceIP: sourceIP, Detail: detail}
	if err := s.insertAudit(ctx, tx, &trace, now); err != nil {
		return rep, fmt.Errorf("audit: %w", err)
	}
	return rep, nil
}

// revokeSubjectConnections puts the subject's live connections into
// revocation and marks every revoking one EraseOnRevoke (listed in
// rep.Revoking); it returns how many are already revoked.
func (s *Store) revokeSubjectConnections(ctx context.Context, tx *sql.Tx, tenantID, subjectID string, fenced []string, now time.Time, rep *EraseReport) (int64, error) {
	for _, id := range fenced {
		if err := s.pgFence(ctx, tx, id, true); err != nil {
			return 0, err
		}
	}
	now = truncMS(now)
	conns, err := s.queryConnections(ctx, tx, "tenant_id = ? AND subject_id = ?", true, tenantID, subjectID)
	if err != nil {
		return 0, fmt.Errorf("connections: %w", err)
	}
	var revokedGone int64
	for _, c := range conns {
		switch c.State {
		case ConnActive, ConnPaused, ConnBroken:
			if !slices.Contains(fenced, c.ID) {
				return 0, errFenceMoved
			}
			rep.Revoking = append(rep.Revoking, c.ID)
		case ConnRevoking:
			rep.Revoking = append(rep.Revoking, c.ID)
		case ConnRevoked:
			revokedGone++
		}
	}
	if _, err := tx.ExecContext(ctx, s.rebind(`UPDATE connections
		SET state = 'revoking', state_reason = ?, revoke_requested_at = ?, updated_at = ?, erase_on_revoke = TRUE
		WHERE tenant_id = ? AND subject_id = ? AND state IN `+liveStates), ReasonErasure, ms(now), ms(now), tenantID, subjectID); err != nil {
		return 0, fmt.Errorf("revoke connections: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.rebind(`UPDATE connections SET erase_on_revoke = TRUE, updated_at = ?
		WHERE tenant_id = ? AND subject_id = ? AND state = 'revoking'`), ms(now), tenantID, subjectID); err != nil {
		return 0, fmt.Errorf("revoke connections: %w", err)
	}
	return revokedGone, nil
}

// eraseAppointments takes the subject off its appointments and deletes the
// appointments left without subjects, with their notifications; it returns
// the rows deleted.
func (s *Store) eraseAppointments(ctx context.Context, tx *sql.Tx, tenantID, subjectID string) (int64, error) {
	alone, err := queryStrings(ctx, tx, s.rebind(`SELECT x.appointment_id FROM appointment_subjects x
		WHERE x.tenant_id = ? AND x.subject_id = ? AND NOT EXISTS (SELECT 1 FROM appointment_subjects y
			WHERE y.tenant_id = x.tenant_id AND y.appointment_id = x.appointment_id AND y.subject_id <> x.subject_id)
		ORDER BY x.appointment_id`+s.forUpdate()), tenantID, subjectID)
	if err != nil {
		return 0, err
	}
	var total int64
	exec := func(query string, args ...any) error {
		res, err := tx.ExecContext(ctx, s.rebind(query), args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		total += n
		return err
	}
	// The subject's links first, so that deleting the appointments below
	// cascades to nothing uncounted.
	if err := exec("DELETE FROM appointment_subjects WHERE tenant_id = ? AND subject_id = ?", tenantID, subjectID); err != nil {
		return 0, fmt.Errorf("subjects: %w", err)
	}
	const chunk = 500
	for len(alone) > 0 {
		ids := alone[:min(chunk, len(alone))]
		alone = alone[len(ids):]
		in := "(?" + strings.Repeat(", ?", len(ids)-1) + ")"
		args := []any{tenantID}
		for _, id := range ids {
			args = append(args, id)
		}
		if _, err := tx.ExecContext(ctx, s.rebind(statsUpsertHead+`(SELECT tenant_id, created_day, channel, template, status
			FROM notifications WHERE tenant_id = ? AND appointment_id IN `+in+`)`+statsUpsertTail), args...); err != nil {
			return 0, fmt.Errorf("notifications: count: %w", err)
		}
		if err := exec("DELETE FROM notifications WHERE tenant_id = ? AND appointment_id IN "+in, args...); err != nil {
			return 0, fmt.Errorf("notifications: %w", err)
		}
		if err := exec("DELETE FROM appointments WHERE tenant_id = ? AND id IN "+in, args...); err != nil {
			return 0, fmt.Errorf("delete: %w", err)
		}
	}
	return total, nil
}
