package caldav

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/teambition/rrule-go"
)

// zone turns the wall clock readings of one TZID into instants and back.
// Wall clock readings are held as time.Time values in time.UTC that stand
// for the local date and time, so recurrence rules can be expanded on the
// local calendar (RFC 5545: a weekly 09:00 stays 09:00 across DST) and
// turned into instants afterwards.
type zone struct {
	name  string         // reported as Occurrence.TimeZone
	loc   *time.Location // the zone's rules when Go knows them
	rules *vtzRules      // else the rules a VTIMEZONE spells out
}

// offsetAt returns the zone's offset from UTC, in seconds, at instant t.
func (z *zone) offsetAt(t time.Time) int {
	if z.rules != nil {
		return z.rules.offsetAt(t)
	}
	_, off := t.In(z.loc).Zone()
	return off
}

// wall returns the local reading of instant t.
func (z *zone) wall(t time.Time) time.Time {
	return t.UTC().Add(time.Duration(z.offsetAt(t)) * time.Second)
}

// instant returns the instant that wall names in this zone. RFC 5545
// 3.3.5 settles the two readings a DST change makes odd: a time skipped
// in spring is read with the offset before the change (02:30 becomes
// 03:30 summer time), and a time that occurs twice in autumn means the
// first of the two. time.Date does not promise either, so both are
// decided here.
func (z *zone) instant(wall time.Time) time.Time {
	wall = wall.UTC()
	before := z.offsetAt(wall.Add(-26 * time.Hour))
	after := z.offsetAt(wall.Add(26 * time.Hour))
	var found []time.Time
	for _, off := range []int{before, after} {
		u := wall.Add(-time.Duration(off) * time.Second)
		if z.offsetAt(u) == off {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return wall.Add(-time.Duration(before) * time.Second)
	case 1:
		return found[0]
	}
	if found[1].Before(found[0]) {
		return found[1]
	}
	return found[0]
}

// zones resolves the TZIDs of one calendar object. It caches what it
// resolved, so a series with thousands of instances looks a zone up once.
type zones struct {
	vtimezones map[string]*ical.Component // by TZID
	floating   *zone
	horizon    int // last year VTIMEZONE rules are expanded for
	cache      map[string]*zone
}

// newZones collects the VTIMEZONE components of cal. Floating times (no
// TZID, no Z) are read in floating; when that is nil, in the calendar's
// X-WR-TIMEZONE if Go knows it; else in UTC.
func newZones(cal *ical.Calendar, floating *time.Location, horizon int) *zones {
	zs := &zones{vtimezones: map[string]*ical.Component{}, horizon: horizon, cache: map[string]*zone{}}
	for _, c := range cal.Children {
		if c.Name != ical.CompTimezone {
			continue
		}
		if id := strings.TrimSpace(textProp(c, ical.PropTimezoneID)); id != "" {
			zs.vtimezones[id] = c
		}
	}
	switch {
	case floating != nil:
		zs.floating = &zone{loc: floating}
	default:
		zs.floating = &zone{loc: time.UTC}
		if loc, _, ok := ianaZone(textProp(cal.Component, "X-WR-TIMEZONE")); ok {
			zs.floating = &zone{loc: loc}
		}
	}
	return zs
}

// lookup returns the zone a TZID parameter names. In order: an IANA name
// Go knows (also inside paths such as /mozilla.org/…/Europe/Berlin), a
// Windows zone name, the IANA name a VTIMEZONE gives in X-LIC-LOCATION,
// the rules the VTIMEZONE spells out. A TZID that none of these explains
// is read like a floating time, in the connection's zone, and reported as
// written: a client that invents a zone name without defining it is most
// likely writing local time.
func (zs *zones) lookup(tzid string) *zone {
	if tzid == "" {
		return zs.floating
	}
	if z, ok := zs.cache[tzid]; ok {
		return z
	}
	z := zs.resolve(tzid)
	zs.cache[tzid] = z
	return z
}

func (zs *zones) resolve(tzid string) *zone {
	if loc, name, ok := ianaZone(tzid); ok {
		return &zone{name: name, loc: loc}
	}
	vtz := zs.vtimezones[tzid]
	if vtz == nil {
		vtz = zs.vtimezones[strings.Trim(tzid, `"`)]
	}
	if vtz != nil {
		if loc, name, ok := ianaZone(textProp(vtz, "X-LIC-LOCATION")); ok {
			return &zone{name: name, loc: loc}
		}
		if rules, err := parseVTimezone(vtz, zs.horizon); err == nil {
			return &zone{name: tzid, rules: rules}
		}
	}
	return &zone{name: tzid, loc: zs.floating.loc, rules: zs.floating.rules}
}

// ianaZone finds the IANA zone that tzid names: the name itself, a
// Windows name, or a path ending in an IANA name. It never returns
// time.Local: the server's own zone must not leak into calendar data.
func ianaZone(tzid string) (*time.Location, string, bool) {
	tzid = strings.Trim(strings.TrimSpace(tzid), `"`)
	if tzid == "" {
		return nil, "", false
	}
	candidates := []string{tzid}
	if name := windowsZone(tzid); name != "" {
		candidates = append(candidates, name)
	}
	for i := 0; i < len(tzid); i++ {
		if tzid[i] == '/' && i+1 < len(tzid) {
			candidates = append(candidates, tzid[i+1:])
		}
	}
	for _, name := range candidates {
		if name == "" || strings.EqualFold(name, "Local") || len(name) > 64 {
			continue
		}
		if loc, err := time.LoadLocation(name); err == nil {
			return loc, name, true
		}
	}
	return nil, "", false
}

// windowsZone maps the Windows time zone names that Outlook and Exchange
// write as TZID to IANA names (after the CLDR windowsZones table, the
// zone each name stands for first). Only common names are listed; others
// fall back to the VTIMEZONE that Outlook always sends along.
func windowsZone(name string) string {
	switch name {
	case "W. Europe Standard Time": // Berlin, Vienna, Zurich, Amsterdam, Rome, Stockholm
		return "Europe/Berlin"
	case "Romance Standard Time": // Paris, Brussels, Copenhagen, Madrid
		return "Europe/Paris"
	case "Central Europe Standard Time": // Budapest, Prague, Belgrade
		return "Europe/Budapest"
	case "Central European Standard Time": // Warsaw, Zagreb, Sarajevo
		return "Europe/Warsaw"
	case "GMT Standard Time": // London, Dublin, Lisbon
		return "Europe/London"
	case "Greenwich Standard Time":
		return "Atlantic/Reykjavik"
	case "E. Europe Standard Time":
		return "Europe/Chisinau"
	case "FLE Standard Time": // Helsinki, Kyiv, Riga, Sofia, Tallinn, Vilnius
		return "Europe/Helsinki"
	case "GTB Standard Time": // Athens, Bucharest
		return "Europe/Bucharest"
	case "Turkey Standard Time":
		return "Europe/Istanbul"
	case "Russian Standard Time":
		return "Europe/Moscow"
	case "Eastern Standard Time":
		return "America/New_York"
	case "Central Standard Time":
		return "America/Chicago"
	case "Mountain Standard Time":
		return "America/Denver"
	case "US Mountain Standard Time":
		return "America/Phoenix"
	case "Pacific Standard Time":
		return "America/Los_Angeles"
	case "Alaskan Standard Time":
		return "America/Anchorage"
	case "Hawaiian Standard Time":
		return "Pacific/Honolulu"
	case "Atlantic Standard Time":
		return "America/Halifax"
	case "E. South America Standard Time":
		return "America/Sao_Paulo"
	case "Tokyo Standard Time":
		return "Asia/Tokyo"
	case "China Standard Time":
		return "Asia/Shanghai"
	case "India Standard Time":
		return "Asia/Kolkata"
	case "Singapore Standard Time":
		return "Asia/Singapore"
	case "Arabian Standard Time":
		return "Asia/Dubai"
	case "Israel Standard Time":
		return "Asia/Jerusalem"
	case "AUS Eastern Standard Time":
		return "Australia/Sydney"
	case "New Zealand Standard Time":
		return "Pacific/Auckland"
	case "UTC", "Coordinated Universal Time", "GMT":
		return "UTC"
	}
	return ""
}

// vtzRules are the offsets a VTIMEZONE defines: every onset of its
// STANDARD and DAYLIGHT observances up to a horizon year, in order.
type vtzRules struct {
	initial     int // offset before the first onset: its TZOFFSETFROM
	transitions []transition
}

type transition struct {
	at     time.Time // instant of the onset
	offset int       // TZOFFSETTO, seconds east of UTC
}

// maxOnsets bounds the onsets taken from one observance's RRULE. Yearly
// rules from 1601 (as Outlook writes them) have about 430 up to now.
const maxOnsets = 1000

// parseVTimezone reads the observances of a VTIMEZONE. Onsets are given
// in local time before the change (RFC 5545 3.6.5), so each onset instant
// is its wall reading minus TZOFFSETFROM.
func parseVTimezone(vtz *ical.Component, horizon int) (*vtzRules, error) {
	r := &vtzRules{}
	first := time.Time{}
	for _, obs := range vtz.Children {
		if obs.Name != ical.CompTimezoneStandard && obs.Name != ical.CompTimezoneDaylight {
			continue
		}
		fromProp, toProp := obs.Props.Get(ical.PropTimezoneOffsetFrom), obs.Props.Get(ical.PropTimezoneOffsetTo)
		startProp := obs.Props.Get(ical.PropDateTimeStart)
		if fromProp == nil || toProp == nil || startProp == nil {
			return nil, errors.New("observance without DTSTART, TZOFFSETFROM or TZOFFSETTO")
		}
		from, err := parseUTCOffset(fromProp.Value)
		if err != nil {
			return nil, err
		}
		to, err := parseUTCOffset(toProp.Value)
		if err != nil {
			return nil, err
		}
		start, err := parseStamp(strings.TrimSpace(startProp.Value), "")
		if err != nil {
			return nil, fmt.Errorf("observance DTSTART: %w", err)
		}
		fromOffset := time.Duration(from) * time.Second
		toInstant := func(wall time.Time) time.Time { return wall.Add(-fromOffset) }
		add := func(at time.Time) {
			r.transitions = append(r.transitions, transition{at: at, offset: to})
			if first.IsZero() || at.Before(first) {
				first, r.initial = at, from
			}
		}
		add(toInstant(start.wall))
		hi := time.Date(horizon+1, 1, 1, 0, 0, 0, 0, time.UTC)
		for _, p := range obs.Props.Values(ical.PropRecurrenceRule) {
			rl, err := parseRule(p.Value)
			if err != nil {
				return nil, fmt.Errorf("observance RRULE: %w", err)
			}
			// Real zones change offsets once or twice a year; anything
			// denser is not a time zone and would only cost time.
			if rl.opt.Freq != rrule.YEARLY {
				return nil, fmt.Errorf("observance RRULE %q: only yearly rules are supported", p.Value)
			}
			x := expansion{rule: rl, dtstart: start, toInstant: toInstant, lo: start.wall, hi: hi, maxWalk: maxOnsets}
			if _, err := x.run(func(wall time.Time) bool { add(toInstant(wall)); return true }); err != nil {
				return nil, fmt.Errorf("observance RRULE: %w", err)
			}
		}
		for _, p := range obs.Props.Values(ical.PropRecurrenceDates) {
			stamps, err := parseStamps(&p)
			if err != nil {
				return nil, fmt.Errorf("observance: %w", err)
			}
			for _, s := range stamps {
				if s.utc {
					add(s.wall)
				} else {
					add(toInstant(s.wall))
				}
			}
		}
	}
	if len(r.transitions) == 0 {
		return nil, errors.New("VTIMEZONE without observances")
	}
	sort.SliceStable(r.transitions, func(i, j int) bool { return r.transitions[i].at.Before(r.transitions[j].at) })
	return r, nil
}

// offsetAt returns the offset in effect at instant t: that of the latest
// onset at or before t.
func (r *vtzRules) offsetAt(t time.Time) int {
	i := sort.Search(len(r.transitions), func(i int) bool { return r.transitions[i].at.After(t) })
	if i == 0 {
		return r.initial
	}
	return r.transitions[i-1].offset
}
