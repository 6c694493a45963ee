package caldav

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-ical"
)

// Occurrence is one instance of an event in a calendar object, as pull
// sync stores it: instants in UTC plus the zone it was written in; for
// all-day events the dates.
type Occurrence struct {
	UID string
	// RecurrenceID names the instance of a recurring event: its original
	// start (before any override moved it) in UTC as RFC 3339, or the
	// date (2006-01-02) for all-day events. "" for a single event.
	RecurrenceID string
	// Start and End are UTC instants, End exclusive. For all-day events
	// they are midnight UTC of the first day and of the day after the
	// last, and AllDay is set: callers use the dates, not the instants.
	Start, End time.Time
	AllDay     bool
	// TimeZone is the zone DTSTART was written in: the IANA name when one
	// is known for its TZID, else the TZID as written; "" for UTC,
	// floating times and all-day events.
	TimeZone string
	// Transparent: TRANSP:TRANSPARENT, the event does not block time.
	Transparent bool
	// Cancelled: STATUS:CANCELLED on the instance (an override) or on the
	// whole event. Such occurrences are returned so that sync can remove
	// what it imported before, but they are never busy time. Instances
	// removed by EXDATE are not returned at all.
	Cancelled                    bool
	Title, Location, Description string
	// Ours: the event carries MarkerProperty, so it is termind's own copy
	// of the appointment AppointmentID and must never be imported as busy
	// time (it would feed back into the booking system).
	Ours          bool
	AppointmentID string
}

// SkippedComponent is a VEVENT, or part of a series, that Occurrences left
// out, and why.
type SkippedComponent struct {
	UID          string
	RecurrenceID string // as written, for an override
	Reason       string
}

// SkippedError lists what Occurrences left out while returning everything
// else. Test for it with errors.As.
type SkippedError struct {
	Components []SkippedComponent
}

func (e *SkippedError) Error() string {
	parts := make([]string, 0, len(e.Components))
	for _, c := range e.Components {
		id := "UID " + strconv.Quote(c.UID)
		if c.RecurrenceID != "" {
			id += " RECURRENCE-ID " + c.RecurrenceID
		}
		parts = append(parts, id+": "+c.Reason)
	}
	return fmt.Sprintf("caldav: skipped %d event component(s): %s", len(e.Components), strings.Join(parts, "; "))
}

// Bounds on the work of one call.
const (
	// MaxOccurrences is how many occurrences one event (one UID) yields
	// in a window at most; a series that has more is cut there and
	// reported in the SkippedError.
	MaxOccurrences = 10000
	// maxWalk bounds the instances one rule is walked through, including
	// those before the window (rules with COUNT are counted from their
	// start).
	maxWalk = 100000
	// maxRules bounds the recurrence rules one call expands. A CalDAV
	// object holds one event; whole-calendar exports have a few dozen
	// series. Each rule costs at most milliseconds, so this bounds a call.
	maxRules = 1000
)

// Occurrences returns the occurrences of the events in cal that overlap
// [from, to): an occurrence counts if it starts before to and ends after
// from (a zero-length one if it starts in the window). They are sorted by
// start, then UID and RecurrenceID.
//
// What it honours:
//   - RRULE (several, too), RDATE (dates, date-times, periods) and EXDATE;
//     DTSTART is always the first instance (RFC 5545).
//   - Overrides (a VEVENT with RECURRENCE-ID and the master's UID) replace
//     their instance wherever they move it, into the window or out of it.
//     An override of an instance that EXDATE removes is dropped: the
//     deletion is the later edit. With RANGE=THISANDFUTURE the override
//     also applies to every later instance that has no override of its
//     own: shifted by the same amount, with the override's length and
//     text. Overrides whose master is missing stand alone.
//   - Of several masters (or overrides of one instance) with one UID, the
//     highest SEQUENCE wins, then the last in the object.
//   - Time zones: see zones.lookup. Floating times are read in floating,
//     or in X-WR-TIMEZONE when floating is nil, else in UTC.
//   - All-day events: DTEND is exclusive; no DTEND is one day. A timed
//     event without DTEND and DURATION has no length. DURATION counts days
//     on the calendar (P1D across a DST change is 23 or 25 hours). When an
//     override has neither, it keeps the master's length. DTEND wins when
//     both DTEND and DURATION are given.
//   - VEVENTs without UID (CalDAV servers refuse them, files have them)
//     are single events of their own, reported with UID "".
//
// The work is bounded: a series yields at most MaxOccurrences in the
// window; rules without COUNT are started just before the window instead
// of at DTSTART; a rule is walked through at most 100,000 instances; a
// rule with COUNT that starts more than 100,000 periods before the window
// is not expanded; one call expands at most 1,000 rules; rules recurring
// more often than daily are refused.
//
// A VEVENT that cannot be used (no or unreadable DTSTART, DTEND before
// DTSTART, an unreadable or refused rule or date list) is left out, and so
// is whatever the bounds cut off; everything else is still returned,
// together with a *SkippedError listing what was left out. Other errors
// (nil calendar, empty window) come with no occurrences.
func Occurrences(cal *ical.Calendar, from, to time.Time, floating *time.Location) ([]Occurrence, error) {
	if cal == nil || cal.Component == nil {
		return nil, errors.New("caldav: occurrences: nil calendar")
	}
	if !from.Before(to) {
		return nil, fmt.Errorf("caldav: occurrences: empty window %s to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	x := &expander{
		zones:     newZones(cal, floating, to.UTC().Year()+1),
		from:      from.UTC(),
		to:        to.UTC(),
		rulesLeft: maxRules,
	}
	groups := map[string]*series{}
	var order []string
	for i, c := range cal.Children {
		if c.Name != ical.CompEvent {
			continue
		}
		ev, err := x.parseEvent(c)
		if err != nil {
			x.skip(strings.TrimSpace(textProp(c, ical.PropUID)), rawRecurrenceID(c), err.Error())
			continue
		}
		key := "uid:" + ev.uid
		if ev.uid == "" {
			key = "index:" + strconv.Itoa(i)
		}
		s := groups[key]
		if s == nil {
			s = &series{uid: ev.uid}
			groups[key] = s
			order = append(order, key)
		}
		s.add(ev)
	}
	var out []Occurrence
	for _, key := range order {
		out = append(out, x.expand(groups[key])...)
	}
	slices.SortFunc(out, func(a, b Occurrence) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.UID, b.UID), cmp.Compare(a.RecurrenceID, b.RecurrenceID))
	})
	if len(x.skipped) > 0 {
		return out, &SkippedError{Components: x.skipped}
	}
	return out, nil
}

// expander holds what one call to Occurrences works with.
type expander struct {
	zones     *zones
	from, to  time.Time
	skipped   []SkippedComponent
	rulesLeft int // of maxRules
}

func (x *expander) skip(uid, rid, reason string) {
	x.skipped = append(x.skipped, SkippedComponent{UID: uid, RecurrenceID: rid, Reason: reason})
}

// event is one VEVENT, its times read.
type event struct {
	uid      string
	seq      int
	start    stamp
	zone     *zone // of DTSTART
	end      *stamp
	endZone  *zone
	duration *icalDuration
	// rid is the RECURRENCE-ID of an override, nil for a master.
	rid           *stamp
	ridZone       *zone
	thisAndFuture bool
	rules         []recurRule
	rdates        []rdate
	exdates       []zonedStamp

	title, location, description string
	transparent, cancelled       bool
	appointmentID                string
}

type zonedStamp struct {
	stamp
	zone *zone
}

// rdate is one RDATE value; a PERIOD brings its own end.
type rdate struct {
	start    zonedStamp
	end      *zonedStamp
	duration *icalDuration
}

func rawRecurrenceID(c *ical.Component) string {
	if p := c.Props.Get(ical.PropRecurrenceID); p != nil {
		return strings.TrimSpace(p.Value)
	}
	return ""
}

// stampZone is the zone a value is read in.
func (x *expander) stampZone(s stamp) *zone {
	switch {
	case s.utc, s.date:
		return utcZone()
	default:
		return x.zones.lookup(s.tzid)
	}
}

func utcZone() *zone { return &zone{loc: time.UTC} }

// parseEvent reads the properties of a VEVENT that Occurrences needs.
func (x *expander) parseEvent(c *ical.Component) (*event, error) {
	ev := &event{uid: strings.TrimSpace(textProp(c, ical.PropUID))}
	if p := c.Props.Get(ical.PropSequence); p != nil {
		ev.seq, _ = strconv.Atoi(strings.TrimSpace(p.Value))
	}
	one := func(name string) (*stamp, error) {
		ps := c.Props.Values(name)
		if len(ps) == 0 {
			return nil, nil
		}
		if len(ps) > 1 {
			return nil, fmt.Errorf("more than one %s", name)
		}
		s, err := parseStamps(&ps[0])
		if err != nil {
			return nil, err
		}
		if len(s) != 1 {
			return nil, fmt.Errorf("%s: want one value", name)
		}
		return &s[0], nil
	}
	var err error
	if ev.rid, err = one(ical.PropRecurrenceID); err != nil {
		return nil, err
	}
	if ev.rid != nil {
		ev.ridZone = x.stampZone(*ev.rid)
		p := c.Props.Get(ical.PropRecurrenceID)
		ev.thisAndFuture = strings.EqualFold(p.Params.Get("RANGE"), "THISANDFUTURE")
	}
	start, err := one(ical.PropDateTimeStart)
	switch {
	case err != nil:
		return nil, err
	case start == nil && ev.rid == nil:
		return nil, errors.New("no DTSTART")
	case start == nil:
		// An override without DTSTART stays where it was.
		start = ev.rid
	}
	ev.start, ev.zone = *start, x.stampZone(*start)
	if ev.end, err = one(ical.PropDateTimeEnd); err != nil {
		return nil, err
	}
	if ev.end != nil {
		ev.endZone = x.stampZone(*ev.end)
	} else if p := c.Props.Get(ical.PropDuration); p != nil {
		d, err := parseDuration(p.Value)
		if err != nil {
			return nil, err
		}
		if d.days < 0 || d.exact < 0 {
			return nil, fmt.Errorf("negative DURATION %s", p.Value)
		}
		ev.duration = &d
	}
	if ev.end != nil {
		s, e := ev.startInstant(ev.start.wall), ev.endInstant(ev.start.wall, ev.startInstant(ev.start.wall))
		if e.Before(s) {
			return nil, fmt.Errorf("DTEND %s before DTSTART %s", ev.end.value, ev.start.value)
		}
	}
	for _, p := range c.Props.Values(ical.PropRecurrenceRule) {
		if strings.TrimSpace(p.Value) == "" {
			continue // an empty RRULE says nothing, like an empty RDATE
		}
		r, err := parseRule(p.Value)
		if err != nil {
			return nil, fmt.Errorf("RRULE: %w", err)
		}
		ev.rules = append(ev.rules, r)
	}
	for _, p := range c.Props.Values(ical.PropExceptionDates) {
		stamps, err := parseStamps(&p)
		if err != nil {
			return nil, err
		}
		for _, s := range stamps {
			ev.exdates = append(ev.exdates, zonedStamp{s, x.stampZone(s)})
		}
	}
	for _, p := range c.Props.Values(ical.PropRecurrenceDates) {
		rds, err := x.parseRDates(&p)
		if err != nil {
			return nil, err
		}
		ev.rdates = append(ev.rdates, rds...)
	}
	ev.title = textProp(c, ical.PropSummary)
	ev.location = textProp(c, ical.PropLocation)
	ev.description = textProp(c, ical.PropDescription)
	ev.transparent = strings.EqualFold(strings.TrimSpace(textProp(c, ical.PropTransparency)), "TRANSPARENT")
	ev.cancelled = strings.EqualFold(strings.TrimSpace(textProp(c, ical.PropStatus)), "CANCELLED")
	ev.appointmentID = strings.TrimSpace(textProp(c, MarkerProperty))
	return ev, nil
}

// parseRDates reads one RDATE property: dates, date-times or periods.
func (x *expander) parseRDates(p *ical.Prop) ([]rdate, error) {
	if !strings.EqualFold(p.Params.Get(ical.ParamValue), string(ical.ValuePeriod)) && !strings.Contains(p.Value, "/") {
		stamps, err := parseStamps(p)
		if err != nil {
			return nil, err
		}
		out := make([]rdate, 0, len(stamps))
		for _, s := range stamps {
			out = append(out, rdate{start: zonedStamp{s, x.stampZone(s)}})
		}
		return out, nil
	}
	tzid := p.Params.Get(ical.PropTimezoneID)
	var out []rdate
	for v := range strings.SplitSeq(p.Value, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		a, b, ok := strings.Cut(v, "/")
		if !ok {
			return nil, fmt.Errorf("RDATE period %q: want start/end", v)
		}
		s, err := parseStamp(a, tzid)
		if err != nil {
			return nil, fmt.Errorf("RDATE: %w", err)
		}
		rd := rdate{start: zonedStamp{s, x.stampZone(s)}}
		if strings.HasPrefix(strings.TrimLeft(b, "+-"), "P") {
			d, err := parseDuration(b)
			if err != nil || d.days < 0 || d.exact < 0 {
				return nil, fmt.Errorf("RDATE period %q: bad duration", v)
			}
			rd.duration = &d
		} else {
			e, err := parseStamp(b, tzid)
			if err != nil {
				return nil, fmt.Errorf("RDATE: %w", err)
			}
			rd.end = &zonedStamp{e, x.stampZone(e)}
		}
		out = append(out, rd)
	}
	return out, nil
}

func (ev *event) allDay() bool { return ev.start.date }

// startInstant is the instant of an instance that starts at wall in the
// event's zone; all-day instances start at midnight UTC of their date.
func (ev *event) startInstant(wall time.Time) time.Time {
	if ev.allDay() {
		return wall
	}
	return ev.zone.instant(wall)
}

// endInstant is the end of the instance that starts at wall (instant s).
// The event's length is kept on the wall clock when DTSTART and DTEND are
// in the same zone (a 1-hour meeting stays 1 hour on the day DST ends),
// and as elapsed time when they are not.
func (ev *event) endInstant(wall, s time.Time) time.Time {
	switch {
	case ev.allDay():
		switch {
		case ev.end != nil:
			days := int(ev.end.wall.Truncate(24*time.Hour).Sub(ev.start.wall) / (24 * time.Hour))
			return wall.AddDate(0, 0, max(days, 1))
		case ev.duration != nil:
			e := wall.AddDate(0, 0, ev.duration.days).Add(ev.duration.exact)
			if !e.After(wall) {
				return wall.AddDate(0, 0, 1)
			}
			return e
		}
		return wall.AddDate(0, 0, 1)
	case ev.end != nil && ev.end.date:
		return ev.zone.instant(wall.Add(ev.end.wall.Sub(ev.start.wall.Truncate(24 * time.Hour))))
	case ev.end != nil && sameZone(ev.start, *ev.end):
		return ev.zone.instant(wall.Add(ev.end.wall.Sub(ev.start.wall)))
	case ev.end != nil:
		return s.Add(ev.endZone.instant(ev.end.wall).Sub(ev.zone.instant(ev.start.wall)))
	case ev.duration != nil:
		return ev.zone.instant(wall.AddDate(0, 0, ev.duration.days)).Add(ev.duration.exact)
	}
	return s
}

func sameZone(a, b stamp) bool { return a.utc == b.utc && a.tzid == b.tzid }

// series is the VEVENTs of one UID: the master and its overrides.
type series struct {
	uid       string
	master    *event
	overrides []*event
}

func (s *series) add(ev *event) {
	if ev.rid == nil {
		if s.master == nil || ev.seq >= s.master.seq {
			s.master = ev
		}
		return
	}
	s.overrides = append(s.overrides, ev)
}

// instance is one instance of a series before it becomes an Occurrence.
type instance struct {
	key        string // RecurrenceID
	start, end time.Time
	ev         *event // whose text and flags it carries
}

// expand returns the occurrences of one series in the window.
func (x *expander) expand(s *series) []Occurrence {
	m := s.master
	// The overrides by the instance they replace; of two for one
	// instance the higher SEQUENCE, then the later, wins.
	overrides := map[string]*event{}
	var future []*event // RANGE=THISANDFUTURE, by original start
	for _, o := range s.overrides {
		k := x.ridKey(o, m)
		if prev := overrides[k]; prev == nil || o.seq >= prev.seq {
			overrides[k] = o
		}
	}
	excluded := map[string]bool{}
	if m != nil {
		for _, e := range m.exdates {
			excluded[x.stampKey(e.stamp, e.zone, m)] = true
		}
	}
	var out []Occurrence
	truncated := false
	emit := func(in instance) bool {
		if !x.overlaps(in.start, in.end) {
			return true
		}
		if len(out) >= MaxOccurrences {
			truncated = true
			return false
		}
		out = append(out, x.occurrence(s, in))
		return true
	}
	for k, o := range overrides {
		if m != nil && excluded[k] {
			continue
		}
		if o.thisAndFuture && m != nil {
			future = append(future, o)
		}
		st := o.startInstant(o.start.wall)
		emit(instance{key: k, start: st, end: x.overrideEnd(o, m, st), ev: o})
	}
	slices.SortFunc(future, func(a, b *event) int { return x.ridTime(a, m).Compare(x.ridTime(b, m)) })
	if m != nil {
		x.expandMaster(s, m, overrides, excluded, future, emit)
	}
	if truncated {
		x.skip(s.uid, "", fmt.Sprintf("more than %d occurrences in the window; the rest of the series is left out", MaxOccurrences))
	}
	return out
}

// overrideEnd is the end of an override that starts at st. Without DTEND
// and DURATION an override keeps the master's length.
func (x *expander) overrideEnd(o, m *event, st time.Time) time.Time {
	if o.end == nil && o.duration == nil && m != nil && !o.allDay() && !m.allDay() {
		ms := m.startInstant(m.start.wall)
		return st.Add(m.endInstant(m.start.wall, ms).Sub(ms))
	}
	return o.endInstant(o.start.wall, st)
}

// expandMaster adds the master's instances: DTSTART, its rules and
// RDATEs, less EXDATEs and the instances overrides replace.
func (x *expander) expandMaster(s *series, m *event, overrides map[string]*event, excluded map[string]bool, future []*event, emit func(instance) bool) {
	recurring := len(m.rules) > 0 || len(m.rdates) > 0
	seen := map[string]bool{}
	// add turns one instance start (wall reading in the master's zone)
	// into an occurrence; it reports whether to go on.
	add := func(wall time.Time, own *rdate) bool {
		st := m.startInstant(wall)
		key := instanceKey(m, wall, st)
		if seen[key] || excluded[key] || overrides[key] != nil {
			return true
		}
		seen[key] = true
		end := m.endInstant(wall, st)
		if own != nil {
			switch {
			case own.end != nil:
				end = own.end.zone.instant(own.end.wall)
				if m.allDay() {
					end = own.end.wall
				}
			case own.duration != nil:
				end = m.zone.instant(wall.AddDate(0, 0, own.duration.days)).Add(own.duration.exact)
				if m.allDay() {
					end = wall.AddDate(0, 0, own.duration.days).Add(own.duration.exact)
				}
			}
			if end.Before(st) {
				end = st
			}
		}
		in := instance{key: key, start: st, end: end, ev: m}
		if !recurring {
			in.key = ""
		}
		// The latest THISANDFUTURE override at or before this instance
		// moves it as it moved its own.
		for i := len(future) - 1; i >= 0; i-- {
			o := future[i]
			rt := x.ridTime(o, m)
			if rt.After(st) {
				continue
			}
			ost := o.startInstant(o.start.wall)
			shift := ost.Sub(rt)
			length := x.overrideEnd(o, m, ost).Sub(ost)
			in.start = st.Add(shift)
			in.end = in.start.Add(length)
			in.ev = o
			break
		}
		return emit(in)
	}
	if !add(m.start.wall, nil) {
		return
	}
	for i := range m.rdates {
		rd := &m.rdates[i]
		if !add(x.inZoneOf(m, rd.start), rd) {
			return
		}
	}
	if len(m.rules) == 0 {
		return
	}
	// The wall readings to expand: the window, widened by the event's
	// length, the largest THISANDFUTURE shift and two days for offsets.
	ms := m.startInstant(m.start.wall)
	margin := m.endInstant(m.start.wall, ms).Sub(ms) + 48*time.Hour
	for _, o := range future {
		shift := o.startInstant(o.start.wall).Sub(x.ridTime(o, m))
		margin += max(shift, -shift)
	}
	lo, hi := x.from.Add(-margin), x.to.Add(margin)
	for _, r := range m.rules {
		if x.rulesLeft--; x.rulesLeft < 0 {
			x.skip(s.uid, "", fmt.Sprintf("more than %d recurrence rules in one calendar object; the rest are not expanded", maxRules))
			return
		}
		exp := expansion{rule: r, dtstart: m.start, toInstant: m.zone.instant, lo: lo, hi: hi, maxWalk: maxWalk}
		stopped := false
		truncated, err := exp.run(func(wall time.Time) bool {
			if !add(wall, nil) {
				stopped = true
				return false
			}
			return true
		})
		switch {
		case stopped:
			return
		case truncated:
			x.skip(s.uid, "", fmt.Sprintf("recurrence rule stopped after %d instances", maxWalk))
		case err != nil && !errors.Is(err, errNeverMatches):
			x.skip(s.uid, "", "recurrence rule: "+err.Error())
		}
	}
}

// inZoneOf returns the wall reading, in the master's zone, of a value
// written in another zone or type.
func (x *expander) inZoneOf(m *event, z zonedStamp) time.Time {
	switch {
	case m.allDay():
		if z.date {
			return z.wall
		}
		return z.wall.Truncate(24 * time.Hour)
	case z.date:
		// A date on a timed event: that day, at DTSTART's time of day.
		return z.wall.Add(m.start.wall.Sub(m.start.wall.Truncate(24 * time.Hour)))
	case sameZone(m.start, z.stamp):
		return z.wall
	}
	return m.zone.wall(z.zone.instant(z.wall))
}

// instanceKey is the RecurrenceID of the instance that starts at wall
// (instant st).
func instanceKey(m *event, wall, st time.Time) string {
	if m.allDay() {
		return wall.Format(time.DateOnly)
	}
	return st.UTC().Format(time.RFC3339)
}

// stampKey is the RecurrenceID an EXDATE or RECURRENCE-ID value names in
// the series of m.
func (x *expander) stampKey(s stamp, z *zone, m *event) string {
	if m == nil {
		if s.date {
			return s.wall.Format(time.DateOnly)
		}
		return z.instant(s.wall).UTC().Format(time.RFC3339)
	}
	wall := x.inZoneOf(m, zonedStamp{s, z})
	return instanceKey(m, wall, m.startInstant(wall))
}

func (x *expander) ridKey(o, m *event) string { return x.stampKey(*o.rid, o.ridZone, m) }

// ridTime is the original start of the instance an override replaces.
func (x *expander) ridTime(o, m *event) time.Time {
	if m == nil {
		return o.ridZone.instant(o.rid.wall)
	}
	return m.startInstant(x.inZoneOf(m, zonedStamp{*o.rid, o.ridZone}))
}

// overlaps reports whether [start, end) meets the window; a zero-length
// occurrence meets it when it starts inside.
func (x *expander) overlaps(start, end time.Time) bool {
	if !end.After(start) {
		return !start.Before(x.from) && start.Before(x.to)
	}
	return start.Before(x.to) && end.After(x.from)
}

func (x *expander) occurrence(s *series, in instance) Occurrence {
	ev := in.ev
	o := Occurrence{
		UID:          s.uid,
		RecurrenceID: in.key,
		Start:        in.start.UTC(),
		End:          in.end.UTC(),
		AllDay:       ev.allDay(),
		Transparent:  ev.transparent,
		Cancelled:    ev.cancelled || (s.master != nil && s.master.cancelled),
		Title:        ev.title,
		Location:     ev.location,
		Description:  ev.description,
	}
	if !o.AllDay && !ev.start.utc {
		o.TimeZone = ev.zone.name
	}
	o.AppointmentID = ev.appointmentID
	if o.AppointmentID == "" && s.master != nil {
		o.AppointmentID = s.master.appointmentID
	}
	o.Ours = o.AppointmentID != ""
	return o
}
