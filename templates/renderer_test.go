package templates

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// writeFiles creates files under a fresh temporary directory and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLocaleFallback(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, "")
	tests := []struct {
		name    string
		locales []string
		want    string
	}{
		{"exact", []string{"de"}, "de"},
		{"region falls back to base", []string{"de-AT"}, "de"},
		{"lower-case region", []string{"de-at"}, "de"},
		{"unknown then tenant default", []string{"fr", "de"}, "de"},
		{"unknown falls back to en", []string{"fr"}, "en"},
		{"malformed is skipped", []string{"!!", "de"}, "de"},
		{"no preference", nil, "en"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mail, err := r.Mail("", "confirmation", tt.locales, validData())
			if err != nil {
				t.Fatal(err)
			}
			sms, err := r.SMS("", "confirmation", tt.locales, validData())
			if err != nil {
				t.Fatal(err)
			}
			if mail.Locale != tt.want || sms.Locale != tt.want {
				t.Errorf("locales %q: mail %q, sms %q; want %q", tt.locales, mail.Locale, sms.Locale, tt.want)
			}
		})
	}
}

func TestTenantOverrides(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		// One tenant rewrites the English subject and adds French.
		"tnt_acme/en/confirmation.subject.tmpl": "ACME booking: {{.service}}\n",
		"tnt_acme/fr/confirmation.subject.tmpl": "Rendez-vous confirmé : {{.service}} le {{.start_date}}",
		"tnt_acme/fr/confirmation.text.tmpl":    "Bonjour {{.customer_name}},\n{{.start}}",
		"tnt_acme/fr/confirmation.html.tmpl":    "<p>Bonjour {{.customer_name}}</p>",
		"tnt_acme/fr/confirmation.sms.tmpl":     "Bonjour {{.customer_name}}, RDV le {{.start}}.",
		// Another has a template only in German.
		"tnt_solo/de/followup.sms.tmpl": "Wie war {{.service}}?",
		// For everyone: a new SMS-only template with a new required and an
		// optional variable.
		"en/survey.sms.tmpl": "Rate {{.service}}: {{.survey_url}}{{with .note}} ({{.}}){{end}}",
	})
	r := newTestRenderer(t, dir)

	t.Run("override used for its tenant only", func(t *testing.T) {
		t.Parallel()
		acme, err := r.Mail("tnt_acme", "confirmation", []string{"en"}, validData())
		if err != nil {
			t.Fatal(err)
		}
		if acme.Subject != "ACME booking: Massage" {
			t.Errorf("acme subject = %q", acme.Subject)
		}
		if !strings.HasPrefix(acme.Text, "Hello Anna Schäfer,") {
			t.Errorf("acme text should come from the defaults, got %q", acme.Text)
		}
		other, err := r.Mail("tnt_other", "confirmation", []string{"en"}, validData())
		if err != nil {
			t.Fatal(err)
		}
		if other.Subject != "Appointment confirmed: Massage on Monday, 23 November 2026" {
			t.Errorf("other tenant subject = %q", other.Subject)
		}
	})

	t.Run("fr rejected by default, accepted for the tenant that adds it", func(t *testing.T) {
		t.Parallel()
		var fe *FieldError
		if err := r.Check("tnt_other", "email", "confirmation", []string{"fr"}, validData()); !errors.As(err, &fe) || fe.Field != "locale" {
			t.Errorf("Check fr for tnt_other = %v, want locale error", err)
		}
		if err := r.Check("tnt_acme", "email", "confirmation", []string{"fr"}, validData()); err != nil {
			t.Errorf("Check fr for tnt_acme = %v", err)
		}
		mail, err := r.Mail("tnt_acme", "confirmation", []string{"fr-BE"}, validData())
		if err != nil {
			t.Fatal(err)
		}
		// No French date table: the neutral format is used, never English words.
		if mail.Locale != "fr" || mail.Subject != "Rendez-vous confirmé : Massage le 2026-11-23" {
			t.Errorf("fr mail = %q in %q", mail.Subject, mail.Locale)
		}
	})

	t.Run("tenant template only in de, requested in en", func(t *testing.T) {
		t.Parallel()
		sms, err := r.SMS("tnt_solo", "followup", []string{"en", "de"}, validData())
		if err != nil {
			t.Fatal(err)
		}
		if sms.Locale != "de" || sms.Body != "Wie war Massage?" {
			t.Errorf("followup = %q in %q", sms.Body, sms.Locale)
		}
		// Without de in the list there is nothing to fall back to.
		if _, err := r.SMS("tnt_solo", "followup", []string{"en"}, validData()); err == nil {
			t.Error("followup in en only: want error")
		}
		if _, err := r.SMS("tnt_acme", "followup", []string{"de"}, validData()); err == nil {
			t.Error("followup for another tenant: want error")
		}
	})

	t.Run("variables of an override are derived from it", func(t *testing.T) {
		t.Parallel()
		var fe *FieldError
		err := r.Check("tnt_any", "sms", "survey", []string{"en"}, validData())
		if !errors.As(err, &fe) || fe.Field != "data.survey_url" || fe.Rule != "required by template survey" {
			t.Errorf("Check survey without survey_url = %v", err)
		}
		data := with(map[string]any{"survey_url": "https://s.example/1"})
		sms, err := r.SMS("tnt_any", "survey", []string{"en"}, data)
		if err != nil {
			t.Fatal(err)
		}
		if sms.Body != "Rate Massage: https://s.example/1" {
			t.Errorf("survey without note = %q", sms.Body)
		}
		data["note"] = "2 min"
		if sms, _ = r.SMS("tnt_any", "survey", []string{"en"}, data); sms.Body != "Rate Massage: https://s.example/1 (2 min)" {
			t.Errorf("survey with note = %q", sms.Body)
		}
		if err := r.Check("tnt_any", "email", "survey", []string{"en"}, data); !errors.As(err, &fe) || fe.Field != "template" {
			t.Errorf("Check survey by email = %v, want template error", err)
		}
	})
}

func TestOverrideLayout(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"tnt_brand/layout.html.tmpl": `<div class="brand" lang="{{.locale}}">{{template "content" .}}</div>`,
	})
	r := newTestRenderer(t, dir)
	brand, err := r.Mail("tnt_brand", "reminder", []string{"de"}, validData())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(brand.HTML, `<div class="brand" lang="de"><h1`) {
		t.Errorf("branded HTML starts %q", brand.HTML[:min(60, len(brand.HTML))])
	}
	plain, err := r.Mail("tnt_plain", "reminder", []string{"de"}, validData())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(plain.HTML, "<!DOCTYPE html>") {
		t.Errorf("other tenant lost the default layout: %q", plain.HTML[:40])
	}
}

func TestNewRejectsBrokenOverrides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		files    map[string]string
		wantPath string
	}{
		{"unclosed action", map[string]string{"tnt_x/de/confirmation.subject.tmpl": "Termin {{.service"}, "tnt_x/de/confirmation.subject.tmpl"},
		{"unknown function", map[string]string{"en/reminder.sms.tmpl": "{{shout .service}}"}, "en/reminder.sms.tmpl"},
		{"HTML escaping ambiguity", map[string]string{"tnt_x/en/confirmation.html.tmpl": `<a href="{{.manage_url}}`}, "tnt_x/en/confirmation.html.tmpl"},
		{"broken layout", map[string]string{"layout.html.tmpl": "{{template \"content\" .}"}, "layout.html.tmpl"},
		{"unknown part", map[string]string{"de/confirmation.body.tmpl": "x"}, "de/confirmation.body.tmpl"},
		{"neither tenant nor locale", map[string]string{"acme/de/confirmation.sms.tmpl": "x"}, "acme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeFiles(t, tt.files)
			_, err := New(dir)
			if err == nil {
				t.Fatal("New: want error")
			}
			if want := filepath.Join(dir, filepath.FromSlash(tt.wantPath)); !strings.Contains(err.Error(), want) {
				t.Errorf("New error %q does not name %s", err, want)
			}
		})
	}
}

func TestNewMissingOverrideDir(t *testing.T) {
	t.Parallel()
	if _, err := New(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Error("New with a missing directory: want error")
	}
}

// TestTimesAcrossDST checks local hours on both sides of the end of summer
// time in Berlin (25 October 2026, 03:00 CEST → 02:00 CET).
func TestTimesAcrossDST(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, "")
	tests := []struct {
		locale, start, wantSubject string
	}{
		{"de", "2026-10-24T12:30:00Z", "Erinnerung: Massage am Samstag, 24. Oktober 2026 um 14:30 Uhr"},
		{"de", "2026-10-26T12:30:00Z", "Erinnerung: Massage am Montag, 26. Oktober 2026 um 13:30 Uhr"},
		{"en", "2026-10-25T00:30:00Z", "Reminder: Massage on Sunday, 25 October 2026 at 02:30"},
		{"en", "2026-10-25T01:30:00Z", "Reminder: Massage on Sunday, 25 October 2026 at 02:30"},
		{"en", "2026-10-25T02:30:00Z", "Reminder: Massage on Sunday, 25 October 2026 at 03:30"},
		// The zone in the offset does not matter; time_zone decides.
		{"de", "2026-10-24T07:30:00-05:00", "Erinnerung: Massage am Samstag, 24. Oktober 2026 um 14:30 Uhr"},
	}
	for _, tt := range tests {
		t.Run(tt.locale+"/"+tt.start, func(t *testing.T) {
			t.Parallel()
			data := with(map[string]any{"start": tt.start, "end": tt.start})
			mail, err := r.Mail("", "reminder", []string{tt.locale}, data)
			if err != nil {
				t.Fatal(err)
			}
			if mail.Subject != tt.wantSubject {
				t.Errorf("subject = %q, want %q", mail.Subject, tt.wantSubject)
			}
		})
	}
}

func TestFullDateTimeFormat(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, "")
	for locale, want := range map[string]string{
		"de": "Montag, 23. November 2026, 14:30 Uhr",
		"en": "Monday, 23 November 2026, 14:30",
	} {
		sms, err := r.SMS("", "confirmation", []string{locale}, validData())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(sms.Body, want) {
			t.Errorf("%s SMS %q does not contain %q", locale, sms.Body, want)
		}
	}
}

func TestEscaping(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, "")
	data := with(map[string]any{
		"customer_name": `<script>alert("x")</script> & Co`,
		"manage_url":    "javascript:alert(1)",
	})
	mail, err := r.Mail("", "confirmation", []string{"en"}, data)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(mail.HTML, "<script>") || !strings.Contains(mail.HTML, "&lt;script&gt;") {
		t.Error("HTML body does not escape the customer name")
	}
	if strings.Contains(mail.HTML, "javascript:") {
		t.Error("HTML body kept a javascript: URL")
	}
	if !strings.Contains(mail.Text, `<script>alert("x")</script> & Co`) {
		t.Errorf("text body must show data verbatim, got %q", mail.Text)
	}
}

func TestSubjectStaysOneLine(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, "")
	mail, err := r.Mail("", "confirmation", []string{"en"}, with(map[string]any{"service": "Massage\r\nBcc: x@example.com"}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(mail.Subject, "\r\n") {
		t.Errorf("subject has a line break: %q", mail.Subject)
	}
}

func TestOptionalVariablesAbsent(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, "")
	mail, err := r.Mail("", "confirmation", []string{"de"}, validData())
	if err != nil {
		t.Fatal(err)
	}
	for _, unwanted := range []string{"Ort:", "Termin verwalten", "<a "} {
		if strings.Contains(mail.Text+mail.HTML, unwanted) {
			t.Errorf("mail without location and manage_url contains %q", unwanted)
		}
	}
}

func TestRenderIsConcurrencySafe(t *testing.T) {
	t.Parallel()
	r := newTestRenderer(t, "")
	want, err := r.Mail("", "reschedule", []string{"de"}, goldenData())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for range 50 {
				locale := []string{"de", "en"}[i%2]
				got, err := r.Mail("", "reschedule", []string{locale}, goldenData())
				if err != nil {
					t.Error(err)
					return
				}
				if locale == "de" && got != want {
					t.Error("concurrent render differs")
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkMail(b *testing.B) {
	r := newTestRenderer(b, "")
	data := goldenData()
	locales := []string{"de-AT", "de"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Mail("tnt_bench", "confirmation", locales, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSMS(b *testing.B) {
	r := newTestRenderer(b, "")
	data := goldenData()
	locales := []string{"en"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.SMS("tnt_bench", "reminder", locales, data); err != nil {
			b.Fatal(err)
		}
	}
}
