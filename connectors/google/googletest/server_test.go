package googletest_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/connectors/google/googletest"
)

const (
	callback = "http://127.0.0.1:8080/oauth/google/callback"
	verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk" // RFC 7636 appendix B
	scope    = "https://www.googleapis.com/auth/calendar.events"
)

// code authorizes offline access as a browser would and returns the code.
func code(t *testing.T, s *googletest.Server) string {
	t.Helper()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"client_id":             {s.ClientID()},
		"redirect_uri":          {callback},
		"response_type":         {"code"},
		"scope":                 {scope},
		"access_type":           {"offline"},
		"code_challenge_method": {"S256"},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
	}
	back, err := s.Authorize(s.AuthURL()+"?"+q.Encode(), false)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	u, err := url.Parse(back)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("code")
}

type reply struct {
	status int
	body   map[string]any
}

// post sends form to the endpoint; basic, when set, is "id:secret" for HTTP
// basic client authentication.
func post(t *testing.T, s *googletest.Server, endpoint string, form url.Values, basic []string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(&r.body); err != nil {
		t.Fatalf("reply body: %v", err)
	}
	return r
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		form   func(s *googletest.Server, code string) url.Values
		basic  func(s *googletest.Server) []string
		status int
		error  string // "" means success
	}{
		{
			name: "client in the form",
			form: func(s *googletest.Server, code string) url.Values {
				return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}, "code_verifier": {verifier},
					"client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}}
			},
			status: 200,
		},
		{
			name: "client by HTTP basic",
			form: func(_ *googletest.Server, code string) url.Values {
				return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}, "code_verifier": {verifier}}
			},
			basic:  func(s *googletest.Server) []string { return []string{s.ClientID(), s.ClientSecret()} },
			status: 200,
		},
		{
			name: "wrong secret by HTTP basic",
			form: func(_ *googletest.Server, code string) url.Values {
				return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}, "code_verifier": {verifier}}
			},
			basic:  func(s *googletest.Server) []string { return []string{s.ClientID(), "nope"} },
			status: 401, error: "invalid_client",
		},
		{
			name: "unknown client",
			form: func(s *googletest.Server, code string) url.Values {
				return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"x"}, "client_secret": {s.ClientSecret()}}
			},
			status: 401, error: "invalid_client",
		},
		{
			name: "no client",
			form: func(_ *googletest.Server, code string) url.Values {
				return url.Values{"grant_type": {"authorization_code"}, "code": {code}}
			},
			status: 400, error: "invalid_request",
		},
		{
			name: "no verifier",
			form: func(s *googletest.Server, code string) url.Values {
				return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback},
					"client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}}
			},
			status: 400, error: "invalid_grant",
		},
		{
			name: "no grant type",
			form: func(s *googletest.Server, code string) url.Values {
				return url.Values{"code": {code}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}}
			},
			status: 400, error: "invalid_request",
		},
		{
			name: "password grant",
			form: func(s *googletest.Server, _ string) url.Values {
				return url.Values{"grant_type": {"password"}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}}
			},
			status: 400, error: "unsupported_grant_type",
		},
		{
			name: "unknown refresh token",
			form: func(s *googletest.Server, _ string) url.Values {
				return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"1//nope"}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}}
			},
			status: 400, error: "invalid_grant",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := googletest.Start(t)
			s.RegisterRedirect(callback)
			var basic []string
			if tc.basic != nil {
				basic = tc.basic(s)
			}
			r := post(t, s, s.TokenURL(), tc.form(s, code(t, s)), basic)
			if r.status != tc.status || r.body["error"] != nilIfEmpty(tc.error) {
				t.Fatalf("reply %d %v, want %d error %q", r.status, r.body, tc.status, tc.error)
			}
			if tc.error != "" {
				return
			}
			access, _ := r.body["access_token"].(string)
			if r.body["token_type"] != "Bearer" || r.body["expires_in"] != float64(3599) || r.body["scope"] != scope ||
				r.body["refresh_token"] == nil || !s.ValidAccessToken(access) {
				t.Errorf("token reply %v is not a valid Google token response", r.body)
			}
			if got, ok := s.GrantedScopes(access); !ok || len(got) != 1 || got[0] != scope {
				t.Errorf("GrantedScopes = %q, %t", got, ok)
			}
		})
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func TestRevokeEndpoint(t *testing.T) {
	t.Parallel()
	s := googletest.Start(t)
	s.RegisterRedirect(callback)
	r := post(t, s, s.TokenURL(), url.Values{"grant_type": {"authorization_code"}, "code": {code(t, s)}, "redirect_uri": {callback},
		"code_verifier": {verifier}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}}, nil)
	access, _ := r.body["access_token"].(string)
	refresh, _ := r.body["refresh_token"].(string)

	steps := []struct {
		name   string
		token  string
		status int
		error  string
	}{
		{"unknown token", "ya29.nope", 400, "invalid_token"},
		{"no token", "", 400, "invalid_request"},
		{"access token", access, 200, ""},
		{"its refresh token went with it", refresh, 400, "invalid_token"},
	}
	for i, st := range steps { // in order: each step depends on the last
		got := post(t, s, s.RevokeURL(), url.Values{"token": {st.token}}, nil)
		if got.status != st.status || got.body["error"] != nilIfEmpty(st.error) {
			t.Errorf("%s: reply %d %v, want %d %q", st.name, got.status, got.body, st.status, st.error)
		}
		if n := s.RevokeCalls(); n != i+1 {
			t.Errorf("%s: RevokeCalls = %d, want %d", st.name, n, i+1)
		}
	}
	if !s.Revoked(access) || !s.Revoked(refresh) || s.ValidAccessToken(access) || s.Revoked("ya29.nope") {
		t.Error("Revoked/ValidAccessToken do not reflect the revoked grant")
	}
}

func TestClockAndFailures(t *testing.T) {
	t.Parallel()
	s := googletest.Start(t)
	s.RegisterRedirect(callback)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code(t, s)}, "redirect_uri": {callback},
		"code_verifier": {verifier}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}}

	s.FailNext(2, http.StatusServiceUnavailable, `{"error":"backend"}`)
	for range 2 {
		if r := post(t, s, s.TokenURL(), form, nil); r.status != http.StatusServiceUnavailable {
			t.Fatalf("injected failure: reply %d", r.status)
		}
	}
	r := post(t, s, s.TokenURL(), form, nil)
	access, _ := r.body["access_token"].(string)
	if r.status != 200 || !s.ValidAccessToken(access) {
		t.Fatalf("after the failures: reply %d %v", r.status, r.body)
	}
	s.Advance(googletest.AccessTokenLifetime)
	if s.ValidAccessToken(access) {
		t.Error("access token valid after its lifetime")
	}
	refresh, _ := r.body["refresh_token"].(string)
	r = post(t, s, s.TokenURL(), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh},
		"client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}}, nil)
	fresh, _ := r.body["access_token"].(string)
	if r.status != 200 || !s.ValidAccessToken(fresh) || r.body["refresh_token"] != nil {
		t.Errorf("refresh: reply %d %v, want a new access token and no new refresh token", r.status, r.body)
	}
}
