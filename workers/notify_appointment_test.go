package workers

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// TestReminderChecksItsAppointment: a reminder is checked against its
// appointment right before the send, so one left over from a reschedule
// or cancellation never goes out.
func TestReminderChecksItsAppointment(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnv(t, dialect, nil)
			start := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
			upsert := func(id string, start time.Time) {
				t.Helper()
				_, err := e.store.UpsertAppointment(ctx, store.Appointment{TenantID: e.tenant.ID, ID: id, SubjectIDs: []string{"anna"},
					Start: start, End: start.Add(30 * time.Minute), TimeZone: "Europe/Berlin", Title: "Termin", Status: store.AppointmentConfirmed})
				if err != nil {
					t.Fatal(err)
				}
			}
			reminder := func(appointmentID string, start time.Time) store.Notification {
				data, _ := json.Marshal(map[string]any{"customer_name": "Anna", "start": start.Format(time.RFC3339)})
				return e.create(func(n *store.Notification) {
					n.Purpose, n.SubjectID, n.AppointmentID, n.Data = store.PurposeReminder, "anna", appointmentID, data
				})
			}
			upsert("kept", start)
			upsert("moved", start)
			upsert("cancelled", start)
			kept, moved, cancelled, gone := reminder("kept", start), reminder("moved", start), reminder("cancelled", start), reminder("never-existed", start)
			upsert("moved", start.Add(time.Hour))
			if _, err := e.store.CancelAppointment(ctx, e.tenant.ID, "cancelled"); err != nil {
				t.Fatal(err)
			}

			n := e.notifier(nil)
			for _, id := range []string{kept.ID, moved.ID, cancelled.ID, gone.ID} {
				if err := n.Deliver(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			for id, want := range map[string][2]string{
				kept.ID:      {store.StatusSent, ""},
				moved.ID:     {store.StatusSuppressed, ReasonAppointmentMoved},
				cancelled.ID: {store.StatusSuppressed, ReasonAppointmentGone},
				gone.ID:      {store.StatusSuppressed, ReasonAppointmentGone},
			} {
				got := e.get(id)
				if got.Status != want[0] || got.StatusReason != want[1] {
					t.Errorf("%s: %s %q, want %s %q", id, got.Status, got.StatusReason, want[0], want[1])
				}
			}
			if sends := len(e.mail.sends()); sends != 1 {
				t.Errorf("%d mails sent, want only the reminder of the unchanged appointment", sends)
			}
		})
	}
}
