package main

import (
	"context"
	"mime"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// TestAppointmentLifecycle follows one appointment's notifications through
// the daemon: confirmation sent and reminders planned on create; on a
// reschedule the old reminders cancelled, new ones planned and the notice
// sent; on cancellation the reminders cancelled and the notice sent.
func TestAppointmentLifecycle(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			st := newStack(t, dialect)
			notify := map[string]any{
				"recipients":    []map[string]any{{"subject_id": "anna", "channel": "email", "to": "anna@example.org", "locale": "de"}},
				"provider_name": "Praxis Dr. Weber", "service": "Erstgespräch", "customer_name": "Anna Schmidt",
				"confirmation": true,
			}
			start := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Hour)
			appt := func(start time.Time) map[string]any {
				return map[string]any{
					"subject_ids": []string{"anna"}, "time_zone": "Europe/Berlin", "title": "Erstgespräch",
					"start": start.Format(time.RFC3339), "end": start.Add(30 * time.Minute).Format(time.RFC3339),
					"reminders": []int{1440, 120}, "notify": notify,
				}
			}
			reminders := func(status string) []store.Notification {
				t.Helper()
				var out []store.Notification
				for _, n := range st.appointmentNotifications(t, "apt-7") {
					if n.Purpose == store.PurposeReminder && n.Status == status {
						out = append(out, n)
					}
				}
				return out
			}
			mailWith := func(subjectPart string) {
				t.Helper()
				waitFor(t, 15*time.Second, "a mail whose subject has "+subjectPart, func() bool {
					for _, m := range st.smtp.Messages() {
						if strings.Contains(decodeSubject(m.Header.Get("Subject")), subjectPart) {
							return true
						}
					}
					return false
				})
			}

			if code := st.do("PUT", "/v1/appointments/apt-7", appt(start), nil); code != http.StatusCreated {
				t.Fatalf("create: %d", code)
			}
			mailWith("Terminbestätigung")
			planned := reminders(store.StatusScheduled)
			if len(planned) != 2 {
				t.Fatalf("%d reminders scheduled, want 2", len(planned))
			}
			for _, n := range planned {
				if d := start.Sub(n.SendAt); d != 24*time.Hour && d != 2*time.Hour {
					t.Errorf("reminder at %v before the start, want 24h or 2h", d)
				}
			}

			moved := start.Add(24 * time.Hour)
			if code := st.do("PUT", "/v1/appointments/apt-7", appt(moved), nil); code != http.StatusOK {
				t.Fatalf("reschedule: %d", code)
			}
			mailWith("verschoben")
			if got := reminders(store.StatusCancelled); len(got) != 2 {
				t.Errorf("%d old reminders cancelled, want 2", len(got))
			}
			if got := reminders(store.StatusScheduled); len(got) != 2 || (moved.Sub(got[0].SendAt) != 24*time.Hour && moved.Sub(got[0].SendAt) != 2*time.Hour) {
				t.Errorf("new reminders %+v, want two for the new start", got)
			}

			if code := st.do("DELETE", "/v1/appointments/apt-7", map[string]any{"notify": notify}, nil); code != http.StatusOK {
				t.Fatalf("cancel: %d", code)
			}
			mailWith("abgesagt")
			if got := reminders(store.StatusScheduled); len(got) != 0 {
				t.Errorf("%d reminders still scheduled after the cancellation", len(got))
			}
		})
	}
}

// appointmentNotifications lists what the store planned for an appointment.
func (st *stack) appointmentNotifications(t *testing.T, appointmentID string) []store.Notification {
	t.Helper()
	q := "SELECT id FROM notifications WHERE tenant_id = ? AND appointment_id = ?"
	if st.store.Dialect() == store.DialectPostgres {
		q = "SELECT id FROM notifications WHERE tenant_id = $1 AND appointment_id = $2"
	}
	rows, err := st.store.DB().QueryContext(context.Background(), q, st.tenant.ID, appointmentID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	var out []store.Notification
	for _, id := range ids {
		n, err := st.store.GetNotification(context.Background(), st.tenant.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// decodeSubject undoes the RFC 2047 encoding of a Subject header.
func decodeSubject(s string) string {
	d, err := new(mime.WordDecoder).DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}
