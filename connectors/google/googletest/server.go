// Package googletest is a fake of Google's OAuth 2 endpoints on loopback,
// for tests. It implements the documented behaviour termind relies on:
//
//   - the consent screen (Authorize, or a GET of AuthURL, which approves):
//     registered client and exact redirect URI, response_type=code, known
//     Calendar scopes, PKCE S256 (which the fake requires, since termind
//     always sends it), access_type, and the redirect with code, scope and
//     state, or error=access_denied;
//   - the token endpoint: client authentication by form fields or HTTP
//     basic; authorization codes that live 10 minutes, are single-use and
//     must come with the redirect URI and PKCE verifier of their
//     authorization; refresh tokens; Google's error codes and 400/401
//     statuses;
//   - the revoke endpoint: revoking an access or refresh token ends the
//     whole grant; an unknown or dead token is 400 invalid_token.
//
// Knobs: RotateRefreshTokens, Advance (the fake's clock), ExpireAccessTokens,
// FailNext. Probes: Revoked, RevokeCalls, ValidAccessToken, GrantedScopes.
//
// The same server fakes the Google Calendar API v3 under APIURL, for the
// access tokens it issued: events list (full and incremental sync,
// pagination, recurring events expanded or not), get, insert, update,
// patch and delete with etags, and push notification channels (watch,
// stop, and notifications). See calendar.go.
package googletest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Lifetimes as Google documents them.
const (
	CodeLifetime        = 10 * time.Minute
	AccessTokenLifetime = 3599 * time.Second
)

// Paths of the endpoints on the fake, the same as Google's.
const (
	authPath   = "/o/oauth2/v2/auth"
	tokenPath  = "/token"
	revokePath = "/revoke"
)

// knownScopes are the Google Calendar scopes the fake's consent screen
// accepts; anything else is invalid_scope.
var knownScopes = map[string]bool{
	"https://www.googleapis.com/auth/calendar":                       true,
	"https://www.googleapis.com/auth/calendar.readonly":              true,
	"https://www.googleapis.com/auth/calendar.events":                true,
	"https://www.googleapis.com/auth/calendar.events.readonly":       true,
	"https://www.googleapis.com/auth/calendar.freebusy":              true,
	"https://www.googleapis.com/auth/calendar.calendarlist.readonly": true,
	"https://www.googleapis.com/auth/calendar.settings.readonly":     true,
}

// RFC 7636 section 4.2: 43 to 128 unreserved characters.
var challengePattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// Server is the fake. It stops in t.Cleanup.
type Server struct {
	srv          *httptest.Server
	clientID     string
	clientSecret string

	mu          sync.Mutex
	offset      time.Duration // added to the wall clock by Advance
	redirects   map[string]bool
	rotate      bool
	codes       map[string]*authCode
	refresh     map[string]*refreshToken
	access      map[string]*accessToken
	revokeCalls int
	failures    []failure

	cal calendarAPI // the Calendar API, see calendar.go
}

// grant is one user's consent to the client; its tokens live and die
// together.
type grant struct {
	scopes  []string
	revoked bool
}

type authCode struct {
	redirectURI string
	challenge   string
	scopes      []string
	offline     bool
	expires     time.Time
	used        bool
	grant       *grant // set by the successful exchange
}

type refreshToken struct {
	grant *grant
	// retired: replaced by rotation.
	retired bool
}

type accessToken struct {
	grant   *grant
	expires time.Time
}

type failure struct {
	status int
	body   string
}

// Start runs the fake with one registered client and no registered
// redirect URI (see RegisterRedirect).
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		clientID:     "termind-test-" + random(6) + ".apps.googleusercontent.com",
		clientSecret: "GOCSPX-" + random(18),
		redirects:    map[string]bool{},
		codes:        map[string]*authCode{},
		refresh:      map[string]*refreshToken{},
		access:       map[string]*accessToken{},
		cal:          newCalendarAPI(),
	}
	s.cal.notify = newNotifier(s.recordDelivery)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+authPath, s.consentPage)
	mux.HandleFunc(tokenPath, s.token)
	mux.HandleFunc(revokePath, s.revoke)
	s.routeCalendar(mux)
	s.srv = httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(s.srv.Close)
	// Cleanups run last-registered first: notifications in flight finish
	// before the server closes.
	t.Cleanup(s.cal.notify.close)
	return s
}

// AuthURL, TokenURL and RevokeURL go into google.OAuthConfig.
func (s *Server) AuthURL() string   { return s.srv.URL + authPath }
func (s *Server) TokenURL() string  { return s.srv.URL + tokenPath }
func (s *Server) RevokeURL() string { return s.srv.URL + revokePath }

// Client returns an HTTP client for the fake.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// ClientID and ClientSecret are the registered client's credentials. They
// are random per server.
func (s *Server) ClientID() string     { return s.clientID }
func (s *Server) ClientSecret() string { return s.clientSecret }

// RegisterRedirect adds an authorized redirect URI. Google compares
// redirect URIs exactly: scheme, host, port, path and query.
func (s *Server) RegisterRedirect(uri string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.redirects[uri] = true
}

// RotateRefreshTokens makes every refresh return a new refresh token and
// retire the old one, which then gets invalid_grant. Google does not rotate
// by default (its refresh tokens stay valid until revoked or unused for six
// months); strict rotation is there so that tests catch a caller that does
// not persist the token it is handed.
func (s *Server) RotateRefreshTokens(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate = on
}

// Advance moves the fake's clock forward, e.g. past CodeLifetime.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}

// ExpireAccessTokens ends the life of every access token issued so far, as
// an hour passing would. Refresh tokens keep working.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := s.now().Add(-time.Second)
	for _, a := range s.access {
		a.expires = past
	}
}

// FailNext makes the next n requests to the token or revoke endpoint
// answer status with body (JSON bodies get a JSON content type), e.g. 503
// or 429 to test retries.
func (s *Server) FailNext(n, status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, failure{status: status, body: body})
	}
}

// Revoked reports whether token (access or refresh) was issued by the fake
// and its grant has been revoked.
func (s *Server) Revoked(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.grantOf(token)
	return g != nil && g.revoked
}

// RevokeCalls counts the requests that reached the revoke endpoint,
// failed ones included.
func (s *Server) RevokeCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revokeCalls
}

// IssueToken grants scopes to the client as a consent followed by a code
// exchange would, and returns the access and refresh tokens, for tests of
// API calls that do not need to go through the consent flow.
func (s *Server) IssueToken(scopes ...string) (access, refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := &grant{scopes: slices.Clone(scopes)}
	access = s.issue(g)["access_token"].(string)
	return access, s.newRefreshToken(g)
}

// ValidAccessToken reports whether an API would accept tok: issued by the
// fake, not expired, grant not revoked.
func (s *Server) ValidAccessToken(tok string) bool {
	_, ok := s.GrantedScopes(tok)
	return ok
}

// GrantedScopes returns the scopes of a valid access token, for an API fake
// to decide between success and 403 insufficient permissions.
func (s *Server) GrantedScopes(tok string) ([]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.access[tok]
	if a == nil || a.grant.revoked || !s.now().Before(a.expires) {
		return nil, false
	}
	return slices.Clone(a.grant.scopes), true
}

// AuthorizeError is what Google shows on its error page instead of
// redirecting: a bad client, redirect URI or request.
type AuthorizeError struct {
	Code        string // "invalid_client", "redirect_uri_mismatch", "invalid_scope", …
	Description string
}

func (e *AuthorizeError) Error() string {
	return "googletest: authorize: " + e.Code + ": " + e.Description
}

// Authorize plays the user at the consent screen for authURL, the URL our
// code built. It checks the request as Google does and returns the URL
// Google would redirect the browser to: the redirect URI with code, scope
// and state, or with error=access_denied and state when deny is true.
// A bad request gives an *AuthorizeError: Google shows an error page and
// does not redirect.
func (s *Server) Authorize(authURL string, deny bool) (string, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return "", &AuthorizeError{"invalid_request", "the URL does not parse"}
	}
	if u.Scheme+"://"+u.Host+u.Path != s.AuthURL() {
		return "", &AuthorizeError{"invalid_request", "not this server's authorization endpoint"}
	}
	q := u.Query()
	s.mu.Lock()
	defer s.mu.Unlock()

	switch id := q.Get("client_id"); {
	case id == "":
		return "", &AuthorizeError{"invalid_request", "Missing required parameter: client_id"}
	case id != s.clientID:
		return "", &AuthorizeError{"invalid_client", "The OAuth client was not found."}
	}
	redirect := q.Get("redirect_uri")
	if redirect == "" {
		return "", &AuthorizeError{"invalid_request", "Missing required parameter: redirect_uri"}
	}
	if !s.redirects[redirect] {
		return "", &AuthorizeError{"redirect_uri_mismatch", "The redirect URI in the request does not match the ones authorized for the OAuth client."}
	}
	switch rt := q.Get("response_type"); rt {
	case "":
		return "", &AuthorizeError{"invalid_request", "Missing required parameter: response_type"}
	case "code":
	default:
		return "", &AuthorizeError{"unsupported_response_type", "Invalid response_type: " + rt}
	}
	scopes := strings.Fields(q.Get("scope"))
	if len(scopes) == 0 {
		return "", &AuthorizeError{"invalid_request", "Missing required parameter: scope"}
	}
	for _, sc := range scopes {
		if !knownScopes[sc] {
			return "", &AuthorizeError{"invalid_scope", "Some requested scopes were invalid. {invalid=[" + sc + "]}"}
		}
	}
	if m := q.Get("code_challenge_method"); m != "S256" {
		return "", &AuthorizeError{"invalid_request", "code_challenge_method must be S256, got " + fmt.Sprintf("%q", m)}
	}
	challenge := q.Get("code_challenge")
	if !challengePattern.MatchString(challenge) {
		return "", &AuthorizeError{"invalid_request", "Invalid code_challenge."}
	}
	accessType := q.Get("access_type")
	if accessType != "" && accessType != "online" && accessType != "offline" {
		return "", &AuthorizeError{"invalid_request", "Invalid access_type: " + accessType}
	}
	for _, p := range strings.Fields(q.Get("prompt")) {
		if p != "none" && p != "consent" && p != "select_account" {
			return "", &AuthorizeError{"invalid_request", "Invalid prompt: " + p}
		}
	}
	if igs := q.Get("include_granted_scopes"); igs != "" && igs != "true" && igs != "false" {
		return "", &AuthorizeError{"invalid_request", "Invalid include_granted_scopes: " + igs}
	}

	back, err := url.Parse(redirect)
	if err != nil {
		return "", &AuthorizeError{"redirect_uri_mismatch", "the redirect URI does not parse"}
	}
	bq := back.Query()
	if st := q.Get("state"); st != "" {
		bq.Set("state", st)
	}
	if deny {
		bq.Set("error", "access_denied")
		back.RawQuery = bq.Encode()
		return back.String(), nil
	}
	code := "4/0" + random(32)
	s.codes[code] = &authCode{
		redirectURI: redirect,
		challenge:   challenge,
		scopes:      scopes,
		offline:     accessType == "offline",
		expires:     s.now().Add(CodeLifetime),
	}
	bq.Set("code", code)
	bq.Set("scope", strings.Join(scopes, " "))
	back.RawQuery = bq.Encode()
	return back.String(), nil
}

// consentPage approves at once and redirects, so that tests can drive the
// flow with an HTTP client that follows redirects.
func (s *Server) consentPage(w http.ResponseWriter, r *http.Request) {
	to, err := s.Authorize(s.srv.URL+r.URL.RequestURI(), false)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, to, http.StatusFound)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if s.injectedFailure(w) {
		return
	}
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "Method not allowed.")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded.")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "The request body does not parse.")
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if bid, bsecret, ok := r.BasicAuth(); ok {
		// RFC 6749 section 2.3.1: both parts are form-encoded first.
		id, _ = url.QueryUnescape(bid)
		secret, _ = url.QueryUnescape(bsecret)
	}
	switch {
	case id == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "Could not determine client ID from request.")
		return
	case id != s.clientID:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "The OAuth client was not found.")
		return
	case subtle.ConstantTimeCompare([]byte(secret), []byte(s.clientSecret)) != 1:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "Unauthorized")
		return
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "authorization_code":
		s.exchange(w, r.PostForm)
	case "refresh_token":
		s.refreshGrant(w, r.PostForm)
	case "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: grant_type")
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+gt)
	}
}

func (s *Server) exchange(w http.ResponseWriter, form url.Values) {
	code := form.Get("code")
	if code == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: code")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.codes[code]
	switch {
	case c == nil:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Malformed auth code.")
		return
	case c.used:
		// RFC 6749 section 4.1.2: a replayed code is refused, and the
		// tokens issued for it should be revoked, since someone else may
		// hold the code.
		c.grant.revoked = true
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Bad Request")
		return
	case !s.now().Before(c.expires):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Bad Request")
		return
	case form.Get("redirect_uri") != c.redirectURI:
		// Google names this one separately rather than invalid_grant.
		oauthError(w, http.StatusBadRequest, "redirect_uri_mismatch", "Bad Request")
		return
	}
	verifier := form.Get("code_verifier")
	if verifier == "" {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Missing code verifier.")
		return
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(c.challenge)) != 1 {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid code verifier.")
		return
	}
	// Only a successful exchange uses the code up: failed guesses by
	// someone without the verifier must not destroy it.
	c.used = true
	c.grant = &grant{scopes: c.scopes}
	resp := s.issue(c.grant)
	if c.offline {
		resp["refresh_token"] = s.newRefreshToken(c.grant)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) refreshGrant(w http.ResponseWriter, form url.Values) {
	rt := form.Get("refresh_token")
	if rt == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: refresh_token")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.refresh[rt]
	switch {
	case t == nil:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Bad Request")
		return
	case t.grant.revoked, t.retired:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Token has been expired or revoked.")
		return
	}
	resp := s.issue(t.grant)
	if s.rotate {
		t.retired = true
		resp["refresh_token"] = s.newRefreshToken(t.grant)
	}
	writeJSON(w, http.StatusOK, resp)
}

// issue makes an access token for g and returns the token response without
// a refresh token. The caller holds s.mu.
func (s *Server) issue(g *grant) map[string]any {
	tok := "ya29.fake-" + random(32)
	s.access[tok] = &accessToken{grant: g, expires: s.now().Add(AccessTokenLifetime)}
	return map[string]any{
		"access_token": tok,
		"expires_in":   int(AccessTokenLifetime / time.Second),
		"scope":        strings.Join(g.scopes, " "),
		"token_type":   "Bearer",
	}
}

// newRefreshToken makes a refresh token for g. The caller holds s.mu.
func (s *Server) newRefreshToken(g *grant) string {
	tok := "1//fake-" + random(32)
	s.refresh[tok] = &refreshToken{grant: g}
	return tok
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.revokeCalls++
	s.mu.Unlock()
	if s.injectedFailure(w) {
		return
	}
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "Method not allowed.")
		return
	}
	// Google takes the token from the form body or the query string.
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "The request body does not parse.")
		return
	}
	tok := r.Form.Get("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: token")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.grantOf(tok)
	if g == nil || g.revoked || !s.alive(tok) {
		oauthError(w, http.StatusBadRequest, "invalid_token", "Token expired or revoked")
		return
	}
	g.revoked = true
	writeJSON(w, http.StatusOK, map[string]any{})
}

// grantOf finds the grant of an access or refresh token. The caller holds
// s.mu.
func (s *Server) grantOf(tok string) *grant {
	if a := s.access[tok]; a != nil {
		return a.grant
	}
	if r := s.refresh[tok]; r != nil {
		return r.grant
	}
	return nil
}

// alive: an unexpired access token or an unretired refresh token. Google
// no longer knows the others, so revoking through them fails. The caller
// holds s.mu.
func (s *Server) alive(tok string) bool {
	if a := s.access[tok]; a != nil {
		return s.now().Before(a.expires)
	}
	r := s.refresh[tok]
	return r != nil && !r.retired
}

func (s *Server) injectedFailure(w http.ResponseWriter) bool {
	s.mu.Lock()
	if len(s.failures) == 0 {
		s.mu.Unlock()
		return false
	}
	f := s.failures[0]
	s.failures = s.failures[1:]
	s.mu.Unlock()
	if json.Valid([]byte(f.body)) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	}
	w.WriteHeader(f.status)
	_, _ = w.Write([]byte(f.body))
	return true
}

// now is the fake's clock. The caller holds s.mu.
func (s *Server) now() time.Time { return time.Now().Add(s.offset) }

func oauthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]any{"error": code, "error_description": description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	// Token responses must not be cached (RFC 6749 section 5.1).
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Grant is a consent given without the browser round trip: tokens as the
// code exchange would return them.
type Grant struct {
	AccessToken, RefreshToken string
	Expiry                    time.Time
	Scopes                    []string
}

// NewGrant is IssueToken with the rest of what a stored connection
// keeps: the access token's expiry and the scopes.
func (s *Server) NewGrant(scopes ...string) Grant {
	access, refresh := s.IssueToken(scopes...)
	s.mu.Lock()
	expiry := s.access[access].expires
	s.mu.Unlock()
	return Grant{AccessToken: access, RefreshToken: refresh, Expiry: expiry, Scopes: scopes}
}

// RevokeGrant ends the grant of token as the user removing the app's
// access in their Google account would: every token of it gets
// invalid_grant or 401 from then on.
func (s *Server) RevokeGrant(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.grantOf(token); g != nil {
		g.revoked = true
	}
}
