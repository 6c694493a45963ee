package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

func TestAdminSessions(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		_, ingest, err := s.CreateAPIKey(ctx, tn.ID, store.RoleIngest)
		if err != nil {
			t.Fatal(err)
		}
		_, admin, err := s.CreateAPIKey(ctx, tn.ID, store.RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		for id, sess := range map[string]store.AdminSession{
			"live":    {TenantID: tn.ID, KeyID: admin.ID, CSRFToken: "c1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
			"expired": {TenantID: tn.ID, KeyID: admin.ID, CSRFToken: "c2", CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)},
			"ingest":  {TenantID: tn.ID, KeyID: ingest.ID, CSRFToken: "c3", CreatedAt: now, ExpiresAt: now.Add(time.Hour)},
		} {
			if err := s.CreateAdminSession(ctx, id, sess); err != nil {
				t.Fatalf("CreateAdminSession(%s): %v", id, err)
			}
		}
		got, err := s.GetAdminSession(ctx, "live", now)
		if err != nil || got.KeyID != admin.ID || got.TenantID != tn.ID || got.CSRFToken != "c1" {
			t.Fatalf("GetAdminSession(live) = %+v, %v", got, err)
		}
		for _, id := range []string{"expired", "ingest", "unknown"} {
			if _, err := s.GetAdminSession(ctx, id, now); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetAdminSession(%s): err %v, want ErrNotFound", id, err)
			}
		}
		// Disabling the key ends its sessions at once.
		if err := s.DisableAPIKey(ctx, tn.ID, admin.ID, now); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetAdminSession(ctx, "live", now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after DisableAPIKey: err %v, want ErrNotFound", err)
		}
		if err := s.DeleteAdminSession(ctx, "live"); err != nil {
			t.Errorf("DeleteAdminSession: %v", err)
		}
	})
}

func TestListNotificationsFilters(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		other, _ := storetest.NewTenant(t, s)
		now := time.Now().Add(time.Hour)
		a := create(t, s, item(tn.ID, "a", now))
		b := item(tn.ID, "b", now)
		b.Template = "reminder"
		b = create(t, s, b)
		if _, err := s.CancelNotification(ctx, tn.ID, b.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		create(t, s, item(other.ID, "c", now))
		day := time.Now().UTC().Truncate(24 * time.Hour)

		for _, tc := range []struct {
			name string
			f    store.NotificationFilter
			want []string
		}{
			{"all, newest first", store.NotificationFilter{}, []string{b.ID, a.ID}},
			{"status", store.NotificationFilter{Status: store.StatusCancelled}, []string{b.ID}},
			{"template", store.NotificationFilter{Template: "confirmation"}, []string{a.ID}},
			{"today", store.NotificationFilter{From: day, To: day.Add(24 * time.Hour)}, []string{b.ID, a.ID}},
			{"before today", store.NotificationFilter{To: day}, nil},
			{"limit", store.NotificationFilter{Limit: 1}, []string{b.ID}},
		} {
			tc.f.TenantID = tn.ID
			got, err := s.ListNotifications(ctx, tc.f)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			var ids []string
			for _, n := range got {
				ids = append(ids, n.ID)
			}
			if len(ids) != len(tc.want) || (len(ids) > 0 && ids[0] != tc.want[0]) {
				t.Errorf("%s: got %v, want %v", tc.name, ids, tc.want)
			}
		}
	})
}

func TestLastPurgeRun(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		if _, err := s.LastPurgeRun(ctx); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("before any purge: err %v, want ErrNotFound", err)
		}
		if _, err := s.PurgeExpired(ctx, time.Now(), 10, true); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LastPurgeRun(ctx); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after a dry run: err %v, want ErrNotFound", err)
		}
		tn, _ := storetest.NewTenant(t, s)
		n := create(t, s, item(tn.ID, "a", time.Now().Add(time.Hour)))
		if _, err := s.CancelNotification(ctx, tn.ID, n.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		// 30 days of retention later the cancelled notification is due.
		if _, err := s.PurgeExpired(ctx, time.Now().Add(31*24*time.Hour), 10, false); err != nil {
			t.Fatal(err)
		}
		run, err := s.LastPurgeRun(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if run.Report.Notifications != 1 || run.Report.Batches != 1 || run.FinishedAt.Before(run.StartedAt) {
			t.Errorf("LastPurgeRun = %+v, want 1 notification in 1 batch", run)
		}
	})
}
