package store

// The per-tenant part of the retention purge: imported events past their
// window, connections broken for too long, and subjects inactive for
// longer than the tenant's period (erased or anonymised).

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// tenantPolicy is one tenant's id and retention policy.
type tenantPolicy struct {
	id string
	p  RetentionPolicy
}

// purgeTenants applies each tenant's policy at now, adding to rep; dryRun
// only counts.
func (s *Store) purgeTenants(ctx context.Context, now time.Time, dryRun bool, rep *PurgeReport) error {
	tenants, err := queryAll(ctx, s.read, func(r rowScanner) (tenantPolicy, error) {
		var tp tenantPolicy
		var n, a, e, b, i int64
		if err := r.Scan(&tp.id, &n, &a, &e, &b, &i, &tp.p.InactivityAction); err != nil {
			return tp, err
		}
		tp.p.Notifications, tp.p.Audit = time.Duration(n)*time.Millisecond, time.Duration(a)*time.Millisecond
		tp.p.ImportedEvents, tp.p.BrokenConnections = time.Duration(e)*time.Millisecond, time.Duration(b)*time.Millisecond
		tp.p.InactiveSubjects = time.Duration(i) * time.Millisecond
		return tp, nil
	}, "SELECT id, "+policyCols+" FROM tenants ORDER BY id")
	if err != nil {
		return fmt.Errorf("tenants: %w", err)
	}
	for _, tp := range tenants {
		if err := s.purgeImportedEvents(ctx, tp, now, dryRun, rep); err != nil {
			return fmt.Errorf("tenant %s: imported events: %w", tp.id, err)
		}
		if err := s.revokeBrokenConnections(ctx, tp, now, dryRun, rep); err != nil {
			return fmt.Errorf("tenant %s: broken connections: %w", tp.id, err)
		}
		if err := s.purgeInactiveSubjects(ctx, tp, now, dryRun, rep); err != nil {
			return fmt.Errorf("tenant %s: inactive subjects: %w", tp.id, err)
		}
	}
	return nil
}

// count runs a count(*) query.
func (s *Store) count(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := s.read.QueryRowContext(ctx, s.rebind(query), args...).Scan(&n)
	return n, err
}

// purgeImportedEvents deletes the tenant's imported events that ended
// before its window, except those of held subjects.
func (s *Store) purgeImportedEvents(ctx context.Context, tp tenantPolicy, now time.Time, dryRun bool, rep *PurgeReport) error {
	cutoff := ms(now) - tp.p.ImportedEvents.Milliseconds()
	of := func(neg string) string {
		return "FROM external_events WHERE end_at <= ? AND connection_id IN (SELECT c.id FROM connections c WHERE c.tenant_id = ? AND " +
			neg + heldSQL("c.tenant_id", "c.subject_id", "?") + ")"
	}
	held, err := s.count(ctx, "SELECT count(*) "+of(""), cutoff, tp.id, ms(now))
	if err != nil {
		return err
	}
	rep.Held.ImportedEvents += held
	if dryRun {
		n, err := s.count(ctx, "SELECT count(*) "+of("NOT "), cutoff, tp.id, ms(now))
		rep.ImportedEvents += n
		return err
	}
	res, err := s.db.ExecContext(ctx, s.rebind("DELETE "+of("NOT ")), cutoff, tp.id, ms(now))
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	rep.ImportedEvents += n
	return err
}

// ReasonBrokenTooLong is the StateReason of a connection the purge
// revoked because it stayed broken longer than the tenant's window.
const ReasonBrokenTooLong = "retention: broken too long"

// revokeBrokenConnections begins the revocation of the tenant's
// connections broken since before its window (not those of held
// subjects); their cleanup is left to the caller (rep.Revoking).
func (s *Store) revokeBrokenConnections(ctx context.Context, tp tenantPolicy, now time.Time, dryRun bool, rep *PurgeReport) error {
	cutoff := ms(now) - tp.p.BrokenConnections.Milliseconds()
	q := func(neg string) string {
		return "FROM connections c WHERE c.tenant_id = ? AND c.state = 'broken' AND c.broken_since > 0 AND c.broken_since <= ? AND " +
			neg + heldSQL("c.tenant_id", "c.subject_id", "?")
	}
	held, err := s.count(ctx, "SELECT count(*) "+q(""), tp.id, cutoff, ms(now))
	if err != nil {
		return err
	}
	rep.Held.Connections += held
	ids, err := queryStrings(ctx, s.read, s.rebind("SELECT c.id "+q("NOT ")+" ORDER BY c.id"), tp.id, cutoff, ms(now))
	if err != nil {
		return err
	}
	if dryRun {
		rep.ConnectionsRevoked += int64(len(ids))
		return nil
	}
	for _, id := range ids {
		c, err := s.BeginRevocation(ctx, tp.id, id, Revocation{Actor: "system", Reason: ReasonBrokenTooLong})
		if err != nil {
			return err
		}
		if c.State == ConnRevoking {
			rep.ConnectionsRevoked++
			rep.Revoking = append(rep.Revoking, c.ID)
		}
	}
	return nil
}

// inactiveSQL selects the tenant's subjects without activity since the
// cutoff: no notification written or due, no consent decision, no
// connection change or sync (and none being revoked), no appointment
// changed or ending since then. Already anonymised subjects and
// restricted ones (Art. 18: kept at the person's request) are never
// selected. neg is "NOT " to leave out held subjects, "" to select only
// them; one adds "AND s.id = ?". Arguments: see inactiveArgs.
func inactiveSQL(neg string, one bool) string {
	q := `FROM subjects s WHERE s.tenant_id = ? AND s.anonymised_at = 0 AND s.restricted = FALSE
		AND s.created_at <= ? AND s.updated_at <= ?
		AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.tenant_id = s.tenant_id AND n.subject_id = s.id
			AND (n.updated_at > ? OR n.send_at > ?))
		AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.tenant_id = s.tenant_id AND c.subject_id = s.id AND c.created_at > ?)
		AND NOT EXISTS (SELECT 1 FROM connections c WHERE c.tenant_id = s.tenant_id AND c.subject_id = s.id
			AND (c.updated_at > ? OR c.last_sync_at > ? OR c.state = 'revoking'))
		AND NOT EXISTS (SELECT 1 FROM appointment_subjects x JOIN appointments a ON a.tenant_id = x.tenant_id AND a.id = x.appointment_id
			WHERE x.tenant_id = s.tenant_id AND x.subject_id = s.id AND (a.updated_at > ? OR a.end_at > ?))
		AND ` + neg + heldSQL("s.tenant_id", "s.id", "?")
	if one {
		q += " AND s.id = ?"
	}
	return q
}

func inactiveArgs(tenantID string, cutoff, now int64, subjectID ...string) []any {
	args := []any{tenantID}
	for range 9 {
		args = append(args, cutoff)
	}
	args = append(args, now)
	for _, id := range subjectID {
		args = append(args, id)
	}
	return args
}

// purgeInactiveSubjects erases or anonymises (by the tenant's action) the
// subjects inactive for longer than its period; held ones are counted.
func (s *Store) purgeInactiveSubjects(ctx context.Context, tp tenantPolicy, now time.Time, dryRun bool, rep *PurgeReport) error {
	cutoff := ms(now) - tp.p.InactiveSubjects.Milliseconds()
	held, err := s.count(ctx, "SELECT count(*) "+inactiveSQL("", false), inactiveArgs(tp.id, cutoff, ms(now))...)
	if err != nil {
		return err
	}
	rep.Held.Subjects += held
	ids, err := queryStrings(ctx, s.read, s.rebind("SELECT s.id "+inactiveSQL("NOT ", false)+" ORDER BY s.id"), inactiveArgs(tp.id, cutoff, ms(now))...)
	if err != nil {
		return err
	}
	anonymise := tp.p.InactivityAction == InactivityAnonymise
	for _, id := range ids {
		if dryRun {
			if anonymise {
				rep.SubjectsAnonymised++
			} else {
				rep.SubjectsErased++
			}
			continue
		}
		var er EraseReport
		done := false
		err := s.withSubjectFenced(ctx, tp.id, id, func(tx *sql.Tx, live []string) error {
			// Checked again inside the transaction: activity or a hold may
			// have arrived since the list was read.
			var n int64
			if err := tx.QueryRowContext(ctx, s.rebind("SELECT count(*) "+inactiveSQL("NOT ", true)),
				inactiveArgs(tp.id, cutoff, ms(now), id)...).Scan(&n); err != nil || n == 0 {
				return err
			}
			var err error
			if anonymise {
				er, err = s.anonymiseSubject(ctx, tx, tp.id, id, live, now, "inactivity")
			} else {
				er, err = s.eraseSubject(ctx, tx, tp.id, id, "system", "", live, now, "inactivity")
			}
			done = err == nil
			return err
		})
		if err != nil {
			return fmt.Errorf("subject: %w", err)
		}
		if !done {
			continue
		}
		if anonymise {
			rep.SubjectsAnonymised++
		} else {
			rep.SubjectsErased++
		}
		rep.Revoking = append(rep.Revoking, er.Revoking...)
	}
	return nil
}

// anonymiseSubject replaces the subject by an opaque id and blanks its
// personal fields, keeping what statistics need: notifications keep
// channel, template, status and times (recipient, data, attempts and
// reasons go), consents keep purpose and decision (not the source
// address), appointments they alone took part in lose title, location and
// description, audit entries lose the source address. Connections are
// revoked and erased as in an erasure (they hold credentials and calendar
// addresses); imported events and OAuth states are deleted. The trace is
// a "subject.anonymise" entry naming only the opaque id.
func (s *Store) anonymiseSubject(ctx context.Context, tx *sql.Tx, tenantID, subjectID string, fenced []string, now time.Time, why string) (EraseReport, error) {
	var rep EraseReport
	if err := s.activeHold(ctx, tx, tenantID, subjectID, now); err != nil {
		return rep, err
	}
	revokedGone, err := s.revokeSubjectConnections(ctx, tx, tenantID, subjectID, fenced, now, &rep)
	if err != nil {
		return rep, err
	}
	now = truncMS(now)
	opaque := newID("anon_")
	ofSubject := "(SELECT id FROM connections WHERE tenant_id = ? AND subject_id = ?)"
	ofRevoked := "(SELECT id FROM connections WHERE tenant_id = ? AND subject_id = ? AND state = 'revoked')"
	alone := `(SELECT x.appointment_id FROM appointment_subjects x WHERE x.tenant_id = ? AND x.subject_id = ?
		AND NOT EXISTS (SELECT 1 FROM appointment_subjects y WHERE y.tenant_id = x.tenant_id
			AND y.appointment_id = x.appointment_id AND y.subject_id <> x.subject_id))`
	ts := []any{tenantID, subjectID}
	steps := []struct {
		what, sql string
		args      []any
	}{
		{"external events", "DELETE FROM external_events WHERE connection_id IN " + ofSubject, ts},
		{"links", "DELETE FROM links WHERE connection_id IN " + ofRevoked, ts},
		{"connections", "DELETE FROM connections WHERE tenant_id = ? AND subject_id = ? AND state = 'revoked'", ts},
		{"revoking connections", "UPDATE connections SET subject_id = ?, calendar_name = '' WHERE tenant_id = ? AND subject_id = ?",
			[]any{opaque, tenantID, subjectID}},
		{"oauth states", "DELETE FROM oauth_states WHERE tenant_id = ? AND subject_id = ?", ts},
		{"appointments", "UPDATE appointments SET title = '', location = '', description = '' WHERE tenant_id = ? AND id IN " + alone,
			[]any{tenantID, tenantID, subjectID}},
		{"appointment subjects", "UPDATE appointment_subjects SET subject_id = ? WHERE tenant_id = ? AND subject_id = ?",
			[]any{opaque, tenantID, subjectID}},
		{"notifications", `UPDATE notifications SET subject_id = ?, recipient = '', data = '', attempts = '[]', provider_id = '',
			request_hash = '', status_reason = '', idempotency_key = id WHERE tenant_id = ? AND subject_id = ?`,
			[]any{opaque, tenantID, subjectID}},
		{"consents", "UPDATE consents SET subject_id = ?, source_ip = '', user_agent = '' WHERE tenant_id = ? AND subject_id = ?",
			[]any{opaque, tenantID, subjectID}},
		{"audit", `UPDATE audit SET subject_id = ?, source_ip = '',
			target_id = CASE WHEN target_kind = 'subject' THEN ? ELSE target_id END WHERE tenant_id = ? AND subject_id = ?`,
			[]any{opaque, opaque, tenantID, subjectID}},
		{"ended holds", "UPDATE legal_holds SET subject_id = ?, reason = '' WHERE tenant_id = ? AND subject_id = ? AND ended_at > 0",
			[]any{opaque, tenantID, subjectID}},
		{"subject", "UPDATE subjects SET id = ?, anonymised_at = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
			[]any{opaque, ms(now), ms(now), tenantID, subjectID}},
	}
	for _, st := range steps {
		res, err := tx.ExecContext(ctx, s.rebind(st.sql), st.args...)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", st.what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return rep, fmt.Errorf("%s: %w", st.what, err)
		}
		rep.Rows += n
	}
	trace := AuditEntry{TenantID: tenantID, Actor: "system", Action: "subject.anonymise", TargetKind: "subject", TargetID: opaque,
		Detail: fmt.Sprintf("reason=%s rows=%d connections=%d", why, rep.Rows, int64(len(rep.Revoking))+revokedGone)}
	if err := s.insertAudit(ctx, tx, &trace, now); err != nil {
		return rep, fmt.Errorf("audit: %w", err)
	}
	return rep, nil
}
