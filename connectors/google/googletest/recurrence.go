package googletest

// Times of events and the expansion of recurring events into instances.

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/teambition/rrule-go"
	"google.golang.org/api/calendar/v3"
)

const dateLayout = "2006-01-02"

// span is when an event happens. All-day events are dates in the
// calendar's time zone, which is UTC for every calendar of the fake.
type span struct {
	start, end time.Time
	allDay     bool
	loc        *time.Location // of start, for recurrence and for instances
	tz         string         // start.timeZone as given
}

// Why an event's times are refused; validate turns them into Google's
// answers.
var (
	errNoStart    = errors.New("missing start time")
	errNoEnd      = errors.New("missing end time")
	errMixedTimes = errors.New("start and end times must either both be date or both be dateTime")
)

// eventSpan reads an event's start and end as Google validates them.
func eventSpan(ev *calendar.Event) (span, error) {
	if ev.Start == nil || (ev.Start.Date == "" && ev.Start.DateTime == "") {
		return span{}, errNoStart
	}
	if ev.End == nil || (ev.End.Date == "" && ev.End.DateTime == "") {
		return span{}, errNoEnd
	}
	start, allDay, err := parseEventTime(ev.Start)
	if err != nil {
		return span{}, fmt.Errorf("invalid start time: %w", err)
	}
	end, endAllDay, err := parseEventTime(ev.End)
	if err != nil {
		return span{}, fmt.Errorf("invalid end time: %w", err)
	}
	if allDay != endAllDay {
		return span{}, errMixedTimes
	}
	return span{start: start, end: end, allDay: allDay, loc: start.Location(), tz: ev.Start.TimeZone}, nil
}

// parseEventTime reads a date or a dateTime; a dateTime is moved into its
// timeZone, when one is given, so that recurrence follows that zone's
// daylight saving time.
func parseEventTime(t *calendar.EventDateTime) (time.Time, bool, error) {
	if t.Date != "" && t.DateTime != "" {
		// Easy to get by patching an all-day event with a dateTime but
		// no "date": null; Google refuses it too.
		return time.Time{}, false, errors.New("both date and dateTime set")
	}
	if t.Date != "" {
		d, err := time.ParseInLocation(dateLayout, t.Date, time.UTC)
		return d, true, err
	}
	d, err := time.Parse(time.RFC3339, t.DateTime)
	if err != nil {
		return time.Time{}, false, err
	}
	if t.TimeZone != "" {
		loc, err := loadZone(t.TimeZone)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("unknown time zone %q", t.TimeZone)
		}
		d = d.In(loc)
	}
	return d, false, nil
}

// eventDateTime writes t the way the event's start was written.
func (sp span) eventDateTime(t time.Time) *calendar.EventDateTime {
	if sp.allDay {
		return &calendar.EventDateTime{Date: t.Format(dateLayout)}
	}
	return &calendar.EventDateTime{DateTime: t.In(sp.loc).Format(time.RFC3339), TimeZone: sp.tz}
}

// instanceSuffix is the part of an instance id after the series id:
// the original start in UTC, or the date of an all-day instance.
func (sp span) instanceSuffix(t time.Time) string {
	if sp.allDay {
		return t.Format("20060102")
	}
	return t.UTC().Format("20060102T150405Z")
}

// parseInstanceSuffix is the inverse of instanceSuffix.
func parseInstanceSuffix(s string) (time.Time, bool, error) {
	if len(s) == len("20060102") {
		t, err := time.ParseInLocation("20060102", s, time.UTC)
		return t, true, err
	}
	t, err := time.Parse("20060102T150405Z", s)
	return t, false, err
}

func isRecurring(ev *calendar.Event) bool { return len(ev.Recurrence) > 0 }

// ruleSet parses the series' recurrence lines (RRULE, RDATE, EXDATE)
// anchored at its start.
func ruleSet(ev *calendar.Event, sp span) (*rrule.Set, error) {
	var lines []string
	for _, l := range ev.Recurrence {
		name, _, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(l)), ":")
		name, _, _ = strings.Cut(name, ";")
		switch name {
		case "RRULE", "RDATE", "EXDATE":
			lines = append(lines, strings.TrimSpace(l))
		default:
			return nil, fmt.Errorf("unsupported recurrence line %q", l)
		}
	}
	set, err := rrule.StrSliceToRRuleSetInLoc(lines, sp.loc)
	if err != nil {
		return nil, fmt.Errorf("bad recurrence: %w", err)
	}
	set.DTStart(sp.start)
	return set, nil
}

// Bounds of an expansion without timeMax, so that endless series stay
// finite: Google too stops expanding some years ahead.
const (
	expandAhead  = 2 * 366 * 24 * time.Hour
	maxInstances = 5000
)

// occurrences returns the original starts of the series' instances that
// overlap [from, to); zero bounds are open. now anchors an open end.
func occurrences(ev *calendar.Event, from, to, now time.Time) (span, []time.Time, error) {
	sp, err := eventSpan(ev)
	if err != nil {
		return sp, nil, err
	}
	set, err := ruleSet(ev, sp)
	if err != nil {
		return sp, nil, err
	}
	dur := sp.end.Sub(sp.start)
	lo := sp.start
	if !from.IsZero() && from.Add(-dur).After(lo) {
		lo = from.Add(-dur)
	}
	hi := to
	if hi.IsZero() {
		hi = now
		if sp.start.After(hi) {
			hi = sp.start
		}
		hi = hi.Add(expandAhead)
	}
	var out []time.Time
	next := set.Iterator()
	for t, ok := next(); ok && len(out) < maxInstances; t, ok = next() {
		if !t.Before(hi) {
			break
		}
		if t.Before(lo) {
			continue
		}
		if !from.IsZero() && !t.Add(dur).After(from) && !(dur == 0 && t.Equal(from)) {
			continue
		}
		out = append(out, t)
	}
	return sp, out, nil
}

// isOccurrence reports whether the series has an instance originally
// starting at t.
func isOccurrence(ev *calendar.Event, t time.Time) bool {
	sp, err := eventSpan(ev)
	if err != nil {
		return false
	}
	set, err := ruleSet(ev, sp)
	if err != nil {
		return false
	}
	got := set.After(t.Add(-time.Second), false)
	return !got.IsZero() && got.Equal(t)
}

// instanceOf builds the instance of master that originally starts at orig,
// as Google returns it: its own id, the series' fields, no recurrence.
func instanceOf(master *calendar.Event, sp span, orig time.Time) *calendar.Event {
	inst := clone(master)
	inst.Id = master.Id + "_" + sp.instanceSuffix(orig)
	inst.RecurringEventId = master.Id
	inst.Recurrence = nil
	inst.OriginalStartTime = sp.eventDateTime(orig)
	inst.Start = sp.eventDateTime(orig)
	inst.End = sp.eventDateTime(orig.Add(sp.end.Sub(sp.start)))
	return inst
}

// zones caches loaded time zones: listing thousands of events would
// otherwise read the zone database once per event.
var zones sync.Map // name → *time.Location

func loadZone(name string) (*time.Location, error) {
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	zones.Store(name, loc)
	return loc, nil
}
