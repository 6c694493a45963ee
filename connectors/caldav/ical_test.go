package caldav_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/termind/termind/connectors/caldav"
)

// crlf joins iCalendar lines as servers send them.
func crlf(lines ...string) []byte { return []byte(strings.Join(lines, "\r\n") + "\r\n") }

func TestParseObjectRefusesBrokenInput(t *testing.T) {
	t.Parallel()
	deep := []string{"BEGIN:VCALENDAR"}
	for range 20 {
		deep = append(deep, "BEGIN:X-NEST")
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"only whitespace", []byte("\r\n \r\n"), "empty"},
		{"no END", crlf("BEGIN:VCALENDAR", "BEGIN:VEVENT", "UID:a"), "ends before END:VCALENDAR"},
		{"not a calendar", crlf("BEGIN:VEVENT", "UID:a", "END:VEVENT"), `expected "VCALENDAR"`},
		{"line without colon", crlf("BEGIN:VCALENDAR", "garbage", "END:VCALENDAR"), "missing colon"},
		{"parameter without value end", crlf("BEGIN:VCALENDAR", "BEGIN:VEVENT", "DTSTART;TZID=Europe/Berlin", "END:VEVENT", "END:VCALENDAR"), "malformed property parameters"},
		{"wrong END", crlf("BEGIN:VCALENDAR", "BEGIN:VEVENT", "END:VTODO", "END:VCALENDAR"), "expected END property"},
		{"nested too deep", crlf(deep...), "nested more than"},
		{"huge parameter", crlf("BEGIN:VCALENDAR", "X-A;P="+strings.Repeat("a", 9000)+":v", "END:VCALENDAR"), "parameters longer than"},
		{"too large", append(crlf("BEGIN:VCALENDAR"), make([]byte, caldav.MaxObjectBytes)...), "bytes, more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cal, err := caldav.ParseObject(tt.data)
			if err == nil || cal != nil {
				t.Fatalf("ParseObject = %v, %v; want an error", cal, err)
			}
			if !strings.HasPrefix(err.Error(), "caldav: parse calendar object: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestParseObjectAccepts(t *testing.T) {
	t.Parallel()
	event := func(uid string) []string {
		return []string{"BEGIN:VEVENT", "UID:" + uid, "DTSTART:20260105T090000Z", "END:VEVENT"}
	}
	cal := func(lines ...[]string) []string {
		out := []string{"BEGIN:VCALENDAR", "VERSION:2.0"}
		for _, l := range lines {
			out = append(out, l...)
		}
		return append(out, "END:VCALENDAR")
	}
	tests := []struct {
		name     string
		data     []byte
		wantUIDs []string
	}{
		{"plain", crlf(cal(event("a"))...), []string{"a"}},
		{"byte order mark", append([]byte("\xef\xbb\xbf"), crlf(cal(event("a"))...)...), []string{"a"}},
		{"LF line ends", []byte(strings.Join(cal(event("a")), "\n")), []string{"a"}},
		{"folded UID", crlf("BEGIN:VCALENDAR", "BEGIN:VEVENT", "UID:ab", " cd", "END:VEVENT", "END:VCALENDAR"), []string{"abcd"}},
		{"two calendars", append(crlf(cal(event("a"))...), crlf(cal(event("b"))...)...), []string{"a", "b"}},
		{"junk after the calendar", append(crlf(cal(event("a"))...), []byte("X-COMMENT:cached\r\n")...), []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := mustParse(t, tt.data)
			var uids []string
			for _, e := range c.Events() {
				uids = append(uids, e.Props.Get("UID").Value)
			}
			if !slices.Equal(uids, tt.wantUIDs) {
				t.Errorf("UIDs = %v, want %v", uids, tt.wantUIDs)
			}
		})
	}
}

// TestCorpusParsesOrFailsClearly runs every file of the corpus through
// ParseObject and Occurrences over fifty years. Each either works, or is
// refused with an error, or has components skipped with a reason; which
// files do what is pinned, so a change in behaviour shows here.
func TestCorpusParsesOrFailsClearly(t *testing.T) {
	t.Parallel()
	// Files ParseObject refuses: the data is broken beyond reading.
	refused := []string{
		"icalendar/big_bad_calendar.ics",
		"icalendar/fuzz_testcase_0_char_in_component_name.ics",
		"icalendar/fuzz_testcase_invalid_month.ics",
		"icalendar/fuzz_testcase_vtimezone_lone_cr.ics",
		"icalendar/issue_104_broken_calendar.ics",
		"icalendar/issue_168_input.ics",
		"icalendar/issue_178_component_with_invalid_name_represented.ics",
		"icalendar/issue_178_custom_component_contains_other.ics",
		"icalendar/issue_348_exception_parsing_value.ics",
		"icalendar/issue_82_expected_output.ics",
		"icalendar/multiple_calendar_components.ics",
		"icalendar/pr_480_summary_with_colon.ics",
		"icalendar/small_bad_calendar.ics",
		"icalendar/timezone_rdate.ics",
		"icalendar/timezone_same_start_and_offset.ics",
		"recurring-ical-events/issue_201_test_matrix.ics",
	}
	// Files with VEVENTs Occurrences skips (reported in a SkippedError),
	// by how many it skips.
	skipped := map[string]int{
		"icalendar/america_new_york_forward_reference.ics":          1, // two DTSTARTs
		"icalendar/broken_dtstart.ics":                              1,
		"icalendar/created_calendar_with_unicode_fields.ics":        1, // no DTSTART
		"icalendar/invalid_duration.ics":                            1,
		"icalendar/issue_1050_multiple_calendars.ics":               2,
		"icalendar/issue_1050_uid_in_description.ics":               2,
		"icalendar/issue_1081_invalid_rrule_freq.ics":               1,
		"icalendar/issue_1081_invalid_start_and_end.ics":            1,
		"icalendar/issue_1081_invalid_start_valid_end.ics":          1,
		"icalendar/issue_1081_with_summary.ics":                     1,
		"icalendar/issue_1549_binary_attachment.ics":                1,
		"icalendar/issue_1561_image_value.ics":                      4,
		"icalendar/issue_322_expected_calendar.ics":                 1,
		"icalendar/issue_722_missing_timezones.ics":                 1,
		"icalendar/issue_798_related_to.ics":                        2,
		"icalendar/multiple_timezones.ics":                          3, // RDATE;VALUE=TIME
		"icalendar/pacific_fiji.ics":                                1,
		"icalendar/rfc_5545_RDATE_example.ics":                      6,
		"icalendar/rfc_6868.ics":                                    1,
		"icalendar/rfc_7256_multi_value_parameters.ics":             2,
		"icalendar/rfc_7529.ics":                                    4, // RSCALE
		"icalendar/rfc_7986_conferences.ics":                        1,
		"icalendar/rfc_7986_image.ics":                              2,
		"icalendar/rfc_9253_gap.ics":                                2,
		"icalendar/rfc_9253_related_to.ics":                         1,
		"recurring-ical-events/bad_rrule_missing_until_event.ics":   1,
		"recurring-ical-events/end_before_start_event.ics":          1,
		"recurring-ical-events/issue_128_only_first_event.ics":      1, // COUNT=-1
		"recurring-ical-events/issue_132_swapped_start_and_end.ics": 1,
	}
	from, to := utc("1990-01-01T00:00:00Z"), utc("2040-01-01T00:00:00Z")
	var gotRefused []string
	gotSkipped := map[string]int{}
	withOccurrences := 0
	for rel, path := range corpusFiles(t) {
		data := readFile(t, path)
		began := time.Now()
		cal, err := caldav.ParseObject(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "caldav: parse calendar object: ") {
				t.Errorf("%s: error %q does not say what failed", rel, err)
			}
			gotRefused = append(gotRefused, rel)
			continue
		}
		occ, err := caldav.Occurrences(cal, from, to, time.UTC)
		if d := time.Since(began); d > 5*time.Second {
			t.Errorf("%s: took %v", rel, d)
		}
		var se *caldav.SkippedError
		switch {
		case errors.As(err, &se):
			gotSkipped[rel] = len(se.Components)
			for _, c := range se.Components {
				if c.Reason == "" {
					t.Errorf("%s: skipped %q without a reason", rel, c.UID)
				}
			}
		case err != nil:
			t.Errorf("%s: Occurrences: %v", rel, err)
		}
		if len(occ) > 0 {
			withOccurrences++
		}
		for _, o := range occ {
			if o.End.Before(o.Start) || o.Start.Location() != time.UTC {
				t.Errorf("%s: occurrence %+v: end before start or not UTC", rel, o)
			}
		}
	}
	slices.Sort(gotRefused)
	slices.Sort(refused)
	if !slices.Equal(gotRefused, refused) {
		t.Errorf("refused files:\n got %q\nwant %q", gotRefused, refused)
	}
	if fmt.Sprint(gotSkipped) != fmt.Sprint(skipped) {
		t.Errorf("files with skipped components:\n got %v\nwant %v", gotSkipped, skipped)
	}
	if withOccurrences < 100 {
		t.Errorf("only %d corpus files gave occurrences", withOccurrences)
	}
}
