package caldavremote_test

// Acceptance tests of calendar sync: the engine with the CalDAV remote
// against a real Radicale, the user's side written with plain HTTP as a
// calendar app would, and the store on both dialects.

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
	"sync/atomic"
	"testing"
	"time"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/connectors/caldav/caldavtest"
	"github.com/termind/termind/internal/secrets"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	"github.com/termind/termind/internal/sync"
	"github.com/termind/termind/internal/sync/caldavremote"
	"github.com/termind/termind/internal/sync/synctest"
)

var berlin = synctest.Berlin()

// hook sees every request our HTTP client sends; before runs first.
type hook struct {
	base     http.RoundTripper
	mu       gosync.Mutex
	before   func(*http.Request)
	requests []string
}

func (h *hook) RoundTrip(req *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.requests = append(h.requests, req.Method+" "+req.URL.Path)
	before := h.before
	h.mu.Unlock()
	if before != nil {
		before(req)
	}
	return h.base.RoundTrip(req)
}

func (h *hook) set(f func(*http.Request)) {
	h.mu.Lock()
	h.before = f
	h.mu.Unlock()
}

func (h *hook) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.requests)
}

type env struct {
	t       *testing.T
	ctx     context.Context
	s       *store.Store
	r       *caldavtest.Radicale
	cal     string // collection URL
	tenant  store.Tenant
	subject string
	conn    store.Connection
	hook    *hook
	eng     *sync.Engine
}

// newEnv starts Radicale with alice's calendar and a connection to it.
// With front, the connection reaches Radicale through what front starts
// in front of it: front gets Radicale's base URL and returns its own.
func newEnv(t *testing.T, dialect, privacy string, front ...func(radicale string) string) *env {
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
	r := caldavtest.StartRadicale(t)
	e := &env{t: t, ctx: ctx, s: s, r: r, tenant: tn, subject: "patient-7"}
	e.cal = r.MakeCalendar(t, "alice", "Office")

	connURL := e.cal
	if len(front) > 0 {
		connURL = strings.TrimSuffix(front[0](r.URL), "/") + "/" + strings.TrimPrefix(e.cal, r.URL)
	}

	creds, _ := json.Marshal(caldavremote.Credentials{Username: "alice", Password: "secret"})
	consents := []store.Consent{
		{Purpose: store.ConsentCalendarReadBusy, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "test"},
		{Purpose: store.ConsentCalendarWrite, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "test"},
	}
	if privacy != store.PrivacyBusy {
		consents = append(consents, store.Consent{Purpose: store.ConsentCalendarReadDetails, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "test"})
	}
	e.conn, err = s.CreateConnection(ctx, store.Connection{TenantID: tn.ID, SubjectID: e.subject, Provider: store.ProviderCalDAV,
		CalendarURL: connURL, CalendarName: "Office", Privacy: privacy, Direction: store.DirectionBoth}, creds, consents, store.AuditEntry{Actor: "test"})
	if err != nil {
		t.Fatalf("create connection: %v", err)
	}

	hc := caldav.NewHTTPClient(caldav.Options{AllowPrivate: true, Timeout: 20 * time.Second})
	e.hook = &hook{base: hc.Transport}
	hc.Transport = e.hook
	log := synctest.Logger(t)
	e.eng = sync.New(sync.Config{Store: s, Remotes: map[string]sync.RemoteFactory{
		store.ProviderCalDAV: caldavremote.Factory(hc, log)}, Logger: log})
	return e
}

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

// busy returns the subject's busy intervals in the sync window.
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

func (e *env) sql(q string) string {
	return synctest.SQL(e.s, q)
}

func (e *env) count(table string) int {
	e.t.Helper()
	return synctest.Count(e.t, e.ctx, e.s, table, e.conn.ID)
}

// userEvent is a single event made in the user's calendar app.
func userEvent(uid string, start, end time.Time, summary, location string) string {
	return ics(
		"BEGIN:VEVENT",
		"UID:"+uid,
		"DTSTAMP:20260101T090000Z",
		"DTSTART:"+start.UTC().Format("20060102T150405Z"),
		"DTEND:"+end.UTC().Format("20060102T150405Z"),
		"SUMMARY:"+summary,
		"LOCATION:"+location,
		"END:VEVENT",
	)
}

func ics(lines ...string) string {
	all := append([]string{"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Example Corp.//Calendar//EN"}, lines...)
	all = append(all, "END:VCALENDAR", "")
	return strings.Join(all, "\r\n")
}

var day = synctest.Day

var iv = synctest.Interval

var forDialects = synctest.ForDialects

func TestPullUserEvents(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, store.PrivacyBusy)
		start := day(3, 12, 0)
		e.r.PutEvent(t, "alice", e.cal, "lunch", userEvent("lunch@example.com", start, start.Add(time.Hour), "Lunch with Sam", "Café Central"))

		res := e.pull(false)
		if !res.Full || res.Imported != 1 || res.Cursor == "" {
			t.Errorf("first pull: %+v, want full, 1 imported, a cursor", res)
		}
		// The initial import is one REPORT: the calendar data comes with
		// the sync-collection answer.
		if got := e.hook.seen(); len(got) != 1 || !strings.HasPrefix(got[0], "REPORT") {
			t.Errorf("initial import sent %v, want one REPORT", got)
		}
		e.wantBusy(iv(start, time.Hour))

		// Privacy busy: times only, in the raw table too.
		var title, location, description string
		err := e.s.DB().QueryRowContext(e.ctx, e.sql("SELECT title, location, description FROM external_events WHERE connection_id = ?"), e.conn.ID).
			Scan(&title, &location, &description)
		if err != nil || title+location+description != "" {
			t.Errorf("stored at privacy busy: title %q location %q description %q, %v", title, location, description, err)
		}

		// Nothing changed: an incremental pull with nothing to do.
		if res := e.pull(false); res.Full || res.Imported != 0 || res.Removed != 0 {
			t.Errorf("pull without changes: %+v", res)
		}

		// Moved.
		moved := day(4, 15, 30)
		e.r.PutEvent(t, "alice", e.cal, "lunch", userEvent("lunch@example.com", moved, moved.Add(90*time.Minute), "Lunch with Sam", "Café Central"))
		if res := e.pull(false); res.Full || res.Imported != 1 {
			t.Errorf("pull after a move: %+v", res)
		}
		e.wantBusy(iv(moved, 90*time.Minute))

		// Deleted.
		e.r.DeleteEvent(t, "alice", e.cal, "lunch")
		if res := e.pull(false); res.Removed != 1 {
			t.Errorf("pull after a delete: %+v", res)
		}
		e.wantBusy()
		if n := e.count("external_events") + e.count("links"); n != 0 {
			t.Errorf("%d rows left after the delete", n)
		}
		st, err := e.s.GetSyncStatus(e.ctx, e.conn.ID)
		if err != nil || st.LastError != "" || st.Attention != "" || st.LastSyncAt.IsZero() || st.LastFullAt.IsZero() {
			t.Errorf("sync status %+v, %v", st, err)
		}
	})
}

func TestPullDetailsPrivacy(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, store.PrivacyDetails)
		start := day(2, 9, 0)
		e.r.PutEvent(t, "alice", e.cal, "x", userEvent("x@example.com", start, start.Add(time.Hour), "Physio", "Room 4"))
		e.pull(false)
		var title, location string
		err := e.s.DB().QueryRowContext(e.ctx, e.sql("SELECT title, location FROM external_events WHERE connection_id = ?"), e.conn.ID).Scan(&title, &location)
		if err != nil || title != "Physio" || location != "Room 4" {
			t.Errorf("stored at privacy details: %q %q, %v", title, location, err)
		}
	})
}

// appointment books (or changes) an appointment of the env's subject.
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

// get reads our copy with a plain GET; "" when it does not exist.
func (e *env) get(id string) string {
	e.t.Helper()
	code, _, body := e.r.Do(e.t, "alice", http.MethodGet, e.cal+caldav.EventName(id), nil, "")
	switch code {
	case http.StatusOK:
		return body
	case http.StatusNotFound:
		return ""
	}
	e.t.Fatalf("GET our copy: %d %s", code, body)
	return ""
}

// wantCopy checks our copy of a as a calendar app would read it.
func (e *env) wantCopy(a store.Appointment) {
	e.t.Helper()
	body := e.get(a.ID)
	if body == "" {
		e.t.Fatalf("copy of %s missing", a.ID)
	}
	for _, want := range []string{
		"DTSTART;TZID=Europe/Berlin:" + a.Start.In(berlin).Format("20060102T150405"),
		"DTEND;TZID=Europe/Berlin:" + a.End.In(berlin).Format("20060102T150405"),
		"UID:" + caldav.EventUID(a.ID),
		caldav.MarkerProperty + ":" + a.ID,
		"SUMMARY:Check-up",
	} {
		if !strings.Contains(body, want) {
			e.t.Errorf("copy lacks %q:\n%s", want, body)
		}
	}
	for _, bad := range []string{"ATTENDEE", "ORGANIZER"} {
		if strings.Contains(body, bad) {
			e.t.Errorf("copy has %s:\n%s", bad, body)
		}
	}
	cal, err := caldav.ParseObject([]byte(body))
	if err != nil {
		e.t.Fatal(err)
	}
	occs, err := caldav.Occurrences(cal, a.Start.Add(-time.Hour), a.End.Add(time.Hour), nil)
	if err != nil || len(occs) != 1 || !occs[0].Start.Equal(a.Start) || !occs[0].End.Equal(a.End) || occs[0].TimeZone != "Europe/Berlin" {
		e.t.Errorf("copy's instants %+v, %v; want %s–%s Europe/Berlin", occs, err, a.Start, a.End)
	}
}

func TestPushAppointment(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, store.PrivacyBusy)
		a := e.appointment("appt-1", day(5, 10, 0), 45*time.Minute)
		e.push(a.ID, a.Version)
		e.wantCopy(a)
		l, err := e.s.GetLink(e.ctx, e.conn.ID, store.LinkAppointment, a.ID)
		if err != nil || l.RemoteETag == "" || l.ContentHash == "" || l.SyncedVersion != a.Version || l.RemoteID != caldav.EventName(a.ID) {
			t.Fatalf("link %+v, %v", l, err)
		}

		// Our copy is never imported as busy time.
		e.pull(false)
		e.wantBusy()
		if n := e.count("external_events"); n != 0 {
			t.Errorf("%d imported rows from our own copy", n)
		}

		// The same task again, and an older one: nothing written.
		before := len(e.hook.seen())
		e.push(a.ID, a.Version)
		if got := e.hook.seen()[before:]; slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "PUT") }) {
			t.Errorf("a push of a version pushed already wrote: %v", got)
		}

		// Rescheduled: the copy moves.
		b := e.appointment("appt-1", day(6, 16, 15), time.Hour)
		if b.Version <= a.Version {
			t.Fatalf("version %d after a reschedule of %d", b.Version, a.Version)
		}
		e.push(b.ID, b.Version)
		e.wantCopy(b)
		// A stale task of the first version does not move it back.
		e.push(a.ID, a.Version)
		e.wantCopy(b)

		// Cancelled: the copy goes, and the link.
		ch, err := e.s.CancelAppointment(e.ctx, e.tenant.ID, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		e.push(a.ID, ch.Appointment.Version)
		if body := e.get(a.ID); body != "" {
			t.Errorf("copy still there after cancelling:\n%s", body)
		}
		if n := e.count("links"); n != 0 {
			t.Errorf("%d links after cancelling", n)
		}
		// A pull then sees the deletion of a copy no longer linked: no
		// restore, nothing imported.
		if res := e.pull(false); res.Restored != 0 || res.Imported != 0 {
			t.Errorf("pull after cancelling: %+v", res)
		}
	})
}

// editedCopy is what a user's calendar app makes of our copy when they
// edit it: same UID and marker, other time and title.
func editedCopy(id string, start time.Time) string {
	return ics(
		"BEGIN:VEVENT",
		"UID:"+caldav.EventUID(id),
		"DTSTAMP:20260101T090000Z",
		"DTSTART:"+start.UTC().Format("20060102T150405Z"),
		"DTEND:"+start.Add(time.Hour).UTC().Format("20060102T150405Z"),
		"SUMMARY:Moved by hand",
		caldav.MarkerProperty+":"+id,
		"END:VEVENT",
	)
}

func TestPullRestoresEditedCopy(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, store.PrivacyBusy)
		a := e.appointment("appt-2", day(7, 11, 0), 30*time.Minute)
		e.push(a.ID, a.Version)
		e.pull(false)

		e.r.PutEvent(t, "alice", e.cal, strings.TrimSuffix(caldav.EventName(a.ID), ".ics"), editedCopy(a.ID, day(8, 8, 0)))
		res := e.pull(false)
		if res.Restored != 1 || res.Imported != 0 {
			t.Errorf("pull after an edit of our copy: %+v, want 1 restored", res)
		}
		e.wantCopy(a)
		e.wantBusy()
		got, err := e.s.GetAppointment(e.ctx, e.tenant.ID, a.ID)
		if err != nil || got.SyncError != sync.ReportCopyEdited {
			t.Errorf("appointment sync error %q, %v; want %q", got.SyncError, err, sync.ReportCopyEdited)
		}
		// Restored once: the next pull sees our own write and leaves it.
		if res := e.pull(false); res.Restored != 0 {
			t.Errorf("second pull restored again: %+v", res)
		}
		st, _ := e.s.GetSyncStatus(e.ctx, e.conn.ID)
		if st.LastError != "" {
			t.Errorf("last error %q", st.LastError)
		}
	})
}

func TestPullRestoresDeletedCopy(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, store.PrivacyBusy)
		a := e.appointment("appt-3", day(9, 14, 0), time.Hour)
		e.push(a.ID, a.Version)
		e.pull(false)

		e.r.DeleteEvent(t, "alice", e.cal, strings.TrimSuffix(caldav.EventName(a.ID), ".ics"))
		res := e.pull(false)
		if res.Restored != 1 {
			t.Errorf("pull after deleting our copy: %+v, want 1 restored", res)
		}
		e.wantCopy(a)
		got, _ := e.s.GetAppointment(e.ctx, e.tenant.ID, a.ID)
		if got.SyncError != sync.ReportCopyDeleted {
			t.Errorf("appointment sync error %q, want %q", got.SyncError, sync.ReportCopyDeleted)
		}
		// A full reconciliation finds it present and linked.
		if res := e.pull(true); res.Restored != 0 || res.Pushed != 0 || !res.Full {
			t.Errorf("full pull after the restore: %+v", res)
		}
	})
}

// lastSundayOfOctober is the DST change in Europe after now (at least a
// week ahead, so the series below lies in the window).
func lastSundayOfOctober() time.Time {
	now := time.Now().In(berlin)
	for y := now.Year(); ; y++ {
		d := time.Date(y, time.October, 31, 0, 0, 0, 0, berlin)
		for d.Weekday() != time.Sunday {
			d = d.AddDate(0, 0, -1)
		}
		if d.After(now.AddDate(0, 0, 21)) {
			return d
		}
	}
}

const berlinVTimezone = `BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE`

func TestPullWeeklySeriesAcrossDST(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, store.PrivacyBusy)
		change := lastSundayOfOctober()
		// Mondays 09:00 Berlin: two before the change (CEST, 07:00Z), three
		// after (CET, 08:00Z).
		mon := func(weeks int) time.Time {
			d := change.AddDate(0, 0, 1+7*weeks)
			return time.Date(d.Year(), d.Month(), d.Day(), 9, 0, 0, 0, berlin)
		}
		local := func(t time.Time) string { return t.In(berlin).Format("20060102T150405") }
		moved := time.Date(mon(-1).Year(), mon(-1).Month(), mon(-1).Day(), 14, 0, 0, 0, berlin)
		body := strings.Join([]string{
			"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Example Corp.//Calendar//EN",
			berlinVTimezone,
			"BEGIN:VEVENT",
			"UID:weekly@example.com",
			"DTSTAMP:20260101T090000Z",
			"DTSTART;TZID=Europe/Berlin:" + local(mon(-2)),
			"DTEND;TZID=Europe/Berlin:" + local(mon(-2).Add(time.Hour)),
			"RRULE:FREQ=WEEKLY;COUNT=5",
			"SUMMARY:Team meeting",
			"END:VEVENT",
			// The second instance moved to the afternoon.
			"BEGIN:VEVENT",
			"UID:weekly@example.com",
			"DTSTAMP:20260101T090000Z",
			"RECURRENCE-ID;TZID=Europe/Berlin:" + local(mon(-1)),
			"DTSTART;TZID=Europe/Berlin:" + local(moved),
			"DTEND;TZID=Europe/Berlin:" + local(moved.Add(time.Hour)),
			"SUMMARY:Team meeting (moved)",
			"END:VEVENT",
			// The fourth cancelled.
			"BEGIN:VEVENT",
			"UID:weekly@example.com",
			"DTSTAMP:20260101T090000Z",
			"RECURRENCE-ID;TZID=Europe/Berlin:" + local(mon(1)),
			"DTSTART;TZID=Europe/Berlin:" + local(mon(1)),
			"DTEND;TZID=Europe/Berlin:" + local(mon(1).Add(time.Hour)),
			"STATUS:CANCELLED",
			"SUMMARY:Team meeting",
			"END:VEVENT",
			"END:VCALENDAR", "",
		}, "\r\n")
		body = strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n")
		e.r.PutEvent(t, "alice", e.cal, "weekly", body)

		e.pull(false)
		want := []store.BusyInterval{iv(mon(-2), time.Hour), iv(moved, time.Hour), iv(mon(0), time.Hour), iv(mon(2), time.Hour)}
		for i, h := range []int{7, 12, 8, 8} {
			if want[i].Start.Hour() != h {
				t.Fatalf("test data: interval %d starts %s, want %02d:00Z", i, want[i].Start, h)
			}
		}
		e.wantBusy(want...)
		if n := e.count("external_events"); n != 4 {
			t.Errorf("%d imported occurrences, want 4", n)
		}
	})
}

func TestInvalidCursorFullResync(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, store.PrivacyBusy)
		for i := range 3 {
			s := day(2+i, 10, 0)
			e.r.PutEvent(t, "alice", e.cal, fmt.Sprintf("ev%d", i), userEvent(fmt.Sprintf("ev%d@example.com", i), s, s.Add(time.Hour), "x", "y"))
		}
		a := e.appointment("appt-4", day(3, 15, 0), time.Hour)
		e.push(a.ID, a.Version)
		e.pull(false)
		events, links := e.count("external_events"), e.count("links")
		if events != 3 || links != 4 {
			t.Fatalf("after the first pull: %d events, %d links; want 3 and 4", events, links)
		}
		// A change meanwhile, then the cursor goes bad.
		s := day(5, 7, 0)
		e.r.PutEvent(t, "alice", e.cal, "ev1", userEvent("ev1@example.com", s, s.Add(time.Hour), "x", "y"))
		if err := e.s.RecordSync(e.ctx, e.conn.ID, store.SyncResult{Cursor: "sync:http://radicale.org/ns/sync/garbage"}); err != nil {
			t.Fatal(err)
		}
		res := e.pull(false)
		if !res.Full || res.Restored != 0 || res.Removed != 0 {
			t.Errorf("pull with a refused cursor: %+v, want a full resync", res)
		}
		if ev, ln := e.count("external_events"), e.count("links"); ev != events || ln != links {
			t.Errorf("after the resync: %d events, %d links; want %d and %d (no duplicates)", ev, ln, events, links)
		}
		e.wantBusy(iv(day(2, 10, 0), time.Hour), iv(day(4, 10, 0), time.Hour), iv(s, time.Hour))
		// And incremental again afterwards.
		if res := e.pull(false); res.Full {
			t.Errorf("pull after the resync is full again: %+v", res)
		}
	})
}

func TestMassDeleteGuard(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, store.PrivacyBusy)
		var want []store.BusyInterval
		for i := range 3 {
			s := day(2+i, 10, 0)
			e.r.PutEvent(t, "alice", e.cal, fmt.Sprintf("ev%d", i), userEvent(fmt.Sprintf("ev%d@example.com", i), s, s.Add(time.Hour), "x", "y"))
			want = append(want, iv(s, time.Hour))
		}
		a := e.appointment("appt-5", day(6, 15, 0), time.Hour)
		e.push(a.ID, a.Version)
		e.pull(false)
		events, links := e.count("external_events"), e.count("links")

		// Everything deleted with plain HTTP.
		for i := range 3 {
			e.r.DeleteEvent(t, "alice", e.cal, fmt.Sprintf("ev%d", i))
		}
		e.r.DeleteEvent(t, "alice", e.cal, strings.TrimSuffix(caldav.EventName(a.ID), ".ics"))

		for _, full := range []bool{false, true} {
			before := len(e.hook.seen())
			res, err := e.eng.Pull(e.ctx, e.conn.ID, full)
			if !errors.Is(err, sync.ErrMassDelete) {
				t.Fatalf("pull (full %v) of an emptied calendar: %v, want ErrMassDelete", full, err)
			}
			if res.Attention != sync.AttentionEmptied || res.Removed != 0 || res.Restored != 0 {
				t.Errorf("result %+v", res)
			}
			if ev, ln := e.count("external_events"), e.count("links"); ev != events || ln != links {
				t.Errorf("after the guard: %d events, %d links; want %d and %d", ev, ln, events, links)
			}
			for _, r := range e.hook.seen()[before:] {
				if strings.HasPrefix(r, "PUT") || strings.HasPrefix(r, "DELETE") {
					t.Errorf("the guard let a write through: %s", r)
				}
			}
			e.wantBusy(want...)
			st, err := e.s.GetSyncStatus(e.ctx, e.conn.ID)
			if err != nil || st.Attention != sync.AttentionEmptied || st.LastError == "" {
				t.Errorf("sync status %+v, %v; want attention and an error", st, err)
			}
		}
		if body := e.get(a.ID); body != "" {
			t.Errorf("our copy was written back into the emptied calendar")
		}
	})
}

func TestPushConflictSingleWriter(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, store.PrivacyBusy)
		a := e.appointment("appt-6", day(10, 9, 30), time.Hour)
		e.push(a.ID, a.Version)
		e.pull(false)

		// The user edits our copy between our read and our write.
		name := strings.TrimSuffix(caldav.EventName(a.ID), ".ics")
		var fired atomic.Int32
		e.hook.set(func(req *http.Request) {
			if req.Method == http.MethodPut && req.Header.Get("If-Match") != "" && fired.Add(1) == 1 {
				e.r.PutEvent(t, "alice", e.cal, name, editedCopy(a.ID, day(11, 7, 0)))
			}
		})
		b := e.appointment(a.ID, day(12, 13, 0), time.Hour)
		e.push(b.ID, b.Version)
		e.hook.set(nil)
		if fired.Load() < 2 {
			t.Fatalf("our conditional PUT went out %d times, want a retry after 412", fired.Load())
		}
		e.wantCopy(b)
		// One copy, linked at its current ETag: a pull finds nothing to do.
		listed, err := caldav.NewClient(caldav.NewHTTPClient(caldav.Options{AllowPrivate: true}), e.cal, "alice", "secret").OurCopies(e.ctx)
		if err != nil || len(listed) != 1 {
			t.Fatalf("our copies %+v, %v; want one", listed, err)
		}
		l, _ := e.s.GetLink(e.ctx, e.conn.ID, store.LinkAppointment, a.ID)
		if l.RemoteETag != listed[0].ETag || l.SyncedVersion != b.Version {
			t.Errorf("link %+v, copy etag %s", l, listed[0].ETag)
		}
		if res := e.pull(false); res.Restored != 0 || res.Imported != 0 {
			t.Errorf("pull after the conflict: %+v", res)
		}
		e.wantBusy()

		// A copy that exists without a link (If-None-Match → 412): ours
		// is written over it.
		c := e.appointment("appt-7", day(13, 10, 0), time.Hour)
		e.r.PutEvent(t, "alice", e.cal, strings.TrimSuffix(caldav.EventName(c.ID), ".ics"), editedCopy(c.ID, day(14, 7, 0)))
		e.push(c.ID, c.Version)
		e.wantCopy(c)
	})
}

func TestRevokedConnectionRefuses(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, store.PrivacyBusy)
		s := day(2, 10, 0)
		e.r.PutEvent(t, "alice", e.cal, "ev", userEvent("ev@example.com", s, s.Add(time.Hour), "x", "y"))
		a := e.appointment("appt-8", day(3, 10, 0), time.Hour)
		if _, err := e.s.BeginRevocation(e.ctx, e.tenant.ID, e.conn.ID, store.Revocation{Actor: "test", Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.eng.Pull(e.ctx, e.conn.ID, false); !errors.Is(err, store.ErrNotActive) {
			t.Errorf("pull of a revoking connection: %v, want ErrNotActive", err)
		}
		if err := e.eng.Push(e.ctx, e.conn.ID, e.tenant.ID, a.ID, a.Version); !errors.Is(err, store.ErrNotActive) {
			t.Errorf("push to a revoking connection: %v, want ErrNotActive", err)
		}
		if got := e.hook.seen(); len(got) != 0 {
			t.Errorf("requests to the calendar: %v", got)
		}
		if n := e.count("external_events") + e.count("links"); n != 0 {
			t.Errorf("%d rows written", n)
		}
		if body := e.get(a.ID); body != "" {
			t.Errorf("copy written")
		}
		st, _ := e.s.GetSyncStatus(e.ctx, e.conn.ID)
		if !st.LastSyncAt.IsZero() || st.LastRun.At != (time.Time{}) {
			t.Errorf("a refused pull was recorded: %+v", st)
		}
	})
}

// TestExportOnlyConnectionImportsNothing: a connection consented for
// writing our copies only never reads the person's events into the store.
func TestExportOnlyConnectionImportsNothing(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect, store.PrivacyBusy)
		start := day(3, 12, 0)
		e.r.PutEvent(t, "alice", e.cal, "therapy", userEvent("therapy@example.com", start, start.Add(time.Hour), "Therapy with Dr X", "Praxis"))

		creds, _ := json.Marshal(caldavremote.Credentials{Username: "alice", Password: "secret"})
		exportOnly, err := e.s.CreateConnection(e.ctx, store.Connection{TenantID: e.tenant.ID, SubjectID: e.subject, Provider: store.ProviderCalDAV,
			CalendarURL: e.cal, Privacy: store.PrivacyFull, Direction: store.DirectionExport}, creds,
			[]store.Consent{{Purpose: store.ConsentCalendarWrite, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "test"}},
			store.AuditEntry{Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		res, err := e.eng.Pull(e.ctx, exportOnly.ID, true)
		if err != nil || res.Imported != 0 {
			t.Fatalf("pull of an export-only connection: %+v, %v; want nothing imported", res, err)
		}
		if n, _ := e.s.ExternalEventCount(e.ctx, exportOnly.ID); n != 0 {
			t.Errorf("%d events stored for an export-only connection", n)
		}
		// The store refuses too, whoever asks.
		err = e.s.ReplaceExternalEvents(e.ctx, exportOnly.ID, "therapy@example.com",
			[]store.ExternalEvent{{UID: "therapy@example.com", Start: start, End: start.Add(time.Hour), Title: "Therapy with Dr X"}})
		if !errors.Is(err, store.ErrNotImporting) {
			t.Errorf("ReplaceExternalEvents on an export-only connection: %v, want ErrNotImporting", err)
		}
	})
}
