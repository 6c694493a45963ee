package main

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/connectors/caldav/caldavtest"
	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// TestOffboardTenant runs an offboarding through the daemon: the
// calendar:revoke worker removes our copy from the customer's calendar,
// the pending notification is never sent, the API refuses the tenant's
// keys, and once the grace period has ended the purge leaves nothing
// personal behind but keeps the statistics.
func TestOffboardTenant(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			rad := caldavtest.StartRadicale(t)
			st := newStack(t, dialect, func(c *config.Config) { c.CalDAVAllowPrivate = true })
			calURL := rad.MakeCalendar(t, "alice", "Praxis")
			var conn struct{ ID, State string }
			if code := st.do("POST", "/v1/connections/caldav", map[string]any{
				"subject_id": "anna", "url": rad.URL, "username": "alice", "password": rad.Users["alice"],
				"calendar": "Praxis", "privacy": "busy", "direction": "both",
				"consent": map[string]any{"purposes": []string{"calendar.read.busy", "calendar.write"}, "policy_version": "2026-01",
					"source": map[string]any{"ip": "203.0.113.7", "user_agent": "e2e"}},
			}, &conn); code != http.StatusCreated {
				t.Fatalf("connect: %d %+v", code, conn)
			}
			ours := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:termind-apt1@termind\r\n" +
				"DTSTAMP:20261120T100000Z\r\nDTSTART:20261201T093000Z\r\nDTEND:20261201T100000Z\r\nSUMMARY:Erstgespräch\r\n" +
				"X-TERMIND-APPOINTMENT:apt1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
			theirs := strings.NewReplacer("termind-apt1@termind", "dentist@example", "X-TERMIND-APPOINTMENT:apt1\r\n", "", "Erstgespräch", "Zahnarzt").Replace(ours)
			rad.PutEvent(t, "alice", calURL, "termind-apt1", ours)
			rad.PutEvent(t, "alice", calURL, "dentist", theirs)

			var created struct{ ID, Status string }
			if code := st.do("POST", "/v1/notifications", map[string]any{
				"idempotency_key": "later", "channel": "email", "to": "anna@example.org", "locale": "de",
				"template": "confirmation", "purpose": "transactional", "subject_id": "anna",
				"send_at": time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339), "data": confirmationData(),
			}, &created); code != http.StatusAccepted {
				t.Fatalf("notification: %d", code)
			}

			var off struct {
				Status              string
				ConnectionsRevoking []string `json:"connections_revoking"`
			}
			if code := st.do("POST", "/v1/tenant/offboard", nil, &off); code != http.StatusAccepted || off.Status != "offboarding" ||
				len(off.ConnectionsRevoking) != 1 {
				t.Fatalf("offboard: %d %+v", code, off)
			}
			waitFor(t, 30*time.Second, "connection revoked", func() bool {
				c, err := st.store.GetConnectionByID(t.Context(), conn.ID)
				return err == nil && c.State == store.ConnRevoked
			})
			if status, _, _ := rad.Do(t, "alice", "GET", rad.EventURL(t, calURL, "termind-apt1"), nil, ""); status != http.StatusNotFound {
				t.Errorf("our copy after offboarding: GET %d, want 404", status)
			}
			if status, _, _ := rad.Do(t, "alice", "GET", rad.EventURL(t, calURL, "dentist"), nil, ""); status != http.StatusOK {
				t.Errorf("the customer's own event after offboarding: GET %d, want 200", status)
			}
			// Past its send time the notification stays cancelled and unsent.
			time.Sleep(3 * time.Second)
			if n, err := st.store.GetNotification(t.Context(), st.tenant.ID, created.ID); err != nil || n.Status != store.StatusCancelled {
				t.Errorf("notification after offboarding: %+v, %v", n, err)
			}
			if got := len(st.smtp.Messages()); got != 0 {
				t.Errorf("%d mails sent after offboarding", got)
			}
			var refused struct{ Error struct{ Code string } }
			if code := st.do("GET", "/v1/stats", nil, &refused); code != http.StatusForbidden || refused.Error.Code != "tenant_offboarding" {
				t.Errorf("stats while offboarding: %d %+v", code, refused)
			}

			rep, err := st.store.PurgeOffboarded(t.Context(), time.Now().Add(store.DefaultOffboardingGrace+time.Hour), 0)
			if err != nil || rep.Tenants != 1 {
				t.Fatalf("PurgeOffboarded = %+v, %v", rep, err)
			}
			if _, err := st.store.ExportSubject(t.Context(), st.tenant.ID, "anna"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("export after purge: %v, want nothing held", err)
			}
			stats, err := st.store.DeliveryStats(t.Context(), st.tenant.ID)
			if err != nil || len(stats) != 1 || stats[0].Status != store.StatusCancelled || stats[0].Count != 1 {
				t.Errorf("delivery_stats after purge = %+v, %v", stats, err)
			}
			if code := st.do("POST", "/v1/tenant/offboard/cancel", nil, &refused); code != http.StatusUnauthorized {
				t.Errorf("cancel after purge: %d %+v, want 401 (the keys are gone)", code, refused)
			}
		})
	}
}
