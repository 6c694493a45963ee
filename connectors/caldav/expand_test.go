package caldav_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/connectors/caldav"
)

// line writes an occurrence in one comparable line:
// start..end recurrence-id "title" tz=… and its flags.
func line(o caldav.Occurrence) string {
	s := fmt.Sprintf("%s..%s rid=%s %q tz=%s", o.Start.Format(time.RFC3339), o.End.Format(time.RFC3339), o.RecurrenceID, o.Title, o.TimeZone)
	if o.AllDay {
		s += " allday"
	}
	if o.Cancelled {
		s += " cancelled"
	}
	if o.Transparent {
		s += " transparent"
	}
	if o.Ours {
		s += " ours=" + o.AppointmentID
	}
	return s
}

func lines(occ []caldav.Occurrence) []string {
	out := []string{}
	for _, o := range occ {
		out = append(out, line(o))
	}
	return out
}

func berlin(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestOccurrencesOfFiles checks exact results on real-world files (copied
// from the corpus into testdata, see testdata/README.md) and on files
// written for these tests.
func TestOccurrencesOfFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file string
		from, to   string
		floating   *time.Location
		want       []string
	}{
		{
			name: "weekly 09:00 Berlin stays 09:00 local across the October change",
			file: "weekly_berlin_dst.ics", from: "2026-10-19T00:00:00Z", to: "2026-11-05T00:00:00Z",
			want: []string{
				`2026-10-20T07:00:00Z..2026-10-20T08:00:00Z rid=2026-10-20T07:00:00Z "Team, weekly" tz=Europe/Berlin`,
				`2026-10-28T13:00:00Z..2026-10-28T14:30:00Z rid=2026-10-27T08:00:00Z "Team (moved)" tz=Europe/Berlin`,
				`2026-11-03T08:00:00Z..2026-11-03T09:00:00Z rid=2026-11-03T08:00:00Z "Team, weekly" tz=Europe/Berlin`,
			},
		},
		{
			name: "weekly 09:00 Berlin across the March change, with a cancelled instance",
			file: "weekly_berlin_dst.ics", from: "2027-03-20T00:00:00Z", to: "2027-04-01T00:00:00Z",
			want: []string{
				`2027-03-23T08:00:00Z..2027-03-23T09:00:00Z rid=2027-03-23T08:00:00Z "Team, weekly" tz=Europe/Berlin cancelled`,
				`2027-03-30T07:00:00Z..2027-03-30T08:00:00Z rid=2027-03-30T07:00:00Z "Team, weekly" tz=Europe/Berlin`,
			},
		},
		{
			name: "EXDATE removes the instance", file: "weekly_berlin_dst.ics",
			from: "2026-11-28T00:00:00Z", to: "2026-12-05T00:00:00Z", want: []string{},
		},
		{
			name: "an override moves its instance out of the window", file: "weekly_berlin_dst.ics",
			from: "2026-10-27T00:00:00Z", to: "2026-10-28T00:00:00Z", want: []string{},
		},
		{
			name: "an override moves its instance into the window", file: "weekly_berlin_dst.ics",
			from: "2026-10-28T12:00:00Z", to: "2026-10-29T00:00:00Z",
			want: []string{`2026-10-28T13:00:00Z..2026-10-28T14:30:00Z rid=2026-10-27T08:00:00Z "Team (moved)" tz=Europe/Berlin`},
		},
		{
			name: "UNTIL in UTC is inclusive", file: "weekly_berlin_dst.ics",
			from: "2027-04-13T00:00:00Z", to: "2027-05-01T00:00:00Z",
			want: []string{`2027-04-13T07:00:00Z..2027-04-13T08:00:00Z rid=2027-04-13T07:00:00Z "Team, weekly" tz=Europe/Berlin`},
		},
		{
			name: "each week but one deleted (EXDATE in UTC, VTIMEZONE present)",
			file: "recurring-ical-events/each_week_but_one_deleted.ics", from: "2019-03-01T00:00:00Z", to: "2019-05-01T00:00:00Z",
			want: []string{
				`2019-03-03T23:30:00Z..2019-03-04T00:00:00Z rid=2019-03-03T23:30:00Z "test6" tz=Europe/Berlin`,
				`2019-03-17T23:30:00Z..2019-03-18T00:00:00Z rid=2019-03-17T23:30:00Z "test6" tz=Europe/Berlin`,
				`2019-03-24T23:30:00Z..2019-03-25T00:00:00Z rid=2019-03-24T23:30:00Z "test6" tz=Europe/Berlin`,
				`2019-03-31T22:30:00Z..2019-03-31T23:00:00Z rid=2019-03-31T22:30:00Z "test6" tz=Europe/Berlin`,
				`2019-04-07T22:30:00Z..2019-04-07T23:00:00Z rid=2019-04-07T22:30:00Z "test6" tz=Europe/Berlin`,
				`2019-04-14T22:30:00Z..2019-04-14T23:00:00Z rid=2019-04-14T22:30:00Z "test6" tz=Europe/Berlin`,
				`2019-04-21T22:30:00Z..2019-04-21T23:00:00Z rid=2019-04-21T22:30:00Z "test6" tz=Europe/Berlin`,
			},
		},
		{
			name: "moved and edited instances",
			file: "recurring-ical-events/recurring_events_moved.ics", from: "2019-03-01T00:00:00Z", to: "2019-04-01T00:00:00Z",
			want: []string{
				`2019-03-07T01:00:00Z..2019-03-07T02:00:00Z rid=2019-03-07T01:00:00Z "New Event" tz=Europe/Berlin`,
				`2019-03-08T00:00:00Z..2019-03-08T01:00:00Z rid=2019-03-08T01:00:00Z "New Event" tz=Europe/Berlin`,
				`2019-03-09T02:00:00Z..2019-03-09T03:00:00Z rid=2019-03-09T01:00:00Z "New Event" tz=Europe/Berlin`,
				`2019-03-10T01:00:00Z..2019-03-10T02:00:00Z rid=2019-03-10T01:00:00Z "New Event" tz=Europe/Berlin`,
				`2019-03-18T03:00:00Z..2019-03-18T04:00:00Z rid=2019-03-18T03:00:00Z "test7" tz=Europe/Berlin`,
				`2019-03-19T03:00:00Z..2019-03-19T04:00:00Z rid=2019-03-19T03:00:00Z "test7 - edited" tz=Europe/Berlin`,
				`2019-03-20T03:00:00Z..2019-03-20T04:00:00Z rid=2019-03-20T03:00:00Z "test7" tz=Europe/Berlin`,
			},
		},
		{
			name: "an override with STATUS:CANCELLED",
			file: "recurring-ical-events/issue_18_cancel_status.ics", from: "2020-01-01T00:00:00Z", to: "2020-02-01T00:00:00Z",
			want: []string{
				`2020-01-28T21:00:00Z..2020-01-28T22:00:00Z rid=2020-01-28T21:00:00Z "one is cancelled" tz=Europe/Berlin`,
				`2020-01-29T21:00:00Z..2020-01-29T22:00:00Z rid=2020-01-29T21:00:00Z "one is cancelled" tz=Europe/Berlin cancelled`,
				`2020-01-30T21:00:00Z..2020-01-30T22:00:00Z rid=2020-01-30T21:00:00Z "one is cancelled" tz=Europe/Berlin`,
			},
		},
		{
			name: "RDATE on an RRULE instance counts once",
			file: "recurring-ical-events/rdate.ics", from: "2014-07-04T00:00:00Z", to: "2014-07-07T00:00:00Z",
			want: []string{
				`2014-07-04T19:00:00Z..2014-07-04T21:00:00Z rid=2014-07-04T19:00:00Z "rdate and rrule overlap" tz=`,
				`2014-07-05T19:00:00Z..2014-07-05T21:00:00Z rid=2014-07-05T19:00:00Z "rdate and rrule overlap" tz=`,
				`2014-07-06T19:00:00Z..2014-07-06T21:00:00Z rid=2014-07-06T19:00:00Z "rdate and rrule overlap" tz=`,
			},
		},
		{
			name: "EXDATE removes an RDATE",
			file: "recurring-ical-events/rdate.ics", from: "2015-07-04T00:00:00Z", to: "2015-07-07T00:00:00Z",
			want: []string{
				`2015-07-04T19:00:00Z..2015-07-04T21:00:00Z rid=2015-07-04T19:00:00Z "rdate and rrule overlap but exdate removes the date again" tz=`,
				`2015-07-06T19:00:00Z..2015-07-06T21:00:00Z rid=2015-07-06T19:00:00Z "rdate and rrule overlap but exdate removes the date again" tz=`,
			},
		},
		{
			name: "RDATE without RRULE, removed by EXDATE",
			file: "recurring-ical-events/rdate.ics", from: "2024-08-01T00:00:00Z", to: "2025-12-31T00:00:00Z",
			want: []string{
				`2024-08-03T19:00:00Z..2024-08-03T21:00:00Z rid=2024-08-03T19:00:00Z "rdate but exdate removes the date again" tz=`,
			},
		},
		{
			name: "one all-day event", file: "recurring-ical-events/one_day_event.ics",
			from: "2019-03-04T12:00:00Z", to: "2019-03-05T00:00:00Z",
			want: []string{`2019-03-04T00:00:00Z..2019-03-05T00:00:00Z rid= "test2" tz= allday`},
		},
		{
			name: "DURATION on all-day and timed events; no DTEND is zero length",
			file: "recurring-ical-events/duration.ics", from: "2018-01-01T00:00:00Z", to: "2018-02-01T00:00:00Z",
			want: []string{
				`2018-01-10T00:00:00Z..2018-01-13T00:00:00Z rid= "Duration Event 1" tz= allday`,
				`2018-01-15T10:00:00Z..2018-01-15T13:00:00Z rid= "Duration Event 2" tz=`,
				`2018-01-20T12:00:00Z..2018-01-20T12:00:00Z rid= "Short event" tz=`,
			},
		},
		{
			name: "RANGE=THISANDFUTURE moves the later instances",
			file: "recurring-ical-events/issue_75_range_parameter.ics", from: "2024-09-12T00:00:00Z", to: "2024-09-23T00:00:00Z",
			want: []string{
				`2024-09-13T09:00:00Z..2024-09-13T16:00:00Z rid=2024-09-13T12:00:00Z "MODIFIED EVENT" tz=`,
				`2024-09-14T06:00:00Z..2024-09-14T13:00:00Z rid=2024-09-14T09:00:00Z "MODIFIED EVENT" tz=`,
				`2024-09-15T17:00:00Z..2024-09-15T19:00:00Z rid=2024-09-15T12:00:00Z "MODIFIED EVENT" tz=`,
				`2024-09-17T09:00:00Z..2024-09-17T16:00:00Z rid=2024-09-17T12:00:00Z "MODIFIED EVENT" tz=`,
				`2024-09-19T09:00:00Z..2024-09-19T16:00:00Z rid=2024-09-19T12:00:00Z "MODIFIED EVENT" tz=`,
				`2024-09-22T14:22:00Z..2024-09-22T16:13:00Z rid=2024-09-21T12:00:00Z "EDITED EVENT" tz=`,
			},
		},
		{
			name: "an override of an instance EXDATE removed stays removed",
			file: "recurring-ical-events/issue_163_deleted_modification.ics", from: "2024-08-01T00:00:00Z", to: "2024-09-30T00:00:00Z",
			want: []string{
				`2024-07-29T00:00:00Z..2024-08-05T00:00:00Z rid=2024-07-29 "test123" tz= allday`,
				`2024-09-09T00:00:00Z..2024-09-16T00:00:00Z rid=2024-09-09 "test123" tz= allday`,
			},
		},
		{
			name: "Exchange export: TZID Europe/Berlin, floating UNTIL, EXDATE in UTC",
			file: "recurring-ical-events/issue_27_t1.ics", from: "2020-04-01T00:00:00Z", to: "2020-05-01T00:00:00Z",
			want: []string{
				`2020-04-26T12:00:00Z..2020-04-26T12:30:00Z rid=2020-04-26T12:00:00Z "Reoccur" tz=Europe/Berlin`,
				`2020-04-28T12:00:00Z..2020-04-28T12:30:00Z rid=2020-04-28T12:00:00Z "Reoccur" tz=Europe/Berlin`,
			},
		},
		{
			name: "Outlook: Windows zone name",
			file: "outlook_windows_tzid.ics", from: "2026-10-01T00:00:00Z", to: "2026-12-01T00:00:00Z",
			want: []string{
				`2026-10-23T06:30:00Z..2026-10-23T07:00:00Z rid=2026-10-23T06:30:00Z "Sprechstunde" tz=Europe/Berlin`,
				`2026-10-30T07:30:00Z..2026-10-30T08:00:00Z rid=2026-10-30T07:30:00Z "Sprechstunde" tz=Europe/Berlin`,
				`2026-11-06T07:30:00Z..2026-11-06T08:00:00Z rid=2026-11-06T07:30:00Z "Sprechstunde" tz=Europe/Berlin`,
			},
		},
		{
			name: "Google export: an override moved before its original date, transparent",
			file: "recurring-ical-events/issue_62_moved_event.ics", from: "2021-11-01T00:00:00Z", to: "2022-01-01T00:00:00Z",
			want: []string{
				`2021-11-26T20:30:00Z..2021-11-26T20:30:00Z rid=2021-11-26T20:30:00Z "Karaoke" tz=Europe/Berlin transparent`,
				`2021-12-17T20:30:00Z..2021-12-17T20:30:00Z rid=2021-12-31T20:30:00Z "Karaoke" tz=Europe/Berlin transparent`,
			},
		},
		{
			name: "Google export: the original date of the moved instance is empty",
			file: "recurring-ical-events/issue_62_moved_event.ics", from: "2021-12-30T00:00:00Z", to: "2022-01-02T00:00:00Z",
			want: []string{},
		},
		{
			name: "custom TZID defined by a VTIMEZONE (several observances, RDATE, UNTIL)",
			file: "icalendar/america_new_york.ics", from: "2014-08-01T00:00:00Z", to: "2014-09-01T00:00:00Z",
			want: []string{`2014-08-29T12:00:00Z..2014-08-29T14:00:00Z rid= "an event with a custom tz name" tz=custom_America/New_York`},
		},
		{
			name: "custom TZID defined by a VTIMEZONE, across the October change",
			file: "custom_vtimezone.ics", from: "2026-10-01T00:00:00Z", to: "2026-11-01T00:00:00Z",
			want: []string{
				`2026-10-20T07:00:00Z..2026-10-20T07:45:00Z rid=2026-10-20T07:00:00Z "Custom zone" tz=Mitteleuropa (Büro)`,
				`2026-10-27T08:00:00Z..2026-10-27T08:45:00Z rid=2026-10-27T08:00:00Z "Custom zone" tz=Mitteleuropa (Büro)`,
			},
		},
		{
			name: "unknown TZID without VTIMEZONE is read in the connection's zone",
			file: "icalendar/issue_722_missing_VTIMEZONE_custom.ics", from: "2014-08-29T00:00:00Z", to: "2014-08-30T00:00:00Z",
			floating: berlin(t),
			want:     []string{`2014-08-29T06:00:00Z..2014-08-29T06:00:00Z rid= "" tz=CUSTOM_tzid`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cal := mustParse(t, readFile(t, filepath.Join("testdata", tt.file)))
			occ, err := caldav.Occurrences(cal, utc(tt.from), utc(tt.to), tt.floating)
			if err != nil {
				t.Fatalf("Occurrences: %v", err)
			}
			if got := lines(occ); !slices.Equal(got, tt.want) {
				t.Errorf("occurrences:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}

// event builds a calendar object with the given VEVENT lines.
func event(props ...string) []byte {
	all := []string{"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//termind//tests//EN", "BEGIN:VEVENT", "UID:e1", "DTSTAMP:20260101T000000Z"}
	all = append(all, props...)
	return crlf(append(all, "END:VEVENT", "END:VCALENDAR")...)
}

func TestOccurrencesBehaviour(t *testing.T) {
	t.Parallel()
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		data     []byte
		from, to string
		floating *time.Location
		want     []string
	}{
		{
			name: "floating time in the connection's zone",
			data: event("DTSTART:20260105T090000", "DTEND:20260105T100000", "SUMMARY:f"),
			from: "2026-01-05T00:00:00Z", to: "2026-01-06T00:00:00Z", floating: berlin(t),
			want: []string{`2026-01-05T08:00:00Z..2026-01-05T09:00:00Z rid= "f" tz=`},
		},
		{
			name: "floating time without a connection zone uses X-WR-TIMEZONE",
			data: crlf("BEGIN:VCALENDAR", "X-WR-TIMEZONE:America/New_York", "BEGIN:VEVENT", "UID:e1", "DTSTART:20260105T090000", "SUMMARY:f", "END:VEVENT", "END:VCALENDAR"),
			from: "2026-01-05T00:00:00Z", to: "2026-01-06T00:00:00Z",
			want: []string{`2026-01-05T14:00:00Z..2026-01-05T14:00:00Z rid= "f" tz=`},
		},
		{
			name: "the connection zone wins over X-WR-TIMEZONE",
			data: crlf("BEGIN:VCALENDAR", "X-WR-TIMEZONE:Europe/Berlin", "BEGIN:VEVENT", "UID:e1", "DTSTART:20260105T090000", "SUMMARY:f", "END:VEVENT", "END:VCALENDAR"),
			from: "2026-01-05T00:00:00Z", to: "2026-01-06T00:00:00Z", floating: newYork,
			want: []string{`2026-01-05T14:00:00Z..2026-01-05T14:00:00Z rid= "f" tz=`},
		},
		{
			name: "floating time with neither is UTC",
			data: event("DTSTART:20260105T090000", "SUMMARY:f"),
			from: "2026-01-05T00:00:00Z", to: "2026-01-06T00:00:00Z",
			want: []string{`2026-01-05T09:00:00Z..2026-01-05T09:00:00Z rid= "f" tz=`},
		},
		{
			name: "TZID as a path ending in an IANA name",
			data: event("DTSTART;TZID=/mozilla.org/20070129_1/America/New_York:20260105T090000", "DURATION:PT30M", "SUMMARY:p"),
			from: "2026-01-05T00:00:00Z", to: "2026-01-06T00:00:00Z",
			want: []string{`2026-01-05T14:00:00Z..2026-01-05T14:30:00Z rid= "p" tz=America/New_York`},
		},
		{
			name: "a time skipped in spring is read with the offset before",
			data: event("DTSTART;TZID=Europe/Berlin:20260329T023000", "SUMMARY:gap"),
			from: "2026-03-29T00:00:00Z", to: "2026-03-30T00:00:00Z",
			want: []string{`2026-03-29T01:30:00Z..2026-03-29T01:30:00Z rid= "gap" tz=Europe/Berlin`},
		},
		{
			name: "a time that occurs twice in autumn is the first",
			data: event("DTSTART;TZID=Europe/Berlin:20261025T023000", "SUMMARY:twice"),
			from: "2026-10-25T00:00:00Z", to: "2026-10-26T00:00:00Z",
			want: []string{`2026-10-25T00:30:00Z..2026-10-25T00:30:00Z rid= "twice" tz=Europe/Berlin`},
		},
		{
			name: "P1D across the DST change is a calendar day",
			data: event("DTSTART;TZID=Europe/Berlin:20261024T120000", "DURATION:P1D", "SUMMARY:d"),
			from: "2026-10-24T00:00:00Z", to: "2026-10-26T00:00:00Z",
			want: []string{`2026-10-24T10:00:00Z..2026-10-25T11:00:00Z rid= "d" tz=Europe/Berlin`},
		},
		{
			name: "all-day without DTEND is one day; multi-day all-day with exclusive DTEND",
			data: crlf("BEGIN:VCALENDAR", "BEGIN:VEVENT", "UID:a", "DTSTART;VALUE=DATE:20260105", "SUMMARY:one", "END:VEVENT",
				"BEGIN:VEVENT", "UID:b", "DTSTART;VALUE=DATE:20260105", "DTEND;VALUE=DATE:20260108", "SUMMARY:three", "END:VEVENT", "END:VCALENDAR"),
			from: "2026-01-01T00:00:00Z", to: "2026-02-01T00:00:00Z",
			want: []string{
				`2026-01-05T00:00:00Z..2026-01-06T00:00:00Z rid= "one" tz= allday`,
				`2026-01-05T00:00:00Z..2026-01-08T00:00:00Z rid= "three" tz= allday`,
			},
		},
		{
			name: "the window is half-open and occurrences overlapping it count",
			data: event("DTSTART:20260105T090000Z", "DTEND:20260105T100000Z", "RRULE:FREQ=DAILY;COUNT=3", "SUMMARY:w"),
			from: "2026-01-05T09:59:00Z", to: "2026-01-07T09:00:00Z",
			want: []string{
				`2026-01-05T09:00:00Z..2026-01-05T10:00:00Z rid=2026-01-05T09:00:00Z "w" tz=`,
				`2026-01-06T09:00:00Z..2026-01-06T10:00:00Z rid=2026-01-06T09:00:00Z "w" tz=`,
			},
		},
		{
			name: "a zero-length event at the window's end is outside",
			data: event("DTSTART:20260105T090000Z", "SUMMARY:z"),
			from: "2026-01-05T08:00:00Z", to: "2026-01-05T09:00:00Z",
			want: []string{},
		},
		{
			name: "our own copy is marked",
			data: event("DTSTART:20260105T090000Z", "DTEND:20260105T100000Z", "SUMMARY:ours", caldav.MarkerProperty+":a-42"),
			from: "2026-01-05T00:00:00Z", to: "2026-01-06T00:00:00Z",
			want: []string{`2026-01-05T09:00:00Z..2026-01-05T10:00:00Z rid= "ours" tz= ours=a-42`},
		},
		{
			name: "of two masters the higher SEQUENCE wins",
			data: crlf("BEGIN:VCALENDAR", "BEGIN:VEVENT", "UID:a", "SEQUENCE:2", "DTSTART:20260105T090000Z", "SUMMARY:new", "END:VEVENT",
				"BEGIN:VEVENT", "UID:a", "SEQUENCE:1", "DTSTART:20260105T080000Z", "SUMMARY:old", "END:VEVENT", "END:VCALENDAR"),
			from: "2026-01-05T00:00:00Z", to: "2026-01-06T00:00:00Z",
			want: []string{`2026-01-05T09:00:00Z..2026-01-05T09:00:00Z rid= "new" tz=`},
		},
		{
			name: "escaped and unescaped commas in text",
			data: event("DTSTART:20260105T090000Z", `SUMMARY:Meeting\, room 1, floor 2\; \\ \nend`),
			from: "2026-01-05T00:00:00Z", to: "2026-01-06T00:00:00Z",
			want: []string{"2026-01-05T09:00:00Z..2026-01-05T09:00:00Z rid= \"Meeting, room 1, floor 2; \\\\ \\nend\" tz="},
		},
		{
			name: "a daily series from 1970 is expanded only near the window",
			data: event("DTSTART;TZID=Europe/Berlin:19700101T090000", "DURATION:PT1H", "RRULE:FREQ=DAILY", "SUMMARY:old"),
			from: "2026-07-01T00:00:00Z", to: "2026-07-03T00:00:00Z",
			want: []string{
				`2026-07-01T07:00:00Z..2026-07-01T08:00:00Z rid=2026-07-01T07:00:00Z "old" tz=Europe/Berlin`,
				`2026-07-02T07:00:00Z..2026-07-02T08:00:00Z rid=2026-07-02T07:00:00Z "old" tz=Europe/Berlin`,
			},
		},
		{
			name: "monthly on the 31st from 1990 skips short months",
			data: event("DTSTART:19900131T090000Z", "RRULE:FREQ=MONTHLY", "SUMMARY:m"),
			from: "2026-01-15T00:00:00Z", to: "2026-04-15T00:00:00Z",
			want: []string{
				`2026-01-31T09:00:00Z..2026-01-31T09:00:00Z rid=2026-01-31T09:00:00Z "m" tz=`,
				`2026-03-31T09:00:00Z..2026-03-31T09:00:00Z rid=2026-03-31T09:00:00Z "m" tz=`,
			},
		},
		{
			name: "yearly on 29 February from 1996",
			data: event("DTSTART;VALUE=DATE:19960229", "RRULE:FREQ=YEARLY", "SUMMARY:leap"),
			from: "2026-01-01T00:00:00Z", to: "2029-01-01T00:00:00Z",
			want: []string{`2028-02-29T00:00:00Z..2028-03-01T00:00:00Z rid=2028-02-29 "leap" tz= allday`},
		},
		{
			name: "a rule that never matches leaves DTSTART",
			data: event("DTSTART:20260105T090000Z", "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "SUMMARY:never"),
			from: "2026-01-01T00:00:00Z", to: "2030-01-01T00:00:00Z",
			want: []string{`2026-01-05T09:00:00Z..2026-01-05T09:00:00Z rid=2026-01-05T09:00:00Z "never" tz=`},
		},
		{
			name: "two RRULEs",
			data: event("DTSTART:20260105T090000Z", "RRULE:FREQ=WEEKLY;COUNT=2", "RRULE:FREQ=DAILY;COUNT=2", "SUMMARY:two"),
			from: "2026-01-01T00:00:00Z", to: "2026-02-01T00:00:00Z",
			want: []string{
				`2026-01-05T09:00:00Z..2026-01-05T09:00:00Z rid=2026-01-05T09:00:00Z "two" tz=`,
				`2026-01-06T09:00:00Z..2026-01-06T09:00:00Z rid=2026-01-06T09:00:00Z "two" tz=`,
				`2026-01-12T09:00:00Z..2026-01-12T09:00:00Z rid=2026-01-12T09:00:00Z "two" tz=`,
			},
		},
		{
			name: "RDATE periods bring their own end",
			data: event("DTSTART:20260105T090000Z", "DTEND:20260105T100000Z", "RDATE;VALUE=PERIOD:20260107T120000Z/20260107T150000Z,20260108T120000Z/PT30M", "SUMMARY:r"),
			from: "2026-01-01T00:00:00Z", to: "2026-02-01T00:00:00Z",
			want: []string{
				`2026-01-05T09:00:00Z..2026-01-05T10:00:00Z rid=2026-01-05T09:00:00Z "r" tz=`,
				`2026-01-07T12:00:00Z..2026-01-07T15:00:00Z rid=2026-01-07T12:00:00Z "r" tz=`,
				`2026-01-08T12:00:00Z..2026-01-08T12:30:00Z rid=2026-01-08T12:00:00Z "r" tz=`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			began := time.Now()
			occ, err := caldav.Occurrences(mustParse(t, tt.data), utc(tt.from), utc(tt.to), tt.floating)
			if err != nil {
				t.Fatalf("Occurrences: %v", err)
			}
			if got := lines(occ); !slices.Equal(got, tt.want) {
				t.Errorf("occurrences:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
			if d := time.Since(began); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestOccurrencesSkipsWhatItCannotUse: one broken VEVENT, or a series
// too long to expand, is reported without losing the others.
func TestOccurrencesSkipsWhatItCannotUse(t *testing.T) {
	t.Parallel()
	good := []string{"BEGIN:VEVENT", "UID:good", "DTSTART:20260105T090000Z", "SUMMARY:good", "END:VEVENT"}
	calendar := func(broken ...string) []byte {
		all := append([]string{"BEGIN:VCALENDAR", "BEGIN:VEVENT", "UID:broken"}, broken...)
		all = append(all, "END:VEVENT")
		all = append(all, good...)
		return crlf(append(all, "END:VCALENDAR")...)
	}
	tests := []struct {
		name       string
		data       []byte
		from, to   string
		wantReason string
		wantCount  int // occurrences besides "good"
	}{
		{name: "no DTSTART", data: calendar("SUMMARY:x"), wantReason: "no DTSTART"},
		{name: "unreadable DTSTART", data: calendar("DTSTART:2026-01-05"), wantReason: `"2026-01-05" is not a date or date-time`},
		{name: "DTEND before DTSTART", data: calendar("DTSTART:20260105T090000Z", "DTEND:20260105T080000Z"), wantReason: "before DTSTART"},
		{name: "negative DURATION", data: calendar("DTSTART:20260105T090000Z", "DURATION:-PT1H"), wantReason: "negative DURATION"},
		{name: "bad RRULE", data: calendar("DTSTART:20260105T090000Z", "RRULE:FREQ=SOMETIMES"), wantReason: "RRULE"},
		{name: "hourly RRULE", data: calendar("DTSTART:20260105T090000Z", "RRULE:FREQ=HOURLY"), wantReason: "more often than daily"},
		{name: "secondly RRULE", data: calendar("DTSTART:20260105T090000Z", "RRULE:FREQ=SECONDLY"), wantReason: "more often than daily"},
		{name: "too many times a day", data: calendar("DTSTART:20260105T090000Z", "RRULE:FREQ=DAILY;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11;BYMINUTE=0,5,10,15,20,25,30,35,40,45"), wantReason: "times a day"},
		{name: "bad EXDATE", data: calendar("DTSTART:20260105T090000Z", "RRULE:FREQ=DAILY", "EXDATE:tomorrow"), wantReason: "EXDATE"},
		{
			name: "more occurrences than the limit", data: calendar("DTSTART:19900105T090000Z", "RRULE:FREQ=DAILY;BYHOUR=9,21"),
			from: "2000-01-01T00:00:00Z", to: "2027-01-01T00:00:00Z",
			wantReason: "more than 10000 occurrences", wantCount: caldav.MaxOccurrences,
		},
		{
			name: "a COUNT rule walked too far", data: calendar("DTSTART:19000105T090000Z", "RRULE:FREQ=DAILY;BYHOUR=0,6,12,18;COUNT=5000000"),
			wantReason: "stopped after",
		},
		{
			name: "a COUNT rule that starts centuries ago", data: calendar("DTSTART:15000105T090000Z", "RRULE:FREQ=DAILY;COUNT=5000000"),
			wantReason: "starts too long before the window",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			from, to := "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"
			if tt.from != "" {
				from, to = tt.from, tt.to
			}
			began := time.Now()
			occ, err := caldav.Occurrences(mustParse(t, tt.data), utc(from), utc(to), nil)
			if d := time.Since(began); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
			var se *caldav.SkippedError
			if !errors.As(err, &se) {
				t.Fatalf("error = %v, want a *SkippedError", err)
			}
			if len(se.Components) != 1 || se.Components[0].UID != "broken" || !strings.Contains(se.Components[0].Reason, tt.wantReason) {
				t.Errorf("skipped %+v, want UID broken: …%s…", se.Components, tt.wantReason)
			}
			if !strings.Contains(err.Error(), "broken") {
				t.Errorf("error text %q does not name the UID", err)
			}
			var goods, others int
			for _, o := range occ {
				if o.UID == "good" {
					goods++
				} else {
					others++
				}
			}
			if goods != 1 || others != tt.wantCount {
				t.Errorf("got %d good and %d other occurrences, want 1 and %d", goods, others, tt.wantCount)
			}
		})
	}
}

func TestOccurrencesArguments(t *testing.T) {
	t.Parallel()
	cal := mustParse(t, event("DTSTART:20260105T090000Z"))
	tests := []struct {
		name     string
		from, to time.Time
	}{
		{"empty window", utc("2026-01-05T00:00:00Z"), utc("2026-01-05T00:00:00Z")},
		{"reversed window", utc("2026-01-06T00:00:00Z"), utc("2026-01-05T00:00:00Z")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			occ, err := caldav.Occurrences(cal, tt.from, tt.to, nil)
			if err == nil || occ != nil || !strings.HasPrefix(err.Error(), "caldav: occurrences: ") {
				t.Errorf("Occurrences = %v, %v; want an error", occ, err)
			}
		})
	}
	if _, err := caldav.Occurrences(nil, utc("2026-01-05T00:00:00Z"), utc("2026-01-06T00:00:00Z"), nil); err == nil {
		t.Error("nil calendar: no error")
	}
}
