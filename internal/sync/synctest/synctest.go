// Package synctest holds what the sync acceptance tests of every remote
// (caldavremote, googleremote) share: dialect-neutral SQL, row counts,
// busy-time checks and dates in a zone with daylight saving time.
package synctest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// Berlin is the zone the tests book in (it has DST transitions).
func Berlin() *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err)
	}
	return loc
}

// Day is a date some days ahead at a wall time in Berlin.
func Day(days, hour, minute int) time.Time {
	berlin := Berlin()
	n := time.Now().In(berlin)
	return time.Date(n.Year(), n.Month(), n.Day()+days, hour, minute, 0, 0, berlin)
}

// Interval is the busy interval [start, start+d) in UTC.
func Interval(start time.Time, d time.Duration) store.BusyInterval {
	return store.BusyInterval{Start: start.UTC(), End: start.Add(d).UTC()}
}

// ForDialects runs f in parallel on every store dialect.
func ForDialects(t *testing.T, f func(t *testing.T, dialect string)) {
	for _, d := range storetest.Dialects() {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			f(t, d)
		})
	}
}

// Logger discards, or with -v writes to the test's log.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// SQL rewrites ? placeholders for the store's dialect.
func SQL(s *store.Store, q string) string {
	if s.Dialect() != store.DialectPostgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Count counts a table's rows of one connection.
func Count(t testing.TB, ctx context.Context, s *store.Store, table, connectionID string) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRowContext(ctx, SQL(s, "SELECT COUNT(*) FROM "+table+" WHERE connection_id = ?"), connectionID).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// WantBusy fails the test unless got are exactly the want intervals.
func WantBusy(t testing.TB, got []store.BusyInterval, want ...store.BusyInterval) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("busy intervals:\n got %v\nwant %v", got, want)
	}
	for i := range got {
		if !got[i].Start.Equal(want[i].Start) || !got[i].End.Equal(want[i].End) {
			t.Fatalf("busy intervals:\n got %v\nwant %v", got, want)
		}
	}
}
