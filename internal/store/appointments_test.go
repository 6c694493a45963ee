package store_test

import (
	"errors"
	"reflect"
	"slices"
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
