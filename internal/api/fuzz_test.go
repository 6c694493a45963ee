package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	"github.com/termind/termind/templates"
)

// The fuzz targets send arbitrary bodies through the real handler on a
// real store of each dialect (PostgreSQL refuses some strings SQLite
// takes, so both are needed). Invariants for every input:
//   - no panic and no 5xx;
//   - a 4xx carries the error envelope, and a refusal of a field
//     (invalid_field, wrong_type, unknown_field, too_large) names it;
//   - a 2xx stored exactly what the request said.
// Seeds are under testdata/fuzz/<target>/ and in each target.

// fuzzAPI is one handler over one store, shared by all inputs of a target.
type fuzzAPI struct {
	dialect string
	store   *store.Store
	handler http.Handler
	token   string
	tenant  store.Tenant
	now     time.Time
}

// okConnector accepts every CalDAV server, so that a fuzzed connect body
// reaches the store without any network.
type okConnector struct{}

func (okConnector) Connect(_ context.Context, p caldav.ConnectParams) (caldav.Calendar, error) {
	u, err := url.Parse(p.URL)
	if err != nil {
		return caldav.Calendar{}, fmt.Errorf("parse %q: %w", p.URL, err)
	}
	return caldav.Calendar{URL: u.String(), Path: u.Path, Name: "Fuzzed"}, nil
}

func newFuzzAPIs(f *testing.F) []*fuzzAPI {
	f.Helper()
	renderer, err := templates.New("")
	if err != nil {
		f.Fatal(err)
	}
	var out []*fuzzAPI
	for _, dialect := range storetest.Dialects() {
		s := storetest.New(f, dialect)
		s.UseSealer(newKeyring(f))
		tenant, token := storetest.NewTenant(f, s)
		a := &fuzzAPI{dialect: dialect, store: s, token: token, tenant: tenant,
			now: time.Date(2030, 1, 15, 8, 0, 0, 0, time.UTC)}
		a.handler = New(Config{PublicURL: testPublicURL, TwilioAuthToken: testTwilioToken}, Deps{
			Store:    s,
			Renderer: renderer,
			Queue:    &recordingQueue{},
			CalDAV:   okConnector{},
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			Now:      func() time.Time { return a.now },
		})
		out = append(out, a)
	}
	return out
}

// call sends one request and checks the invariants every answer keeps.
func (a *fuzzAPI) call(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(string(body)))
	r.Header.Set("Authorization", "Bearer "+a.token)
	r.Header.Set("Content-Type", "application/json")
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	w := httptest.NewRecorder()
	a.handler.ServeHTTP(w, r.WithContext(ctx))
	if w.Code >= 500 {
		t.Fatalf("%s: %s %s answered %d: %s\nbody %q", a.dialect, method, path, w.Code, w.Body, body)
	}
	if w.Code >= 400 {
		var e errorBody
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("%s: %d without the error envelope: %s", a.dialect, w.Code, w.Body)
		}
		switch e.Error.Code {
		case codeInvalidField, codeWrongType, codeUnknownField, codeTooLarge:
			if e.Error.Field == "" {
				t.Fatalf("%s: %s names no field: %s\nbody %q", a.dialect, e.Error.Code, w.Body, body)
			}
		}
	}
	return w.Code, w.Body.Bytes()
}

// lenient decodes what a strict decode accepted; the strict decode is the
// handler's, so a 2xx means this one succeeds with the same values.
func lenient(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("the handler accepted a body encoding/json refuses: %v\n%q", err, body)
	}
}

func notificationSeeds() [][]byte {
	var seeds [][]byte
	sms := smsRequest("seed-sms")
	sms["send_at"] = "2030-01-16T08:00:00Z"
	for _, m := range []map[string]any{
		emailRequest("seed-email"), sms,
		with(emailRequest("seed-x"), "data", "not an object"),
		with(emailRequest("seed-y"), "locale", "de"),
		with(emailRequest("seed-z"), "template", "reminder"),
	} {
		b, _ := json.Marshal(m)
		seeds = append(seeds, b)
	}
	return append(seeds, []byte(`{}`), []byte(`{"to":5}`), []byte(`[]`), []byte(`{"data":{"a":[[[[[[[]]]]]]]}}`))
}

// checkNotification compares the stored row of an accepted request with it.
func (a *fuzzAPI) checkNotification(t *testing.T, req notificationRequest, answer []byte) {
	t.Helper()
	var got notificationCreated
	lenient(t, answer, &got)
	n, err := a.store.GetNotification(t.Context(), a.tenant.ID, got.ID)
	if err != nil {
		t.Fatalf("%s: accepted %s, then: %v", a.dialect, got.ID, err)
	}
	if n.Recipient != req.To || n.Channel != req.Channel || n.Locale != req.Locale || n.Template != req.Template ||
		n.Purpose != req.Purpose || n.SubjectID != req.SubjectID || n.IdempotencyKey != req.IdempotencyKey {
		t.Fatalf("%s: stored %+v for request %+v", a.dialect, n, req)
	}
	var sent, stored map[string]any
	lenient(t, req.Data, &sent)
	lenient(t, n.Data, &stored)
	if fmt.Sprint(sent) != fmt.Sprint(stored) {
		t.Fatalf("%s: stored data %v, sent %v", a.dialect, stored, sent)
	}
}

func FuzzNotificationBody(f *testing.F) {
	for _, s := range notificationSeeds() {
		f.Add(s)
	}
	apis := newFuzzAPIs(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, a := range apis {
			code, answer := a.call(t, "POST", "/v1/notifications", body)
			if code == http.StatusAccepted || code == http.StatusOK {
				var req notificationRequest
				lenient(t, body, &req)
				a.checkNotification(t, req, answer)
			}
		}
	})
}

// FuzzNotificationFields fuzzes the values of a well-formed request, which
// reaches validation, rendering and the store far more often than bytes do.
func FuzzNotificationFields(f *testing.F) {
	f.Add("k1", "email", "jane@example.com", "en", "confirmation", "transactional", "", "", "Jane", "2030-03-01T09:00:00Z", "Europe/Berlin")
	f.Add("k2", "sms", "+4915112345678", "de", "reminder", "reminder", "cust-1", "2030-01-16T08:00:00Z", "Jürgen", "2030-03-01T09:00:00+01:00", "Asia/Kolkata")
	f.Add("k3", "sms", "+4915112345678", "de-AT", "cancellation", "transactional", "c\x00", "", strings.Repeat("€", 400), "2030-03-01T09:00:00Z", "Local")
	apis := newFuzzAPIs(f)
	f.Fuzz(func(t *testing.T, key, channel, to, locale, template, purpose, subject, sendAt, name, start, zone string) {
		data := map[string]any{"customer_name": name, "provider_name": name, "service": name,
			"start": start, "end": start, "time_zone": zone, "previous_start": start}
		raw, err := json.Marshal(data)
		if err != nil {
			return
		}
		req := notificationRequest{IdempotencyKey: key, Channel: channel, To: to, Locale: locale, Template: template,
			Purpose: purpose, SubjectID: subject, SendAt: sendAt, Data: raw}
		body, err := json.Marshal(req)
		if err != nil {
			return
		}
		for _, a := range apis {
			code, answer := a.call(t, "POST", "/v1/notifications", body)
			if code == http.StatusAccepted || code == http.StatusOK {
				var back notificationRequest
				lenient(t, body, &back)
				a.checkNotification(t, back, answer)
			}
		}
	})
}

func FuzzBatchBody(f *testing.F) {
	for _, s := range notificationSeeds() {
		f.Add([]byte(`{"items":[` + string(s) + `]}`))
	}
	f.Add([]byte(`{"items":[]}`))
	f.Add([]byte(`{"items":null}`))
	apis := newFuzzAPIs(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, a := range apis {
			code, answer := a.call(t, "POST", "/v1/notifications/batch", body)
			if code != http.StatusOK {
				continue
			}
			var req struct{ Items []json.RawMessage }
			lenient(t, body, &req)
			var res struct {
				Items []batchItemResult `json:"items"`
			}
			lenient(t, answer, &res)
			if len(res.Items) != len(req.Items) {
				t.Fatalf("%s: %d results for %d items", a.dialect, len(res.Items), len(req.Items))
			}
			for i, it := range res.Items {
				if it.StatusCode >= 500 {
					t.Fatalf("%s: item %d: %d: %s", a.dialect, i, it.StatusCode, answer)
				}
				if it.Error != nil && it.Error.Code == codeInvalidField && it.Error.Field == "" {
					t.Fatalf("%s: item %d names no field: %s", a.dialect, i, answer)
				}
				if it.StatusCode == http.StatusAccepted || it.StatusCode == http.StatusOK {
					var item notificationRequest
					lenient(t, req.Items[i], &item)
					a.checkNotification(t, item, []byte(`{"id":"`+it.ID+`"}`))
				}
			}
		}
	})
}

func FuzzConsentBody(f *testing.F) {
	for _, m := range []map[string]any{
		consentRequestBody("cust-1", "notify.sms", "granted"),
		consentRequestBody("cust-2", "notify.email", "refused"),
		with(consentRequestBody("cust-3", "notify.sms", "revoked"), "source", map[string]any{"ip": "2001:db8::1", "user_agent": "x\u0000y"}),
		with(consentRequestBody("cust-4", "calendar.write", "granted"), "policy_version", "v\u0000"),
	} {
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	apis := newFuzzAPIs(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, a := range apis {
			code, answer := a.call(t, "POST", "/v1/consents", body)
			if code != http.StatusCreated {
				continue
			}
			var req consentRequest
			lenient(t, body, &req)
			var got struct{ ID string }
			lenient(t, answer, &got)
			ledger, err := a.store.ListConsents(t.Context(), a.tenant.ID, req.SubjectID)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, c := range ledger {
				if c.ID != got.ID {
					continue
				}
				found = true
				if c.Purpose != req.Purpose || c.Decision != req.Decision || c.PolicyVersion != req.PolicyVersion ||
					c.UserAgent != req.Source.UserAgent || c.SubjectID != req.SubjectID {
					t.Fatalf("%s: stored %+v for %+v", a.dialect, c, req)
				}
			}
			if !found {
				t.Fatalf("%s: consent %s not in the ledger of %q", a.dialect, got.ID, req.SubjectID)
			}
		}
	})
}

func FuzzAppointmentBody(f *testing.F) {
	start := time.Date(2030, 1, 25, 9, 0, 0, 0, time.UTC)
	for _, m := range []map[string]any{
		apptBody(start),
		with(apptBody(start), "notify", nil),
		with(with(with(apptBody(start), "all_day", true), "start_date", "2030-01-25"), "end_date", "2030-01-26"),
		with(apptBody(start), "reminders", []int{1440, 60, 0}),
		with(apptBody(start), "description", "line 1\nline 2\u0000"),
	} {
		b, _ := json.Marshal(m)
		f.Add("appt-1", b)
	}
	apis := newFuzzAPIs(f)
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		path := "/v1/appointments/" + url.PathEscape(id)
		if _, err := url.ParseRequestURI(path); err != nil {
			return
		}
		for _, a := range apis {
			code, _ := a.call(t, "PUT", path, body)
			if code != http.StatusCreated && code != http.StatusOK {
				continue
			}
			var req appointmentRequest
			lenient(t, body, &req)
			got, err := a.store.GetAppointment(t.Context(), a.tenant.ID, id)
			if err != nil {
				t.Fatalf("%s: accepted appointment %q, then: %v", a.dialect, id, err)
			}
			if got.Title != req.Title || got.Location != req.Location || got.Description != req.Description {
				t.Fatalf("%s: stored %+v for %+v", a.dialect, got, req)
			}
			if got.End.Before(got.Start) {
				t.Fatalf("%s: stored end %v before start %v", a.dialect, got.End, got.Start)
			}
		}
	})
}

func FuzzCalDAVConnectBody(f *testing.F) {
	for _, m := range []map[string]any{
		caldavBody("https://dav.example.com/alice/"),
		with(caldavBody("https://dav.example.com/"), "privacy", "full"),
		with(caldavBody("https://dav.example.com/"), "password", "p\u0000w"),
		with(caldavBody("http://user:pw@dav.example.com/"), "create_calendar", true),
	} {
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	apis := newFuzzAPIs(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, a := range apis {
			code, answer := a.call(t, "POST", "/v1/connections/caldav", body)
			if code != http.StatusCreated {
				continue
			}
			var req caldavRequest
			lenient(t, body, &req)
			var got struct{ ID string }
			lenient(t, answer, &got)
			c, err := a.store.GetConnection(t.Context(), a.tenant.ID, got.ID)
			if err != nil {
				t.Fatalf("%s: accepted %s, then: %v", a.dialect, got.ID, err)
			}
			if c.SubjectID != req.SubjectID || c.Privacy != req.Privacy || c.Direction != req.Direction || c.Provider != store.ProviderCalDAV {
				t.Fatalf("%s: stored %+v for %+v", a.dialect, c, req)
			}
			if strings.Contains(string(answer), req.Password) && req.Password != "" && len(req.Password) > 3 {
				t.Fatalf("%s: the answer holds the password: %s", a.dialect, answer)
			}
		}
	})
}
