package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAuthentication(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		ingest, _ := e.ingestKey()
		body := mustJSON(t, emailRequest("auth"))
		// Same key id, another well-formed secret.
		wrongSecret := e.token[:len(e.token)-64] + strings.Repeat("0", 64)

		cases := []struct {
			name   string
			header string
			method string
			path   string
			body   string
			status int
			code   string
		}{
			{"no header", "", "POST", "/v1/notifications", body, 401, "unauthenticated"},
			{"basic scheme", "Basic dXNlcjpwYXNz", "POST", "/v1/notifications", body, 401, "unauthenticated"},
			{"bearer without token", "Bearer ", "POST", "/v1/notifications", body, 401, "unauthenticated"},
			{"token with a space", "Bearer " + e.token + " x", "POST", "/v1/notifications", body, 401, "unauthenticated"},
			{"wrong secret", "Bearer " + wrongSecret, "POST", "/v1/notifications", body, 401, "unauthenticated"},
			{"garbage token", "Bearer not-a-key", "GET", "/v1/notifications/ntf_x", "", 401, "unauthenticated"},
			{"ingest key restricts", "Bearer " + ingest, "POST", "/v1/subjects/cust-1/restrict", "", 403, "forbidden"},
			{"ingest key unrestricts", "Bearer " + ingest, "POST", "/v1/subjects/cust-1/unrestrict", "", 403, "forbidden"},
			{"ingest key creates", "Bearer " + ingest, "POST", "/v1/notifications", body, 202, ""},
			{"ingest key lists consents", "Bearer " + ingest, "GET", "/v1/subjects/cust-1/consents", "", 200, ""},
			{"admin key creates too", "Bearer " + e.token, "POST", "/v1/notifications", mustJSON(t, emailRequest("auth-2")), 202, ""},
			{"scheme is case-insensitive", "bearer " + e.token, "GET", "/v1/subjects/cust-1/consents", "", 200, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := e.countRows("notifications")
				r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
				if c.header != "" {
					r.Header.Set("Authorization", c.header)
				}
				w := httptest.NewRecorder()
				e.handler.ServeHTTP(w, r)
				if c.code == "" {
					if w.Code != c.status {
						t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
					}
					return
				}
				wantError(t, w, c.status, c.code, "")
				if c.status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") != "Bearer" {
					t.Errorf("WWW-Authenticate = %q, want Bearer", w.Header().Get("WWW-Authenticate"))
				}
				if after := e.countRows("notifications"); after != before {
					t.Errorf("rows went from %d to %d on a refused request", before, after)
				}
			})
		}
		if sub, err := e.store.GetSubject(e.ctx(), e.tenant.ID, "cust-1"); err == nil && sub.Restricted {
			t.Errorf("an ingest key restricted a subject")
		}
	})
}
