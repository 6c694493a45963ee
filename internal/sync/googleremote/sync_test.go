package googleremote_test

// Acceptance tests of Google Calendar sync: the engine with the Google
// remote against the Calendar API fake (googletest), the user's side
// written through the fake's helpers as Google's UI would, and the store
// on both dialects.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"google.golang.org/api/calendar/v3"

	"github.com/termind/termind/connectors/google"
	"github.com/termind/termind/connectors/google/googletest"
	"github.com/termind/termind/internal/secrets"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	"github.com/termind/termind/internal/sync"
	"github.com/termind/termind/internal/sync/googleremote"
	"github.com/termind/termind/internal/sync/synctest"
)

const calID = "alice@example.com"

type env struct {
	t       testing.TB
	ctx     context.Context
	s       *store.Store
	g       *googletest.Server
	tenant  store.Tenant
	subject string
	conn    store.Connection
	grant   googletest.Grant
	eng     *sync.Engine
	sleeps  *sleeps
	lose    *loseResponses
}

// sleeps records the backoff waits instead of waiting.
type sleeps struct {
	mu gosync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d)
}

// loseResponses drops the answer of matching requests after the fake
// handled them, as a connection reset after Google committed would.
type loseResponses struct {
	base  http.RoundTripper
	mu    gosync.Mutex
	match func(*http.Request) bool
	n     int
}

func (l *loseResponses) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	l.mu.Lock()
	lose := l.n > 0 && l.match != nil && l.match(req)
	if lose {
		l.n--
	}
	l.mu.Unlock()
	if lose && err == nil {
		resp.Body.Close()
		return nil, errors.New("connection reset by peer")
	}
	return resp, err
}

func (l *loseResponses) next(n int, match func(*http.Request) bool) {
	l.mu.Lock()
	l.n, l.match = n, match
	l.mu.Unlock()
}

// newEnv starts the fake with alice's calendar and a Google connection to
// it with the given direction, privacy details, and a page size.
func newEnv(t testing.TB, dialect, direction string, pageSize int) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	t.Cleanup(cancel)
	s := storetest.New(t, dialect)
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	s.UseSealer(kr)
	tn, _ := storetest.NewTenant(t, s)
	g := googletest.Start(t)
	g.AddCalendar(calID)
	e := &env{t: t, ctx: ctx, s: s, g: g, tenant: tn, subject: "patient-7", sleeps: &sleeps{}}
	e.grant = g.NewGrant(google.ScopeEvents)
	creds, _ := json.Marshal(googleremote.Credentials{AccessToken: e.grant.AccessToken, RefreshToken: e.grant.RefreshToken,
		TokenType: "Bearer", Expiry: e.grant.Expiry, Scopes: e.grant.Scopes})
	consents := []store.Consent{
		{Purpose: store.ConsentCalendarReadBusy, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "test"},
		{Purpose: store.ConsentCalendarReadDetails, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "test"},
		{Purpose: store.ConsentCalendarWrite, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "test"},
	}
	e.conn, err = s.CreateConnection(ctx, store.Connection{TenantID: tn.ID, SubjectID: e.subject, Provider: store.ProviderGoogle,
		CalendarURL: calID, Privacy: store.PrivacyDetails, Direction: direction}, creds, consents, store.AuditEntry{Actor: "test"})
	if err != nil {
		t.Fatalf("create connection: %v", err)
	}
	oauth, err := google.NewOAuth(google.OAuthConfig{ClientID: g.ClientID(), ClientSecret: g.ClientSecret(),
		RedirectURL: "http://127.0.0.1:1/oauth/google/callback", AuthURL: g.AuthURL(), TokenURL: g.TokenURL(),
		RevokeURL: g.RevokeURL(), HTTPClient: g.Client()})
	if err != nil {
		t.Fatal(err)
	}
	e.lose = &loseResponses{base: g.Client().Transport}
	log := synctest.Logger(t)
	e.eng = sync.New(sync.Config{Store: s, Logger: log, Remotes: map[string]sync.RemoteFactory{
		store.ProviderGoogle: googleremote.Factory(googleremote.Config{
			OAuth: oauth, Store: s, APIURL: g.APIURL(), HTTPClient: &http.Client{Transport: e.lose, Timeout: 20 * time.Second},
			Retry:    google.Retry{Attempts: 5, Base: time.Second, Max: 8 * time.Second, MaxWait: time.Minute, Sleep: e.sleeps.sleep},
			PageSize: pageSize, Logger: log,
		})}})
	return e
}

var forDialects = synctest.ForDialects

func (e *env) pull(full bool) store.SyncResult {
	e.t.Helper()
	res, err := e.eng.Pull(e.ctx, e.conn.ID, full)
	if err != nil {
		e.t.Fatalf("pull: %v", err)
	}
	return res
}

func (e *env) push(id string, version int) {
	e.t.Helper()
	if err := e.eng.Push(e.ctx, e.conn.ID, e.tenant.ID, id, version); err != nil {
		e.t.Fatalf("push %s v%d: %v", id, version, err)
	}
}

func (e *env) busy() []store.BusyInterval {
	e.t.Helper()
	w := e.eng.Window(time.Now())
	got, err := e.s.BusyIntervals(e.ctx, e.tenant.ID, e.subject, w.From, w.To)
	if err != nil {
		e.t.Fatalf("busy intervals: %v", err)
	}
	return got
}

func (e *env) wantBusy(want ...store.BusyInterval) {
	e.t.Helper()
	synctest.WantBusy(e.t, e.busy(), want...)
}

func (e *env) count(table string) int {
	e.t.Helper()
	return synctest.Count(e.t, e.ctx, e.s, table, e.conn.ID)
}

// lists counts the events.list calls the fake answered since the last
// reset, and returns the last one's query.
func (e *env) lists() (int, []googletest.APIRequest) {
	var out []googletest.APIRequest
	for _, r := range e.g.CalendarRequests() {
		if r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/events") {
			out = append(out, r)
		}
	}
	return len(out), out
}

// userEvent is an event made in Google's UI.
func userEvent(id string, start time.Time, d time.Duration, summary string) *calendar.Event {
	return &calendar.Event{Id: id, Summary: summary, Location: "Café Central",
		Start: &calendar.EventDateTime{DateTime: start.Format(time.RFC3339), TimeZone: "Europe/Berlin"},
		End:   &calendar.EventDateTime{DateTime: start.Add(d).Format(time.RFC3339), TimeZone: "Europe/Berlin"}}
}

var day = synctest.Day

var iv = synctest.Interval

func (e *env) appointment(id string, start time.Time, d time.Duration) store.Appointment {
	e.t.Helper()
	ch, err := e.s.UpsertAppointment(e.ctx, store.Appointment{TenantID: e.tenant.ID, ID: id, SubjectIDs: []string{e.subject},
		Start: start.UTC(), End: start.Add(d).UTC(), TimeZone: "Europe/Berlin",
		Title: "Check-up", Location: "Praxis Dr. Weber", Description: "Bring your card", Status: store.AppointmentConfirmed})
	if err != nil {
		e.t.Fatalf("upsert appointment: %v", err)
	}
	return ch.Appointment
}

func TestFullSyncOverSeveralPages(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, store.DirectionBoth, 50)
		var want []store.BusyInterval
		for i := range 120 {
			start := day(1+i/8, 8+i%8, 0)
			e.g.PutEvent(calID, userEvent(fmt.Sprintf("ev%03d", i), start, 45*time.Minute, "Meeting"))
			want = append(want, iv(start, 45*time.Minute))
		}
		res := e.pull(false)
		if !res.Full || res.Imported != 120 || res.Cursor == "" {
			t.Fatalf("first pull: %+v, want full, 120 imported, a sync token", res)
		}
		n, reqs := e.lists()
		if n != 3 {
			t.Fatalf("full sync took %d list calls, want 3 pages of 50", n)
		}
		for i, r := range reqs {
			q := r.Query
			if q.Get("singleEvents") != "true" || q.Get("maxResults") != "50" || q.Get("timeMin") == "" || q.Get("timeMax") == "" || q.Get("syncToken") != "" {
				t.Errorf("page %d query %v: want singleEvents, maxResults, window, no sync token", i, q)
			}
			if (i == 0) != (q.Get("pageToken") == "") {
				t.Errorf("page %d pageToken %q", i, q.Get("pageToken"))
			}
		}
		e.wantBusy(want...)

		// Nothing changed: one call, with the sync token and nothing Google
		// forbids next to it.
		e.g.ResetCalendarRequests()
		res = e.pull(false)
		if res.Full || res.Imported != 0 || res.Removed != 0 {
			t.Errorf("pull without changes: %+v", res)
		}
		n, reqs = e.lists()
		if n != 1 || len(e.g.CalendarRequests()) != 1 {
			t.Fatalf("no-change pull made %d list calls (%d requests), want 1", n, len(e.g.CalendarRequests()))
		}
		q := reqs[0].Query
		if q.Get("syncToken") == "" || q.Get("timeMin") != "" || q.Get("timeMax") != "" {
			t.Errorf("incremental query %v: want a sync token and no window", q)
		}
	})
}

func TestIncrementalSync(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, store.DirectionBoth, 0)
		lunch := day(3, 12, 0)
		e.g.PutEvent(calID, userEvent("lunch1", lunch, time.Hour, "Lunch with Sam"))
		series := day(1, 9, 0)
		rec := userEvent("yoga1", series, time.Hour, "Yoga")
		rec.Recurrence = []string{"RRULE:FREQ=WEEKLY;COUNT=4"}
		e.g.PutEvent(calID, rec)
		e.pull(false)
		week := 7 * 24 * time.Hour
		want := []store.BusyInterval{iv(series, time.Hour), iv(lunch, time.Hour)}
		for i := 1; i < 4; i++ {
			want = append(want, iv(series.AddDate(0, 0, 7*i), time.Hour))
		}
		slices.SortFunc(want, func(a, b store.BusyInterval) int { return a.Start.Compare(b.Start) })
		e.wantBusy(want...)

		// Created, edited, deleted, and one instance of the series
		// cancelled.
		dentist := day(5, 16, 0)
		e.g.PutEvent(calID, userEvent("dentist1", dentist, 30*time.Minute, "Dentist"))
		moved := day(4, 13, 0)
		e.g.PutEvent(calID, userEvent("lunch1", moved, 90*time.Minute, "Lunch with Sam"))
		e.g.CancelInstance(calID, "yoga1", series.Add(week))
		res := e.pull(false)
		if res.Full {
			t.Errorf("pull after changes was full: %+v", res)
		}
		want = []store.BusyInterval{iv(series, time.Hour), iv(moved, 90*time.Minute), iv(dentist, 30*time.Minute),
			iv(series.Add(2*week), time.Hour), iv(series.Add(3*week), time.Hour)}
		slices.SortFunc(want, func(a, b store.BusyInterval) int { return a.Start.Compare(b.Start) })
		e.wantBusy(want...)

		e.g.DeleteEvent(calID, "dentist1")
		if res := e.pull(false); res.Removed != 1 {
			t.Errorf("pull after a delete: %+v", res)
		}
		want = slices.DeleteFunc(want, func(b store.BusyInterval) bool { return b.Start.Equal(dentist.UTC()) })
		e.wantBusy(want...)

		// The whole series deleted: every instance goes.
		e.g.DeleteEvent(calID, "yoga1")
		e.pull(false)
		e.wantBusy(iv(moved, 90*time.Minute))
		if n := e.count("links"); n != 1 {
			t.Errorf("%d links left, want the lunch's only", n)
		}
	})
}

func TestExpiredSyncTokenFullResyncWithoutDuplicates(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, store.DirectionBoth, 0)
		a, b := day(2, 10, 0), day(3, 11, 0)
		e.g.PutEvent(calID, userEvent("aaaaa1", a, time.Hour, "A"))
		e.g.PutEvent(calID, userEvent("bbbbb1", b, time.Hour, "B"))
		appt := e.appointment("appt-1", day(6, 9, 0), time.Hour)
		e.pull(false)
		e.push(appt.ID, appt.Version)
		e.pull(false)
		events, links := e.count("external_events"), e.count("links")

		// While the token is stale, B goes away.
		e.g.ExpireSyncTokens(calID)
		e.g.DeleteEvent(calID, "bbbbb1")
		e.g.ResetCalendarRequests()
		res := e.pull(false)
		if !res.Full || res.Removed != 1 {
			t.Fatalf("pull with an expired token: %+v, want a full resync removing B", res)
		}
		var statuses []int
		for _, r := range e.g.CalendarRequests() {
			statuses = append(statuses, r.Status)
		}
		if len(statuses) < 2 || statuses[0] != http.StatusGone {
			t.Errorf("requests answered %v, want 410 first, then the full listing", statuses)
		}
		e.wantBusy(iv(a, time.Hour))
		if got := e.count("external_events"); got != events-1 {
			t.Errorf("external events %d, want %d", got, events-1)
		}
		if got := e.count("links"); got != links-1 {
			t.Errorf("links %d, want %d (no duplicates)", got, links-1)
		}
		if got := len(e.g.LiveEvents(calID)); got != 2 {
			t.Errorf("%d events at Google, want A and our copy", got)
		}
	})
}

func TestPushAppointmentLifecycle(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, store.DirectionBoth, 0)
		start := day(2, 9, 30)
		a := e.appointment("booking-1001", start, 45*time.Minute)
		e.push(a.ID, a.Version)
		id := googleremote.EventID(e.tenant.ID, a.ID)
		ev, ok := e.g.Event(calID, id)
		if !ok || ev.Status == "cancelled" {
			t.Fatalf("no copy %s at Google", id)
		}
		if ev.ExtendedProperties == nil || ev.ExtendedProperties.Private[googleremote.PropAppointment] != a.ID ||
			ev.ExtendedProperties.Private[googleremote.PropKind] != googleremote.KindCopy {
			t.Errorf("marker %+v", ev.ExtendedProperties)
		}
		if ev.Summary != "Check-up" || ev.Location != "Praxis Dr. Weber" || len(ev.Attendees) != 0 {
			t.Errorf("copy %q %q attendees %d", ev.Summary, ev.Location, len(ev.Attendees))
		}
		if ev.Start.TimeZone != "Europe/Berlin" || !sameInstant(ev.Start.DateTime, start) || !sameInstant(ev.End.DateTime, start.Add(45*time.Minute)) {
			t.Errorf("times %+v %+v", ev.Start, ev.End)
		}
		for _, r := range e.g.CalendarRequests() {
			if r.Method != http.MethodGet && r.Query.Get("sendUpdates") != "none" {
				t.Errorf("%s %s without sendUpdates=none", r.Method, r.Path)
			}
		}

		// Rescheduled: updated in place, conditionally.
		moved := day(3, 14, 0)
		a = e.appointment("booking-1001", moved, time.Hour)
		e.g.ResetCalendarRequests()
		e.push(a.ID, a.Version)
		ev, _ = e.g.Event(calID, id)
		if !sameInstant(ev.Start.DateTime, moved) {
			t.Errorf("rescheduled copy starts %s", ev.Start.DateTime)
		}
		reqs := e.g.CalendarRequests()
		if len(reqs) != 1 || reqs[0].Method != http.MethodPut || reqs[0].Header.Get("If-Match") == "" {
			t.Errorf("reschedule sent %+v, want one PUT with If-Match", reqs)
		}
		// Our copy is never imported as busy time.
		e.pull(false)
		e.wantBusy()

		// Cancelled: deleted.
		ch, err := e.s.CancelAppointment(e.ctx, e.tenant.ID, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		e.push(a.ID, ch.Appointment.Version)
		if ev, _ := e.g.Event(calID, id); ev.Status != "cancelled" {
			t.Errorf("cancelled appointment's copy is %q", ev.Status)
		}
		if n := e.count("links"); n != 0 {
			t.Errorf("%d links left", n)
		}

		// Booked again under the same id: the deleted event comes back
		// (Google never frees a deleted id).
		a = e.appointment("booking-1001", moved, time.Hour)
		e.push(a.ID, a.Version)
		if ev, _ := e.g.Event(calID, id); ev.Status == "cancelled" {
			t.Error("re-booked appointment's copy still deleted")
		}
		if n := len(e.g.LiveEvents(calID)); n != 1 {
			t.Errorf("%d live events, want 1", n)
		}
	})
}

func sameInstant(rfc3339 string, t time.Time) bool {
	got, err := time.Parse(time.RFC3339, rfc3339)
	return err == nil && got.Equal(t)
}

func TestReplayedCreateAfterLostResponse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, store.DialectSQLite, store.DirectionBoth, 0)
	a := e.appointment("booking-7", day(2, 9, 0), time.Hour)
	// Every answer to the insert is lost, the retries' too: the task
	// fails as unavailable after Google created the event.
	e.lose.next(5, func(r *http.Request) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/events")
	})
	err := e.eng.Push(e.ctx, e.conn.ID, e.tenant.ID, a.ID, a.Version)
	if !errors.Is(err, sync.ErrUnavailable) {
		t.Fatalf("push with lost answers: %v, want ErrUnavailable", err)
	}
	if n := len(e.g.LiveEvents(calID)); n != 1 {
		t.Fatalf("Google holds %d events after the lost answer, want 1", n)
	}
	e.push(a.ID, a.Version) // the task's retry
	if n := len(e.g.LiveEvents(calID)); n != 1 {
		t.Errorf("Google holds %d events after the replay, want 1", n)
	}
	var conflict bool
	for _, r := range e.g.CalendarRequests() {
		conflict = conflict || r.Status == http.StatusConflict
	}
	if !conflict {
		t.Error("the replayed insert did not meet 409")
	}
	l, err := e.s.GetLink(e.ctx, e.conn.ID, store.LinkAppointment, a.ID)
	ev, _ := e.g.Event(calID, googleremote.EventID(e.tenant.ID, a.ID))
	if err != nil || l.RemoteETag != ev.Etag {
		t.Errorf("link %+v, %v; event etag %s", l, err, ev.Etag)
	}
}

func TestEditedAndDeletedCopyRestored(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, store.DirectionBoth, 0)
		start := day(2, 9, 0)
		a := e.appointment("booking-9", start, time.Hour)
		e.push(a.ID, a.Version)
		e.pull(false)
		id := googleremote.EventID(e.tenant.ID, a.ID)

		// Someone drags the copy to another day in Google's UI.
		ev, _ := e.g.Event(calID, id)
		ev.Start.DateTime = day(5, 9, 0).Format(time.RFC3339)
		ev.End.DateTime = day(5, 10, 0).Format(time.RFC3339)
		ev.Summary = "moved by hand"
		e.g.PutEvent(calID, ev)
		if res := e.pull(false); res.Restored != 1 {
			t.Fatalf("pull after an edit: %+v, want 1 restored", res)
		}
		ev, _ = e.g.Event(calID, id)
		if ev.Summary != "Check-up" || !sameInstant(ev.Start.DateTime, start) {
			t.Errorf("copy after restore: %q %s", ev.Summary, ev.Start.DateTime)
		}
		got, _ := e.s.GetAppointment(e.ctx, e.tenant.ID, a.ID)
		if got.SyncError != sync.ReportCopyEdited {
			t.Errorf("appointment sync error %q", got.SyncError)
		}

		// And deleted: restored too.
		e.g.DeleteEvent(calID, id)
		if res := e.pull(false); res.Restored != 1 {
			t.Fatalf("pull after a delete: %+v, want 1 restored", res)
		}
		if ev, _ := e.g.Event(calID, id); ev.Status == "cancelled" {
			t.Error("deleted copy not restored")
		}
		e.wantBusy()
	})
}

func TestRateLimitStormRiddenOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, store.DialectSQLite, store.DirectionBoth, 0)
	lunch := day(3, 12, 0)
	e.g.PutEvent(calID, userEvent("lunch1", lunch, time.Hour, "Lunch"))
	storm := googletest.TooManyRequests
	storm.RetryAfter = "3"
	e.g.FailCalendar(2, storm)
	e.g.FailCalendar(2, googletest.UserRateLimitExceeded)
	res := e.pull(false)
	if res.Imported != 1 {
		t.Fatalf("pull through a storm: %+v", res)
	}
	waits := e.sleeps.all()
	if len(waits) != 4 {
		t.Fatalf("waited %v, want 4 backoffs", waits)
	}
	for i, w := range waits[:2] {
		if w < 3*time.Second {
			t.Errorf("wait %d was %s, below Retry-After 3s", i, w)
		}
	}
	e.wantBusy(iv(lunch, time.Hour))

	// A storm longer than the retries: the pull fails as unavailable (the
	// task queue retries later) and records nothing half-done.
	dentist := day(4, 8, 0)
	e.g.PutEvent(calID, userEvent("dentist1", dentist, time.Hour, "Dentist"))
	e.g.FailCalendar(5, googletest.RateLimitExceeded)
	if _, err := e.eng.Pull(e.ctx, e.conn.ID, false); !errors.Is(err, sync.ErrUnavailable) {
		t.Fatalf("pull in a long storm: %v, want ErrUnavailable", err)
	}
	e.wantBusy(iv(lunch, time.Hour))
	e.pull(false)
	e.wantBusy(iv(lunch, time.Hour), iv(dentist, time.Hour))
}

func TestQuotaExceededIsNotRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, store.DialectSQLite, store.DirectionBoth, 0)
	e.g.FailCalendar(1, googletest.QuotaExceeded)
	_, err := e.eng.Pull(e.ctx, e.conn.ID, false)
	if !errors.Is(err, sync.ErrQuotaExceeded) {
		t.Fatalf("pull: %v, want ErrQuotaExceeded", err)
	}
	if w := e.sleeps.all(); len(w) != 0 {
		t.Errorf("retried a used-up quota after %v", w)
	}
}

func TestRefreshedTokenPersistedAndInvalidGrant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, store.DialectSQLite, store.DirectionBoth, 0)
	e.g.RotateRefreshTokens(true)
	e.g.ExpireAccessTokens()
	e.pull(false)
	raw, err := e.s.ConnectionCredentials(e.ctx, e.conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	var cr googleremote.Credentials
	if err := json.Unmarshal(raw, &cr); err != nil {
		t.Fatal(err)
	}
	if cr.AccessToken == e.grant.AccessToken || cr.RefreshToken == e.grant.RefreshToken || cr.RefreshToken == "" {
		t.Fatal("refreshed and rotated tokens were not stored")
	}
	// The stored rotated token works for the next run (a new remote).
	e.g.ExpireAccessTokens()
	e.pull(false)

	// The user removes termind's access in their Google account.
	e.g.RevokeGrant(cr.RefreshToken)
	_, err = e.eng.Pull(e.ctx, e.conn.ID, false)
	if !errors.Is(err, sync.ErrCredentialsRejected) {
		t.Fatalf("pull after the grant was revoked: %v, want ErrCredentialsRejected", err)
	}
	if w := e.sleeps.all(); len(w) != 0 {
		t.Errorf("retried refused credentials after %v", w)
	}
}

func TestRevocationRemovesOurCopiesOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, store.DialectSQLite, store.DirectionBoth, 0)
	e.g.PutEvent(calID, userEvent("mine1", day(2, 8, 0), time.Hour, "Mine"))
	for i := range 3 {
		a := e.appointment(fmt.Sprintf("b-%d", i), day(3+i, 9, 0), time.Hour)
		e.push(a.ID, a.Version)
	}
	raw, _ := e.s.ConnectionCredentials(e.ctx, e.conn.ID)
	r, err := googleremote.New(googleremote.Config{OAuth: mustOAuth(t, e.g), Store: e.s, APIURL: e.g.APIURL(), HTTPClient: e.g.Client()}, e.conn, raw)
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.RemoveOurCopies(e.ctx)
	if err != nil || n != 3 {
		t.Fatalf("removed %d, %v; want 3", n, err)
	}
	live := e.g.LiveEvents(calID)
	if len(live) != 1 || live[0].Id != "mine1" {
		t.Errorf("left %d events, want only the user's", len(live))
	}
}

func mustOAuth(t *testing.T, g *googletest.Server) *google.OAuth {
	t.Helper()
	o, err := google.NewOAuth(google.OAuthConfig{ClientID: g.ClientID(), ClientSecret: g.ClientSecret(),
		RedirectURL: "http://127.0.0.1:1/cb", AuthURL: g.AuthURL(), TokenURL: g.TokenURL(), RevokeURL: g.RevokeURL(), HTTPClient: g.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestEventIDIsStableAndValid(t *testing.T) {
	t.Parallel()
	tests := []struct{ tenant, appt string }{
		{"tn_1", "booking-1001"}, {"tn_1", "x"}, {"tn_2", "booking-1001"}, {"tn_1", strings.Repeat("ü", 200)},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		id := googleremote.EventID(tc.tenant, tc.appt)
		if id != googleremote.EventID(tc.tenant, tc.appt) {
			t.Errorf("EventID(%q, %q) not deterministic", tc.tenant, tc.appt)
		}
		if len(id) < 5 || strings.Trim(id, "0123456789abcdefghijklmnopqrstuv") != "" {
			t.Errorf("EventID(%q, %q) = %q: not base32hex", tc.tenant, tc.appt, id)
		}
		if seen[id] {
			t.Errorf("EventID(%q, %q) collides", tc.tenant, tc.appt)
		}
		seen[id] = true
	}
}
