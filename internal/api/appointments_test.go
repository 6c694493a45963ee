package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/queue"
)

// apptStart is a start 10 days ahead of the env's clock, on the hour, so
// that reminders a day before are in the future.
func (e *testEnv) apptStart() time.Time {
	return e.now.Truncate(time.Hour).Add(10 * 24 * time.Hour)
}

// apptBody is a valid appointment for cust-a with one email recipient, as a
// map for tests to change one field at a time.
func apptBody(start time.Time) map[string]any {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	return map[string]any{
		"subject_ids": []string{"cust-a"},
		"start":       start.In(berlin).Format(time.RFC3339),
		"end":         start.Add(30 * time.Minute).In(berlin).Format(time.RFC3339),
		"time_zone":   "Europe/Berlin",
		"title":       "Check-up",
		"location":    "Praxis, Hauptstr. 1",
		"notify":      notifyBody(),
	}
}

func notifyBody() map[string]any {
	return map[string]any{
		"recipients": []any{
			map[string]any{"subject_id": "cust-a", "channel": "email", "to": "jane@example.com", "locale": "en"},
		},
		"provider_name": "Dr. Muster",
		"service":       "Check-up",
		"customer_name": "Jane Doe",
		"manage_url":    "https://book.example.com/a/1",
		"confirmation":  true,
	}
}

// withNotify returns a copy of body whose notify has key set to value.
func withNotify(body map[string]any, key string, value any) map[string]any {
	return with(body, "notify", with(body["notify"].(map[string]any), key, value))
}

// withRecipient returns a copy of body whose first recipient has key set to value.
func withRecipient(body map[string]any, key string, value any) map[string]any {
	rc := body["notify"].(map[string]any)["recipients"].([]any)[0].(map[string]any)
	return withNotify(body, "recipients", []any{with(rc, key, value)})
}

func (e *testEnv) putAppt(id string, body map[string]any) *appointmentView {
	e.t.Helper()
	w := e.do("PUT", "/v1/appointments/"+id, e.token, mustJSON(e.t, body))
	if w.Code != http.StatusOK && w.Code != http.StatusCreated {
		e.t.Fatalf("put %s: status %d: %s", id, w.Code, w.Body)
	}
	var v appointmentView
	decodeBody(e.t, w, &v)
	return &v
}

// apptNotifications lists the notifications planned for an appointment
// (of subject cust-a), oldest first.
func (e *testEnv) apptNotifications(subjectID, appointmentID string) []store.Notification {
	e.t.Helper()
	x, err := e.store.ExportSubject(e.ctx(), e.tenant.ID, subjectID)
	if err != nil {
		e.t.Fatalf("export %s: %v", subjectID, err)
	}
	var out []store.Notification
	for _, n := range x.Notifications {
		if n.AppointmentID == appointmentID {
			out = append(out, n)
		}
	}
	return out
}

// createConn stores an active connection of subjectID with the direction
// and a granted decision per purpose.
func (e *testEnv) createConn(subjectID, direction string, purposes ...string) store.Connection {
	e.t.Helper()
	consents := make([]store.Consent, 0, len(purposes))
	for _, p := range purposes {
		consents = append(consents, store.Consent{Purpose: p, Decision: store.DecisionGranted, PolicyVersion: "2025-01", Actor: "cli"})
	}
	c, err := e.store.CreateConnection(e.ctx(), store.Connection{
		TenantID:    e.tenant.ID,
		SubjectID:   subjectID,
		Provider:    store.ProviderCalDAV,
		CalendarURL: "https://dav.example.com/" + subjectID + "/" + direction + "/",
		Privacy:     store.PrivacyBusy,
		Direction:   direction,
	}, []byte(`{"username":"u","password":"p"}`), consents, store.AuditEntry{Actor: "cli"})
	if err != nil {
		e.t.Fatalf("create connection: %v", err)
	}
	return c
}

// wantNothingDone fails if an appointment or notification was stored, or
// anything was enqueued.
func (e *testEnv) wantNothingDone(t *testing.T) {
	t.Helper()
	for _, table := range []string{"appointments", "notifications"} {
		if n := e.countRows(table); n != 0 {
			t.Errorf("%s holds %d rows, want 0", table, n)
		}
	}
	if n, p := len(e.queue.all()), len(e.queue.pushes()); n != 0 || p != 0 {
		t.Errorf("enqueued %d notifications and %d pushes, want none", n, p)
	}
}

func TestPutAppointmentValidation(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		start := e.apptStart()
		ok := apptBody(start)
		allDay := with(with(with(ok, "start", nil), "end", nil), "all_day", true)
		allDay["start_date"], allDay["end_date"] = "2030-03-01", "2030-03-02"
		many := make([]string, 21)
		for i := range many {
			many[i] = "s" + strings.Repeat("x", i)
		}
		recipients := make([]any, 41)
		for i := range recipients {
			recipients[i] = map[string]any{"subject_id": "cust-a", "channel": "email", "to": "jane@example.com", "locale": "en"}
		}
		twice := withNotify(ok, "recipients", []any{
			map[string]any{"subject_id": "cust-a", "channel": "email", "to": "jane@example.com", "locale": "en"},
			map[string]any{"subject_id": "cust-a", "channel": "email", "to": "john@example.com", "locale": "en"},
		})
		cases := []struct {
			name   string
			id     string
			body   any // map or raw string
			status int
			code   string
			field  string
		}{
			{"id too long", strings.Repeat("a", 201), ok, 422, "invalid_field", "id"},
			{"id with a control character", "a%01b", ok, 422, "invalid_field", "id"},
			{"id with a slash", "a%2Fb", ok, 422, "invalid_field", "id"},
			{"id with a space", "a%20b", ok, 422, "invalid_field", "id"},
			{"no subjects", "", with(ok, "subject_ids", []string{}), 422, "invalid_field", "subject_ids"},
			{"subjects missing", "", with(ok, "subject_ids", nil), 422, "invalid_field", "subject_ids"},
			{"21 subjects", "", with(ok, "subject_ids", many), 422, "invalid_field", "subject_ids"},
			{"empty subject", "", with(ok, "subject_ids", []string{"cust-a", ""}), 422, "invalid_field", "subject_ids[1]"},
			{"subject too long", "", with(ok, "subject_ids", []string{strings.Repeat("s", 201)}), 422, "invalid_field", "subject_ids[0]"},
			{"subject twice", "", with(ok, "subject_ids", []string{"cust-a", "cust-a"}), 422, "invalid_field", "subject_ids[1]"},
			{"start missing", "", with(ok, "start", nil), 422, "invalid_field", "start"},
			{"start without offset", "", with(ok, "start", "2030-03-01T09:00:00"), 422, "invalid_field", "start"},
			{"start a date", "", with(ok, "start", "2030-03-01"), 422, "invalid_field", "start"},
			{"end missing", "", with(ok, "end", nil), 422, "invalid_field", "end"},
			{"end before start", "", with(ok, "end", start.Add(-time.Minute).Format(time.RFC3339)), 422, "invalid_field", "end"},
			{"end equals start", "", with(ok, "end", start.Format(time.RFC3339)), 422, "invalid_field", "end"},
			{"longer than 31 days", "", with(ok, "end", start.Add(31*24*time.Hour+time.Second).Format(time.RFC3339)), 422, "invalid_field", "end"},
			{"timed with start_date", "", with(ok, "start_date", "2030-03-01"), 422, "invalid_field", "start_date"},
			{"all-day with start", "", with(allDay, "start", start.Format(time.RFC3339)), 422, "invalid_field", "start"},
			{"all-day without start_date", "", with(allDay, "start_date", nil), 422, "invalid_field", "start_date"},
			{"all-day with a bad end_date", "", with(allDay, "end_date", "2030-3-2"), 422, "invalid_field", "end_date"},
			{"all-day ending on its start", "", with(allDay, "end_date", "2030-03-01"), 422, "invalid_field", "end_date"},
			{"all-day over 31 days", "", with(allDay, "end_date", "2030-04-02"), 422, "invalid_field", "end_date"},
			{"zone missing", "", with(ok, "time_zone", nil), 422, "invalid_field", "time_zone"},
			{"zone unknown", "", with(ok, "time_zone", "Mars/Olympus_Mons"), 422, "invalid_field", "time_zone"},
			{"zone Local", "", with(ok, "time_zone", "Local"), 422, "invalid_field", "time_zone"},
			{"zone a path", "", with(ok, "time_zone", "../../etc/passwd"), 422, "invalid_field", "time_zone"},
			{"title missing", "", with(ok, "title", nil), 422, "invalid_field", "title"},
			{"title blank", "", with(ok, "title", "   "), 422, "invalid_field", "title"},
			{"title too long", "", with(ok, "title", strings.Repeat("t", 201)), 422, "invalid_field", "title"},
			{"title with a line break", "", with(ok, "title", "a\nb"), 422, "invalid_field", "title"},
			{"location too long", "", with(ok, "location", strings.Repeat("l", 501)), 422, "invalid_field", "location"},
			{"description too long", "", with(ok, "description", strings.Repeat("d", 8<<10+1)), 422, "invalid_field", "description"},
			{"description with NUL", "", with(ok, "description", "a\x00b"), 422, "invalid_field", "description"},
			{"status unknown", "", with(ok, "status", "tentative"), 422, "invalid_field", "status"},
			{"11 reminders", "", with(ok, "reminders", []int{5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}), 422, "invalid_field", "reminders"},
			{"reminder too short", "", with(ok, "reminders", []int{60, 4}), 422, "invalid_field", "reminders[1]"},
			{"reminder too long", "", with(ok, "reminders", []int{43201}), 422, "invalid_field", "reminders[0]"},
			{"reminder twice", "", with(ok, "reminders", []int{60, 60}), 422, "invalid_field", "reminders[1]"},
			{"reminder not whole minutes", "", with(ok, "reminders", []float64{1.5}), 400, "wrong_type", "reminders"},
			{"no recipients", "", withNotify(ok, "recipients", []any{}), 422, "invalid_field", "notify.recipients"},
			{"41 recipients", "", withNotify(ok, "recipients", recipients), 422, "invalid_field", "notify.recipients"},
			{"recipient not a subject", "", withRecipient(ok, "subject_id", "cust-b"), 422, "invalid_field", "notify.recipients[0].subject_id"},
			{"recipient channel unknown", "", withRecipient(ok, "channel", "fax"), 422, "invalid_field", "notify.recipients[0].channel"},
			{"recipient address with a name", "", withRecipient(ok, "to", "Jane <jane@example.com>"), 422, "invalid_field", "notify.recipients[0].to"},
			{"recipient number not E.164", "", withRecipient(withRecipient(ok, "channel", "sms"), "to", "0151 123"), 422, "invalid_field", "notify.recipients[0].to"},
			{"recipient locale missing", "", withRecipient(ok, "locale", nil), 422, "invalid_field", "notify.recipients[0].locale"},
			{"recipient locale without templates", "", withRecipient(ok, "locale", "fr"), 422, "invalid_field", "notify.recipients[0].locale"},
			{"recipient name too long", "", withRecipient(ok, "customer_name", strings.Repeat("n", 201)), 422, "invalid_field", "notify.recipients[0].customer_name"},
			{"recipient twice", "", twice, 422, "invalid_field", "notify.recipients[1]"},
			{"provider_name missing", "", withNotify(ok, "provider_name", nil), 422, "invalid_field", "notify.provider_name"},
			{"service missing", "", withNotify(ok, "service", nil), 422, "invalid_field", "notify.service"},
			{"customer_name missing", "", withNotify(ok, "customer_name", nil), 422, "invalid_field", "notify.customer_name"},
			{"service too long", "", withNotify(ok, "service", strings.Repeat("s", 201)), 422, "invalid_field", "notify.service"},
			{"manage_url not http", "", withNotify(ok, "manage_url", "ftp://book.example.com/"), 422, "invalid_field", "notify.manage_url"},
			{"manage_url relative", "", withNotify(ok, "manage_url", "/a/1"), 422, "invalid_field", "notify.manage_url"},
			{"unknown field", "", with(ok, "colour", "red"), 400, "unknown_field", "colour"},
			{"notify unknown field", "", withNotify(ok, "bcc", "x@example.com"), 400, "unknown_field", "bcc"},
			{"not an object", "", "[]", 400, "malformed_json", ""},
			{"body too large", "", with(ok, "description", strings.Repeat("d", 70<<10)), 413, "too_large", "body"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				id := tc.id
				if id == "" {
					id = "appt-v"
				}
				body, isRaw := tc.body.(string)
				if !isRaw {
					body = mustJSON(t, tc.body)
				}
				w := e.do("PUT", "/v1/appointments/"+id, e.token, body)
				wantError(t, w, tc.status, tc.code, tc.field)
				e.wantNothingDone(t)
			})
		}
		// The valid body is accepted: the cases above fail for their own reason.
		if w := e.do("PUT", "/v1/appointments/appt-v", e.token, mustJSON(t, ok)); w.Code != http.StatusCreated {
			t.Fatalf("valid body: %d %s", w.Code, w.Body)
		}
		if w := e.do("PUT", "/v1/appointments/appt-d", e.token, mustJSON(t, allDay)); w.Code != http.StatusCreated {
			t.Fatalf("valid all-day body: %d %s", w.Code, w.Body)
		}
	})
}

func TestAppointmentAuth(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		ingest, _ := e.ingestKey()
		body := mustJSON(t, apptBody(e.apptStart()))
		wantError(t, e.do("PUT", "/v1/appointments/a1", "", body), 401, "unauthenticated", "")
		wantError(t, e.do("DELETE", "/v1/appointments/a1", "", ""), 401, "unauthenticated", "")
		wantError(t, e.do("GET", "/v1/subjects/cust-a/busy?from=2030-01-01T00:00:00Z&to=2030-01-02T00:00:00Z", "", ""), 401, "unauthenticated", "")
		e.wantNothingDone(t)
		if w := e.do("PUT", "/v1/appointments/a1", ingest, body); w.Code != http.StatusCreated {
			t.Errorf("ingest key: %d %s", w.Code, w.Body)
		}
	})
}

// byTemplate groups notifications by template.
func byTemplate(ns []store.Notification) map[string][]store.Notification {
	out := map[string][]store.Notification{}
	for _, n := range ns {
		out[n.Template] = append(out[n.Template], n)
	}
	return out
}

func statusesOf(ns []store.Notification) []string {
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		out = append(out, n.Status)
	}
	return out
}

func sendTimes(ns []store.Notification) []time.Time {
	out := make([]time.Time, 0, len(ns))
	for _, n := range ns {
		out = append(out, n.SendAt.UTC())
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

func dataOf(t *testing.T, n store.Notification) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(n.Data, &m); err != nil {
		t.Fatalf("data of %s: %v", n.ID, err)
	}
	return m
}

func TestAppointmentLifecycle(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		if _, err := e.store.SetTenantReminderRules(e.ctx(), e.tenant.ID, []time.Duration{24 * time.Hour, time.Hour}); err != nil {
			t.Fatalf("reminder rules: %v", err)
		}
		export := e.createConn("cust-a", store.DirectionExport, store.ConsentCalendarWrite)
		e.createConn("cust-a", store.DirectionImport, store.ConsentCalendarReadBusy)
		e.createConn("cust-a", store.DirectionExport, store.ConsentCalendarReadBusy) // no calendar.write
		both := e.createConn("cust-b", store.DirectionBoth, store.ConsentCalendarReadBusy, store.ConsentCalendarWrite)
		start := e.apptStart()

		// Created with the tenant's rules: confirmation and two reminders.
		w := e.do("PUT", "/v1/appointments/appt-1", e.token, mustJSON(t, apptBody(start)))
		if w.Code != http.StatusCreated {
			t.Fatalf("create: %d %s", w.Code, w.Body)
		}
		var v appointmentView
		decodeBody(t, w, &v)
		if v.ID != "appt-1" || v.Version != 1 || v.Status != "confirmed" || v.Start != start.Format(time.RFC3339) ||
			v.End != start.Add(30*time.Minute).Format(time.RFC3339) || v.TimeZone != "Europe/Berlin" || v.AllDay ||
			!slices.Equal(v.SubjectIDs, []string{"cust-a"}) {
			t.Errorf("view %+v", v)
		}
		if v.Sync != (appointmentSyncView{Connections: 1, Queued: 1}) || v.Notifications != (notificationCounts{Created: 3}) {
			t.Errorf("sync %+v notifications %+v", v.Sync, v.Notifications)
		}
		if got, want := e.queue.pushes(), []queue.PushPayload{{ConnectionID: export.ID, AppointmentID: "appt-1", TenantID: e.tenant.ID, Version: 1}}; !slices.Equal(got, want) {
			t.Errorf("pushes %+v, want %+v", got, want)
		}
		ns := byTemplate(e.apptNotifications("cust-a", "appt-1"))
		if len(ns) != 2 || len(ns["confirmation"]) != 1 || len(ns["reminder"]) != 2 {
			t.Fatalf("notifications %v", ns)
		}
		conf := ns["confirmation"][0]
		if conf.Purpose != "transactional" || conf.Channel != "email" || conf.Recipient != "jane@example.com" ||
			conf.Locale != "en" || conf.SubjectID != "cust-a" || conf.Status != "scheduled" || !conf.SendAt.Equal(e.now) {
			t.Errorf("confirmation %+v", conf)
		}
		d := dataOf(t, conf)
		for k, want := range map[string]string{
			"start": start.In(mustZone(t, "Europe/Berlin")).Format(time.RFC3339), "time_zone": "Europe/Berlin",
			"provider_name": "Dr. Muster", "service": "Check-up", "customer_name": "Jane Doe",
			"location": "Praxis, Hauptstr. 1", "manage_url": "https://book.example.com/a/1",
		} {
			if d[k] != want {
				t.Errorf("confirmation data %s = %v, want %s", k, d[k], want)
			}
		}
		if got, want := sendTimes(ns["reminder"]), []time.Time{start.Add(-24 * time.Hour), start.Add(-time.Hour)}; !slices.EqualFunc(got, want, time.Time.Equal) {
			t.Errorf("reminders at %v, want %v", got, want)
		}
		for _, r := range ns["reminder"] {
			if r.Purpose != "reminder" || r.Status != "scheduled" || r.AppointmentID != "appt-1" ||
				!strings.HasPrefix(r.IdempotencyKey, "appt:appt-1:v1:reminder:") || !strings.HasSuffix(r.IdempotencyKey, ":cust-a:email") {
				t.Errorf("reminder %+v", r)
			}
		}
		tasks := e.queue.all()
		if len(tasks) != 3 {
			t.Fatalf("enqueued %d notifications, want 3", len(tasks))
		}
		var later int
		for _, task := range tasks {
			if task.At.After(e.now) {
				later++
			}
		}
		if later != 2 {
			t.Errorf("%d tasks scheduled ahead, want the 2 reminders: %+v", later, tasks)
		}

		// Explicit reminders, a second subject with its own calendar; no
		// confirmation asked for.
		body := with(apptBody(start), "reminders", []int{1440, 120})
		body["subject_ids"] = []string{"cust-a", "cust-b"}
		body = withNotify(body, "confirmation", false)
		v2 := e.putAppt("appt-2", body)
		if v2.Notifications.Created != 2 || v2.Sync.Connections != 2 || v2.Sync.Queued != 2 {
			t.Errorf("appt-2 view %+v", v2)
		}
		ns2 := byTemplate(e.apptNotifications("cust-a", "appt-2"))
		if len(ns2["confirmation"]) != 0 || len(ns2["reminder"]) != 2 {
			t.Fatalf("appt-2 notifications %v", ns2)
		}
		if got, want := sendTimes(ns2["reminder"]), []time.Time{start.Add(-24 * time.Hour), start.Add(-2 * time.Hour)}; !slices.EqualFunc(got, want, time.Time.Equal) {
			t.Errorf("appt-2 reminders at %v, want %v", got, want)
		}
		pushed := e.queue.pushes()[1:]
		if len(pushed) != 2 || !slices.ContainsFunc(pushed, func(p queue.PushPayload) bool { return p.ConnectionID == both.ID && p.Version == 1 }) {
			t.Errorf("appt-2 pushes %+v", pushed)
		}

		// Unchanged: nothing stored, nothing enqueued.
		rows, tasksBefore, pushesBefore := e.countRows("notifications"), len(e.queue.all()), len(e.queue.pushes())
		w = e.do("PUT", "/v1/appointments/appt-1", e.token, mustJSON(t, apptBody(start)))
		if w.Code != http.StatusOK {
			t.Fatalf("unchanged: %d %s", w.Code, w.Body)
		}
		decodeBody(t, w, &v)
		if v.Version != 1 || v.Sync.Queued != 0 || v.Notifications != (notificationCounts{}) {
			t.Errorf("unchanged view %+v", v)
		}
		if e.countRows("notifications") != rows || len(e.queue.all()) != tasksBefore || len(e.queue.pushes()) != pushesBefore {
			t.Errorf("an unchanged PUT stored or enqueued something")
		}

		// Rescheduled by a day: old reminders cancelled, the notice with
		// previous_start, new reminders, a push of version 2.
		moved := start.Add(24 * time.Hour)
		v3 := e.putAppt("appt-1", apptBody(moved))
		if v3.Version != 2 || v3.Notifications != (notificationCounts{Created: 3, Cancelled: 2}) || v3.Sync.Queued != 1 {
			t.Errorf("reschedule view %+v", v3)
		}
		ns = byTemplate(e.apptNotifications("cust-a", "appt-1"))
		if len(ns["confirmation"]) != 1 || len(ns["reschedule"]) != 1 || len(ns["reminder"]) != 4 {
			t.Fatalf("after reschedule %v", ns)
		}
		var old, fresh []store.Notification
		for _, r := range ns["reminder"] {
			if strings.Contains(r.IdempotencyKey, ":v1:") {
				old = append(old, r)
			} else {
				fresh = append(fresh, r)
			}
		}
		if !slices.Equal(statusesOf(old), []string{"cancelled", "cancelled"}) || old[0].StatusReason != store.ReasonAppointmentChanged {
			t.Errorf("old reminders %+v", old)
		}
		if got, want := sendTimes(fresh), []time.Time{moved.Add(-24 * time.Hour), moved.Add(-time.Hour)}; !slices.EqualFunc(got, want, time.Time.Equal) ||
			!slices.Equal(statusesOf(fresh), []string{"scheduled", "scheduled"}) {
			t.Errorf("new reminders %v %v, want at %v", got, statusesOf(fresh), want)
		}
		rs := ns["reschedule"][0]
		rd := dataOf(t, rs)
		if rs.Purpose != "transactional" || rs.Status != "scheduled" || rs.AppointmentID != "appt-1" ||
			rd["previous_start"] != start.In(mustZone(t, "Europe/Berlin")).Format(time.RFC3339) ||
			rd["start"] != moved.In(mustZone(t, "Europe/Berlin")).Format(time.RFC3339) {
			t.Errorf("reschedule %+v data %v", rs, rd)
		}
		if ns["confirmation"][0].Status != "scheduled" {
			t.Errorf("the confirmation was touched: %s", ns["confirmation"][0].Status)
		}
		if p := e.queue.pushes(); p[len(p)-1] != (queue.PushPayload{ConnectionID: export.ID, AppointmentID: "appt-1", TenantID: e.tenant.ID, Version: 2}) {
			t.Errorf("last push %+v", p[len(p)-1])
		}

		// Cancelled by PUT: reminders cancelled, the cancellation notice, a push.
		v4 := e.putAppt("appt-1", with(apptBody(moved), "status", "cancelled"))
		if v4.Version != 3 || v4.Status != "cancelled" || v4.Notifications != (notificationCounts{Created: 1, Cancelled: 2}) || v4.Sync.Queued != 1 {
			t.Errorf("cancel view %+v", v4)
		}
		ns = byTemplate(e.apptNotifications("cust-a", "appt-1"))
		if len(ns["cancellation"]) != 1 || ns["cancellation"][0].Status != "scheduled" || ns["cancellation"][0].Purpose != "transactional" {
			t.Errorf("cancellation %v", ns["cancellation"])
		}
		for _, r := range ns["reminder"] {
			if r.Status != "cancelled" {
				t.Errorf("reminder %s still %s", r.IdempotencyKey, r.Status)
			}
		}
		if p := e.queue.pushes(); p[len(p)-1].Version != 3 || p[len(p)-1].ConnectionID != export.ID {
			t.Errorf("last push %+v", p[len(p)-1])
		}
		// DELETE of the cancelled appointment changes nothing.
		rows, tasksBefore, pushesBefore = e.countRows("notifications"), len(e.queue.all()), len(e.queue.pushes())
		w = e.do("DELETE", "/v1/appointments/appt-1", e.token, mustJSON(t, map[string]any{"notify": notifyBody()}))
		decodeBody(t, w, &v)
		if w.Code != http.StatusOK || v.Version != 3 || v.Sync.Queued != 0 {
			t.Errorf("second cancel: %d %+v", w.Code, v)
		}
		if e.countRows("notifications") != rows || len(e.queue.all()) != tasksBefore || len(e.queue.pushes()) != pushesBefore {
			t.Errorf("cancelling a cancelled appointment stored or enqueued something")
		}

		// Cancelled by DELETE with notify: both subjects' copies pushed.
		notify := with(notifyBody(), "recipients", []any{
			map[string]any{"subject_id": "cust-b", "channel": "sms", "to": "+4915112345678", "locale": "de", "customer_name": "Max"},
		})
		w = e.do("DELETE", "/v1/appointments/appt-2", e.token, mustJSON(t, map[string]any{"notify": notify}))
		if w.Code != http.StatusOK {
			t.Fatalf("delete: %d %s", w.Code, w.Body)
		}
		decodeBody(t, w, &v)
		if v.Version != 2 || v.Status != "cancelled" || v.Notifications != (notificationCounts{Created: 1, Cancelled: 2}) || v.Sync.Queued != 2 {
			t.Errorf("delete view %+v", v)
		}
		for _, r := range e.apptNotifications("cust-a", "appt-2") {
			if r.Status != "cancelled" {
				t.Errorf("appt-2 reminder still %s", r.Status)
			}
		}
		nb := e.apptNotifications("cust-b", "appt-2")
		if len(nb) != 1 || nb[0].Template != "cancellation" || nb[0].Channel != "sms" || nb[0].Locale != "de" || dataOf(t, nb[0])["customer_name"] != "Max" {
			t.Errorf("cust-b notices %+v", nb)
		}

		// DELETE without a body: reminders cancelled, no notice.
		e.putAppt("appt-3", apptBody(start))
		before := e.countRows("notifications")
		w = e.do("DELETE", "/v1/appointments/appt-3", e.token, "")
		decodeBody(t, w, &v)
		if w.Code != http.StatusOK || v.Notifications != (notificationCounts{Cancelled: 2}) || v.Sync.Queued != 1 {
			t.Errorf("bare delete: %d %+v", w.Code, v)
		}
		if e.countRows("notifications") != before {
			t.Errorf("a bare DELETE created notifications")
		}

		// Unknown, other tenant's, and malformed ids are 404; a bad notify is a 422.
		wantError(t, e.do("DELETE", "/v1/appointments/nope", e.token, ""), 404, "not_found", "")
		wantError(t, e.do("DELETE", "/v1/appointments/"+strings.Repeat("a", 201), e.token, ""), 404, "not_found", "")
		e.putAppt("appt-4", apptBody(start))
		before, pushesBefore = e.countRows("notifications"), len(e.queue.pushes())
		bad := with(notifyBody(), "provider_name", nil)
		wantError(t, e.do("DELETE", "/v1/appointments/appt-4", e.token, mustJSON(t, map[string]any{"notify": bad})), 422, "invalid_field", "notify.provider_name")
		wrongSubject := with(notifyBody(), "recipients", []any{map[string]any{"subject_id": "cust-b", "channel": "email", "to": "b@example.com", "locale": "en"}})
		wantError(t, e.do("DELETE", "/v1/appointments/appt-4", e.token, mustJSON(t, map[string]any{"notify": wrongSubject})), 422, "invalid_field", "notify.recipients[0].subject_id")
		wantError(t, e.do("DELETE", "/v1/appointments/appt-4", e.token, `{"reason":"x"}`), 400, "unknown_field", "reason")
		if a, err := e.store.GetAppointment(e.ctx(), e.tenant.ID, "appt-4"); err != nil || a.Status != "confirmed" {
			t.Errorf("appt-4 after refused cancels: %+v %v", a, err)
		}
		if e.countRows("notifications") != before || len(e.queue.pushes()) != pushesBefore {
			t.Errorf("a refused DELETE stored or enqueued something")
		}
	})
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestAppointmentChanges covers the smaller rules of planning: reminders in
// the past are skipped, [] means none, a content change re-plans reminders
// only with notify, a reschedule without notify still cancels them, and a
// cancelled appointment confirmed again is planned like a new one.
func TestAppointmentChanges(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		e.createConn("cust-a", store.DirectionExport, store.ConsentCalendarWrite)
		cases := []struct {
			name  string
			steps []map[string]any
			// what the last step did
			created, cancelled int
			noPush             bool
			// scheduled reminders after it
			scheduled int
		}{
			{
				name:    "tomorrow's reminder a day ahead is skipped",
				steps:   []map[string]any{with(apptBody(e.now.Add(3*time.Hour).Truncate(time.Second)), "reminders", []int{1440, 60})},
				created: 2, scheduled: 1, // the confirmation and the reminder an hour ahead
			},
			{
				name:    "no reminders",
				steps:   []map[string]any{with(apptBody(e.apptStart()), "reminders", []int{})},
				created: 1,
			},
			{
				name:    "title changed with notify: reminders re-planned",
				steps:   []map[string]any{apptBody(e.apptStart()), with(apptBody(e.apptStart()), "title", "Other")},
				created: 1, cancelled: 1, scheduled: 1,
			},
			{
				name:      "title changed without notify: reminders kept",
				steps:     []map[string]any{apptBody(e.apptStart()), with(with(apptBody(e.apptStart()), "title", "Other"), "notify", nil)},
				scheduled: 1,
			},
			{
				name:      "rescheduled without notify: reminders cancelled",
				steps:     []map[string]any{apptBody(e.apptStart()), with(apptBody(e.apptStart().Add(time.Hour)), "notify", nil)},
				cancelled: 1,
			},
			{
				name: "confirmed again",
				steps: []map[string]any{
					apptBody(e.apptStart()),
					with(apptBody(e.apptStart()), "status", "cancelled"),
					apptBody(e.apptStart()),
				},
				created: 2, scheduled: 1,
			},
			{
				name:   "created cancelled: nothing planned",
				steps:  []map[string]any{with(apptBody(e.apptStart()), "status", "cancelled")},
				noPush: true, // no copy to remove
			},
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				id := "chg-" + string(rune('a'+i))
				var v *appointmentView
				for _, step := range tc.steps {
					v = e.putAppt(id, step)
				}
				if v.Sync.Queued != 1 && !tc.noPush || v.Sync.Queued != 0 && tc.noPush {
					t.Errorf("last step queued %d pushes (no push: %v)", v.Sync.Queued, tc.noPush)
				}
				if v.Notifications != (notificationCounts{Created: tc.created, Cancelled: tc.cancelled}) {
					t.Errorf("last step %+v, want created %d cancelled %d", v.Notifications, tc.created, tc.cancelled)
				}
				scheduled := 0
				for _, n := range e.apptNotifications("cust-a", id) {
					if n.Template == "reminder" && n.Status == "scheduled" {
						scheduled++
						if !n.SendAt.After(e.now) {
							t.Errorf("reminder at %v is not ahead of %v", n.SendAt, e.now)
						}
					}
				}
				if scheduled != tc.scheduled {
					t.Errorf("%d scheduled reminders, want %d", scheduled, tc.scheduled)
				}
			})
		}
	})
}

func TestAppointmentKey(t *testing.T) {
	t.Parallel()
	cases := []struct {
		appt, subject string
		plain         bool
	}{
		{"a-1", "cust-1", true},
		{"a:1", "cust-1", false},
		{"a-1", "Jürgen", false},
		{strings.Repeat("a", 200), strings.Repeat("s", 200), false},
	}
	for _, tc := range cases {
		k := appointmentKey(tc.appt, 3, "reminder:60", tc.subject, "email")
		if len(k) > maxIdempotencyKey || !printableASCII(k) {
			t.Errorf("key %q breaks the key rules", k)
		}
		if tc.plain != strings.HasPrefix(k, "appt:"+tc.appt+":") {
			t.Errorf("key %q: plain %v", k, tc.plain)
		}
		if k != appointmentKey(tc.appt, 3, "reminder:60", tc.subject, "email") || k == appointmentKey(tc.appt, 4, "reminder:60", tc.subject, "email") {
			t.Errorf("key %q is not deterministic in its inputs", k)
		}
	}
}

func TestAllDayAppointment(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		day := e.now.AddDate(0, 0, 10).In(mustZone(t, "Europe/Berlin"))
		date := day.Format(time.DateOnly)
		body := with(with(apptBody(e.apptStart()), "start", nil), "end", nil)
		body["all_day"], body["start_date"], body["end_date"] = true, date, day.AddDate(0, 0, 2).Format(time.DateOnly)
		body["reminders"] = []int{1440}
		v := e.putAppt("day-1", body)
		if !v.AllDay || v.Start != date || v.End != day.AddDate(0, 0, 2).Format(time.DateOnly) {
			t.Errorf("view %+v", v)
		}
		var reminder store.Notification
		for _, n := range e.apptNotifications("cust-a", "day-1") {
			if n.Template == "reminder" {
				reminder = n
			}
		}
		midnight := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, day.Location())
		if !reminder.SendAt.Equal(midnight.Add(-24 * time.Hour)) {
			t.Errorf("reminder at %v, want a day before local midnight %v", reminder.SendAt, midnight)
		}
	})
}
