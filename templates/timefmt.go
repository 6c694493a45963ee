package templates

import (
	"strconv"
	"time"
)

// dateFormat describes how one language writes dates and times. Patterns use
// the placeholders {weekday} {day} {dd} {month} {mm} {year} {hour} {minute},
// and dateTime may also use {date} and {time}. Adding a language is adding an
// entry to dateFormats.
type dateFormat struct {
	weekdays [7]string // indexed by time.Weekday, Sunday first
	months   [12]string
	date     string
	clock    string
	dateTime string
}

// dateFormats returns the formats known by base language. A locale without
// an entry gets neutralFormat.
func dateFormats() map[string]*dateFormat {
	return map[string]*dateFormat{
		"de": {
			weekdays: [7]string{"Sonntag", "Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag"},
			months: [12]string{"Januar", "Februar", "März", "April", "Mai", "Juni",
				"Juli", "August", "September", "Oktober", "November", "Dezember"},
			date:     "{weekday}, {day}. {month} {year}",
			clock:    "{hour}:{minute}",
			dateTime: "{date}, {time} Uhr",
		},
		"en": {
			weekdays: [7]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"},
			months: [12]string{"January", "February", "March", "April", "May", "June",
				"July", "August", "September", "October", "November", "December"},
			date:     "{weekday}, {day} {month} {year}",
			clock:    "{hour}:{minute}",
			dateTime: "{date}, {time}",
		},
	}
}

// neutralFormat is ISO 8601-like, so a locale added by an override without
// a table entry never shows English words.
func neutralFormat() *dateFormat {
	return &dateFormat{date: "{year}-{mm}-{dd}", clock: "{hour}:{minute}", dateTime: "{date} {time}"}
}

// formatted is one instant written three ways.
type formatted struct{ dateTime, date, clock string }

func (f *dateFormat) format(t time.Time) formatted {
	// One scratch buffer, each string copied out before the next use:
	// within a composite literal the calls could all run before the copies.
	var buf [96]byte
	var out formatted
	out.dateTime = string(f.appendPattern(buf[:0], f.dateTime, t))
	out.date = string(f.appendPattern(buf[:0], f.date, t))
	out.clock = string(f.appendPattern(buf[:0], f.clock, t))
	return out
}

func (f *dateFormat) appendPattern(b []byte, pattern string, t time.Time) []byte {
	for i := 0; i < len(pattern); i++ {
		if pattern[i] != '{' {
			b = append(b, pattern[i])
			continue
		}
		end := i + 1
		for end < len(pattern) && pattern[end] != '}' {
			end++
		}
		if end == len(pattern) {
			return append(b, pattern[i:]...)
		}
		b = f.appendField(b, pattern[i+1:end], t)
		i = end
	}
	return b
}

func (f *dateFormat) appendField(b []byte, field string, t time.Time) []byte {
	switch field {
	case "weekday":
		return append(b, f.weekdays[t.Weekday()]...)
	case "day":
		return strconv.AppendInt(b, int64(t.Day()), 10)
	case "dd":
		return appendTwoDigits(b, t.Day())
	case "month":
		return append(b, f.months[t.Month()-1]...)
	case "mm":
		return appendTwoDigits(b, int(t.Month()))
	case "year":
		return strconv.AppendInt(b, int64(t.Year()), 10)
	case "hour":
		return appendTwoDigits(b, t.Hour())
	case "minute":
		return appendTwoDigits(b, t.Minute())
	case "date":
		return f.appendPattern(b, f.date, t)
	case "time":
		return f.appendPattern(b, f.clock, t)
	}
	return append(append(append(b, '{'), field...), '}')
}

func appendTwoDigits(b []byte, v int) []byte {
	return append(b, byte('0'+v/10%10), byte('0'+v%10))
}
