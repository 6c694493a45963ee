package store

// Appointments: the booking system's appointments, their subjects and the
// notifications planned for them. The sync state of connections (links,
// imported events, busy time, sync runs) is in syncstate.go.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

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

// ReasonAppointmentChanged is the StatusReason of notifications cancelled
// by CancelAppointmentNotifications.
const ReasonAppointmentChanged = "appointment_changed"

const dateLayout = "2006-01-02"

// appointmentColumns are the columns scanAppointment reads, in order.
var appointmentColumns = []string{"tenant_id", "id", "start_at", "end_at", "time_zone", "all_day", "start_date",
	"end_date", "title", "location", "description", "status", "reminders", "version", "sync_error",
	"created_at", "updated_at"}

// appointmentCols lists appointmentColumns, each prefixed with alias+"."
// when alias is not "".
func appointmentCols(alias string) string {
	if alias == "" {
		return strings.Join(appointmentColumns, ", ")
	}
	return alias + "." + strings.Join(appointmentColumns, ", "+alias+".")
}

// scanAppointment reads appointmentCols and then extra (SubjectIDs is
// left to the caller).
func scanAppointment(r rowScanner, extra ...any) (Appointment, error) {
	var a Appointment
	var start, end, created, updated int64
	var reminders string
	dest := []any{&a.TenantID, &a.ID, &start, &end, &a.TimeZone, &a.AllDay, &a.StartDate, &a.EndDate,
		&a.Title, &a.Location, &a.Description, &a.Status, &reminders, &a.Version, &a.SyncError, &created, &updated}
	if err := r.Scan(append(dest, extra...)...); err != nil {
		return Appointment{}, err
	}
	var err error
	if a.Reminders, err = parseMinutes(reminders); err != nil {
		return Appointment{}, fmt.Errorf("appointment %s: reminders: %w", a.ID, err)
	}
	a.Start, a.End, a.CreatedAt, a.UpdatedAt = fromMS(start), fromMS(end), fromMS(created), fromMS(updated)
	return a, nil
}

// parseMinutes reads a JSON array of minutes; "" is nil (not set), "[]"
// an empty, non-nil list.
func parseMinutes(text string) ([]time.Duration, error) {
	if text == "" {
		return nil, nil
	}
	var minutes []int64
	if err := json.Unmarshal([]byte(text), &minutes); err != nil {
		return nil, err
	}
	out := make([]time.Duration, len(minutes))
	for i, m := range minutes {
		out[i] = time.Duration(m) * time.Minute
	}
	return out, nil
}

// formatMinutes is the inverse of parseMinutes; durations must be whole
// minutes.
func formatMinutes(d []time.Duration) (string, error) {
	if d == nil {
		return "", nil
	}
	minutes := make([]int64, len(d))
	for i, v := range d {
		if v%time.Minute != 0 {
			return "", fmt.Errorf("%v is not a whole number of minutes", v)
		}
		minutes[i] = int64(v / time.Minute)
	}
	b, err := json.Marshal(minutes)
	return string(b), err
}

// normaliseReminders checks reminder offsets (positive, whole minutes) and
// returns them sorted ascending without duplicates; nil stays nil (the
// tenant's rules), an empty list stays empty (no reminders).
func normaliseReminders(d []time.Duration) ([]time.Duration, error) {
	if d == nil {
		return nil, nil
	}
	if len(d) == 0 {
		return []time.Duration{}, nil
	}
	for _, v := range d {
		if v <= 0 || v%time.Minute != 0 {
			return nil, fmt.Errorf("reminder %v: must be a positive whole number of minutes", v)
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(d))), nil
}

// normaliseAppointment checks an appointment for UpsertAppointment and
// brings it into the form it is stored and compared in: subjects sorted
// and unique, status confirmed unless given, times in UTC milliseconds;
// all-day appointments get Start/End from their dates, timed ones lose
// any dates.
func normaliseAppointment(a Appointment) (Appointment, error) {
	if a.TenantID == "" || a.ID == "" {
		return a, errors.New("tenant and id are required")
	}
	if len(a.SubjectIDs) == 0 {
		return a, errors.New("at least one subject is required")
	}
	subjects := slices.Compact(slices.Sorted(slices.Values(a.SubjectIDs)))
	if subjects[0] == "" {
		return a, errors.New("empty subject id")
	}
	a.SubjectIDs = subjects
	switch a.Status {
	case "":
		a.Status = AppointmentConfirmed
	case AppointmentConfirmed, AppointmentCancelled:
	default:
		return a, fmt.Errorf("unknown status %q", a.Status)
	}
	if a.AllDay {
		sd, err := time.Parse(dateLayout, a.StartDate)
		if err != nil {
			return a, fmt.Errorf("start date: %w", err)
		}
		ed, err := time.Parse(dateLayout, a.EndDate)
		if err != nil {
			return a, fmt.Errorf("end date: %w", err)
		}
		if !ed.After(sd) {
			return a, errors.New("end date must be after start date (it is exclusive)")
		}
		a.Start, a.End = sd, ed
	} else {
		if a.Start.IsZero() || a.End.IsZero() {
			return a, errors.New("start and end are required")
		}
		a.StartDate, a.EndDate = "", ""
	}
	a.Start, a.End = truncMS(a.Start), truncMS(a.End)
	if !a.End.After(a.Start) {
		return a, errors.New("end must be after start")
	}
	var err error
	if a.Reminders, err = normaliseReminders(a.Reminders); err != nil {
		return a, err
	}
	return a, nil
}

// sameContent reports whether two normalised appointments have the same
// content and status (version, sync error and times of writing aside).
func sameContent(a, b Appointment) bool {
	return slices.Equal(a.SubjectIDs, b.SubjectIDs) &&
		a.Start.Equal(b.Start) && a.End.Equal(b.End) && a.TimeZone == b.TimeZone && a.AllDay == b.AllDay &&
		a.StartDate == b.StartDate && a.EndDate == b.EndDate &&
		a.Title == b.Title && a.Location == b.Location && a.Description == b.Description && a.Status == b.Status &&
		(a.Reminders == nil) == (b.Reminders == nil) && slices.Equal(a.Reminders, b.Reminders)
}

// UpsertAppointment creates or updates an appointment (and its subjects, as
// subject rows). An identical body changes nothing (Changed false, same
// Version).
//
// Details: the appointment is normalised first (see Appointment; subjects
// sorted and unique, at least one; Status "" means confirmed; reminders
// positive whole minutes, sorted, nil meaning the tenant's rules and an
// empty list none). A new appointment gets Version 1 (Created and Changed
// true). A change of content or status increases Version, replaces the
// subjects and returns the old row as Previous; Rescheduled says start or
// end moved. SyncError is kept. An unknown tenant gives ErrNotFound;
// invalid input an error naming the rule.
func (s *Store) UpsertAppointment(ctx context.Context, a Appointment) (AppointmentChange, error) {
	a, err := normaliseAppointment(a)
	if err != nil {
		return AppointmentChange{}, fmt.Errorf("upsert appointment: %w", err)
	}
	reminders, err := formatMinutes(a.Reminders)
	if err != nil {
		return AppointmentChange{}, fmt.Errorf("upsert appointment: %w", err)
	}
	now := truncMS(time.Now())
	var ch AppointmentChange
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, s.rebind("SELECT 1 FROM tenants WHERE id = ?"), a.TenantID).Scan(&one)
		if err != nil {
			return fmt.Errorf("tenant: %w", notFound(err))
		}
		// Insert first: of two concurrent creators one inserts, the other
		// waits for it and then updates like any later writer.
		res, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO appointments (`+appointmentCols("")+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, '', ?, ?)
			ON CONFLICT (tenant_id, id) DO NOTHING`),
			a.TenantID, a.ID, ms(a.Start), ms(a.End), a.TimeZone, a.AllDay, a.StartDate, a.EndDate,
			a.Title, a.Location, a.Description, a.Status, reminders, ms(now), ms(now))
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		inserted, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		if inserted == 1 {
			a.Version, a.SyncError, a.CreatedAt, a.UpdatedAt = 1, "", now, now
			if err := s.setAppointmentSubjects(ctx, tx, a, ms(now)); err != nil {
				return err
			}
			ch = AppointmentChange{Appointment: a, Created: true, Changed: true}
			return s.countUsage(ctx, tx, a.TenantID, KindAppointmentCreated, "", now)
		}
		old, err := s.lockAppointment(ctx, tx, a.TenantID, a.ID)
		if err != nil {
			return err
		}
		if sameContent(old, a) {
			ch = AppointmentChange{Appointment: old}
			return nil
		}
		cur, err := scanAppointment(tx.QueryRowContext(ctx, s.rebind(`UPDATE appointments SET start_at = ?, end_at = ?,
			time_zone = ?, all_day = ?, start_date = ?, end_date = ?, title = ?, location = ?, description = ?,
			status = ?, reminders = ?, version = version + 1, updated_at = ?
			WHERE tenant_id = ? AND id = ? RETURNING `+appointmentCols("")),
			ms(a.Start), ms(a.End), a.TimeZone, a.AllDay, a.StartDate, a.EndDate, a.Title, a.Location,
			a.Description, a.Status, reminders, ms(now), a.TenantID, a.ID))
		if err != nil {
			return fmt.Errorf("update: %w", err)
		}
		cur.SubjectIDs = a.SubjectIDs
		if !slices.Equal(old.SubjectIDs, a.SubjectIDs) {
			if _, err := tx.ExecContext(ctx, s.rebind("DELETE FROM appointment_subjects WHERE tenant_id = ? AND appointment_id = ?"),
				a.TenantID, a.ID); err != nil {
				return fmt.Errorf("subjects: %w", err)
			}
			if err := s.setAppointmentSubjects(ctx, tx, a, ms(now)); err != nil {
				return err
			}
		}
		ch = AppointmentChange{Appointment: cur, Previous: &old, Changed: true,
			Rescheduled: !old.Start.Equal(cur.Start) || !old.End.Equal(cur.End)}
		return s.countAppointmentChange(ctx, tx, ch, now)
	})
	if err != nil {
		return AppointmentChange{}, fmt.Errorf("upsert appointment: %w", err)
	}
	return ch, nil
}

// setAppointmentSubjects creates the subject rows of a (sorted, so
// concurrent writers lock them in one order) and links them to it.
func (s *Store) setAppointmentSubjects(ctx context.Context, tx *sql.Tx, a Appointment, now int64) error {
	for _, id := range a.SubjectIDs {
		if err := s.ensureSubject(ctx, tx, a.TenantID, id, now); err != nil {
			return fmt.Errorf("subject: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.rebind("INSERT INTO appointment_subjects (tenant_id, appointment_id, subject_id) VALUES (?, ?, ?)"),
			a.TenantID, a.ID, id); err != nil {
			return fmt.Errorf("subjects: %w", err)
		}
	}
	return nil
}

// lockAppointment reads an appointment with its subjects inside tx, locked
// until the transaction ends (ErrNotFound if there is none).
func (s *Store) lockAppointment(ctx context.Context, tx *sql.Tx, tenantID, id string) (Appointment, error) {
	a, err := scanAppointment(tx.QueryRowContext(ctx, s.rebind("SELECT "+appointmentCols("")+
		" FROM appointments WHERE tenant_id = ? AND id = ?"+s.forUpdate()), tenantID, id))
	if err != nil {
		return Appointment{}, notFound(err)
	}
	rows, err := tx.QueryContext(ctx, s.rebind("SELECT subject_id FROM appointment_subjects WHERE tenant_id = ? AND appointment_id = ? ORDER BY subject_id"),
		tenantID, id)
	if err != nil {
		return Appointment{}, fmt.Errorf("subjects: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sub string
		if err := rows.Scan(&sub); err != nil {
			return Appointment{}, fmt.Errorf("subjects: %w", err)
		}
		a.SubjectIDs = append(a.SubjectIDs, sub)
	}
	if err := rows.Err(); err != nil {
		return Appointment{}, fmt.Errorf("subjects: %w", err)
	}
	return a, nil
}

// queryAppointments lists the appointments matching where (over
// appointments a and the tables that join adds), each with all its
// subjects, ordered by start and id.
func (s *Store) queryAppointments(ctx context.Context, q querier, join, where string, args ...any) ([]Appointment, error) {
	rows, err := q.QueryContext(ctx, s.rebind("SELECT "+appointmentCols("a")+", x.subject_id FROM appointments a "+join+
		" LEFT JOIN appointment_subjects x ON x.tenant_id = a.tenant_id AND x.appointment_id = a.id"+
		" WHERE "+where+" ORDER BY a.start_at, a.id, x.subject_id"), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Appointment
	for rows.Next() {
		var sub sql.NullString
		a, err := scanAppointment(rows, &sub)
		if err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].TenantID != a.TenantID || out[n-1].ID != a.ID {
			out = append(out, a)
		}
		if sub.Valid {
			last := &out[len(out)-1]
			last.SubjectIDs = append(last.SubjectIDs, sub.String)
		}
	}
	return out, rows.Err()
}

// GetAppointment returns ErrNotFound for an unknown id or another tenant's.
func (s *Store) GetAppointment(ctx context.Context, tenantID, id string) (Appointment, error) {
	list, err := s.queryAppointments(ctx, s.read, "", "a.tenant_id = ? AND a.id = ?", tenantID, id)
	if err != nil {
		return Appointment{}, fmt.Errorf("get appointment: %w", err)
	}
	if len(list) == 0 {
		return Appointment{}, fmt.Errorf("get appointment: %w", ErrNotFound)
	}
	return list[0], nil
}

// CancelAppointment sets status cancelled (Version+1). Cancelling a
// cancelled appointment returns it unchanged.
//
// The change reports Previous and Changed as UpsertAppointment does
// (Changed false when it was cancelled already). ErrNotFound for an
// unknown appointment.
func (s *Store) CancelAppointment(ctx context.Context, tenantID, id string) (AppointmentChange, error) {
	var ch AppointmentChange
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		old, err := s.lockAppointment(ctx, tx, tenantID, id)
		if err != nil {
			return err
		}
		if old.Status == AppointmentCancelled {
			ch = AppointmentChange{Appointment: old}
			return nil
		}
		now := time.Now()
		cur, err := scanAppointment(tx.QueryRowContext(ctx, s.rebind(`UPDATE appointments
			SET status = 'cancelled', version = version + 1, updated_at = ?
			WHERE tenant_id = ? AND id = ? RETURNING `+appointmentCols("")), now.UnixMilli(), tenantID, id))
		if err != nil {
			return fmt.Errorf("update: %w", err)
		}
		cur.SubjectIDs = old.SubjectIDs
		ch = AppointmentChange{Appointment: cur, Previous: &old, Changed: true}
		return s.countAppointmentChange(ctx, tx, ch, now)
	})
	if err != nil {
		return AppointmentChange{}, fmt.Errorf("cancel appointment: %w", err)
	}
	return ch, nil
}

// ConnectionAppointments lists the appointments of the connection's
// subject that overlap [from, to), cancelled ones included (their copies
// must be removed).
//
// Each comes with all its subjects, ordered by start. The connection's
// state is not looked at: CalendarWrite checks it at the write. An unknown
// connection has none.
func (s *Store) ConnectionAppointments(ctx context.Context, connectionID string, from, to time.Time) ([]Appointment, error) {
	out, err := s.queryAppointments(ctx, s.read,
		`JOIN appointment_subjects y ON y.tenant_id = a.tenant_id AND y.appointment_id = a.id
		JOIN connections c ON c.tenant_id = y.tenant_id AND c.subject_id = y.subject_id`,
		"c.id = ? AND a.start_at < ? AND a.end_at > ?", connectionID, ms(to), ms(from))
	if err != nil {
		return nil, fmt.Errorf("connection appointments: %w", err)
	}
	return out, nil
}

// AppointmentConnections lists the active connections that get copies of
// the appointment: of its subjects, direction export or both, and with a
// granted calendar.write on the connection.
//
// "Granted" is the latest calendar.write decision recorded on the
// connection (consents carry its id): a later revocation or refusal
// excludes it. A restricted subject's connections are listed; CalendarWrite
// refuses to write to them (ErrRestricted). An unknown appointment has
// none. Oldest connection first.
func (s *Store) AppointmentConnections(ctx context.Context, tenantID, appointmentID string) ([]Connection, error) {
	out, err := s.queryConnections(ctx, s.read, `connections.tenant_id = ? AND connections.state = 'active'
		AND connections.direction IN ('export', 'both')
		AND connections.subject_id IN (SELECT x.subject_id FROM appointment_subjects x
			WHERE x.tenant_id = ? AND x.appointment_id = ?)
		AND `+writeGranted, false,
		tenantID, tenantID, appointmentID, ConsentCalendarWrite, DecisionGranted)
	if err != nil {
		return nil, fmt.Errorf("appointment connections: %w", err)
	}
	return out, nil
}

// SetAppointmentSyncError records ("" clears) a push problem on the appointment.
// It changes neither Version nor UpdatedAt. ErrNotFound for an unknown
// appointment.
func (s *Store) SetAppointmentSyncError(ctx context.Context, tenantID, id, msg string) error {
	res, err := s.db.ExecContext(ctx, s.rebind("UPDATE appointments SET sync_error = ? WHERE tenant_id = ? AND id = ?"),
		msg, tenantID, id)
	if err != nil {
		return fmt.Errorf("set appointment sync error: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("set appointment sync error: %w", ErrNotFound)
	}
	return nil
}

// CancelAppointmentNotifications cancels the appointment's scheduled
// notifications of the given purpose (reminders on reschedule/cancel);
// it returns how many it cancelled.
//
// purpose "" cancels the scheduled ones of every purpose. Rows already
// sending or final are left alone. Cancelled rows get StatusReason
// ReasonAppointmentChanged and expire like any final row.
func (s *Store) CancelAppointmentNotifications(ctx context.Context, tenantID, appointmentID, purpose string) (int, error) {
	if tenantID == "" || appointmentID == "" {
		return 0, errors.New("cancel appointment notifications: tenant and appointment are required")
	}
	now := time.Now().UnixMilli()
	query := `UPDATE notifications SET status = 'cancelled', status_reason = ?, claimed_until = 0, updated_at = ?, ` + finalSet + `
		WHERE tenant_id = ? AND appointment_id = ? AND status = 'scheduled'`
	args := []any{ReasonAppointmentChanged, now, now, now, tenantID, appointmentID}
	if purpose != "" {
		query += " AND purpose = ?"
		args = append(args, purpose)
	}
	res, err := s.db.ExecContext(ctx, s.rebind(query), args...)
	if err != nil {
		return 0, fmt.Errorf("cancel appointment notifications: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("cancel appointment notifications: %w", err)
	}
	return int(n), nil
}

// countAppointmentChange adds a change of an existing appointment to the
// anonymous counters: a move of start or end is a reschedule, a change of
// status to cancelled a cancellation.
func (s *Store) countAppointmentChange(ctx context.Context, tx *sql.Tx, ch AppointmentChange, now time.Time) error {
	a := ch.Appointment
	if ch.Rescheduled && a.Status != AppointmentCancelled {
		if err := s.countUsage(ctx, tx, a.TenantID, KindAppointmentRescheduled, "", now); err != nil {
			return err
		}
	}
	if ch.Previous != nil && ch.Previous.Status != AppointmentCancelled && a.Status == AppointmentCancelled {
		return s.countUsage(ctx, tx, a.TenantID, KindAppointmentCancelled, "", now)
	}
	return nil
}
