package caldav_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/connectors/caldav/caldavtest"
)

// privateClient reaches Radicale on 127.0.0.1, as with
// TERMIND_CALDAV_ALLOW_PRIVATE=true.
func privateClient() *http.Client {
	return caldav.NewHTTPClient(caldav.Options{AllowPrivate: true, Timeout: 10 * time.Second})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantKind fails unless err is an *caldav.Error of kind and its text
// contains every part.
func wantKind(t *testing.T, err, kind error, parts ...string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error = %v, want kind %v", err, kind)
	}
	var e *caldav.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not a *caldav.Error", err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestConnectExistingCalendar(t *testing.T) {
	t.Parallel()
	r := caldavtest.StartRadicale(t)
	work := r.MakeCalendar(t, "alice", "Office")
	private := r.MakeCalendar(t, "alice", "Private")
	c := privateClient()

	tests := []struct {
		name     string
		url      string
		calendar string
		want     string // collection URL
	}{
		{"display name", r.URL, "Private", private},
		{"display name ignoring case", r.URL, "private", private},
		{"path", r.URL, "/alice/office/", work},
		{"path without slash", r.URL, "/alice/office", work},
		{"URL", r.URL, work, work},
		{"segment below the home", r.URL, "office", work},
		{"URL pointing at the calendar", private, "", private},
		{"principal URL, named", r.URL + "alice/", "Office", work},
		{"well-known URL", r.URL + ".well-known/caldav", "Private", private},
		{"server URL without slash", strings.TrimSuffix(r.URL, "/"), "Office", work},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cal, err := caldav.Connect(testContext(t), c, caldav.ConnectParams{
				URL: tt.url, Username: "alice", Password: "secret", Calendar: tt.calendar,
			})
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			if cal.URL != tt.want {
				t.Errorf("URL = %q, want %q", cal.URL, tt.want)
			}
			if cal.Created {
				t.Error("Created = true for an existing calendar")
			}
		})
	}

	t.Run("fields", func(t *testing.T) {
		t.Parallel()
		cal, err := caldav.Connect(testContext(t), c, caldav.ConnectParams{
			URL: r.URL, Username: "alice", Password: "secret", Calendar: "Office",
		})
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		if cal.Path != "/alice/office/" || cal.Name != "Office" {
			t.Errorf("Path, Name = %q, %q; want /alice/office/, Work", cal.Path, cal.Name)
		}
		if cal.CTag == "" || cal.SyncToken == "" || !cal.SupportsSyncCollection {
			t.Errorf("Radicale reports ctag, sync-token and sync-collection; got %+v", cal)
		}
	})

	t.Run("first calendar when none is named", func(t *testing.T) {
		t.Parallel()
		cal, err := caldav.Connect(testContext(t), c, caldav.ConnectParams{
			URL: r.URL, Username: "alice", Password: "secret",
		})
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		if cal.URL != work && cal.URL != private {
			t.Errorf("URL = %q, want one of alice's calendars", cal.URL)
		}
	})
}

func TestConnectSkipsCalendarsWithoutEvents(t *testing.T) {
	t.Parallel()
	r := caldavtest.StartRadicale(t)
	body := `<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>` +
		`<D:displayname>Tasks</D:displayname><C:supported-calendar-component-set><C:comp name="VTODO"/>` +
		`</C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>`
	if status, _, resp := r.Do(t, "alice", "MKCALENDAR", "/alice/tasks/", nil, body); status != http.StatusCreated {
		t.Fatalf("MKCALENDAR tasks: %d %s", status, resp)
	}
	_, err := caldav.Connect(testContext(t), privateClient(), caldav.ConnectParams{
		URL: r.URL, Username: "alice", Password: "secret", Calendar: "Tasks",
	})
	wantKind(t, err, caldav.ErrCalendarNotFound, `no calendar named "Tasks"`)

	events := r.MakeCalendar(t, "alice", "Events")
	cal, err := caldav.Connect(testContext(t), privateClient(), caldav.ConnectParams{
		URL: r.URL, Username: "alice", Password: "secret",
	})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if cal.URL != events {
		t.Errorf("URL = %q, want the only calendar for events %q", cal.URL, events)
	}
}

func TestConnectCreatesCalendar(t *testing.T) {
	t.Parallel()
	r := caldavtest.StartRadicale(t)
	c := privateClient()
	params := caldav.ConnectParams{URL: r.URL, Username: "alice", Password: "secret", CreateName: "Termine <Praxis & Co>"}

	cal, err := caldav.Connect(testContext(t), c, params)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if !cal.Created || cal.Name != params.CreateName || !strings.HasPrefix(cal.Path, "/alice/") {
		t.Fatalf("Connect = %+v, want a new calendar named %q in alice's home", cal, params.CreateName)
	}
	if cal.SyncToken == "" || !cal.SupportsSyncCollection {
		t.Errorf("new calendar lacks sync support: %+v", cal)
	}

	// The server lists it, for events only, under the name asked for.
	status, _, resp := r.Do(t, "alice", "PROPFIND", "/alice/", http.Header{"Depth": {"1"}}, `<?xml version="1.0"?>
<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:displayname/><C:supported-calendar-component-set/></D:prop></D:propfind>`)
	if status != http.StatusMultiStatus {
		t.Fatalf("PROPFIND home: %d %s", status, resp)
	}
	for _, want := range []string{cal.Path, "Termine &lt;Praxis &amp; Co&gt;", `<C:comp name="VEVENT" />`} {
		if !strings.Contains(resp, want) {
			t.Errorf("PROPFIND home lacks %q:\n%s", want, resp)
		}
	}
	if strings.Contains(resp, "VTODO") {
		t.Errorf("new calendar accepts more than events:\n%s", resp)
	}

	// Connecting again finds it instead of creating a second one.
	again, err := caldav.Connect(testContext(t), c, params)
	if err != nil {
		t.Fatalf("second Connect: %v", err)
	}
	if again.Created || again.Path != cal.Path {
		t.Errorf("second Connect = %+v, want the calendar created first (%s)", again, cal.Path)
	}
}

func TestConnectCalendarNotFound(t *testing.T) {
	t.Parallel()
	r := caldavtest.StartRadicale(t)
	r.MakeCalendar(t, "alice", "Office")
	c := privateClient()

	_, err := caldav.Connect(testContext(t), c, caldav.ConnectParams{
		URL: r.URL, Username: "alice", Password: "secret", Calendar: "Holidays",
	})
	wantKind(t, err, caldav.ErrCalendarNotFound, "calendar not found", `"Holidays"`)

	// bob has no calendar at all.
	_, err = caldav.Connect(testContext(t), c, caldav.ConnectParams{
		URL: r.URL, Username: "bob", Password: "hunter2",
	})
	wantKind(t, err, caldav.ErrCalendarNotFound, "no calendar for events")
}

// davProxy puts Radicale behind a reverse proxy at /dav/, the way its
// documentation describes, with a web page at / that does not speak
// WebDAV. refuseMkcalendar makes the proxy answer MKCALENDAR with 403.
func davProxy(t *testing.T, r *caldavtest.Radicale, wellKnown string, refuseMkcalendar bool) *httptest.Server {
	t.Helper()
	target, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.URL.Path = strings.TrimPrefix(pr.In.URL.Path, "/dav")
		pr.Out.Header.Set("X-Script-Name", "/dav")
	}}
	mux := http.NewServeMux()
	mux.Handle("/dav/", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if refuseMkcalendar && req.Method == "MKCALENDAR" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		proxy.ServeHTTP(w, req)
	}))
	mux.HandleFunc("/.well-known/caldav", func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, wellKnown, http.StatusMovedPermanently)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html><body>Praxis Dr. Beispiel</body></html>"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestConnectWellKnownBehindProxy(t *testing.T) {
	t.Parallel()
	r := caldavtest.StartRadicale(t)
	r.MakeCalendar(t, "alice", "Office")
	c := privateClient()

	srv := davProxy(t, r, "/dav/", false)
	cal, err := caldav.Connect(testContext(t), c, caldav.ConnectParams{
		URL: srv.URL, Username: "alice", Password: "secret", Calendar: "Office",
	})
	if err != nil {
		t.Fatalf("Connect via /.well-known/caldav: %v", err)
	}
	if want := srv.URL + "/dav/alice/office/"; cal.URL != want {
		t.Errorf("URL = %q, want %q", cal.URL, want)
	}

	// A well-known redirect to another host is not followed: the
	// credentials stay with the server the user named.
	other := davProxy(t, r, "http://localhost:"+r.URL[strings.LastIndex(r.URL, ":")+1:], false)
	_, err = caldav.Connect(testContext(t), c, caldav.ConnectParams{
		URL: other.URL, Username: "alice", Password: "secret",
	})
	wantKind(t, err, caldav.ErrNotCalDAV, "points to another server")

	// Creation refused by the server.
	refusing := davProxy(t, r, "/dav/", true)
	_, err = caldav.Connect(testContext(t), c, caldav.ConnectParams{
		URL: refusing.URL + "/dav/", Username: "alice", Password: "secret", CreateName: "Termine",
	})
	wantKind(t, err, caldav.ErrCalendarNotFound, "refused to create the calendar (403 Forbidden)")
}

func TestConnectCredentialsRejected(t *testing.T) {
	t.Parallel()
	r := caldavtest.StartRadicale(t)
	r.MakeCalendar(t, "bob", "Office")
	c := privateClient()
	tests := []struct {
		name, url, user, pass, status string
	}{
		{"wrong password", r.URL, "alice", "wrong", "401"},
		{"unknown user", r.URL, "mallory", "secret", "401"},
		{"no credentials", r.URL, "", "", "401"},
		{"someone else's calendar", r.URL + "bob/office/", "alice", "secret", "403"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := caldav.Connect(testContext(t), c, caldav.ConnectParams{URL: tt.url, Username: tt.user, Password: tt.pass})
			wantKind(t, err, caldav.ErrCredentialsRejected, "credentials rejected by the server", tt.status)
			if tt.pass != "" && strings.Contains(err.Error(), tt.pass) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

// TestConnectWrongPath: a path the server answers with 404 is an error,
// not a reason to fall back to discovery; otherwise a mistyped calendar URL
// would silently connect another calendar. (Radicale treats the first path
// segment as a user, so /nowhere/ would be someone else's: 403.)
func TestConnectWrongPath(t *testing.T) {
	t.Parallel()
	r := caldavtest.StartRadicale(t)
	r.MakeCalendar(t, "alice", "Office")
	for _, path := range []string{"alice/offce/", "alice/office/nested/"} {
		_, err := caldav.Connect(testContext(t), privateClient(), caldav.ConnectParams{
			URL: r.URL + path, Username: "alice", Password: "secret",
		})
		wantKind(t, err, caldav.ErrNotCalDAV, "404 Not Found")
	}
}

func TestConnectNotCalDAV(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		reason  string
	}{
		{"web page for every method", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html><body>Hello</body></html>"))
		}, "200 OK instead of a WebDAV multi-status"},
		{"PROPFIND not allowed", func(w http.ResponseWriter, req *http.Request) {
			if req.Method == "PROPFIND" {
				w.WriteHeader(http.StatusMethodNotAllowed)
				return
			}
			_, _ = w.Write([]byte("hello"))
		}, "does not support WebDAV (405 Method Not Allowed)"},
		{"WebDAV without CalDAV", func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusMultiStatus)
			_, _ = w.Write([]byte(`<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>` +
				req.URL.Path + `</D:href><D:propstat><D:prop><D:current-user-principal/></D:prop>` +
				`<D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response></D:multistatus>`))
		}, "lacks the CalDAV properties"},
		{"garbage multi-status", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusMultiStatus)
			_, _ = w.Write([]byte("not xml"))
		}, "lacks the CalDAV properties"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close)
			_, err := caldav.Connect(testContext(t), privateClient(), caldav.ConnectParams{
				URL: srv.URL, Username: "alice", Password: "secret",
			})
			wantKind(t, err, caldav.ErrNotCalDAV, "not a CalDAV server", tt.reason)
		})
	}
}

func TestConnectUnreachable(t *testing.T) {
	t.Parallel()

	t.Run("closed port", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, err = caldav.Connect(testContext(t), privateClient(), caldav.ConnectParams{URL: "http://" + addr + "/"})
		wantKind(t, err, caldav.ErrUnreachable, "server unreachable: connection refused")
	})

	t.Run("server down, then up again", func(t *testing.T) {
		t.Parallel()
		r := caldavtest.StartRadicale(t)
		r.MakeCalendar(t, "alice", "Office")
		params := caldav.ConnectParams{URL: r.URL, Username: "alice", Password: "secret"}
		r.Stop()
		_, err := caldav.Connect(testContext(t), privateClient(), params)
		wantKind(t, err, caldav.ErrUnreachable, "connection refused")
		r.Start()
		if _, err := caldav.Connect(testContext(t), privateClient(), params); err != nil {
			t.Fatalf("Connect after restart: %v", err)
		}
	})

	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake failure is expected
		srv.StartTLS()
		t.Cleanup(srv.Close)
		_, err := caldav.Connect(testContext(t), privateClient(), caldav.ConnectParams{URL: srv.URL})
		wantKind(t, err, caldav.ErrUnreachable, "TLS certificate is not trusted")
	})

	t.Run("https to a plain http port", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(srv.Close)
		_, err := caldav.Connect(testContext(t), privateClient(), caldav.ConnectParams{URL: strings.Replace(srv.URL, "http:", "https:", 1)})
		wantKind(t, err, caldav.ErrUnreachable, "TLS handshake failed")
	})

	t.Run("no answer in time", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		c := caldav.NewHTTPClient(caldav.Options{AllowPrivate: true, Timeout: 300 * time.Millisecond})
		_, err := caldav.Connect(testContext(t), c, caldav.ConnectParams{URL: srv.URL})
		wantKind(t, err, caldav.ErrUnreachable, "timed out")
	})

	t.Run("server error", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		t.Cleanup(srv.Close)
		_, err := caldav.Connect(testContext(t), privateClient(), caldav.ConnectParams{URL: srv.URL})
		wantKind(t, err, caldav.ErrUnreachable, "503 Service Unavailable")
	})
}

func TestConnectInvalidURL(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"", "dav.example.com/alice", "ftp://dav.example.com/", "https://", "https://alice:secret@dav.example.com/", "mailto:alice@example.com", "https://dav.example.com/%zz"} {
		_, err := caldav.Connect(testContext(t), caldav.NewHTTPClient(caldav.Options{}), caldav.ConnectParams{URL: raw})
		wantKind(t, err, caldav.ErrInvalidURL)
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("error %q repeats the password from the URL", err)
		}
	}
}

func TestConnectForbiddenAddress(t *testing.T) {
	t.Parallel()
	var hit atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit.Store(true) }))
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	// http allowed, private addresses not: each case proves the address rule.
	c := caldav.NewHTTPClient(caldav.Options{AllowHTTP: true})
	for _, u := range []string{srv.URL, "http://localhost:" + port + "/", "http://10.1.2.3/", "http://[::ffff:127.0.0.1]:" + port + "/"} {
		_, err := caldav.Connect(testContext(t), c, caldav.ConnectParams{URL: u, Username: "alice", Password: "secret"})
		wantKind(t, err, caldav.ErrForbiddenAddress, "address not allowed: the URL resolves to a")
	}
	if hit.Load() {
		t.Error("a refused address received a request")
	}

	_, err := caldav.Connect(testContext(t), caldav.NewHTTPClient(caldav.Options{}), caldav.ConnectParams{URL: "http://dav.example.com/"})
	wantKind(t, err, caldav.ErrForbiddenAddress, "only https URLs are allowed")

	// An exception for one address lets exactly that address through.
	allowed := caldav.NewHTTPClient(caldav.Options{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	_, err = caldav.Connect(testContext(t), allowed, caldav.ConnectParams{URL: srv.URL})
	wantKind(t, err, caldav.ErrNotCalDAV)
}

func TestConnectContextCanceled(t *testing.T) {
	t.Parallel()
	r := caldavtest.StartRadicale(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := caldav.Connect(ctx, privateClient(), caldav.ConnectParams{URL: r.URL, Username: "alice", Password: "secret"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	var e *caldav.Error
	if errors.As(err, &e) {
		t.Errorf("a cancelled context is not the server's fault, got %v", e)
	}
}
