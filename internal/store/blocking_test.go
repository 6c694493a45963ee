package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// importEvents stores one imported object of conn with the given events.
func importEvents(t *testing.T, s *store.Store, connID, uid string, events ...store.ExternalEvent) {
	t.Helper()
	if err := s.ImportObjects(testCtx(t), connID, []store.ImportedObject{{UID: uid, Events: events,
		Link: store.Link{RemoteID: uid + ".ics"}}}); err != nil {
		t.Fatalf("ImportObjects: %v", err)
	}
}

// connAt is connWith on a calendar of its own.
func connAt(t *testing.T, s *store.Store, tenantID, subjectID, calendar, privacy, direction string, purposes ...string) store.Connection {
	t.Helper()
	c, err := s.CreateConnection(testCtx(t), store.Connection{
		TenantID: tenantID, SubjectID: subjectID, Provider: store.ProviderCalDAV,
		CalendarURL: "https://dav.example.org/" + subjectID + "/" + calendar + "/", Privacy: privacy, Direction: direction,
	}, []byte("pw"), grant(purposes...), store.AuditEntry{Actor: "test"})
	if err != nil {
		t.Fatalf("CreateConnection: %v", err)
	}
	return c
}

func TestBusyElsewhere(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		other, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		base := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
		target := connAt(t, s, tn.ID, "anna", "private", store.PrivacyBusy, store.DirectionBoth, store.ConsentCalendarReadBusy, store.ConsentCalendarWrite)
		work := connAt(t, s, tn.ID, "anna", "work", store.PrivacyFull, store.DirectionImport, store.ConsentCalendarReadBusy, store.ConsentCalendarReadDetails)
		paused := connAt(t, s, tn.ID, "anna", "old", store.PrivacyBusy, store.DirectionImport, store.ConsentCalendarReadBusy)
		ben := connAt(t, s, tn.ID, "ben", "private", store.PrivacyBusy, store.DirectionImport, store.ConsentCalendarReadBusy)
		foreign := connAt(t, s, other.ID, "anna", "work", store.PrivacyBusy, store.DirectionImport, store.ConsentCalendarReadBusy)

		ev := func(start time.Time, d time.Duration, f ...func(*store.ExternalEvent)) store.ExternalEvent {
			e := store.ExternalEvent{Start: start, End: start.Add(d), TimeZone: "Europe/Berlin", Title: "Zahnarzt"}
			for _, fn := range f {
				fn(&e)
			}
			return e
		}
		transparent := func(e *store.ExternalEvent) { e.Transparent = true }
		// The target's own imports never count for itself.
		importEvents(t, s, target.ID, "own", ev(base, time.Hour))
		importEvents(t, s, work.ID, "series", ev(base.Add(2*time.Hour), time.Hour, func(e *store.ExternalEvent) { e.RecurrenceID = "20261201T110000Z" }),
			ev(base.Add(26*time.Hour), time.Hour, func(e *store.ExternalEvent) { e.RecurrenceID = "20261202T110000Z" }))
		importEvents(t, s, work.ID, "holiday", ev(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC), 24*time.Hour, func(e *store.ExternalEvent) {
			e.AllDay, e.TimeZone = true, ""
		}))
		importEvents(t, s, work.ID, "free", ev(base.Add(4*time.Hour), time.Hour, transparent))
		importEvents(t, s, work.ID, "zero", ev(base.Add(5*time.Hour), 0))
		importEvents(t, s, work.ID, "outside", ev(base.AddDate(0, 2, 0), time.Hour))
		importEvents(t, s, paused.ID, "p", ev(base.Add(6*time.Hour), time.Hour))
		importEvents(t, s, ben.ID, "b", ev(base.Add(7*time.Hour), time.Hour))
		importEvents(t, s, foreign.ID, "f", ev(base.Add(8*time.Hour), time.Hour))
		// Another connection of the target's own calendar: its events are
		// in that calendar already.
		same, err := s.CreateConnection(ctx, store.Connection{TenantID: tn.ID, SubjectID: "anna", Provider: store.ProviderCalDAV,
			CalendarURL: target.CalendarURL, Privacy: store.PrivacyBusy, Direction: store.DirectionImport}, []byte("pw"),
			grant(store.ConsentCalendarReadBusy), store.AuditEntry{Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		importEvents(t, s, same.ID, "s", ev(base.Add(9*time.Hour), time.Hour))
		if _, err := s.SetConnectionState(ctx, paused.ID, store.ConnPaused, "test", "test"); err != nil {
			t.Fatal(err)
		}

		got, err := s.BusyElsewhere(ctx, target.ID, base.Add(-time.Hour), base.AddDate(0, 0, 7))
		if err != nil {
			t.Fatal(err)
		}
		type row struct {
			conn, uid, rid string
			start, end     time.Time
			allDay         bool
			zone           string
		}
		var rows []row
		for _, b := range got {
			rows = append(rows, row{b.ConnectionID, b.UID, b.RecurrenceID, b.Start.UTC(), b.End.UTC(), b.AllDay, b.TimeZone})
		}
		want := []row{
			{work.ID, "series", "20261201T110000Z", base.Add(2 * time.Hour), base.Add(3 * time.Hour), false, "Europe/Berlin"},
			{work.ID, "series", "20261202T110000Z", base.Add(26 * time.Hour), base.Add(27 * time.Hour), false, "Europe/Berlin"},
			{work.ID, "holiday", "", time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC), true, ""},
		}
		if !slices.Equal(rows, want) {
			t.Errorf("busy elsewhere of the target:\n got %+v\nwant %+v", rows, want)
		}

		// Seen from the work calendar, the target's own event is elsewhere.
		got, err = s.BusyElsewhere(ctx, work.ID, base.Add(-time.Hour), base.Add(time.Hour))
		if err != nil || len(got) != 1 || got[0].ConnectionID != target.ID || got[0].UID != "own" {
			t.Errorf("busy elsewhere of work = %+v, %v; want the target's event only", got, err)
		}
		if _, err := s.BusyElsewhere(ctx, "con_nope", base, base.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown connection: %v, want ErrNotFound", err)
		}
	})
}

func TestConnectionBlocking(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		other, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		a := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionImport, store.ConsentCalendarReadBusy)
		b := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionBoth, store.ConsentCalendarReadBusy, store.ConsentCalendarWrite)
		exportOnly := connWith(t, s, tn.ID, "anna", store.PrivacyBusy, store.DirectionExport, store.ConsentCalendarWrite)
		ben := connWith(t, s, tn.ID, "ben", store.PrivacyBusy, store.DirectionBoth, store.ConsentCalendarReadBusy, store.ConsentCalendarWrite)
		if b.Blocking {
			t.Fatal("a new connection blocks by default")
		}

		// Set at creation.
		created, err := s.CreateConnection(ctx, store.Connection{TenantID: tn.ID, SubjectID: "anna", Provider: store.ProviderCalDAV,
			CalendarURL: "https://dav.example.org/cal/x/", Privacy: store.PrivacyBusy, Direction: store.DirectionExport, Blocking: true},
			[]byte("pw"), grant(store.ConsentCalendarWrite), store.AuditEntry{Actor: "test"})
		if err != nil || !created.Blocking {
			t.Fatalf("create with blocking: %+v, %v", created, err)
		}
		if got, err := s.GetConnectionByID(ctx, created.ID); err != nil || !got.Blocking {
			t.Errorf("stored blocking = %v, %v", got.Blocking, err)
		}

		for _, c := range []struct {
			id       string
			blocking bool
		}{{b.ID, true}, {exportOnly.ID, true}, {a.ID, true}, {ben.ID, true}} {
			if _, err := s.SetConnectionBlocking(ctx, tn.ID, c.id, c.blocking, store.AuditEntry{Actor: "api_key:k1"}); err != nil {
				t.Fatalf("SetConnectionBlocking(%s): %v", c.id, err)
			}
		}
		got, err := s.GetConnection(ctx, tn.ID, b.ID)
		if err != nil || !got.Blocking || !got.UpdatedAt.After(b.UpdatedAt.Add(-time.Millisecond)) {
			t.Errorf("after enabling: %+v, %v", got, err)
		}
		audits, err := s.ListAudit(ctx, tn.ID, "anna")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range audits {
			if e.Action == "connection.blocking" && e.TargetID == b.ID && e.Detail == "blocking=true" && e.Actor == "api_key:k1" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d audit entries for enabling blocking on b, want 1: %+v", n, audits)
		}
		// The same value again: no change, no audit entry.
		if _, err := s.SetConnectionBlocking(ctx, tn.ID, b.ID, true, store.AuditEntry{Actor: "api_key:k1"}); err != nil {
			t.Fatal(err)
		}
		if again, _ := s.ListAudit(ctx, tn.ID, "anna"); len(again) != len(audits) {
			t.Errorf("setting the same value wrote %d audit entries", len(again)-len(audits))
		}
		if _, err := s.SetConnectionBlocking(ctx, other.ID, b.ID, false, store.AuditEntry{Actor: "x"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("another tenant's connection: %v, want ErrNotFound", err)
		}

		// Allowed: blocking, export, calendar.write granted, active.
		for _, c := range []struct {
			name string
			id   string
			want bool
		}{{"both with write", b.ID, true}, {"export-only with write", exportOnly.ID, true}, {"import-only", a.ID, false}} {
			ok, err := s.BlockingAllowed(ctx, c.id)
			if err != nil || ok != c.want {
				t.Errorf("%s: BlockingAllowed = %v, %v; want %v", c.name, ok, err, c.want)
			}
		}
		// calendar.write revoked later: not allowed any more.
		if _, err := s.RecordConsent(ctx, store.Consent{TenantID: tn.ID, SubjectID: "anna", Purpose: store.ConsentCalendarWrite,
			Decision: store.DecisionRevoked, PolicyVersion: "v1", Actor: "test", ConnectionID: exportOnly.ID}); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.BlockingAllowed(ctx, exportOnly.ID); err != nil || ok {
			t.Errorf("after revoking calendar.write: BlockingAllowed = %v, %v", ok, err)
		}
		if ok, err := s.CalendarWriteGranted(ctx, exportOnly.ID); err != nil || ok {
			t.Errorf("after revoking calendar.write: CalendarWriteGranted = %v, %v", ok, err)
		}
		if ok, err := s.CalendarWriteGranted(ctx, b.ID); err != nil || !ok {
			t.Errorf("CalendarWriteGranted(b) = %v, %v", ok, err)
		}
		if _, err := s.BlockingAllowed(ctx, "con_nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown connection: %v", err)
		}

		// Peers of a: the subject's other active blocking connections.
		peers, err := s.BlockingPeers(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{b.ID, exportOnly.ID, created.ID}; !slices.Equal(peers, want) {
			t.Errorf("peers of a = %v, want %v (ben's is another subject's)", peers, want)
		}
		if _, err := s.SetConnectionState(ctx, created.ID, store.ConnPaused, "test", "test"); err != nil {
			t.Fatal(err)
		}
		if peers, _ = s.BlockingPeers(ctx, b.ID); !slices.Equal(peers, []string{a.ID, exportOnly.ID}) {
			t.Errorf("peers of b = %v, want a and the export-only one (paused and itself left out)", peers)
		}

		// Revoking: no more changes.
		if _, err := s.BeginRevocation(ctx, tn.ID, b.ID, store.Revocation{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetConnectionBlocking(ctx, tn.ID, b.ID, false, store.AuditEntry{Actor: "x"}); !errors.Is(err, store.ErrNotActive) {
			t.Errorf("revoking connection: %v, want ErrNotActive", err)
		}
		// Blocker links are links like the others.
		if err := s.UpsertLink(ctx, store.Link{ConnectionID: a.ID, ItemKind: store.LinkBlocker, ItemID: "k1", RemoteID: "termind-blocker:k1.ics"}); err != nil {
			t.Errorf("upsert blocker link: %v", err)
		}
		if ls, err := s.ListLinks(ctx, a.ID, store.LinkBlocker); err != nil || len(ls) != 1 {
			t.Errorf("blocker links = %+v, %v", ls, err)
		}
	})
}
