package caldav

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-ical"
)

// ContentHash returns a hash of what a calendar object says, for the link
// table's change detection: equal hashes mean nobody changed the event,
// even if a server wrote it out differently.
//
// It ignores what servers and clients rewrite without anyone editing the
// event: line folding, line endings, the order of properties, parameters
// and components, quoting and escaping styles, DTSTAMP, LAST-MODIFIED,
// CREATED, PRODID, METHOD, X- properties other than MarkerProperty,
// VALARM components (alarms are personal and not synced) and VTIMEZONE
// components (servers replace them with their own definitions; the TZID
// on each time still counts). SEQUENCE is kept: clients raise it on real
// edits. Everything else counts, so a changed time, title, status or rule
// changes the hash.
func ContentHash(data []byte) (string, error) {
	cal, err := ParseObject(data)
	if err != nil {
		return "", fmt.Errorf("caldav: content hash: %w", err)
	}
	sum := sha256.Sum256([]byte(canonical(cal.Component)))
	return hex.EncodeToString(sum[:]), nil
}

// canonical writes a component in one fixed form: properties sorted,
// children sorted, values normalised.
func canonical(c *ical.Component) string {
	var lines []string
	for name, props := range c.Props {
		if ignoredInHash(name) {
			continue
		}
		for _, p := range props {
			lines = append(lines, canonicalProp(&p))
		}
	}
	slices.Sort(lines)
	var children []string
	for _, child := range c.Children {
		if child.Name == ical.CompAlarm || child.Name == ical.CompTimezone {
			continue
		}
		children = append(children, canonical(child))
	}
	slices.Sort(children)
	var sb strings.Builder
	sb.WriteString("BEGIN:" + c.Name + "\n")
	for _, l := range lines {
		sb.WriteString(l + "\n")
	}
	for _, ch := range children {
		sb.WriteString(ch)
	}
	sb.WriteString("END:" + c.Name + "\n")
	return sb.String()
}

func ignoredInHash(name string) bool {
	switch name {
	case ical.PropDateTimeStamp, ical.PropLastModified, ical.PropCreated, ical.PropProductID, ical.PropMethod:
		return true
	case MarkerProperty:
		return false
	}
	return strings.HasPrefix(name, "X-")
}

// canonicalProp writes one property with sorted parameters, without the
// VALUE parameter where it only restates the default, and with text
// values escaped one way.
func canonicalProp(p *ical.Prop) string {
	names := make([]string, 0, len(p.Params))
	for n := range p.Params {
		names = append(names, n)
	}
	slices.Sort(names)
	var sb strings.Builder
	sb.WriteString(p.Name)
	for _, n := range names {
		vals := p.Params[n]
		if n == ical.ParamValue && len(vals) == 1 && redundantValueType(p.Name, vals[0]) {
			continue
		}
		sb.WriteString(";" + n + "=")
		for i, v := range vals {
			if i > 0 {
				sb.WriteString(",")
			}
			sb.WriteString(strings.TrimSpace(v))
		}
	}
	sb.WriteString(":")
	v := strings.TrimSpace(p.Value)
	if p.ValueType() == ical.ValueText {
		v = escapeText(unescapeText(v))
	}
	sb.WriteString(v)
	return sb.String()
}

func redundantValueType(prop, value string) bool {
	value = strings.ToUpper(value)
	switch prop {
	case ical.PropDateTimeStart, ical.PropDateTimeEnd, ical.PropRecurrenceID, ical.PropExceptionDates, ical.PropRecurrenceDates, ical.PropDue:
		return value == string(ical.ValueDateTime)
	}
	return value == string(ical.ValueText) || value == string(ical.ValueDuration) && prop == ical.PropDuration
}
