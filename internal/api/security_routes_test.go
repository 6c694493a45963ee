package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// isoFixture is tenant A's data that another tenant must neither see nor
// change: one resource of each kind a route path can name.
type isoFixture struct {
	subjectID, notificationID, connectionID, appointmentID, holdID string
	// secrets are values of A's rows that no answer to anyone else may hold.
	secrets []string
}

func (e *testEnv) seedIsolationFixture(t *testing.T) isoFixture {
	t.Helper()
	f := isoFixture{subjectID: "cust-iso", appointmentID: "appt-iso-a"}

	n := emailRequest("iso-a-1")
	n["to"] = "iso-a-recipient@example.org"
	n["subject_id"] = f.subjectID
	data := templateData()
	data["customer_name"] = "Customer-ISO-A"
	n["data"] = data
	f.notificationID = e.createOK(mustJSON(t, n))

	consent := consentRequestBody(f.subjectID, "notify.sms", "granted")
	consent["policy_version"] = "policy-iso-a"
	if w := e.do("POST", "/v1/consents", e.token, mustJSON(t, consent)); w.Code != http.StatusCreated {
		t.Fatalf("seed consent: %d %s", w.Code, w.Body)
	}

	f.connectionID = e.seedConnection(f.subjectID, store.ProviderCalDAV, store.ConsentCalendarReadBusy).ID

	appt := apptBody(e.apptStart())
	appt["subject_ids"] = []string{f.subjectID}
	appt["title"] = "Title-ISO-A"
	appt["notify"] = withRecipientOf(appt["notify"].(map[string]any), f.subjectID)
	e.putAppt(f.appointmentID, appt)

	hold, err := e.store.PlaceHold(e.ctx(), store.LegalHold{TenantID: e.tenant.ID, SubjectID: f.subjectID,
		Reason: "Reason-ISO-A", Until: e.now.Add(90 * store.Day), Actor: "test"}, "", e.now)
	if err != nil {
		t.Fatalf("seed hold: %v", err)
	}
	f.holdID = hold.ID

	f.secrets = []string{
		f.notificationID, f.connectionID, f.holdID, e.tenant.ID,
		"iso-a-recipient@example.org", "Customer-ISO-A", "policy-iso-a", "Title-ISO-A", "Reason-ISO-A",
		"dav.example.com/" + f.subjectID, "seeded-password",
	}
	return f
}

func withRecipientOf(notify map[string]any, subjectID string) map[string]any {
	rc := with(notify["recipients"].([]any)[0].(map[string]any), "subject_id", subjectID)
	return with(notify, "recipients", []any{rc})
}

// pathFor fills a route pattern with the fixture's resource of the kind
// the pattern names. A pattern this test does not know fails it, so a new
// route cannot go unchecked.
func (f isoFixture) pathFor(t *testing.T, r Route) string {
	t.Helper()
	if !strings.Contains(r.Pattern, "{") {
		if r.Method == "GET" && r.Pattern == "/v1/connections" {
			return r.Pattern + "?subject_id=" + f.subjectID
		}
		return r.Pattern
	}
	ids := map[string]string{
		"/v1/notifications/": f.notificationID,
		"/v1/connections/":   f.connectionID,
		"/v1/appointments/":  f.appointmentID,
		"/v1/subjects/":      f.subjectID,
		"/v1/holds/":         f.holdID,
	}
	for prefix, id := range ids {
		if strings.HasPrefix(r.Pattern, prefix+"{id}") {
			return strings.Replace(r.Pattern, "{id}", id, 1)
		}
	}
	t.Fatalf("route %s %s: no fixture resource for its path; add one to pathFor", r.Method, r.Pattern)
	return ""
}

// serverOwnedIDs are path prefixes whose ids termind generates: another
// tenant naming one must get 404, as if it did not exist. Subject and
// appointment ids are the tenant's own names, so another tenant using the
// same name reaches its own (empty or new) resource instead.
var serverOwnedIDs = []string{"/v1/notifications/{id}", "/v1/connections/{id}", "/v1/holds/{id}"}

// validBodyFor is a request body that passes validation, so that a
// refusal cannot come from the body instead of the tenant check.
func (e *testEnv) validBodyFor(t *testing.T, r Route) string {
	t.Helper()
	switch r.Method + " " + r.Pattern {
	case "PUT /v1/appointments/{id}":
		b := apptBody(e.apptStart())
		b["subject_ids"] = []string{"cust-iso"}
		b["notify"] = withRecipientOf(b["notify"].(map[string]any), "cust-iso")
		return mustJSON(t, b)
	case "POST /v1/notifications":
		return mustJSON(t, emailRequest("iso-b-1"))
	case "POST /v1/notifications/batch":
		return mustJSON(t, map[string]any{"items": []any{emailRequest("iso-b-2")}})
	case "POST /v1/consents":
		return mustJSON(t, consentRequestBody("cust-iso", "notify.sms", "revoked"))
	case "PATCH /v1/connections/{id}":
		return `{"blocking": false}`
	case "PUT /v1/tenant/retention":
		return `{"notifications_days": 7}`
	case "POST /v1/holds":
		return mustJSON(t, map[string]any{"subject_id": "cust-iso", "reason": "Reason-ISO-B",
			"until": e.now.Add(90 * store.Day).Format(time.RFC3339)})
	case "PUT /v1/tenant/controller":
		return `{"contact":"Contact-ISO-B","address":"Hauptstraße 5, 10115 Berlin",` +
			`"email":"datenschutz@praxis.example","policy_url":"https://praxis.example/datenschutz"}`
	}
	return ""
}

// rowSet renders every row of a dump as "table: row".
func rowSet(dump map[string][]storetest.Row) []string {
	var out []string
	for table, rows := range dump {
		for _, r := range rows {
			out = append(out, table+": "+r.String())
		}
	}
	slices.Sort(out)
	return out
}

// TestRouteAuthentication calls every keyed route of Routes() without a
// key, with malformed, unknown, wrong and disabled keys, and every admin
// route with an ingest key: 401 (or 403) every time, and the database
// stays exactly as it was.
func TestRouteAuthentication(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		f := e.seedIsolationFixture(t)
		ingest, _ := e.ingestKey()
		disabled, disabledKey := e.ingestKey()
		if err := e.store.DisableAPIKey(e.ctx(), e.tenant.ID, disabledKey.ID, e.now); err != nil {
			t.Fatal(err)
		}
		keyID := e.token[:len(e.token)-65]
		badKeys := []struct{ name, header string }{
			{"no header", ""},
			{"empty bearer", "Bearer "},
			{"basic scheme", "Basic YWRtaW46YWRtaW4="},
			{"garbage token", "Bearer not-a-key"},
			{"token without secret", "Bearer " + keyID},
			{"unknown key id", "Bearer tmd_key_0000000000000000_" + strings.Repeat("a", 64)},
			{"wrong secret", "Bearer " + keyID + "_" + strings.Repeat("0", 64)},
			{"secret one byte short", "Bearer " + e.token[:len(e.token)-1]},
			{"secret in upper case", "Bearer " + keyID + "_" + strings.ToUpper(e.token[len(e.token)-64:])},
			{"disabled key", "Bearer " + disabled},
			{"token twice", "Bearer " + e.token + "," + e.token},
			{"NUL after token", "Bearer " + e.token + "\x00"},
		}
		before := rowSet(storetest.Dump(t, e.store))
		keyed := 0
		for _, r := range Routes() {
			if r.Role == "" {
				continue
			}
			keyed++
			path := f.pathFor(t, r)
			body := e.validBodyFor(t, r)
			for _, k := range badKeys {
				t.Run(r.Method+" "+r.Pattern+"/"+k.name, func(t *testing.T) {
					w := e.doHeader(r.Method, path, k.header, body)
					wantError(t, w, http.StatusUnauthorized, "unauthenticated", "")
					if w.Header().Get("WWW-Authenticate") != "Bearer" {
						t.Errorf("WWW-Authenticate = %q, want Bearer", w.Header().Get("WWW-Authenticate"))
					}
					wantNoLeak(t, w.Body.String(), f.secrets)
				})
			}
			if r.Role == store.RoleAdmin {
				t.Run(r.Method+" "+r.Pattern+"/ingest key", func(t *testing.T) {
					w := e.doHeader(r.Method, path, "Bearer "+ingest, body)
					wantError(t, w, http.StatusForbidden, "forbidden", "")
					wantNoLeak(t, w.Body.String(), f.secrets)
				})
			}
		}
		if keyed == 0 {
			t.Fatal("Routes() lists no keyed route")
		}
		if after := rowSet(storetest.Dump(t, e.store)); !slices.Equal(before, after) {
			t.Errorf("refused requests changed the database:\nbefore %d rows, after %d rows\nnew: %v",
				len(before), len(after), diffRows(before, after))
		}
		for _, secret := range []string{e.token, ingest, disabled} {
			if strings.Contains(e.logs.String(), secret[len(secret)-64:]) {
				t.Errorf("an API key secret is in the log")
			}
		}
	})
}

// TestRouteTenantIsolation calls every keyed route of Routes() with
// another tenant's admin key on this tenant's resources: server-generated
// ids answer 404, nothing of this tenant appears in any answer, and none
// of this tenant's rows changes.
func TestRouteTenantIsolation(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		f := e.seedIsolationFixture(t)
		// This tenant's rows, taken before the other tenant exists: the
		// other tenant's valid requests may change its own rows (its
		// retention policy, its keys during offboarding), not these.
		before := rowSet(storetest.Dump(t, e.store))
		other, err := e.store.CreateTenant(e.ctx(), "Other tenant")
		if err != nil {
			t.Fatal(err)
		}
		otherToken, _, err := e.store.CreateAPIKey(e.ctx(), other.ID, store.RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range Routes() {
			if r.Role == "" {
				continue
			}
			t.Run(r.Method+" "+r.Pattern, func(t *testing.T) {
				w := e.doHeader(r.Method, f.pathFor(t, r), "Bearer "+otherToken, e.validBodyFor(t, r))
				if slices.Contains(serverOwnedIDs, strings.TrimSuffix(strings.TrimSuffix(r.Pattern, "/revoke"), "/sync")) {
					wantError(t, w, http.StatusNotFound, "not_found", "")
				}
				if w.Code >= 500 && !strings.Contains(w.Body.String(), `"not_configured"`) {
					t.Errorf("status %d: %s", w.Code, w.Body)
				}
				wantNoLeak(t, w.Body.String(), f.secrets)
			})
		}
		// Every row of this tenant is as it was; new rows (the other
		// tenant's own) do not point at this tenant's data.
		after := rowSet(storetest.Dump(t, e.store))
		for _, row := range before {
			if _, found := slices.BinarySearch(after, row); !found {
				t.Errorf("another tenant's requests changed or removed: %s", row)
			}
		}
		for _, row := range diffRows(before, after) {
			for _, s := range []string{e.tenant.ID, f.notificationID, f.connectionID, f.holdID} {
				if strings.Contains(row, s) {
					t.Errorf("another tenant's requests added a row about this tenant (%s): %s", s, row)
				}
			}
		}
		if len(diffRows(before, after)) == 0 {
			t.Errorf("the other tenant's valid requests stored nothing; the test did not reach the handlers")
		}
	})
}

// doHeader sends a request with a raw Authorization header ("" = none).
func (e *testEnv) doHeader(method, path, authorization, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		r.Header["Authorization"] = []string{authorization}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, r.WithContext(ctx))
	return w
}

// diffRows lists the rows of after that are not in before (both sorted).
func diffRows(before, after []string) []string {
	var out []string
	for _, row := range after {
		if _, found := slices.BinarySearch(before, row); !found {
			out = append(out, row)
		}
	}
	return out
}

// wantNoLeak fails if body holds any of the secrets.
func wantNoLeak(t *testing.T, body string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(body, s) {
			t.Errorf("answer holds %q: %s", s, body)
		}
	}
}
