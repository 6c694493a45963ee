package main

import (
	"bytes"
	"context"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/termind/termind/connectors/caldav/caldavtest"
	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/store"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// screenshotEnv names the variable that, set to 1, makes the browser test
// refresh docs/admin-connections.png from what it sees.
const screenshotEnv = "TERMIND_UPDATE_SCREENSHOTS"

// browser starts a headless Chromium with a fresh profile. A missing
// Chromium fails the test: it is a peer like PostgreSQL and Redis.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := chromiumPath
	if _, err := os.Stat(exe); err != nil {
		if exe, err = exec.LookPath("chromium"); err != nil {
			t.Fatalf("Chromium is required at %s (Debian packages chromium and chromium-driver; .ci/run installs them): %v", chromiumPath, err)
		}
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
		// The test machines have no way out: without these Chromium keeps
		// trying to reach Google's services in the background.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// TestAdminPagesInBrowser signs in to the admin pages of a running stack
// with headless Chromium, lists two CalDAV connections (on Radicale),
// revokes one through its confirmation page and watches its state change
// while the worker removes our copy from that calendar.
func TestAdminPagesInBrowser(t *testing.T) {
	rad := caldavtest.StartRadicale(t)
	st := newStack(t, store.DialectPostgres, func(c *config.Config) { c.CalDAVAllowPrivate = true })
	ctx := context.Background()
	var conns []store.Connection
	cals := map[string]string{}
	for _, p := range []struct{ subject, user string }{{"cust-anna", "alice"}, {"cust-ben", "bob"}} {
		cals[p.subject] = rad.MakeCalendar(t, p.user, "Praxis")
		var conn struct{ ID string }
		if code := st.do("POST", "/v1/connections/caldav", map[string]any{
			"subject_id": p.subject, "url": cals[p.subject], "username": p.user, "password": rad.Users[p.user],
			"privacy": "busy", "direction": "both",
			"consent": map[string]any{"purposes": []string{"calendar.read.busy", "calendar.write"}, "policy_version": "2026-01"},
		}, &conn); code != http.StatusCreated {
			t.Fatalf("connect %s: %d", p.subject, code)
		}
		c, err := st.store.GetConnection(ctx, st.tenant.ID, conn.ID)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	target := conns[1]

	// An appointment copied into both calendars, and Ben's own event
	// imported as busy time: his connection holds an event and links.
	start := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Hour)
	if code := st.do("PUT", "/v1/appointments/apt-1", map[string]any{
		"subject_ids": []string{"cust-anna", "cust-ben"}, "time_zone": "Europe/Berlin", "title": "Erstgespräch",
		"start": start.Format(time.RFC3339), "end": start.Add(30 * time.Minute).Format(time.RFC3339),
	}, nil); code != http.StatusCreated {
		t.Fatalf("PUT appointment: %d", code)
	}
	copyOf := func(subject, user string) int {
		status, _, _ := rad.Do(t, user, "GET", rad.EventURL(t, cals[subject], "termind-apt-1"), nil, "")
		return status
	}
	waitFor(t, 20*time.Second, "our copies in Radicale", func() bool {
		return copyOf("cust-anna", "alice") == http.StatusOK && copyOf("cust-ben", "bob") == http.StatusOK
	})
	own := start.Add(3 * time.Hour)
	rad.PutEvent(t, "bob", cals["cust-ben"], "dentist", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"+
		"UID:dentist@example\r\nDTSTAMP:20261120T100000Z\r\nDTSTART:"+own.Format("20060102T150405Z")+
		"\r\nDTEND:"+own.Add(time.Hour).Format("20060102T150405Z")+"\r\nSUMMARY:Zahnarzt\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
	if code := st.do("POST", "/v1/connections/"+target.ID+"/sync", map[string]any{}, nil); code != http.StatusAccepted {
		t.Fatalf("sync now: %d", code)
	}
	waitFor(t, 20*time.Second, "Ben's event imported", func() bool {
		n, err := st.store.ExternalEventCount(ctx, target.ID)
		return err == nil && n == 1
	})

	// Without a session the pages and the dashboard send the browser to
	// the sign-in page.
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/admin/", "/admin/connections", "/admin/queues", "/admin/queues/"} {
		resp, err := plain.Get(st.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/admin/signin") {
			t.Errorf("GET %s without a session: %d to %q, want 303 to the sign-in page", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}

	b := browser(t)
	var location, table string
	err := chromedp.Run(b,
		chromedp.Navigate(st.url+"/admin/connections"),
		chromedp.WaitVisible("#api_key", chromedp.ByQuery),
		chromedp.Location(&location),
	)
	if err != nil {
		t.Fatalf("open admin pages: %v", err)
	}
	if !strings.Contains(location, "/admin/signin") {
		t.Fatalf("unauthenticated browser landed on %s, want the sign-in page", location)
	}
	err = chromedp.Run(b,
		chromedp.SendKeys("#api_key", st.token, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible("table", chromedp.ByQuery),
		chromedp.Location(&location),
		chromedp.Text("table", &table, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if !strings.HasSuffix(location, "/admin/connections") {
		t.Errorf("after sign-in the browser is at %s, want back at /admin/connections", location)
	}
	for _, c := range conns {
		if !strings.Contains(table, c.ID) || !strings.Contains(table, c.SubjectID) {
			t.Errorf("connections table lacks %s of %s: %s", c.ID, c.SubjectID, table)
		}
	}
	var events string
	if err := chromedp.Run(b, chromedp.Text(`tr[id="`+target.ID+`"] td.num`, &events, chromedp.ByQuery)); err != nil || events != "1" {
		t.Errorf("imported events shown for %s: %q (%v), want 1", target.ID, events, err)
	}

	var confirm, flash string
	err = chromedp.Run(b,
		chromedp.Click(`a[href="/admin/connections/`+target.ID+`/revoke"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#reason", chromedp.ByQuery),
		chromedp.Text("main", &confirm, chromedp.ByQuery),
		chromedp.SendKeys("#reason", "customer asked by phone", chromedp.ByQuery),
		chromedp.Click(`button.danger`, chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery),
		chromedp.Text(".flash", &flash, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("revoke through the confirmation page: %v", err)
	}
	if !strings.Contains(confirm, target.ID) || !strings.Contains(confirm, "cannot be undone") {
		t.Errorf("confirmation page: %s", confirm)
	}
	// The worker may have finished before the page was drawn.
	if !strings.Contains(flash, target.ID) || !(strings.Contains(flash, "is revoking") || strings.Contains(flash, "is revoked")) {
		t.Errorf("after revoking: flash %q", flash)
	}

	// The worker finishes the cleanup; the page shows the state moving
	// from revoking to revoked.
	stateSel := `tr[id="` + target.ID + `"] .state`
	var state string
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := chromedp.Run(b, chromedp.Text(stateSel, &state, chromedp.ByQuery)); err != nil {
			t.Fatalf("read state: %v", err)
		}
		if state != store.ConnRevoking && state != store.ConnRevoked {
			t.Fatalf("state on the page is %q, want revoking or revoked", state)
		}
		if state == store.ConnRevoked || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
		if err := chromedp.Run(b, chromedp.Navigate(st.url+"/admin/connections?revoked="+target.ID),
			chromedp.WaitVisible(stateSel, chromedp.ByQuery)); err != nil {
			t.Fatalf("reload: %v", err)
		}
	}
	if state != store.ConnRevoked {
		t.Errorf("state on the page stayed %q, want revoked once the cleanup ran", state)
	}
	// The cleanup went the whole way: our copy left Ben's calendar, Anna's stayed.
	if got := copyOf("cust-ben", "bob"); got != http.StatusNotFound {
		t.Errorf("our copy in the revoked calendar: GET %d, want 404", got)
	}
	if got := copyOf("cust-anna", "alice"); got != http.StatusOK {
		t.Errorf("our copy in the other calendar: GET %d, want 200", got)
	}
	var other string
	if err := chromedp.Run(b, chromedp.Text(`tr[id="`+conns[0].ID+`"] .state`, &other, chromedp.ByQuery)); err != nil || other != store.ConnActive {
		t.Errorf("the other connection shows %q (%v), want active", other, err)
	}
	got, err := st.store.GetConnection(ctx, st.tenant.ID, target.ID)
	if err != nil || got.State != store.ConnRevoked || got.StateReason != "admin: customer asked by phone" {
		t.Errorf("stored connection: %+v, %v", got, err)
	}

	var shot []byte
	if err := chromedp.Run(b, chromedp.CaptureScreenshot(&shot)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil || img.Bounds().Dx() < 800 {
		t.Fatalf("screenshot is not a page-sized PNG: %v", err)
	}
	out := filepath.Join(t.TempDir(), "admin-connections.png")
	if os.Getenv(screenshotEnv) == "1" {
		out = filepath.Join("..", "..", "docs", "admin-connections.png")
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
}
