package googleremote_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/termind/termind/internal/store"
	"github.com/termind/termind/internal/store/storetest"
)

// BenchmarkGoogleSync measures, against the Calendar API fake on
// loopback, the initial sync of a calendar with 5,000 events (3 a day
// across the window: two pages of 2,500) and a pull with nothing
// changed. One op is one pull; api_calls/op counts events.list calls.
//
//	go test ./internal/sync/googleremote -run '^$' -bench GoogleSync -benchtime 5x
func BenchmarkGoogleSync(b *testing.B) {
	const events = 5000
	for _, dialect := range storetest.Dialects() {
		b.Run("initial/"+dialect, func(b *testing.B) {
			calls := 0
			for b.Loop() {
				b.StopTimer()
				e := newEnv(b, dialect, store.DirectionBoth, 0)
				fill(e, events)
				e.g.ResetCalendarRequests()
				b.StartTimer()
				res := e.pull(false)
				b.StopTimer()
				if res.Imported != events {
					b.Fatalf("imported %d, want %d", res.Imported, events)
				}
				n, _ := e.lists()
				calls += n
				b.StartTimer()
			}
			b.ReportMetric(float64(calls)/float64(b.N), "api_calls/op")
			b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
		b.Run("no-change/"+dialect, func(b *testing.B) {
			e := newEnv(b, dialect, store.DirectionBoth, 0)
			fill(e, events)
			e.pull(false)
			e.g.ResetCalendarRequests()
			for b.Loop() {
				if res := e.pull(false); res.Imported != 0 || res.Full {
					b.Fatalf("no-change pull: %+v", res)
				}
			}
			n, _ := e.lists()
			b.ReportMetric(float64(n)/float64(b.N), "api_calls/op")
		})
	}
}

// fill puts n events into the fake calendar, spread over the window.
func fill(e *env, n int) {
	for i := range n {
		start := day(-25+i/3%380, 8+i%3*3, 0)
		e.g.PutEvent(calID, userEvent(fmt.Sprintf("ev%05d", i), start, time.Hour, "Meeting"))
	}
}
