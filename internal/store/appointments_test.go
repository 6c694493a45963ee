package store_test

import (
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// appt builds a timed appointment.
func appt(tenantID, id string, start time.Time, subjects ...string) store.Appointment {
	return store.Appointment{
		TenantID: tenantID, ID: id, SubjectIDs: subjects,
		Start: start, End: start.Add(30 * time.Minute), TimeZone: "Europe/Berlin",
		Title: "Check-up", Location: "Praxis Mitte", Description: "Bring the referral",
		Status: store.AppointmentConfirmed,
	}
}

func upsert(t *testing.T, s *store.Store, a store.Appointment) store.AppointmentChange {
	t.Helper()
	ch, err := s.UpsertAppointment(testCtx(t), a)
	if err != nil {
		t.Fatalf("UpsertAppointment(%s): %v", a.ID, err)
	}
	return ch
}

func TestUpsertAppointment(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		other, _ := storetest.NewTenant(t, s)
		start := time.Date(2031, 3, 4, 9, 0, 0, 123456789, time.UTC)
		base := appt(tn.ID, "apt-1", start, "ben", "anna", "ben")

		ch := upsert(t, s, base)
		a := ch.Appointment
		if !ch.Created || !ch.Changed || ch.Rescheduled || ch.Previous != nil || a.Version != 1 {
			t.Errorf("create: %+v", ch)
		}
		if !slices.Equal(a.SubjectIDs, []string{"anna", "ben"}) || !a.Start.Equal(start.Truncate(time.Millisecond)) ||
			a.Status != store.AppointmentConfirmed || a.Reminders != nil || a.CreatedAt.IsZero() {
			t.Errorf("created appointment = %+v", a)
		}
		for _, sub := range []string{"anna", "ben"} {
			if _, err := s.GetSubject(ctx, tn.ID, sub); err != nil {
				t.Errorf("subject row %s: %v", sub, err)
			}
		}
		got, err := s.GetAppointment(ctx, tn.ID, "apt-1")
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Errorf("GetAppointment = %+v, %v; want %+v", got, err, a)
		}

		steps := []struct {
			name                 string
			edit                 func(*store.Appointment)
			changed, rescheduled bool
			version              int
		}{
			{"identical", func(*store.Appointment) {}, false, false, 1},
			{"subjects in another order", func(a *store.Appointment) { a.SubjectIDs = []string{"anna", "ben"} }, false, false, 1},
			{"title", func(a *store.Appointment) { a.Title = "Follow-up" }, true, false, 2},
			{"same title again", func(a *store.Appointment) { a.Title = "Follow-up" }, false, false, 2},
			{"moved", func(a *store.Appointment) {
				a.Title = "Follow-up"
				a.Start, a.End = start.Add(time.Hour), start.Add(90*time.Minute)
			}, true, true, 3},
			{"longer", func(a *store.Appointment) {
				a.Title = "Follow-up"
				a.Start, a.End = start.Add(time.Hour), start.Add(2*time.Hour)
			}, true, true, 4},
			{"subject dropped", func(a *store.Appointment) {
				a.Title = "Follow-up"
				a.Start, a.End = start.Add(time.Hour), start.Add(2*time.Hour)
				a.SubjectIDs = []string{"anna"}
			}, true, false, 5},
			{"own reminders", func(a *store.Appointment) {
				a.Title = "Follow-up"
				a.Start, a.End = start.Add(time.Hour), start.Add(2*time.Hour)
				a.SubjectIDs = []string{"anna"}
				a.Reminders = []time.Duration{24 * time.Hour, 2 * time.Hour}
			}, true, false, 6},
			{"no reminders differs from the tenant's", func(a *store.Appointment) {
				a.Title = "Follow-up"
				a.Start, a.End = start.Add(time.Hour), start.Add(2*time.Hour)
				a.SubjectIDs = []string{"anna"}
				a.Reminders = []time.Duration{}
			}, true, false, 7},
		}
		prev := a
		for _, st := range steps {
			in := base
			in.SubjectIDs = slices.Clone(base.SubjectIDs)
			st.edit(&in)
			ch := upsert(t, s, in)
			if ch.Created || ch.Changed != st.changed || ch.Rescheduled != st.rescheduled || ch.Appointment.Version != st.version {
				t.Errorf("%s: created %v changed %v rescheduled %v version %d; want changed %v rescheduled %v version %d",
					st.name, ch.Created, ch.Changed, ch.Rescheduled, ch.Appointment.Version, st.changed, st.rescheduled, st.version)
			}
			if st.changed {
				if ch.Previous == nil || !reflect.DeepEqual(*ch.Previous, prev) {
					t.Errorf("%s: Previous = %+v, want %+v", st.name, ch.Previous, prev)
				}
			} else if ch.Previous != nil {
				t.Errorf("%s: Previous set without a change", st.name)
			}
			got, err := s.GetAppointment(ctx, tn.ID, "apt-1")
			if err != nil || !reflect.DeepEqual(got, ch.Appointment) {
				t.Errorf("%s: stored %+v, %v; returned %+v", st.name, got, err, ch.Appointment)
			}
			prev = ch.Appointment
		}
		if !slices.Equal(prev.SubjectIDs, []string{"anna"}) || prev.Reminders == nil || len(prev.Reminders) != 0 {
			t.Errorf("last state = %+v", prev)
		}
		if n := count(t, s, "SELECT count(*) FROM appointment_subjects WHERE tenant_id = ? AND appointment_id = 'apt-1'", tn.ID); n != 1 {
			t.Errorf("%d subject links after dropping one, want 1", n)
		}

		// Reminders are normalised: order and duplicates do not matter.
		r := appt(tn.ID, "apt-r", start, "anna")
		r.Reminders = []time.Duration{time.Hour, 24 * time.Hour, time.Hour}
		if got := upsert(t, s, r).Appointment.Reminders; !slices.Equal(got, []time.Duration{time.Hour, 24 * time.Hour}) {
			t.Errorf("reminders = %v", got)
		}
		r.Reminders = []time.Duration{24 * time.Hour, time.Hour}
		if ch := upsert(t, s, r); ch.Changed {
			t.Errorf("same reminders in another order counted as a change")
		}

		// All-day: the dates are the content, Start/End follow them.
		d := store.Appointment{TenantID: tn.ID, ID: "apt-day", SubjectIDs: []string{"anna"}, AllDay: true,
			StartDate: "2031-03-05", EndDate: "2031-03-07", TimeZone: "Europe/Berlin", Title: "Retreat"}
		ch = upsert(t, s, d)
		if got := ch.Appointment; !got.Start.Equal(time.Date(2031, 3, 5, 0, 0, 0, 0, time.UTC)) ||
			!got.End.Equal(time.Date(2031, 3, 7, 0, 0, 0, 0, time.UTC)) || got.Status != store.AppointmentConfirmed {
			t.Errorf("all-day = %+v", got)
		}
		d.EndDate = "2031-03-08"
		if ch := upsert(t, s, d); !ch.Changed || !ch.Rescheduled || ch.Appointment.Version != 2 {
			t.Errorf("all-day extended: %+v", ch)
		}

		// Bad input is refused and nothing is stored.
		bad := []struct {
			name string
			edit func(*store.Appointment)
		}{
			{"no subjects", func(a *store.Appointment) { a.SubjectIDs = nil }},
			{"empty subject", func(a *store.Appointment) { a.SubjectIDs = []string{""} }},
			{"end before start", func(a *store.Appointment) { a.End = a.Start.Add(-time.Minute) }},
			{"no start", func(a *store.Appointment) { a.Start = time.Time{} }},
			{"unknown status", func(a *store.Appointment) { a.Status = "tentative" }},
			{"reminder after start", func(a *store.Appointment) { a.Reminders = []time.Duration{-time.Hour} }},
			{"reminder seconds", func(a *store.Appointment) { a.Reminders = []time.Duration{90 * time.Second} }},
			{"all-day without dates", func(a *store.Appointment) { a.AllDay = true }},
			{"all-day end not after start", func(a *store.Appointment) {
				a.AllDay, a.StartDate, a.EndDate = true, "2031-03-05", "2031-03-05"
			}},
		}
		for _, b := range bad {
			in := appt(tn.ID, "apt-bad", start, "anna")
			b.edit(&in)
			if _, err := s.UpsertAppointment(ctx, in); err == nil {
				t.Errorf("%s: accepted", b.name)
			}
		}
		if _, err := s.GetAppointment(ctx, tn.ID, "apt-bad"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("refused appointment stored: %v", err)
		}
		if _, err := s.UpsertAppointment(ctx, appt("tnt_missing", "apt-x", start, "anna")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown tenant: %v, want ErrNotFound", err)
		}
		if _, err := s.GetAppointment(ctx, other.ID, "apt-1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("another tenant's appointment: %v, want ErrNotFound", err)
		}
		// The same booking-system id in another tenant is another appointment.
		if ch := upsert(t, s, appt(other.ID, "apt-1", start, "zoe")); !ch.Created {
			t.Errorf("same id in another tenant: %+v", ch)
		}
	})
}

func TestCancelAppointment(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		start := time.Now().Add(48 * time.Hour).Truncate(time.Millisecond).UTC()
		a := upsert(t, s, appt(tn.ID, "apt-1", start, "anna")).Appointment

		ch, err := s.CancelAppointment(ctx, tn.ID, "apt-1")
		if err != nil {
			t.Fatal(err)
		}
		if !ch.Changed || ch.Created || ch.Rescheduled || ch.Appointment.Status != store.AppointmentCancelled ||
			ch.Appointment.Version != 2 || ch.Previous == nil || !reflect.DeepEqual(*ch.Previous, a) ||
			!slices.Equal(ch.Appointment.SubjectIDs, []string{"anna"}) {
			t.Errorf("cancel: %+v", ch)
		}
		again, err := s.CancelAppointment(ctx, tn.ID, "apt-1")
		if err != nil || again.Changed || again.Previous != nil || !reflect.DeepEqual(again.Appointment, ch.Appointment) {
			t.Errorf("second cancel = %+v, %v; want the cancelled appointment unchanged", again, err)
		}
		// An upsert with status cancelled and the same content is no change.
		in := appt(tn.ID, "apt-1", start, "anna")
		in.Status = store.AppointmentCancelled
		if ch := upsert(t, s, in); ch.Changed || ch.Appointment.Version != 2 {
			t.Errorf("upsert of the cancelled body: %+v", ch)
		}
		// Confirming it again is a change.
		if ch := upsert(t, s, appt(tn.ID, "apt-1", start, "anna")); !ch.Changed || ch.Appointment.Version != 3 ||
			ch.Appointment.Status != store.AppointmentConfirmed {
			t.Errorf("re-confirm: %+v", ch)
		}
		if _, err := s.CancelAppointment(ctx, tn.ID, "apt-missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("cancel unknown: %v, want ErrNotFound", err)
		}

		if err := s.SetAppointmentSyncError(ctx, tn.ID, "apt-1", "caldav 507 on con_x"); err != nil {
			t.Fatal(err)
		}
		got, _ := s.GetAppointment(ctx, tn.ID, "apt-1")
		if got.SyncError != "caldav 507 on con_x" || got.Version != 3 {
			t.Errorf("after SetAppointmentSyncError: %+v", got)
		}
		if ch := upsert(t, s, appt(tn.ID, "apt-1", start, "anna")); ch.Changed || ch.Appointment.SyncError != "caldav 507 on con_x" {
			t.Errorf("sync error is not content, and stays: %+v", ch)
		}
		if err := s.SetAppointmentSyncError(ctx, tn.ID, "apt-1", ""); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetAppointment(ctx, tn.ID, "apt-1"); got.SyncError != "" {
			t.Errorf("sync error not cleared: %q", got.SyncError)
		}
		if err := s.SetAppointmentSyncError(ctx, tn.ID, "apt-missing", "x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SetAppointmentSyncError(unknown): %v, want ErrNotFound", err)
		}
	})
}

// connWith creates an active connection with the given privacy and
// direction and the consents granted on it.
func connWith(t *testing.T, s *store.Store, tenantID, subjectID, privacy, direction string, purposes ...string) store.Connection {
	t.Helper()
	c, err := s.CreateConnection(testCtx(t), store.Connection{
		TenantID: tenantID, SubjectID: subjectID, Provider: store.ProviderCalDAV,
		CalendarURL: "https://dav.example.org/cal/" + subjectID + "/", Privacy: privacy, Direction: direction,
	}, []byte("pw"), grant(purposes...), store.AuditEntry{Actor: "test"})
	if err != nil {
		t.Fatalf("CreateConnection: %v", err)
	}
	return c
}

func connIDs(cs []store.Connection) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func TestAppointmentConnections(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		other, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		w := store.ConsentCalendarWrite
		both := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionBoth, store.ConsentCalendarReadBusy, w)
		export := connWith(t, s, tn.ID, "anna", store.PrivacyFull, store.DirectionExport, w)
		importOnly := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionImport, store.ConsentCalendarReadBusy, w)
		noWrite := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionBoth, store.ConsentCalendarReadBusy)
		revokedWrite := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionBoth, w)
		refusedWrite := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionBoth, w)
		paused := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionBoth, w)
		revoking := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionBoth, w)
		ben := connWith(t, s, tn.ID, "ben", store.PrivacyBusy, store.DirectionBoth, w)
		connWith(t, s, tn.ID, "carl", store.PrivacyBusy, store.DirectionBoth, w) // not on the appointment
		connWith(t, s, other.ID, "anna", store.PrivacyBusy, store.DirectionBoth, w)

		time.Sleep(2 * time.Millisecond) // later decisions sort after the grants
		for c, decision := range map[string]string{revokedWrite.ID: store.DecisionRevoked, refusedWrite.ID: store.DecisionRefused} {
			if _, err := s.RecordConsent(ctx, store.Consent{TenantID: tn.ID, SubjectID: "anna", Purpose: w,
				Decision: decision, ConnectionID: c, Actor: "test"}); err != nil {
				t.Fatal(err)
			}
		}
		// A grant that is not recorded on the connection does not count for it.
		if _, err := s.RecordConsent(ctx, store.Consent{TenantID: tn.ID, SubjectID: "anna", Purpose: w,
			Decision: store.DecisionGranted, Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetConnectionState(ctx, paused.ID, store.ConnPaused, "quota", "test"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.BeginRevocation(ctx, tn.ID, revoking.ID, store.Revocation{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		upsert(t, s, appt(tn.ID, "apt-1", time.Now().Add(time.Hour), "anna", "ben"))

		got, err := s.AppointmentConnections(ctx, tn.ID, "apt-1")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{both.ID, export.ID, ben.ID}; !slices.Equal(connIDs(got), want) {
			t.Errorf("AppointmentConnections = %v, want %v (not import-only %s, no write %s, revoked %s, refused %s, paused %s, revoking %s)",
				connIDs(got), want, importOnly.ID, noWrite.ID, revokedWrite.ID, refusedWrite.ID, paused.ID, revoking.ID)
		}

		// Granting again on the connection brings it back; revoking the
		// connection's consent through its revocation takes it out.
		time.Sleep(2 * time.Millisecond)
		if _, err := s.RecordConsent(ctx, store.Consent{TenantID: tn.ID, SubjectID: "anna", Purpose: w,
			Decision: store.DecisionGranted, ConnectionID: refusedWrite.ID, Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.BeginRevocation(ctx, tn.ID, both.ID, store.Revocation{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		got, err = s.AppointmentConnections(ctx, tn.ID, "apt-1")
		if want := []string{export.ID, refusedWrite.ID, ben.ID}; err != nil || !slices.Equal(connIDs(got), want) {
			t.Errorf("after re-grant and revocation = %v, %v; want %v", connIDs(got), err, want)
		}
		// Cancelled appointments still have their connections (copies must go).
		if _, err := s.CancelAppointment(ctx, tn.ID, "apt-1"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.AppointmentConnections(ctx, tn.ID, "apt-1"); err != nil || len(got) != 3 {
			t.Errorf("cancelled appointment's connections = %v, %v", connIDs(got), err)
		}
		if got, err := s.AppointmentConnections(ctx, tn.ID, "apt-missing"); err != nil || len(got) != 0 {
			t.Errorf("unknown appointment's connections = %v, %v", connIDs(got), err)
		}
		if got, err := s.AppointmentConnections(ctx, other.ID, "apt-1"); err != nil || len(got) != 0 {
			t.Errorf("another tenant's view = %v, %v", connIDs(got), err)
		}
	})
}

func TestConnectionAppointments(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		other, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		c := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionBoth, store.ConsentCalendarWrite)
		from := time.Date(2031, 5, 1, 0, 0, 0, 0, time.UTC)
		to := from.Add(24 * time.Hour)
		at := func(h float64) time.Time { return from.Add(time.Duration(h * float64(time.Hour))) }

		upsert(t, s, appt(tn.ID, "a-morning", at(9), "anna"))
		upsert(t, s, appt(tn.ID, "a-shared", at(11), "ben", "anna"))
		upsert(t, s, appt(tn.ID, "a-cancelled", at(13), "anna"))
		if _, err := s.CancelAppointment(ctx, tn.ID, "a-cancelled"); err != nil {
			t.Fatal(err)
		}
		crossing := appt(tn.ID, "a-crossing", at(-0.25), "anna") // 23:45 the day before to 00:15
		upsert(t, s, crossing)
		upsert(t, s, appt(tn.ID, "a-ben", at(10), "ben"))
		upsert(t, s, appt(tn.ID, "a-later", at(30), "anna"))
		upsert(t, s, appt(tn.ID, "a-at-end", to, "anna"))       // starts exactly at to
		upsert(t, s, appt(tn.ID, "a-before", at(-0.5), "anna")) // ends exactly at from
		upsert(t, s, appt(other.ID, "a-other", at(9), "anna"))  // another tenant's anna
		day := store.Appointment{TenantID: tn.ID, ID: "a-allday", SubjectIDs: []string{"anna"}, AllDay: true,
			StartDate: "2031-05-01", EndDate: "2031-05-02"}
		upsert(t, s, day)

		got, err := s.ConnectionAppointments(ctx, c.ID, from, to)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range got {
			ids = append(ids, a.ID)
		}
		if want := []string{"a-crossing", "a-allday", "a-morning", "a-shared", "a-cancelled"}; !slices.Equal(ids, want) {
			t.Errorf("ConnectionAppointments = %v, want %v", ids, want)
		}
		for _, a := range got {
			want := []string{"anna"}
			if a.ID == "a-shared" {
				want = []string{"anna", "ben"}
			}
			if !slices.Equal(a.SubjectIDs, want) {
				t.Errorf("%s: subjects %v, want %v", a.ID, a.SubjectIDs, want)
			}
			if a.ID == "a-cancelled" && (a.Status != store.AppointmentCancelled || a.Version != 2) {
				t.Errorf("cancelled appointment listed as %+v", a)
			}
		}
		if got, err := s.ConnectionAppointments(ctx, "con_missing", from, to); err != nil || len(got) != 0 {
			t.Errorf("unknown connection: %d, %v", len(got), err)
		}
	})
}

func TestCancelAppointmentNotifications(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		other, _ := storetest.NewTenant(t, s)
		now := time.Now()
		mk := func(tenantID, key, appointmentID, purpose string, sendAt time.Time) store.Notification {
			n := item(tenantID, key, sendAt)
			n.AppointmentID, n.Purpose = appointmentID, purpose
			created := create(t, s, n)
			if created.AppointmentID != appointmentID {
				t.Fatalf("created AppointmentID = %q, want %q", created.AppointmentID, appointmentID)
			}
			return created
		}
		r1 := mk(tn.ID, "r1", "apt-1", store.PurposeReminder, now.Add(time.Hour))
		r2 := mk(tn.ID, "r2", "apt-1", store.PurposeReminder, now.Add(2*time.Hour))
		sending := mk(tn.ID, "r3", "apt-1", store.PurposeReminder, now.Add(-time.Minute))
		claim(t, s, sending.ID, now)
		confirmation := mk(tn.ID, "t1", "apt-1", store.PurposeTransactional, now.Add(time.Hour))
		otherAppt := mk(tn.ID, "r4", "apt-2", store.PurposeReminder, now.Add(time.Hour))
		unlinked := mk(tn.ID, "r5", "", store.PurposeReminder, now.Add(time.Hour))
		otherTenant := mk(other.ID, "r6", "apt-1", store.PurposeReminder, now.Add(time.Hour))

		n, err := s.CancelAppointmentNotifications(ctx, tn.ID, "apt-1", store.PurposeReminder)
		if err != nil || n != 2 {
			t.Fatalf("CancelAppointmentNotifications = %d, %v; want 2", n, err)
		}
		status := func(tenantID, id string) store.Notification {
			t.Helper()
			got, err := s.GetNotification(ctx, tenantID, id)
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		for _, id := range []string{r1.ID, r2.ID} {
			got := status(tn.ID, id)
			if got.Status != store.StatusCancelled || got.StatusReason != store.ReasonAppointmentChanged ||
				got.FinalAt.IsZero() || !got.ExpiresAt.After(got.FinalAt) || got.AppointmentID != "apt-1" {
				t.Errorf("cancelled reminder = %+v", got)
			}
		}
		for _, c := range []struct {
			tenant, id, want string
		}{
			{tn.ID, sending.ID, store.StatusSending},
			{tn.ID, confirmation.ID, store.StatusScheduled},
			{tn.ID, otherAppt.ID, store.StatusScheduled},
			{tn.ID, unlinked.ID, store.StatusScheduled},
			{other.ID, otherTenant.ID, store.StatusScheduled},
		} {
			if got := status(c.tenant, c.id); got.Status != c.want {
				t.Errorf("%s: status %s, want %s", got.IdempotencyKey, got.Status, c.want)
			}
		}
		if n, err := s.CancelAppointmentNotifications(ctx, tn.ID, "apt-1", store.PurposeReminder); err != nil || n != 0 {
			t.Errorf("second call = %d, %v; want 0", n, err)
		}
		// "" cancels every purpose.
		if n, err := s.CancelAppointmentNotifications(ctx, tn.ID, "apt-1", ""); err != nil || n != 1 {
			t.Errorf("every purpose = %d, %v; want 1 (the confirmation)", n, err)
		}
		if _, err := s.CancelAppointmentNotifications(ctx, tn.ID, "", store.PurposeReminder); err == nil {
			t.Errorf("an empty appointment id was accepted")
		}
		if got := status(tn.ID, unlinked.ID); got.Status != store.StatusScheduled {
			t.Errorf("a notification of no appointment was touched: %s", got.Status)
		}
	})
}

// Concurrent upserts of one new appointment: one creates it, the others
// see it unchanged.
func TestUpsertAppointmentConcurrent(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		a := appt(tn.ID, "apt-race", time.Now().Add(time.Hour), "anna", "ben")
		const writers = 8
		results := make([]store.AppointmentChange, writers)
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() { results[i], errs[i] = s.UpsertAppointment(ctx, a) })
		}
		wg.Wait()
		created := 0
		for i, r := range results {
			if errs[i] != nil {
				t.Fatalf("writer %d: %v", i, errs[i])
			}
			if r.Created {
				created++
			} else if r.Changed {
				t.Errorf("writer %d changed an identical appointment: %+v", i, r)
			}
			if r.Appointment.Version != 1 {
				t.Errorf("writer %d: version %d", i, r.Appointment.Version)
			}
		}
		if created != 1 {
			t.Errorf("%d writers created the appointment, want 1", created)
		}
		if n := count(t, s, "SELECT count(*) FROM appointment_subjects WHERE tenant_id = ?", tn.ID); n != 2 {
			t.Errorf("%d subject links, want 2", n)
		}
	})
}
