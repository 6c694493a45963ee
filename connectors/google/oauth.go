// Package google connects calendars at Google: OAuth 2 with PKCE to obtain
// and refresh tokens, revocation, and the signed state that carries a
// consent flow from the authorize call to the callback. It knows nothing
// about the store or business rules: callers persist tokens (encrypted),
// keep PKCE verifiers server-side and decide what consent allows.
//
// Files: oauth.go (OAuth: consent URL, code exchange, refresh, revoke),
// scopes.go (purposes to scopes), state.go (signed state), errors.go (error
// types). googletest is a fake of Google's OAuth endpoints for tests.
package google

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// Google's production endpoints, used when OAuthConfig leaves a URL empty.
const (
	DefaultAuthURL   = "https://accounts.google.com/o/oauth2/v2/auth"
	DefaultTokenURL  = "https://oauth2.googleapis.com/token"
	DefaultRevokeURL = "https://oauth2.googleapis.com/revoke"
)

// OAuthConfig configures NewOAuth.
type OAuthConfig struct {
	// ClientID and ClientSecret are the registered web client
	// (TERMIND_GOOGLE_CLIENT_ID, TERMIND_GOOGLE_CLIENT_SECRET).
	ClientID     string
	ClientSecret string
	// RedirectURL is the callback as registered at Google, e.g.
	// TERMIND_PUBLIC_URL + "/oauth/google/callback". It must match exactly.
	RedirectURL string
	// AuthURL, TokenURL and RevokeURL replace Google's endpoints
	// (TERMIND_GOOGLE_AUTH_URL, …_TOKEN_URL, …_REVOKE_URL); empty means
	// Google's production endpoints.
	AuthURL   string
	TokenURL  string
	RevokeURL string
	// HTTPClient makes the token and revoke requests. Nil means a client
	// with a 30 s timeout.
	HTTPClient *http.Client
}

// OAuth talks to Google's OAuth endpoints for one registered client. It is
// safe for concurrent use.
type OAuth struct {
	clientID     string
	clientSecret string
	redirectURL  string
	authURL      string
	tokenURL     string
	revokeURL    string
	client       *http.Client
}

// Token is what Google grants. AccessToken and RefreshToken are secrets:
// store them encrypted and never log them.
type Token struct {
	AccessToken  string
	RefreshToken string
	TokenType    string
	Expiry       time.Time
	// Scopes are the scopes Google reports as granted. Users can untick
	// scopes on the consent screen, so this may be less than was asked for.
	Scopes []string
}

// NewOAuth checks cfg and returns an OAuth. Errors name the setting to fix.
func NewOAuth(cfg OAuthConfig) (*OAuth, error) {
	if strings.TrimSpace(cfg.ClientID) == "" {
		return nil, errors.New("google: TERMIND_GOOGLE_CLIENT_ID is required")
	}
	if strings.TrimSpace(cfg.ClientSecret) == "" {
		return nil, errors.New("google: TERMIND_GOOGLE_CLIENT_SECRET is required")
	}
	if err := checkURL(cfg.RedirectURL); err != nil {
		return nil, fmt.Errorf("google: redirect URL (from TERMIND_PUBLIC_URL): %w", err)
	}
	o := &OAuth{
		clientID:     cfg.ClientID,
		clientSecret: cfg.ClientSecret,
		redirectURL:  cfg.RedirectURL,
		authURL:      cfg.AuthURL,
		tokenURL:     cfg.TokenURL,
		revokeURL:    cfg.RevokeURL,
		client:       cfg.HTTPClient,
	}
	for _, u := range []struct {
		v    *string
		def  string
		name string
	}{
		{&o.authURL, DefaultAuthURL, "TERMIND_GOOGLE_AUTH_URL"},
		{&o.tokenURL, DefaultTokenURL, "TERMIND_GOOGLE_TOKEN_URL"},
		{&o.revokeURL, DefaultRevokeURL, "TERMIND_GOOGLE_REVOKE_URL"},
	} {
		if *u.v == "" {
			*u.v = u.def
			continue
		}
		if err := checkURL(*u.v); err != nil {
			return nil, fmt.Errorf("google: %s: %w", u.name, err)
		}
	}
	if o.client == nil {
		o.client = &http.Client{Timeout: 30 * time.Second}
	}
	return o, nil
}

// checkURL accepts absolute http and https URLs. Its error does not repeat
// the URL, which could carry credentials.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http or https URL")
	}
	return nil
}

// NewVerifier returns a fresh PKCE code verifier (32 random bytes,
// base64url). Use one per authorization and keep it server-side.
func NewVerifier() string { return oauth2.GenerateVerifier() }

// config builds the x/oauth2 view of this client. Google wants the client
// credentials in the form body; saying so avoids x/oauth2 probing with a
// second request.
func (o *OAuth) config(scopes []string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     o.clientID,
		ClientSecret: o.clientSecret,
		RedirectURL:  o.redirectURL,
		Scopes:       scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:   o.authURL,
			TokenURL:  o.tokenURL,
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

// withClient makes x/oauth2 use our HTTP client instead of the default one.
func (o *OAuth) withClient(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, o.client)
}

// AuthCodeURL builds the URL of Google's consent screen. It asks for:
//   - response_type=code with the PKCE S256 challenge of verifier;
//   - access_type=offline, for a refresh token;
//   - prompt=consent, so Google shows the screen and returns a refresh token
//     again when a user re-connects (it omits it otherwise);
//   - include_granted_scopes=false, so the grant holds only these scopes and
//     not whatever else the user once granted this client.
func (o *OAuth) AuthCodeURL(state, verifier string, scopes []string) string {
	return o.config(scopes).AuthCodeURL(state,
		oauth2.AccessTypeOffline,
		oauth2.SetAuthURLParam("prompt", "consent"),
		oauth2.SetAuthURLParam("include_granted_scopes", "false"),
		oauth2.S256ChallengeOption(verifier),
	)
}

// Exchange trades the code from the callback, with the PKCE verifier of the
// same flow, for tokens. Errors: ErrInvalidGrant (errors.Is) when Google
// refuses the code; *OAuthError for other OAuth errors; *TemporaryError when
// no answer arrived.
func (o *OAuth) Exchange(ctx context.Context, code, verifier string) (Token, error) {
	if code == "" || verifier == "" {
		return Token{}, errors.New("google: exchange code: code and verifier are required")
	}
	tok, err := o.config(nil).Exchange(o.withClient(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Token{}, wrap("exchange code", classify(err))
	}
	return fromOAuth2(tok), nil
}

// Refresh gets a new access token for refreshToken. The result carries the
// refresh token to keep: a new one if Google rotated it, else the given one.
// Use it when an API call answers 401 although the access token looked
// valid; TokenSource covers the ordinary case. An empty refreshToken is
// ErrInvalidGrant: only a new consent can help.
func (o *OAuth) Refresh(ctx context.Context, refreshToken string) (Token, error) {
	if refreshToken == "" {
		// Without a refresh token the grant cannot be renewed: like
		// invalid_grant, only a new consent helps.
		return Token{}, fmt.Errorf("google: refresh token: none stored: %w", ErrInvalidGrant)
	}
	// An expired token with only a refresh token makes x/oauth2 refresh at
	// once; it keeps the old refresh token when the answer has none.
	src := o.config(nil).TokenSource(o.withClient(ctx), &oauth2.Token{RefreshToken: refreshToken})
	tok, err := src.Token()
	if err != nil {
		return Token{}, wrap("refresh token", classify(err))
	}
	return fromOAuth2(tok), nil
}

// TokenSource returns a source of valid access tokens starting from t. When
// the access token is about to expire it refreshes, and then calls
// onRefresh (if not nil) with the new token so the caller can persist it
// encrypted: the access token changed, and the refresh token too if Google
// rotated it. onRefresh runs before Token returns and never concurrently, so
// the caller sees refreshes in order.
//
// ctx is used for every refresh, so it should live as long as the source.
// Refresh errors are those of Refresh.
func (o *OAuth) TokenSource(ctx context.Context, t Token, onRefresh func(Token)) *TokenSource {
	return &TokenSource{o: o, ctx: ctx, cur: t, onRefresh: onRefresh}
}

// TokenSource is an oauth2.TokenSource that refreshes through OAuth and
// reports refreshes (see OAuth.TokenSource).
type TokenSource struct {
	o         *OAuth
	ctx       context.Context
	onRefresh func(Token)

	mu  sync.Mutex // guards cur and serialises refreshes
	cur Token
}

// Expire makes the next Token refresh, whatever the access token's
// expiry says: for an API call that answered 401 although the token
// looked valid (revoked access tokens, clock skew).
func (s *TokenSource) Expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur.Expiry = time.Unix(1, 0)
}

// Token returns a valid access token, refreshing when needed.
func (s *TokenSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := toOAuth2(s.cur); t.Valid() {
		return t, nil
	}
	next, err := s.o.Refresh(s.ctx, s.cur.RefreshToken)
	if err != nil {
		return nil, err
	}
	if len(next.Scopes) == 0 {
		next.Scopes = s.cur.Scopes
	}
	s.cur = next
	if s.onRefresh != nil {
		s.onRefresh(next)
	}
	return toOAuth2(next), nil
}

// Revoke revokes token (access or refresh) at Google, which ends the whole
// grant. A token Google no longer knows (400 invalid_token: revoked before
// or expired) counts as revoked, so Revoke can be retried safely.
func (o *OAuth) Revoke(ctx context.Context, token string) error {
	if token == "" {
		return errors.New("google: revoke token: no token")
	}
	// The token goes in the form body, as Google documents, never in the
	// URL, where proxies and access logs would keep it.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.revokeURL,
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return wrap("revoke token", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := o.client.Do(req)
	if err != nil {
		return wrap("revoke token", &TemporaryError{Err: err})
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return wrap("revoke token", &TemporaryError{Err: err})
	}
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	code, desc := parseOAuthError(resp.Header.Get("Content-Type"), body)
	if resp.StatusCode == http.StatusBadRequest && code == "invalid_token" {
		return nil
	}
	return wrap("revoke token", oauthErrorFrom(resp.StatusCode, code, desc, resp.Header, time.Now()))
}

// classify turns an x/oauth2 error into *OAuthError or *TemporaryError.
func classify(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		// re.Error() can quote the whole body; only the parsed fields are
		// kept.
		status, h := 0, http.Header{}
		if re.Response != nil {
			status, h = re.Response.StatusCode, re.Response.Header
		}
		return oauthErrorFrom(status, re.ErrorCode, re.ErrorDescription, h, time.Now())
	}
	// Anything else happened before a usable answer arrived (network,
	// timeout, cancellation, unreadable body). x/oauth2 builds these texts
	// from the transport error and the token URL, which hold no secrets.
	return &TemporaryError{Err: err}
}

func fromOAuth2(t *oauth2.Token) Token {
	out := Token{
		AccessToken:  t.AccessToken,
		RefreshToken: t.RefreshToken,
		TokenType:    t.TokenType,
		Expiry:       t.Expiry,
	}
	if s, ok := t.Extra("scope").(string); ok {
		out.Scopes = strings.Fields(s)
	}
	return out
}

func toOAuth2(t Token) *oauth2.Token {
	return &oauth2.Token{
		AccessToken:  t.AccessToken,
		RefreshToken: t.RefreshToken,
		TokenType:    t.TokenType,
		Expiry:       t.Expiry,
	}
}
