package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/termind/termind/connectors/sms"
	"github.com/termind/termind/internal/store/storetest"
)

// bodyLimits names, for every route that writes, the largest body it
// reads; 0 for routes that read no body. A route missing here fails
// TestOversizedBodies, so a new route gets a decision.
var bodyLimits = map[string]int{
	"POST /v1/notifications":                maxBodyBytes,
	"POST /v1/notifications/batch":          maxBatchBodyBytes,
	"DELETE /v1/notifications/{id}":         0,
	"POST /v1/consents":                     maxBodyBytes,
	"POST /v1/subjects/{id}/restrict":       0,
	"POST /v1/subjects/{id}/unrestrict":     0,
	"POST /v1/connections/caldav":           maxBodyBytes,
	"POST /v1/connections/google/authorize": maxBodyBytes,
	"POST /v1/connections/{id}/revoke":      maxBodyBytes,
	"POST /v1/connections/{id}/sync":        maxBodyBytes,
	"PATCH /v1/connections/{id}":            maxBodyBytes,
	"PUT /v1/appointments/{id}":             maxBodyBytes,
	"DELETE /v1/appointments/{id}":          maxBodyBytes,
	"DELETE /v1/subjects/{id}":              0,
	"POST /webhooks/twilio/status":          maxBodyBytes,
	// Google's notification is all headers; a forged one is refused in
	// TestGooglePushNotifications.
	"POST /webhooks/google":           0,
	"PUT /v1/tenant/retention":        maxBodyBytes,
	"POST /v1/holds":                  maxBodyBytes,
	"DELETE /v1/holds/{id}":           0,
	"POST /v1/tenant/offboard":        maxBodyBytes,
	"POST /v1/tenant/offboard/cancel": 0,
	"PUT /v1/tenant/controller":       maxBodyBytes,
}

// TestOversizedBodies sends a body one byte over the limit to every route
// that writes: 413 naming the body, and nothing stored.
func TestOversizedBodies(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		g := newGoogleEnv(t, dialect, nil, withCalDAV(okConnector{}))
		f := g.seedIsolationFixture(t)
		before := rowSet(storetest.Dump(t, g.store))
		for _, r := range Routes() {
			if r.Method == "GET" {
				continue
			}
			name := r.Method + " " + r.Pattern
			limit, ok := bodyLimits[name]
			if !ok {
				t.Errorf("%s: no body limit recorded in bodyLimits", name)
				continue
			}
			if limit == 0 {
				continue
			}
			t.Run(name, func(t *testing.T) {
				// A JSON string that only ends past the limit.
				body := `{"x":"` + strings.Repeat("a", limit) + `"}`
				var w *httptest.ResponseRecorder
				if r.Role == "" {
					// The open routes that write are form-encoded webhooks.
					req := httptest.NewRequest(r.Method, f.pathFor(t, r), strings.NewReader("x="+strings.Repeat("a", limit)))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					w = httptest.NewRecorder()
					g.handler.ServeHTTP(w, req)
				} else {
					w = g.doHeader(r.Method, f.pathFor(t, r), "Bearer "+g.token, body)
				}
				wantError(t, w, http.StatusRequestEntityTooLarge, "too_large", "body")
			})
		}
		if after := rowSet(storetest.Dump(t, g.store)); !slices.Equal(before, after) {
			t.Errorf("oversized bodies changed the database: %v", diffRows(before, after))
		}
	})
}

// TestDeeplyNestedJSON sends documents nested far beyond any real request
// (and beyond encoding/json's depth limit): 400 malformed_json, no crash,
// nothing stored.
func TestDeeplyNestedJSON(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		depth := maxBodyBytes/2 - 100
		arrays := `{"data":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
		const objDepth = 10_500 // past encoding/json's limit of 10,000, inside 64 KiB
		objects := `{"data":` + strings.Repeat(`{"a":`, objDepth) + "1" + strings.Repeat("}", objDepth) + `}`
		unclosed := `{"data":` + strings.Repeat("[", maxBodyBytes-100)
		cases := []struct{ name, path, body string }{
			{"arrays in a notification", "/v1/notifications", arrays},
			{"objects in a notification", "/v1/notifications", objects},
			{"unclosed arrays", "/v1/notifications", unclosed},
			{"arrays in a batch item", "/v1/notifications/batch", `{"items":[` + arrays + `]}`},
			{"objects in a consent", "/v1/consents", objects},
		}
		before := rowSet(storetest.Dump(t, e.store))
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				wantError(t, e.do("POST", c.path, e.token, c.body), http.StatusBadRequest, "malformed_json", "")
			})
		}
		if after := rowSet(storetest.Dump(t, e.store)); !slices.Equal(before, after) {
			t.Errorf("nested bodies changed the database: %v", diffRows(before, after))
		}
		// Deep, but within the decoder's limit: the whole pipeline
		// (validation, hashing, rendering check, store) copes.
		deep := emailRequest("deep-data")
		nested := any("leaf")
		for range 9_000 {
			nested = []any{nested}
		}
		deep["data"] = with(templateData(), "extra", nested)
		w := e.do("POST", "/v1/notifications", e.token, mustJSON(t, deep))
		if w.Code != http.StatusAccepted && w.Code != http.StatusUnprocessableEntity && w.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("deep but decodable data: %d %s", w.Code, w.Body)
		}
	})
}

// TestControlCharactersInFreeText: PostgreSQL text cannot hold NUL, and
// no policy version or user agent has control characters. Each is a 400
// naming the field, on both dialects (a NUL once reached PostgreSQL and
// came back as a 500).
func TestControlCharactersInFreeText(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		g := newGoogleEnv(t, dialect, nil, withCalDAV(okConnector{}))
		conn := g.seedConnection("cust-ctl", "caldav", "calendar.read.busy")
		consent := func(field string, v any) string {
			b := consentRequestBody("cust-ctl", "notify.sms", "granted")
			if field == "policy_version" {
				b[field] = v
			} else {
				b["source"] = map[string]any{"ip": "203.0.113.7", "user_agent": v}
			}
			return mustJSON(t, b)
		}
		withCalendarConsent := func(m map[string]any, field, v string) string {
			c := m["consent"].(map[string]any)
			if field == "policy_version" {
				c = with(c, "policy_version", v)
			} else {
				c = with(c, "source", map[string]any{"user_agent": v})
			}
			return mustJSON(t, with(m, "consent", c))
		}
		cases := []struct{ name, method, path, body, field string }{
			{"consent policy_version NUL", "POST", "/v1/consents", consent("policy_version", "2026\x00"), "policy_version"},
			{"consent user_agent NUL", "POST", "/v1/consents", consent("user_agent", "Mozilla\x00"), "source.user_agent"},
			{"consent user_agent newline", "POST", "/v1/consents", consent("user_agent", "a\r\nX-Injected: 1"), "source.user_agent"},
			{"revoke policy_version NUL", "POST", "/v1/connections/" + conn.ID + "/revoke", `{"policy_version":"v\u0000"}`, "policy_version"},
			{"revoke user_agent NUL", "POST", "/v1/connections/" + conn.ID + "/revoke", `{"source":{"user_agent":"\u0000"}}`, "source.user_agent"},
			{"caldav policy_version NUL", "POST", "/v1/connections/caldav", withCalendarConsent(caldavBody("https://dav.example.com/"), "policy_version", "v\x00"), "consent.policy_version"},
			{"google user_agent NUL", "POST", "/v1/connections/google/authorize", withCalendarConsent(authorizeBody("cust-ctl"), "user_agent", "\x00"), "consent.source.user_agent"},
		}
		before := rowSet(storetest.Dump(t, g.store))
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				wantError(t, g.do(c.method, c.path, g.token, c.body), http.StatusUnprocessableEntity, "invalid_field", c.field)
			})
		}
		if after := rowSet(storetest.Dump(t, g.store)); !slices.Equal(before, after) {
			t.Errorf("refused requests changed the database: %v", diffRows(before, after))
		}
	})
}

// TestForgedTwilioCallbacks posts status callbacks an attacker could
// build: 403 every time, and the database is unchanged (no status, no
// opt-out).
func TestForgedTwilioCallbacks(t *testing.T) {
	t.Parallel()
	const path = "/webhooks/twilio/status"
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		var sids []string
		for i, subject := range []string{"cust-f1", "cust-f2"} {
			req := smsRequest("forged-" + subject)
			req["subject_id"] = subject
			id := e.createOK(mustJSON(t, req))
			sid := "SM" + strings.Repeat("f", 31) + string(rune('0'+i))
			e.markSent(id, sid)
			sids = append(sids, sid)
		}
		genuine := statusParams(sids[0], "undelivered", "21610")
		genuineSig := sms.Sign(testTwilioToken, testPublicURL+path, genuine)
		post := func(params url.Values, sig string, header bool) int {
			r := httptest.NewRequest("POST", path, strings.NewReader(params.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if header {
				r.Header.Set("X-Twilio-Signature", sig)
			}
			w := httptest.NewRecorder()
			e.handler.ServeHTTP(w, r)
			return w.Code
		}
		other := statusParams(sids[1], "undelivered", "21610")
		cases := []struct {
			name   string
			params url.Values
			sig    string
			header bool
		}{
			{"no header", genuine, "", false},
			{"empty signature", genuine, "", true},
			{"garbage signature", genuine, "not base64 at all", true},
			{"signature of an empty form", genuine, sms.Sign(testTwilioToken, testPublicURL+path, url.Values{}), true},
			{"signed with another token", genuine, sms.Sign("another-auth-token", testPublicURL+path, genuine), true},
			{"replayed for another message", other, genuineSig, true},
			{"replayed with a changed status", with2(genuine, "MessageStatus", "delivered"), genuineSig, true},
			{"replayed with an extra param", with2(genuine, "Extra", "1"), genuineSig, true},
			{"signature in lower case", genuine, strings.ToLower(genuineSig), true},
			{"signature truncated", genuine, genuineSig[:len(genuineSig)-2], true},
		}
		before := rowSet(storetest.Dump(t, e.store))
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				if got := post(c.params, c.sig, c.header); got != http.StatusForbidden {
					t.Fatalf("HTTP %d, want 403", got)
				}
			})
		}
		if after := rowSet(storetest.Dump(t, e.store)); !slices.Equal(before, after) {
			t.Errorf("forged callbacks changed the database: %v", diffRows(before, after))
		}
		// The genuine one still works, so the 403s were about the forgery.
		if got := post(genuine, genuineSig, true); got != http.StatusNoContent {
			t.Fatalf("genuine callback: HTTP %d, want 204", got)
		}
		if sub, err := e.store.GetSubject(e.ctx(), e.tenant.ID, "cust-f1"); err != nil || !sub.SMSOptedOut {
			t.Errorf("genuine opt-out not applied: %+v %v", sub, err)
		}
	})
}

// with2 returns a copy of v with key set to value.
func with2(v url.Values, key, value string) url.Values {
	c := url.Values{}
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	c.Set(key, value)
	return c
}
