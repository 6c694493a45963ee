package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	a := IdempotencyKey("booking", "1001", "confirmation")
	cases := []struct {
		name  string
		parts []string
		same  bool
	}{
		{"same parts", []string{"booking", "1001", "confirmation"}, true},
		{"other notice", []string{"booking", "1001", "reminder"}, false},
		{"parts joined differently", []string{"booking1", "001", "confirmation"}, false},
		{"fewer parts", []string{"booking", "1001confirmation"}, false},
	}
	for _, c := range cases {
		if got := IdempotencyKey(c.parts...); (got == a) != c.same {
			t.Errorf("%s: %q vs %q, same = %v, want %v", c.name, got, a, got == a, c.same)
		}
	}
	if len(a) > 255 || !strings.HasPrefix(a, "ik-") || strings.HasPrefix(a, "appt") {
		t.Errorf("key %q breaks the API's rules (1 to 255 printable ASCII, not appt…)", a)
	}
}

// TestErrors: refusals become *Error with the envelope's fields and the
// status; an answer without the envelope keeps the status.
func TestErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		status int
		body   string
		want   Error
	}{
		{"envelope with field", 422, `{"error":{"code":"invalid_field","message":"must be E.164","field":"to"}}`,
			Error{StatusCode: 422, Code: CodeInvalidField, Message: "must be E.164", Field: "to"}},
		{"envelope without field", 404, `{"error":{"code":"not_found","message":"no such notification"}}`,
			Error{StatusCode: 404, Code: CodeNotFound, Message: "no such notification"}},
		{"proxy page", 502, `<html>bad gateway</html>`, Error{StatusCode: 502, Message: "Bad Gateway"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(c.status)
				io.WriteString(w, c.body)
			}))
			t.Cleanup(srv.Close)
			cl, err := New(srv.URL, "key")
			if err != nil {
				t.Fatal(err)
			}
			_, err = cl.GetNotification(context.Background(), "ntf_1")
			var apiErr *Error
			if !errors.As(err, &apiErr) || *apiErr != c.want {
				t.Fatalf("err = %#v, want %#v", err, c.want)
			}
		})
	}
}

// TestRequests: method, escaped path, query, bearer key and body as the
// API expects them, through an injected *http.Client.
func TestRequests(t *testing.T) {
	t.Parallel()
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(r.Method + " " + r.URL.EscapedPath() + "?" + r.URL.RawQuery + " " + r.Header.Get("Authorization") + " " + string(b))
		io.WriteString(w, `{}`)
	}))
	t.Cleanup(srv.Close)
	var used atomic.Bool
	hc := &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		used.Store(true)
		return http.DefaultTransport.RoundTrip(r)
	})}
	cl, err := New(srv.URL+"/", "s3cret", WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"id with slash and colon", func() error { _, err := cl.GetConnection(ctx, "con/1:a"); return err },
			"GET /v1/connections/con%2F1:a? Bearer s3cret "},
		{"list by subject", func() error { _, err := cl.ListConnections(ctx, "anna m"); return err },
			"GET /v1/connections?subject_id=anna+m Bearer s3cret "},
		{"sync full", func() error { _, err := cl.SyncConnection(ctx, "con_1", true); return err },
			`POST /v1/connections/con_1/sync? Bearer s3cret {"full":true}`},
		{"cancel appointment without notice", func() error { _, err := cl.CancelAppointment(ctx, "apt-1", nil); return err },
			"DELETE /v1/appointments/apt-1? Bearer s3cret "},
		{"restrict", func() error { _, err := cl.RestrictSubject(ctx, "cust-7"); return err },
			"POST /v1/subjects/cust-7/restrict? Bearer s3cret "},
	}
	for _, c := range cases {
		if err := c.call(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if g := got.Load().(string); g != c.want {
			t.Errorf("%s: sent %q, want %q", c.name, g, c.want)
		}
	}
	if !used.Load() {
		t.Errorf("the injected http.Client was not used")
	}
	if _, err := cl.GetNotification(ctx, ""); err == nil {
		t.Errorf("an empty id was sent")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := cl.GetNotification(cancelled, "ntf_1"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v, want context.Canceled", err)
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNewRefusesBadArguments(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ url, key string }{{"termind.example.org", "k"}, {"ftp://x", "k"}, {"https://x", ""}} {
		if _, err := New(c.url, c.key); err == nil {
			t.Errorf("New(%q, %q) accepted", c.url, c.key)
		}
	}
}
