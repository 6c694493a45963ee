package api

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/connectors/google"
	"github.com/termind/termind/connectors/google/googletest"
	"github.com/termind/termind/internal/store"
)

const (
	callbackPath  = "/oauth/google/callback"
	platformAfter = "https://platform.example.com/calendar/done?tab=1"
)

// googleEnv is an API whose Google client talks to the fake.
type googleEnv struct {
	*testEnv
	fake     *googletest.Server
	stateKey []byte
}

// newGoogleEnv starts the fake and an API using it. wrap, if not nil,
// stands between the API and the real client (to play a user who unticks
// scopes).
func newGoogleEnv(t *testing.T, dialect string, wrap func(*google.OAuth) GoogleOAuth, opts ...envOption) googleEnv {
	t.Helper()
	fake := googletest.Start(t)
	fake.RegisterRedirect(testPublicURL + callbackPath)
	oauth, err := google.NewOAuth(google.OAuthConfig{
		ClientID:     fake.ClientID(),
		ClientSecret: fake.ClientSecret(),
		RedirectURL:  testPublicURL + callbackPath,
		AuthURL:      fake.AuthURL(),
		TokenURL:     fake.TokenURL(),
		RevokeURL:    fake.RevokeURL(),
		HTTPClient:   fake.Client(),
	})
	if err != nil {
		t.Fatalf("NewOAuth: %v", err)
	}
	var client GoogleOAuth = oauth
	if wrap != nil {
		client = wrap(oauth)
	}
	key := randomKey(t)
	e := newEnv(t, dialect, append([]envOption{func(c *Config, d *Deps) {
		c.OAuthStateKey = key
		d.Google = client
	}}, opts...)...)
	return googleEnv{testEnv: e, fake: fake, stateKey: key}
}

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func authorizeBody(subject string, purposes ...string) map[string]any {
	if len(purposes) == 0 {
		purposes = []string{"calendar.read.busy", "calendar.write"}
	}
	return map[string]any{
		"subject_id": subject,
		"privacy":    "busy",
		"direction":  "both",
		"consent": map[string]any{
			"purposes":       purposes,
			"policy_version": "2025-01",
			"source":         map[string]any{"ip": "203.0.113.7", "user_agent": "Mozilla/5.0"},
		},
		"redirect_after": platformAfter,
	}
}

// authorize starts a flow and returns the consent screen's URL.
func (g googleEnv) authorize(t *testing.T, token string, body map[string]any) string {
	t.Helper()
	w := g.do("POST", "/v1/connections/google/authorize", token, mustJSON(t, body))
	if w.Code != http.StatusOK {
		t.Fatalf("authorize: status %d: %s", w.Code, w.Body)
	}
	var got googleAuthorizeResponse
	decodeBody(t, w, &got)
	if !strings.HasPrefix(got.AuthURL, g.fake.AuthURL()) {
		t.Fatalf("auth_url %q does not point at the consent screen %s", got.AuthURL, g.fake.AuthURL())
	}
	exp, err := time.Parse(time.RFC3339, got.ExpiresAt)
	if err != nil || exp.Before(g.now.Add(14*time.Minute)) || exp.After(g.now.Add(15*time.Minute)) {
		t.Errorf("expires_at %q (%v), want about 15 minutes from now", got.ExpiresAt, err)
	}
	return got.AuthURL
}

// screen plays the person on Google's consent screen and returns where
// Google sends the browser.
func (g googleEnv) screen(t *testing.T, authURL string, deny bool) string {
	t.Helper()
	back, err := g.fake.Authorize(authURL, deny)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	if !strings.HasPrefix(back, testPublicURL+callbackPath+"?") {
		t.Fatalf("Google redirects to %q, not to the callback", back)
	}
	return back
}

// callback is the browser arriving at the callback URL.
func (g googleEnv) callback(t *testing.T, back string) *httptest.ResponseRecorder {
	t.Helper()
	u, err := url.Parse(back)
	if err != nil {
		t.Fatal(err)
	}
	return g.do("GET", u.RequestURI(), "", "")
}

// wantRedirect asserts a 303 to redirect_after and returns its query.
func wantRedirect(t *testing.T, w *httptest.ResponseRecorder, status string) url.Values {
	t.Helper()
	if w.Code != http.StatusSeeOther {
		t.Fatalf("callback: status %d, want 303 (body %s)", w.Code, w.Body)
	}
	loc, err := url.Parse(w.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if loc.Scheme != "https" || loc.Host != "platform.example.com" || loc.Path != "/calendar/done" {
		t.Fatalf("Location %s is not redirect_after", loc)
	}
	q := loc.Query()
	if q.Get("tab") != "1" || q.Get("status") != status {
		t.Fatalf("Location query %v, want tab=1 and status=%s", q, status)
	}
	for k := range q {
		if k != "tab" && k != "status" && k != "connection_id" {
			t.Errorf("Location carries %q", k)
		}
	}
	return q
}

// ledger returns a subject's decisions as "purpose=decision", oldest first.
func (e *testEnv) ledger(subject string) []string {
	e.t.Helper()
	cs, err := e.store.ListConsents(e.ctx(), e.tenant.ID, subject)
	if err != nil {
		e.t.Fatal(err)
	}
	out := []string{}
	for _, c := range cs {
		out = append(out, c.Purpose+"="+c.Decision)
	}
	return out
}

func TestGoogleConnectFlow(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		g := newGoogleEnv(t, dialect, nil)
		ingest, ingestKey := g.ingestKey()

		authURL := g.authorize(t, ingest, authorizeBody("cust-g"))
		g.wantCounts(t, map[string]int{"oauth_states": 1, "audit": 1})
		back := g.screen(t, authURL, false)
		w := g.callback(t, back)
		q := wantRedirect(t, w, "connected")
		id := q.Get("connection_id")

		c, err := g.store.GetConnection(g.ctx(), g.tenant.ID, id)
		if err != nil {
			t.Fatalf("connection %q: %v", id, err)
		}
		if c.Provider != "google" || c.CalendarURL != "primary" || c.SubjectID != "cust-g" || c.State != "active" ||
			c.Privacy != "busy" || c.Direction != "both" {
			t.Errorf("connection %+v", c)
		}
		cs, err := g.store.ListConsents(g.ctx(), g.tenant.ID, "cust-g")
		if err != nil || len(cs) != 2 {
			t.Fatalf("ledger %d entries (%v)", len(cs), err)
		}
		for i, cn := range cs {
			want := []string{"calendar.read.busy", "calendar.write"}[i]
			if cn.Purpose != want || cn.Decision != "granted" || cn.ConnectionID != id || cn.Actor != "api_key:"+ingestKey.ID ||
				cn.PolicyVersion != "2025-01" || cn.SourceIP != "203.0.113.7" || cn.UserAgent != "Mozilla/5.0" {
				t.Errorf("ledger[%d] = %+v", i, cn)
			}
		}
		if got := g.auditActions("cust-g"); !slices.Equal(got, []string{"connection.authorize", "connection.create"}) {
			t.Errorf("audit %v", got)
		}
		if a := g.findAudit("cust-g", "connection.create"); a.Actor != "api_key:"+ingestKey.ID || a.TargetID != id || a.SourceIP != "203.0.113.7" {
			t.Errorf("audit %+v", a)
		}
		g.wantCounts(t, map[string]int{"connections": 1, "consents": 2, "audit": 2})

		// The token is stored sealed, and it is the one Google issued.
		plain, err := g.store.ConnectionCredentials(g.ctx(), id)
		if err != nil {
			t.Fatal(err)
		}
		var creds googleCredentials
		if err := json.Unmarshal(plain, &creds); err != nil {
			t.Fatal(err)
		}
		if creds.RefreshToken == "" || !g.fake.ValidAccessToken(creds.AccessToken) || creds.Expiry.IsZero() {
			t.Errorf("stored token: refresh set %v, access valid %v, expiry %v", creds.RefreshToken != "", g.fake.ValidAccessToken(creds.AccessToken), creds.Expiry)
		}
		var sealed string
		if err := g.store.DB().QueryRowContext(g.ctx(), "SELECT credentials FROM connections WHERE id = "+placeholder(dialect), id).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(sealed, creds.RefreshToken) || strings.Contains(sealed, creds.AccessToken) || strings.Contains(sealed, "refresh_token") {
			t.Error("the token is stored in plaintext")
		}
		if logs := g.logs.String(); strings.Contains(logs, creds.AccessToken) || strings.Contains(logs, creds.RefreshToken) {
			t.Error("a token was logged")
		}

		// The same callback again: the state was used.
		wantError(t, g.callback(t, back), http.StatusBadRequest, "invalid_state", "state")
		g.wantCounts(t, map[string]int{"connections": 1, "consents": 2, "audit": 2})
	})
}

func TestGoogleConsentDenied(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		g := newGoogleEnv(t, dialect, nil)
		authURL := g.authorize(t, g.token, authorizeBody("cust-d"))
		wantRedirect(t, g.callback(t, g.screen(t, authURL, true)), "denied")

		if got := g.ledger("cust-d"); !slices.Equal(got, []string{"calendar.read.busy=refused", "calendar.write=refused"}) {
			t.Errorf("ledger %v", got)
		}
		if got := g.auditActions("cust-d"); !slices.Equal(got, []string{"connection.authorize", "consent.refused", "consent.refused"}) {
			t.Errorf("audit %v", got)
		}
		g.wantCounts(t, map[string]int{"consents": 2, "audit": 3})
	})
}

func TestGoogleCallbackBadState(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		g := newGoogleEnv(t, dialect, nil)
		authURL := g.authorize(t, g.token, authorizeBody("cust-s"))
		back := g.screen(t, authURL, false)
		u, _ := url.Parse(back)
		genuine := u.Query().Get("state")
		code := u.Query().Get("code")
		signed, err := google.VerifyState(g.stateKey, genuine, g.now)
		if err != nil {
			t.Fatal(err)
		}
		forged, err := google.SignState(randomKey(t), signed)
		if err != nil {
			t.Fatal(err)
		}
		payload, sig, _ := strings.Cut(genuine, ".")
		flip := func(s string) string { // change the first character
			if s[0] == 'A' {
				return "B" + s[1:]
			}
			return "A" + s[1:]
		}

		cases := []struct {
			name  string
			state string
			skew  time.Duration
		}{
			{"tampered signature", payload + "." + flip(sig), 0},
			{"tampered payload", flip(payload) + "." + sig, 0},
			{"malformed", "not-a-state", 0},
			{"missing", "", 0},
			{"signed with another key", forged, 0},
			{"expired", genuine, 16 * time.Minute},
		}
		before := g.counts()
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				start := g.now
				g.now = start.Add(c.skew)
				defer func() { g.now = start }()
				q := url.Values{"state": {c.state}, "code": {code}}
				wantError(t, g.do("GET", callbackPath+"?"+q.Encode(), "", ""), http.StatusBadRequest, "invalid_state", "state")
				g.wantCounts(t, before)
			})
		}
		// None of that used up the genuine state.
		wantRedirect(t, g.callback(t, back), "connected")
	})
}

// untickingOAuth asks Google for fewer scopes than the purposes need, as
// if the person unticked a box on the consent screen. Revoke is promoted
// from the real client.
type untickingOAuth struct {
	*google.OAuth
	scopes []string
}

func (u untickingOAuth) AuthCodeURL(state, verifier string, _ []string) string {
	return u.OAuth.AuthCodeURL(state, verifier, u.scopes)
}

func TestGoogleInsufficientScope(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		g := newGoogleEnv(t, dialect, func(o *google.OAuth) GoogleOAuth {
			return untickingOAuth{OAuth: o, scopes: []string{google.ScopeEventsReadOnly}}
		})
		authURL := g.authorize(t, g.token, authorizeBody("cust-i"))
		wantRedirect(t, g.callback(t, g.screen(t, authURL, false)), "insufficient_scope")

		if got := g.ledger("cust-i"); !slices.Equal(got, []string{"calendar.write=refused"}) {
			t.Errorf("ledger %v, want only the unticked purpose refused", got)
		}
		g.wantCounts(t, map[string]int{"consents": 1, "audit": 2})
		if n := g.fake.RevokeCalls(); n != 1 {
			t.Errorf("%d revoke calls, want 1: the unused token goes back to Google", n)
		}
	})
}

func TestGoogleInvalidGrant(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		g := newGoogleEnv(t, dialect, nil)
		authURL := g.authorize(t, g.token, authorizeBody("cust-x"))
		u, _ := url.Parse(g.screen(t, authURL, false))
		q := u.Query()
		q.Set("code", "not-the-code")
		wantRedirect(t, g.do("GET", callbackPath+"?"+q.Encode(), "", ""), "error")

		a := g.findAudit("cust-x", "connection.authorize_failed")
		if !strings.Contains(a.Detail, "invalid_grant") || strings.Contains(a.Detail, "not-the-code") {
			t.Errorf("audit detail %q", a.Detail)
		}
		g.wantCounts(t, map[string]int{"audit": 2})
	})
}

func TestGoogleAuthorizeRefusals(t *testing.T) {
	t.Parallel()
	good := authorizeBody("cust-v")
	cases := []struct {
		name   string
		body   map[string]any
		status int
		code   string
		field  string
	}{
		{"subject missing", with(good, "subject_id", nil), 422, "invalid_field", "subject_id"},
		{"privacy exceeds consent", with(good, "privacy", "details"), 422, "invalid_field", "consent.purposes"},
		{"direction exceeds consent", withConsent(good, "calendar.read.busy"), 422, "invalid_field", "consent.purposes"},
		{"not a calendar purpose", withConsent(good, "calendar.write", "notify.sms"), 422, "invalid_field", "consent.purposes"},
		{"no purposes", withConsent(good), 422, "invalid_field", "consent.purposes"},
		{"redirect_after missing", with(good, "redirect_after", nil), 422, "invalid_field", "redirect_after"},
		{"redirect_after plain http", with(good, "redirect_after", "http://platform.example.com/done"), 422, "invalid_field", "redirect_after"},
		{"redirect_after relative", with(good, "redirect_after", "/calendar/done"), 422, "invalid_field", "redirect_after"},
		{"redirect_after javascript", with(good, "redirect_after", "javascript:alert(1)"), 422, "invalid_field", "redirect_after"},
		{"redirect_after with credentials", with(good, "redirect_after", "https://a:b@platform.example.com/"), 422, "invalid_field", "redirect_after"},
		{"redirect_after with fragment", with(good, "redirect_after", "https://platform.example.com/#x"), 422, "invalid_field", "redirect_after"},
		{"redirect_after scheme-relative", with(good, "redirect_after", "//platform.example.com/"), 422, "invalid_field", "redirect_after"},
		{"redirect_after http to a private address", with(good, "redirect_after", "http://10.0.0.1/"), 422, "invalid_field", "redirect_after"},
	}
	forEachDialect(t, func(t *testing.T, dialect string) {
		g := newGoogleEnv(t, dialect, nil)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				wantError(t, g.do("POST", "/v1/connections/google/authorize", g.token, mustJSON(t, c.body)), c.status, c.code, c.field)
				g.wantNothingStored(t)
			})
		}
		// http is fine for a loopback host (a platform in development).
		for _, after := range []string{"http://localhost:3000/cb", "http://127.0.0.1:8080/cb", "http://[::1]/cb"} {
			g.authorize(t, g.token, with(good, "redirect_after", after))
		}
		g.wantCounts(t, map[string]int{"oauth_states": 3, "audit": 3})
	})
}

// TestGoogleNeedsStateKey: a missing or short key disables the flow rather
// than signing with a weak key.
func TestGoogleNeedsStateKey(t *testing.T) {
	t.Parallel()
	fake := googletest.Start(t)
	oauth, err := google.NewOAuth(google.OAuthConfig{ClientID: fake.ClientID(), ClientSecret: fake.ClientSecret(),
		RedirectURL: testPublicURL + callbackPath, AuthURL: fake.AuthURL(), TokenURL: fake.TokenURL(), HTTPClient: fake.Client()})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, store.DialectSQLite, func(c *Config, d *Deps) {
		c.OAuthStateKey = []byte("too short")
		d.Google = oauth
	})
	wantError(t, e.do("POST", "/v1/connections/google/authorize", e.token, mustJSON(t, authorizeBody("cust-k"))), 503, "not_configured", "")
	e.wantNothingStored(t)
}
