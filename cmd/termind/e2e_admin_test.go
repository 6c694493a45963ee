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
// with headless Chromium, lists connections, revokes one through its
// confirmation page and watches its state change.
func TestAdminPagesInBrowser(t *testing.T) {
	st := newStack(t, store.DialectPostgres)
	ctx := context.Background()
	var conns []store.Connection
	for _, subject := range []string{"cust-anna", "cust-ben"} {
		c, err := st.store.CreateConnection(ctx, store.Connection{
			TenantID: st.tenant.ID, SubjectID: subject, Provider: store.ProviderCalDAV,
			CalendarURL: "https://dav.example.net/" + subject + "/work/", CalendarName: "Work",
			Privacy: store.PrivacyBusy, Direction: store.DirectionBoth,
			// The calendar server does not exist: leave the copies, so
			// the cleanup needs no server and finishes.
			KeepCopiesOnRevoke: true,
		}, []byte(`{"username":"`+subject+`","password":"secret"}`), []store.Consent{
			{Purpose: store.ConsentCalendarReadBusy, Decision: store.DecisionGranted, PolicyVersion: "2026-01", Actor: "test"},
			{Purpose: store.ConsentCalendarWrite, Decision: store.DecisionGranted, PolicyVersion: "2026-01", Actor: "test"},
		}, store.AuditEntry{Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	target := conns[1]

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
