package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// importEvent is one occurrence h hours after a fixed start, carrying
// text at every privacy level.
func importEvent(rid string, h int) store.ExternalEvent {
	start := time.Date(2031, 6, 2, 8, 0, 0, 0, time.UTC).Add(time.Duration(h) * time.Hour)
	return store.ExternalEvent{ConnectionID: "ignored", UID: "ignored", RecurrenceID: rid, Start: start, End: start.Add(time.Hour),
		TimeZone: "Europe/Vienna", Title: "Secret-Title", Location: "Secret-Location", Description: "Secret-Description"}
}

// importObj is an imported object whose link points at name.
func importObj(uid, name string, events ...store.ExternalEvent) store.ImportedObject {
	return store.ImportedObject{UID: uid, Events: events, Link: store.Link{ConnectionID: "ignored", ItemKind: store.LinkAppointment,
		ItemID: "ignored", RemoteID: name, RemoteHref: "/cal/" + name, RemoteETag: `"` + name + `"`, ContentHash: "h-" + name}}
}

// storedUIDs maps each uid of the connection to its recurrence ids, sorted.
func storedUIDs(t *testing.T, s *store.Store, connectionID string) map[string][]string {
	t.Helper()
	rows, err := s.DB().QueryContext(testCtx(t), rebind(s, "SELECT uid, recurrence_id FROM external_events WHERE connection_id = ? ORDER BY uid, recurrence_id"), connectionID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var uid, rid string
		if err := rows.Scan(&uid, &rid); err != nil {
			t.Fatal(err)
		}
		out[uid] = append(out[uid], rid)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestImportObjectsPrivacy(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		for _, c := range []struct {
			privacy                      string
			title, location, description bool
		}{
			{store.PrivacyBusy, false, false, false},
			{store.PrivacyDetails, true, true, false},
			{store.PrivacyFull, true, true, true},
		} {
			conn := connWith(t, s, tn.ID, "subj-"+c.privacy, c.privacy, store.DirectionImport, store.ConsentCalendarReadBusy)
			objs := []store.ImportedObject{
				importObj("uid-1", "a.ics", importEvent("", 0)),
				importObj("uid-2", "b.ics", importEvent("r1", 1), importEvent("r2", 2)),
			}
			if err := s.ImportObjects(ctx, conn.ID, objs); err != nil {
				t.Fatal(err)
			}
			var rows []string
			for _, r := range rawRows(t, s, "external_events") {
				if strings.Contains(r, conn.ID) {
					rows = append(rows, r)
				}
			}
			if len(rows) != 3 {
				t.Fatalf("%s: %d rows stored, want 3", c.privacy, len(rows))
			}
			for _, row := range rows {
				for _, f := range []struct {
					text string
					kept bool
				}{{"Secret-Title", c.title}, {"Secret-Location", c.location}, {"Secret-Description", c.description}} {
					if strings.Contains(row, f.text) != f.kept {
						t.Errorf("%s: %s kept = %v, want %v: %s", c.privacy, f.text, !f.kept, f.kept, row)
					}
				}
				if !strings.Contains(row, "Europe/Vienna") {
					t.Errorf("%s: row = %s", c.privacy, row)
				}
			}
		}
	})
}

func TestImportObjectsReplaceAndRemove(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		conn := connWith(t, s, tn.ID, "anna", store.PrivacyFull, store.DirectionBoth, store.ConsentCalendarReadBusy)
		other := connWith(t, s, tn.ID, "ben", store.PrivacyFull, store.DirectionBoth, store.ConsentCalendarReadBusy)

		if err := s.ImportObjects(ctx, conn.ID, []store.ImportedObject{
			importObj("series", "s.ics", importEvent("r1", 0), importEvent("r2", 24), importEvent("r3", 48)),
			importObj("single", "x.ics", importEvent("", 5)),
			importObj("empty", "e.ics"),
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.ImportObjects(ctx, other.ID, []store.ImportedObject{importObj("series", "s.ics", importEvent("r1", 0))}); err != nil {
			t.Fatal(err)
		}
		// The link: the store sets connection, kind and item.
		l, err := s.GetLink(ctx, conn.ID, store.LinkEvent, "series")
		if err != nil || l.RemoteID != "s.ics" || l.RemoteHref != "/cal/s.ics" || l.RemoteETag != `"s.ics"` || l.ContentHash != "h-s.ics" || l.UpdatedAt.IsZero() {
			t.Errorf("link = %+v, %v", l, err)
		}
		if _, err := s.GetLink(ctx, conn.ID, store.LinkEvent, "empty"); err != nil {
			t.Errorf("object without events: link %v", err)
		}
		if n := count(t, s, "SELECT count(*) FROM links WHERE connection_id = ? AND item_kind = ?", conn.ID, store.LinkAppointment); n != 0 {
			t.Errorf("%d appointment links written, want 0", n)
		}

		// A second import replaces the series (one instance gone), keeps
		// the other objects, and lets the later of two entries win: the
		// same UID twice, the same instance twice.
		dup := importEvent("r2", 30)
		if err := s.ImportObjects(ctx, conn.ID, []store.ImportedObject{
			importObj("series", "old.ics", importEvent("r9", 0)),
			importObj("series", "s2.ics", importEvent("r1", 0), importEvent("r2", 24), dup),
		}); err != nil {
			t.Fatal(err)
		}
		got := storedUIDs(t, s, conn.ID)
		if !slices.Equal(got["series"], []string{"r1", "r2"}) || len(got["single"]) != 1 || len(got) != 2 {
			t.Errorf("after replacing the series: %v", got)
		}
		if l, _ := s.GetLink(ctx, conn.ID, store.LinkEvent, "series"); l.RemoteID != "s2.ics" {
			t.Errorf("link after the replacement points at %q, want s2.ics", l.RemoteID)
		}
		var start int64
		if err := s.DB().QueryRowContext(ctx, rebind(s, "SELECT start_at FROM external_events WHERE connection_id = ? AND uid = 'series' AND recurrence_id = 'r2'"),
			conn.ID).Scan(&start); err != nil || start != dup.Start.UnixMilli() {
			t.Errorf("duplicate instance: start %d, %v; want the later %d", start, err, dup.Start.UnixMilli())
		}

		// Removing takes events and event links of the uids only.
		if err := s.UpsertLink(ctx, store.Link{ConnectionID: conn.ID, ItemKind: store.LinkAppointment, ItemID: "single"}); err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveObjects(ctx, conn.ID, []string{"single", "empty", "never-imported", "single"}); err != nil {
			t.Fatal(err)
		}
		if got := storedUIDs(t, s, conn.ID); len(got) != 1 || len(got["series"]) != 2 {
			t.Errorf("after removing: %v", got)
		}
		links, _ := s.ListLinks(ctx, conn.ID, store.LinkEvent)
		if len(links) != 1 || links[0].ItemID != "series" {
			t.Errorf("event links after removing: %+v", links)
		}
		if _, err := s.GetLink(ctx, conn.ID, store.LinkAppointment, "single"); err != nil {
			t.Errorf("appointment link with the removed uid as id: %v", err)
		}
		if got := storedUIDs(t, s, other.ID); len(got["series"]) != 1 {
			t.Errorf("the other connection's imports: %v", got)
		}

		// Nothing to do is not an error.
		if err := s.ImportObjects(ctx, conn.ID, nil); err != nil {
			t.Errorf("ImportObjects(nil): %v", err)
		}
		if err := s.RemoveObjects(ctx, conn.ID, nil); err != nil {
			t.Errorf("RemoveObjects(nil): %v", err)
		}
		if err := s.ImportObjects(ctx, conn.ID, []store.ImportedObject{importObj("", "x.ics")}); err == nil {
			t.Errorf("empty uid accepted")
		}
	})
}

func TestImportObjectsRefused(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		conn := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionBoth, store.ConsentCalendarReadBusy)
		if err := s.ImportObjects(ctx, conn.ID, []store.ImportedObject{importObj("a", "a.ics", importEvent("", 0))}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.BeginRevocation(ctx, tn.ID, conn.ID, store.Revocation{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		err := s.ImportObjects(ctx, conn.ID, []store.ImportedObject{
			importObj("a", "a.ics", importEvent("", 1), importEvent("x", 2)),
			importObj("b", "b.ics", importEvent("", 3)),
		})
		if !errors.Is(err, store.ErrNotActive) {
			t.Errorf("ImportObjects after BeginRevocation: %v, want ErrNotActive", err)
		}
		if n, _ := s.ExternalEventCount(ctx, conn.ID); n != 1 {
			t.Errorf("refused import changed the events: %d, want the 1 before", n)
		}
		if n := count(t, s, "SELECT count(*) FROM links WHERE connection_id = ?", conn.ID); n != 1 {
			t.Errorf("refused import changed the links: %d, want the 1 before", n)
		}
		// Removing is allowed in every state.
		if err := s.RemoveObjects(ctx, conn.ID, []string{"a"}); err != nil {
			t.Errorf("RemoveObjects while revoking: %v", err)
		}
		if n, _ := s.ExternalEventCount(ctx, conn.ID); n != 0 {
			t.Errorf("%d events left after RemoveObjects", n)
		}

		paused := connWith(t, s, tn.ID, "ben", store.PrivacyBusy, store.DirectionBoth, store.ConsentCalendarReadBusy)
		if _, err := s.SetConnectionState(ctx, paused.ID, store.ConnPaused, "quota", "test"); err != nil {
			t.Fatal(err)
		}
		if err := s.ImportObjects(ctx, paused.ID, []store.ImportedObject{importObj("a", "a.ics")}); !errors.Is(err, store.ErrNotActive) {
			t.Errorf("ImportObjects on a paused connection: %v, want ErrNotActive", err)
		}
		restricted := connWith(t, s, tn.ID, "carl", store.PrivacyBusy, store.DirectionBoth, store.ConsentCalendarReadBusy)
		if err := s.SetSubjectRestricted(ctx, tn.ID, "carl", true); err != nil {
			t.Fatal(err)
		}
		if err := s.ImportObjects(ctx, restricted.ID, []store.ImportedObject{importObj("a", "a.ics")}); !errors.Is(err, store.ErrRestricted) {
			t.Errorf("ImportObjects for a restricted subject: %v, want ErrRestricted", err)
		}
		if err := s.ImportObjects(ctx, "con_missing", []store.ImportedObject{importObj("a", "a.ics")}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown connection: %v, want ErrNotFound", err)
		}
	})
}

// TestImportObjectsChunks crosses every limit the batch splits on: more
// objects than one transaction takes, and more events than one statement
// may bind (SQLite: 32,766 variables, PostgreSQL: 65,535 parameters).
func TestImportObjectsChunks(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		// Tens of thousands of rows, written several times: on a loaded
		// 2-core machine this takes longer than testCtx allows.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		t.Cleanup(cancel)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		conn := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionImport, store.ConsentCalendarReadBusy)

		// 6,000 occurrences of one series: 72,000 values.
		var series []store.ExternalEvent
		for i := range 6000 {
			series = append(series, importEvent(fmt.Sprintf("r%05d", i), i))
		}
		// 2.5 transactions' worth of objects of 3 occurrences each.
		objs := []store.ImportedObject{importObj("series", "series.ics", series...)}
		for i := range store.ImportChunk*2 + store.ImportChunk/2 {
			objs = append(objs, importObj(fmt.Sprintf("uid-%04d", i), fmt.Sprintf("o%04d.ics", i),
				importEvent("", 0), importEvent("a", 1), importEvent("b", 2)))
		}
		want := 6000 + 3*(len(objs)-1)
		if err := s.ImportObjects(ctx, conn.ID, objs); err != nil {
			t.Fatal(err)
		}
		if n, err := s.ExternalEventCount(ctx, conn.ID); err != nil || n != want {
			t.Errorf("ExternalEventCount = %d, %v; want %d", n, err, want)
		}
		if links, err := s.ListLinks(ctx, conn.ID, store.LinkEvent); err != nil || len(links) != len(objs) {
			t.Errorf("%d links, %v; want %d", len(links), err, len(objs))
		}
		// Importing again replaces rather than adds.
		if err := s.ImportObjects(ctx, conn.ID, objs); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.ExternalEventCount(ctx, conn.ID); n != want {
			t.Errorf("after importing twice: %d events, want %d", n, want)
		}
		// The single-object form goes through the same split.
		if err := s.ReplaceExternalEvents(ctx, conn.ID, "series", series[:5500]); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.ExternalEventCount(ctx, conn.ID); n != want-500 {
			t.Errorf("after ReplaceExternalEvents: %d events, want %d", n, want-500)
		}
		uids := make([]string, 0, len(objs))
		for _, o := range objs {
			uids = append(uids, o.UID)
		}
		if err := s.RemoveObjects(ctx, conn.ID, uids); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.ExternalEventCount(ctx, conn.ID); n != 0 {
			t.Errorf("%d events after removing all", n)
		}
		if n := count(t, s, "SELECT count(*) FROM links WHERE connection_id = ?", conn.ID); n != 0 {
			t.Errorf("%d links after removing all", n)
		}
	})
}

// TestImportObjectsInsideCalendarWrite: a pull imports while it holds the
// connection's write fence; a revocation waits for it and then refuses
// further imports.
func TestImportObjectsInsideCalendarWrite(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		conn := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionBoth, store.ConsentCalendarReadBusy)

		inside := make(chan struct{})
		revoked := make(chan error, 1)
		err := s.CalendarWrite(ctx, conn.ID, func(ctx context.Context) error {
			if err := s.ImportObjects(ctx, conn.ID, []store.ImportedObject{importObj("a", "a.ics", importEvent("", 0))}); err != nil {
				return err
			}
			go func() {
				close(inside)
				_, err := s.BeginRevocation(ctx, tn.ID, conn.ID, store.Revocation{Actor: "test"})
				revoked <- err
			}()
			<-inside
			// The revocation waits for the fence: this import still runs
			// against an active connection.
			select {
			case err := <-revoked:
				return fmt.Errorf("revocation committed inside the calendar write: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
			if err := s.ImportObjects(ctx, conn.ID, []store.ImportedObject{importObj("b", "b.ics", importEvent("", 1))}); err != nil {
				return err
			}
			return s.RemoveObjects(ctx, conn.ID, []string{"a"})
		})
		if err != nil {
			t.Fatalf("CalendarWrite: %v", err)
		}
		if err := <-revoked; err != nil {
			t.Fatalf("BeginRevocation: %v", err)
		}
		if got := storedUIDs(t, s, conn.ID); len(got) != 1 || len(got["b"]) != 1 {
			t.Errorf("events after the calendar write: %v", got)
		}
		if err := s.ImportObjects(ctx, conn.ID, []store.ImportedObject{importObj("c", "c.ics")}); !errors.Is(err, store.ErrNotActive) {
			t.Errorf("ImportObjects after the revocation: %v, want ErrNotActive", err)
		}
	})
}
