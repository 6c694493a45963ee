package google

import (
	"errors"
	"fmt"
	"slices"
)

// The Google Calendar scopes termind asks for.
//
// Busy-time import needs event times, and sync must tell its own copies
// (marked in extendedProperties.private) apart from the user's events. The
// freebusy scope only returns merged busy intervals, so it cannot do that;
// calendar.events.readonly is the narrowest scope that can. calendar.events
// adds writing and includes reading. Neither gives access to calendar
// settings, sharing (ACLs) or other calendars' metadata, which the broad
// "calendar" scope would.
const (
	ScopeEventsReadOnly = "https://www.googleapis.com/auth/calendar.events.readonly"
	ScopeEvents         = "https://www.googleapis.com/auth/calendar.events"
)

// Consent purposes that map to Google scopes (see the consent ledger).
const (
	PurposeReadBusy    = "calendar.read.busy"
	PurposeReadDetails = "calendar.read.details"
	PurposeWrite       = "calendar.write"
)

// Scopes returns the minimal scopes for the granted purposes. Reading, busy
// or detailed, needs calendar.events.readonly; writing needs calendar.events,
// which also covers reading, so the read-only scope is then left out. Any
// other purpose (notify.sms, a typo) is an error that names it: asking
// Google for less than the user agreed to is a bug, and so is asking for
// more.
func Scopes(purposes []string) ([]string, error) {
	if len(purposes) == 0 {
		return nil, errors.New("google: scopes: no calendar purpose given")
	}
	write := false
	for _, p := range purposes {
		switch p {
		case PurposeReadBusy, PurposeReadDetails:
		case PurposeWrite:
			write = true
		default:
			return nil, fmt.Errorf("google: scopes: purpose %q has no Google Calendar scope", p)
		}
	}
	if write {
		return []string{ScopeEvents}, nil
	}
	return []string{ScopeEventsReadOnly}, nil
}

// Covers reports whether the granted scopes (Token.Scopes) allow the
// purposes. Users may untick scopes on Google's consent screen, so the
// callback compares what was granted with what was asked for.
func Covers(granted, purposes []string) bool {
	want, err := Scopes(purposes)
	if err != nil {
		return false
	}
	for _, w := range want {
		ok := slices.Contains(granted, w)
		// The events scope includes read access.
		if !ok && w == ScopeEventsReadOnly {
			ok = slices.Contains(granted, ScopeEvents)
		}
		if !ok {
			return false
		}
	}
	return true
}
