package caldav_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-ical"

	"github.com/termind/termind/connectors/caldav"
)

// hashBase is an event as a client might have written it.
var hashBase = []string{
	"BEGIN:VCALENDAR",
	"VERSION:2.0",
	"PRODID:-//Example Corp.//Calendar 1.0//EN",
	"BEGIN:VTIMEZONE",
	"TZID:Europe/Berlin",
	"BEGIN:STANDARD",
	"DTSTART:19701025T030000",
	"TZOFFSETFROM:+0200",
	"TZOFFSETTO:+0100",
	"RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
	"END:STANDARD",
	"END:VTIMEZONE",
	"BEGIN:VEVENT",
	"UID:hash-1@example.org",
	"DTSTAMP:20260101T090000Z",
	"CREATED:20260101T090000Z",
	"LAST-MODIFIED:20260101T090000Z",
	"SEQUENCE:1",
	"DTSTART;TZID=Europe/Berlin:20260105T090000",
	"DTEND;TZID=Europe/Berlin:20260105T100000",
	"SUMMARY:Zahnarzt\\, Kontrolle",
	"LOCATION:Praxis Dr. Groß",
	"X-MOZ-GENERATION:3",
	"BEGIN:VALARM",
	"ACTION:DISPLAY",
	"TRIGGER:-PT15M",
	"END:VALARM",
	"END:VEVENT",
	"END:VCALENDAR",
}

// edit returns hashBase with line old replaced by new lines (none deletes
// it).
func edit(old string, repl ...string) []string {
	var out []string
	for _, l := range hashBase {
		if l == old {
			out = append(out, repl...)
			continue
		}
		out = append(out, l)
	}
	return out
}

func TestContentHash(t *testing.T) {
	t.Parallel()
	base, err := caldav.ContentHash(crlf(hashBase...))
	if err != nil {
		t.Fatal(err)
	}
	if len(base) != 64 {
		t.Fatalf("hash %q: want 64 hex digits", base)
	}
	reordered := append([]string{}, hashBase[:12]...)
	reordered = append(reordered, "BEGIN:VEVENT", "SUMMARY:Zahnarzt\\, Kontrolle", "DTEND;TZID=Europe/Berlin:20260105T100000",
		"LOCATION:Praxis Dr. Groß", "DTSTART;TZID=Europe/Berlin:20260105T090000", "SEQUENCE:1", "UID:hash-1@example.org",
		"DTSTAMP:20260101T090000Z", "END:VEVENT", "END:VCALENDAR")
	tests := []struct {
		name string
		data []byte
		same bool
	}{
		{"DTSTAMP rewritten", crlf(edit("DTSTAMP:20260101T090000Z", "DTSTAMP:20260301T120000Z")...), true},
		{"LAST-MODIFIED and CREATED rewritten", crlf(edit("LAST-MODIFIED:20260101T090000Z", "LAST-MODIFIED:20260302T000000Z")...), true},
		{"PRODID of the server", crlf(edit("PRODID:-//Example Corp.//Calendar 1.0//EN", "PRODID:-//Radicale//NONSGML Radicale Server//EN")...), true},
		{"folded differently", crlf(edit("LOCATION:Praxis Dr. Groß", "LOCATION:Praxis D", " r. Groß")...), true},
		{"LF instead of CRLF", []byte(strings.Join(hashBase, "\n")), true},
		{"properties in another order, alarm and X- property gone", crlf(reordered...), true},
		{"VALUE=DATE-TIME spelt out", crlf(edit("DTEND;TZID=Europe/Berlin:20260105T100000", "DTEND;VALUE=DATE-TIME;TZID=Europe/Berlin:20260105T100000")...), true},
		{"quoted TZID", crlf(edit("DTEND;TZID=Europe/Berlin:20260105T100000", `DTEND;TZID="Europe/Berlin":20260105T100000`)...), true},
		{"VTIMEZONE replaced by the server's", crlf(edit("RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10")...), true},
		{"start moved", crlf(edit("DTSTART;TZID=Europe/Berlin:20260105T090000", "DTSTART;TZID=Europe/Berlin:20260105T093000")...), false},
		{"zone changed", crlf(edit("DTEND;TZID=Europe/Berlin:20260105T100000", "DTEND;TZID=Europe/London:20260105T100000")...), false},
		{"title changed", crlf(edit("SUMMARY:Zahnarzt\\, Kontrolle", "SUMMARY:Zahnarzt\\, Kontrolle!")...), false},
		{"location removed", crlf(edit("LOCATION:Praxis Dr. Groß")...), false},
		{"SEQUENCE raised", crlf(edit("SEQUENCE:1", "SEQUENCE:2")...), false},
		{"cancelled", crlf(edit("SEQUENCE:1", "SEQUENCE:1", "STATUS:CANCELLED")...), false},
		{"made recurring", crlf(edit("SEQUENCE:1", "SEQUENCE:1", "RRULE:FREQ=WEEKLY")...), false},
		{"our marker added", crlf(edit("SEQUENCE:1", "SEQUENCE:1", caldav.MarkerProperty+":a-1")...), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := caldav.ContentHash(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if (got == base) != tt.same {
				t.Errorf("hash equal to the original: %v, want %v", got == base, tt.same)
			}
		})
	}
}

// TestContentHashSurvivesReserialisation: a server that decodes our event
// and writes it out again with its own encoder (here go-ical's: unfolded,
// properties sorted, its own PRODID and DTSTAMP) leaves the hash alone.
func TestContentHashSurvivesReserialisation(t *testing.T) {
	t.Parallel()
	a := caldav.Appointment{ID: "a-9", Title: "Termin, lang " + strings.Repeat("ä", 60), Location: "Raum; 1", TimeZone: "Europe/Berlin",
		Status: "confirmed", Start: utc("2026-10-24T18:00:00Z"), End: utc("2026-10-25T07:00:00Z"), Updated: updated}
	data, err := caldav.EncodeAppointment(a)
	if err != nil {
		t.Fatal(err)
	}
	cal := mustParse(t, data)
	cal.Props.SetText(ical.PropProductID, "-//Other Server//EN")
	cal.Events()[0].Props.SetText(ical.PropDateTimeStamp, "20270101T000000Z")
	var buf bytes.Buffer
	if err := ical.NewEncoder(&buf).Encode(cal); err != nil {
		t.Fatal(err)
	}
	h1, err1 := caldav.ContentHash(data)
	h2, err2 := caldav.ContentHash(buf.Bytes())
	if err1 != nil || err2 != nil || h1 != h2 {
		t.Errorf("hashes %s (%v) and %s (%v), want equal", h1, err1, h2, err2)
	}
	a.Title = "Termin verschoben"
	changed, err := caldav.EncodeAppointment(a)
	if err != nil {
		t.Fatal(err)
	}
	if h3, _ := caldav.ContentHash(changed); h3 == h1 {
		t.Error("a changed title kept the hash")
	}
}

func TestContentHashRefusesBrokenInput(t *testing.T) {
	t.Parallel()
	for _, data := range [][]byte{nil, []byte("BEGIN:VCALENDAR\r\n")} {
		if h, err := caldav.ContentHash(data); err == nil || h != "" || !strings.HasPrefix(err.Error(), "caldav: content hash: ") {
			t.Errorf("ContentHash(%q) = %q, %v; want an error", data, h, err)
		}
	}
}
