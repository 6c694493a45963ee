package store_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

func TestTenantStatsCountsAndSuppresses(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		tn, _ := storetest.NewTenant(t, s)
		other, _ := storetest.NewTenant(t, s)
		now := time.Now().UTC()
		today, month := now.Format(time.DateOnly), now.Format("2006-01")
		start := now.Add(72 * time.Hour).Truncate(time.Minute)
		upsert := func(tenantID, id string, at time.Time, status string) {
			t.Helper()
			if _, err := s.UpsertAppointment(ctx, store.Appointment{TenantID: tenantID, ID: id, SubjectIDs: []string{"subj-" + id},
				Start: at, End: at.Add(time.Hour), TimeZone: "Europe/Berlin", Title: "Termin", Status: status}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 7 {
			upsert(tn.ID, fmt.Sprintf("apt-%d", i), start, "")
		}
		upsert(other.ID, "apt-other", start, "")
		// Two reschedules (one of them twice), one change that is not a reschedule.
		upsert(tn.ID, "apt-0", start.Add(time.Hour), "")
		upsert(tn.ID, "apt-0", start.Add(2*time.Hour), "")
		upsert(tn.ID, "apt-1", start.Add(time.Hour), "")
		if _, err := s.UpsertAppointment(ctx, store.Appointment{TenantID: tn.ID, ID: "apt-2", SubjectIDs: []string{"subj-apt-2"},
			Start: start, End: start.Add(time.Hour), TimeZone: "Europe/Berlin", Title: "Renamed"}); err != nil {
			t.Fatal(err)
		}
		// Five cancellations: three by cancel, two by status; cancelling
		// again counts nothing.
		for i := 2; i < 5; i++ {
			if _, err := s.CancelAppointment(ctx, tn.ID, fmt.Sprintf("apt-%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.CancelAppointment(ctx, tn.ID, "apt-2"); err != nil {
			t.Fatal(err)
		}
		upsert(tn.ID, "apt-5", start, store.AppointmentCancelled)
		upsert(tn.ID, "apt-6", start, store.AppointmentCancelled)

		// Notifications: 6 e-mails and 2 SMS.
		for i := range 8 {
			n := item(tn.ID, fmt.Sprintf("n-%d", i), now)
			if i >= 6 {
				n.Channel, n.Recipient = store.ChannelSMS, "+4915112345678"
			}
			create(t, s, n)
		}

		q := store.StatsQuery{TenantID: tn.ID, From: today, To: today, Granularity: store.GranularityDay}
		want := []store.StatValue{
			{Period: today, Metric: store.MetricBookings, Count: 7},
			{Period: today, Metric: store.MetricCancellations, Count: 5},
			{Period: today, Metric: store.MetricNotifications, Channel: store.ChannelEmail, Status: store.StatusScheduled, Count: 6},
			{Period: today, Metric: store.MetricNotifications, Channel: store.ChannelSMS, Status: store.StatusScheduled, Suppressed: true},
			{Period: today, Metric: store.MetricReschedules, Suppressed: true},
		}
		check := func(name string, q store.StatsQuery, want []store.StatValue) {
			t.Helper()
			got, err := s.TenantStats(ctx, q, now)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !slices.Equal(got.Items, want) {
				t.Errorf("%s:\n got %+v\nwant %+v", name, got.Items, want)
			}
		}
		check("by day", q, want)

		// Erasing people keeps the counts: the appointment counters are
		// anonymous, and erased notifications are counted first.
		for _, subject := range []string{"subj-apt-0", "subj-apt-1", "subj-n-0", "subj-n-7"} {
			if _, err := s.EraseSubject(ctx, tn.ID, subject, "cli", ""); err != nil {
				t.Fatal(err)
			}
		}
		if n := count(t, s, "SELECT count(*) FROM notifications WHERE tenant_id = ?", tn.ID); n != 6 {
			t.Fatalf("%d notifications after erasing two recipients, want 6", n)
		}
		check("after erasure", q, want)

		// A purge moves the notifications into delivery_stats: same figures.
		execSQL(t, s, "UPDATE notifications SET expires_at = 1 WHERE tenant_id = ?", tn.ID)
		if rep, err := s.PurgeExpired(ctx, now, 3, false); err != nil || rep.Notifications != 6 {
			t.Fatalf("PurgeExpired = %+v, %v", rep, err)
		}
		check("after purge", q, want)

		// Per month, the same buckets under the month.
		monthly := slices.Clone(want)
		for i := range monthly {
			monthly[i].Period = month
		}
		check("by month", store.StatsQuery{TenantID: tn.ID, From: today, To: today, Granularity: store.GranularityMonth}, monthly)

		// Outside the range: nothing.
		check("other days", store.StatsQuery{TenantID: tn.ID, From: "2000-01-01", To: "2000-12-31", Granularity: store.GranularityDay}, nil)
		// Another tenant sees only its own single (suppressed) booking.
		check("other tenant", store.StatsQuery{TenantID: other.ID, From: today, To: today, Granularity: store.GranularityDay},
			[]store.StatValue{{Period: today, Metric: store.MetricBookings, Suppressed: true}})

		for _, bad := range []store.StatsQuery{
			{TenantID: tn.ID, From: today, To: today, Granularity: "week"},
			{TenantID: tn.ID, From: "2026-02-01", To: "2026-01-01", Granularity: store.GranularityDay},
		} {
			if _, err := s.TenantStats(ctx, bad, now); err == nil {
				t.Errorf("TenantStats(%+v) accepted", bad)
			}
		}
	})
}

func TestTenantStatsConnectionsSnapshot(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := testCtx(t)
		s.UseSealer(keyring(t, "k1"))
		tn, _ := storetest.NewTenant(t, s)
		var conns []store.Connection
		for i := range 6 {
			conns = append(conns, newConn(t, s, tn.ID, fmt.Sprintf("subj-%d", i), "pw", store.ConsentCalendarReadBusy))
		}
		if _, err := s.BeginRevocation(ctx, tn.ID, conns[0].ID, store.Revocation{Actor: "cli", Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		today := time.Now().UTC().Format(time.DateOnly)
		got, err := s.TenantStats(ctx, store.StatsQuery{TenantID: tn.ID, From: today, To: today, Granularity: store.GranularityDay}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		want := []store.StatValue{
			{Metric: store.MetricConnections, Provider: store.ProviderCalDAV, State: store.ConnActive, Count: 5},
			{Metric: store.MetricConnections, Provider: store.ProviderCalDAV, State: store.ConnRevoking, Suppressed: true},
		}
		if !slices.Equal(got.Connections, want) {
			t.Errorf("Connections = %+v, want %+v", got.Connections, want)
		}
	})
}
