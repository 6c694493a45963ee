package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// offboardTables are the tables that hold a tenant's personal rows (or
// secrets) and must be empty of it after the purge.
var offboardTables = append(slices.Clone(personalTables), "api_keys", "tenant_controllers")

func TestOffboardingStopsWorkAndPurgesAfterGrace(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		s.UseSealer(keyring(t, "k1"))
		tn, adminToken := storetest.NewTenant(t, s)
		ingestToken, _, err := s.CreateAPIKey(ctx, tn.ID, store.RoleIngest)
		if err != nil {
			t.Fatal(err)
		}
		other, otherToken := storetest.NewTenant(t, s)
		if err := s.SetTenantController(ctx, store.Controller{TenantID: tn.ID, Contact: "Dr. Anna Weber",
			Email: "praxis@weber.example", Address: "Hauptstr. 1, Berlin"}); err != nil {
			t.Fatal(err)
		}
		anna := []string{"subj-anna", "anna@example.org"}
		ben := []string{"subj-ben", "ben@example.org"}
		annaActive, _, annaRevoking := setUpPerson(t, s, tn.ID, anna[0], anna[1])
		benActive, _, benRevoking := setUpPerson(t, s, tn.ID, ben[0], ben[1])
		shareAppointment(t, s, tn.ID, "apt-shared", anna[0], ben[0])
		otherActive, _, _ := setUpPerson(t, s, other.ID, "subj-carla", "carla@example.org")
		otherBefore := map[string]int{}
		for _, table := range offboardTables {
			otherBefore[table] = count(t, s, tenantRowsQuery(table), other.ID)
		}

		now := time.Now().UTC().Truncate(time.Millisecond)
		statsQuery := store.StatsQuery{TenantID: tn.ID, From: now.AddDate(0, 0, -1).Format(time.DateOnly),
			To: now.AddDate(0, 0, 1).Format(time.DateOnly), Granularity: store.GranularityMonth}
		before, err := s.TenantStats(ctx, statsQuery, now)
		if err != nil {
			t.Fatal(err)
		}

		rep, err := s.BeginOffboarding(ctx, tn.ID, store.OffboardRequest{Actor: "cli", SourceIP: "198.51.100.1", Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if want := now.Add(store.DefaultOffboardingGrace); !rep.Offboarding.PurgeAt.Equal(want) {
			t.Errorf("PurgeAt = %v, want %v (28 days)", rep.Offboarding.PurgeAt, want)
		}

		// Every connection is revoked the way a revocation does it.
		slices.Sort(rep.Revoking)
		wantRevoking := []string{annaActive.ID, annaRevoking.ID, benActive.ID, benRevoking.ID}
		slices.Sort(wantRevoking)
		if !slices.Equal(rep.Revoking, wantRevoking) {
			t.Errorf("Revoking = %v, want %v", rep.Revoking, wantRevoking)
		}
		for _, id := range rep.Revoking {
			c, err := s.GetConnectionByID(ctx, id)
			if err != nil || c.State != store.ConnRevoking {
				t.Errorf("connection %s after offboarding: %+v, %v", id, c, err)
			}
			called := false
			if err := s.CalendarWrite(ctx, id, func(context.Context) error { called = true; return nil }); !errors.Is(err, store.ErrNotActive) || called {
				t.Errorf("CalendarWrite after offboarding: %v (ran: %v)", err, called)
			}
		}
		if d, err := s.ConsentDecision(ctx, tn.ID, anna[0], store.ConsentCalendarWrite); err != nil || d != store.DecisionRevoked {
			t.Errorf("ledger after offboarding: calendar.write = %q, %v; want revoked", d, err)
		}
		if c, err := s.GetConnectionByID(ctx, otherActive.ID); err != nil || c.State != store.ConnActive {
			t.Errorf("another tenant's connection: %+v, %v", c, err)
		}

		// Pending notifications are cancelled; nothing can be claimed.
		if n := count(t, s, "SELECT count(*) FROM notifications WHERE tenant_id = ? AND status = 'scheduled'", tn.ID); n != 0 {
			t.Errorf("%d notifications still scheduled", n)
		}
		if n := count(t, s, "SELECT count(*) FROM oauth_states WHERE tenant_id = ?", tn.ID); n != 0 {
			t.Errorf("%d pending OAuth authorizations left: a callback could still connect a calendar", n)
		}
		if rep.Notifications != 6 {
			t.Errorf("Notifications = %d cancelled, want 6", rep.Notifications)
		}
		if n := count(t, s, "SELECT count(*) FROM notifications WHERE tenant_id = ? AND status = 'scheduled'", other.ID); n != 3 {
			t.Errorf("another tenant's scheduled notifications: %d, want 3", n)
		}
		late := create(t, s, item(tn.ID, "after-offboarding", now))
		if _, ok, err := s.ClaimNotification(ctx, late.ID, time.Now(), time.Now().Add(time.Minute)); ok || err != nil {
			t.Errorf("ClaimNotification for an offboarding tenant: ok %v, %v", ok, err)
		}
		if got, err := s.ClaimNotifications(ctx, []string{late.ID}, time.Now(), time.Now().Add(time.Minute)); len(got) != 0 || err != nil {
			t.Errorf("ClaimNotifications for an offboarding tenant: %d claimed, %v", len(got), err)
		}

		// Keys are suspended, another tenant's are not.
		if rep.Keys != 2 {
			t.Errorf("Keys = %d suspended, want 2", rep.Keys)
		}
		for _, token := range []string{adminToken, ingestToken} {
			if k, err := s.LookupAPIKey(ctx, token); err != nil || !k.Suspended {
				t.Errorf("key after offboarding: %+v, %v; want suspended", k, err)
			}
		}
		if k, err := s.LookupAPIKey(ctx, otherToken); err != nil || k.Suspended {
			t.Errorf("another tenant's key: %+v, %v", k, err)
		}
		if _, err := s.BeginOffboarding(ctx, tn.ID, store.OffboardRequest{Now: now}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("second BeginOffboarding: %v, want ErrConflict", err)
		}

		// Within the grace period nothing is erased.
		if pr, err := s.PurgeOffboarded(ctx, now.Add(store.DefaultOffboardingGrace-time.Millisecond), 2); err != nil || pr.Tenants != 0 {
			t.Fatalf("PurgeOffboarded within grace = %+v, %v", pr, err)
		}
		if _, err := s.GetSubject(ctx, tn.ID, anna[0]); err != nil {
			t.Errorf("subject erased within the grace period: %v", err)
		}

		// After it, everything personal goes (batch size 2: several batches).
		pr, err := s.PurgeOffboarded(ctx, now.Add(store.DefaultOffboardingGrace), 2)
		if err != nil || pr.Tenants != 1 || pr.Rows < 30 {
			t.Fatalf("PurgeOffboarded = %+v, %v", pr, err)
		}
		for _, table := range offboardTables {
			n := count(t, s, tenantRowsQuery(table), tn.ID)
			if table == "audit" {
				n -= count(t, s, "SELECT count(*) FROM audit WHERE tenant_id = ? AND action = 'tenant.purge' AND subject_id = ''", tn.ID)
			}
			if n != 0 {
				t.Errorf("%s: %d rows of the offboarded tenant left", table, n)
			}
			for _, row := range rawRows(t, s, table) {
				for _, needle := range append(append(slices.Clone(anna), ben...), "Weber", annaActive.ID, benActive.ID) {
					if strings.Contains(row, needle) {
						t.Errorf("%s still holds %q: %s", table, needle, row)
					}
				}
			}
			if got := count(t, s, tenantRowsQuery(table), other.ID); got != otherBefore[table] {
				t.Errorf("%s: another tenant's rows changed from %d to %d", table, otherBefore[table], got)
			}
		}
		if got, err := s.GetTenant(ctx, tn.ID); err != nil || got.Name != "" {
			t.Errorf("tenant after purge: %+v, %v; want the id kept and the name blanked", got, err)
		}
		if o, err := s.GetOffboarding(ctx, tn.ID); err != nil || !o.PurgedAt.Equal(now.Add(store.DefaultOffboardingGrace)) {
			t.Errorf("offboarding trace: %+v, %v", o, err)
		}
		if _, err := s.LookupAPIKey(ctx, adminToken); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("key after purge: %v, want ErrNotFound", err)
		}
		if err := s.CancelOffboarding(ctx, tn.ID, "cli", "", now); !errors.Is(err, store.ErrConflict) {
			t.Errorf("CancelOffboarding after purge: %v, want ErrConflict", err)
		}
		// The revoke worker finds nothing left to do and does not fail.
		if err := s.FinishRevocation(ctx, annaActive.ID, now); err != nil {
			t.Errorf("FinishRevocation after purge: %v", err)
		}

		// Statistics survive: the appointment figures are unchanged, and
		// every notification (the late one included) is in delivery_stats.
		after, err := s.TenantStats(ctx, statsQuery, now)
		if err != nil {
			t.Fatal(err)
		}
		if !equalBookings(before, after) {
			t.Errorf("appointment figures changed by the purge:\nbefore %+v\nafter  %+v", before.Items, after.Items)
		}
		if total := notificationTotal(t, s, tn.ID); total != 7 {
			t.Errorf("delivery_stats count %d notifications, want the 7 stored", total)
		}
		if len(after.Connections) != 0 {
			t.Errorf("connections snapshot after purge: %+v", after.Connections)
		}
		// Running again finds nothing.
		if pr, err := s.PurgeOffboarded(ctx, now.Add(60*24*time.Hour), 2); err != nil || pr.Tenants != 0 {
			t.Errorf("second PurgeOffboarded = %+v, %v", pr, err)
		}
	})
}

func TestCancelOffboardingRestoresService(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		s.UseSealer(keyring(t, "k1"))
		tn, adminToken := storetest.NewTenant(t, s)
		disabledToken, disabled, err := s.CreateAPIKey(ctx, tn.ID, store.RoleIngest)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		if err := s.DisableAPIKey(ctx, tn.ID, disabled.ID, now); err != nil {
			t.Fatal(err)
		}
		conn := newConn(t, s, tn.ID, "subj-anna", "pw", store.ConsentCalendarReadBusy)
		n := create(t, s, item(tn.ID, "reminder", now.Add(time.Hour)))

		if err := s.CancelOffboarding(ctx, tn.ID, "cli", "", now); !errors.Is(err, store.ErrConflict) {
			t.Errorf("CancelOffboarding without an offboarding: %v, want ErrConflict", err)
		}
		if _, err := s.BeginOffboarding(ctx, tn.ID, store.OffboardRequest{Grace: 7 * 24 * time.Hour, Actor: "cli", Now: now}); err != nil {
			t.Fatal(err)
		}
		if err := s.CancelOffboarding(ctx, tn.ID, "cli", "", now.Add(7*24*time.Hour)); !errors.Is(err, store.ErrConflict) {
			t.Errorf("CancelOffboarding once the grace period ended: %v, want ErrConflict", err)
		}
		if err := s.CancelOffboarding(ctx, tn.ID, "api_key:admin", "198.51.100.1", now.Add(6*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if k, err := s.LookupAPIKey(ctx, adminToken); err != nil || k.Suspended {
			t.Errorf("key after cancel: %+v, %v; want usable", k, err)
		}
		if _, err := s.LookupAPIKey(ctx, disabledToken); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a key disabled before the offboarding works again: %v", err)
		}
		if _, err := s.GetOffboarding(ctx, tn.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetOffboarding after cancel: %v, want ErrNotFound", err)
		}
		// Revoked stays revoked; cancelled stays cancelled.
		if c, err := s.GetConnectionByID(ctx, conn.ID); err != nil || c.State != store.ConnRevoking {
			t.Errorf("connection after cancel: %+v, %v", c, err)
		}
		if got, err := s.GetNotification(ctx, tn.ID, n.ID); err != nil || got.Status != store.StatusCancelled || got.StatusReason != store.ReasonOffboarding {
			t.Errorf("notification after cancel: %+v, %v", got, err)
		}
		// New work is accepted again.
		fresh := create(t, s, item(tn.ID, "after-cancel", now))
		if _, ok, err := s.ClaimNotification(ctx, fresh.ID, time.Now(), time.Now().Add(time.Minute)); !ok || err != nil {
			t.Errorf("ClaimNotification after cancel: ok %v, %v", ok, err)
		}
		// Nothing is erased when the grace period would have ended.
		if pr, err := s.PurgeOffboarded(ctx, now.Add(30*24*time.Hour), 0); err != nil || pr.Tenants != 0 {
			t.Errorf("PurgeOffboarded after cancel = %+v, %v", pr, err)
		}
		if _, err := s.GetNotification(ctx, tn.ID, n.ID); err != nil {
			t.Errorf("notification erased after a cancelled offboarding: %v", err)
		}
		var actions []string
		for _, e := range mustAudit(t, s, tn.ID) {
			if strings.HasPrefix(e.Action, "tenant.") {
				actions = append(actions, e.Action+" "+e.Actor)
			}
		}
		if want := []string{"tenant.offboard cli", "tenant.offboard_cancel api_key:admin"}; !slices.Equal(actions, want) {
			t.Errorf("audit = %v, want %v", actions, want)
		}
		if _, err := s.BeginOffboarding(ctx, "tnt_missing", store.OffboardRequest{}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("BeginOffboarding of an unknown tenant: %v, want ErrNotFound", err)
		}
	})
}

// tenantRowsQuery counts a table's rows that belong to a tenant (the
// argument), directly or through a connection.
func tenantRowsQuery(table string) string {
	switch table {
	case "external_events", "links":
		return "SELECT count(*) FROM " + table + " WHERE connection_id IN (SELECT id FROM connections WHERE tenant_id = ?)"
	default:
		return "SELECT count(*) FROM " + table + " WHERE tenant_id = ?"
	}
}

func equalBookings(a, b store.Stats) bool {
	pick := func(s store.Stats) []store.StatValue {
		var out []store.StatValue
		for _, v := range s.Items {
			if v.Metric != store.MetricNotifications {
				out = append(out, v)
			}
		}
		return out
	}
	return slices.Equal(pick(a), pick(b)) && len(pick(a)) > 0
}

func notificationTotal(t *testing.T, s *store.Store, tenantID string) int {
	t.Helper()
	return count(t, s, "SELECT COALESCE(CAST(sum(count) AS BIGINT), 0) FROM delivery_stats WHERE tenant_id = ?", tenantID)
}

// A legal hold on one subject keeps the whole tenant's erasure waiting
// after the grace period; once the hold has ended the erasure proceeds,
// and the holds and admin sessions go with it.
func TestOffboardingWaitsForLegalHold(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		s.UseSealer(keyring(t, "k1"))
		tn, token := storetest.NewTenant(t, s)
		setUpPerson(t, s, tn.ID, "subj-anna", "anna@example.org")
		now := time.Now().UTC().Truncate(time.Millisecond)
		key, err := s.LookupAPIKey(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		// A signed-in admin page: its row refers to the key the erasure deletes.
		if err := s.CreateAdminSession(ctx, "session-1", store.AdminSession{TenantID: tn.ID, KeyID: key.ID, CSRFToken: "x",
			CreatedAt: now, ExpiresAt: now.Add(365 * 24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		h, err := s.PlaceHold(ctx, store.LegalHold{TenantID: tn.ID, SubjectID: "subj-anna", Reason: "court order 12/26",
			Actor: "admin", Until: now.Add(60 * 24 * time.Hour)}, "", now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.BeginOffboarding(ctx, tn.ID, store.OffboardRequest{Actor: "cli", Now: now}); err != nil {
			t.Fatal(err)
		}
		after := now.Add(store.DefaultOffboardingGrace + time.Hour)
		rep, err := s.PurgeOffboarded(ctx, after, 100)
		if err != nil || rep.Tenants != 0 || rep.Held != 1 {
			t.Fatalf("purge under a hold: %+v, %v; want held", rep, err)
		}
		if n := count(t, s, "SELECT count(*) FROM consents WHERE tenant_id = ?", tn.ID); n == 0 {
			t.Fatal("the held tenant's consents were erased")
		}
		if _, err := s.ReleaseHold(ctx, tn.ID, h.ID, "admin", "", after); err != nil {
			t.Fatal(err)
		}
		rep, err = s.PurgeOffboarded(ctx, after.Add(time.Minute), 100)
		if err != nil || rep.Tenants != 1 || rep.Held != 0 {
			t.Fatalf("purge after the hold ended: %+v, %v", rep, err)
		}
		if n := count(t, s, "SELECT count(*) FROM audit WHERE tenant_id = ? AND action <> 'tenant.purge'", tn.ID); n != 0 {
			t.Errorf("audit: %d entries of the erased tenant left besides the purge's own", n)
		}
		for _, table := range append(slices.Clone(offboardTables), "legal_holds", "admin_sessions") {
			if table == "audit" {
				continue
			}
			if n := count(t, s, tenantRowsQuery(table), tn.ID); n != 0 {
				t.Errorf("%s: %d rows of the erased tenant left", table, n)
			}
		}
	})
}
