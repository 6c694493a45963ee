package api

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/connectors/caldav/caldavtest"
	"github.com/termind/termind/internal/store"
)

// privateConnector reaches servers on loopback, as the daemon does with
// TERMIND_CALDAV_ALLOW_PRIVATE=true; tests need it for Radicale.
func privateConnector() CalDAVConnector {
	return NewCalDAVConnector(caldav.NewHTTPClient(caldav.Options{AllowPrivate: true, Timeout: 10 * time.Second}))
}

// publicConnector applies the address rules of production. It allows plain
// http so that the cases below prove the address rule, not the scheme rule.
func publicConnector() CalDAVConnector {
	return NewCalDAVConnector(caldav.NewHTTPClient(caldav.Options{AllowHTTP: true, Timeout: 5 * time.Second}))
}

func withCalDAV(c CalDAVConnector) envOption {
	return func(_ *Config, d *Deps) { d.CalDAV = c }
}

// caldavBody is a valid connect request for alice on r, as a map for tests
// to change one field at a time.
func caldavBody(url string) map[string]any {
	return map[string]any{
		"subject_id": "cust-1",
		"url":        url,
		"username":   "alice",
		"password":   "secret",
		"calendar":   "Office",
		"privacy":    "busy",
		"direction":  "both",
		"consent": map[string]any{
			"purposes":       []string{"calendar.read.busy", "calendar.write"},
			"policy_version": "2025-01",
			"source":         map[string]any{"ip": "203.0.113.7", "user_agent": "Mozilla/5.0"},
		},
	}
}

func withConsent(m map[string]any, purposes ...string) map[string]any {
	c := with(m["consent"].(map[string]any), "purposes", purposes)
	return with(m, "consent", c)
}

func TestConnectCalDAV(t *testing.T) {
	t.Parallel()
	r := caldavtest.StartRadicale(t)
	workURL := r.MakeCalendar(t, "alice", "Office")
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, withCalDAV(privateConnector()))
		ingest, ingestKey := e.ingestKey()

		// Found by name.
		w := e.do("POST", "/v1/connections/caldav", ingest, mustJSON(t, caldavBody(r.URL)))
		if w.Code != http.StatusCreated {
			t.Fatalf("connect: status %d: %s", w.Code, w.Body)
		}
		var got connectionView
		decodeBody(t, w, &got)
		if got.ID == "" || got.SubjectID != "cust-1" || got.Provider != "caldav" || got.CalendarURL != workURL ||
			got.CalendarName != "Office" || got.Privacy != "busy" || got.Direction != "both" || got.State != "active" ||
			got.Cleanup != "" || got.CreatedAt == "" {
			t.Errorf("view %+v (calendar want %s)", got, workURL)
		}
		if strings.Contains(w.Body.String(), "secret") || strings.Contains(w.Body.String(), "password") {
			t.Errorf("the view shows credentials: %s", w.Body)
		}

		// Consents granted on the connection, audit entry, sealed credentials.
		cs, err := e.store.ListConsents(e.ctx(), e.tenant.ID, "cust-1")
		if err != nil || len(cs) != 2 {
			t.Fatalf("ledger: %d entries, %v", len(cs), err)
		}
		for i, c := range cs {
			want := []string{"calendar.read.busy", "calendar.write"}[i]
			if c.Purpose != want || c.Decision != "granted" || c.ConnectionID != got.ID || c.PolicyVersion != "2025-01" ||
				c.Actor != "api_key:"+ingestKey.ID || c.SourceIP != "203.0.113.7" || c.UserAgent != "Mozilla/5.0" {
				t.Errorf("ledger[%d] = %+v", i, c)
			}
		}
		a := e.findAudit("cust-1", "connection.create")
		if a.Actor != "api_key:"+ingestKey.ID || a.TargetID != got.ID || a.SourceIP != "203.0.113.7" {
			t.Errorf("audit %+v", a)
		}
		var sealed string
		if err := e.store.DB().QueryRowContext(e.ctx(), "SELECT credentials FROM connections WHERE id = "+placeholder(dialect), got.ID).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if sealed == "" || strings.Contains(sealed, "secret") || strings.Contains(sealed, "alice") {
			t.Errorf("credentials at rest = %q, want a sealed envelope", sealed)
		}
		plain, err := e.store.ConnectionCredentials(e.ctx(), got.ID)
		if err != nil {
			t.Fatal(err)
		}
		var creds caldavCredentials
		if err := json.Unmarshal(plain, &creds); err != nil || creds != (caldavCredentials{"alice", "secret"}) {
			t.Errorf("credentials %s (%v)", plain, err)
		}

		// Created with create_calendar, then visible on the server: a
		// second connect finds it by name without creating it.
		name := "Termind " + dialect
		body := with(caldavBody(r.URL), "calendar", nil)
		body["create_calendar"] = name
		body["subject_id"] = "cust-2"
		w = e.do("POST", "/v1/connections/caldav", ingest, mustJSON(t, body))
		if w.Code != http.StatusCreated {
			t.Fatalf("create calendar: status %d: %s", w.Code, w.Body)
		}
		var created connectionView
		decodeBody(t, w, &created)
		if created.CalendarName != name || created.CalendarURL == workURL {
			t.Errorf("created %+v", created)
		}
		body = with(caldavBody(r.URL), "calendar", name)
		body["subject_id"] = "cust-3"
		w = e.do("POST", "/v1/connections/caldav", ingest, mustJSON(t, body))
		var again connectionView
		decodeBody(t, w, &again)
		if w.Code != http.StatusCreated || again.CalendarURL != created.CalendarURL {
			t.Errorf("reconnect by name: %d %+v, want calendar %s", w.Code, again, created.CalendarURL)
		}
		if n := e.countRows("connections"); n != 3 {
			t.Errorf("%d connections stored, want 3", n)
		}
		if logs := e.logs.String(); strings.Contains(logs, "secret") || strings.Contains(logs, "127.0.0.1") {
			t.Errorf("the log holds a password or an address: %s", logs)
		}
	})
}

// placeholder is the first bind parameter of the dialect.
func placeholder(dialect string) string {
	if dialect == store.DialectPostgres {
		return "$1"
	}
	return "?"
}

func TestConnectCalDAVRefusals(t *testing.T) {
	t.Parallel()
	r := caldavtest.StartRadicale(t)
	r.MakeCalendar(t, "alice", "Office")

	// A web server that is no CalDAV server.
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html><body>Hello</body></html>"))
	}))
	t.Cleanup(web.Close)

	// A loopback server that must never be reached by the public connector.
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(target.Close)
	port := target.URL[strings.LastIndex(target.URL, ":")+1:]

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := "http://" + l.Addr().String() + "/"
	l.Close()

	good := caldavBody(r.URL)
	cases := []struct {
		name    string
		public  bool // use the connector with production address rules
		body    map[string]any
		status  int
		code    string
		field   string
		message string // "" = any
	}{
		{"wrong password", false, with(good, "password", "wrong"), 422, "invalid_field", "password", "credentials rejected by the server"},
		{"unknown user", false, with(good, "username", "mallory"), 422, "invalid_field", "password", "credentials rejected by the server"},
		{"wrong URL path", false, with(good, "url", r.URL+"alice/offce/"), 422, "invalid_field", "url", "not a CalDAV server"},
		{"not a CalDAV server", false, with(good, "url", web.URL+"/"), 422, "invalid_field", "url", "not a CalDAV server"},
		{"closed port", false, with(good, "url", closedPort), 502, "upstream_unreachable", "url", ""},
		{"calendar not found", false, with(good, "calendar", "Holidays"), 422, "invalid_field", "calendar", ""},
		{"credentials in the URL", false, with(good, "url", "http://alice:secret@127.0.0.1:1/"), 422, "invalid_field", "url", ""},

		{"SSRF loopback", true, with(good, "url", target.URL+"/"), 422, "invalid_field", "url", ""},
		{"SSRF private", true, with(good, "url", "http://10.0.0.1/"), 422, "invalid_field", "url", ""},
		{"SSRF metadata", true, with(good, "url", "http://169.254.169.254/"), 422, "invalid_field", "url", ""},
		{"SSRF IPv6 loopback", true, with(good, "url", "http://[::1]:"+port+"/"), 422, "invalid_field", "url", ""},
		{"SSRF localhost", true, with(good, "url", "http://localhost:"+port+"/"), 422, "invalid_field", "url", ""},
		{"SSRF mapped IPv4", true, with(good, "url", "http://[::ffff:127.0.0.1]:"+port+"/"), 422, "invalid_field", "url", ""},

		{"subject_id missing", false, with(good, "subject_id", nil), 422, "invalid_field", "subject_id", ""},
		{"url missing", false, with(good, "url", nil), 422, "invalid_field", "url", ""},
		{"url relative", false, with(good, "url", "dav.example.com/alice"), 422, "invalid_field", "url", ""},
		{"username missing", false, with(good, "username", nil), 422, "invalid_field", "username", ""},
		{"password missing", false, with(good, "password", nil), 422, "invalid_field", "password", ""},
		{"password with a newline", false, with(good, "password", "se\ncret"), 422, "invalid_field", "password", ""},
		{"create_calendar too long", false, with(good, "create_calendar", strings.Repeat("c", 201)), 422, "invalid_field", "create_calendar", ""},
		{"privacy unknown", false, with(good, "privacy", "everything"), 422, "invalid_field", "privacy", ""},
		{"direction unknown", false, with(good, "direction", "sideways"), 422, "invalid_field", "direction", ""},
		{"consent missing", false, with(good, "consent", nil), 422, "invalid_field", "consent.purposes", ""},
		{"purpose not a calendar purpose", false, withConsent(good, "notify.sms"), 422, "invalid_field", "consent.purposes", ""},
		{"purpose twice", false, withConsent(good, "calendar.write", "calendar.write"), 422, "invalid_field", "consent.purposes", ""},
		{"privacy exceeds consent", false, with(withConsent(good, "calendar.read.busy", "calendar.write"), "privacy", "details"), 422, "invalid_field", "consent.purposes", ""},
		{"direction exceeds consent", false, withConsent(good, "calendar.read.busy"), 422, "invalid_field", "consent.purposes", ""},
		{"policy_version missing", false, with(good, "consent", with(good["consent"].(map[string]any), "policy_version", nil)), 422, "invalid_field", "consent.policy_version", ""},
		{"source ip invalid", false, with(good, "consent", with(good["consent"].(map[string]any), "source", map[string]any{"ip": "nowhere"})), 422, "invalid_field", "consent.source.ip", ""},
		{"unknown field", false, with(good, "color", "red"), 400, "unknown_field", "color", ""},
	}
	forEachDialect(t, func(t *testing.T, dialect string) {
		private := newEnv(t, dialect, withCalDAV(privateConnector()))
		public := newEnv(t, dialect, withCalDAV(publicConnector()))
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e := private
				if c.public {
					e = public
				}
				start := time.Now()
				w := e.do("POST", "/v1/connections/caldav", e.token, mustJSON(t, c.body))
				wantError(t, w, c.status, c.code, c.field)
				if c.message != "" {
					var got errorBody
					decodeBody(t, w, &got)
					if !strings.HasPrefix(got.Error.Message, c.message) {
						t.Errorf("message = %q, want %q", got.Error.Message, c.message)
					}
				}
				if strings.Contains(w.Body.String(), "secret") {
					t.Errorf("the answer repeats the password: %s", w.Body)
				}
				if c.public && time.Since(start) > 2*time.Second {
					t.Errorf("refusal took %v: the address was dialed instead of refused", time.Since(start))
				}
				e.wantNothingStored(t)
			})
		}
		for _, e := range []*testEnv{private, public} {
			if logs := e.logs.String(); strings.Contains(logs, "secret") || strings.Contains(logs, "169.254") {
				t.Errorf("the log holds a password or an address: %s", logs)
			}
		}
		if n := hits.Load(); n != 0 {
			t.Errorf("a refused address received %d requests", n)
		}
	})
}

// countingConnector records Connect calls and fails them, for tests of the
// rules that run before any I/O.
type countingConnector struct {
	mu    sync.Mutex
	calls int
}

func (c *countingConnector) Connect(context.Context, caldav.ConnectParams) (caldav.Calendar, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return caldav.Calendar{}, &caldav.Error{Kind: caldav.ErrNotCalDAV, Reason: "test server"}
}

func (c *countingConnector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// TestConnectionConsentCoverage: privacy and direction never exceed the
// purposes granted. A refusal names consent.purposes and the missing
// purpose and never reaches the server; an allowed combination does.
func TestConnectionConsentCoverage(t *testing.T) {
	t.Parallel()
	const (
		busy    = "calendar.read.busy"
		details = "calendar.read.details"
		write   = "calendar.write"
	)
	cases := []struct {
		privacy, direction string
		purposes           []string
		missing            string // "" = allowed
	}{
		{"busy", "import", []string{busy}, ""},
		{"busy", "import", []string{details}, ""},
		{"busy", "import", []string{write}, busy},
		{"details", "import", []string{busy}, details},
		{"details", "import", []string{details}, ""},
		{"full", "import", []string{busy, write}, details},
		{"full", "import", []string{details}, ""},
		{"busy", "export", []string{write}, ""},
		{"busy", "export", []string{busy}, write},
		{"details", "export", []string{details}, write},
		{"busy", "both", []string{busy}, write},
		{"busy", "both", []string{write}, busy},
		{"busy", "both", []string{busy, write}, ""},
		{"details", "both", []string{busy, write}, details},
		{"full", "both", []string{details, write}, ""},
	}
	for _, c := range cases {
		name := c.privacy + "/" + c.direction + "/" + strings.Join(c.purposes, "+")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			conn := &countingConnector{}
			e := newEnv(t, store.DialectSQLite, withCalDAV(conn))
			body := caldavBody("https://dav.example.com/")
			body["privacy"], body["direction"] = c.privacy, c.direction
			w := e.do("POST", "/v1/connections/caldav", e.token, mustJSON(t, withConsent(body, c.purposes...)))
			if c.missing == "" {
				wantError(t, w, 422, "invalid_field", "url") // the test connector's answer
				if conn.count() != 1 {
					t.Errorf("connector called %d times, want 1", conn.count())
				}
			} else {
				wantError(t, w, 422, "invalid_field", "consent.purposes")
				var got errorBody
				decodeBody(t, w, &got)
				if !strings.Contains(got.Error.Message, c.missing) {
					t.Errorf("message %q does not name %s", got.Error.Message, c.missing)
				}
				if conn.count() != 0 {
					t.Errorf("connector called %d times for a refused request", conn.count())
				}
			}
			e.wantNothingStored(t)
		})
	}
}

func TestConnectionRoutesNotConfigured(t *testing.T) {
	t.Parallel()
	e := newEnv(t, store.DialectSQLite)
	for _, c := range []struct{ method, path, token string }{
		{"POST", "/v1/connections/caldav", e.token},
		{"POST", "/v1/connections/google/authorize", e.token},
		{"GET", "/oauth/google/callback?state=x&code=y", ""},
	} {
		w := e.do(c.method, c.path, c.token, mustJSON(t, caldavBody("https://dav.example.com/")))
		wantError(t, w, http.StatusServiceUnavailable, "not_configured", "")
	}
	e.wantNothingStored(t)
	// The notification API keeps working without them.
	if id := e.createOK(mustJSON(t, emailRequest("k-1"))); id == "" {
		t.Error("no notification id")
	}
}

func TestListAndShowConnections(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		ingest, _ := e.ingestKey()
		a1 := e.seedConnection("cust-a", store.ProviderCalDAV, "calendar.read.busy", "calendar.write")
		a2 := e.seedConnection("cust-a", store.ProviderGoogle, "calendar.read.busy")
		b1 := e.seedConnection("cust-b", store.ProviderCalDAV, "calendar.read.busy")

		other, otherToken := newTenantOn(t, e.store)
		otherConn, err := e.store.CreateConnection(e.ctx(), store.Connection{
			TenantID: other.ID, SubjectID: "cust-a", Provider: store.ProviderCalDAV, CalendarURL: "https://dav.example.com/x/",
			Privacy: store.PrivacyBusy, Direction: store.DirectionImport,
		}, []byte(`{}`), nil, store.AuditEntry{Actor: "cli"})
		if err != nil {
			t.Fatal(err)
		}

		ids := func(w *httptest.ResponseRecorder) []string {
			t.Helper()
			if w.Code != http.StatusOK {
				t.Fatalf("list: status %d: %s", w.Code, w.Body)
			}
			var list connectionList
			decodeBody(t, w, &list)
			out := []string{}
			for _, c := range list.Items {
				out = append(out, c.ID)
			}
			return out
		}
		lists := []struct {
			query string
			want  []string
		}{
			{"?subject_id=cust-a", []string{a1.ID, a2.ID}},
			{"?subject_id=cust-b", []string{b1.ID}},
			{"?subject_id=nobody", []string{}},
			{"", []string{a1.ID, a2.ID, b1.ID}},
		}
		for _, l := range lists {
			got := ids(e.do("GET", "/v1/connections"+l.query, ingest, ""))
			if strings.Join(got, ",") != strings.Join(l.want, ",") {
				t.Errorf("list %q = %v, want %v", l.query, got, l.want)
			}
		}
		wantError(t, e.do("GET", "/v1/connections?subject_id="+strings.Repeat("s", 201), ingest, ""), 422, "invalid_field", "subject_id")

		w := e.do("GET", "/v1/connections/"+a1.ID, ingest, "")
		if w.Code != http.StatusOK {
			t.Fatalf("show: %d %s", w.Code, w.Body)
		}
		var v connectionView
		decodeBody(t, w, &v)
		if v.ID != a1.ID || v.SubjectID != "cust-a" || v.Provider != "caldav" || v.State != "active" || v.Privacy != "busy" ||
			v.Direction != "both" || v.CalendarURL != a1.CalendarURL || v.CreatedAt == "" || v.UpdatedAt == "" ||
			v.RevokeRequestedAt != "" || v.RevokedAt != "" || v.Cleanup != "" {
			t.Errorf("view %+v", v)
		}
		var raw map[string]any
		decodeBody(t, w, &raw)
		for _, field := range []string{"id", "subject_id", "provider", "calendar_url", "calendar_name", "privacy", "direction", "state",
			"state_reason", "last_sync_at", "last_error", "created_at", "updated_at", "revoke_requested_at", "revoked_at", "cleanup", "sync", "blocking"} {
			if _, ok := raw[field]; !ok {
				t.Errorf("view lacks %q", field)
			}
		}
		if len(raw) != 18 || strings.Contains(w.Body.String(), "seeded-password") {
			t.Errorf("view has other fields or credentials: %s", w.Body)
		}

		// Another tenant's connection does not exist for this key, and
		// this tenant's not for the other.
		wantError(t, e.do("GET", "/v1/connections/"+otherConn.ID, ingest, ""), 404, "not_found", "")
		wantError(t, e.do("GET", "/v1/connections/"+a1.ID, otherToken, ""), 404, "not_found", "")
		wantError(t, e.do("GET", "/v1/connections/con_nope", ingest, ""), 404, "not_found", "")
		if got := ids(e.do("GET", "/v1/connections", otherToken, "")); len(got) != 1 || got[0] != otherConn.ID {
			t.Errorf("other tenant lists %v", got)
		}
	})
}

// newTenantOn creates a second tenant with an admin key on s.
func newTenantOn(t *testing.T, s *store.Store) (store.Tenant, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tn, err := s.CreateTenant(ctx, "Other "+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := s.CreateAPIKey(ctx, tn.ID, store.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	return tn, token
}

func TestRevokeConnection(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		ingest, ingestKey := e.ingestKey()
		c := e.seedConnection("cust-r", store.ProviderCalDAV, "calendar.read.busy", "calendar.write")
		_, otherToken := newTenantOn(t, e.store)

		// Another tenant cannot revoke it.
		wantError(t, e.do("POST", "/v1/connections/"+c.ID+"/revoke", otherToken, ""), 404, "not_found", "")
		wantError(t, e.do("POST", "/v1/connections/con_nope/revoke", ingest, ""), 404, "not_found", "")
		// Bad bodies are refused before anything changes.
		wantError(t, e.do("POST", "/v1/connections/"+c.ID+"/revoke", ingest, `{"source":{"ip":"x"}}`), 422, "invalid_field", "source.ip")
		wantError(t, e.do("POST", "/v1/connections/"+c.ID+"/revoke", ingest, `{"why":"x"}`), 400, "unknown_field", "why")
		if len(e.queue.revoked()) != 0 {
			t.Fatalf("enqueued %v before any revocation", e.queue.revoked())
		}

		body := `{"reason":"customer asked","policy_version":"2025-02","source":{"ip":"198.51.100.9","user_agent":"Mozilla/5.0"}}`
		w := e.do("POST", "/v1/connections/"+c.ID+"/revoke", ingest, body)
		if w.Code != http.StatusAccepted {
			t.Fatalf("revoke: %d %s", w.Code, w.Body)
		}
		var acc revokeAccepted
		decodeBody(t, w, &acc)
		if acc.ID != c.ID || acc.State != "revoking" {
			t.Errorf("answer %+v", acc)
		}
		if got := e.queue.revoked(); len(got) != 1 || got[0] != c.ID {
			t.Errorf("enqueued revokes %v, want [%s]", got, c.ID)
		}

		// Ledger: a revoked decision for each granted purpose.
		cs, err := e.store.ListConsents(e.ctx(), e.tenant.ID, "cust-r")
		if err != nil {
			t.Fatal(err)
		}
		revoked := map[string]store.Consent{}
		for _, cn := range cs {
			if cn.Decision == "revoked" {
				revoked[cn.Purpose] = cn
			}
		}
		for _, p := range []string{"calendar.read.busy", "calendar.write"} {
			r, ok := revoked[p]
			if !ok || r.ConnectionID != c.ID || r.Actor != "api_key:"+ingestKey.ID || r.PolicyVersion != "2025-02" || r.SourceIP != "198.51.100.9" {
				t.Errorf("ledger revocation of %s: %+v (found %v)", p, r, ok)
			}
		}
		a := e.findAudit("cust-r", "connection.revoke")
		if a.Actor != "api_key:"+ingestKey.ID || a.TargetID != c.ID || a.SourceIP != "198.51.100.9" {
			t.Errorf("audit %+v", a)
		}

		w = e.do("GET", "/v1/connections/"+c.ID, ingest, "")
		var v connectionView
		decodeBody(t, w, &v)
		if v.State != "revoking" || v.Cleanup != "pending" || v.RevokeRequestedAt == "" || v.StateReason != "customer asked" {
			t.Errorf("view while revoking %+v", v)
		}

		// Revoking again: still revoking, enqueued again (the task id
		// makes that harmless), and the ledger does not grow.
		before := e.countRows("consents")
		w = e.do("POST", "/v1/connections/"+c.ID+"/revoke", ingest, "")
		if w.Code != http.StatusAccepted {
			t.Fatalf("second revoke: %d %s", w.Code, w.Body)
		}
		if got := e.queue.revoked(); len(got) != 2 {
			t.Errorf("enqueued %v", got)
		}
		if n := e.countRows("consents"); n != before {
			t.Errorf("second revoke: %d consents, want %d", n, before)
		}

		// Once the cleanup is done: 200 with the view.
		if err := e.store.FinishRevocation(e.ctx(), c.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		w = e.do("POST", "/v1/connections/"+c.ID+"/revoke", e.token, "")
		if w.Code != http.StatusOK {
			t.Fatalf("revoke a revoked connection: %d %s", w.Code, w.Body)
		}
		decodeBody(t, w, &v)
		if v.State != "revoked" || v.Cleanup != "done" || v.RevokedAt == "" {
			t.Errorf("view when revoked %+v", v)
		}
		if got := e.queue.revoked(); len(got) != 2 {
			t.Errorf("a revoked connection was enqueued again: %v", got)
		}
	})
}

func TestRevokeConnectionEnqueueFails(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		c := e.seedConnection("cust-q", store.ProviderCalDAV, "calendar.read.busy")
		e.queue.setFailing(true)
		w := e.do("POST", "/v1/connections/"+c.ID+"/revoke", e.token, "")
		if w.Code != http.StatusAccepted {
			t.Fatalf("revoke: %d %s", w.Code, w.Body)
		}
		got, err := e.store.GetConnection(e.ctx(), e.tenant.ID, c.ID)
		if err != nil || got.State != store.ConnRevoking {
			t.Errorf("state %q (%v), want revoking: the store is the record", got.State, err)
		}
		if !strings.Contains(e.logs.String(), "enqueue revoke failed") || !strings.Contains(e.logs.String(), c.ID) {
			t.Errorf("the failed enqueue was not logged: %s", e.logs)
		}
	})
}
