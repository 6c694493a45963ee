package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/connectors/caldav/caldavtest"
	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/store/storetest"
)

// TestSyncThroughTheDaemon: an appointment written through the API appears
// in the customer's Radicale calendar, the customer's own event shows up in
// the busy API after a sync, our copy never does, and a cancellation
// removes the copy.
func TestSyncThroughTheDaemon(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			rad := caldavtest.StartRadicale(t)
			st := newStack(t, dialect, func(c *config.Config) { c.CalDAVAllowPrivate = true })
			calURL := rad.MakeCalendar(t, "alice", "Praxis")

			var conn struct{ ID, State string }
			if code := st.do("POST", "/v1/connections/caldav", map[string]any{
				"subject_id": "anna", "url": calURL, "username": "alice", "password": rad.Users["alice"],
				"privacy": "busy", "direction": "both",
				"consent": map[string]any{"purposes": []string{"calendar.read.busy", "calendar.write"}, "policy_version": "2026-01"},
			}, &conn); code != http.StatusCreated {
				t.Fatalf("connect: %d", code)
			}

			start := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Hour)
			appt := map[string]any{
				"subject_ids": []string{"anna"}, "time_zone": "Europe/Berlin", "title": "Erstgespräch",
				"start": start.Format(time.RFC3339), "end": start.Add(30 * time.Minute).Format(time.RFC3339),
			}
			if code := st.do("PUT", "/v1/appointments/apt-1", appt, nil); code != http.StatusCreated {
				t.Fatalf("PUT appointment: %d", code)
			}
			copyURL := rad.EventURL(t, calURL, "termind-apt-1")
			waitFor(t, 15*time.Second, "our copy in Radicale", func() bool {
				status, _, body := rad.Do(t, "alice", "GET", copyURL, nil, "")
				return status == http.StatusOK && strings.Contains(body, "X-TERMIND-APPOINTMENT:apt-1")
			})

			// Rescheduled through the API: the copy moves, in the appointment's zone.
			moved := start.Add(time.Hour)
			appt["start"], appt["end"] = moved.Format(time.RFC3339), moved.Add(30*time.Minute).Format(time.RFC3339)
			if code := st.do("PUT", "/v1/appointments/apt-1", appt, nil); code != http.StatusOK {
				t.Fatalf("reschedule: %d", code)
			}
			berlin, _ := time.LoadLocation("Europe/Berlin")
			wantStart := "DTSTART;TZID=Europe/Berlin:" + moved.In(berlin).Format("20060102T150405")
			waitFor(t, 15*time.Second, "our copy moved", func() bool {
				_, _, body := rad.Do(t, "alice", "GET", copyURL, nil, "")
				return strings.Contains(body, wantStart)
			})

			// The customer's own event, written by their calendar app.
			own := start.Add(3 * time.Hour)
			rad.PutEvent(t, "alice", calURL, "dentist", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"+
				"UID:dentist@example\r\nDTSTAMP:20261120T100000Z\r\nDTSTART:"+own.Format("20060102T150405Z")+
				"\r\nDTEND:"+own.Add(time.Hour).Format("20060102T150405Z")+"\r\nSUMMARY:Zahnarzt\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
			if code := st.do("POST", "/v1/connections/"+conn.ID+"/sync", map[string]any{}, nil); code != http.StatusAccepted {
				t.Fatalf("sync now: %d", code)
			}
			from, to := start.Add(-24*time.Hour).Format(time.RFC3339), start.Add(24*time.Hour).Format(time.RFC3339)
			var busy struct{ Items []struct{ Start, End string } }
			waitFor(t, 15*time.Second, "busy time from the sync", func() bool {
				st.do("GET", "/v1/subjects/anna/busy?from="+from+"&to="+to, nil, &busy)
				return len(busy.Items) > 0
			})
			if len(busy.Items) != 1 || busy.Items[0].Start != own.Format(time.RFC3339) {
				t.Fatalf("busy = %+v, want only the customer's own event at %s (our copy is never busy time)", busy.Items, own.Format(time.RFC3339))
			}

			if code := st.do("DELETE", "/v1/appointments/apt-1", nil, nil); code != http.StatusOK {
				t.Fatalf("DELETE appointment: %d", code)
			}
			waitFor(t, 15*time.Second, "our copy removed", func() bool {
				status, _, _ := rad.Do(t, "alice", "GET", copyURL, nil, "")
				return status == http.StatusNotFound
			})
		})
	}
}
