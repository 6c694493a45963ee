package caldav

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-ical"
)

// Limits on what ParseObject accepts. Calendar data comes from servers and
// users we do not control; these keep one object from costing more than a
// calendar event reasonably can.
const (
	// MaxObjectBytes is the largest calendar object ParseObject reads.
	// Real events with inline attachments stay well below it.
	MaxObjectBytes = 10 << 20
	// maxNesting is how deep components may nest. A real object has three
	// levels (VCALENDAR, VEVENT, VALARM or VTIMEZONE, STANDARD).
	maxNesting = 8
	// maxParamBytes bounds the name-and-parameters part of one content
	// line. The decoder builds parameter values byte by byte, so a huge
	// parameter would cost quadratic time; real ones are short.
	maxParamBytes = 8 << 10
)

// ParseObject decodes one iCalendar object (a CalDAV calendar object
// resource, or an .ics file). Broken input gives an error that says what
// is wrong; it never panics.
//
// A UTF-8 byte order mark is ignored. When the data holds several
// VCALENDAR objects one after another, their components are gathered into
// the first, so no event in them is lost; anything unreadable after a
// complete VCALENDAR is ignored.
func ParseObject(data []byte) (cal *ical.Calendar, err error) {
	if len(data) > MaxObjectBytes {
		return nil, fmt.Errorf("caldav: parse calendar object: %d bytes, more than the %d allowed", len(data), MaxObjectBytes)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("caldav: parse calendar object: empty")
	}
	if err := checkStructure(data); err != nil {
		return nil, fmt.Errorf("caldav: parse calendar object: %w", err)
	}
	// The decoder indexes past the end of some malformed lines instead of
	// returning an error; turn that into an error like any other.
	defer func() {
		if r := recover(); r != nil {
			cal, err = nil, errors.New("caldav: parse calendar object: malformed property parameters")
		}
	}()
	dec := ical.NewDecoder(bytes.NewReader(data))
	cal, err = dec.Decode()
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, errors.New("caldav: parse calendar object: data ends before END:VCALENDAR")
	}
	if err != nil {
		return nil, fmt.Errorf("caldav: parse calendar object: %w", err)
	}
	// What follows a complete VCALENDAR is either another one (some
	// exports concatenate them) or junk such as a trailing comment line.
	// Junk is dropped rather than failing the complete calendar before it.
	for {
		more, err := dec.Decode()
		if err != nil {
			break
		}
		cal.Children = append(cal.Children, more.Children...)
	}
	return cal, nil
}

// checkStructure looks at the unfolded content lines before the decoder
// does, and refuses what would make it recurse too deep or work too long.
func checkStructure(data []byte) error {
	depth := 0
	for n, line := range unfoldedLines(data) {
		name := line
		if i := strings.IndexAny(line, ";:"); i >= 0 {
			name = line[:i]
		}
		switch strings.ToUpper(name) {
		case "BEGIN":
			depth++
			if depth > maxNesting {
				return fmt.Errorf("line %d: components nested more than %d deep", n+1, maxNesting)
			}
		case "END":
			depth--
		}
		if paramsLen(line) > maxParamBytes {
			return fmt.Errorf("line %d: property parameters longer than %d bytes", n+1, maxParamBytes)
		}
	}
	return nil
}

// unfoldedLines splits iCalendar data into content lines, joining folded
// continuation lines (RFC 5545 3.1) as the decoder does.
func unfoldedLines(data []byte) []string {
	raw := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	var out []string
	for _, l := range raw {
		if (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")) && len(out) > 0 {
			out[len(out)-1] += l[1:]
			continue
		}
		out = append(out, l)
	}
	return out
}

// paramsLen is the length of a content line before the colon that starts
// its value, skipping colons inside quoted parameter values.
func paramsLen(line string) int {
	quoted := false
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '"':
			quoted = !quoted
		case ':':
			if !quoted {
				return i
			}
		}
	}
	return len(line)
}

// unescapeText decodes an iCalendar TEXT value (RFC 5545 3.3.11). Unlike
// ical.Prop.Text it keeps unescaped commas: many clients write them in
// SUMMARY and LOCATION, and cutting the title at the first comma would be
// worse than tolerating them. Unknown escapes keep the escaped character.
func unescapeText(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var sb strings.Builder
	sb.Grow(len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\\' || i+1 == len(v) {
			sb.WriteByte(c)
			continue
		}
		i++
		switch v[i] {
		case 'n', 'N':
			sb.WriteByte('\n')
		default:
			sb.WriteByte(v[i])
		}
	}
	return sb.String()
}

// escapeText encodes s as an iCalendar TEXT value. Line breaks of any
// kind become \n; other control characters are not allowed in TEXT and are
// dropped; invalid UTF-8 is replaced, because servers refuse it.
func escapeText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var sb strings.Builder
	sb.Grow(len(s) + 8)
	for _, r := range s {
		switch {
		case r == '\\', r == ';', r == ',':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case r == '\n', r == '\r':
			sb.WriteString(`\n`)
		case r == '\t':
			sb.WriteRune(r)
		case r < 0x20, r == 0x7f:
			// Dropped: not allowed in TEXT values.
		default:
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// foldLines folds every content line of iCalendar text longer than 75
// octets (RFC 5545 3.1), never inside a UTF-8 sequence. The encoder of
// go-ical writes lines unfolded.
func foldLines(text []byte) []byte {
	const limit = 75
	var out bytes.Buffer
	out.Grow(len(text) + len(text)/64*3)
	for _, line := range bytes.SplitAfter(text, []byte("\r\n")) {
		body := bytes.TrimSuffix(line, []byte("\r\n"))
		width := limit
		for len(body) > width {
			cut := width
			for cut > 0 && !utf8.RuneStart(body[cut]) {
				cut--
			}
			out.Write(body[:cut])
			out.WriteString("\r\n ")
			body = body[cut:]
			width = limit - 1 // the leading space counts
		}
		out.Write(body)
		if len(body) != len(line) {
			out.WriteString("\r\n")
		}
	}
	return out.Bytes()
}

// textProp returns the unescaped value of the first property name, or "".
func textProp(c *ical.Component, name string) string {
	if p := c.Props.Get(name); p != nil {
		return unescapeText(p.Value)
	}
	return ""
}

// stamp is a DATE or DATE-TIME value as written: a wall clock reading
// (held in time.UTC, used as a plain calendar) and how to read it.
type stamp struct {
	wall  time.Time
	date  bool   // VALUE=DATE: wall is midnight of that date
	utc   bool   // ended in Z: wall is the instant itself
	tzid  string // TZID parameter, "" when floating or UTC
	value string // as written, for messages
}

// parseStamps parses the comma-separated DATE or DATE-TIME values of p.
// The value's length decides between date and date-time, whatever VALUE
// says, because clients get VALUE wrong more often than the digits.
func parseStamps(p *ical.Prop) ([]stamp, error) {
	var out []stamp
	for v := range strings.SplitSeq(p.Value, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		s, err := parseStamp(v, p.Params.Get(ical.PropTimezoneID))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func parseStamp(v, tzid string) (stamp, error) {
	s := stamp{value: v, tzid: strings.Trim(strings.TrimSpace(tzid), `"`)}
	var err error
	switch {
	case len(v) == len("20060102"):
		s.wall, err = time.Parse("20060102", v)
		s.date, s.tzid = true, ""
	case len(v) == len("20060102T150405Z") && (v[15] == 'Z' || v[15] == 'z'):
		s.wall, err = time.Parse("20060102T150405", v[:15])
		s.utc, s.tzid = true, ""
	case len(v) == len("20060102T150405"):
		s.wall, err = time.Parse("20060102T150405", v)
	default:
		return stamp{}, fmt.Errorf("%q is not a date or date-time", v)
	}
	if err != nil {
		return stamp{}, fmt.Errorf("%q is not a date or date-time", v)
	}
	return s, nil
}

// icalDuration is a DURATION value: nominal days (a day is a calendar day,
// 23 or 25 hours across a DST change) and exact time.
type icalDuration struct {
	days  int
	exact time.Duration
}

// parseDuration parses an RFC 5545 DURATION value such as P1D, PT1H30M,
// P2W or -PT15M.
func parseDuration(v string) (icalDuration, error) {
	s := strings.ToUpper(strings.TrimSpace(v))
	neg := false
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		neg = s[0] == '-'
		s = s[1:]
	}
	if !strings.HasPrefix(s, "P") || len(s) < 3 {
		return icalDuration{}, fmt.Errorf("duration %q: want P…", v)
	}
	s = s[1:]
	var d icalDuration
	inTime := false
	for s != "" {
		if s[0] == 'T' {
			inTime = true
			s = s[1:]
			continue
		}
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i == len(s) || i > 6 {
			return icalDuration{}, fmt.Errorf("duration %q: malformed", v)
		}
		n, _ := strconv.Atoi(s[:i])
		unit := s[i]
		s = s[i+1:]
		switch {
		case !inTime && unit == 'W':
			d.days += 7 * n
		case !inTime && unit == 'D':
			d.days += n
		case inTime && unit == 'H':
			d.exact += time.Duration(n) * time.Hour
		case inTime && unit == 'M':
			d.exact += time.Duration(n) * time.Minute
		case inTime && unit == 'S':
			d.exact += time.Duration(n) * time.Second
		default:
			return icalDuration{}, fmt.Errorf("duration %q: unexpected %q", v, unit)
		}
	}
	// A century is more than any event lasts; beyond it the arithmetic
	// on time.Duration would overflow.
	if d.days > 36600 || d.exact > 36600*24*time.Hour {
		return icalDuration{}, fmt.Errorf("duration %q: longer than a century", v)
	}
	if neg {
		d.days, d.exact = -d.days, -d.exact
	}
	return d, nil
}

// parseUTCOffset parses a TZOFFSETFROM/TZOFFSETTO value (+0100, -0500,
// +053000) into seconds east of UTC.
func parseUTCOffset(v string) (int, error) {
	v = strings.TrimSpace(v)
	if len(v) != 5 && len(v) != 7 || (v[0] != '+' && v[0] != '-') {
		return 0, fmt.Errorf("UTC offset %q: want ±hhmm", v)
	}
	n := 0
	for _, c := range v[1:] {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("UTC offset %q: want ±hhmm", v)
		}
	}
	h, _ := strconv.Atoi(v[1:3])
	m, _ := strconv.Atoi(v[3:5])
	n = h*3600 + m*60
	if len(v) == 7 {
		sec, _ := strconv.Atoi(v[5:7])
		n += sec
	}
	if h > 23 || m > 59 {
		return 0, fmt.Errorf("UTC offset %q: out of range", v)
	}
	if v[0] == '-' {
		n = -n
	}
	return n, nil
}
