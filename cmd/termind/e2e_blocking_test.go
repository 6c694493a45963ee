package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/connectors/caldav/caldavtest"
	"github.com/termind/termind/connectors/google/googletest"
	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	calsync "github.com/termind/termind/internal/sync"
	"github.com/termind/termind/internal/sync/googleremote"
)

// TestBlockingThroughTheDaemon: a subject connects two calendars, the
// second with blocking. An event the person makes in the first appears
// in the second as a detail-free blocker after a sync; the busy API
// counts it once; turning blocking off takes the blocker away.
func TestBlockingThroughTheDaemon(t *testing.T) {
	t.Parallel()
	for _, dialect := range storetest.Dialects() {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			rad := caldavtest.StartRadicale(t)
			st := newStack(t, dialect, func(c *config.Config) { c.CalDAVAllowPrivate = true })
			work := rad.MakeCalendar(t, "alice", "Work")
			private := rad.MakeCalendar(t, "alice", "Private")

			type connView struct {
				ID       string
				Blocking bool
				Sync     struct {
					LastFullAt string `json:"last_full_at"`
					Imported   int
				}
			}
			connect := func(url, direction string, blocking bool, purposes ...string) connView {
				t.Helper()
				var v connView
				if code := st.do("POST", "/v1/connections/caldav", map[string]any{
					"subject_id": "anna", "url": url, "username": "alice", "password": rad.Users["alice"],
					"privacy": "busy", "direction": direction, "blocking": blocking,
					"consent": map[string]any{"purposes": purposes, "policy_version": "2026-01"},
				}, &v); code != http.StatusCreated {
					t.Fatalf("connect %s: %d", direction, code)
				}
				return v
			}
			a := connect(work, "import", false, "calendar.read.busy")
			b := connect(private, "both", true, "calendar.read.busy", "calendar.write")
			if a.Blocking || !b.Blocking {
				t.Fatalf("blocking shown as %v and %v, want false and true", a.Blocking, b.Blocking)
			}

			start := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Hour)
			rad.PutEvent(t, "alice", work, "dentist", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"+
				"UID:dentist@example\r\nDTSTAMP:20261120T100000Z\r\nDTSTART:"+start.Format("20060102T150405Z")+
				"\r\nDTEND:"+start.Add(time.Hour).Format("20060102T150405Z")+"\r\nSUMMARY:Zahnarzt\r\nLOCATION:Praxis Dr. Weber\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
			if code := st.do("POST", "/v1/connections/"+a.ID+"/sync", map[string]any{}, nil); code != http.StatusAccepted {
				t.Fatalf("sync A: %d", code)
			}

			blockerURL := private + caldav.EventName("blocker:"+calsync.BlockerKey(a.ID, "dentist@example", ""))
			var body string
			waitFor(t, 60*time.Second, "the blocker in the private calendar", func() bool {
				var code int
				code, _, body = rad.Do(t, "alice", "GET", blockerURL, nil, "")
				return code == http.StatusOK
			})
			for _, want := range []string{"SUMMARY:Busy", "DTSTART:" + start.Format("20060102T150405Z"),
				"DTEND:" + start.Add(time.Hour).Format("20060102T150405Z"), "TRANSP:OPAQUE"} {
				if !strings.Contains(body, want) {
					t.Errorf("blocker lacks %q:\n%s", want, body)
				}
			}
			for _, bad := range []string{"Zahnarzt", "Praxis", "LOCATION", "DESCRIPTION"} {
				if strings.Contains(body, bad) {
					t.Errorf("blocker holds %q:\n%s", bad, body)
				}
			}

			// A full pull of the private calendar finds the blocker and
			// imports nothing: the event is busy time once.
			// Times are shown to the second: a full pull that ended in the
			// second of the request may be an earlier one, so wait for one
			// a second later.
			requested := time.Now().Truncate(time.Second).Add(time.Second)
			time.Sleep(time.Until(requested))
			if code := st.do("POST", "/v1/connections/"+b.ID+"/sync", map[string]any{"full": true}, nil); code != http.StatusAccepted {
				t.Fatalf("sync B: %d", code)
			}
			var after connView
			waitFor(t, 60*time.Second, "the full pull of the private calendar", func() bool {
				st.do("GET", "/v1/connections/"+b.ID, nil, &after)
				at, err := time.Parse(time.RFC3339, after.Sync.LastFullAt)
				return err == nil && !at.Before(requested)
			})
			if after.Sync.Imported != 0 {
				t.Errorf("the private calendar imported %d occurrences (of the blocker)", after.Sync.Imported)
			}
			var busy struct{ Items []struct{ Start, End string } }
			from, to := start.Add(-24*time.Hour).Format(time.RFC3339), start.Add(24*time.Hour).Format(time.RFC3339)
			if code := st.do("GET", "/v1/subjects/anna/busy?from="+from+"&to="+to, nil, &busy); code != http.StatusOK {
				t.Fatalf("busy: %d", code)
			}
			if len(busy.Items) != 1 || busy.Items[0].Start != start.Format(time.RFC3339) || busy.Items[0].End != start.Add(time.Hour).Format(time.RFC3339) {
				t.Errorf("busy = %+v, want the event once", busy.Items)
			}

			// Blocking off: the blocker goes.
			var patched connView
			if code := st.do("PATCH", "/v1/connections/"+b.ID, map[string]any{"blocking": false}, &patched); code != http.StatusOK || patched.Blocking {
				t.Fatalf("PATCH blocking off: %d %+v", code, patched)
			}
			waitFor(t, 60*time.Second, "the blocker removed", func() bool {
				code, _, _ := rad.Do(t, "alice", "GET", blockerURL, nil, "")
				return code == http.StatusNotFound
			})
		})
	}
}

// TestBlockingGoogleAndCalDAV: one person's Google and CalDAV calendars,
// both blocking: each gets a detail-free blocker for the other's event,
// neither blocker comes back as busy time, and no blocker is mirrored.
func TestBlockingGoogleAndCalDAV(t *testing.T) {
	t.Parallel()
	g := googletest.Start(t)
	g.AddCalendar(googleCalendar)
	rad := caldavtest.StartRadicale(t)
	st := newStack(t, store.DialectPostgres, withGoogle(g), func(c *config.Config) { c.CalDAVAllowPrivate = true })
	googleID := connectGoogle(t, st, g, "anna", "calendar.read.busy", "calendar.write")
	if code := st.do("PATCH", "/v1/connections/"+googleID, map[string]any{"blocking": true}, nil); code != http.StatusOK {
		t.Fatalf("PATCH blocking on the Google connection: %d", code)
	}
	calURL := rad.MakeCalendar(t, "alice", "Praxis")
	var dav struct{ ID string }
	if code := st.do("POST", "/v1/connections/caldav", map[string]any{
		"subject_id": "anna", "url": calURL, "username": "alice", "password": rad.Users["alice"],
		"privacy": "busy", "direction": "both", "blocking": true,
		"consent": map[string]any{"purposes": []string{"calendar.read.busy", "calendar.write"}, "policy_version": "2026-01"},
	}, &dav); code != http.StatusCreated {
		t.Fatalf("connect caldav: %d", code)
	}

	start := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Hour)
	inGoogle, inDAV := start.Add(2*time.Hour), start.Add(5*time.Hour)
	g.PutEvent(googleCalendar, googleEvent("gym1", inGoogle, time.Hour))
	rad.PutEvent(t, "alice", calURL, "dentist", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"+
		"UID:dentist@example\r\nDTSTAMP:20261120T100000Z\r\nDTSTART:"+inDAV.Format("20060102T150405Z")+
		"\r\nDTEND:"+inDAV.Add(time.Hour).Format("20060102T150405Z")+"\r\nSUMMARY:Zahnarzt\r\nLOCATION:Praxis\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
	for _, id := range []string{googleID, dav.ID} {
		if code := st.do("POST", "/v1/connections/"+id+"/sync", map[string]any{}, nil); code != http.StatusAccepted {
			t.Fatalf("sync %s: %d", id, code)
		}
	}

	inGoogleBlocker := googleremote.EventID(st.tenant.ID, "blocker:"+calsync.BlockerKey(dav.ID, "dentist@example", ""))
	inDAVBlocker := calURL + caldav.EventName("blocker:"+calsync.BlockerKey(googleID, "gym1", ""))
	var davBody string
	waitFor(t, 60*time.Second, "a blocker in each calendar", func() bool {
		ev, ok := g.Event(googleCalendar, inGoogleBlocker)
		var code int
		code, _, davBody = rad.Do(t, "alice", "GET", inDAVBlocker, nil, "")
		return ok && ev.Status != "cancelled" && code == http.StatusOK
	})
	ev, _ := g.Event(googleCalendar, inGoogleBlocker)
	if ev.Summary != "Busy" || ev.Location != "" || ev.Description != "" || ev.Transparency == "transparent" ||
		ev.Start.DateTime == "" || !sameInstant(ev.Start.DateTime, inDAV) || !sameInstant(ev.End.DateTime, inDAV.Add(time.Hour)) {
		t.Errorf("blocker at Google: %q %q %q %s–%s, want Busy %s–%s and nothing else", ev.Summary, ev.Location, ev.Description,
			ev.Start.DateTime, ev.End.DateTime, inDAV, inDAV.Add(time.Hour))
	}
	if !strings.Contains(davBody, "SUMMARY:Busy") || !strings.Contains(davBody, "DTSTART:"+inGoogle.Format("20060102T150405Z")) ||
		strings.Contains(davBody, "Zahnarzt") || strings.Contains(davBody, "LOCATION") {
		t.Errorf("blocker in Radicale:\n%s", davBody)
	}

	// Full pulls of both find the blockers and import nothing of them:
	// two busy periods, not four, and no blocker of a blocker.
	for _, id := range []string{googleID, dav.ID} {
		before := st.connection(id).LastSyncAt
		if code := st.do("POST", "/v1/connections/"+id+"/sync", map[string]any{"full": true}, nil); code != http.StatusAccepted {
			t.Fatalf("full sync %s: %d", id, code)
		}
		waitFor(t, 60*time.Second, "the full pull", func() bool { return st.connection(id).LastSyncAt.After(before) })
	}
	from, to := start.Add(-time.Hour).Format(time.RFC3339), start.Add(24*time.Hour).Format(time.RFC3339)
	var busy struct{ Items []struct{ Start, End string } }
	if code := st.do("GET", "/v1/subjects/anna/busy?from="+from+"&to="+to, nil, &busy); code != http.StatusOK {
		t.Fatalf("busy: %d", code)
	}
	if len(busy.Items) != 2 || busy.Items[0].Start != inGoogle.Format(time.RFC3339) || busy.Items[1].Start != inDAV.Format(time.RFC3339) {
		t.Errorf("busy %+v, want the Google event at %s and the CalDAV one at %s, once each", busy.Items, inGoogle.Format(time.RFC3339), inDAV.Format(time.RFC3339))
	}
	if live := g.LiveEvents(googleCalendar); len(live) != 2 {
		t.Errorf("%d events at Google, want the person's and one blocker", len(live))
	}
}

// sameInstant compares an RFC 3339 time with an instant.
func sameInstant(rfc3339 string, want time.Time) bool {
	got, err := time.Parse(time.RFC3339, rfc3339)
	return err == nil && got.Equal(want)
}
