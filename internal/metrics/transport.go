package metrics

import (
	"net/http"
	"time"
)

// Transport times every request next makes as a request to provider. A
// response with status 5xx counts as an error; 4xx are answers (a 412 or
// 404 is part of CalDAV's conversation).
func (m *Metrics) Transport(provider string, next http.RoundTripper) http.RoundTripper {
	if m == nil {
		return next
	}
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		start := time.Now()
		resp, err := next.RoundTrip(r)
		failed := err
		if err == nil && resp.StatusCode >= 500 {
			failed = errServerError
		}
		m.ProviderRequest(provider, time.Since(start), failed)
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type serverError struct{}

func (serverError) Error() string { return "server error" }

var errServerError error = serverError{}
