// Package client is the Go client of termind's HTTP API, for booking
// systems: notifications, appointments, consents, calendar connections and
// data-subject rights. Every call takes a context; refusals come back as
// *Error with the API's code, message, field and HTTP status:
//
//	c, err := client.New("https://termind.example.org", apiKey)
//	n, err := c.CreateNotification(ctx, client.NotificationRequest{
//		IdempotencyKey: client.IdempotencyKey("booking", "1001", "confirmation"),
//		Channel: client.ChannelEmail, To: "anna@example.org", Locale: "de",
//		Template: "confirmation", Purpose: client.PurposeTransactional, Data: data,
//	})
//	var apiErr *client.Error
//	if errors.As(err, &apiErr) && apiErr.Code == client.CodeInvalidField { … apiErr.Field … }
//
// The wire format is described in internal/api/openapi.yaml (served at
// GET /openapi.yaml).
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to one termind deployment with one API key (which decides
// the tenant). It is safe for concurrent use.
type Client struct {
	base      *url.URL
	apiKey    string
	http      *http.Client
	userAgent string
}

// Option changes a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its requests through hc (timeouts,
// proxies, tracing, tests). The default has a 30 s timeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client for the API at baseURL (scheme and host, e.g.
// https://termind.example.org) authenticating with apiKey.
func New(baseURL, apiKey string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("termind client: base URL must be an absolute http(s) URL, got %q", baseURL)
	}
	if apiKey == "" {
		return nil, errors.New("termind client: an API key is required")
	}
	c := &Client{base: u, apiKey: apiKey, http: &http.Client{Timeout: 30 * time.Second}, userAgent: "termind-go-client"}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Error codes of the API (see the Error schema of openapi.yaml). They are
// stable; messages are not.
const (
	CodeMalformedJSON       = "malformed_json"
	CodeWrongType           = "wrong_type"
	CodeUnknownField        = "unknown_field"
	CodeTooLarge            = "too_large"
	CodeInvalidField        = "invalid_field"
	CodeUnauthenticated     = "unauthenticated"
	CodeForbidden           = "forbidden"
	CodeNotFound            = "not_found"
	CodeMethodNotAllowed    = "method_not_allowed"
	CodeIdempotencyReused   = "idempotency_key_reused"
	CodeNotCancellable      = "not_cancellable"
	CodeInternal            = "internal"
	CodeNotConfigured       = "not_configured"
	CodeUpstreamUnreachable = "upstream_unreachable"
	CodeInvalidState        = "invalid_state"
	CodeConnectionNotActive = "connection_not_active"
)

// Error is a refusal by the API: {"error": {"code", "message", "field"}}
// and the HTTP status. An answer without that envelope (a proxy's error
// page) has an empty Code and the status text as Message.
type Error struct {
	StatusCode int
	Code       string
	Message    string
	// Field names the offending input ("to", "items[3].locale"); "" when
	// the refusal is not about one field.
	Field string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("termind: %d %s: %s: %s", e.StatusCode, e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("termind: %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// IdempotencyKey derives a stable key from what identifies the message in
// the booking system (booking id, kind of notice, recipient …), so that a
// retried request can never send twice: the same parts give the same key.
// Parts are separated unambiguously before hashing.
func IdempotencyKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return "ik-" + hex.EncodeToString(h.Sum(nil))
}

// do sends one request to path (already escaped: build it with esc); body
// (if not nil) is sent as JSON and a 2xx answer is decoded into out (if
// not nil). It returns the HTTP status.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) (int, error) {
	u, err := url.Parse(c.base.String() + path)
	if err != nil {
		return 0, fmt.Errorf("termind %s %s: %w", method, path, err)
	}
	if query != nil {
		u.RawQuery = query.Encode()
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("termind %s %s: encode: %w", method, path, err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return 0, fmt.Errorf("termind %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("termind %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("termind %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, apiError(resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("termind %s %s: decode %d answer: %w", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, nil
}

func apiError(status int, data []byte) *Error {
	var env struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &env) == nil && env.Error != nil && env.Error.Code != "" {
		return &Error{StatusCode: status, Code: env.Error.Code, Message: env.Error.Message, Field: env.Error.Field}
	}
	return &Error{StatusCode: status, Message: http.StatusText(status)}
}

// esc escapes an id as one path segment (ids may hold ':' '@' '+' '/').
func esc(id string) string { return url.PathEscape(id) }
