package google_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/termind/termind/connectors/google"
	"github.com/termind/termind/connectors/google/googletest"
)

const redirectURL = "https://termind.example/oauth/google/callback"

// env is one fake Google and a client registered with it.
type env struct {
	fake  *googletest.Server
	oauth *google.OAuth
}

func newEnv(t *testing.T) env {
	t.Helper()
	fake := googletest.Start(t)
	fake.RegisterRedirect(redirectURL)
	return env{fake: fake, oauth: newOAuth(t, fake, redirectURL)}
}

func newOAuth(t *testing.T, fake *googletest.Server, redirect string) *google.OAuth {
	t.Helper()
	o, err := google.NewOAuth(google.OAuthConfig{
		ClientID:     fake.ClientID(),
		ClientSecret: fake.ClientSecret(),
		RedirectURL:  redirect,
		AuthURL:      fake.AuthURL(),
		TokenURL:     fake.TokenURL(),
		RevokeURL:    fake.RevokeURL(),
		HTTPClient:   fake.Client(),
	})
	if err != nil {
		t.Fatalf("NewOAuth: %v", err)
	}
	return o
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// consent runs the browser part of the flow and returns the code and the
// verifier that goes with it.
func (e env) consent(t *testing.T, scopes []string) (code, verifier string) {
	t.Helper()
	verifier = google.NewVerifier()
	back, err := e.fake.Authorize(e.oauth.AuthCodeURL("st4te", verifier, scopes), false)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	u, err := url.Parse(back)
	if err != nil {
		t.Fatalf("redirect %q: %v", back, err)
	}
	if got := u.Query().Get("state"); got != "st4te" {
		t.Fatalf("redirect state = %q, want st4te", got)
	}
	code = u.Query().Get("code")
	if code == "" {
		t.Fatalf("redirect %q has no code", back)
	}
	return code, verifier
}

// connect runs the whole flow and returns the tokens.
func (e env) connect(t *testing.T, scopes []string) google.Token {
	t.Helper()
	code, verifier := e.consent(t, scopes)
	tok, err := e.oauth.Exchange(ctxT(t), code, verifier)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return tok
}

// assertNoSecrets fails when err's text quotes any of the secrets.
func assertNoSecrets(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, s := range secrets {
		if s != "" && (strings.Contains(msg, s) || strings.Contains(msg, url.QueryEscape(s))) {
			t.Errorf("error %q contains a secret", msg)
		}
	}
}

func TestNewOAuthValidates(t *testing.T) {
	t.Parallel()
	good := google.OAuthConfig{ClientID: "id.apps.googleusercontent.com", ClientSecret: "GOCSPX-s3cret", RedirectURL: redirectURL}
	tests := []struct {
		name   string
		modify func(*google.OAuthConfig)
		want   string // in the error; "" means no error
	}{
		{"defaults", func(*google.OAuthConfig) {}, ""},
		{"no client id", func(c *google.OAuthConfig) { c.ClientID = " " }, "TERMIND_GOOGLE_CLIENT_ID"},
		{"no client secret", func(c *google.OAuthConfig) { c.ClientSecret = "" }, "TERMIND_GOOGLE_CLIENT_SECRET"},
		{"no redirect", func(c *google.OAuthConfig) { c.RedirectURL = "" }, "TERMIND_PUBLIC_URL"},
		{"relative redirect", func(c *google.OAuthConfig) { c.RedirectURL = "/oauth/google/callback" }, "TERMIND_PUBLIC_URL"},
		{"bad auth URL", func(c *google.OAuthConfig) { c.AuthURL = "accounts.google.com" }, "TERMIND_GOOGLE_AUTH_URL"},
		{"bad token URL", func(c *google.OAuthConfig) { c.TokenURL = "ftp://user:hunter2@example.org/token" }, "TERMIND_GOOGLE_TOKEN_URL"},
		{"bad revoke URL", func(c *google.OAuthConfig) { c.RevokeURL = "://" }, "TERMIND_GOOGLE_REVOKE_URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := good
			tc.modify(&cfg)
			o, err := google.NewOAuth(cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("NewOAuth: %v", err)
				}
				if u := o.AuthCodeURL("s", google.NewVerifier(), []string{google.ScopeEvents}); !strings.HasPrefix(u, google.DefaultAuthURL+"?") {
					t.Errorf("AuthCodeURL = %q, want Google's endpoint", u)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewOAuth error = %v, want one naming %s", err, tc.want)
			}
			assertNoSecrets(t, err, "GOCSPX-s3cret", "hunter2")
		})
	}
}

func TestAuthCodeURLParameters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	verifier := google.NewVerifier()
	raw := e.oauth.AuthCodeURL("the-state", verifier, []string{google.ScopeEventsReadOnly})
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(verifier))
	want := map[string]string{
		"client_id":              e.fake.ClientID(),
		"redirect_uri":           redirectURL,
		"response_type":          "code",
		"access_type":            "offline",
		"prompt":                 "consent",
		"include_granted_scopes": "false",
		"scope":                  google.ScopeEventsReadOnly,
		"state":                  "the-state",
		"code_challenge_method":  "S256",
		"code_challenge":         base64.RawURLEncoding.EncodeToString(sum[:]),
	}
	q := u.Query()
	for k, v := range want {
		if got := q.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if strings.Contains(raw, verifier) || q.Has("code_verifier") || q.Has("client_secret") {
		t.Errorf("consent URL %q carries the verifier or the client secret", raw)
	}
	if strings.Contains(raw, e.fake.ClientSecret()) {
		t.Errorf("consent URL carries the client secret")
	}
}

func TestConnectFlow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		purposes []string
		want     string
	}{
		{[]string{google.PurposeReadBusy}, google.ScopeEventsReadOnly},
		{[]string{google.PurposeReadBusy, google.PurposeReadDetails}, google.ScopeEventsReadOnly},
		{[]string{google.PurposeReadBusy, google.PurposeWrite}, google.ScopeEvents},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.purposes, "+"), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			scopes, err := google.Scopes(tc.purposes)
			if err != nil {
				t.Fatalf("Scopes: %v", err)
			}
			before := time.Now()
			tok := e.connect(t, scopes)
			if tok.AccessToken == "" || tok.RefreshToken == "" {
				t.Fatalf("token lacks access or refresh token: access %t, refresh %t", tok.AccessToken != "", tok.RefreshToken != "")
			}
			if tok.TokenType != "Bearer" {
				t.Errorf("TokenType = %q, want Bearer", tok.TokenType)
			}
			if !slices.Equal(tok.Scopes, []string{tc.want}) {
				t.Errorf("Scopes = %q, want [%s]", tok.Scopes, tc.want)
			}
			if !google.Covers(tok.Scopes, tc.purposes) {
				t.Errorf("Covers(%q, %q) = false", tok.Scopes, tc.purposes)
			}
			lo, hi := before.Add(googletest.AccessTokenLifetime-time.Second), time.Now().Add(googletest.AccessTokenLifetime+time.Second)
			if tok.Expiry.Before(lo) || tok.Expiry.After(hi) {
				t.Errorf("Expiry = %v, want about an hour from now", tok.Expiry)
			}
			if !e.fake.ValidAccessToken(tok.AccessToken) {
				t.Error("the fake does not accept the access token")
			}
		})
	}
}

func TestExchangeFailures(t *testing.T) {
	t.Parallel()
	scopes := []string{google.ScopeEvents}
	tests := []struct {
		name string
		// run returns the error of the exchange under test, and the
		// secrets it handled.
		run          func(t *testing.T, e env) ([]string, error)
		invalidGrant bool
		code         string
		status       int
	}{
		{
			name: "wrong verifier",
			run: func(t *testing.T, e env) ([]string, error) {
				code, verifier := e.consent(t, scopes)
				other := google.NewVerifier()
				_, err := e.oauth.Exchange(ctxT(t), code, other)
				return []string{code, verifier, other}, err
			},
			invalidGrant: true, code: "invalid_grant", status: 400,
		},
		{
			name: "replayed code",
			run: func(t *testing.T, e env) ([]string, error) {
				code, verifier := e.consent(t, scopes)
				first, err := e.oauth.Exchange(ctxT(t), code, verifier)
				if err != nil {
					t.Fatalf("first Exchange: %v", err)
				}
				_, err = e.oauth.Exchange(ctxT(t), code, verifier)
				// RFC 6749 4.1.2: tokens from a replayed code are revoked.
				if !e.fake.Revoked(first.RefreshToken) || e.fake.ValidAccessToken(first.AccessToken) {
					t.Error("tokens of the replayed code still work")
				}
				return []string{code, verifier, first.AccessToken, first.RefreshToken}, err
			},
			invalidGrant: true, code: "invalid_grant", status: 400,
		},
		{
			name: "expired code",
			run: func(t *testing.T, e env) ([]string, error) {
				code, verifier := e.consent(t, scopes)
				e.fake.Advance(googletest.CodeLifetime + time.Second)
				_, err := e.oauth.Exchange(ctxT(t), code, verifier)
				return []string{code, verifier}, err
			},
			invalidGrant: true, code: "invalid_grant", status: 400,
		},
		{
			name: "unknown code",
			run: func(t *testing.T, e env) ([]string, error) {
				verifier := google.NewVerifier()
				_, err := e.oauth.Exchange(ctxT(t), "4/0made-up", verifier)
				return []string{"4/0made-up", verifier}, err
			},
			invalidGrant: true, code: "invalid_grant", status: 400,
		},
		{
			name: "redirect URI differs from the authorization's",
			run: func(t *testing.T, e env) ([]string, error) {
				code, verifier := e.consent(t, scopes)
				other := "https://other.termind.example/oauth/google/callback"
				e.fake.RegisterRedirect(other)
				_, err := newOAuth(t, e.fake, other).Exchange(ctxT(t), code, verifier)
				return []string{code, verifier}, err
			},
			code: "redirect_uri_mismatch", status: 400,
		},
		{
			name: "wrong client secret",
			run: func(t *testing.T, e env) ([]string, error) {
				code, verifier := e.consent(t, scopes)
				o, err := google.NewOAuth(google.OAuthConfig{
					ClientID: e.fake.ClientID(), ClientSecret: "GOCSPX-wrong", RedirectURL: redirectURL,
					AuthURL: e.fake.AuthURL(), TokenURL: e.fake.TokenURL(), RevokeURL: e.fake.RevokeURL(),
					HTTPClient: e.fake.Client(),
				})
				if err != nil {
					t.Fatal(err)
				}
				_, err = o.Exchange(ctxT(t), code, verifier)
				return []string{code, verifier, "GOCSPX-wrong"}, err
			},
			code: "invalid_client", status: 401,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			secrets, err := tc.run(t, e)
			if err == nil {
				t.Fatal("Exchange succeeded")
			}
			if got := errors.Is(err, google.ErrInvalidGrant); got != tc.invalidGrant {
				t.Errorf("errors.Is(%v, ErrInvalidGrant) = %t, want %t", err, got, tc.invalidGrant)
			}
			var oe *google.OAuthError
			if !errors.As(err, &oe) {
				t.Fatalf("error %v (%T) is not an *OAuthError", err, err)
			}
			if oe.Code != tc.code || oe.Status != tc.status || oe.Temporary() {
				t.Errorf("OAuthError = %+v (temporary %t), want %s, HTTP %d, final", oe, oe.Temporary(), tc.code, tc.status)
			}
			if !strings.HasPrefix(err.Error(), "google: exchange code: ") {
				t.Errorf("error %q lacks the google prefix", err)
			}
			assertNoSecrets(t, err, append(secrets, e.fake.ClientSecret())...)
		})
	}
}

func TestAuthorizeChecksRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(q url.Values)
		code   string
	}{
		{"unregistered redirect", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }, "redirect_uri_mismatch"},
		{"redirect differs by a slash", func(q url.Values) { q.Set("redirect_uri", redirectURL+"/") }, "redirect_uri_mismatch"},
		{"unknown client", func(q url.Values) { q.Set("client_id", "someone-else.apps.googleusercontent.com") }, "invalid_client"},
		{"token response type", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type"},
		{"no scope", func(q url.Values) { q.Del("scope") }, "invalid_request"},
		{"non-calendar scope", func(q url.Values) { q.Set("scope", "https://www.googleapis.com/auth/gmail.readonly") }, "invalid_scope"},
		{"no PKCE", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, "invalid_request"},
		{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"short challenge", func(q url.Values) { q.Set("code_challenge", "abc") }, "invalid_request"},
		{"bad access type", func(q url.Values) { q.Set("access_type", "forever") }, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			u, err := url.Parse(e.oauth.AuthCodeURL("s", google.NewVerifier(), []string{google.ScopeEvents}))
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			tc.modify(q)
			u.RawQuery = q.Encode()
			back, err := e.fake.Authorize(u.String(), false)
			var ae *googletest.AuthorizeError
			if !errors.As(err, &ae) || ae.Code != tc.code {
				t.Fatalf("Authorize = %q, %v; want an error page with %s", back, err, tc.code)
			}
		})
	}
}

func TestConsentDenied(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	back, err := e.fake.Authorize(e.oauth.AuthCodeURL("st4te", google.NewVerifier(), []string{google.ScopeEvents}), true)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	u, err := url.Parse(back)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme+"://"+u.Host+u.Path != redirectURL || q.Get("error") != "access_denied" || q.Get("state") != "st4te" || q.Has("code") {
		t.Errorf("redirect = %q, want %s?error=access_denied&state=st4te without code", back, redirectURL)
	}
}

func TestConsentPageRedirects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.fake.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodGet, e.oauth.AuthCodeURL("st", google.NewVerifier(), []string{google.ScopeEvents}), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), redirectURL+"?") || loc.Query().Get("code") == "" {
		t.Errorf("GET consent page = %d to %q, want 302 to the callback with a code", resp.StatusCode, loc)
	}
}

func TestTokenSourceRefreshes(t *testing.T) {
	t.Parallel()
	for _, rotate := range []bool{false, true} {
		name := map[bool]string{false: "google default", true: "rotating refresh tokens"}[rotate]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.fake.RotateRefreshTokens(rotate)
			first := e.connect(t, []string{google.ScopeEventsReadOnly})
			e.fake.ExpireAccessTokens()
			if e.fake.ValidAccessToken(first.AccessToken) {
				t.Fatal("ExpireAccessTokens left the token valid")
			}
			// As stored an hour ago: its expiry has passed.
			stored := first
			stored.Expiry = time.Now().Add(-time.Minute)

			var mu sync.Mutex
			var reported []google.Token
			ts := e.oauth.TokenSource(ctxT(t), stored, func(tok google.Token) {
				mu.Lock()
				defer mu.Unlock()
				reported = append(reported, tok)
			})
			// Concurrent callers share one refresh.
			var wg sync.WaitGroup
			got := make([]string, 8)
			for i := range got {
				wg.Go(func() {
					tok, err := ts.Token()
					if err != nil {
						t.Errorf("Token: %v", err)
						return
					}
					got[i] = tok.AccessToken
				})
			}
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			if len(reported) != 1 {
				t.Fatalf("onRefresh called %d times, want 1", len(reported))
			}
			next := reported[0]
			for _, a := range got {
				if a != next.AccessToken {
					t.Fatalf("Token returned an access token other than the reported one")
				}
			}
			if next.AccessToken == first.AccessToken || !e.fake.ValidAccessToken(next.AccessToken) {
				t.Error("the refreshed access token is not a new, valid one")
			}
			if !slices.Equal(next.Scopes, []string{google.ScopeEventsReadOnly}) {
				t.Errorf("refreshed Scopes = %q", next.Scopes)
			}
			if rotated := next.RefreshToken != first.RefreshToken; rotated != rotate {
				t.Errorf("refresh token changed = %t, want %t", rotated, rotate)
			}
			if rotate {
				// The retired token is dead: persisting the reported one matters.
				_, err := e.oauth.Refresh(ctxT(t), first.RefreshToken)
				if !errors.Is(err, google.ErrInvalidGrant) {
					t.Errorf("Refresh with the retired token = %v, want ErrInvalidGrant", err)
				}
				assertNoSecrets(t, err, first.RefreshToken, next.RefreshToken, e.fake.ClientSecret())
				if _, err := e.oauth.Refresh(ctxT(t), next.RefreshToken); err != nil {
					t.Errorf("Refresh with the reported token: %v", err)
				}
			}
		})
	}
}

func TestTokenSourceRevokedGrant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.connect(t, []string{google.ScopeEvents})
	if err := e.oauth.Revoke(ctxT(t), tok.RefreshToken); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	tok.Expiry = time.Now().Add(-time.Minute)
	called := false
	ts := e.oauth.TokenSource(ctxT(t), tok, func(google.Token) { called = true })
	_, err := ts.Token()
	if !errors.Is(err, google.ErrInvalidGrant) {
		t.Fatalf("Token = %v, want ErrInvalidGrant", err)
	}
	if called {
		t.Error("onRefresh was called for a failed refresh")
	}
	assertNoSecrets(t, err, tok.AccessToken, tok.RefreshToken, e.fake.ClientSecret())
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		pick func(google.Token) string
	}{
		{"by refresh token", func(t google.Token) string { return t.RefreshToken }},
		{"by access token", func(t google.Token) string { return t.AccessToken }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			tok := e.connect(t, []string{google.ScopeEvents})
			for i := range 2 {
				// The second call meets 400 invalid_token: already revoked.
				if err := e.oauth.Revoke(ctxT(t), tc.pick(tok)); err != nil {
					t.Fatalf("Revoke #%d: %v", i+1, err)
				}
			}
			if n := e.fake.RevokeCalls(); n != 2 {
				t.Errorf("RevokeCalls = %d, want 2", n)
			}
			// The whole grant ends.
			if !e.fake.Revoked(tok.AccessToken) || !e.fake.Revoked(tok.RefreshToken) || e.fake.ValidAccessToken(tok.AccessToken) {
				t.Error("the grant's tokens still work")
			}
			_, err := e.oauth.Refresh(ctxT(t), tok.RefreshToken)
			if !errors.Is(err, google.ErrInvalidGrant) {
				t.Errorf("Refresh after Revoke = %v, want ErrInvalidGrant", err)
			}
		})
	}
}

func TestTransientFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"server error page", http.StatusServiceUnavailable, "<html>try again</html>"},
		{"rate limited", http.StatusTooManyRequests, `{"error":"rate_limit_exceeded"}`},
		{"internal error", http.StatusInternalServerError, `{"error":"internal_failure","error_description":"Backend Error"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			code, verifier := e.consent(t, []string{google.ScopeEvents})
			e.fake.FailNext(1, tc.status, tc.body)
			_, err := e.oauth.Exchange(ctxT(t), code, verifier)
			var oe *google.OAuthError
			if !errors.As(err, &oe) || oe.Status != tc.status || !oe.Temporary() || errors.Is(err, google.ErrInvalidGrant) {
				t.Fatalf("Exchange = %v, want a temporary *OAuthError with HTTP %d", err, tc.status)
			}
			assertNoSecrets(t, err, code, verifier, e.fake.ClientSecret())
			// The failure did not use the code up.
			tok, err := e.oauth.Exchange(ctxT(t), code, verifier)
			if err != nil {
				t.Fatalf("Exchange after the failure: %v", err)
			}

			e.fake.FailNext(1, tc.status, tc.body)
			err = e.oauth.Revoke(ctxT(t), tok.RefreshToken)
			if !errors.As(err, &oe) || !oe.Temporary() {
				t.Fatalf("Revoke = %v, want a temporary *OAuthError", err)
			}
			if e.fake.Revoked(tok.RefreshToken) {
				t.Error("the failed revoke revoked the token")
			}
			if err := e.oauth.Revoke(ctxT(t), tok.RefreshToken); err != nil || !e.fake.Revoked(tok.RefreshToken) {
				t.Errorf("Revoke retry = %v, revoked %t; want nil, true", err, e.fake.Revoked(tok.RefreshToken))
			}
		})
	}
}

// A misbehaving server that echoes the request in its error page must not
// get the code, verifier or secret into our error text; Retry-After is read.
func TestErrorsFromOtherServers(t *testing.T) {
	t.Parallel()
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write(body)
	}))
	t.Cleanup(echo.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	tests := []struct {
		name      string
		url       string
		ctx       func(t *testing.T) context.Context
		status    int
		wait      time.Duration
		temporary bool
		is        error // errors.Is must find it; nil: nothing to find
	}{
		{"echoing 502", echo.URL, ctxT, http.StatusBadGateway, 7 * time.Second, true, nil},
		{"connection refused", closed.URL, ctxT, 0, 0, true, nil},
		{"cancelled context", echo.URL, func(*testing.T) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, 0, 0, true, context.Canceled},
	}
	const secret, code, token = "GOCSPX-very-secret", "4/0secret-code", "1//secret-refresh"
	verifier := google.NewVerifier()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, err := google.NewOAuth(google.OAuthConfig{
				ClientID: "id", ClientSecret: secret, RedirectURL: redirectURL,
				TokenURL: tc.url + "/token", RevokeURL: tc.url + "/revoke",
				HTTPClient: &http.Client{Timeout: 5 * time.Second},
			})
			if err != nil {
				t.Fatal(err)
			}
			_, exErr := o.Exchange(tc.ctx(t), code, verifier)
			_, rfErr := o.Refresh(tc.ctx(t), token)
			rvErr := o.Revoke(tc.ctx(t), token)
			for _, err := range []error{exErr, rfErr, rvErr} {
				if err == nil {
					t.Fatal("got no error")
				}
				assertNoSecrets(t, err, secret, code, verifier, token)
				var tmp interface{ Temporary() bool }
				if !errors.As(err, &tmp) || tmp.Temporary() != tc.temporary {
					t.Errorf("%v: want Temporary() = %t", err, tc.temporary)
				}
				var ra interface{ RetryAfter() time.Duration }
				if !errors.As(err, &ra) || ra.RetryAfter() != tc.wait {
					t.Errorf("%v: want RetryAfter() = %v", err, tc.wait)
				}
				var oe *google.OAuthError
				if tc.status != 0 && (!errors.As(err, &oe) || oe.Status != tc.status) {
					t.Errorf("%v: want an *OAuthError with HTTP %d", err, tc.status)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("%v: want errors.Is %v", err, tc.is)
				}
				var te *google.TemporaryError
				if tc.status == 0 && !errors.As(err, &te) {
					t.Errorf("%v (%T): want a *TemporaryError", err, err)
				}
			}
		})
	}
}

func TestRefreshWithoutRefreshToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ts := e.oauth.TokenSource(ctxT(t), google.Token{AccessToken: "ya29.old", Expiry: time.Now().Add(-time.Minute)}, nil)
	_, err := ts.Token()
	if !errors.Is(err, google.ErrInvalidGrant) {
		t.Errorf("Token = %v, want ErrInvalidGrant", err)
	}
	assertNoSecrets(t, err, "ya29.old")
}
