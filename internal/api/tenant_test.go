package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/processing"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

func TestOffboardingAPI(t *testing.T) {
	t.Parallel()
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d)
			ingest, _ := e.ingestKey()
			conn := e.seedConnection("cust-a", store.ProviderCalDAV, store.ConsentCalendarReadBusy)
			pending := e.createOK(`{"idempotency_key":"k1","channel":"email","to":"a@example.org","locale":"en",
				"template":"confirmation","purpose":"transactional","send_at":"` + e.now.Add(48*time.Hour).Format(time.RFC3339) + `",
				"data":{"customer_name":"A","provider_name":"P","service":"S","start":"2030-01-01T09:00:00Z",
				"end":"2030-01-01T10:00:00Z","time_zone":"Europe/Berlin"}}`)

			// Only an admin key may offboard; a bad grace period stores nothing.
			wantError(t, e.do("POST", "/v1/tenant/offboard", ingest, ""), http.StatusForbidden, codeForbidden, "")
			wantError(t, e.do("POST", "/v1/tenant/offboard", e.token, `{"grace_days":0}`), http.StatusUnprocessableEntity, codeInvalidField, "grace_days")
			wantError(t, e.do("POST", "/v1/tenant/offboard", e.token, `{"grace_days":"28d"}`), http.StatusBadRequest, codeWrongType, "grace_days")
			if _, err := e.store.GetOffboarding(e.ctx(), e.tenant.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("a refused offboarding was stored: %v", err)
			}

			w := e.do("POST", "/v1/tenant/offboard", e.token, `{"grace_days":14}`)
			if w.Code != http.StatusAccepted {
				t.Fatalf("offboard: %d %s", w.Code, w.Body)
			}
			var got offboardingView
			decodeBody(t, w, &got)
			if got.Status != "offboarding" || !slices.Equal(got.ConnectionsRevoking, []string{conn.ID}) ||
				got.NotificationsCancelled == nil || *got.NotificationsCancelled != 1 || got.KeysSuspended == nil || *got.KeysSuspended != 2 ||
				got.PurgeAt != e.now.Add(14*24*time.Hour).UTC().Format(time.RFC3339) {
				t.Errorf("offboard answer = %s", w.Body)
			}
			if !slices.Equal(e.queue.revoked(), []string{conn.ID}) {
				t.Errorf("revokes enqueued = %v, want the connection's cleanup", e.queue.revoked())
			}
			if n, err := e.store.GetNotification(e.ctx(), e.tenant.ID, pending); err != nil || n.Status != store.StatusCancelled {
				t.Errorf("pending notification after offboarding: %+v, %v", n, err)
			}

			// Processing has stopped: every other route refuses both keys.
			for _, tc := range []struct{ method, path, token string }{
				{"POST", "/v1/notifications", ingest},
				{"PUT", "/v1/appointments/a1", ingest},
				{"GET", "/v1/stats", ingest},
				{"GET", "/v1/subjects/cust-a/export", e.token},
				{"POST", "/v1/connections/" + conn.ID + "/sync", e.token},
			} {
				wantError(t, e.do(tc.method, tc.path, tc.token, `{}`), http.StatusForbidden, codeTenantOffboarding, "")
			}
			// The offboarding routes stay open to the admin key only.
			wantError(t, e.do("POST", "/v1/tenant/offboard/cancel", ingest, ""), http.StatusForbidden, codeForbidden, "")
			wantError(t, e.do("POST", "/v1/tenant/offboard", e.token, ""), http.StatusConflict, codeTenantOffboarding, "")
			w = e.do("GET", "/v1/tenant/offboard", e.token, "")
			decodeBody(t, w, &got)
			if w.Code != http.StatusOK || got.Status != "offboarding" {
				t.Errorf("GET offboard: %d %s", w.Code, w.Body)
			}

			// Cancelling restores service; the connection stays revoked.
			if w = e.do("POST", "/v1/tenant/offboard/cancel", e.token, ""); w.Code != http.StatusOK {
				t.Fatalf("cancel: %d %s", w.Code, w.Body)
			}
			if w = e.do("GET", "/v1/stats", ingest, ""); w.Code != http.StatusOK {
				t.Errorf("stats after cancel: %d %s", w.Code, w.Body)
			}
			if c, err := e.store.GetConnection(e.ctx(), e.tenant.ID, conn.ID); err != nil || c.State != store.ConnRevoking {
				t.Errorf("connection after cancel: %+v, %v", c, err)
			}
			wantError(t, e.do("POST", "/v1/tenant/offboard/cancel", e.token, ""), http.StatusConflict, codeNotOffboarding, "")
			actions := e.auditActions("")
			if !slices.Contains(actions, "tenant.offboard") || !slices.Contains(actions, "tenant.offboard_cancel") {
				t.Errorf("audit = %v, want the offboarding and its cancellation", actions)
			}
		})
	}
}

func TestStatsAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, store.DialectSQLite)
	ingest, _ := e.ingestKey()
	today := time.Now().UTC().Format(time.DateOnly)
	start := time.Now().Add(72 * time.Hour).Truncate(time.Minute)
	for i := range 5 {
		if _, err := e.store.UpsertAppointment(e.ctx(), store.Appointment{TenantID: e.tenant.ID, ID: fmt.Sprintf("a%d", i),
			SubjectIDs: []string{"cust"}, Start: start, End: start.Add(time.Hour), TimeZone: "UTC", Title: "T"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.store.CancelAppointment(e.ctx(), e.tenant.ID, "a0"); err != nil {
		t.Fatal(err)
	}

	w := e.do("GET", "/v1/stats?from="+today+"&to="+today+"&granularity=day", ingest, "")
	if w.Code != http.StatusOK {
		t.Fatalf("stats: %d %s", w.Code, w.Body)
	}
	var got struct {
		Granularity          string            `json:"granularity"`
		SuppressionThreshold int               `json:"suppression_threshold"`
		Items                []json.RawMessage `json:"items"`
	}
	decodeBody(t, w, &got)
	var items []string
	for _, it := range got.Items {
		items = append(items, string(it))
	}
	want := []string{
		fmt.Sprintf(`{"period":%q,"metric":"bookings","count":5}`, today),
		fmt.Sprintf(`{"period":%q,"metric":"cancellations","count":null,"suppressed":true}`, today),
	}
	if !slices.Equal(items, want) {
		t.Errorf("items = %v\nwant    %v", items, want)
	}
	if got.SuppressionThreshold != 5 || got.Granularity != "day" {
		t.Errorf("stats = %s", w.Body)
	}

	for _, tc := range []struct{ query, field string }{
		{"from=2026-1-01", "from"},
		{"to=2026-13-01", "to"},
		{"granularity=week", "granularity"},
		{"from=2026-02-01&to=2026-01-01", "from"},
		{"from=2024-01-01&to=2026-01-01", "from"},
		{"from=2000-01-01&to=2026-01-01&granularity=month", "from"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			wantError(t, e.do("GET", "/v1/stats?"+tc.query, ingest, ""), http.StatusUnprocessableEntity, codeInvalidField, tc.field)
		})
	}
}

func TestProcessingRecordsAPI(t *testing.T) {
	t.Parallel()
	recordsOf := func(t *testing.T, setup processing.Setup) (*testEnv, processing.Records) {
		t.Helper()
		e := newEnv(t, store.DialectSQLite, func(c *Config, _ *Deps) { c.Processing = setup })
		e.seedConnection("cust-a", store.ProviderCalDAV, store.ConsentCalendarReadBusy)
		w := e.do("GET", "/v1/tenant/processing-records", e.token, "")
		if w.Code != http.StatusOK {
			t.Fatalf("records: %d %s", w.Code, w.Body)
		}
		var rec processing.Records
		decodeBody(t, w, &rec)
		return e, rec
	}
	smsOf := func(rec processing.Records) processing.Activity {
		for _, a := range rec.Activities {
			if a.ID == "notify.sms" {
				return a
			}
		}
		return processing.Activity{}
	}
	_, before := recordsOf(t, processing.Setup{SMTPHost: "mail.example.org"})
	if a := smsOf(before); len(a.Recipients) != 0 || a.ThirdCountryTransfer {
		t.Errorf("SMS without Twilio = %+v", a)
	}
	e, after := recordsOf(t, processing.Setup{SMTPHost: "mail.example.org", Twilio: true})
	if a := smsOf(after); len(a.Recipients) != 1 || a.Recipients[0].Name != "Twilio Inc." || !a.ThirdCountryTransfer ||
		!slices.Equal(a.TransferCountries, []string{"US"}) {
		t.Errorf("SMS with Twilio = %+v", a)
	}
	var hosts []string
	for _, a := range after.Activities {
		for _, r := range a.Recipients {
			hosts = append(hosts, r.Host)
		}
	}
	if !slices.Contains(hosts, "dav.example.com") || !slices.Contains(hosts, "mail.example.org") {
		t.Errorf("recipients' hosts = %v, want the SMTP host and the CalDAV host in use", hosts)
	}

	for _, tc := range []struct{ path, accept string }{
		{"/v1/tenant/processing-records?format=markdown", ""},
		{"/v1/tenant/processing-records", "text/markdown"},
	} {
		r := httptest.NewRequest("GET", tc.path, nil)
		r.Header.Set("Authorization", "Bearer "+e.token)
		r.Header.Set("Accept", tc.accept)
		w := httptest.NewRecorder()
		e.handler.ServeHTTP(w, r)
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/markdown") ||
			!strings.Contains(w.Body.String(), "Twilio Inc. (processor, US)") {
			t.Errorf("%s (Accept %q): %d %s\n%s", tc.path, tc.accept, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
	}
	wantError(t, e.do("GET", "/v1/tenant/processing-records?format=xml", e.token, ""), http.StatusUnprocessableEntity, codeInvalidField, "format")
	ingest, _ := e.ingestKey()
	wantError(t, e.do("GET", "/v1/tenant/processing-records", ingest, ""), http.StatusForbidden, codeForbidden, "")
}
