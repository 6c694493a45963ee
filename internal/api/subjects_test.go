package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
)

// insertEvent stores an imported event directly, as calendar sync would.
func (e *testEnv) insertEvent(connectionID, uid, title string, start time.Time) {
	e.t.Helper()
	q := "INSERT INTO external_events (connection_id, uid, start_at, end_at, title, location, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
	if e.store.Dialect() == store.DialectPostgres {
		for i := 1; strings.Contains(q, "?"); i++ {
			q = strings.Replace(q, "?", fmt.Sprintf("$%d", i), 1)
		}
	}
	_, err := e.store.DB().ExecContext(e.ctx(), q, connectionID, uid, start.UnixMilli(), start.Add(time.Hour).UnixMilli(),
		title, "Room 4", time.Now().UnixMilli())
	if err != nil {
		e.t.Fatalf("insert event: %v", err)
	}
}

func TestExportSubject(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		ingest, _ := e.ingestKey()

		// One record of every kind about cust-e, and one about someone else.
		n := emailRequest("exp-1")
		n["subject_id"] = "cust-e"
		nid := e.createOK(mustJSON(t, n))
		if w := e.do("POST", "/v1/consents", ingest, mustJSON(t, consentRequestBody("cust-e", "notify.email", "granted"))); w.Code != 201 {
			t.Fatalf("consent: %d %s", w.Code, w.Body)
		}
		c := e.seedConnection("cust-e", store.ProviderCalDAV, "calendar.read.details")
		start := time.Date(2030, 3, 1, 9, 0, 0, 0, time.UTC)
		e.insertEvent(c.ID, "ev-1@example.com", "Dentist", start)
		e.seedConnection("cust-other", store.ProviderCalDAV, "calendar.read.busy")
		appt := with(apptBody(start), "notify", nil)
		appt["subject_ids"] = []string{"cust-e", "cust-other"}
		appt["reminders"] = []int{120, 1440}
		e.putAppt("appt-e", appt)

		// Only an admin key answers access requests.
		wantError(t, e.do("GET", "/v1/subjects/cust-e/export", ingest, ""), 403, "forbidden", "")

		w := e.do("GET", "/v1/subjects/cust-e/export", e.token, "")
		if w.Code != http.StatusOK {
			t.Fatalf("export: %d %s", w.Code, w.Body)
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", cc)
		}
		var x subjectExport
		decodeBody(t, w, &x)
		if x.Subject.ID != "cust-e" {
			t.Errorf("subject %+v", x.Subject)
		}
		if len(x.Consents) != 2 { // notify.email via the API, calendar.read.details with the connection
			t.Errorf("%d consents, want 2", len(x.Consents))
		}
		if len(x.Connections) != 1 || x.Connections[0].ID != c.ID {
			t.Errorf("connections %+v", x.Connections)
		}
		if len(x.Notifications) != 1 || x.Notifications[0].ID != nid || x.Notifications[0].Recipient != "jane@example.com" ||
			!strings.Contains(string(x.Notifications[0].Data), "Jane Doe") {
			t.Errorf("notifications %+v: want the person's own recipient and data in full", x.Notifications)
		}
		if len(x.ExternalEvents) != 1 || x.ExternalEvents[0].Title != "Dentist" || x.ExternalEvents[0].Start != "2030-03-01T09:00:00Z" ||
			x.ExternalEvents[0].ConnectionID != c.ID {
			t.Errorf("external events %+v", x.ExternalEvents)
		}
		if len(x.Appointments) != 1 {
			t.Fatalf("appointments %+v", x.Appointments)
		}
		if ap := x.Appointments[0]; ap.ID != "appt-e" || !slices.Equal(ap.SubjectIDs, []string{"cust-e"}) ||
			ap.Start != "2030-03-01T09:00:00Z" || ap.End != "2030-03-01T09:30:00Z" || ap.TimeZone != "Europe/Berlin" ||
			ap.Title != "Check-up" || ap.Location != "Praxis, Hauptstr. 1" || ap.Status != "confirmed" ||
			!slices.Equal(ap.Reminders, []int{120, 1440}) || ap.Version != 1 || ap.CreatedAt == "" {
			t.Errorf("appointment %+v", ap)
		}
		actions := []string{}
		for _, a := range x.Audit {
			actions = append(actions, a.Action)
		}
		for _, want := range []string{"consent.granted", "connection.create"} {
			if !slices.Contains(actions, want) {
				t.Errorf("export audit %v lacks %s", actions, want)
			}
		}
		if _, err := time.Parse(time.RFC3339, x.ExportedAt); err != nil {
			t.Errorf("exported_at %q", x.ExportedAt)
		}
		if strings.Contains(w.Body.String(), "cust-other") || strings.Contains(w.Body.String(), "seeded-password") {
			t.Errorf("the export holds someone else's data or credentials: %s", w.Body)
		}
		var raw map[string]any
		decodeBody(t, w, &raw)
		for _, k := range []string{"subject", "consents", "connections", "notifications", "appointments", "external_events", "audit", "exported_at"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("export lacks %q", k)
			}
		}

		a := e.findAudit("cust-e", "subject.export")
		if a.Actor == "" || !strings.HasPrefix(a.Actor, "api_key:") || a.TargetID != "cust-e" || a.SourceIP != "192.0.2.1" {
			t.Errorf("export audit %+v", a)
		}

		// Nothing held: 404, and the refusal adds no record about the person.
		before := e.counts()
		wantError(t, e.do("GET", "/v1/subjects/nobody/export", e.token, ""), 404, "not_found", "")
		e.wantCounts(t, before)
	})
}

func TestEraseSubject(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		ingest, _ := e.ingestKey()
		n := emailRequest("erase-1")
		n["subject_id"] = "cust-z"
		e.createOK(mustJSON(t, n))
		c1 := e.seedConnection("cust-z", store.ProviderCalDAV, "calendar.read.busy")
		c2 := e.seedConnection("cust-z", store.ProviderGoogle, "calendar.read.busy", "calendar.write")
		keep := e.seedConnection("cust-keep", store.ProviderCalDAV, "calendar.read.busy")

		wantError(t, e.do("DELETE", "/v1/subjects/cust-z", ingest, ""), 403, "forbidden", "")

		w := e.do("DELETE", "/v1/subjects/cust-z", e.token, "")
		if w.Code != http.StatusAccepted {
			t.Fatalf("erase: %d %s", w.Code, w.Body)
		}
		var got erasureAccepted
		decodeBody(t, w, &got)
		slices.Sort(got.ConnectionsRevoking)
		want := []string{c1.ID, c2.ID}
		slices.Sort(want)
		if got.SubjectID != "cust-z" || got.Status != "erased" || !slices.Equal(got.ConnectionsRevoking, want) {
			t.Errorf("answer %+v, want revoking %v", got, want)
		}
		enq := e.queue.revoked()
		slices.Sort(enq)
		if !slices.Equal(enq, want) {
			t.Errorf("enqueued revokes %v, want %v", enq, want)
		}

		// The person's rows are gone; the connections are revoking until
		// their cleanup deletes them; others are untouched.
		if _, err := e.store.GetSubject(e.ctx(), e.tenant.ID, "cust-z"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("subject still there: %v", err)
		}
		if cs, err := e.store.ListConsents(e.ctx(), e.tenant.ID, "cust-z"); err != nil || len(cs) != 0 {
			t.Errorf("consents left: %d (%v)", len(cs), err)
		}
		for _, id := range want {
			if c, err := e.store.GetConnection(e.ctx(), e.tenant.ID, id); err == nil && c.State != store.ConnRevoking {
				t.Errorf("connection %s is %s, want revoking or gone", id, c.State)
			}
		}
		if c, err := e.store.GetConnection(e.ctx(), e.tenant.ID, keep.ID); err != nil || c.State != store.ConnActive {
			t.Errorf("another subject's connection: %+v %v", c, err)
		}
		var left int
		if err := e.store.DB().QueryRowContext(e.ctx(), "SELECT COUNT(*) FROM notifications WHERE subject_id = "+placeholder(dialect), "cust-z").Scan(&left); err != nil || left != 0 {
			t.Errorf("%d notifications left (%v)", left, err)
		}
		// Until their cleanup finishes, the revoking connections are all
		// that is held; afterwards nothing is. (Checked in the store: an
		// export is itself audited under the subject's id.)
		w = e.do("GET", "/v1/connections?subject_id=cust-z", e.token, "")
		var list connectionList
		decodeBody(t, w, &list)
		if len(list.Items) != 2 {
			t.Errorf("connections while revoking: %s", w.Body)
		}
		for _, c := range list.Items {
			if c.State != "revoking" || c.Cleanup != "pending" {
				t.Errorf("connection %+v, want revoking with cleanup pending", c)
			}
		}
		for _, id := range want {
			if err := e.store.FinishRevocation(e.ctx(), id, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		wantError(t, e.do("GET", "/v1/subjects/cust-z/export", e.token, ""), 404, "not_found", "")

		// The non-personal trace of the erasure.
		trace := e.findAudit("", "subject.erase")
		if trace.SubjectID != "" || trace.TargetID == "cust-z" {
			t.Errorf("erasure trace names the person: %+v", trace)
		}

		// Erasing again is harmless.
		w = e.do("DELETE", "/v1/subjects/cust-z", e.token, "")
		decodeBody(t, w, &got)
		if w.Code != http.StatusAccepted || got.ConnectionsRevoking == nil {
			t.Errorf("second erase: %d %s", w.Code, w.Body)
		}
	})
}

// TestChangesAreAudited: consent decisions and restrictions leave an audit
// entry naming the key and the source address — the one the platform
// reports, else the TCP peer.
func TestChangesAreAudited(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		ingest, ingestKey := e.ingestKey()

		steps := []struct {
			method, path, token, body string
			action, ip, detail        string
		}{
			{"POST", "/v1/consents", ingest, mustJSON(t, consentRequestBody("cust-a", "notify.sms", "granted")), "consent.granted", "203.0.113.7", "purpose=notify.sms"},
			{"POST", "/v1/consents", ingest, mustJSON(t, with(consentRequestBody("cust-a", "notify.sms", "revoked"), "source", nil)), "consent.revoked", "192.0.2.1", "purpose=notify.sms"},
			{"POST", "/v1/consents", ingest, mustJSON(t, consentRequestBody("cust-a", "calendar.write", "refused")), "consent.refused", "203.0.113.7", "purpose=calendar.write"},
			{"POST", "/v1/subjects/cust-a/restrict", e.token, "", "subject.restrict", "192.0.2.1", ""},
			{"POST", "/v1/subjects/cust-a/unrestrict", e.token, "", "subject.unrestrict", "192.0.2.1", ""},
		}
		for i, s := range steps {
			w := e.do(s.method, s.path, s.token, s.body)
			if w.Code >= 300 {
				t.Fatalf("step %d: %d %s", i, w.Code, w.Body)
			}
			entries, err := e.store.ListAudit(e.ctx(), e.tenant.ID, "cust-a")
			if err != nil || len(entries) != i+1 {
				t.Fatalf("step %d: %d audit entries (%v), want %d", i, len(entries), err, i+1)
			}
			a := entries[i]
			wantActor := "api_key:" + ingestKey.ID
			if s.token == e.token {
				wantActor = entries[i].Actor // the admin key's id is not known here
				if !strings.HasPrefix(wantActor, "api_key:") || wantActor == "api_key:"+ingestKey.ID {
					t.Errorf("step %d: actor %q, want the admin key", i, wantActor)
				}
			}
			if a.Action != s.action || a.Actor != wantActor || a.SourceIP != s.ip || a.TargetKind != "subject" ||
				a.TargetID != "cust-a" || a.SubjectID != "cust-a" || a.Detail != s.detail {
				t.Errorf("step %d: audit %+v, want %s from %s", i, a, s.action, s.ip)
			}
		}
		// A refused consent request writes no audit entry either.
		before := e.counts()
		wantError(t, e.do("POST", "/v1/consents", ingest, mustJSON(t, with(consentRequestBody("cust-a", "notify.sms", "granted"), "purpose", "x"))), 422, "invalid_field", "purpose")
		e.wantCounts(t, before)
	})
}
