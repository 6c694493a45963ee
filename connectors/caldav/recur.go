package caldav

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/teambition/rrule-go"
)

// recurRule is one RRULE, parsed for rrule-go. UNTIL is kept apart and
// checked here: rrule-go compares it with wall clock readings, but a UTC
// UNTIL must be compared with instants.
//
// go-ical's Component.RecurrenceSet is not used: it adds the EXDATEs a
// second time in place of the RDATEs, reads UNTIL and floating values in
// UTC, knows only IANA TZIDs and puts no bound on the work. rrule-go itself
// does the expansion.
type recurRule struct {
	opt   rrule.ROption // without DTSTART and UNTIL
	until *stamp
}

// Bounds on recurrence rules beyond RFC 5545's own. rrule-go produces
// every time of a period before returning the first, and loops forever on
// some rules that can never match, so rules that could make it do either
// are refused before it runs.
const (
	maxInterval = 10000
	// maxTimesPerDay bounds BYHOUR × BYMINUTE × BYSECOND.
	maxTimesPerDay = 100
)

// parseRule parses an RRULE value. X- parts are ignored. Recurrence more
// often than daily is refused: calendars of people who book appointments
// do not use it, and rrule-go walks such rules hour by hour, which a
// hostile rule can make take minutes.
func parseRule(v string) (recurRule, error) {
	// Some exporters put spaces after the commas of BYDAY lists.
	v = strings.Join(strings.Fields(v), "")
	v = strings.TrimPrefix(strings.ToUpper(v), "RRULE:")
	var r recurRule
	var keep []string
	for part := range strings.SplitSeq(v, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, val, ok := strings.Cut(part, "=")
		if !ok {
			return recurRule{}, fmt.Errorf("rule part %q: want NAME=VALUE", part)
		}
		switch {
		case strings.HasPrefix(key, "X-"):
			continue
		case key == "UNTIL":
			s, err := parseStamp(val, "")
			if err != nil {
				return recurRule{}, fmt.Errorf("UNTIL: %w", err)
			}
			r.until = &s
			continue
		case key == "COUNT" || key == "INTERVAL":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > maxInterval && key == "INTERVAL" {
				return recurRule{}, fmt.Errorf("%s=%s: out of range", key, val)
			}
		}
		keep = append(keep, part)
	}
	o, err := rrule.StrToROptionInLocation(strings.Join(keep, ";"), time.UTC)
	if err != nil {
		return recurRule{}, fmt.Errorf("rule %q: %w", v, err)
	}
	opt := *o
	if opt.Freq > rrule.DAILY {
		return recurRule{}, fmt.Errorf("rule %q: recurring more often than daily is not supported", v)
	}
	// Duplicates in BY lists only cost time; without them each list is
	// bounded by the range of its values.
	for _, l := range []*[]int{&opt.Bysetpos, &opt.Bymonth, &opt.Bymonthday, &opt.Byyearday, &opt.Byweekno, &opt.Byhour, &opt.Byminute, &opt.Bysecond, &opt.Byeaster} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
	opt.Byweekday = slices.CompactFunc(opt.Byweekday, func(a, b rrule.Weekday) bool { return a == b })
	if max(1, len(opt.Byhour))*max(1, len(opt.Byminute))*max(1, len(opt.Bysecond)) > maxTimesPerDay {
		return recurRule{}, fmt.Errorf("rule %q: more than %d times a day", v, maxTimesPerDay)
	}
	// rrule-go indexes past its day tables (and panics) for an n-th
	// weekday beyond the fifth of a month, counted from either end. A
	// month never has a sixth Friday, so such a rule is refused like the
	// others above.
	if opt.Freq == rrule.MONTHLY || opt.Freq == rrule.YEARLY && len(opt.Bymonth) > 0 {
		for _, wd := range opt.Byweekday {
			if n := wd.N(); n > 5 || n < -5 {
				return recurRule{}, fmt.Errorf("rule %q: BYDAY %s: a month has at most five of each weekday", v, wd)
			}
		}
	}
	check := opt
	check.Dtstart = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := rrule.NewRRule(check); err != nil {
		return recurRule{}, fmt.Errorf("rule %q: %w", v, err)
	}
	r.opt = opt
	return r, nil
}

// expansion walks the instances of one rule.
type expansion struct {
	rule    recurRule
	dtstart stamp
	// toInstant turns a wall reading of the event's zone into an instant;
	// needed to compare with a UTC UNTIL.
	toInstant func(time.Time) time.Time
	// lo and hi bound the wall readings wanted: instances before lo are
	// passed over (and, when the rule allows, skipped without walking),
	// the walk ends at hi.
	lo, hi  time.Time
	maxWalk int
}

// probeYear is where a rule is tried out before it is expanded: rrule-go
// stops at the year 9999, so a rule that matches nothing (BYMONTH=2;
// BYMONTHDAY=30) costs at most forty years of empty periods there, instead
// of walking on from the event's start.
const probeYear = 9959

// errNeverMatches is returned by run for a rule that has no instances.
var errNeverMatches = errors.New("the recurrence rule never matches")

// errStartsTooEarly is returned by run for a rule with COUNT whose start
// lies more than maxWalk periods before the window: its instances would
// have to be counted from there.
var errStartsTooEarly = errors.New("a rule with COUNT that starts too long before the window")

// run calls yield with the wall reading of every instance in [lo, hi), in
// order, until yield returns false. truncated reports that it stopped
// after maxWalk instances. DTSTART is not added here: RFC 5545 counts it
// as an instance whether or not the rule matches it, so callers add it.
func (x expansion) run(yield func(time.Time) bool) (truncated bool, err error) {
	opt := x.rule.opt
	opt.Dtstart = x.dtstart.wall
	if opt.Count > 0 {
		days := (x.hi.Unix() - opt.Dtstart.Unix()) / 86400
		if opt.Freq == rrule.WEEKLY {
			days /= 7
		}
		if days > int64(x.maxWalk) && opt.Freq >= rrule.WEEKLY {
			return false, errStartsTooEarly
		}
	}
	probe := opt
	probe.Count = 0
	probe = advance(probe, time.Date(probeYear, 1, 1, 0, 0, 0, 0, time.UTC))
	if r, err := rrule.NewRRule(probe); err != nil {
		return false, err
	} else if _, ok, err := first(r); err != nil {
		return false, err
	} else if !ok {
		return false, errNeverMatches
	}
	// With COUNT the instances must be counted from the start; otherwise
	// the start moves forward by whole periods to just before lo, so a
	// daily series from 1998 does not walk through 10,000 days first.
	if opt.Count == 0 {
		opt = advance(opt, x.lo)
	}
	r, err := rrule.NewRRule(opt)
	if err != nil {
		return false, err
	}
	next, err := iterate(r)
	if err != nil {
		return false, err
	}
	within := x.untilCheck()
	for walked := 0; ; walked++ {
		if walked >= x.maxWalk {
			return true, nil
		}
		w, ok, err := next()
		if err != nil {
			return false, err
		}
		if !ok || !w.Before(x.hi) || !within(w) {
			return false, nil
		}
		if w.Before(x.lo) {
			continue
		}
		if !yield(w) {
			return false, nil
		}
	}
}

// errRulePanicked: rrule-go failed on a rule that passed parseRule. The
// event is then skipped like any refused rule, instead of the panic
// taking down the sync of the whole calendar.
var errRulePanicked = errors.New("the recurrence rule could not be expanded")

// iterate returns r's instances one by one; a panic inside rrule-go, when
// starting or at any step, becomes errRulePanicked.
func iterate(r *rrule.RRule) (next func() (time.Time, bool, error), err error) {
	var it rrule.Next
	if err := recovered(func() { it = r.Iterator() }); err != nil {
		return nil, err
	}
	return func() (w time.Time, ok bool, err error) {
		err = recovered(func() { w, ok = it() })
		return w, ok, err
	}, nil
}

// first returns r's first instance, as iterate does.
func first(r *rrule.RRule) (time.Time, bool, error) {
	next, err := iterate(r)
	if err != nil {
		return time.Time{}, false, err
	}
	return next()
}

func recovered(fn func()) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w (%v)", errRulePanicked, v)
		}
	}()
	fn()
	return nil
}

// untilCheck returns whether a wall reading is at or before UNTIL, which
// is inclusive (RFC 5545 3.3.10). A date UNTIL on a timed event includes
// that whole day, as clients mean it.
func (x expansion) untilCheck() func(time.Time) bool {
	u := x.rule.until
	switch {
	case u == nil:
		return func(time.Time) bool { return true }
	case x.dtstart.date:
		last := u.wall.Truncate(24 * time.Hour)
		return func(w time.Time) bool { return !w.After(last) }
	case u.date:
		end := u.wall.AddDate(0, 0, 1)
		return func(w time.Time) bool { return w.Before(end) }
	case u.utc && x.toInstant != nil:
		return func(w time.Time) bool { return !x.toInstant(w).After(u.wall) }
	}
	return func(w time.Time) bool { return !w.After(u.wall) }
}

// advance moves the rule's DTSTART forward by whole periods (INTERVAL ×
// FREQ) to one or two periods before target, and spells out the values
// rrule-go would otherwise take from the original DTSTART, so the moved
// rule produces the same instances from there on. It must not be used
// with COUNT, which counts from the original start.
func advance(opt rrule.ROption, target time.Time) rrule.ROption {
	start := opt.Dtstart
	if !start.Before(target) {
		return opt
	}
	n := max(opt.Interval, 1)
	noDayRules := len(opt.Byweekno) == 0 && len(opt.Byyearday) == 0 && len(opt.Bymonthday) == 0 &&
		len(opt.Byweekday) == 0 && len(opt.Byeaster) == 0
	h, m, s := start.Clock()
	// Spans are counted in Unix seconds: time.Sub saturates after 292
	// years, and the probe moves rules thousands of years ahead.
	switch opt.Freq {
	case rrule.YEARLY:
		k := (target.Year() - start.Year() - 1) / n * n
		if k <= 0 {
			return opt
		}
		if noDayRules {
			if len(opt.Bymonth) == 0 {
				opt.Bymonth = []int{int(start.Month())}
			}
			opt.Bymonthday = []int{start.Day()}
		}
		opt.Dtstart = time.Date(start.Year()+k, 1, 1, h, m, s, 0, time.UTC)
	case rrule.MONTHLY:
		months := (target.Year()-start.Year())*12 + int(target.Month()) - int(start.Month()) - 1
		k := months / n * n
		if k <= 0 {
			return opt
		}
		if noDayRules {
			opt.Bymonthday = []int{start.Day()}
		}
		opt.Dtstart = time.Date(start.Year(), start.Month()+time.Month(k), 1, h, m, s, 0, time.UTC)
	case rrule.WEEKLY:
		days := int((target.Unix()-start.Unix())/86400) - 7
		k := days / (7 * n) * 7 * n
		if k <= 0 {
			return opt
		}
		opt.Dtstart = start.AddDate(0, 0, k)
	case rrule.DAILY:
		days := int((target.Unix()-start.Unix())/86400) - 1
		k := days / n * n
		if k <= 0 {
			return opt
		}
		opt.Dtstart = start.AddDate(0, 0, k)
	}
	return opt
}
