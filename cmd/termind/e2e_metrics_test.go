package main

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/termind/termind/connectors/caldav/caldavtest"
	"github.com/termind/termind/internal/config"
	"github.com/termind/termind/internal/store"
)

// scrape reads the stack's /metrics (the test client is on loopback, so
// no token is needed) and parses the text format.
func (st *stack) scrape() map[string]*dto.MetricFamily {
	st.t.Helper()
	resp, err := http.Get(st.url + "/metrics")
	if err != nil {
		st.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		st.t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		st.t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// series finds the sample of name whose labels include want; ok is false
// when there is none.
func series(families map[string]*dto.MetricFamily, name string, want map[string]string) (*dto.Metric, bool) {
	f := families[name]
	if f == nil {
		return nil, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m, true
	}
	return nil, false
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetHistogram() != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return m.GetUntyped().GetValue()
}

// TestMetricsThroughTheDaemon sends mail (three delivered, one refused
// for good, one cancelled) and syncs a Radicale calendar through the
// whole stack, then reads /metrics and checks each series.
func TestMetricsThroughTheDaemon(t *testing.T) {
	t.Parallel()
	rad := caldavtest.StartRadicale(t)
	st := newStack(t, store.DialectSQLite, func(c *config.Config) { c.CalDAVAllowPrivate = true })

	for _, key := range []string{"metrics-1", "metrics-2", "metrics-3"} {
		st.waitStatus(st.post(mailRequest(key)).ID, "sent")
	}
	st.smtp.FailNext(1, 550, "5.1.1 mailbox unavailable")
	st.waitStatus(st.post(mailRequest("metrics-refused")).ID, "failed")
	later := mailRequest("metrics-cancelled")
	later["send_at"] = time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if code := st.do("DELETE", "/v1/notifications/"+st.post(later).ID, nil, nil); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}

	calURL := rad.MakeCalendar(t, "alice", "Praxis")
	var conn struct{ ID string }
	if code := st.do("POST", "/v1/connections/caldav", map[string]any{
		"subject_id": "anna", "url": calURL, "username": "alice", "password": rad.Users["alice"],
		"privacy": "busy", "direction": "import",
		"consent": map[string]any{"purposes": []string{"calendar.read.busy"}, "policy_version": "2026-01"},
	}, &conn); code != http.StatusCreated {
		t.Fatalf("connect: %d", code)
	}
	if code := st.do("POST", "/v1/connections/"+conn.ID+"/sync", map[string]any{"full": true}, nil); code != http.StatusAccepted {
		t.Fatalf("sync now: %d", code)
	}
	var families map[string]*dto.MetricFamily
	waitFor(t, 15*time.Second, "a successful caldav sync run in /metrics", func() bool {
		families = st.scrape()
		m, ok := series(families, "termind_sync_runs_total", map[string]string{"provider": "caldav", "status": "ok"})
		return ok && value(m) >= 1
	})

	cases := []struct {
		name    string
		labels  map[string]string
		want    float64
		atLeast bool
	}{
		{"termind_notifications_total", map[string]string{"channel": "email", "template": "confirmation", "status": "sent"}, 3, false},
		{"termind_notifications_total", map[string]string{"channel": "email", "template": "confirmation", "status": "failed"}, 1, false},
		{"termind_notifications_total", map[string]string{"channel": "email", "template": "confirmation", "status": "cancelled"}, 1, false},
		{"termind_provider_request_duration_seconds", map[string]string{"provider": "smtp", "status": "ok"}, 3, false},
		{"termind_provider_request_duration_seconds", map[string]string{"provider": "smtp", "status": "error"}, 1, false},
		{"termind_provider_request_duration_seconds", map[string]string{"provider": "caldav", "status": "ok"}, 1, true},
		{"termind_sync_duration_seconds", map[string]string{"provider": "caldav"}, 1, true},
		{"termind_connections", map[string]string{"provider": "caldav", "state": "active"}, 1, false},
		{"termind_purged_rows_total", nil, 0, false},
		{"asynq_queue_size", map[string]string{"queue": st.cfg.QueueName}, 0, true},
		{"asynq_queue_latency_seconds", map[string]string{"queue": st.cfg.QueueName}, 0, true},
	}
	for _, c := range cases {
		m, ok := series(families, c.name, c.labels)
		switch {
		case !ok:
			t.Errorf("%s%v: missing", c.name, c.labels)
		case c.atLeast && value(m) < c.want, !c.atLeast && value(m) != c.want:
			t.Errorf("%s%v = %v, want %v (at least: %v)", c.name, c.labels, value(m), c.want, c.atLeast)
		}
	}
	if _, ok := series(families, "termind_notifications_total", map[string]string{"status": "suppressed"}); ok {
		t.Errorf("a suppressed series appeared though nothing was suppressed")
	}

	// Nothing personal in any label: no address, no subject, no tenant.
	for name, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				v := l.GetValue()
				if strings.Contains(v, "@") || strings.Contains(v, "anna") || strings.Contains(v, st.tenant.ID) || strings.Contains(v, "alice") {
					t.Errorf("%s has a personal label %s=%q", name, l.GetName(), v)
				}
			}
		}
	}
}

// TestWorkerServesMetrics: a process without the api role serves
// /metrics and /readyz on TERMIND_METRICS_LISTEN, and nothing of the API.
func TestWorkerServesMetrics(t *testing.T) {
	t.Parallel()
	st := newStack(t, store.DialectSQLite)
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	worker := *st
	worker.cfg.MetricsListen = addr
	worker.start(nil, []string{roleWorker})

	base := "http://" + addr
	waitFor(t, 5*time.Second, "the worker's metrics listener", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	// Mail sent while two workers run: the counters of both processes add up to one send.
	id := st.post(mailRequest("worker-metrics")).ID
	st.waitStatus(id, "sent")
	worker.url = base
	sent := 0.0
	for _, fams := range []map[string]*dto.MetricFamily{st.scrape(), worker.scrape()} {
		if m, ok := series(fams, "termind_notifications_total", map[string]string{"status": "sent"}); ok {
			sent += value(m)
		}
		if _, ok := series(fams, "asynq_queue_size", map[string]string{"queue": st.cfg.QueueName}); !ok {
			t.Errorf("a process lacks the queue series")
		}
	}
	if sent != 1 {
		t.Errorf("sent counted %v times over both processes, want 1", sent)
	}
	req, _ := http.NewRequest("GET", base+"/v1/connections", nil)
	req.Header.Set("Authorization", "Bearer "+st.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the API through the metrics listener: %d, want 401 (no API there)", resp.StatusCode)
	}
}
