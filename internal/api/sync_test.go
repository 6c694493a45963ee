package api

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
)

func busyPath(subject string, from, to time.Time) string {
	return "/v1/subjects/" + subject + "/busy?from=" + url.QueryEscape(from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339))
}

func TestSubjectBusy(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		ingest, _ := e.ingestKey()
		from := time.Date(2030, 3, 1, 0, 0, 0, 0, time.UTC)
		to := from.Add(24 * time.Hour)
		imp := e.createConn("cust-a", store.DirectionImport, store.ConsentCalendarReadBusy)
		both := e.createConn("cust-a", store.DirectionBoth, store.ConsentCalendarReadBusy, store.ConsentCalendarWrite)
		exp := e.createConn("cust-a", store.DirectionExport, store.ConsentCalendarWrite)
		other := e.createConn("cust-b", store.DirectionImport, store.ConsentCalendarReadBusy)
		ev := func(start time.Time, d time.Duration, transparent bool) store.ExternalEvent {
			return store.ExternalEvent{Start: start, End: start.Add(d), TimeZone: "Europe/Berlin", Transparent: transparent, Title: "Private"}
		}
		for _, x := range []struct {
			conn   store.Connection
			uid    string
			events []store.ExternalEvent
		}{
			{imp, "cross-from", []store.ExternalEvent{ev(from.Add(-time.Hour), 2*time.Hour, false)}},
			{both, "overlap", []store.ExternalEvent{ev(from.Add(30*time.Minute), 90*time.Minute, false)}},
			{imp, "free", []store.ExternalEvent{ev(from.Add(5*time.Hour), time.Hour, true)}},
			{imp, "noon", []store.ExternalEvent{ev(from.Add(12*time.Hour), time.Hour, false)}},
			{both, "cross-to", []store.ExternalEvent{ev(to.Add(-time.Hour), 2*time.Hour, false)}},
			{imp, "outside", []store.ExternalEvent{ev(to.Add(2*time.Hour), time.Hour, false)}},
			{other, "someone-else", []store.ExternalEvent{ev(from.Add(9*time.Hour), time.Hour, false)}},
		} {
			if err := e.store.ReplaceExternalEvents(e.ctx(), x.conn.ID, x.uid, x.events); err != nil {
				t.Fatalf("events %s: %v", x.uid, err)
			}
		}
		// An export-only connection holds no imported events at all.
		if err := e.store.ReplaceExternalEvents(e.ctx(), exp.ID, "export-only",
			[]store.ExternalEvent{ev(from.Add(8*time.Hour), time.Hour, false)}); !errors.Is(err, store.ErrNotImporting) {
			t.Fatalf("events on an export-only connection: %v, want ErrNotImporting", err)
		}

		w := e.do("GET", busyPath("cust-a", from, to), ingest, "")
		if w.Code != http.StatusOK {
			t.Fatalf("busy: %d %s", w.Code, w.Body)
		}
		var got busyList
		decodeBody(t, w, &got)
		want := []busyInterval{
			{"2030-03-01T00:00:00Z", "2030-03-01T02:00:00Z"},
			{"2030-03-01T12:00:00Z", "2030-03-01T13:00:00Z"},
			{"2030-03-01T23:00:00Z", "2030-03-02T00:00:00Z"},
		}
		if !slices.Equal(got.Items, want) {
			t.Errorf("busy %+v, want %+v", got.Items, want)
		}
		if strings.Contains(w.Body.String(), "Private") {
			t.Errorf("busy shows event details: %s", w.Body)
		}

		// Times with offsets are answered in UTC.
		berlin := mustZone(t, "Europe/Berlin")
		w = e.do("GET", busyPath("cust-a", from.Add(11*time.Hour).In(berlin), from.Add(12*time.Hour+30*time.Minute).In(berlin)), ingest, "")
		decodeBody(t, w, &got)
		if !slices.Equal(got.Items, []busyInterval{{"2030-03-01T12:00:00Z", "2030-03-01T12:30:00Z"}}) {
			t.Errorf("clipped busy %+v", got.Items)
		}

		// Nothing known, and a restricted subject, give an empty list.
		for _, subject := range []string{"cust-unknown", "cust-a"} {
			if subject == "cust-a" {
				if err := e.store.SetSubjectRestricted(e.ctx(), e.tenant.ID, "cust-a", true); err != nil {
					t.Fatal(err)
				}
			}
			w = e.do("GET", busyPath(subject, from, to), ingest, "")
			if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != `{"items":[]}` {
				t.Errorf("busy of %s: %d %s", subject, w.Code, w.Body)
			}
		}
	})
}

func TestSubjectBusyValidation(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		from := "2030-03-01T00:00:00Z"
		cases := []struct {
			name, subject, query, field string
		}{
			{"from missing", "cust-a", "to=2030-03-02T00:00:00Z", "from"},
			{"from not RFC 3339", "cust-a", "from=2030-03-01&to=2030-03-02T00:00:00Z", "from"},
			{"from without offset", "cust-a", "from=2030-03-01T00:00:00&to=2030-03-02T00:00:00Z", "from"},
			{"to missing", "cust-a", "from=" + from, "to"},
			{"to garbage", "cust-a", "from=" + from + "&to=soon", "to"},
			{"to equals from", "cust-a", "from=" + from + "&to=" + from, "to"},
			{"to before from", "cust-a", "from=" + from + "&to=2030-02-28T00:00:00Z", "to"},
			{"window over 370 days", "cust-a", "from=" + from + "&to=2031-03-07T00:00:01Z", "to"},
			{"subject too long", strings.Repeat("s", 201), "from=" + from + "&to=2030-03-02T00:00:00Z", "id"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				w := e.do("GET", "/v1/subjects/"+tc.subject+"/busy?"+tc.query, e.token, "")
				wantError(t, w, 422, "invalid_field", tc.field)
			})
		}
		// 370 days exactly is allowed.
		if w := e.do("GET", "/v1/subjects/cust-a/busy?from="+from+"&to=2031-03-06T00:00:00Z", e.token, ""); w.Code != http.StatusOK {
			t.Errorf("370 days: %d %s", w.Code, w.Body)
		}
	})
}

func TestSyncConnection(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		ingest, _ := e.ingestKey()
		c := e.createConn("cust-a", store.DirectionBoth, store.ConsentCalendarReadBusy, store.ConsentCalendarWrite)

		cases := []struct {
			name string
			body string
			full bool
		}{
			{"no body", "", false},
			{"incremental", `{}`, false},
			{"full", `{"full": true}`, true},
		}
		for _, tc := range cases {
			w := e.do("POST", "/v1/connections/"+c.ID+"/sync", ingest, tc.body)
			if w.Code != http.StatusAccepted {
				t.Fatalf("%s: %d %s", tc.name, w.Code, w.Body)
			}
			var got syncAccepted
			decodeBody(t, w, &got)
			if got != (syncAccepted{ID: c.ID, State: "active", Sync: "queued"}) {
				t.Errorf("%s: %+v", tc.name, got)
			}
			p := e.queue.pulls()
			if last := p[len(p)-1]; last != (pulled{ConnectionID: c.ID, Full: tc.full}) {
				t.Errorf("%s: pull %+v", tc.name, last)
			}
		}
		n := len(e.queue.pulls())
		wantError(t, e.do("POST", "/v1/connections/"+c.ID+"/sync", ingest, `{"full": "yes"}`), 400, "wrong_type", "full")
		wantError(t, e.do("POST", "/v1/connections/"+c.ID+"/sync", ingest, `{"since": 1}`), 400, "unknown_field", "since")
		wantError(t, e.do("POST", "/v1/connections/nope/sync", ingest, ""), 404, "not_found", "")
		wantError(t, e.do("POST", "/v1/connections/"+c.ID+"/sync", "", ""), 401, "unauthenticated", "")

		// Another tenant's connection is unknown.
		other := newEnv(t, dialect)
		wantError(t, other.do("POST", "/v1/connections/"+c.ID+"/sync", other.token, ""), 404, "not_found", "")

		// Revoking: not synced.
		if _, err := e.store.BeginRevocation(e.ctx(), e.tenant.ID, c.ID, store.Revocation{Actor: "cli"}); err != nil {
			t.Fatal(err)
		}
		wantError(t, e.do("POST", "/v1/connections/"+c.ID+"/sync", ingest, ""), 409, "connection_not_active", "")
		if len(e.queue.pulls()) != n {
			t.Errorf("refused syncs enqueued pulls: %+v", e.queue.pulls()[n:])
		}
	})
}

func TestConnectionViewSync(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		e := newEnv(t, dialect)
		c := e.createConn("cust-a", store.DirectionImport, store.ConsentCalendarReadBusy)

		// Before the first run: an empty block, not a missing one.
		w := e.do("GET", "/v1/connections/"+c.ID, e.token, "")
		var v connectionView
		decodeBody(t, w, &v)
		if v.Sync == nil || *v.Sync != (connectionSyncView{}) {
			t.Fatalf("sync before the first run: %+v (%s)", v.Sync, w.Body)
		}

		at := time.Date(2030, 3, 1, 9, 0, 0, 0, time.UTC)
		if err := e.store.ReplaceExternalEvents(e.ctx(), c.ID, "ev-1", []store.ExternalEvent{{Start: at, End: at.Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		if err := e.store.RecordSync(e.ctx(), c.ID, store.SyncResult{Cursor: "tok", Full: true, Imported: 3, Removed: 1, Pushed: 2, Restored: 1, At: at}); err != nil {
			t.Fatal(err)
		}
		if err := e.store.RecordSync(e.ctx(), c.ID, store.SyncResult{Imported: 1, Error: "server said 503", At: at.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		w = e.do("GET", "/v1/connections/"+c.ID, e.token, "")
		decodeBody(t, w, &v)
		if v.Sync == nil {
			t.Fatalf("no sync block: %s", w.Body)
		}
		want := connectionSyncView{
			LastSyncAt: "2030-03-01T09:00:00Z",
			LastFullAt: "2030-03-01T09:00:00Z",
			LastError:  "server said 503",
			Imported:   1,
			LastRun:    syncRunView{Imported: 1, Error: "server said 503"},
		}
		if *v.Sync != want {
			t.Errorf("sync %+v, want %+v", *v.Sync, want)
		}
		if strings.Contains(w.Body.String(), "tok") {
			t.Errorf("the view shows the sync cursor: %s", w.Body)
		}

		w = e.do("GET", "/v1/connections?subject_id=cust-a", e.token, "")
		var list connectionList
		decodeBody(t, w, &list)
		if len(list.Items) != 1 || list.Items[0].Sync == nil || *list.Items[0].Sync != want {
			t.Errorf("list %s", w.Body)
		}
	})
}
