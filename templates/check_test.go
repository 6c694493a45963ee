package templates

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

// validData is a complete request for every default template.
func validData() map[string]any {
	return map[string]any{
		"customer_name":  "Anna Schäfer",
		"provider_name":  "Physio am Park",
		"service":        "Massage",
		"start":          "2026-11-23T13:30:00Z",
		"end":            "2026-11-23T14:30:00Z",
		"previous_start": "2026-11-20T09:00:00Z",
		"time_zone":      "Europe/Berlin",
	}
}

// with returns validData changed by edit; a nil value deletes the key.
func with(edit map[string]any) map[string]any {
	d := validData()
	for k, v := range edit {
		if v == nil {
			delete(d, k)
			continue
		}
		d[k] = v
	}
	return d
}

func TestCheck(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, "")
	tests := []struct {
		name      string
		channel   string
		template  string
		locales   []string
		data      map[string]any
		wantField string // "" means no error
		wantRule  string // substring of the rule
	}{
		{"valid email", "email", "confirmation", []string{"de"}, validData(), "", ""},
		{"valid sms", "sms", "reminder", []string{"en"}, validData(), "", ""},
		{"optional location and manage_url may be absent", "email", "reminder", []string{"de"}, validData(), "", ""},
		{"optional values present", "sms", "reminder", []string{"de"}, with(map[string]any{"location": "Raum 2", "manage_url": "https://x.example/m"}), "", ""},
		{"region tag accepted", "email", "confirmation", []string{"de-AT"}, validData(), "", ""},
		{"empty requested locale uses defaults", "email", "confirmation", []string{"", "de"}, validData(), "", ""},
		{"previous_start not needed outside reschedule", "email", "confirmation", []string{"en"}, with(map[string]any{"previous_start": nil}), "", ""},

		{"unknown channel", "fax", "confirmation", []string{"en"}, validData(), "channel", "email"},
		{"unknown template", "email", "birthday", []string{"en"}, validData(), "template", `unknown template "birthday"`},
		{"malformed locale", "email", "confirmation", []string{"de_DE_x_!"}, validData(), "locale", "BCP 47"},
		{"unsupported locale", "email", "confirmation", []string{"fr"}, validData(), "locale", `no templates for language "fr"`},
		{"unsupported region locale", "sms", "confirmation", []string{"fr-CA", "de"}, validData(), "locale", `"fr"`},

		{"missing customer_name", "email", "confirmation", []string{"en"}, with(map[string]any{"customer_name": nil}), "data.customer_name", "required by template confirmation"},
		{"missing provider_name", "email", "confirmation", []string{"en"}, with(map[string]any{"provider_name": nil}), "data.provider_name", "required"},
		{"missing service", "sms", "confirmation", []string{"en"}, with(map[string]any{"service": nil}), "data.service", "required"},
		{"missing start", "email", "reminder", []string{"de"}, with(map[string]any{"start": nil}), "data.start", "required"},
		{"missing end", "email", "cancellation", []string{"de"}, with(map[string]any{"end": nil}), "data.end", "required"},
		{"missing time_zone", "sms", "reminder", []string{"de"}, with(map[string]any{"time_zone": nil}), "data.time_zone", "required"},
		{"missing previous_start in reschedule", "email", "reschedule", []string{"en"}, with(map[string]any{"previous_start": nil}), "data.previous_start", "required by template reschedule"},
		{"missing previous_start in reschedule sms", "sms", "reschedule", []string{"de"}, with(map[string]any{"previous_start": nil}), "data.previous_start", "required"},
		{"empty string is missing", "email", "confirmation", []string{"en"}, with(map[string]any{"customer_name": ""}), "data.customer_name", "required"},
		{"blank string is missing", "sms", "confirmation", []string{"en"}, with(map[string]any{"provider_name": "  "}), "data.provider_name", "required"},

		{"start not RFC 3339", "email", "confirmation", []string{"en"}, with(map[string]any{"start": "23.11.2026 14:30"}), "data.start", "RFC 3339"},
		{"end without zone offset", "email", "confirmation", []string{"en"}, with(map[string]any{"end": "2026-11-23T14:30:00"}), "data.end", "RFC 3339"},
		{"start not a string", "sms", "confirmation", []string{"en"}, with(map[string]any{"start": 1764000000.0}), "data.start", "RFC 3339"},
		{"bad previous_start checked even when unused", "email", "confirmation", []string{"en"}, with(map[string]any{"previous_start": "yesterday"}), "data.previous_start", "RFC 3339"},
		{"unknown zone", "email", "confirmation", []string{"en"}, with(map[string]any{"time_zone": "Europe/Atlantis"}), "data.time_zone", "IANA"},
		{"Local is not an IANA zone", "email", "confirmation", []string{"en"}, with(map[string]any{"time_zone": "Local"}), "data.time_zone", "IANA"},

		{"sms over 10 segments", "sms", "confirmation", []string{"en"}, with(map[string]any{"service": strings.Repeat("Very long service name ", 80)}), "data", "segments"},
		{"long service fine for email", "email", "confirmation", []string{"en"}, with(map[string]any{"service": strings.Repeat("Very long service name ", 80)}), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := r.Check("tnt_check", tt.channel, tt.template, tt.locales, tt.data)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Check = %v, want *FieldError for %s", err, tt.wantField)
			}
			if fe.Field != tt.wantField || !strings.Contains(fe.Rule, tt.wantRule) {
				t.Errorf("Check = %q, want field %q with rule containing %q", fe.Error(), tt.wantField, tt.wantRule)
			}
		})
	}
}

// TestCheckAgreesWithRender makes sure a request Check accepts renders, and
// one it refuses for a missing variable does not render either.
func TestCheckAgreesWithRender(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, "")
	for _, name := range []string{"confirmation", "reminder", "cancellation", "reschedule"} {
		for _, key := range []string{"customer_name", "provider_name", "service", "start", "end", "time_zone"} {
			data := validData()
			delete(data, key)
			checkErr := r.Check("", "email", name, []string{"de"}, data)
			_, mailErr := r.Mail("", name, []string{"de"}, data)
			if (checkErr == nil) != (mailErr == nil) {
				t.Errorf("%s without %s: Check = %v, Mail = %v", name, key, checkErr, mailErr)
			}
			var fe *FieldError
			if mailErr != nil && !errors.As(mailErr, &fe) {
				t.Errorf("%s without %s: Mail error %v is not a *FieldError", name, key, mailErr)
			}
		}
	}
}

func TestFieldErrorMessage(t *testing.T) {
	t.Parallel()
	err := &FieldError{Field: "data.start", Rule: "must be an RFC 3339 time"}
	if got, want := err.Error(), "data.start: must be an RFC 3339 time"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestCheckDoesNotChangeData(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, "")
	data := validData()
	before := maps.Clone(data)
	if err := r.Check("", "email", "reschedule", []string{"en"}, data); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(data, before) {
		t.Errorf("Check changed the caller's data: %v", data)
	}
}
