package api

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/termind/termind/internal/store"
)

// calendarConsent is the consent block of a connection request: the
// purposes the person granted, the policy they saw and where they were, as
// the platform reports it.
type calendarConsent struct {
	Purposes      []string      `json:"purposes"`
	PolicyVersion string        `json:"policy_version"`
	Source        consentSource `json:"source"`
}

var calendarPurposes = map[string]bool{
	store.ConsentCalendarReadBusy:    true,
	store.ConsentCalendarReadDetails: true,
	store.ConsentCalendarWrite:       true,
}

var privacyLevels = map[string]bool{
	store.PrivacyBusy:    true,
	store.PrivacyDetails: true,
	store.PrivacyFull:    true,
}

var directions = map[string]bool{
	store.DirectionImport: true,
	store.DirectionExport: true,
	store.DirectionBoth:   true,
}

// validateCalendarUse checks privacy, direction and the consent block, in
// that order, and then that the consent covers both: a connection never
// reads or writes more than the person agreed to.
func validateCalendarUse(privacy, direction string, c calendarConsent) *apiError {
	if !privacyLevels[privacy] {
		return invalidField("privacy", `must be "busy", "details" or "full"`)
	}
	if !directions[direction] {
		return invalidField("direction", `must be "import", "export" or "both"`)
	}
	if len(c.Purposes) == 0 {
		return invalidField("consent.purposes", "is required: the calendar purposes the person granted (calendar.read.busy, calendar.read.details, calendar.write)")
	}
	for i, p := range c.Purposes {
		if !calendarPurposes[p] {
			return invalidField("consent.purposes", fmt.Sprintf("item %d: must be one of calendar.read.busy, calendar.read.details, calendar.write", i))
		}
		if slices.Index(c.Purposes, p) != i {
			return invalidField("consent.purposes", fmt.Sprintf("item %d: %s is listed twice", i, p))
		}
	}
	if c.PolicyVersion == "" || !boundedText(c.PolicyVersion, maxPolicyVersion) {
		return invalidField("consent.policy_version", "is required: 1 to 100 characters, no control characters, naming the privacy policy the person saw")
	}
	if c.Source.IP != "" {
		if _, err := netip.ParseAddr(c.Source.IP); err != nil {
			return invalidField("consent.source.ip", "must be an IPv4 or IPv6 address such as 203.0.113.7")
		}
	}
	if !boundedText(c.Source.UserAgent, maxUserAgent) {
		return invalidField("consent.source.user_agent", "must be at most 512 characters, no control characters")
	}
	if purpose, need := missingPurpose(privacy, direction, c.Purposes); purpose != "" {
		return invalidField("consent.purposes", fmt.Sprintf("does not include %s, which %s needs", purpose, need))
	}
	return nil
}

// missingPurpose returns the first purpose that privacy and direction need
// but granted lacks, and what needs it; "" when granted covers them.
//
// Privacy says how much of the person's events is imported, so it is
// checked when the direction imports: busy needs calendar.read.busy (or
// calendar.read.details, which includes it), details and full need
// calendar.read.details. Exporting needs calendar.write. An export-only
// connection imports nothing and needs no read purpose.
func missingPurpose(privacy, direction string, granted []string) (purpose, need string) {
	has := func(p string) bool { return slices.Contains(granted, p) }
	imports := direction == store.DirectionImport || direction == store.DirectionBoth
	exports := direction == store.DirectionExport || direction == store.DirectionBoth
	if imports {
		switch privacy {
		case store.PrivacyBusy:
			if !has(store.ConsentCalendarReadBusy) && !has(store.ConsentCalendarReadDetails) {
				return store.ConsentCalendarReadBusy, fmt.Sprintf("privacy %q with direction %q", privacy, direction)
			}
		default:
			if !has(store.ConsentCalendarReadDetails) {
				return store.ConsentCalendarReadDetails, fmt.Sprintf("privacy %q with direction %q", privacy, direction)
			}
		}
	}
	if exports && !has(store.ConsentCalendarWrite) {
		return store.ConsentCalendarWrite, fmt.Sprintf("direction %q", direction)
	}
	return "", ""
}

// grantedConsents are the ledger entries a new connection rests on: one
// granted decision per purpose. The store sets their connection id.
func grantedConsents(tenantID, subjectID, actor string, c calendarConsent) []store.Consent {
	out := make([]store.Consent, 0, len(c.Purposes))
	for _, p := range c.Purposes {
		out = append(out, store.Consent{
			TenantID:      tenantID,
			SubjectID:     subjectID,
			Purpose:       p,
			Decision:      store.DecisionGranted,
			PolicyVersion: c.PolicyVersion,
			Actor:         actor,
			SourceIP:      c.Source.IP,
			UserAgent:     c.Source.UserAgent,
		})
	}
	return out
}
