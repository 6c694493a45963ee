package google

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidGrant means Google no longer accepts the code or refresh token:
// the code was used already, expired or does not match its PKCE verifier, or
// the user revoked access. Retrying cannot help; callers record the
// connection as broken. Test with errors.Is; errors.As finds the
// *OAuthError with Google's description.
var ErrInvalidGrant = errors.New("google: invalid_grant")

// OAuthError is an error answer from Google's token or revoke endpoint
// (RFC 6749 section 5.2). Its Error text is safe to log: it carries Google's
// error code and description, never a token, code, verifier or secret.
type OAuthError struct {
	// Status is the HTTP status of the answer.
	Status int
	// Code is the OAuth error code ("invalid_grant", "invalid_client",
	// "redirect_uri_mismatch"); empty when the body was not an OAuth error,
	// e.g. a proxy's 502 page.
	Code        string
	Description string
	// Wait is the server's Retry-After, 0 when it gave none.
	Wait time.Duration
}

func (e *OAuthError) Error() string {
	var b strings.Builder
	b.WriteString("HTTP " + strconv.Itoa(e.Status))
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Description != "" {
		b.WriteString(": " + e.Description)
	}
	return b.String()
}

// Is lets errors.Is(err, ErrInvalidGrant) match an invalid_grant answer.
func (e *OAuthError) Is(target error) bool {
	return target == ErrInvalidGrant && e.Code == "invalid_grant"
}

// Temporary reports whether the same request may succeed later: rate limits
// and server errors. Every 4xx OAuth error is final.
func (e *OAuthError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// RetryAfter is the server's Retry-After, 0 when it gave none.
func (e *OAuthError) RetryAfter() time.Duration { return e.Wait }

// TemporaryError is a failure without an answer from Google: connection
// refused or reset, a timeout, a cancelled context, or a body that could not
// be read. The request may succeed later.
type TemporaryError struct {
	Err error
}

func (e *TemporaryError) Error() string { return "no usable answer: " + e.Err.Error() }

func (e *TemporaryError) Unwrap() error { return e.Err }

// Temporary is always true.
func (e *TemporaryError) Temporary() bool { return true }

// RetryAfter is always 0: there was no answer to carry a hint.
func (e *TemporaryError) RetryAfter() time.Duration { return 0 }

// oauthErrorFrom builds an *OAuthError from an HTTP answer.
func oauthErrorFrom(status int, code, description string, h http.Header, now time.Time) *OAuthError {
	// Descriptions are short texts from Google; the cap keeps a misbehaving
	// server from filling logs.
	if len(description) > 200 {
		description = description[:200]
	}
	e := &OAuthError{Status: status, Code: code, Description: description}
	if e.Temporary() {
		e.Wait = parseRetryAfter(h.Get("Retry-After"), now)
	}
	return e
}

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110 10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// wrap prefixes err with the package and the step that failed.
func wrap(op string, err error) error {
	return fmt.Errorf("google: %s: %w", op, err)
}

// parseOAuthError reads the error and error_description of an OAuth error
// body, JSON as Google sends it or form-encoded as some servers do. Other
// bodies (HTML error pages) give empty strings.
func parseOAuthError(contentType string, body []byte) (code, description string) {
	mediaType, _, _ := mime.ParseMediaType(contentType)
	if mediaType == "application/x-www-form-urlencoded" {
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return "", ""
		}
		return v.Get("error"), v.Get("error_description")
	}
	var e struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	return e.Error, e.ErrorDescription
}
