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

// TestConnectAndRevokeCalDAV runs the whole connection lifecycle through
// the daemon: connect a Radicale calendar under consent, then revoke it —
// the calendar:revoke worker removes our copy from the calendar (and only
// ours), and the credentials are gone.
func TestConnectAndRevokeCalDAV(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			rad := caldavtest.StartRadicale(t)
			st := newStack(t, dialect, func(c *config.Config) { c.CalDAVAllowPrivate = true })
			calURL := rad.MakeCalendar(t, "alice", "Praxis")

			var conn struct {
				ID, State, Privacy, Direction string
				CalendarURL                   string `json:"calendar_url"`
			}
			code := st.do("POST", "/v1/connections/caldav", map[string]any{
				"subject_id": "anna", "url": rad.URL, "username": "alice", "password": rad.Users["alice"],
				"calendar": "Praxis", "privacy": "busy", "direction": "both",
				"consent": map[string]any{
					"purposes":       []string{"calendar.read.busy", "calendar.write"},
					"policy_version": "2026-01",
					"source":         map[string]any{"ip": "203.0.113.7", "user_agent": "e2e"},
				},
			}, &conn)
			if code != http.StatusCreated || conn.State != "active" || conn.CalendarURL != calURL {
				t.Fatalf("connect: %d %+v (calendar %s)", code, conn, calURL)
			}

			// A copy of ours (as the push side writes it) and the user's own event.
			ours := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:termind-apt1@termind\r\n" +
				"DTSTAMP:20261120T100000Z\r\nDTSTART:20261201T093000Z\r\nDTEND:20261201T100000Z\r\nSUMMARY:Erstgespräch\r\n" +
				"X-TERMIND-APPOINTMENT:apt1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
			theirs := strings.NewReplacer("termind-apt1@termind", "dentist@example", "X-TERMIND-APPOINTMENT:apt1\r\n", "", "Erstgespräch", "Zahnarzt").Replace(ours)
			rad.PutEvent(t, "alice", calURL, "termind-apt1", ours)
			rad.PutEvent(t, "alice", calURL, "dentist", theirs)

			var revoked struct{ ID, State string }
			if code := st.do("POST", "/v1/connections/"+conn.ID+"/revoke", map[string]any{"reason": "customer withdrew consent"}, &revoked); code != http.StatusAccepted || revoked.State != "revoking" {
				t.Fatalf("revoke: %d %+v", code, revoked)
			}
			waitFor(t, 20*time.Second, "connection revoked", func() bool {
				var v struct{ State, Cleanup string }
				st.do("GET", "/v1/connections/"+conn.ID, nil, &v)
				return v.State == "revoked" && v.Cleanup == "done"
			})
			if status, _, _ := rad.Do(t, "alice", "GET", rad.EventURL(t, calURL, "termind-apt1"), nil, ""); status != http.StatusNotFound {
				t.Errorf("our copy after revocation: GET %d, want 404", status)
			}
			if status, _, _ := rad.Do(t, "alice", "GET", rad.EventURL(t, calURL, "dentist"), nil, ""); status != http.StatusOK {
				t.Errorf("the user's own event after revocation: GET %d, want 200", status)
			}
			if _, err := st.store.ConnectionCredentials(t.Context(), conn.ID); err == nil {
				t.Error("credentials still readable after revocation")
			}
			var ledger struct {
				Items []struct{ Purpose, Decision string }
			}
			st.do("GET", "/v1/subjects/anna/consents", nil, &ledger)
			revokedPurposes := 0
			for _, e := range ledger.Items {
				if e.Decision == "revoked" {
					revokedPurposes++
				}
			}
			if revokedPurposes != 2 {
				t.Errorf("ledger %+v, want both purposes revoked", ledger.Items)
			}
		})
	}
}
