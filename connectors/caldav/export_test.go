package caldav_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/termind/termind/connectors/caldav"
)

var updated = time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)

// TestEncodeAppointmentRoundTrip: what EncodeAppointment writes reads back
// as exactly the appointment's times and text, marked as ours.
func TestEncodeAppointmentRoundTrip(t *testing.T) {
	t.Parallel()
	loc := berlin(t)
	tests := []struct {
		name string
		a    caldav.Appointment
		want caldav.Occurrence
	}{
		{
			name: "timed, Berlin summer time",
			a: caldav.Appointment{ID: "a-1", Title: "Beratung", TimeZone: "Europe/Berlin", Status: "confirmed",
				Start: time.Date(2026, 10, 20, 9, 0, 0, 0, loc), End: time.Date(2026, 10, 20, 9, 30, 0, 0, loc)},
			want: caldav.Occurrence{Start: utc("2026-10-20T07:00:00Z"), End: utc("2026-10-20T07:30:00Z"), TimeZone: "Europe/Berlin", Title: "Beratung"},
		},
		{
			name: "timed, Berlin winter time",
			a: caldav.Appointment{ID: "a-2", Title: "Beratung", TimeZone: "Europe/Berlin", Status: "tentative",
				Start: time.Date(2026, 10, 27, 9, 0, 0, 0, loc), End: time.Date(2026, 10, 27, 9, 30, 0, 0, loc)},
			want: caldav.Occurrence{Start: utc("2026-10-27T08:00:00Z"), End: utc("2026-10-27T08:30:00Z"), TimeZone: "Europe/Berlin", Title: "Beratung"},
		},
		{
			name: "timed, spanning the night the clocks go back",
			a: caldav.Appointment{ID: "a-3", Title: "Nachtdienst", TimeZone: "Europe/Berlin", Status: "confirmed",
				Start: time.Date(2026, 10, 24, 20, 0, 0, 0, loc), End: time.Date(2026, 10, 25, 8, 0, 0, 0, loc)},
			want: caldav.Occurrence{Start: utc("2026-10-24T18:00:00Z"), End: utc("2026-10-25T07:00:00Z"), TimeZone: "Europe/Berlin", Title: "Nachtdienst"},
		},
		{
			name: "timed, UTC",
			a: caldav.Appointment{ID: "a-4", Title: "Call", Status: "confirmed",
				Start: utc("2026-03-01T10:00:00Z"), End: utc("2026-03-01T11:00:00Z")},
			want: caldav.Occurrence{Start: utc("2026-03-01T10:00:00Z"), End: utc("2026-03-01T11:00:00Z"), Title: "Call"},
		},
		{
			name: "all-day over three days",
			a:    caldav.Appointment{ID: "a-5", Title: "Urlaub", AllDay: true, StartDate: "2026-12-24", EndDate: "2026-12-27", Status: "confirmed"},
			want: caldav.Occurrence{Start: utc("2026-12-24T00:00:00Z"), End: utc("2026-12-27T00:00:00Z"), AllDay: true, Title: "Urlaub"},
		},
		{
			name: "text with commas, semicolons, backslashes, line breaks and umlauts",
			a: caldav.Appointment{ID: "a-6", TimeZone: "Europe/Vienna", Status: "confirmed",
				Title:       "Zahnärztin Dr. Groß, Praxis; Raum \\2",
				Location:    "Müllerstraße 1, 1010 Wien; 2. Stock",
				Description: "Bitte mitbringen:\r\n- Versichertenkarte, Überweisung\n- 10 € Gebühr; bar\\EC\n\nDanke! " + strings.Repeat("Lange Zeile ", 20),
				Start:       time.Date(2026, 5, 4, 8, 15, 0, 0, time.UTC), End: time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)},
			want: caldav.Occurrence{Start: utc("2026-05-04T08:15:00Z"), End: utc("2026-05-04T09:00:00Z"), TimeZone: "Europe/Vienna",
				Title:       "Zahnärztin Dr. Groß, Praxis; Raum \\2",
				Location:    "Müllerstraße 1, 1010 Wien; 2. Stock",
				Description: "Bitte mitbringen:\n- Versichertenkarte, Überweisung\n- 10 € Gebühr; bar\\EC\n\nDanke! " + strings.Repeat("Lange Zeile ", 20)},
		},
		{
			name: "cancelled",
			a: caldav.Appointment{ID: "a-7", Title: "Abgesagt", TimeZone: "America/New_York", Status: "cancelled",
				Start: utc("2026-03-08T14:00:00Z"), End: utc("2026-03-08T15:00:00Z")},
			want: caldav.Occurrence{Start: utc("2026-03-08T14:00:00Z"), End: utc("2026-03-08T15:00:00Z"), TimeZone: "America/New_York", Title: "Abgesagt", Cancelled: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.a.Updated, tt.a.Sequence = updated, 3
			data, err := caldav.EncodeAppointment(tt.a)
			if err != nil {
				t.Fatalf("EncodeAppointment: %v", err)
			}
			occ, err := caldav.Occurrences(mustParse(t, data), utc("2020-01-01T00:00:00Z"), utc("2030-01-01T00:00:00Z"), nil)
			if err != nil {
				t.Fatalf("Occurrences: %v", err)
			}
			want := tt.want
			want.UID, want.Ours, want.AppointmentID = caldav.EventUID(tt.a.ID), true, tt.a.ID
			if len(occ) != 1 || occ[0] != want {
				t.Fatalf("occurrences:\n got %+v\nwant [%+v]", occ, want)
			}
			text := string(data)
			for _, must := range []string{"UID:" + caldav.EventUID(tt.a.ID), caldav.MarkerProperty + ":" + tt.a.ID, "SEQUENCE:3", "DTSTAMP:20260901T120000Z", "STATUS:" + strings.ToUpper(tt.a.Status)} {
				if !strings.Contains(text, must+"\r\n") {
					t.Errorf("output lacks %q", must)
				}
			}
			for _, never := range []string{"ATTENDEE", "ORGANIZER"} {
				if strings.Contains(text, never) {
					t.Errorf("output contains %s", never)
				}
			}
			if tz := tt.a.TimeZone; tz != "" && !tt.a.AllDay && (!strings.Contains(text, "BEGIN:VTIMEZONE\r\nTZID:"+tz+"\r\n") || !strings.Contains(text, "DTSTART;TZID="+tz+":")) {
				t.Errorf("output lacks TZID=%s or its VTIMEZONE", tz)
			}
			for l := range strings.SplitSeq(strings.TrimSuffix(text, "\r\n"), "\r\n") {
				if len(l) > 75 || !utf8.ValidString(l) {
					t.Errorf("line of %d octets or cut inside a character: %q", len(l), l)
				}
			}
			again, err := caldav.EncodeAppointment(tt.a)
			if err != nil || !bytes.Equal(again, data) {
				t.Errorf("encoding again gave different bytes (err %v)", err)
			}
		})
	}
}

// TestEncodeAppointmentVTimezone reads the generated VTIMEZONE under a
// name no zone database knows, so its rules are what gives the times, and
// compares with Go's zone data.
func TestEncodeAppointmentVTimezone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		zone   string
		starts []string // local times, 2006-01-02T15:04
	}{
		{"Europe/Berlin", []string{"2026-03-28T09:00", "2026-03-29T09:00", "2026-10-24T09:00", "2026-10-25T09:00", "2027-01-10T09:00", "2025-12-31T23:00"}},
		{"Europe/London", []string{"2026-03-29T00:30", "2026-03-29T03:00", "2026-10-25T12:00"}},
		{"America/New_York", []string{"2026-03-07T09:00", "2026-03-08T09:00", "2026-11-01T09:00"}},
		{"Australia/Sydney", []string{"2026-04-04T09:00", "2026-04-05T09:00", "2026-10-04T09:00"}},
		{"Asia/Tokyo", []string{"2026-06-01T09:00"}},
		{"Asia/Kolkata", []string{"2026-06-01T09:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.zone, func(t *testing.T) {
			t.Parallel()
			loc, err := time.LoadLocation(tt.zone)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.starts {
				start, err := time.ParseInLocation("2006-01-02T15:04", s, loc)
				if err != nil {
					t.Fatal(err)
				}
				a := caldav.Appointment{ID: "z", Title: "z", TimeZone: tt.zone, Status: "confirmed", Start: start, End: start.Add(time.Hour), Updated: updated}
				data, err := caldav.EncodeAppointment(a)
				if err != nil {
					t.Fatal(err)
				}
				renamed := bytes.ReplaceAll(data, []byte(tt.zone), []byte("Zone X"))
				occ, err := caldav.Occurrences(mustParse(t, renamed), start.Add(-48*time.Hour), start.Add(48*time.Hour), time.UTC)
				if err != nil {
					t.Fatal(err)
				}
				if len(occ) != 1 || !occ[0].Start.Equal(start) || !occ[0].End.Equal(start.Add(time.Hour)) || occ[0].TimeZone != "Zone X" {
					t.Errorf("%s: read back %+v, want %s", s, occ, start.UTC())
				}
			}
		})
	}
}

func TestEncodeAppointmentRefuses(t *testing.T) {
	t.Parallel()
	ok := caldav.Appointment{ID: "a-1", Title: "t", TimeZone: "Europe/Berlin", Status: "confirmed",
		Start: utc("2026-01-05T09:00:00Z"), End: utc("2026-01-05T10:00:00Z"), Updated: updated}
	if _, err := caldav.EncodeAppointment(ok); err != nil {
		t.Fatalf("the valid appointment: %v", err)
	}
	tests := []struct {
		name   string
		change func(*caldav.Appointment)
		want   string
	}{
		{"no id", func(a *caldav.Appointment) { a.ID = "" }, "empty appointment id"},
		{"id with a slash", func(a *caldav.Appointment) { a.ID = "a/b" }, "not allowed"},
		{"id with a line break", func(a *caldav.Appointment) { a.ID = "a\r\nATTENDEE:x" }, "not allowed"},
		{"unknown status", func(a *caldav.Appointment) { a.Status = "maybe" }, "want confirmed, cancelled or tentative"},
		{"negative sequence", func(a *caldav.Appointment) { a.Sequence = -1 }, "negative sequence"},
		{"no Updated", func(a *caldav.Appointment) { a.Updated = time.Time{} }, "Updated is required"},
		{"end before start", func(a *caldav.Appointment) { a.End = a.Start.Add(-time.Minute) }, "before Start"},
		{"no start", func(a *caldav.Appointment) { a.Start, a.End = time.Time{}, time.Time{} }, "before Start"},
		{"unknown zone", func(a *caldav.Appointment) { a.TimeZone = "Mars/Olympus" }, "time zone"},
		{"server's local zone", func(a *caldav.Appointment) { a.TimeZone = "Local" }, "want an IANA name"},
		{"all-day without dates", func(a *caldav.Appointment) { a.AllDay = true }, "all-day dates"},
		{"all-day ending on its start", func(a *caldav.Appointment) {
			a.AllDay, a.StartDate, a.EndDate = true, "2026-01-05", "2026-01-05"
		}, "not after StartDate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := ok
			tt.change(&a)
			data, err := caldav.EncodeAppointment(a)
			if err == nil || data != nil {
				t.Fatalf("EncodeAppointment = %q, nil; want an error", data)
			}
			if !strings.HasPrefix(err.Error(), "caldav: encode appointment") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestEncodeAppointmentWritesNoControlCharacters(t *testing.T) {
	t.Parallel()
	a := caldav.Appointment{ID: "c", Title: "a\x00b\x1bc\td\xffe", Status: "confirmed",
		Start: utc("2026-01-05T09:00:00Z"), End: utc("2026-01-05T10:00:00Z"), Updated: updated}
	data, err := caldav.EncodeAppointment(a)
	if err != nil {
		t.Fatal(err)
	}
	occ, err := caldav.Occurrences(mustParse(t, data), utc("2026-01-05T00:00:00Z"), utc("2026-01-06T00:00:00Z"), nil)
	if err != nil || len(occ) != 1 {
		t.Fatalf("Occurrences = %v, %v", occ, err)
	}
	if got, want := occ[0].Title, "abc\td\uFFFDe"; got != want {
		t.Errorf("Title = %q, want %q", got, want)
	}
	if slices.ContainsFunc([]byte(string(data)), func(b byte) bool { return b < 0x20 && b != '\r' && b != '\n' && b != '\t' }) {
		t.Error("output contains control characters")
	}
}
