package caldavremote_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/sync"
	"github.com/termind/termind/internal/sync/caldavremote"
)

// blockEnv is env (connection A on alice's Office calendar) plus
// connection B of the same subject on alice's Private calendar, with
// blocking set.
type blockEnv struct {
	*env
	calB  string
	connB store.Connection
}

func newBlockEnv(t *testing.T, dialect string) *blockEnv {
	t.Helper()
	e := newEnv(t, dialect, store.PrivacyBusy)
	b := &blockEnv{env: e, calB: e.r.MakeCalendar(t, "alice", "Private")}
	creds, _ := json.Marshal(caldavremote.Credentials{Username: "alice", Password: "secret"})
	var err error
	b.connB, err = e.s.CreateConnection(e.ctx, store.Connection{TenantID: e.tenant.ID, SubjectID: e.subject, Provider: store.ProviderCalDAV,
		CalendarURL: b.calB, CalendarName: "Private", Privacy: store.PrivacyBusy, Direction: store.DirectionBoth, Blocking: true}, creds,
		[]store.Consent{
			{Purpose: store.ConsentCalendarReadBusy, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "test"},
			{Purpose: store.ConsentCalendarWrite, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "test"},
		}, store.AuditEntry{Actor: "test"})
	if err != nil {
		t.Fatalf("create connection B: %v", err)
	}
	return b
}

func (b *blockEnv) block(connID string) sync.BlockResult {
	b.t.Helper()
	res, err := b.eng.Block(b.ctx, connID)
	if err != nil {
		b.t.Fatalf("block %s: %v", connID, err)
	}
	return res
}

func (b *blockEnv) pullOf(connID string, full bool) store.SyncResult {
	b.t.Helper()
	res, err := b.eng.Pull(b.ctx, connID, full)
	if err != nil {
		b.t.Fatalf("pull %s: %v", connID, err)
	}
	return res
}

// blockerURL is where the blocker of A's event uid is in B's calendar.
func (b *blockEnv) blockerURL(uid, rid string) string {
	return b.calB + caldav.EventName("blocker:"+sync.BlockerKey(b.conn.ID, uid, rid))
}

// blocker reads a blocker in B's calendar; "" when there is none.
func (b *blockEnv) blocker(uid, rid string) string {
	b.t.Helper()
	code, _, body := b.r.Do(b.t, "alice", http.MethodGet, b.blockerURL(uid, rid), nil, "")
	switch code {
	case http.StatusOK:
		return body
	case http.StatusNotFound:
		return ""
	}
	b.t.Fatalf("GET blocker: %d %s", code, body)
	return ""
}

// wantBlocker checks a blocker as a calendar app reads it: busy from
// start to end, and nothing about the event it stands for.
func (b *blockEnv) wantBlocker(uid string, start, end time.Time) {
	b.t.Helper()
	body := b.blocker(uid, "")
	if body == "" {
		b.t.Fatalf("no blocker for %s in B", uid)
	}
	cal, err := caldav.ParseObject([]byte(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if id := caldav.ObjectMarker(cal); !sync.IsBlocker(id) {
		b.t.Errorf("blocker's marker %q", id)
	}
	occs, err := caldav.Occurrences(cal, start.Add(-24*time.Hour), end.Add(24*time.Hour), nil)
	if err != nil || len(occs) != 1 || !occs[0].Start.Equal(start) || !occs[0].End.Equal(end) || occs[0].Transparent {
		b.t.Errorf("blocker's occurrences %+v, %v; want one opaque %s–%s", occs, err, start, end)
	}
	if len(occs) == 1 && (occs[0].Title != "Busy" || occs[0].Location != "" || occs[0].Description != "") {
		b.t.Errorf("blocker says title %q location %q description %q; want Busy and nothing else", occs[0].Title, occs[0].Location, occs[0].Description)
	}
	for _, bad := range []string{"Zahnarzt", "Praxis", "LOCATION", "DESCRIPTION", "ATTENDEE", "ORGANIZER"} {
		if strings.Contains(body, bad) {
			b.t.Errorf("blocker holds %q:\n%s", bad, body)
		}
	}
}

func (b *blockEnv) blockerLinks(connID string) int {
	b.t.Helper()
	ls, err := b.s.ListLinks(b.ctx, connID, store.LinkBlocker)
	if err != nil {
		b.t.Fatal(err)
	}
	return len(ls)
}

func (b *blockEnv) imported(connID string) int {
	b.t.Helper()
	n, err := b.s.ExternalEventCount(b.ctx, connID)
	if err != nil {
		b.t.Fatal(err)
	}
	return n
}

// TestBlockersFollowBusyTimeElsewhere: a user's event in calendar A
// appears in B as a detail-free blocker, moves with it and goes with it;
// it is never imported (not into B's busy time, not back into A), and
// an edited or deleted blocker is written again.
func TestBlockersFollowBusyTimeElsewhere(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		b := newBlockEnv(t, dialect)
		start := day(3, 10, 0)
		b.r.PutEvent(t, "alice", b.cal, "dentist", userEvent("dentist@example.com", start, start.Add(time.Hour), "Zahnarzt", "Praxis"))
		if res := b.pullOf(b.conn.ID, false); res.Imported != 1 {
			t.Fatalf("pull A: %+v", res)
		}

		if res := b.block(b.connB.ID); res != (sync.BlockResult{Written: 1}) {
			t.Errorf("first block: %+v, want one written", res)
		}
		b.wantBlocker("dentist@example.com", start.UTC(), start.Add(time.Hour).UTC())

		// Nothing changed: nothing sent to the calendar.
		before := len(b.hook.seen())
		if res := b.block(b.connB.ID); res != (sync.BlockResult{Unchanged: 1}) {
			t.Errorf("block without changes: %+v", res)
		}
		if sent := b.hook.seen()[before:]; len(sent) != 0 {
			t.Errorf("block without changes sent %v", sent)
		}

		// B's pull skips the blocker: busy time counts the event once.
		if res := b.pullOf(b.connB.ID, true); res.Imported != 0 || res.Restored != 0 {
			t.Errorf("full pull of B: %+v, want nothing imported or restored", res)
		}
		if n := b.imported(b.connB.ID); n != 0 {
			t.Errorf("B imported %d occurrences of its blocker", n)
		}
		b.wantBusy(iv(start, time.Hour))

		// A blocking too: nothing of B is busy elsewhere for A (the
		// blocker is not), so no blocker of a blocker.
		if _, err := b.s.SetConnectionBlocking(b.ctx, b.tenant.ID, b.conn.ID, true, store.AuditEntry{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		if res := b.block(b.conn.ID); res != (sync.BlockResult{}) {
			t.Errorf("block of A: %+v, want nothing", res)
		}
		if res := b.pullOf(b.conn.ID, true); res.Imported != 1 {
			t.Errorf("full pull of A: %+v", res)
		}
		b.wantBusy(iv(start, time.Hour))

		// The source moves: the blocker moves.
		moved := day(4, 15, 30)
		b.r.PutEvent(t, "alice", b.cal, "dentist", userEvent("dentist@example.com", moved, moved.Add(90*time.Minute), "Zahnarzt", "Praxis"))
		b.pullOf(b.conn.ID, false)
		if res := b.block(b.connB.ID); res != (sync.BlockResult{Written: 1}) {
			t.Errorf("block after the move: %+v", res)
		}
		b.wantBlocker("dentist@example.com", moved.UTC(), moved.Add(90*time.Minute).UTC())

		// Someone edits the blocker (an app that drops our marker): not
		// imported, written again by B's next pull, nothing reported.
		blockerID := "blocker:" + sync.BlockerKey(b.conn.ID, "dentist@example.com", "")
		name := strings.TrimSuffix(caldav.EventName(blockerID), ".ics")
		b.r.PutEvent(t, "alice", b.calB, name, userEvent(caldav.EventUID(blockerID), moved, moved.Add(time.Hour), "Edited", "Somewhere"))
		if res := b.pullOf(b.connB.ID, false); res.Imported != 0 || res.Restored != 0 {
			t.Errorf("pull of B after an edit: %+v", res)
		}
		if n := b.imported(b.connB.ID); n != 0 {
			t.Errorf("B imported %d occurrences of the edited blocker", n)
		}
		b.wantBlocker("dentist@example.com", moved.UTC(), moved.Add(90*time.Minute).UTC())

		// Someone deletes it: written again by the next pull.
		b.r.DeleteEvent(t, "alice", b.calB, name)
		b.pullOf(b.connB.ID, false)
		b.wantBlocker("dentist@example.com", moved.UTC(), moved.Add(90*time.Minute).UTC())
		// And by a full pull, which finds it missing from the listing;
		// blockers do not count for the mass-delete guard.
		b.r.DeleteEvent(t, "alice", b.calB, name)
		if res := b.pullOf(b.connB.ID, true); res.Attention != "" || res.Removed != 0 {
			t.Errorf("full pull of B after a delete: %+v", res)
		}
		b.wantBlocker("dentist@example.com", moved.UTC(), moved.Add(90*time.Minute).UTC())

		// An all-day event elsewhere: an all-day blocker.
		holiday := time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 7)
		b.r.PutEvent(t, "alice", b.cal, "holiday", ics("BEGIN:VEVENT", "UID:holiday@example.com", "DTSTAMP:20260101T090000Z",
			"DTSTART;VALUE=DATE:"+holiday.Format("20060102"), "DTEND;VALUE=DATE:"+holiday.AddDate(0, 0, 1).Format("20060102"),
			"SUMMARY:Urlaub", "END:VEVENT"))
		b.pullOf(b.conn.ID, false)
		if res := b.block(b.connB.ID); res != (sync.BlockResult{Written: 1, Unchanged: 1}) {
			t.Errorf("block after the all-day event: %+v", res)
		}
		if body := b.blocker("holiday@example.com", ""); !strings.Contains(body, "DTSTART;VALUE=DATE:"+holiday.Format("20060102")) ||
			strings.Contains(body, "Urlaub") {
			t.Errorf("all-day blocker:\n%s", body)
		}

		// The source is deleted: the blocker goes.
		b.r.DeleteEvent(t, "alice", b.cal, "dentist")
		if res := b.pullOf(b.conn.ID, false); res.Removed != 1 {
			t.Errorf("pull of A after the delete: %+v", res)
		}
		if res := b.block(b.connB.ID); res != (sync.BlockResult{Removed: 1, Unchanged: 1}) {
			t.Errorf("block after the delete: %+v", res)
		}
		if body := b.blocker("dentist@example.com", ""); body != "" {
			t.Errorf("blocker still there:\n%s", body)
		}
		if n := b.blockerLinks(b.connB.ID); n != 1 {
			t.Errorf("%d blocker links of B, want 1 (the holiday)", n)
		}
	})
}

// TestBlockersRemoved: blocking turned off, calendar.write revoked, and a
// revocation each take B's blockers away, and only them.
func TestBlockersRemoved(t *testing.T) {
	t.Parallel()
	forDialects(t, func(t *testing.T, dialect string) {
		b := newBlockEnv(t, dialect)
		start := day(2, 9, 0)
		b.r.PutEvent(t, "alice", b.cal, "gym", userEvent("gym@example.com", start, start.Add(time.Hour), "Gym", "Studio"))
		own := day(5, 9, 0)
		b.r.PutEvent(t, "alice", b.calB, "own", userEvent("own@example.com", own, own.Add(time.Hour), "Own", "Home"))
		b.pullOf(b.conn.ID, false)
		b.pullOf(b.connB.ID, false)

		for _, c := range []struct {
			name string
			off  func()
			on   func()
		}{
			{"blocking off", func() {
				if _, err := b.s.SetConnectionBlocking(b.ctx, b.tenant.ID, b.connB.ID, false, store.AuditEntry{Actor: "test"}); err != nil {
					t.Fatal(err)
				}
			}, func() {
				if _, err := b.s.SetConnectionBlocking(b.ctx, b.tenant.ID, b.connB.ID, true, store.AuditEntry{Actor: "test"}); err != nil {
					t.Fatal(err)
				}
			}},
			{"calendar.write revoked", func() { b.consent(store.DecisionRevoked) }, func() { b.consent(store.DecisionGranted) }},
		} {
			if res := b.block(b.connB.ID); res.Written != 1 || b.blocker("gym@example.com", "") == "" {
				t.Fatalf("%s: block before: %+v", c.name, res)
			}
			c.off()
			if res := b.block(b.connB.ID); res != (sync.BlockResult{Removed: 1}) {
				t.Errorf("%s: block: %+v, want the blocker removed", c.name, res)
			}
			if body := b.blocker("gym@example.com", ""); body != "" || b.blockerLinks(b.connB.ID) != 0 {
				t.Errorf("%s: blocker left:\n%s", c.name, body)
			}
			c.on()
		}

		// Revocation: the revoker's removal of our copies finds blockers
		// by their marker; the user's own event stays; links go.
		if res := b.block(b.connB.ID); res.Written != 1 {
			t.Fatalf("block before revoking: %+v", res)
		}
		if _, err := b.s.BeginRevocation(b.ctx, b.tenant.ID, b.connB.ID, store.Revocation{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.eng.Block(b.ctx, b.connB.ID); err == nil {
			t.Error("block of a revoking connection succeeded")
		}
		hc := caldav.NewHTTPClient(caldav.Options{AllowPrivate: true, Timeout: 20 * time.Second})
		removed, err := caldav.NewClient(hc, b.calB, "alice", "secret").RemoveOurCopies(b.ctx)
		if err != nil || removed != 1 {
			t.Errorf("RemoveOurCopies = %d, %v; want the blocker", removed, err)
		}
		if body := b.blocker("gym@example.com", ""); body != "" {
			t.Errorf("blocker left after revocation")
		}
		if code, _, _ := b.r.Do(t, "alice", http.MethodGet, b.r.EventURL(t, b.calB, "own"), nil, ""); code != http.StatusOK {
			t.Errorf("the user's own event: GET %d", code)
		}
		if err := b.s.FinishRevocation(b.ctx, b.connB.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		if n := b.blockerLinks(b.connB.ID); n != 0 {
			t.Errorf("%d blocker links left after revocation", n)
		}
	})
}

func (b *blockEnv) consent(decision string) {
	b.t.Helper()
	if _, err := b.s.RecordConsent(b.ctx, store.Consent{TenantID: b.tenant.ID, SubjectID: b.subject, Purpose: store.ConsentCalendarWrite,
		Decision: decision, PolicyVersion: "v1", Actor: "test", ConnectionID: b.connB.ID}); err != nil {
		b.t.Fatal(err)
	}
}
