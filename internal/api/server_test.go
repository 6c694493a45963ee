package api

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

func TestHealth(t *testing.T) {
	t.Parallel()
	var dbErr error = errors.New("dial tcp 10.0.0.5:5432: password authentication failed for user termind")
	cases := []struct {
		name   string
		path   string
		ready  func(context.Context) error
		status int
		body   string
	}{
		{"liveness", "/healthz", nil, 200, `{"status":"ok"}`},
		{"ready", "/readyz", func(context.Context) error { return nil }, 200, `{"status":"ready"}`},
		{"not ready", "/readyz", func(context.Context) error { return dbErr }, 503, `{"status":"unavailable","reason":"a dependency (store or queue) is not reachable"}`},
		{"liveness while not ready", "/healthz", func(context.Context) error { return dbErr }, 200, `{"status":"ok"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, store.DialectSQLite, func(_ *Config, d *Deps) { d.Ready = c.ready })
			w := e.do("GET", c.path, "", "")
			if w.Code != c.status || strings.TrimSpace(w.Body.String()) != c.body {
				t.Errorf("%s: %d %s, want %d %s", c.path, w.Code, w.Body, c.status, c.body)
			}
		})
	}
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	t.Parallel()
	e := newEnv(t, store.DialectSQLite)
	cases := []struct {
		method, path string
		status       int
		code         string
		allow        string
	}{
		{"GET", "/v1/nothing-here", 404, "not_found", ""},
		{"GET", "/", 404, "not_found", ""},
		{"PUT", "/v1/notifications", 405, "method_not_allowed", "POST"},
		{"GET", "/v1/consents", 405, "method_not_allowed", "POST"},
		{"PATCH", "/v1/notifications/ntf_1", 405, "method_not_allowed", ""},
		{"GET", "/webhooks/twilio/status", 405, "method_not_allowed", "POST"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			w := e.do(c.method, c.path, e.token, "")
			wantError(t, w, c.status, c.code, "")
			if c.allow != "" && !strings.Contains(w.Header().Get("Allow"), c.allow) {
				t.Errorf("Allow = %q, want it to list %s", w.Header().Get("Allow"), c.allow)
			}
		})
	}
}

// panickingStore fails in the middle of a handler.
type panickingStore struct{ *store.Store }

func (panickingStore) ListConsents(context.Context, string, string) ([]store.Consent, error) {
	panic("boom with cust-secret inside")
}

func TestPanicBecomes500(t *testing.T) {
	t.Parallel()
	s := storetest.New(t, store.DialectSQLite)
	e := newEnv(t, store.DialectSQLite, func(_ *Config, d *Deps) {
		d.Store = panickingStore{Store: s}
	})
	_, token := storetest.NewTenant(t, s)
	w := e.do("GET", "/v1/subjects/cust-secret/consents", token, "")
	wantError(t, w, 500, "internal", "")
	if strings.Contains(w.Body.String(), "boom") || strings.Contains(e.logs.String(), "cust-secret") {
		t.Errorf("panic text leaked: body %s logs %s", w.Body, e.logs)
	}
	// The server keeps serving.
	if w := e.do("GET", "/healthz", "", ""); w.Code != 200 {
		t.Errorf("after a panic /healthz = %d", w.Code)
	}
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, store.DialectSQLite)
	e.do("GET", "/v1/subjects/cust-private-77/consents", e.token, "")
	e.do("POST", "/v1/notifications", e.token, mustJSON(t, emailRequest("log-1")))
	e.do("GET", "/no/such/route", "", "")

	logs := e.logs.String()
	for _, secret := range []string{"cust-private-77", e.token, "jane@example.com", "Jane Doe"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
	type line struct {
		Msg        string `json:"msg"`
		Method     string `json:"method"`
		Route      string `json:"route"`
		Status     int    `json:"status"`
		DurationMS *int64 `json:"duration_ms"`
	}
	var got []line
	for _, raw := range strings.Split(strings.TrimSpace(logs), "\n") {
		var l line
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("log line %q: %v", raw, err)
		}
		if l.Msg == "http request" {
			got = append(got, l)
		}
	}
	want := []line{
		{Method: "GET", Route: "GET /v1/subjects/{id}/consents", Status: 200},
		{Method: "POST", Route: "POST /v1/notifications", Status: 202},
		{Method: "GET", Route: "", Status: 404},
	}
	if len(got) != len(want) {
		t.Fatalf("%d access lines, want %d:\n%s", len(got), len(want), logs)
	}
	for i, w := range want {
		g := got[i]
		if g.Method != w.Method || g.Route != w.Route || g.Status != w.Status || g.DurationMS == nil {
			t.Errorf("line %d = %+v, want %+v with duration_ms", i, g, w)
		}
	}
}
