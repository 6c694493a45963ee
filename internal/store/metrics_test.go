package store_test

import (
	"slices"
	"testing"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

func TestCountConnections(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		s.UseSealer(keyring(t, "k1"))
		if got, err := s.CountConnections(ctx); err != nil || len(got) != 0 {
			t.Fatalf("empty store: %v, %v; want no counts", got, err)
		}
		a, _ := storetest.NewTenant(t, s)
		b, _ := storetest.NewTenant(t, s)
		newConn(t, s, a.ID, "anna", "pw", store.ConsentCalendarReadBusy)
		newConn(t, s, b.ID, "ben", "pw", store.ConsentCalendarReadBusy)
		broken := newConn(t, s, b.ID, "cleo", "pw", store.ConsentCalendarReadBusy)
		if _, err := s.SetConnectionState(ctx, broken.ID, store.ConnBroken, "credentials rejected", "system"); err != nil {
			t.Fatal(err)
		}
		got, err := s.CountConnections(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []store.ConnectionCount{
			{Provider: store.ProviderCalDAV, State: store.ConnActive, N: 2},
			{Provider: store.ProviderCalDAV, State: store.ConnBroken, N: 1},
		}
		if !slices.Equal(got, want) {
			t.Fatalf("CountConnections = %+v, want %+v (across tenants)", got, want)
		}
	})
}
