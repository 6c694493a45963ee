package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/termind/termind/internal/store"
)

func TestRecorders(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.NotificationState("email", "confirmation", "sent")
	m.NotificationState("email", "confirmation", "sent")
	m.NotificationState("sms", "reminder", "suppressed")
	m.ProviderRequest("smtp", 20*time.Millisecond, nil)
	m.ProviderRequest("twilio", time.Second, errors.New("21211"))
	m.SyncRun("caldav", 3*time.Second, nil)
	m.SyncRun("caldav", time.Second, errors.New("unreachable"))
	m.Purged(1500)
	m.Purged(0)

	want := `
# HELP termind_notifications_total Notifications that reached a state (scheduled again for a retry, sent, failed, suppressed, cancelled, delivered, undelivered).
# TYPE termind_notifications_total counter
termind_notifications_total{channel="email",status="sent",template="confirmation"} 2
termind_notifications_total{channel="sms",status="suppressed",template="reminder"} 1
# HELP termind_purged_rows_total Notification rows deleted by retention purges.
# TYPE termind_purged_rows_total counter
termind_purged_rows_total 1500
# HELP termind_sync_runs_total Calendar pulls by provider and outcome (status=error counts the failed ones).
# TYPE termind_sync_runs_total counter
termind_sync_runs_total{provider="caldav",status="error"} 1
termind_sync_runs_total{provider="caldav",status="ok"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), NameNotifications, NamePurgedRows, NameSyncRuns); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.providerLatency); n != 2 {
		t.Errorf("%d provider latency series, want 2 (smtp ok, twilio error)", n)
	}
	if n := testutil.CollectAndCount(m.syncDuration); n != 1 {
		t.Errorf("%d sync duration series, want 1", n)
	}

	// A nil *Metrics records nothing and does not panic.
	var none *Metrics
	none.NotificationState("email", "confirmation", "sent")
	none.ProviderRequest("smtp", time.Second, nil)
	none.SyncRun("caldav", time.Second, nil)
	none.Purged(1)
	if rt := none.Transport("caldav", http.DefaultTransport); rt != http.DefaultTransport {
		t.Errorf("nil Metrics wrapped the transport")
	}
}

func TestTransportCountsServerErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			w.WriteHeader(http.StatusInternalServerError)
		case "/412":
			w.WriteHeader(http.StatusPreconditionFailed)
		}
	}))
	t.Cleanup(srv.Close)
	reg := prometheus.NewRegistry()
	m := New(reg)
	c := &http.Client{Transport: m.Transport("caldav", nil)}
	for _, path := range []string{"/ok", "/412", "/500"} {
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	cases := []struct {
		status string
		want   uint64
	}{{StatusOK, 2}, {StatusError, 1}}
	for _, cs := range cases {
		h := m.providerLatency.WithLabelValues("caldav", cs.status).(prometheus.Histogram)
		if got := histogramCount(t, h); got != cs.want {
			t.Errorf("caldav %s: %d requests, want %d", cs.status, got, cs.want)
		}
	}
}

func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var d dto.Metric
	if err := h.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetHistogram().GetSampleCount()
}

type fakeCounter struct {
	counts []store.ConnectionCount
	err    error
}

func (f fakeCounter) CountConnections(context.Context) ([]store.ConnectionCount, error) {
	return f.counts, f.err
}

func TestConnectionsCollector(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	RegisterConnections(reg, fakeCounter{counts: []store.ConnectionCount{
		{Provider: "caldav", State: "active", N: 3}, {Provider: "google", State: "revoking", N: 1},
	}}, nil)
	want := `
# HELP termind_connections Calendar connections by provider and state.
# TYPE termind_connections gauge
termind_connections{provider="caldav",state="active"} 3
termind_connections{provider="google",state="revoking"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), NameConnections); err != nil {
		t.Error(err)
	}

	failing := prometheus.NewRegistry()
	RegisterConnections(failing, fakeCounter{err: errors.New("database down")}, nil)
	if _, err := failing.Gather(); err == nil || !strings.Contains(err.Error(), "database down") {
		t.Errorf("Gather with a failing store: %v, want the store's error", err)
	}
}
