package caldav

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestImpossibleNthWeekday: rrule-go panicked (index out of range) on an
// n-th weekday beyond the fifth of a month, a rule any calendar the user
// connects can hold. Such a series is now skipped with the reason, and
// the rest of the calendar still comes through.
func TestImpossibleNthWeekday(t *testing.T) {
	t.Parallel()
	from, to := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		rule    string
		skipped bool
	}{
		{"FREQ=MONTHLY;BYDAY=10FR", true},
		{"FREQ=MONTHLY;BYDAY=6FR", true},
		{"FREQ=MONTHLY;BYDAY=-6MO", true},
		{"FREQ=MONTHLY;BYDAY=+53SU", true},
		{"FREQ=YEARLY;BYMONTH=12;BYDAY=6FR", true},
		{"FREQ=MONTHLY;BYDAY=5FR", false},
		{"FREQ=MONTHLY;BYDAY=-5MO", false},
		{"FREQ=YEARLY;BYDAY=20MO", false}, // the 20th Monday of the year exists
	}
	for _, c := range cases {
		t.Run(c.rule, func(t *testing.T) {
			t.Parallel()
			data := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n" +
				"BEGIN:VEVENT\r\nUID:series\r\nDTSTAMP:20250101T000000Z\r\nDTSTART;VALUE=DATE:20250110\r\nRRULE:" + c.rule + "\r\nEND:VEVENT\r\n" +
				"BEGIN:VEVENT\r\nUID:single\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20250301T090000Z\r\nDTEND:20250301T100000Z\r\nEND:VEVENT\r\n" +
				"END:VCALENDAR\r\n"
			cal, err := ParseObject([]byte(data))
			if err != nil {
				t.Fatal(err)
			}
			occ, err := Occurrences(cal, from, to, time.UTC)
			var skipped *SkippedError
			if got := errors.As(err, &skipped); got != c.skipped {
				t.Fatalf("skipped = %v (%v), want %v", got, err, c.skipped)
			}
			if c.skipped && (len(skipped.Components) != 1 || skipped.Components[0].UID != "series" || !strings.Contains(skipped.Components[0].Reason, "at most five")) {
				t.Errorf("skipped %+v", skipped.Components)
			}
			single := 0
			for _, o := range occ {
				if o.UID == "single" {
					single++
				}
			}
			if single != 1 {
				t.Errorf("the other event came through %d times, want once", single)
			}
		})
	}
}

// TestRecoveredRulePanic: whatever else rrule-go panics on becomes an
// error of the one series, not a crash of the sync.
func TestRecoveredRulePanic(t *testing.T) {
	t.Parallel()
	err := recovered(func() { panic("index out of range") })
	if !errors.Is(err, errRulePanicked) || !strings.Contains(err.Error(), "index out of range") {
		t.Fatalf("recovered = %v, want errRulePanicked with the panic value", err)
	}
	if err := recovered(func() {}); err != nil {
		t.Fatalf("recovered without a panic = %v", err)
	}
}
