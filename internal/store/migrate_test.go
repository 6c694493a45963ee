package store_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

func TestMigrateIdempotent(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		// storetest.New migrated once already.
		for range 2 {
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("Migrate again: %v", err)
			}
		}
		var versions int
		if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations").Scan(&versions); err != nil {
			t.Fatal(err)
		}
		if versions < 1 {
			t.Errorf("schema_migrations has %d rows", versions)
		}
		if _, err := s.CreateTenant(ctx, "after migrate"); err != nil {
			t.Errorf("schema unusable after repeated Migrate: %v", err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})
}

// Several processes starting at once against one empty database must not
// trip over each other.
func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			url := storetest.URL(t, d)
			const starters = 4
			stores := make([]*store.Store, starters)
			for i := range stores {
				stores[i] = storetest.Open(t, url)
				if got := stores[i].Dialect(); got != d {
					t.Fatalf("Dialect() = %q, want %q", got, d)
				}
			}
			var wg sync.WaitGroup
			errs := make([]error, starters)
			for i, s := range stores {
				wg.Go(func() { errs[i] = s.Migrate(ctx) })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("starter %d: %v", i, err)
				}
			}
			var n, versions int
			if err := stores[0].DB().QueryRowContext(ctx, "SELECT count(*), count(DISTINCT version) FROM schema_migrations").Scan(&n, &versions); err != nil {
				t.Fatal(err)
			}
			if n != versions {
				t.Errorf("schema_migrations: %d rows for %d versions: a migration ran twice", n, versions)
			}
		})
	}
}

// Migration 0003 applies on top of a database that holds data written
// under 0001 and 0002: old notifications belong to no appointment, old
// tenants get the default reminder rules, old connections an empty sync
// state.
func TestMigrate0003OnExistingData(t *testing.T) {
	t.Parallel()
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			s := storetest.Open(t, storetest.URL(t, d))
			if err := store.MigrateUpTo(ctx, s, 2); err != nil {
				t.Fatalf("migrate to 0002: %v", err)
			}
			now := time.Now().UnixMilli()
			execSQL(t, s, `INSERT INTO tenants (id, name, default_locale, notification_retention_ms, audit_retention_ms, created_at)
				VALUES ('tnt_old', 'Old', 'de', 2592000000, 31536000000, ?)`, now)
			execSQL(t, s, `INSERT INTO notifications (id, tenant_id, subject_id, idempotency_key, request_hash, purpose,
				channel, recipient, locale, template, data, status, send_at, created_at, created_day, updated_at, expires_at)
				VALUES ('ntf_old', 'tnt_old', 'anna', 'k1', 'h1', 'reminder', 'email', 'anna@example.org', 'de',
				'reminder', '{}', 'scheduled', ?, ?, '2030-01-01', ?, ?)`, now, now, now, now+1000)
			execSQL(t, s, `INSERT INTO connections (id, tenant_id, subject_id, provider, privacy, direction, state,
				last_sync_at, created_at, updated_at) VALUES ('con_old', 'tnt_old', 'anna', 'caldav', 'busy', 'both',
				'active', ?, ?, ?)`, now, now, now)

			for range 2 {
				if err := s.Migrate(ctx); err != nil {
					t.Fatalf("Migrate over existing data: %v", err)
				}
			}
			if n := count(t, s, "SELECT count(*) FROM schema_migrations WHERE version = 3"); n != 1 {
				t.Errorf("migration 0003 recorded %d times", n)
			}
			n, err := s.GetNotification(ctx, "tnt_old", "ntf_old")
			if err != nil || n.AppointmentID != "" || n.Recipient != "anna@example.org" {
				t.Errorf("old notification = %+v, %v", n, err)
			}
			tn, err := s.GetTenant(ctx, "tnt_old")
			if err != nil || !slices.Equal(tn.ReminderRules, []time.Duration{24 * time.Hour}) || tn.DefaultLocale != "de" {
				t.Errorf("old tenant = %+v, %v", tn, err)
			}
			st, err := s.GetSyncStatus(ctx, "con_old")
			if err != nil || st.LastSyncAt.UnixMilli() != now || !st.LastFullAt.IsZero() || st.Attention != "" ||
				!st.LastRun.At.IsZero() {
				t.Errorf("old connection's sync status = %+v, %v", st, err)
			}
			// The old rows are usable by the new code.
			if c, err := s.CancelAppointmentNotifications(ctx, "tnt_old", "apt-none", ""); err != nil || c != 0 {
				t.Errorf("CancelAppointmentNotifications on old rows = %d, %v", c, err)
			}
			if _, err := s.UpsertAppointment(ctx, store.Appointment{TenantID: "tnt_old", ID: "apt-1", SubjectIDs: []string{"anna"},
				Start: time.Now(), End: time.Now().Add(time.Hour)}); err != nil {
				t.Errorf("UpsertAppointment after migrating: %v", err)
			}
		})
	}
}
