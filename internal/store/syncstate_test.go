package store_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

func TestLinks(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		c := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionBoth, store.ConsentCalendarWrite)
		other := connWith(t, s, tn.ID, "ben", store.PrivacyBusy, store.DirectionBoth, store.ConsentCalendarWrite)

		l := store.Link{ConnectionID: c.ID, ItemKind: store.LinkAppointment, ItemID: "apt-2", RemoteID: "apt-2.ics",
			RemoteHref: "/cal/anna/apt-2.ics", RemoteETag: `"e1"`, ContentHash: "h1", SyncedVersion: 1}
		before := time.Now().Add(-time.Second)
		for _, in := range []store.Link{
			l,
			{ConnectionID: c.ID, ItemKind: store.LinkAppointment, ItemID: "apt-1", RemoteID: "apt-1.ics"},
			{ConnectionID: c.ID, ItemKind: store.LinkEvent, ItemID: "uid-9", RemoteHref: "/cal/anna/x.ics"},
			{ConnectionID: other.ID, ItemKind: store.LinkAppointment, ItemID: "apt-2"},
		} {
			if err := s.UpsertLink(ctx, in); err != nil {
				t.Fatalf("UpsertLink(%+v): %v", in, err)
			}
		}
		got, err := s.GetLink(ctx, c.ID, store.LinkAppointment, "apt-2")
		if err != nil || got.UpdatedAt.Before(before) {
			t.Fatalf("GetLink = %+v, %v", got, err)
		}
		got.UpdatedAt = time.Time{}
		if got != l {
			t.Errorf("GetLink = %+v, want %+v", got, l)
		}
		// Upsert replaces every field.
		l.RemoteETag, l.ContentHash, l.SyncedVersion = `"e2"`, "h2", 3
		if err := s.UpsertLink(ctx, l); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetLink(ctx, c.ID, store.LinkAppointment, "apt-2"); got.RemoteETag != `"e2"` || got.ContentHash != "h2" || got.SyncedVersion != 3 {
			t.Errorf("after update: %+v", got)
		}
		list, err := s.ListLinks(ctx, c.ID, store.LinkAppointment)
		var ids []string
		for _, x := range list {
			ids = append(ids, x.ItemID)
		}
		if err != nil || !slices.Equal(ids, []string{"apt-1", "apt-2"}) {
			t.Errorf("ListLinks(appointment) = %v, %v", ids, err)
		}
		if list, err := s.ListLinks(ctx, c.ID, store.LinkEvent); err != nil || len(list) != 1 || list[0].ItemID != "uid-9" {
			t.Errorf("ListLinks(event) = %+v, %v", list, err)
		}
		if err := s.DeleteLink(ctx, c.ID, store.LinkAppointment, "apt-1"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteLink(ctx, c.ID, store.LinkAppointment, "apt-1"); err != nil {
			t.Errorf("DeleteLink of an absent link: %v", err)
		}
		if _, err := s.GetLink(ctx, c.ID, store.LinkAppointment, "apt-1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted link: %v, want ErrNotFound", err)
		}
		if _, err := s.GetLink(ctx, other.ID, store.LinkAppointment, "apt-2"); err != nil {
			t.Errorf("another connection's link: %v", err)
		}

		for _, bad := range []store.Link{
			{ConnectionID: c.ID, ItemKind: "copy", ItemID: "x"},
			{ConnectionID: c.ID, ItemKind: store.LinkEvent},
			{ItemKind: store.LinkEvent, ItemID: "x"},
		} {
			if err := s.UpsertLink(ctx, bad); err == nil {
				t.Errorf("UpsertLink(%+v) accepted", bad)
			}
		}
		if err := s.UpsertLink(ctx, store.Link{ConnectionID: "con_missing", ItemKind: store.LinkEvent, ItemID: "x"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown connection: %v, want ErrNotFound", err)
		}

		// Not active: nothing more is written; what is there stays for the
		// revocation to use.
		if _, err := s.BeginRevocation(ctx, tn.ID, c.ID, store.Revocation{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		l.ItemID = "apt-3"
		if err := s.UpsertLink(ctx, l); !errors.Is(err, store.ErrNotActive) {
			t.Errorf("UpsertLink after BeginRevocation: %v, want ErrNotActive", err)
		}
		if n := count(t, s, "SELECT count(*) FROM links WHERE connection_id = ?", c.ID); n != 2 {
			t.Errorf("%d links after the refused upsert, want 2", n)
		}
		if _, err := s.SetConnectionState(ctx, other.ID, store.ConnPaused, "quota", "test"); err != nil {
			t.Fatal(err)
		}
		if err := s.UpsertLink(ctx, store.Link{ConnectionID: other.ID, ItemKind: store.LinkEvent, ItemID: "y"}); !errors.Is(err, store.ErrNotActive) {
			t.Errorf("UpsertLink on a paused connection: %v, want ErrNotActive", err)
		}
		restricted := connWith(t, s, tn.ID, "carl", store.PrivacyBusy, store.DirectionBoth, store.ConsentCalendarWrite)
		if err := s.SetSubjectRestricted(ctx, tn.ID, "carl", true); err != nil {
			t.Fatal(err)
		}
		if err := s.UpsertLink(ctx, store.Link{ConnectionID: restricted.ID, ItemKind: store.LinkEvent, ItemID: "y"}); !errors.Is(err, store.ErrRestricted) {
			t.Errorf("UpsertLink for a restricted subject: %v, want ErrRestricted", err)
		}
	})
}

func TestReplaceExternalEvents(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		start := time.Date(2031, 6, 2, 8, 0, 0, 0, time.UTC)
		ev := func(rid string, h int) store.ExternalEvent {
			return store.ExternalEvent{ConnectionID: "ignored", UID: "ignored", RecurrenceID: rid,
				Start: start.Add(time.Duration(h) * time.Hour), End: start.Add(time.Duration(h+1) * time.Hour),
				TimeZone: "Europe/Vienna", Title: "Secret-Title", Location: "Secret-Location", Description: "Secret-Description"}
		}
		cases := []struct {
			privacy                      string
			title, location, description bool
		}{
			{store.PrivacyBusy, false, false, false},
			{store.PrivacyDetails, true, true, false},
			{store.PrivacyFull, true, true, true},
		}
		for _, c := range cases {
			conn := connWith(t, s, tn.ID, "subj-"+c.privacy, c.privacy, store.DirectionImport, store.ConsentCalendarReadBusy)
			if err := s.ReplaceExternalEvents(ctx, conn.ID, "uid-1", []store.ExternalEvent{ev("", 0)}); err != nil {
				t.Fatal(err)
			}
			var rows []string
			for _, r := range rawRows(t, s, "external_events") {
				if strings.Contains(r, conn.ID) {
					rows = append(rows, r)
				}
			}
			if len(rows) != 1 {
				t.Fatalf("%s: %d rows stored, want 1", c.privacy, len(rows))
			}
			for _, f := range []struct {
				text string
				kept bool
			}{{"Secret-Title", c.title}, {"Secret-Location", c.location}, {"Secret-Description", c.description}} {
				if strings.Contains(rows[0], f.text) != f.kept {
					t.Errorf("%s: %s kept = %v, want %v: %s", c.privacy, f.text, !f.kept, f.kept, rows[0])
				}
			}
			if !strings.Contains(rows[0], "uid=uid-1 ") || !strings.Contains(rows[0], "Europe/Vienna") {
				t.Errorf("%s: row = %s", c.privacy, rows[0])
			}
		}

		conn := connWith(t, s, tn.ID, "anna", store.PrivacyFull, store.DirectionBoth, store.ConsentCalendarReadBusy)
		uids := func() map[string][]string {
			t.Helper()
			x, err := s.ExportSubject(ctx, tn.ID, "anna")
			if err != nil {
				t.Fatal(err)
			}
			out := map[string][]string{}
			for _, e := range x.ExternalEvents {
				out[e.UID] = append(out[e.UID], e.RecurrenceID)
			}
			return out
		}
		series := []store.ExternalEvent{ev("20310602T080000Z", 0), ev("20310609T080000Z", 168), ev("20310616T080000Z", 336)}
		if err := s.ReplaceExternalEvents(ctx, conn.ID, "series", series); err != nil {
			t.Fatal(err)
		}
		if err := s.ReplaceExternalEvents(ctx, conn.ID, "single", []store.ExternalEvent{ev("", 5)}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.ExternalEventCount(ctx, conn.ID); err != nil || n != 4 {
			t.Errorf("ExternalEventCount = %d, %v; want 4", n, err)
		}
		// Replacing the series (one instance cancelled) leaves the other object alone.
		dup := ev("20310609T080000Z", 170) // the same instance twice: the later wins
		if err := s.ReplaceExternalEvents(ctx, conn.ID, "series", []store.ExternalEvent{series[0], series[1], dup}); err != nil {
			t.Fatal(err)
		}
		got := uids()
		if !slices.Equal(got["series"], []string{"20310602T080000Z", "20310609T080000Z"}) || len(got["single"]) != 1 {
			t.Errorf("after replacing the series: %v", got)
		}
		x, _ := s.ExportSubject(ctx, tn.ID, "anna")
		for _, e := range x.ExternalEvents {
			if e.RecurrenceID == "20310609T080000Z" && !e.Start.Equal(dup.Start) {
				t.Errorf("duplicate instance: stored start %v, want the later %v", e.Start, dup.Start)
			}
			if e.ConnectionID != conn.ID || e.Description != "Secret-Description" {
				t.Errorf("stored event = %+v", e)
			}
		}
		if err := s.ReplaceExternalEvents(ctx, conn.ID, "single", nil); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteExternalEvents(ctx, conn.ID, "series"); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.ExternalEventCount(ctx, conn.ID); n != 0 {
			t.Errorf("%d events after removing both objects", n)
		}

		if err := s.ReplaceExternalEvents(ctx, conn.ID, "single", []store.ExternalEvent{ev("", 5)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.BeginRevocation(ctx, tn.ID, conn.ID, store.Revocation{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		if err := s.ReplaceExternalEvents(ctx, conn.ID, "single", []store.ExternalEvent{ev("", 6), ev("x", 7)}); !errors.Is(err, store.ErrNotActive) {
			t.Errorf("ReplaceExternalEvents after BeginRevocation: %v, want ErrNotActive", err)
		}
		if n, _ := s.ExternalEventCount(ctx, conn.ID); n != 1 {
			t.Errorf("refused replacement changed the rows: %d, want the 1 before", n)
		}
		// Deleting is allowed in any state.
		if err := s.DeleteExternalEvents(ctx, conn.ID, "single"); err != nil {
			t.Errorf("DeleteExternalEvents while revoking: %v", err)
		}
		if err := s.ReplaceExternalEvents(ctx, "con_missing", "u", nil); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown connection: %v, want ErrNotFound", err)
		}
		if err := s.ReplaceExternalEvents(ctx, conn.ID, "", nil); err == nil {
			t.Errorf("empty uid accepted")
		}
	})
}

func TestBusyIntervals(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		other, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		day := time.Date(2031, 7, 1, 0, 0, 0, 0, time.UTC)
		at := func(h float64) time.Time { return day.Add(time.Duration(h * float64(time.Hour))) }
		// Instances of one object are told apart by their recurrence id.
		busy := func(from, to float64) store.ExternalEvent {
			return store.ExternalEvent{RecurrenceID: at(from).Format("20060102T150405Z"), Start: at(from), End: at(to)}
		}
		free := func(from, to float64) store.ExternalEvent {
			return store.ExternalEvent{Start: at(from), End: at(to), Transparent: true}
		}
		put := func(c store.Connection, uid string, events ...store.ExternalEvent) {
			t.Helper()
			if err := s.ReplaceExternalEvents(ctx, c.ID, uid, events); err != nil {
				t.Fatal(err)
			}
		}
		read := store.ConsentCalendarReadBusy
		a := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionBoth, read)
		b := connWith(t, s, tn.ID, "anna", store.PrivacyDetails, store.DirectionImport, read)
		exportOnly := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionExport, store.ConsentCalendarWrite)
		paused := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionBoth, read)
		revoking := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionBoth, read)
		ben := connWith(t, s, tn.ID, "ben", store.PrivacyBusy, store.DirectionBoth, read)
		otherAnna := connWith(t, s, other.ID, "anna", store.PrivacyBusy, store.DirectionBoth, read)

		put(a, "overlap", busy(9, 10), busy(9.5, 10.5)) // two instances of one object
		put(b, "touching", busy(10.5, 11))
		put(a, "transparent", free(12, 13))
		put(b, "afternoon", busy(14, 15))
		put(a, "contained", busy(14.25, 14.5))
		// An export-only connection cannot hold imported events at all.
		if err := s.ReplaceExternalEvents(ctx, exportOnly.ID, "export", []store.ExternalEvent{busy(16, 17)}); !errors.Is(err, store.ErrNotImporting) {
			t.Fatalf("import on an export-only connection: %v, want ErrNotImporting", err)
		}
		put(paused, "paused", busy(13, 13.5))
		put(revoking, "revoking", busy(13.5, 14))
		put(ben, "ben", busy(11, 12))
		put(otherAnna, "other-tenant", busy(12, 13))
		put(a, "before-window", busy(7, 8.5))
		put(a, "after-window", busy(17.5, 19))
		put(a, "outside", busy(19, 20), busy(6, 7))
		put(a, "instant", busy(16, 16))
		if _, err := s.SetConnectionState(ctx, paused.ID, store.ConnPaused, "quota", "test"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.BeginRevocation(ctx, tn.ID, revoking.ID, store.Revocation{Actor: "test"}); err != nil {
			t.Fatal(err)
		}

		iv := func(from, to float64) store.BusyInterval { return store.BusyInterval{Start: at(from), End: at(to)} }
		cases := []struct {
			name     string
			from, to float64
			want     []store.BusyInterval
		}{
			// Unclipped: the intervals crossing the window's edges come whole.
			{"day", 8, 18, []store.BusyInterval{iv(7, 8.5), iv(9, 11), iv(14, 15), iv(17.5, 19)}},
			{"morning", 9.75, 10.6, []store.BusyInterval{iv(9, 11)}},
			{"gap", 11, 14, nil},
			{"window ends where one starts", 8.5, 9, nil},
			{"empty day", 30, 40, nil},
		}
		for _, c := range cases {
			got, err := s.BusyIntervals(ctx, tn.ID, "anna", at(c.from), at(c.to))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s: BusyIntervals = %v, want %v", c.name, got, c.want)
			}
		}
		if got, err := s.BusyIntervals(ctx, tn.ID, "ben", at(0), at(24)); err != nil || !reflect.DeepEqual(got, []store.BusyInterval{iv(11, 12)}) {
			t.Errorf("ben = %v, %v", got, err)
		}

		// Restricted: nothing is processed, so nothing is shown.
		if err := s.SetSubjectRestricted(ctx, tn.ID, "anna", true); err != nil {
			t.Fatal(err)
		}
		if got, err := s.BusyIntervals(ctx, tn.ID, "anna", at(0), at(24)); err != nil || len(got) != 0 {
			t.Errorf("restricted subject = %v, %v; want none", got, err)
		}
		if err := s.SetSubjectRestricted(ctx, tn.ID, "anna", false); err != nil {
			t.Fatal(err)
		}
		want := []store.BusyInterval{iv(6, 8.5), iv(9, 11), iv(14, 15), iv(17.5, 20)}
		if got, err := s.BusyIntervals(ctx, tn.ID, "anna", at(0), at(24)); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("after lifting the restriction: %v, %v; want %v", got, err, want)
		}
	})
}

func TestRecordSync(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		c := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionBoth, store.ConsentCalendarReadBusy)
		status := func() store.SyncStatus {
			t.Helper()
			st, err := s.GetSyncStatus(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
		cursor := func() string {
			t.Helper()
			got, err := s.GetConnectionByID(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.SyncCursor
		}
		if st := status(); !reflect.DeepEqual(st, store.SyncStatus{}) {
			t.Errorf("before the first run: %+v", st)
		}
		if err := s.ReplaceExternalEvents(ctx, c.ID, "u1", []store.ExternalEvent{{Start: time.Now(), End: time.Now().Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		t1 := time.Date(2031, 1, 1, 10, 0, 0, 0, time.UTC)
		full := store.SyncResult{Cursor: "tok-1", Full: true, Imported: 3, Removed: 1, Pushed: 2, Restored: 1, At: t1}
		if err := s.RecordSync(ctx, c.ID, full); err != nil {
			t.Fatal(err)
		}
		st := status()
		wantRun := full
		wantRun.Cursor = ""
		if !st.LastSyncAt.Equal(t1) || !st.LastFullAt.Equal(t1) || st.LastError != "" || st.Imported != 1 ||
			!reflect.DeepEqual(st.LastRun, wantRun) || cursor() != "tok-1" {
			t.Errorf("after a full run: %+v, cursor %q", st, cursor())
		}

		steps := []struct {
			name                 string
			run                  store.SyncResult
			lastSync, lastFull   time.Time
			lastError, attention string
			cursor               string
		}{
			{"failure keeps cursor and last sync", store.SyncResult{Error: "caldav 503", Cursor: "ignored", At: t1.Add(time.Minute)},
				t1, t1, "caldav 503", "", "tok-1"},
			{"guard raises attention", store.SyncResult{Error: "calendar looks empty", Attention: "calendar empty while 40 links exist", At: t1.Add(2 * time.Minute)},
				t1, t1, "calendar looks empty", "calendar empty while 40 links exist", "tok-1"},
			{"a transient failure keeps attention", store.SyncResult{Error: "timeout", At: t1.Add(3 * time.Minute)},
				t1, t1, "timeout", "calendar empty while 40 links exist", "tok-1"},
			{"incremental success clears", store.SyncResult{Cursor: "tok-2", Imported: 1, At: t1.Add(4 * time.Minute)},
				t1.Add(4 * time.Minute), t1, "", "", "tok-2"},
			{"success may set attention", store.SyncResult{Cursor: "tok-3", Attention: "look", At: t1.Add(5 * time.Minute)},
				t1.Add(5 * time.Minute), t1, "", "look", "tok-3"},
			{"success without a token keeps none", store.SyncResult{Full: true, At: t1.Add(6 * time.Minute)},
				t1.Add(6 * time.Minute), t1.Add(6 * time.Minute), "", "", ""},
		}
		for _, step := range steps {
			if err := s.RecordSync(ctx, c.ID, step.run); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			st := status()
			if !st.LastSyncAt.Equal(step.lastSync) || !st.LastFullAt.Equal(step.lastFull) || st.LastError != step.lastError ||
				st.Attention != step.attention || cursor() != step.cursor || !st.LastRun.At.Equal(step.run.At) ||
				st.LastRun.Error != step.run.Error || st.LastRun.Imported != step.run.Imported {
				t.Errorf("%s: status %+v, cursor %q", step.name, st, cursor())
			}
		}

		// A zero At is now.
		before := time.Now().Add(-time.Second)
		if err := s.RecordSync(ctx, c.ID, store.SyncResult{}); err != nil {
			t.Fatal(err)
		}
		if st := status(); st.LastSyncAt.Before(before) || !st.LastRun.At.Equal(st.LastSyncAt) {
			t.Errorf("zero At: %+v", st)
		}

		if _, err := s.BeginRevocation(ctx, tn.ID, c.ID, store.Revocation{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordSync(ctx, c.ID, store.SyncResult{Cursor: "late", At: time.Now()}); !errors.Is(err, store.ErrNotActive) {
			t.Errorf("RecordSync while revoking: %v, want ErrNotActive", err)
		}
		if err := s.FinishRevocation(ctx, c.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		if cursor() != "" {
			t.Errorf("cursor after revocation: %q", cursor())
		}
		if err := s.RecordSync(ctx, "con_missing", store.SyncResult{}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RecordSync(unknown): %v, want ErrNotFound", err)
		}
		if _, err := s.GetSyncStatus(ctx, "con_missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSyncStatus(unknown): %v, want ErrNotFound", err)
		}
	})
}

func TestConnectionsDueForSync(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		read := store.ConsentCalendarReadBusy
		now := time.Now()
		mk := func(subject string, lastSync time.Duration) store.Connection {
			t.Helper()
			c := connWith(t, s, tn.ID, subject, store.PrivacyBusy, store.DirectionBoth, read)
			if lastSync != 0 {
				if err := s.RecordSync(ctx, c.ID, store.SyncResult{At: now.Add(-lastSync)}); err != nil {
					t.Fatal(err)
				}
			}
			return c
		}
		never := mk("anna", 0)
		stale := mk("ben", 10*time.Minute)
		older := mk("carl", 20*time.Minute)
		mk("dora", time.Minute) // fresh
		failing := mk("emil", 10*time.Minute)
		if err := s.RecordSync(ctx, failing.ID, store.SyncResult{Error: "caldav 503", At: now}); err != nil {
			t.Fatal(err)
		}
		paused := mk("fritz", 0)
		if _, err := s.SetConnectionState(ctx, paused.ID, store.ConnPaused, "quota", "test"); err != nil {
			t.Fatal(err)
		}
		revoking := mk("gina", 0)
		if _, err := s.BeginRevocation(ctx, tn.ID, revoking.ID, store.Revocation{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		mk("hans", 0)
		if err := s.SetSubjectRestricted(ctx, tn.ID, "hans", true); err != nil {
			t.Fatal(err)
		}

		before := now.Add(-5 * time.Minute)
		got, err := s.ConnectionsDueForSync(ctx, before, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Never synced first, then oldest; a failed run does not count as a sync.
		var wantStale []string
		for _, c := range []store.Connection{stale, failing} {
			wantStale = append(wantStale, c.ID)
		}
		slices.Sort(wantStale)
		want := append([]string{never.ID, older.ID}, wantStale...)
		if !slices.Equal(got, want) {
			t.Errorf("ConnectionsDueForSync = %v, want %v", got, want)
		}
		if got, err := s.ConnectionsDueForSync(ctx, before, 2); err != nil || !slices.Equal(got, want[:2]) {
			t.Errorf("limit 2 = %v, %v; want %v", got, err, want[:2])
		}
		if err := s.RecordSync(ctx, never.ID, store.SyncResult{At: now}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ConnectionsDueForSync(ctx, before, 0); slices.Contains(got, never.ID) {
			t.Errorf("just synced, still due: %v", got)
		}
	})
}

// The sync engine records links and imports while it holds the calendar
// write fence, also when a revocation is already waiting for that fence.
func TestSyncStateInsideCalendarWrite(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		c := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionBoth, store.ConsentCalendarWrite)
		inside, proceed := make(chan struct{}), make(chan struct{})
		writeDone := make(chan error, 1)
		go func() {
			writeDone <- s.CalendarWrite(ctx, c.ID, func(ctx context.Context) error {
				close(inside)
				<-proceed
				if err := s.UpsertLink(ctx, store.Link{ConnectionID: c.ID, ItemKind: store.LinkAppointment, ItemID: "apt-1"}); err != nil {
					return err
				}
				return s.ReplaceExternalEvents(ctx, c.ID, "u1", []store.ExternalEvent{{Start: time.Now(), End: time.Now().Add(time.Hour)}})
			})
		}()
		<-inside
		revoked := make(chan error, 1)
		go func() {
			_, err := s.BeginRevocation(ctx, tn.ID, c.ID, store.Revocation{Actor: "test"})
			revoked <- err
		}()
		time.Sleep(100 * time.Millisecond) // let the revocation queue up behind the write
		close(proceed)
		if err := <-writeDone; err != nil {
			t.Fatalf("write in flight: %v", err)
		}
		if err := <-revoked; err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetLink(ctx, c.ID, store.LinkAppointment, "apt-1"); err != nil {
			t.Errorf("link written before the revocation committed: %v", err)
		}
		if err := s.UpsertLink(ctx, store.Link{ConnectionID: c.ID, ItemKind: store.LinkAppointment, ItemID: "apt-2"}); !errors.Is(err, store.ErrNotActive) {
			t.Errorf("UpsertLink after the revocation: %v, want ErrNotActive", err)
		}
	})
}
