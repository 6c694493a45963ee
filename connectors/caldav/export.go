package caldav

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-ical"
)

// Appointment is what EncodeAppointment writes into a calendar: the
// booking system's appointment, as push sync has it.
type Appointment struct {
	ID                           string // the booking system's id; see EncodeAppointment for what it may hold
	Title, Location, Description string
	// TimeZone is the IANA zone the appointment is booked in; "" or
	// "UTC" writes UTC times. Ignored for all-day appointments.
	TimeZone string
	// Start and End are the instants of a timed appointment.
	Start, End time.Time
	// AllDay appointments have StartDate and EndDate (YYYY-MM-DD, EndDate
	// exclusive) instead of Start and End.
	AllDay             bool
	StartDate, EndDate string
	// Status is confirmed, cancelled or tentative.
	Status string
	// Sequence counts the appointment's changes (RFC 5545 SEQUENCE);
	// Updated is when it last changed, written as DTSTAMP.
	Sequence int
	Updated  time.Time
}

// productID is the PRODID of the calendar objects termind writes.
const productID = "-//termind//termind//EN"

// maxAppointmentIDLen bounds the id, which becomes part of a UID and of a
// resource name.
const maxAppointmentIDLen = 200

// EncodeAppointment returns the calendar object of termind's copy of a.
// The same appointment always encodes to the same bytes (DTSTAMP is
// a.Updated, not the time of encoding), so writing it again is a no-op
// for servers and ContentHash.
//
// The VEVENT has UID EventUID(a.ID) and MarkerProperty, so it is known as
// ours and never imported as busy time. Timed appointments are written
// with TZID=<IANA name> and a VTIMEZONE for that zone, generated from
// Go's zone data for the years around the appointment; UTC ones with Z.
// Text is escaped (RFC 5545 3.3.11) and lines are folded at 75 octets.
// No ATTENDEE or ORGANIZER is written, ever: servers would send
// invitations.
//
// a.ID may hold letters, digits and . _ ~ @ : + = -; anything else could
// not be matched back from the marker and resource name reliably.
func EncodeAppointment(a Appointment) ([]byte, error) {
	if err := checkAppointmentID(a.ID); err != nil {
		return nil, fmt.Errorf("caldav: encode appointment: %w", err)
	}
	status := strings.ToUpper(strings.TrimSpace(a.Status))
	switch status {
	case "CONFIRMED", "CANCELLED", "TENTATIVE":
	default:
		return nil, fmt.Errorf("caldav: encode appointment %s: status %q: want confirmed, cancelled or tentative", a.ID, a.Status)
	}
	if a.Sequence < 0 {
		return nil, fmt.Errorf("caldav: encode appointment %s: negative sequence %d", a.ID, a.Sequence)
	}
	if a.Updated.IsZero() {
		return nil, fmt.Errorf("caldav: encode appointment %s: Updated is required (it is the DTSTAMP)", a.ID)
	}

	cal := ical.NewCalendar()
	cal.Props.Set(&ical.Prop{Name: ical.PropVersion, Params: ical.Params{}, Value: "2.0"})
	cal.Props.Set(&ical.Prop{Name: ical.PropProductID, Params: ical.Params{}, Value: productID})
	cal.Props.Set(&ical.Prop{Name: ical.PropCalendarScale, Params: ical.Params{}, Value: "GREGORIAN"})

	ev := ical.NewEvent()
	set := func(name, value string, params ical.Params) {
		if params == nil {
			params = ical.Params{}
		}
		ev.Props.Set(&ical.Prop{Name: name, Params: params, Value: value})
	}
	set(ical.PropUID, EventUID(a.ID), nil)
	set(MarkerProperty, a.ID, nil)
	set(ical.PropDateTimeStamp, a.Updated.UTC().Format("20060102T150405Z"), nil)
	set(ical.PropSequence, fmt.Sprint(a.Sequence), nil)
	set(ical.PropStatus, status, nil)
	set(ical.PropTransparency, "OPAQUE", nil)
	set(ical.PropSummary, escapeText(a.Title), nil)
	if a.Location != "" {
		set(ical.PropLocation, escapeText(a.Location), nil)
	}
	if a.Description != "" {
		set(ical.PropDescription, escapeText(a.Description), nil)
	}

	if a.AllDay {
		start, err1 := time.Parse(time.DateOnly, a.StartDate)
		end, err2 := time.Parse(time.DateOnly, a.EndDate)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("caldav: encode appointment %s: all-day dates: %w", a.ID, err)
		}
		if !end.After(start) {
			return nil, fmt.Errorf("caldav: encode appointment %s: EndDate %s not after StartDate %s", a.ID, a.EndDate, a.StartDate)
		}
		dateParam := ical.Params{ical.ParamValue: {string(ical.ValueDate)}}
		set(ical.PropDateTimeStart, start.Format("20060102"), dateParam)
		set(ical.PropDateTimeEnd, end.Format("20060102"), ical.Params{ical.ParamValue: {string(ical.ValueDate)}})
	} else {
		if a.Start.IsZero() || a.End.Before(a.Start) {
			return nil, fmt.Errorf("caldav: encode appointment %s: End %s before Start %s", a.ID, a.End.Format(time.RFC3339), a.Start.Format(time.RFC3339))
		}
		name := strings.TrimSpace(a.TimeZone)
		if name == "" || name == "UTC" || name == "Etc/UTC" {
			set(ical.PropDateTimeStart, a.Start.UTC().Format("20060102T150405Z"), nil)
			set(ical.PropDateTimeEnd, a.End.UTC().Format("20060102T150405Z"), nil)
		} else {
			if strings.EqualFold(name, "Local") {
				return nil, fmt.Errorf("caldav: encode appointment %s: time zone %q: want an IANA name", a.ID, a.TimeZone)
			}
			loc, err := time.LoadLocation(name)
			if err != nil {
				return nil, fmt.Errorf("caldav: encode appointment %s: time zone: %w", a.ID, err)
			}
			tzid := ical.Params{ical.PropTimezoneID: {name}}
			set(ical.PropDateTimeStart, a.Start.In(loc).Format("20060102T150405"), tzid)
			set(ical.PropDateTimeEnd, a.End.In(loc).Format("20060102T150405"), ical.Params{ical.PropTimezoneID: {name}})
			cal.Children = append(cal.Children, vtimezone(name, loc, a.Start.Year()-1, a.End.Year()+1))
		}
	}
	cal.Children = append(cal.Children, ev.Component)

	var buf bytes.Buffer
	if err := ical.NewEncoder(&buf).Encode(cal); err != nil {
		return nil, fmt.Errorf("caldav: encode appointment %s: %w", a.ID, err)
	}
	return foldLines(buf.Bytes()), nil
}

func checkAppointmentID(id string) error {
	if id == "" {
		return errors.New("empty appointment id")
	}
	if len(id) > maxAppointmentIDLen {
		return fmt.Errorf("appointment id longer than %d bytes", maxAppointmentIDLen)
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._~@:+=-", c)
		if !ok {
			return fmt.Errorf("appointment id %q: character %q not allowed", id, c)
		}
	}
	return nil
}

// vtimezone describes loc from the start of year first to the end of
// year last: one observance for the offset at the start and one for each
// change of offset, found in Go's zone data. Explicit onsets rather than
// RRULEs are what the data gives without guessing the rule, and cover
// every year the appointment touches.
func vtimezone(name string, loc *time.Location, first, last int) *ical.Component {
	vtz := ical.NewComponent(ical.CompTimezone)
	vtz.Props.Set(&ical.Prop{Name: ical.PropTimezoneID, Params: ical.Params{}, Value: name})
	begin := time.Date(first, 1, 1, 0, 0, 0, 0, loc)
	end := time.Date(last+1, 1, 1, 0, 0, 0, 0, loc)

	abbr, off := begin.Zone()
	vtz.Children = append(vtz.Children, observance(begin.IsDST(), begin.UTC().Add(time.Duration(off)*time.Second), off, off, abbr))
	// Offsets change at most a few times a year; a step of a week finds
	// every change of real zones, and each is then narrowed to the second.
	const step = 7 * 24 * time.Hour
	for t := begin; t.Before(end); {
		next := t.Add(step)
		_, o1 := t.Zone()
		_, o2 := next.Zone()
		if o1 == o2 {
			t = next
			continue
		}
		lo, hi := t, next
		for hi.Sub(lo) > time.Second {
			mid := lo.Add(hi.Sub(lo) / 2)
			if _, o := mid.Zone(); o == o1 {
				lo = mid
			} else {
				hi = mid
			}
		}
		at := hi.In(loc)
		abbr, to := at.Zone()
		// The onset is written in local time before the change.
		vtz.Children = append(vtz.Children, observance(at.IsDST(), at.UTC().Add(time.Duration(o1)*time.Second), o1, to, abbr))
		t = hi
	}
	return vtz
}

func observance(dst bool, wall time.Time, from, to int, abbr string) *ical.Component {
	name := ical.CompTimezoneStandard
	if dst {
		name = ical.CompTimezoneDaylight
	}
	c := ical.NewComponent(name)
	c.Props.Set(&ical.Prop{Name: ical.PropDateTimeStart, Params: ical.Params{}, Value: wall.Format("20060102T150405")})
	c.Props.Set(&ical.Prop{Name: ical.PropTimezoneOffsetFrom, Params: ical.Params{}, Value: formatUTCOffset(from)})
	c.Props.Set(&ical.Prop{Name: ical.PropTimezoneOffsetTo, Params: ical.Params{}, Value: formatUTCOffset(to)})
	if abbr != "" {
		c.Props.Set(&ical.Prop{Name: ical.PropTimezoneName, Params: ical.Params{}, Value: escapeText(abbr)})
	}
	return c
}

// formatUTCOffset writes seconds east of UTC as ±hhmm, or ±hhmmss when
// the offset has seconds (historical zones).
func formatUTCOffset(sec int) string {
	sign := '+'
	if sec < 0 {
		sign, sec = '-', -sec
	}
	s := fmt.Sprintf("%c%02d%02d", sign, sec/3600, sec%3600/60)
	if sec%60 != 0 {
		s += fmt.Sprintf("%02d", sec%60)
	}
	return s
}
