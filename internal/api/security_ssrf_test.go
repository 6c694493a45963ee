package api

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/termind/termind/connectors/caldav"
)

// TestCalDAVConnectSSRF tries the address forms an attacker would use to
// make termind's CalDAV connect reach internal services, with the
// production rules (TERMIND_CALDAV_ALLOW_PRIVATE off). Every one is
// refused naming url, nothing is stored, the target server sees no
// request, and the password never appears in an answer or the log.
func TestCalDAVConnectSSRF(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(target.Close)
	p := target.URL[strings.LastIndex(target.URL, ":")+1:]

	// A server on 127.0.0.1, let through by exception so that it can play
	// the public server, that redirects to wherever to says.
	var to atomic.Value
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, to.Load().(string), http.StatusFound)
	}))
	t.Cleanup(redirector.Close)

	const password = "ssrf-pw-Lq2vX9"
	// refused: the address rule answers 422 without dialing. A name that
	// does not resolve may instead end in 502 upstream_unreachable; either
	// way nothing is reached.
	cases := []struct {
		name, url  string
		redirect   bool // url is the redirect target, the request goes to the redirector
		mayBeNoDNS bool
	}{
		{"IPv4 loopback", "http://127.0.0.1:" + p + "/", false, false},
		{"IPv4 loopback, other address", "http://127.0.0.2:" + p + "/", false, false},
		{"IPv4 loopback, trailing dot", "http://127.0.0.1.:" + p + "/", false, true},
		{"IPv4 loopback, short form", "http://127.1:" + p + "/", false, true},
		{"IPv4 loopback, decimal", "http://2130706433:" + p + "/", false, true},
		{"IPv4 loopback, octal", "http://0177.0.0.1:" + p + "/", false, true},
		{"IPv4 loopback, hex", "http://0x7f.0.0.1:" + p + "/", false, true},
		{"IPv4 loopback, zero-padded", "http://127.000.000.001:" + p + "/", false, true},
		{"IPv6 loopback", "http://[::1]:" + p + "/", false, false},
		{"IPv6 loopback, long form", "http://[0:0:0:0:0:0:0:1]:" + p + "/", false, false},
		{"IPv4-mapped IPv6 loopback", "http://[::ffff:127.0.0.1]:" + p + "/", false, false},
		{"IPv4-mapped IPv6 loopback, hex", "http://[::ffff:7f00:1]:" + p + "/", false, false},
		{"IPv4-compatible IPv6 loopback", "http://[::127.0.0.1]:" + p + "/", false, false},
		{"NAT64 of loopback", "http://[64:ff9b::7f00:1]:" + p + "/", false, false},
		{"6to4 of loopback", "http://[2002:7f00:1::1]:" + p + "/", false, false},
		{"unspecified IPv4", "http://0.0.0.0:" + p + "/", false, false},
		{"unspecified IPv4, short", "http://0:" + p + "/", false, true},
		{"unspecified IPv6", "http://[::]:" + p + "/", false, false},
		{"private 10/8", "https://10.0.0.1/", false, false},
		{"private 172.16/12", "https://172.16.5.4/", false, false},
		{"private 192.168/16", "https://192.168.1.1/", false, false},
		{"unique local IPv6", "https://[fd00::1]/", false, false},
		{"link-local metadata", "http://169.254.169.254/latest/meta-data/", false, false},
		{"link-local metadata, mapped", "http://[::ffff:169.254.169.254]/", false, false},
		{"link-local IPv6", "http://[fe80::1]/", false, false},
		{"carrier-grade NAT", "https://100.64.0.1/", false, false},
		{"multicast", "https://224.0.0.1/", false, false},
		{"broadcast", "https://255.255.255.255/", false, false},
		{"localhost", "http://localhost:" + p + "/", false, true},
		{"localhost, trailing dot", "http://localhost.:" + p + "/", false, true},
		{"localhost, upper case", "http://LOCALHOST:" + p + "/", false, true},
		{"file scheme", "file:///etc/passwd", false, false},
		{"gopher scheme", "gopher://127.0.0.1:" + p + "/", false, false},
		{"redirect to loopback", target.URL + "/", true, false},
		{"redirect to IPv6 loopback", "http://[::1]:" + p + "/", true, false},
		{"redirect to metadata", "http://169.254.169.254/latest/meta-data/", true, false},
		{"redirect to private", "http://10.1.2.3/", true, false},
		{"redirect to mapped loopback", "http://[::ffff:7f00:1]:" + p + "/", true, false},
		{"redirect to file", "file:///etc/passwd", true, false},
	}
	allowRedirector := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	forEachDialect(t, func(t *testing.T, dialect string) {
		// Plain http allowed so that the address rule, not the scheme
		// rule, is what refuses.
		direct := newEnv(t, dialect, withCalDAV(NewCalDAVConnector(caldav.NewHTTPClient(caldav.Options{AllowHTTP: true, Timeout: 5 * time.Second}))))
		viaRedirect := newEnv(t, dialect, withCalDAV(NewCalDAVConnector(caldav.NewHTTPClient(caldav.Options{AllowHTTP: true, Allow: allowRedirector, Timeout: 5 * time.Second}))))
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e, u := direct, c.url
				if c.redirect {
					e, u = viaRedirect, redirector.URL+"/"
					to.Store(c.url)
				}
				body := caldavBody(u)
				body["password"] = password
				start := time.Now()
				w := e.do("POST", "/v1/connections/caldav", e.token, mustJSON(t, body))
				switch {
				case w.Code == http.StatusUnprocessableEntity:
					wantError(t, w, http.StatusUnprocessableEntity, "invalid_field", "url")
				case c.mayBeNoDNS && w.Code == http.StatusBadGateway:
					wantError(t, w, http.StatusBadGateway, "upstream_unreachable", "url")
				default:
					t.Fatalf("status %d, want 422 invalid_field url: %s", w.Code, w.Body)
				}
				if strings.Contains(w.Body.String(), password) {
					t.Errorf("the answer holds the password: %s", w.Body)
				}
				if took := time.Since(start); took > 3*time.Second {
					t.Errorf("refusal took %v", took)
				}
				e.wantNothingStored(t)
			})
		}
		for _, e := range []*testEnv{direct, viaRedirect} {
			if strings.Contains(e.logs.String(), password) {
				t.Errorf("the log holds the password")
			}
		}
	})
	if n := hits.Load(); n != 0 {
		t.Errorf("the internal target received %d requests", n)
	}
}
