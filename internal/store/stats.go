package store

// Anonymous statistics: daily counters with no personal reference (tenant,
// day, kind, dimension value), small counts suppressed on the way out.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Counter kinds in usage_stats, and the metrics TenantStats reports.
const (
	KindAppointmentCreated     = "appointment.created"
	KindAppointmentRescheduled = "appointment.rescheduled"
	KindAppointmentCancelled   = "appointment.cancelled"

	MetricBookings      = "bookings"
	MetricReschedules   = "reschedules"
	MetricCancellations = "cancellations"
	MetricNotifications = "notifications"
	MetricConnections   = "connections"
)

// StatsSuppressBelow: a count from 1 to StatsSuppressBelow-1 is reported as
// suppressed, so that a figure cannot single out one person (a bucket of
// one booking on one day is that booking).
const StatsSuppressBelow = 5

// Stats granularities.
const (
	GranularityDay   = "day"
	GranularityMonth = "month"
)

var kindMetric = map[string]string{
	KindAppointmentCreated:     MetricBookings,
	KindAppointmentRescheduled: MetricReschedules,
	KindAppointmentCancelled:   MetricCancellations,
}

// countUsage adds one to a daily counter, in the caller's transaction so
// that the count and the event commit together.
func (s *Store) countUsage(ctx context.Context, e execer, tenantID, kind, dimension string, now time.Time) error {
	_, err := e.ExecContext(ctx, s.rebind(`INSERT INTO usage_stats (tenant_id, day, kind, dimension, count) VALUES (?, ?, ?, ?, 1)
		ON CONFLICT (tenant_id, day, kind, dimension) DO UPDATE SET count = usage_stats.count + 1`),
		tenantID, dayOf(ms(now)), kind, dimension)
	if err != nil {
		return fmt.Errorf("count %s: %w", kind, err)
	}
	return nil
}

// StatsQuery selects a tenant's statistics: days From to To (inclusive,
// UTC, YYYY-MM-DD), per day or per month (YYYY-MM).
type StatsQuery struct {
	TenantID    string
	From, To    string
	Granularity string
}

// StatValue is one figure. Count is 0 and Suppressed true when the exact
// count is below StatsSuppressBelow (and above 0: empty buckets are left
// out).
type StatValue struct {
	Period     string // day or month; "" for the connections snapshot
	Metric     string
	Channel    string // notifications
	Status     string // notifications
	Provider   string // connections
	State      string // connections
	Count      int64
	Suppressed bool
}

// Stats are a tenant's statistics. Items are counted per period from the
// daily counters; Connections is a snapshot of the tenant's connections by
// provider and state at AsOf (a connection is not an event of a day, and
// revoked ones disappear with the person).
type Stats struct {
	Items       []StatValue
	Connections []StatValue
	AsOf        time.Time
}

// TenantStats reports bookings, reschedules and cancellations (from
// usage_stats), notifications by channel and status (delivery_stats plus
// the rows not yet purged, so a purge does not change the figures) and the
// connections snapshot, each bucket suppressed below StatsSuppressBelow.
func (s *Store) TenantStats(ctx context.Context, q StatsQuery, now time.Time) (Stats, error) {
	if q.Granularity != GranularityDay && q.Granularity != GranularityMonth {
		return Stats{}, fmt.Errorf("tenant stats: granularity %q is not day or month", q.Granularity)
	}
	if q.From > q.To {
		return Stats{}, errors.New("tenant stats: from is after to")
	}
	period := func(day string) string {
		if q.Granularity == GranularityMonth {
			return day[:7]
		}
		return day
	}
	type key struct{ period, metric, channel, status string }
	sums := map[key]int64{}
	rows, err := s.read.QueryContext(ctx, s.rebind(`SELECT day, kind, CAST(sum(count) AS BIGINT) FROM usage_stats
		WHERE tenant_id = ? AND day >= ? AND day <= ? GROUP BY day, kind`), q.TenantID, q.From, q.To)
	if err != nil {
		return Stats{}, fmt.Errorf("tenant stats: usage: %w", err)
	}
	for rows.Next() {
		var day, kind string
		var n int64
		if err := rows.Scan(&day, &kind, &n); err != nil {
			rows.Close()
			return Stats{}, fmt.Errorf("tenant stats: usage: %w", err)
		}
		if m, ok := kindMetric[kind]; ok {
			sums[key{period(day), m, "", ""}] += n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Stats{}, fmt.Errorf("tenant stats: usage: %w", err)
	}
	rows, err = s.read.QueryContext(ctx, s.rebind(`SELECT day, channel, status, CAST(sum(n) AS BIGINT) FROM (
			SELECT day, channel, status, count AS n FROM delivery_stats WHERE tenant_id = ? AND day >= ? AND day <= ?
			UNION ALL
			SELECT created_day, channel, status, count(*) FROM notifications WHERE tenant_id = ? AND created_day >= ? AND created_day <= ?
			GROUP BY created_day, channel, status
		) x GROUP BY day, channel, status`), q.TenantID, q.From, q.To, q.TenantID, q.From, q.To)
	if err != nil {
		return Stats{}, fmt.Errorf("tenant stats: notifications: %w", err)
	}
	for rows.Next() {
		var day, channel, status string
		var n int64
		if err := rows.Scan(&day, &channel, &status, &n); err != nil {
			rows.Close()
			return Stats{}, fmt.Errorf("tenant stats: notifications: %w", err)
		}
		sums[key{period(day), MetricNotifications, channel, status}] += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Stats{}, fmt.Errorf("tenant stats: notifications: %w", err)
	}
	var out Stats
	for k, n := range sums {
		out.Items = append(out.Items, suppress(StatValue{Period: k.period, Metric: k.metric, Channel: k.channel, Status: k.status, Count: n}))
	}
	sort.Slice(out.Items, func(i, j int) bool {
		a, b := out.Items[i], out.Items[j]
		if a.Period != b.Period {
			return a.Period < b.Period
		}
		if a.Metric != b.Metric {
			return a.Metric < b.Metric
		}
		if a.Channel != b.Channel {
			return a.Channel < b.Channel
		}
		return a.Status < b.Status
	})
	out.AsOf = truncMS(now)
	conns, err := queryAll(ctx, s.read, func(r rowScanner) (StatValue, error) {
		v := StatValue{Metric: MetricConnections}
		err := r.Scan(&v.Provider, &v.State, &v.Count)
		return suppress(v), err
	}, s.rebind(`SELECT provider, state, count(*) FROM connections WHERE tenant_id = ?
		GROUP BY provider, state ORDER BY provider, state`), q.TenantID)
	if err != nil {
		return Stats{}, fmt.Errorf("tenant stats: connections: %w", err)
	}
	out.Connections = conns
	return out, nil
}

func suppress(v StatValue) StatValue {
	if v.Count > 0 && v.Count < StatsSuppressBelow {
		v.Count, v.Suppressed = 0, true
	}
	return v
}
