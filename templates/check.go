package templates

import (
	"errors"
	"fmt"
)

// Check validates a notification request before anything is stored: the
// channel and template are known, the requested locale (locales[0]) is a
// well-formed BCP 47 tag whose language has templates for this tenant, every
// variable the chosen templates use is present and non-empty, times are
// RFC 3339, time_zone is a known IANA zone, and an SMS fits in 10 segments.
// It returns a *FieldError for the first problem. An empty requested locale
// is accepted: the tenant default and "en" still apply.
func (r *Renderer) Check(tenantID, channel, name string, locales []string, data map[string]any) error {
	if channel != channelEmail && channel != channelSMS {
		return &FieldError{Field: "channel", Rule: `must be "email" or "sms"`}
	}
	m, v, err := r.resolve(tenantID, channel, name, locales)
	if err != nil {
		return err
	}
	if len(locales) > 0 && locales[0] != "" {
		_, base, ok := r.canonical(locales[0])
		if !ok {
			return &FieldError{Field: "locale", Rule: "must be a BCP 47 language tag"}
		}
		if !r.catalogFor(tenantID).languages[base] {
			return &FieldError{Field: "locale", Rule: fmt.Sprintf("no templates for language %q", base)}
		}
	}
	for _, k := range v.required {
		if isEmpty(data[k]) {
			return &FieldError{Field: "data." + k, Rule: "required by template " + name}
		}
	}
	// Times and the zone are checked even where this template does not show
	// them: the stored request may be rendered with another one later.
	for _, k := range timeKeys() {
		if raw, ok := data[k]; ok && !isEmpty(raw) {
			if _, err := parseTime(k, raw); err != nil {
				return err
			}
		}
	}
	if raw := data[keyTimeZone]; !isEmpty(raw) {
		if _, err := r.zone(raw); err != nil {
			return err
		}
	}
	if channel == channelSMS {
		_, err = r.renderSMS(m, v, data)
	} else {
		_, err = r.renderMail(m, v, data)
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe
	}
	if err != nil {
		return &FieldError{Field: "template", Rule: fmt.Sprintf("%s cannot be rendered with this data: %v", name, err)}
	}
	return nil
}
