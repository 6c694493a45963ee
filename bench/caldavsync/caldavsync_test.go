// Package caldavsync compares termind's CalDAV pull with vdirsyncer and
// with the server's own floor, on one Radicale holding a large calendar.
// It holds benchmarks only:
//
//	go test ./bench/caldavsync -run '^$' -bench . -benchtime 1x -timeout 30m
//
// TERMIND_BENCH_EVENTS sets the calendar size (default 5,000).
package caldavsync

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/termind/termind/connectors/caldav"
	"github.com/termind/termind/connectors/caldav/caldavtest"
	"github.com/termind/termind/internal/secrets"
	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
	calsync "github.com/termind/termind/internal/sync"
	"github.com/termind/termind/internal/sync/caldavremote"
)

// countingTransport counts the HTTP requests termind sends.
type countingTransport struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

func events() int {
	if n, err := strconv.Atoi(os.Getenv("TERMIND_BENCH_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 5000
}

func BenchmarkCalDAVPull(b *testing.B) {
	for _, dialect := range storetest.Dialects() {
		b.Run(dialect, func(b *testing.B) { benchmarkPull(b, dialect) })
	}
}

func benchmarkPull(b *testing.B, dialect string) {
	ctx := context.Background()
	n := events()
	rad := caldavtest.StartRadicale(b)
	seeded := time.Now()
	calURL := seedCalendar(b, rad, "Bench", n)
	b.Logf("seeded %d events in %v", n, time.Since(seeded).Round(time.Millisecond))

	floor := timeCurlReport(b, rad, calURL, "")
	vInitial, vNoChange := vdirsyncerRuns(b, rad, calURL)

	s := storetest.New(b, dialect)
	keys, err := secrets.NewKeyring(bytes.Repeat([]byte{9}, secrets.KeySize))
	if err != nil {
		b.Fatal(err)
	}
	s.UseSealer(keys)
	tn, _ := storetest.NewTenant(b, s)
	creds, _ := json.Marshal(map[string]string{"username": "alice", "password": rad.Users["alice"]})
	conn, err := s.CreateConnection(ctx, store.Connection{TenantID: tn.ID, SubjectID: "anna", Provider: store.ProviderCalDAV,
		CalendarURL: calURL, Privacy: store.PrivacyBusy, Direction: store.DirectionImport}, creds,
		[]store.Consent{{Purpose: store.ConsentCalendarReadBusy, Decision: store.DecisionGranted, PolicyVersion: "v1", Actor: "bench"}},
		store.AuditEntry{Actor: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	hc := caldav.NewHTTPClient(caldav.Options{AllowPrivate: true})
	counter := &countingTransport{next: hc.Transport}
	hc.Transport = counter
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := calsync.New(calsync.Config{Store: s, Logger: log,
		Remotes: map[string]calsync.RemoteFactory{store.ProviderCalDAV: caldavremote.Factory(hc, log)}})

	b.ResetTimer()
	start := time.Now()
	res, err := eng.Pull(ctx, conn.ID, true)
	initial := time.Since(start)
	if err != nil {
		b.Fatalf("initial pull: %v", err)
	}
	initialRequests := counter.n.Load()
	if imported, _ := s.ExternalEventCount(ctx, conn.ID); imported != n {
		b.Fatalf("imported %d occurrences (%d objects), want %d", imported, res.Imported, n)
	}

	counter.n.Store(0)
	start = time.Now()
	if _, err := eng.Pull(ctx, conn.ID, false); err != nil {
		b.Fatalf("no-change pull: %v", err)
	}
	noChange := time.Since(start)
	noChangeRequests := counter.n.Load()
	b.StopTimer()

	b.ReportMetric(floor.Seconds(), "floor_report_s")
	b.ReportMetric(initial.Seconds(), "termind_initial_s")
	b.ReportMetric(float64(initialRequests), "termind_initial_requests")
	b.ReportMetric(vInitial.Seconds(), "vdirsyncer_initial_s")
	b.ReportMetric(noChange.Seconds(), "termind_nochange_s")
	b.ReportMetric(float64(noChangeRequests), "termind_nochange_requests")
	b.ReportMetric(vNoChange.Seconds(), "vdirsyncer_nochange_s")
	b.ReportMetric(initial.Seconds()/floor.Seconds(), "initial_vs_floor")
	b.ReportMetric(vInitial.Seconds()/initial.Seconds(), "vdirsyncer_vs_initial")
	b.ReportMetric(vNoChange.Seconds()/noChange.Seconds(), "vdirsyncer_vs_nochange")
}
