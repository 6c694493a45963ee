package admin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynqmon"

	"github.com/termind/termind/internal/admin"
	"github.com/termind/termind/internal/secrets"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	"github.com/termind/termind/queue"
	"github.com/termind/termind/queue/queuetest"
)

const queueName = "termind"

// fixture is the admin pages on a real store and a real Redis (with the
// real asynq dashboard), served over HTTP.
type fixture struct {
	t       *testing.T
	url     string
	store   *store.Store
	tenant  store.Tenant
	token   string // admin key
	inspect *queue.Inspector
	logs    *syncBuffer
}

// syncBuffer collects the handler's log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newFixture(t *testing.T, dialect string, cfg admin.Config) *fixture {
	t.Helper()
	s := storetest.New(t, dialect)
	key := make([]byte, secrets.KeySize)
	_, _ = rand.Read(key)
	kr, err := secrets.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	s.UseSealer(kr)
	tn, token := storetest.NewTenant(t, s)

	r, err := queue.OpenRedis(ctx(t), queuetest.RedisURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	q := queue.NewClient(r, queueName)
	t.Cleanup(func() { q.Close() })
	in := queue.NewInspector(r, queueName)
	t.Cleanup(func() { in.Close() })
	dash := asynqmon.New(asynqmon.Options{RootPath: "/admin/queues", RedisConnOpt: r.ConnOpt()})
	t.Cleanup(func() { dash.Close() })

	logs := &syncBuffer{}
	h, err := admin.New(cfg, admin.Deps{Store: s, Queue: q, Queues: dash, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{t: t, url: srv.URL, store: s, tenant: tn, token: token, inspect: in, logs: logs}
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// browser is a cookie-keeping client that does not follow redirects, so
// that tests see them.
func (f *fixture) browser() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (f *fixture) get(c *http.Client, path string) answer {
	f.t.Helper()
	resp, err := c.Get(f.url + path)
	if err != nil {
		f.t.Fatal(err)
	}
	return read(f.t, resp)
}

func (f *fixture) post(c *http.Client, path string, form url.Values) answer {
	f.t.Helper()
	resp, err := c.PostForm(f.url+path, form)
	if err != nil {
		f.t.Fatal(err)
	}
	return read(f.t, resp)
}

func read(t *testing.T, resp *http.Response) answer {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of a page's forms.
func csrf(t *testing.T, a answer) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("no csrf field in page (status %d): %.300s", a.status, a.body)
	}
	return m[1]
}

// signIn posts key through the sign-in form.
func (f *fixture) signIn(c *http.Client, key string) answer {
	f.t.Helper()
	form := f.get(c, "/admin/signin")
	return f.post(c, "/admin/signin", url.Values{"csrf": {csrf(f.t, form)}, "api_key": {key}, "next": {"/admin/"}})
}

// signedIn returns a browser signed in with the fixture's admin key.
func (f *fixture) signedIn() *http.Client {
	f.t.Helper()
	c := f.browser()
	if a := f.signIn(c, f.token); a.status != http.StatusSeeOther {
		f.t.Fatalf("sign in: status %d: %.300s", a.status, a.body)
	}
	return c
}

// connection stores a CalDAV connection with credentials and the consents
// it rests on, as POST /v1/connections/caldav does.
func (f *fixture) connection(subject string) store.Connection {
	f.t.Helper()
	c, err := f.store.CreateConnection(ctx(f.t), store.Connection{
		TenantID: f.tenant.ID, SubjectID: subject, Provider: store.ProviderCalDAV,
		CalendarURL: "https://dav.example.net/cal/" + subject + "/", CalendarName: "Work",
		Privacy: store.PrivacyBusy, Direction: store.DirectionBoth, KeepCopiesOnRevoke: true,
	}, []byte(`{"username":"u","password":"p"}`), []store.Consent{
		{Purpose: store.ConsentCalendarReadBusy, Decision: store.DecisionGranted, PolicyVersion: "2026-01", Actor: "test"},
		{Purpose: store.ConsentCalendarWrite, Decision: store.DecisionGranted, PolicyVersion: "2026-01", Actor: "test"},
	}, store.AuditEntry{Actor: "test"})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func TestUnauthenticatedRequestsAreSentToSignIn(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.DialectSQLite, admin.Config{})
	c := f.browser()
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/admin/", http.StatusSeeOther},
		{"GET", "/admin/connections", http.StatusSeeOther},
		{"GET", "/admin/subjects?subject_id=x", http.StatusSeeOther},
		{"GET", "/admin/notifications", http.StatusSeeOther},
		{"GET", "/admin/retention", http.StatusSeeOther},
		{"GET", "/admin/queues", http.StatusSeeOther},
		{"GET", "/admin/queues/", http.StatusSeeOther},
		{"GET", "/admin/queues/api/queues", http.StatusSeeOther},
		{"GET", "/admin/no-such-page", http.StatusSeeOther},
		{"POST", "/admin/connections/con_x/revoke", http.StatusUnauthorized},
		{"POST", "/admin/signout", http.StatusUnauthorized},
		{"DELETE", "/admin/queues/api/queues/termind", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(tc.method, f.url+tc.path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		a := read(t, resp)
		if a.status != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, a.status, tc.status)
		}
		if tc.status == http.StatusSeeOther {
			want := "/admin/signin?next=" + url.QueryEscape(tc.path)
			if got := a.header.Get("Location"); got != want {
				t.Errorf("%s %s: Location %q, want %q", tc.method, tc.path, got, want)
			}
		}
		if strings.Contains(a.body, "asynq") {
			t.Errorf("%s %s: the dashboard answered without a sign-in", tc.method, tc.path)
		}
	}
}

func TestSignIn(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.DialectSQLite, admin.Config{})
	ingest, _, err := f.store.CreateAPIKey(ctx(t), f.tenant.ID, store.RoleIngest)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		key    string
		status int
		text   string
	}{
		{"admin key", f.token, http.StatusSeeOther, ""},
		{"ingest key", ingest, http.StatusUnauthorized, "This is not an admin API key."},
		{"wrong secret", f.token[:len(f.token)-4] + "0000", http.StatusUnauthorized, "This is not an admin API key."},
		{"garbage", "hello", http.StatusUnauthorized, "This is not an admin API key."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := f.browser()
			a := f.signIn(c, tc.key)
			if a.status != tc.status || !strings.Contains(a.body, tc.text) {
				t.Fatalf("status %d, want %d with %q: %.300s", a.status, tc.status, tc.text, a.body)
			}
			if tc.status != http.StatusSeeOther {
				if strings.Contains(a.body, tc.key) {
					t.Error("the refused key is echoed in the page")
				}
				return
			}
			if loc := a.header.Get("Location"); loc != "/admin/" {
				t.Errorf("Location %q, want /admin/", loc)
			}
			var session *http.Cookie
			for _, ck := range (&http.Response{Header: a.header}).Cookies() {
				if ck.Name == "termind_admin" && ck.Value != "" {
					session = ck
				}
			}
			if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Secure || len(session.Value) < 40 {
				t.Fatalf("session cookie %+v: want a long random value, HttpOnly, SameSite=Strict, not Secure over http", session)
			}
			page := f.get(c, "/admin/")
			if page.status != http.StatusOK || !strings.Contains(page.body, f.tenant.Name) || !strings.Contains(page.body, "30 days") {
				t.Fatalf("tenant page: status %d: %.500s", page.status, page.body)
			}
			for h, want := range map[string]string{"Cache-Control": "no-store", "X-Frame-Options": "DENY"} {
				if got := page.header.Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("Content-Security-Policy = %q: scripts are not ruled out", csp)
			}
			if secret := f.token[strings.LastIndexByte(f.token, '_')+1:]; strings.Contains(f.logs.String(), secret) {
				t.Error("the API key is in the log")
			}
			// Sign-in is audited; sign-out ends the session.
			audit, err := f.store.ListAudit(ctx(t), f.tenant.ID, "")
			if err != nil || len(audit) == 0 || audit[len(audit)-1].Action != "admin.sign_in" {
				t.Errorf("audit after sign-in: %+v, %v", audit, err)
			}
			out := f.post(c, "/admin/signout", url.Values{"csrf": {csrf(t, page)}})
			if out.status != http.StatusSeeOther {
				t.Fatalf("sign out: status %d", out.status)
			}
			if a := f.get(c, "/admin/"); a.status != http.StatusSeeOther {
				t.Errorf("after sign-out: status %d, want a redirect to sign in", a.status)
			}
		})
	}
}

func TestSignInFormNeedsItsCSRFToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.DialectSQLite, admin.Config{})
	c := f.browser()
	f.get(c, "/admin/signin")
	for _, token := range []string{"", "forged"} {
		a := f.post(c, "/admin/signin", url.Values{"csrf": {token}, "api_key": {f.token}})
		if a.status != http.StatusForbidden {
			t.Errorf("csrf %q: status %d, want 403", token, a.status)
		}
	}
}

func TestSessionCookieIsSecureOverHTTPS(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.DialectSQLite, admin.Config{PublicURL: "https://termind.example"})
	// The test server speaks http; read the cookie off the answer instead
	// of letting the jar refuse it.
	c := f.browser()
	form := f.get(c, "/admin/signin")
	var signin *http.Cookie
	for _, ck := range (&http.Response{Header: form.header}).Cookies() {
		signin = ck
	}
	if signin == nil || signin.Name != "__Host-termind_admin_signin" || !signin.Secure {
		t.Fatalf("sign-in cookie %+v, want __Host- prefixed and Secure", signin)
	}
	req, _ := http.NewRequest("POST", f.url+"/admin/signin", strings.NewReader(url.Values{
		"csrf": {csrf(t, form)}, "api_key": {f.token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: signin.Name, Value: signin.Value})
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	a := read(t, resp)
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Host-termind_admin" {
			session = ck
		}
	}
	if a.status != http.StatusSeeOther || session == nil || !session.Secure || !session.HttpOnly || session.Path != "/" {
		t.Fatalf("status %d, session cookie %+v: want Secure, HttpOnly, Path=/", a.status, session)
	}
}

func TestFailedSignInsAreLimited(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.DialectSQLite, admin.Config{})
	c := f.browser()
	wrong := "tmd_key_wrong_" + strings.Repeat("0", 64)
	for i := 1; i <= 5; i++ {
		a := f.signIn(c, wrong)
		if a.status != http.StatusUnauthorized || !strings.Contains(a.body, "This is not an admin API key.") {
			t.Fatalf("failure %d: status %d, want 401 with the error shown", i, a.status)
		}
		// Each failure is counted, and the key is not written down.
		if want := fmt.Sprintf("recent_failures=%d", i); !strings.Contains(f.logs.String(), want) {
			t.Errorf("failure %d: log lacks %s", i, want)
		}
	}
	if strings.Contains(f.logs.String(), wrong) || strings.Contains(f.logs.String(), "0000000000") {
		t.Error("the refused key is in the log")
	}
	// The sixth attempt within the minute is refused, even with the right key.
	a := f.signIn(c, f.token)
	if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Fatalf("sixth attempt: status %d (Retry-After %q), want 429", a.status, a.header.Get("Retry-After"))
	}
	if a := f.get(c, "/admin/"); a.status != http.StatusSeeOther {
		t.Errorf("after the refused attempt: status %d, want no session", a.status)
	}
}

func TestRevokeThroughConfirmation(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, dialect, admin.Config{})
			keep := f.connection("cust-1")
			target := f.connection("cust-2")
			if err := f.store.ImportObjects(ctx(t), target.ID, []store.ImportedObject{{UID: "ev-1",
				Events: []store.ExternalEvent{{Start: time.Now().Add(time.Hour), End: time.Now().Add(2 * time.Hour)}}}}); err != nil {
				t.Fatal(err)
			}
			c := f.signedIn()

			list := f.get(c, "/admin/connections")
			for _, want := range []string{keep.ID, target.ID, "/admin/connections/" + target.ID + "/revoke", "cust-2", "active"} {
				if !strings.Contains(list.body, want) {
					t.Fatalf("connections page lacks %q: %.2000s", want, list.body)
				}
			}
			if !regexp.MustCompile(`(?s)id="` + target.ID + `".*?<td class="num">1</td>\s*<td class="num">1</td>`).MatchString(list.body) {
				t.Errorf("connections page does not count 1 event and 1 link for %s", target.ID)
			}
			confirm := f.get(c, "/admin/connections/"+target.ID+"/revoke")
			if confirm.status != http.StatusOK || !strings.Contains(confirm.body, "Revoke connection") {
				t.Fatalf("confirmation page: status %d: %.500s", confirm.status, confirm.body)
			}
			token := csrf(t, confirm)

			// Without the session's token nothing happens.
			for _, bad := range []url.Values{{"reason": {"x"}}, {"reason": {"x"}, "csrf": {"wrong"}}, {"csrf": {token + "x"}}} {
				if a := f.post(c, "/admin/connections/"+target.ID+"/revoke", bad); a.status != http.StatusForbidden {
					t.Errorf("POST %v: status %d, want 403", bad, a.status)
				}
			}
			if got, _ := f.store.GetConnection(ctx(t), f.tenant.ID, target.ID); got.State != store.ConnActive {
				t.Fatalf("after forged POSTs the connection is %s", got.State)
			}
			if st, _ := f.inspect.TaskState(ctx(t), queue.RevokeTaskID(target.ID)); st != "" {
				t.Fatalf("after forged POSTs a revoke task is %s", st)
			}

			a := f.post(c, "/admin/connections/"+target.ID+"/revoke", url.Values{"csrf": {token}, "reason": {"customer asked by phone"}})
			if a.status != http.StatusSeeOther || a.header.Get("Location") != "/admin/connections?revoked="+target.ID {
				t.Fatalf("revoke: status %d, Location %q", a.status, a.header.Get("Location"))
			}
			got, err := f.store.GetConnection(ctx(t), f.tenant.ID, target.ID)
			if err != nil || got.State != store.ConnRevoking || got.StateReason != "admin: customer asked by phone" {
				t.Fatalf("connection after revoke: %+v, %v", got, err)
			}
			if other, _ := f.store.GetConnection(ctx(t), f.tenant.ID, keep.ID); other.State != store.ConnActive {
				t.Errorf("the other connection is %s", other.State)
			}
			if st, err := f.inspect.TaskState(ctx(t), queue.RevokeTaskID(target.ID)); err != nil || st != "pending" {
				t.Errorf("revoke task state %q, %v; want pending", st, err)
			}
			ledger, _ := f.store.ListConsents(ctx(t), f.tenant.ID, "cust-2")
			revoked := 0
			for _, cn := range ledger {
				if cn.Decision == store.DecisionRevoked && strings.HasPrefix(cn.Actor, "admin:key_") {
					revoked++
				}
			}
			if revoked != 2 {
				t.Errorf("ledger has %d revocations by the admin key, want 2: %+v", revoked, ledger)
			}
			after := f.get(c, a.header.Get("Location"))
			if !strings.Contains(after.body, "is revoking: its cleanup is queued") ||
				!regexp.MustCompile(`(?s)id="`+target.ID+`".*?state-revoking`).MatchString(after.body) {
				t.Errorf("connections page after revoke: %.2000s", after.body)
			}
			if again := f.get(c, "/admin/connections/"+target.ID+"/revoke"); strings.Contains(again.body, `type="submit" class="danger"`) {
				t.Error("a revoking connection is offered for revocation again")
			}

			// The subject page shows the ledger and the audit trail.
			subj := f.get(c, "/admin/subjects?subject_id=cust-2")
			for _, want := range []string{"calendar.read.busy", "decision-revoked", "connection.revoke", "connection.create"} {
				if !strings.Contains(subj.body, want) {
					t.Errorf("subject page lacks %q", want)
				}
			}
		})
	}
}

func TestOtherTenantsConnectionIsNotFound(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.DialectSQLite, admin.Config{})
	other, _ := storetest.NewTenant(t, f.store)
	c0, err := f.store.CreateConnection(ctx(t), store.Connection{TenantID: other.ID, SubjectID: "s", Provider: store.ProviderCalDAV,
		CalendarURL: "https://dav.example.net/", Privacy: store.PrivacyBusy, Direction: store.DirectionImport}, []byte("{}"), nil, store.AuditEntry{})
	if err != nil {
		t.Fatal(err)
	}
	c := f.signedIn()
	confirm := f.get(c, "/admin/connections/"+c0.ID+"/revoke")
	if confirm.status != http.StatusNotFound {
		t.Errorf("confirmation of another tenant's connection: status %d", confirm.status)
	}
	page := f.get(c, "/admin/")
	if a := f.post(c, "/admin/connections/"+c0.ID+"/revoke", url.Values{"csrf": {csrf(t, page)}}); a.status != http.StatusNotFound {
		t.Errorf("revoke of another tenant's connection: status %d", a.status)
	}
	if got, _ := f.store.GetConnection(ctx(t), other.ID, c0.ID); got.State != store.ConnActive {
		t.Errorf("another tenant's connection is %s", got.State)
	}
}

func TestNotificationsShowMaskedRecipients(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.DialectPostgres, admin.Config{})
	items := []store.Notification{
		{Channel: store.ChannelEmail, Recipient: "anna.schmidt@example.org", Template: "confirmation"},
		{Channel: store.ChannelSMS, Recipient: "+4915112345678", Template: "reminder", SubjectID: "cust-7"},
	}
	for i := range items {
		n := &items[i]
		n.TenantID, n.IdempotencyKey, n.RequestHash = f.tenant.ID, "k"+n.Template, "h"+n.Template
		n.Purpose, n.Locale, n.Data, n.SendAt = store.PurposeTransactional, "de", json.RawMessage(`{}`), time.Now().Add(time.Hour)
	}
	if _, err := f.store.CreateNotifications(ctx(t), items); err != nil {
		t.Fatal(err)
	}
	c := f.signedIn()
	today := time.Now().UTC().Format("2006-01-02")
	for _, tc := range []struct {
		query  string
		status int
		want   []string
		absent []string
	}{
		{"", 200, []string{"a***@e***.org", "+49******678"}, nil},
		{"?status=scheduled&template=reminder", 200, []string{"+49******678"}, []string{"a***@e***.org"}},
		{"?from=" + today + "&to=" + today, 200, []string{"a***@e***.org", "+49******678"}, nil},
		{"?status=sent", 200, []string{"No notifications match."}, []string{"+49******678"}},
		{"?from=yesterday", 400, []string{"Dates are YYYY-MM-DD."}, []string{"+49******678"}},
		{"?status=lost", 400, []string{"Unknown status."}, nil},
	} {
		a := f.get(c, "/admin/notifications"+tc.query)
		if a.status != tc.status {
			t.Errorf("%q: status %d, want %d", tc.query, a.status, tc.status)
		}
		// html/template writes "+" as "&#43;": compare the text a reader sees.
		text := html.UnescapeString(a.body)
		for _, w := range tc.want {
			if !strings.Contains(text, w) {
				t.Errorf("%q: page lacks %q", tc.query, w)
			}
		}
		for _, w := range append(tc.absent, "anna", "schmidt", "example.org", "4915112345678", "12345678", "5112345") {
			if strings.Contains(text, w) || strings.Contains(a.body, w) {
				t.Errorf("%q: page shows %q", tc.query, w)
			}
		}
	}
}

func TestRetentionPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.DialectSQLite, admin.Config{PurgeInterval: time.Hour})
	c := f.signedIn()
	if a := f.get(c, "/admin/retention"); !strings.Contains(a.body, "none recorded yet") || !strings.Contains(a.body, "every 1 hour") {
		t.Errorf("retention page before a purge: %.1500s", a.body)
	}
	res, err := f.store.CreateNotifications(ctx(t), []store.Notification{{TenantID: f.tenant.ID, IdempotencyKey: "k", RequestHash: "h",
		Purpose: store.PurposeTransactional, Channel: store.ChannelEmail, Recipient: "a@example.org", Locale: "en",
		Template: "confirmation", Data: json.RawMessage(`{}`), SendAt: time.Now().Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.CancelNotification(ctx(t), f.tenant.ID, res[0].Notification.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.PurgeExpired(ctx(t), time.Now().Add(31*24*time.Hour), 100, false); err != nil {
		t.Fatal(err)
	}
	a := f.get(c, "/admin/retention")
	for _, want := range []string{"Last purge (all tenants)", "1 notifications", "<td>confirmation</td><td>cancelled</td><td class=\"num\">1</td>"} {
		if !strings.Contains(a.body, want) {
			t.Errorf("retention page after a purge lacks %q: %.2500s", want, a.body)
		}
	}
}

func TestQueuesDashboardBehindSignIn(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.DialectSQLite, admin.Config{})
	c := f.signedIn()
	if a := f.get(c, "/admin/queues"); a.status != http.StatusSeeOther || a.header.Get("Location") != "/admin/queues/" {
		t.Errorf("/admin/queues: status %d, Location %q", a.status, a.header.Get("Location"))
	}
	if a := f.get(c, "/admin/queues/"); a.status != http.StatusOK || !strings.Contains(strings.ToLower(a.body), "asynq") {
		t.Errorf("/admin/queues/: status %d: %.300s", a.status, a.body)
	}
	// A change to the queue from another site is refused; the session
	// cookie alone does not authorise it.
	req, _ := http.NewRequest("DELETE", f.url+"/admin/queues/api/queues/"+queueName, nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if a := read(t, resp); a.status != http.StatusForbidden {
		t.Errorf("cross-site DELETE: status %d, want 403", a.status)
	}
}

func TestDisabledKeyEndsSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.DialectSQLite, admin.Config{})
	c := f.signedIn()
	key, err := f.store.LookupAPIKey(ctx(t), f.token)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.DisableAPIKey(ctx(t), f.tenant.ID, key.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if a := f.get(c, "/admin/connections"); a.status != http.StatusSeeOther {
		t.Errorf("after disabling the key: status %d, want a redirect to sign in", a.status)
	}
}
