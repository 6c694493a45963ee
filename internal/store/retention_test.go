package store_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

const day = store.Day

func TestRetentionPolicyValidate(t *testing.T) {
	t.Parallel()
	with := func(f func(p *store.RetentionPolicy)) store.RetentionPolicy {
		p := store.DefaultRetentionPolicy()
		f(&p)
		return p
	}
	tests := []struct {
		name  string
		p     store.RetentionPolicy
		field string // "" = valid
	}{
		{"defaults", store.DefaultRetentionPolicy(), ""},
		{"bounds", with(func(p *store.RetentionPolicy) {
			p.Notifications, p.Audit, p.ImportedEvents, p.BrokenConnections, p.InactiveSubjects = day, 30*day, 3650*day, 365*day, 365*day
			p.InactivityAction = store.InactivityAnonymise
		}), ""},
		{"notifications zero", with(func(p *store.RetentionPolicy) { p.Notifications = 0 }), store.PolicyNotifications},
		{"notifications too long", with(func(p *store.RetentionPolicy) { p.Notifications = 3651 * day }), store.PolicyNotifications},
		{"notifications part of a day", with(func(p *store.RetentionPolicy) { p.Notifications = 36 * time.Hour }), store.PolicyNotifications},
		{"audit under 30 days", with(func(p *store.RetentionPolicy) { p.Audit = 29 * day }), store.PolicyAudit},
		{"audit too long", with(func(p *store.RetentionPolicy) { p.Audit = 3651 * day }), store.PolicyAudit},
		{"imported events zero", with(func(p *store.RetentionPolicy) { p.ImportedEvents = 0 }), store.PolicyImportedEvents},
		{"broken connections over a year", with(func(p *store.RetentionPolicy) { p.BrokenConnections = 366 * day }), store.PolicyBrokenConnections},
		{"inactive subjects under a year", with(func(p *store.RetentionPolicy) { p.InactiveSubjects = 364 * day }), store.PolicyInactiveSubjects},
		{"inactive subjects over ten years", with(func(p *store.RetentionPolicy) { p.InactiveSubjects = 3651 * day }), store.PolicyInactiveSubjects},
		{"unknown action", with(func(p *store.RetentionPolicy) { p.InactivityAction = "delete" }), store.PolicyInactivityAction},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.p.Validate()
			var fe *store.FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field || fe.Rule == ""):
				t.Errorf("Validate() = %v, want a FieldError for %s", err, tc.field)
			}
		})
	}
}

// finished stores a notification of the subject that reached its final
// state at final.
func finished(t *testing.T, s *store.Store, tenantID, key, subject string, final time.Time) store.Notification {
	t.Helper()
	n := item(tenantID, key, final.Add(-time.Minute))
	n.SubjectID = subject
	n = create(t, s, n)
	claim(t, s, n.ID, final)
	n, err := s.FinishAttempt(testCtx(t), n.ID, final, store.AttemptResult{Status: store.StatusSent})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func auditActions(t *testing.T, s *store.Store, tenantID string) []store.AuditEntry {
	t.Helper()
	return mustAudit(t, s, tenantID)
}

func findAudit(entries []store.AuditEntry, action string) (store.AuditEntry, bool) {
	for _, e := range entries {
		if e.Action == action {
			return e, true
		}
	}
	return store.AuditEntry{}, false
}

func TestRetentionPolicyChange(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		other, _ := storetest.NewTenant(t, s)
		now := time.Now().UTC().Truncate(time.Millisecond)
		n := finished(t, s, tn.ID, "a", "subj-a", now)
		on := finished(t, s, other.ID, "b", "subj-b", now)
		later := now.Add(10 * day)

		if rep, err := s.PurgeExpired(ctx, later, 0, false); err != nil || rep.Notifications != 0 {
			t.Fatalf("purge under the default window: %+v, %v; want nothing deleted", rep, err)
		}

		// Refused: nothing stored, nothing audited.
		bad := store.DefaultRetentionPolicy()
		bad.Audit = 7 * day
		var fe *store.FieldError
		if _, err := s.SetRetentionPolicy(ctx, tn.ID, bad, "cli", "", now); !errors.As(err, &fe) || fe.Field != store.PolicyAudit {
			t.Fatalf("SetRetentionPolicy(audit 7d) = %v, want a FieldError for audit", err)
		}
		if p, _ := s.GetRetentionPolicy(ctx, tn.ID); p != store.DefaultRetentionPolicy() {
			t.Errorf("policy after a refusal: %+v", p)
		}
		if _, ok := findAudit(auditActions(t, s, tn.ID), "retention.update"); ok {
			t.Error("a refused change was audited")
		}

		p := store.DefaultRetentionPolicy()
		p.Notifications, p.Audit, p.InactivityAction = 7*day, 30*day, store.InactivityAnonymise
		if _, err := s.SetRetentionPolicy(ctx, tn.ID, p, "api_key:k1", "198.51.100.1", now); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetRetentionPolicy(ctx, tn.ID); err != nil || got != p {
			t.Errorf("GetRetentionPolicy = %+v, %v; want %+v", got, err, p)
		}
		e, ok := findAudit(auditActions(t, s, tn.ID), "retention.update")
		want := "notifications=30d->7d audit=365d->30d inactivity_action=erase->anonymise"
		if !ok || e.Detail != want || e.Actor != "api_key:k1" || e.SubjectID != "" {
			t.Errorf("audit of the change = %+v (found %v), want detail %q", e, ok, want)
		}
		// The same policy again changes nothing and is not audited twice.
		if _, err := s.SetRetentionPolicy(ctx, tn.ID, p, "cli", "", now); err != nil {
			t.Fatal(err)
		}
		updates := 0
		for _, e := range auditActions(t, s, tn.ID) {
			if e.Action == "retention.update" {
				updates++
			}
		}
		if updates != 1 {
			t.Errorf("%d retention.update entries, want 1", updates)
		}

		// The new window applies to the stored notification: gone now,
		// while the other tenant's (30 days) stays.
		rep, err := s.PurgeExpired(ctx, later, 0, false)
		if err != nil || rep.Notifications != 1 {
			t.Errorf("purge after the change: %+v, %v; want 1 notification", rep, err)
		}
		if _, err := s.GetNotificationByID(ctx, n.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("notification under the 7-day window: %v", err)
		}
		if _, err := s.GetNotificationByID(ctx, on.ID); err != nil {
			t.Errorf("other tenant's notification: %v", err)
		}
		// Audit entries follow the 30-day window.
		if rep, err := s.PurgeExpired(ctx, now.Add(31*day), 0, false); err != nil || rep.Audit == 0 {
			t.Errorf("purge after 31 days: %+v, %v; want the audit entries gone", rep, err)
		}
		if left := auditActions(t, s, tn.ID); len(left) != 0 {
			t.Errorf("%d audit entries left after the 30-day window", len(left))
		}
	})
}

func TestImportedEventsAndBrokenConnections(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		now := time.Now().UTC().Truncate(time.Millisecond)
		c := newConn(t, s, tn.ID, "subj-e", "pw", store.ConsentCalendarReadBusy)
		addEvent(t, s, c.ID, "old", now.Add(-40*day))
		addEvent(t, s, c.ID, "recent", now.Add(-2*day))
		broken := newConn(t, s, tn.ID, "subj-f", "pw2", store.ConsentCalendarReadBusy)
		if _, err := s.SetConnectionState(ctx, broken.ID, store.ConnBroken, "invalid_grant", "system"); err != nil {
			t.Fatal(err)
		}
		// A later state change while broken keeps the start of the spell.
		if _, err := s.SetConnectionState(ctx, broken.ID, store.ConnBroken, "invalid_grant", "system"); err != nil {
			t.Fatal(err)
		}

		dry, err := s.PurgeExpired(ctx, now, 0, true)
		if err != nil || dry.ImportedEvents != 1 || dry.ConnectionsRevoked != 0 {
			t.Errorf("dry run: %+v, %v; want 1 imported event", dry, err)
		}
		rep, err := s.PurgeExpired(ctx, now, 0, false)
		if err != nil || rep.ImportedEvents != 1 {
			t.Errorf("purge: %+v, %v; want 1 imported event", rep, err)
		}
		if got := storedUIDs(t, s, c.ID); len(got) != 1 || got["recent"] == nil {
			t.Errorf("imported events left: %v, want only the recent one", got)
		}

		// Broken for 31 days: revoked with the cleanup of a revocation.
		rep, err = s.PurgeExpired(ctx, time.Now().Add(31*day), 0, false)
		if err != nil || rep.ConnectionsRevoked != 1 || !slices.Equal(rep.Revoking, []string{broken.ID}) {
			t.Fatalf("purge after 31 days: %+v, %v; want the broken connection revoking", rep, err)
		}
		got, err := s.GetConnection(ctx, tn.ID, broken.ID)
		if err != nil || got.State != store.ConnRevoking || got.StateReason != store.ReasonBrokenTooLong {
			t.Errorf("broken connection after the purge: %+v, %v", got, err)
		}
		if got, err := s.GetConnection(ctx, tn.ID, c.ID); err != nil || got.State != store.ConnActive {
			t.Errorf("active connection after the purge: %+v, %v", got, err)
		}
	})
}

func TestInactiveSubjectErased(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		const old, recipient = "subj-old", "old.person@example.org"
		active, _, revoking := setUpPerson(t, s, tn.ID, old, recipient)
		if err := s.FinishRevocation(ctx, revoking.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := s.SetSubjectRestricted(ctx, tn.ID, old, false); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(1825*day + 30*day)
		// Another subject with a consent decision a week before: active.
		if _, err := s.RecordConsent(ctx, store.Consent{TenantID: tn.ID, SubjectID: "subj-recent", Purpose: store.ConsentNotifyEmail,
			Decision: store.DecisionGranted, CreatedAt: later.Add(-7 * day)}); err != nil {
			t.Fatal(err)
		}

		dry, err := s.PurgeExpired(ctx, later, 0, true)
		if err != nil || dry.SubjectsErased != 1 {
			t.Fatalf("dry run: %+v, %v; want 1 subject to erase", dry, err)
		}
		if _, err := s.GetSubject(ctx, tn.ID, old); err != nil {
			t.Fatalf("dry run erased: %v", err)
		}
		rep, err := s.PurgeExpired(ctx, later, 0, false)
		if err != nil || rep.SubjectsErased != 1 || !slices.Equal(rep.Revoking, []string{active.ID}) {
			t.Fatalf("purge: %+v, %v; want 1 subject erased and its connection revoking", rep, err)
		}
		for _, id := range rep.Revoking {
			if err := s.FinishRevocation(ctx, id, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		for _, table := range personalTables {
			for _, row := range rawRows(t, s, table) {
				if strings.Contains(row, old) || strings.Contains(row, recipient) {
					t.Errorf("%s still holds the erased subject: %s", table, row)
				}
			}
		}
		if _, err := s.GetSubject(ctx, tn.ID, "subj-recent"); err != nil {
			t.Errorf("active subject: %v", err)
		}
		e, ok := findAudit(auditActions(t, s, tn.ID), "subject.erase")
		if !ok || e.Actor != "system" || e.SubjectID != "" || !strings.HasPrefix(e.Detail, "reason=inactivity ") {
			t.Errorf("erasure trace = %+v (found %v)", e, ok)
		}
		if rep, err := s.PurgeExpired(ctx, later, 0, false); err != nil || rep.SubjectsErased != 0 {
			t.Errorf("second purge: %+v, %v; want nothing more", rep, err)
		}
	})
}

func TestInactiveSubjectAnonymised(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		now := time.Now()
		p := store.DefaultRetentionPolicy()
		p.Notifications, p.Audit, p.InactivityAction = 3650*day, 3650*day, store.InactivityAnonymise
		if _, err := s.SetRetentionPolicy(ctx, tn.ID, p, "cli", "", now); err != nil {
			t.Fatal(err)
		}
		const old, recipient = "subj-anna", "anna.anon@example.org"
		if _, err := s.RecordConsent(ctx, store.Consent{TenantID: tn.ID, SubjectID: old, Purpose: store.ConsentNotifySMS,
			Decision: store.DecisionGranted, SourceIP: "203.0.113.9", UserAgent: "booking-ui"}); err != nil {
			t.Fatal(err)
		}
		n := item(tn.ID, "anna-1", now)
		n.SubjectID, n.Recipient = old, recipient
		n = create(t, s, n)
		claim(t, s, n.ID, now)
		if _, err := s.FinishAttempt(ctx, n.ID, now, store.AttemptResult{Status: store.StatusSent}); err != nil {
			t.Fatal(err)
		}
		upsert(t, s, appt(tn.ID, "apt-anna", now.Add(-time.Hour), old))
		finished(t, s, tn.ID, "ben-1", "subj-ben", now)
		later := now.Add(1825*day + 30*day)
		if _, err := s.RecordConsent(ctx, store.Consent{TenantID: tn.ID, SubjectID: "subj-ben", Purpose: store.ConsentNotifyEmail,
			Decision: store.DecisionGranted, CreatedAt: later.Add(-day)}); err != nil {
			t.Fatal(err)
		}

		rep, err := s.PurgeExpired(ctx, later, 0, false)
		if err != nil || rep.SubjectsAnonymised != 1 || rep.SubjectsErased != 0 {
			t.Fatalf("purge: %+v, %v; want 1 subject anonymised", rep, err)
		}
		if _, err := s.GetSubject(ctx, tn.ID, old); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("subject under its own id: %v", err)
		}
		for _, table := range personalTables {
			for _, row := range rawRows(t, s, table) {
				for _, needle := range []string{old, recipient, "203.0.113.9", "booking-ui", "Bring the referral"} {
					if strings.Contains(row, needle) {
						t.Errorf("%s still holds %q: %s", table, needle, row)
					}
				}
			}
		}
		// Statistics keep their rows: the notification, consent and
		// appointment remain under one opaque id.
		var opaque string
		if err := s.DB().QueryRowContext(ctx, rebind(s, "SELECT subject_id FROM notifications WHERE id = ?"), n.ID).Scan(&opaque); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(opaque, "anon_") {
			t.Fatalf("notification subject = %q, want an opaque id", opaque)
		}
		if c := count(t, s, "SELECT count(*) FROM consents WHERE subject_id = ?", opaque); c != 1 {
			t.Errorf("%d consents under the opaque id, want 1", c)
		}
		if c := count(t, s, "SELECT count(*) FROM appointment_subjects WHERE subject_id = ?", opaque); c != 1 {
			t.Errorf("%d appointments under the opaque id, want 1", c)
		}
		if c := count(t, s, "SELECT count(*) FROM subjects WHERE id = ? AND anonymised_at > 0", opaque); c != 1 {
			t.Errorf("%d anonymised subject rows, want 1", c)
		}
		e, ok := findAudit(auditActions(t, s, tn.ID), "subject.anonymise")
		if !ok || e.TargetID != opaque || e.SubjectID != "" || !strings.HasPrefix(e.Detail, "reason=inactivity ") {
			t.Errorf("anonymisation trace = %+v (found %v)", e, ok)
		}
		if _, err := s.GetSubject(ctx, tn.ID, "subj-ben"); err != nil {
			t.Errorf("active subject: %v", err)
		}
		if c := count(t, s, "SELECT count(*) FROM notifications WHERE subject_id = 'subj-ben' AND recipient <> ''"); c != 1 {
			t.Errorf("active subject's notification: %d rows, want 1 untouched", c)
		}
		if rep, err := s.PurgeExpired(ctx, later, 0, false); err != nil || rep.SubjectsAnonymised != 0 {
			t.Errorf("second purge: %+v, %v; an anonymised subject is not anonymised again", rep, err)
		}
	})
}

func TestLegalHold(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		now := time.Now().UTC().Truncate(time.Millisecond)
		heldN := finished(t, s, tn.ID, "held-1", "subj-held", now)
		freeN := finished(t, s, tn.ID, "free-1", "subj-free", now)

		for _, tc := range []struct {
			h     store.LegalHold
			field string
		}{
			{store.LegalHold{TenantID: tn.ID, Reason: " ", Until: now.Add(day)}, "reason"},
			{store.LegalHold{TenantID: tn.ID, Reason: strings.Repeat("x", 501), Until: now.Add(day)}, "reason"},
			{store.LegalHold{TenantID: tn.ID, Reason: "case", Until: now}, "until"},
			{store.LegalHold{TenantID: tn.ID, Reason: "case", Until: now.Add(3651 * day)}, "until"},
		} {
			var fe *store.FieldError
			if _, err := s.PlaceHold(ctx, tc.h, "", now); !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("PlaceHold(%+v) = %v, want a FieldError for %s", tc.h, err, tc.field)
			}
		}
		if holds, _ := s.ListHolds(ctx, tn.ID); len(holds) != 0 {
			t.Fatalf("refused holds stored: %+v", holds)
		}

		h, err := s.PlaceHold(ctx, store.LegalHold{TenantID: tn.ID, SubjectID: "subj-held", Reason: "court case 17", Until: now.Add(100 * day), Actor: "cli"}, "", now)
		if err != nil {
			t.Fatal(err)
		}
		if holds, err := s.ListHolds(ctx, tn.ID); err != nil || len(holds) != 1 || holds[0] != h || h.State(now) != store.HoldActive {
			t.Errorf("ListHolds = %+v, %v; want the hold, active", holds, err)
		}

		// Erasure is refused and names the hold.
		_, err = s.EraseSubject(ctx, tn.ID, "subj-held", "cli", "")
		var he *store.HeldError
		if !errors.Is(err, store.ErrHeld) || !errors.As(err, &he) || he.HoldID != h.ID || he.Tenant {
			t.Errorf("EraseSubject under hold = %v, want a HeldError naming %s", err, h.ID)
		}
		if _, err := s.GetNotificationByID(ctx, heldN.ID); err != nil {
			t.Errorf("held notification after the refused erasure: %v", err)
		}

		// The purge keeps what the hold covers and says so.
		rep, err := s.PurgeExpired(ctx, now.Add(40*day), 0, false)
		if err != nil || rep.Notifications != 1 || rep.Held.Notifications != 1 || rep.HoldsExpired != 0 {
			t.Errorf("purge under hold: %+v, %v; want 1 deleted, 1 held", rep, err)
		}
		if _, err := s.GetNotificationByID(ctx, heldN.ID); err != nil {
			t.Errorf("held notification after the purge: %v", err)
		}
		if _, err := s.GetNotificationByID(ctx, freeN.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unheld notification after the purge: %v", err)
		}

		// A tenant-wide hold covers everyone; releasing it is audited.
		th, err := s.PlaceHold(ctx, store.LegalHold{TenantID: tn.ID, Reason: "audit by the authority", Until: now.Add(10 * day), Actor: "cli"}, "", now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.EraseSubject(ctx, tn.ID, "subj-free", "cli", ""); !errors.As(err, &he) || !he.Tenant || he.HoldID != th.ID {
			t.Errorf("EraseSubject under a tenant hold = %v", err)
		}
		rel, err := s.ReleaseHold(ctx, tn.ID, th.ID, "api_key:k1", "198.51.100.1", now.Add(time.Hour))
		if err != nil || rel.State(now.Add(time.Hour)) != store.HoldReleased || rel.EndedBy != "api_key:k1" {
			t.Errorf("ReleaseHold = %+v, %v", rel, err)
		}
		if _, err := s.ReleaseHold(ctx, tn.ID, "hld_unknown", "cli", "", now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ReleaseHold(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := s.EraseSubject(ctx, tn.ID, "subj-free", "cli", ""); err != nil {
			t.Errorf("EraseSubject after the release: %v", err)
		}

		// After its end date the purge records the expiry and proceeds.
		rep, err = s.PurgeExpired(ctx, now.Add(101*day), 0, false)
		if err != nil || rep.HoldsExpired != 1 || rep.Notifications != 1 || rep.Held.Total() != 0 {
			t.Errorf("purge after the end date: %+v, %v; want the hold expired and the notification deleted", rep, err)
		}
		if _, err := s.GetNotificationByID(ctx, heldN.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("notification after the hold expired: %v", err)
		}
		holds, err := s.ListHolds(ctx, tn.ID)
		if err != nil || len(holds) != 2 {
			t.Fatalf("ListHolds = %+v, %v", holds, err)
		}
		for _, got := range holds {
			if got.ID == h.ID && (got.EndReason != store.HoldExpired || !got.EndedAt.Equal(h.Until)) {
				t.Errorf("expired hold = %+v", got)
			}
		}
		entries := auditActions(t, s, tn.ID)
		var actions []string
		for _, e := range entries {
			if strings.HasPrefix(e.Action, "hold.") {
				actions = append(actions, e.Action+":"+e.TargetID)
				if strings.Contains(e.Detail, "court") || strings.Contains(e.Detail, "authority") {
					t.Errorf("audit holds the hold's reason: %+v", e)
				}
			}
		}
		want := []string{"hold.place:" + h.ID, "hold.place:" + th.ID, "hold.release:" + th.ID, "hold.expire:" + h.ID}
		if !slices.Equal(actions, want) {
			t.Errorf("hold audit = %v, want %v", actions, want)
		}
		if _, err := s.EraseSubject(ctx, tn.ID, "subj-held", "cli", ""); err != nil {
			t.Errorf("EraseSubject after the hold expired: %v", err)
		}
	})
}

// A hold keeps an inactive subject, imported events and a broken
// connection from the purge, and the purge counts them.
func TestLegalHoldKeepsInactiveSubject(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		now := time.Now()
		c := newConn(t, s, tn.ID, "subj-h", "pw", store.ConsentCalendarReadBusy)
		addEvent(t, s, c.ID, "old", now.Add(-40*day))
		if _, err := s.SetConnectionState(ctx, c.ID, store.ConnBroken, "invalid_grant", "system"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PlaceHold(ctx, store.LegalHold{TenantID: tn.ID, SubjectID: "subj-h", Reason: "dispute", Until: now.Add(3000 * day)}, "", now); err != nil {
			t.Fatal(err)
		}
		later := now.Add(1900 * day)
		rep, err := s.PurgeExpired(ctx, later, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if rep.SubjectsErased != 0 || rep.ConnectionsRevoked != 0 || rep.ImportedEvents != 0 ||
			rep.Held.Subjects != 1 || rep.Held.Connections != 1 || rep.Held.ImportedEvents != 1 {
			t.Errorf("purge under hold: %+v", rep)
		}
		if got, err := s.GetConnection(ctx, tn.ID, c.ID); err != nil || got.State != store.ConnBroken {
			t.Errorf("held connection: %+v, %v", got, err)
		}
		if _, err := s.GetSubject(ctx, tn.ID, "subj-h"); err != nil {
			t.Errorf("held subject: %v", err)
		}
	})
}

// Migration 0005 on data written under 0003: tenants get the default
// windows, and a connection already broken counts from its last change.
func TestMigrate0005OnExistingData(t *testing.T) {
	t.Parallel()
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			s := storetest.Open(t, storetest.URL(t, d))
			if err := store.MigrateUpTo(ctx, s, 3); err != nil {
				t.Fatalf("migrate to 0003: %v", err)
			}
			now := time.Now().UnixMilli()
			execSQL(t, s, `INSERT INTO tenants (id, name, default_locale, notification_retention_ms, audit_retention_ms, created_at)
				VALUES ('tnt_old', 'Old', 'de', 864000000, 31536000000, ?)`, now)
			for _, c := range []struct{ id, state string }{{"con_broken", "broken"}, {"con_active", "active"}} {
				execSQL(t, s, `INSERT INTO connections (id, tenant_id, subject_id, provider, privacy, direction, state,
					created_at, updated_at) VALUES (?, 'tnt_old', 'anna', 'caldav', 'busy', 'both', ?, ?, ?)`, c.id, c.state, now-5, now-5)
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("Migrate over existing data: %v", err)
			}
			p, err := s.GetRetentionPolicy(ctx, "tnt_old")
			want := store.DefaultRetentionPolicy()
			want.Notifications = 10 * day
			if err != nil || p != want {
				t.Errorf("policy of the old tenant = %+v, %v; want %+v", p, err, want)
			}
			if n := count(t, s, "SELECT count(*) FROM connections WHERE id = 'con_broken' AND broken_since = ?", now-5); n != 1 {
				t.Error("broken connection has no broken_since after the migration")
			}
			if n := count(t, s, "SELECT count(*) FROM connections WHERE id = 'con_active' AND broken_since = 0"); n != 1 {
				t.Error("active connection has a broken_since after the migration")
			}
		})
	}
}

// Each kind of activity on its own keeps a subject from being treated as
// inactive; a subject without any is erased.
func TestInactivityCountsEachActivity(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		s.UseSealer(keyring(t, "k1"))
		now := time.Now()
		later := now.Add(1825*day + 30*day)
		recent := later.Add(-day).UnixMilli()
		activities := []struct {
			subject string
			make    func(subject string)
		}{
			{"s-notification", func(sub string) {
				n := item(tn.ID, sub, now)
				n.SubjectID = sub
				n = create(t, s, n)
				// Finished a day ago: kept for its 30 days from then.
				execSQL(t, s, "UPDATE notifications SET status = 'sent', updated_at = ?, final_at = ?, expires_at = ? WHERE id = ?",
					recent, recent, recent+(30*day).Milliseconds(), n.ID)
			}},
			{"s-due-notification", func(sub string) {
				n := item(tn.ID, sub, later.Add(day))
				n.SubjectID = sub
				create(t, s, n)
			}},
			{"s-consent", func(sub string) {
				if _, err := s.RecordConsent(ctx, store.Consent{TenantID: tn.ID, SubjectID: sub, Purpose: store.ConsentNotifyEmail,
					Decision: store.DecisionRevoked, CreatedAt: later.Add(-day)}); err != nil {
					t.Fatal(err)
				}
			}},
			{"s-sync", func(sub string) {
				c := newConn(t, s, tn.ID, sub, "pw", store.ConsentCalendarReadBusy)
				execSQL(t, s, "UPDATE connections SET last_sync_at = ? WHERE id = ?", recent, c.ID)
			}},
			{"s-future-appointment", func(sub string) {
				upsert(t, s, appt(tn.ID, "apt-"+sub, later.Add(day), sub))
			}},
			{"s-restricted", func(sub string) {
				if err := s.SetSubjectRestricted(ctx, tn.ID, sub, true); err != nil {
					t.Fatal(err)
				}
			}},
		}
		for _, a := range activities {
			a.make(a.subject)
		}
		// The only inactive one: a consent decision long ago.
		if _, err := s.RecordConsent(ctx, store.Consent{TenantID: tn.ID, SubjectID: "s-idle", Purpose: store.ConsentNotifyEmail,
			Decision: store.DecisionGranted}); err != nil {
			t.Fatal(err)
		}
		rep, err := s.PurgeExpired(ctx, later, 0, false)
		if err != nil || rep.SubjectsErased != 1 {
			t.Errorf("purge: %+v, %v; want only s-idle erased", rep, err)
		}
		if _, err := s.GetSubject(ctx, tn.ID, "s-idle"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("idle subject: %v", err)
		}
		for _, a := range activities {
			if _, err := s.GetSubject(ctx, tn.ID, a.subject); err != nil {
				t.Errorf("%s: %v", a.subject, err)
			}
		}
	})
}
