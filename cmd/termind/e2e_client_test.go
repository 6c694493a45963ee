package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/termind/termind/client"
	"github.com/termind/termind/connectors/caldav/caldavtest"
	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/store"
)

// TestClientThroughTheDaemon drives a booking system's whole flow through
// the Go client against a running stack: a notification sent and visible,
// consents, an appointment put and cancelled with its notices, a CalDAV
// connection synced and revoked, the subject's rights, and refusals
// surfacing as *client.Error.
func TestClientThroughTheDaemon(t *testing.T) {
	t.Parallel()
	rad := caldavtest.StartRadicale(t)
	st := newStack(t, store.DialectPostgres, func(c *config.Config) { c.CalDAVAllowPrivate = true })
	c, err := client.New(st.url, st.token, client.WithHTTPClient(&http.Client{Timeout: 20 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)

	waitNotification := func(id, status string) client.Notification {
		t.Helper()
		var n client.Notification
		waitFor(t, 15*time.Second, "notification "+id+" "+status, func() bool {
			n, err = c.GetNotification(ctx, id)
			if err != nil {
				t.Fatalf("GetNotification: %v", err)
			}
			return n.Status == status
		})
		return n
	}

	// A confirmation mail, sent and visible; the same key again is the same notification.
	req := client.NotificationRequest{
		IdempotencyKey: client.IdempotencyKey("booking", "1001", "confirmation"),
		Channel:        client.ChannelEmail, To: "anna@example.org", Locale: "de",
		Template: "confirmation", Purpose: client.PurposeTransactional, SubjectID: "anna",
		Data: confirmationData(),
	}
	created, err := c.CreateNotification(ctx, req)
	if err != nil || created.Existing || created.Status != client.StatusScheduled {
		t.Fatalf("CreateNotification = %+v, %v; want a new scheduled one", created, err)
	}
	sent := waitNotification(created.ID, client.StatusSent)
	if len(sent.Attempts) != 1 || sent.Attempts[0].Outcome != "sent" || sent.To != "a***@example.org" {
		t.Fatalf("sent notification = %+v, want one sent attempt and a masked address", sent)
	}
	if msgs := st.smtp.WaitFor(t, 1, 5*time.Second); !slices.Contains(msgs[0].To, "anna@example.org") {
		t.Fatalf("mail went to %v", msgs[0].To)
	}
	again, err := c.CreateNotification(ctx, req)
	if err != nil || !again.Existing || again.ID != created.ID {
		t.Fatalf("replay = %+v, %v; want the existing %s", again, err, created.ID)
	}

	// Refusals carry the API's code, field and status.
	bad := req
	bad.IdempotencyKey, bad.Channel, bad.To = client.IdempotencyKey("booking", "1001", "sms"), client.ChannelSMS, "0151 1234"
	_, err = c.CreateNotification(ctx, bad)
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnprocessableEntity ||
		apiErr.Code != client.CodeInvalidField || apiErr.Field != "to" || apiErr.Message == "" {
		t.Fatalf("bad SMS: %v, want 422 invalid_field on to", err)
	}
	reused := req
	reused.Locale = "en"
	if _, err = c.CreateNotification(ctx, reused); !errors.As(err, &apiErr) || apiErr.Code != client.CodeIdempotencyReused || apiErr.StatusCode != http.StatusConflict {
		t.Fatalf("reused key: %v, want 409 idempotency_key_reused", err)
	}
	if _, err = c.CancelNotification(ctx, created.ID); !errors.As(err, &apiErr) || apiErr.Code != client.CodeNotCancellable {
		t.Fatalf("cancel after sending: %v, want not_cancellable", err)
	}
	if _, err = c.GetNotification(ctx, "ntf_missing"); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != client.CodeNotFound {
		t.Fatalf("unknown notification: %v, want 404 not_found", err)
	}

	// A batch: one item accepted, one refused with its own field.
	later := req
	later.IdempotencyKey, later.SendAt = client.IdempotencyKey("booking", "1002", "confirmation"), time.Now().Add(time.Hour)
	broken := req
	broken.IdempotencyKey, broken.Locale = client.IdempotencyKey("booking", "1003", "confirmation"), "xx-unknown"
	results, err := c.CreateNotifications(ctx, []client.NotificationRequest{later, broken})
	if err != nil || len(results) != 2 || results[0].StatusCode != http.StatusAccepted || results[1].Err == nil ||
		results[1].Err.Field != "items[1].locale" {
		t.Fatalf("batch = %+v, %v; want item 0 accepted and item 1 refused on items[1].locale", results, err)
	}
	if cancelled, err := c.CancelNotification(ctx, results[0].ID); err != nil || cancelled.Status != client.StatusCancelled {
		t.Fatalf("cancel scheduled: %+v, %v", cancelled, err)
	}

	// Consent for SMS, in the ledger.
	if _, err := c.RecordConsent(ctx, client.ConsentRequest{SubjectID: "anna", Purpose: client.ConsentNotifySMS,
		Decision: client.DecisionGranted, PolicyVersion: "2026-01", Source: client.Source{IP: "203.0.113.7", UserAgent: "booking-ui"}}); err != nil {
		t.Fatalf("RecordConsent: %v", err)
	}
	ledger, err := c.ListConsents(ctx, "anna")
	if err != nil || len(ledger) != 1 || ledger[0].Purpose != client.ConsentNotifySMS || ledger[0].Decision != client.DecisionGranted {
		t.Fatalf("ListConsents = %+v, %v", ledger, err)
	}

	// A CalDAV calendar, with our copy of the appointment pushed to it.
	calURL := rad.MakeCalendar(t, "alice", "Praxis")
	conn, err := c.ConnectCalDAV(ctx, client.CalDAVConnect{
		SubjectID: "anna", URL: calURL, Username: "alice", Password: rad.Users["alice"],
		Privacy: client.PrivacyBusy, Direction: client.DirectionBoth,
		Consent: client.CalendarConsent{Purposes: []string{client.ConsentCalendarReadBusy, client.ConsentCalendarWrite}, PolicyVersion: "2026-01"},
	})
	if err != nil || conn.State != "active" || conn.Provider != "caldav" {
		t.Fatalf("ConnectCalDAV = %+v, %v", conn, err)
	}

	// The appointment: created with an SMS confirmation, then cancelled with a notice.
	start := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Hour)
	notify := &client.Notify{ProviderName: "Praxis Dr. Weber", Service: "Erstgespräch", CustomerName: "Anna Schmidt", Confirmation: true,
		Recipients: []client.Recipient{{SubjectID: "anna", Channel: client.ChannelSMS, To: "+4915112345678", Locale: "de"}}}
	appt := client.Appointment{SubjectIDs: []string{"anna"}, Start: start.Format(time.RFC3339), End: start.Add(30 * time.Minute).Format(time.RFC3339),
		TimeZone: "Europe/Berlin", Title: "Erstgespräch", Reminders: []int{}, Notify: notify}
	put, err := c.PutAppointment(ctx, "apt-1001", appt)
	if err != nil || !put.Created || put.Status != "confirmed" || put.Notifications.Created != 1 || put.Sync.Connections != 1 {
		t.Fatalf("PutAppointment = %+v, %v; want created, one confirmation, one calendar", put, err)
	}
	st.twilio.WaitFor(t, 1, 15*time.Second)
	copyURL := rad.EventURL(t, calURL, "termind-apt-1001")
	waitFor(t, 15*time.Second, "our copy in Radicale", func() bool {
		status, _, _ := rad.Do(t, "alice", "GET", copyURL, nil, "")
		return status == http.StatusOK
	})
	if again, err := c.PutAppointment(ctx, "apt-1001", appt); err != nil || again.Created || again.Version != put.Version {
		t.Fatalf("same PUT again = %+v, %v; want unchanged (200, same version)", again, err)
	}
	notify.Confirmation = false
	cancelled, err := c.CancelAppointment(ctx, "apt-1001", notify)
	if err != nil || cancelled.Status != "cancelled" || cancelled.Notifications.Created != 1 {
		t.Fatalf("CancelAppointment = %+v, %v; want cancelled with one notice", cancelled, err)
	}
	st.twilio.WaitFor(t, 2, 15*time.Second)
	waitFor(t, 15*time.Second, "our copy removed", func() bool {
		status, _, _ := rad.Do(t, "alice", "GET", copyURL, nil, "")
		return status == http.StatusNotFound
	})

	// Sync now, then the connection shows a sync; busy time is readable.
	if s, err := c.SyncConnection(ctx, conn.ID, true); err != nil || s.Sync != "queued" {
		t.Fatalf("SyncConnection = %+v, %v", s, err)
	}
	waitFor(t, 15*time.Second, "a full sync recorded", func() bool {
		got, err := c.GetConnection(ctx, conn.ID)
		return err == nil && got.Sync != nil && got.Sync.LastFullAt != ""
	})
	if busy, err := c.Busy(ctx, "anna", start.Add(-time.Hour), start.Add(time.Hour)); err != nil || len(busy) != 0 {
		t.Fatalf("Busy = %+v, %v; want none (our copies never count)", busy, err)
	}
	list, err := c.ListConnections(ctx, "anna")
	if err != nil || len(list) != 1 || list[0].ID != conn.ID {
		t.Fatalf("ListConnections = %+v, %v", list, err)
	}

	// Subject rights: restrict and lift, export, revoke, erase.
	if r, err := c.RestrictSubject(ctx, "anna"); err != nil || !r.Restricted {
		t.Fatalf("RestrictSubject = %+v, %v", r, err)
	}
	if r, err := c.UnrestrictSubject(ctx, "anna"); err != nil || r.Restricted {
		t.Fatalf("UnrestrictSubject = %+v, %v", r, err)
	}
	doc, err := c.ExportSubject(ctx, "anna")
	var export struct {
		Subject       struct{ ID string }
		Notifications []json.RawMessage
		Connections   []json.RawMessage
	}
	if err != nil || json.Unmarshal(doc, &export) != nil || export.Subject.ID != "anna" || len(export.Notifications) < 3 || len(export.Connections) != 1 {
		t.Fatalf("ExportSubject: %v, %s", err, doc)
	}
	if rv, err := c.RevokeConnection(ctx, conn.ID, &client.Revoke{Reason: "customer request"}); err != nil || rv.State != "revoking" {
		t.Fatalf("RevokeConnection = %+v, %v", rv, err)
	}
	if _, err := c.SyncConnection(ctx, conn.ID, false); !errors.As(err, &apiErr) || apiErr.Code != client.CodeConnectionNotActive {
		t.Fatalf("sync of a revoked connection: %v, want connection_not_active", err)
	}
	erased, err := c.EraseSubject(ctx, "anna")
	if err != nil || erased.Status != "erased" {
		t.Fatalf("EraseSubject = %+v, %v", erased, err)
	}
	if ledger, err := c.ListConsents(ctx, "anna"); err != nil || len(ledger) != 0 {
		t.Fatalf("ledger after erasure = %+v, %v; want empty", ledger, err)
	}
}
