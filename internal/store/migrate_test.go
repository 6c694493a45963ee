package store_test

import (
	"sync"
	"testing"

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
