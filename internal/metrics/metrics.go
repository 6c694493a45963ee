// Package metrics holds termind's Prometheus metrics: what the workers and
// the API report (notification states, provider latency, sync runs, purged
// rows) and the collectors read at scrape time (connections by state).
// Everything is registered on a registry the caller owns; there are no
// globals. Labels are only channel, template, status and provider: never
// tenants, recipients, tokens or message content.
package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/termind/termind/internal/store"
)

// Metrics records what happens. A nil *Metrics records nothing, so that
// components built without metrics (CLI runs, tests) need no stand-in.
type Metrics struct {
	notifications   *prometheus.CounterVec
	providerLatency *prometheus.HistogramVec
	syncRuns        *prometheus.CounterVec
	syncDuration    *prometheus.HistogramVec
	purged          prometheus.Counter
}

// Names of the series, as dashboards and alerts use them.
const (
	NameNotifications   = "termind_notifications_total"
	NameProviderLatency = "termind_provider_request_duration_seconds"
	NameSyncRuns        = "termind_sync_runs_total"
	NameSyncDuration    = "termind_sync_duration_seconds"
	NamePurgedRows      = "termind_purged_rows_total"
	NameConnections     = "termind_connections"
)

// Outcome label values of provider requests and sync runs.
const (
	StatusOK    = "ok"
	StatusError = "error"
)

// New creates the metrics and registers them on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameNotifications,
			Help: "Notifications that reached a state (scheduled again for a retry, sent, failed, suppressed, cancelled, delivered, undelivered).",
		}, []string{"channel", "template", "status"}),
		providerLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    NameProviderLatency,
			Help:    "Duration of requests to providers (smtp, twilio, caldav, google) by outcome.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"provider", "status"}),
		syncRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameSyncRuns,
			Help: "Calendar pulls by provider and outcome (status=error counts the failed ones).",
		}, []string{"provider", "status"}),
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    NameSyncDuration,
			Help:    "Duration of calendar pulls by provider.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"provider"}),
		purged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NamePurgedRows,
			Help: "Notification rows deleted by retention purges.",
		}),
	}
	reg.MustRegister(m.notifications, m.providerLatency, m.syncRuns, m.syncDuration, m.purged)
	return m
}

// NotificationState counts a notification reaching status.
func (m *Metrics) NotificationState(channel, template, status string) {
	if m == nil {
		return
	}
	m.notifications.WithLabelValues(channel, template, status).Inc()
}

// ProviderRequest records one request to a provider.
func (m *Metrics) ProviderRequest(provider string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.providerLatency.WithLabelValues(provider, outcome(err)).Observe(d.Seconds())
}

// SyncRun records one calendar pull.
func (m *Metrics) SyncRun(provider string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.syncRuns.WithLabelValues(provider, outcome(err)).Inc()
	m.syncDuration.WithLabelValues(provider).Observe(d.Seconds())
}

// Purged counts deleted notification rows.
func (m *Metrics) Purged(rows int64) {
	if m == nil || rows <= 0 {
		return
	}
	m.purged.Add(float64(rows))
}

func outcome(err error) string {
	if err != nil {
		return StatusError
	}
	return StatusOK
}

// ConnectionCounter is the store query behind the connections gauge.
type ConnectionCounter interface {
	CountConnections(ctx context.Context) ([]store.ConnectionCount, error)
}

// connectionsCollector asks the store at scrape time, so that the gauge
// is right whichever process changed a connection.
type connectionsCollector struct {
	store   ConnectionCounter
	desc    *prometheus.Desc
	timeout time.Duration
	log     *slog.Logger
}

// RegisterConnections registers the termind_connections{provider,state}
// gauge, read from the store at every scrape.
func RegisterConnections(reg prometheus.Registerer, s ConnectionCounter, log *slog.Logger) {
	reg.MustRegister(&connectionsCollector{
		store:   s,
		desc:    prometheus.NewDesc(NameConnections, "Calendar connections by provider and state.", []string{"provider", "state"}, nil),
		timeout: 5 * time.Second,
		log:     log,
	})
}

func (c *connectionsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *connectionsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.store.CountConnections(ctx)
	if err != nil {
		// An invalid metric makes the scrape report the failure.
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		if c.log != nil {
			c.log.Warn("metrics: count connections", "err", err)
		}
		return
	}
	for _, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n.N), n.Provider, n.State)
	}
}
