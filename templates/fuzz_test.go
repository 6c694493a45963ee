package templates

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzRender renders every default template with arbitrary data. For any
// input: no panic; Check either refuses with a *FieldError naming a field
// and a rule, or the message renders — an SMS whose segment count is the
// count of its own text and within the limit, a mail whose subject is one
// line (no header injection) and whose bodies are valid UTF-8.
func FuzzRender(f *testing.F) {
	f.Add(uint8(0), "en", "Jane Doe", "Dr. Muster", "Check-up", "Hauptstr. 1", "2030-03-01T09:00:00Z", "2030-03-01T09:30:00Z", "Europe/Berlin", "https://book.example/x", []byte(`{}`))
	f.Add(uint8(5), "de-AT", "Jürgen Müller", "Praxis", "Erstgespräch", "", "2030-03-01T09:00:00+01:00", "2030-03-01T08:00:00Z", "Asia/Kathmandu", "", []byte(`{"previous_start":"2030-02-01T09:00:00Z"}`))
	f.Add(uint8(3), "en-GB", strings.Repeat("€", 300), "Dr.\r\nBcc: x@example.com", "{{.service}}", "<script>", "2030-03-01T09:00:00Z", "bad", "Local", "javascript:alert(1)", []byte(`{"extra":[1,{"a":null}]}`))
	f.Add(uint8(7), "", "\x00", "\u202e", "x", "x", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "America/St_Johns", "x", []byte(`{"customer_name":5}`))
	r, err := New("")
	if err != nil {
		f.Fatal(err)
	}
	names := []string{"confirmation", "reminder", "cancellation", "reschedule"}
	f.Fuzz(func(t *testing.T, pick uint8, locale, customer, provider, service, location, start, end, zone, manage string, extra []byte) {
		data := map[string]any{}
		_ = json.Unmarshal(extra, &data) // arbitrary extra keys and types, when it parses
		for k, v := range map[string]string{"customer_name": customer, "provider_name": provider, "service": service,
			"location": location, "start": start, "end": end, "time_zone": zone, "manage_url": manage} {
			if _, set := data[k]; !set {
				// Data reaches the renderer through JSON, always valid UTF-8.
				data[k] = strings.ToValidUTF8(v, "\uFFFD")
			}
		}
		name := names[int(pick)%len(names)]
		channel := channelEmail
		if pick&0x80 != 0 {
			channel = channelSMS
		}
		locales := []string{locale, "en"}
		if err := r.Check("tenant", channel, name, locales, data); err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" || fe.Rule == "" {
				t.Fatalf("Check: %v (%T), want a *FieldError with field and rule", err, err)
			}
			return
		}
		if channel == channelSMS {
			sms, err := r.SMS("tenant", name, locales, data)
			if err != nil {
				t.Fatalf("Check passed, SMS failed: %v", err)
			}
			if n, enc := Segments(sms.Body); n != sms.Segments || enc != sms.Encoding {
				t.Fatalf("SMS says %d %s, its text is %d %s: %q", sms.Segments, sms.Encoding, n, enc, sms.Body)
			}
			if sms.Segments < 1 || sms.Segments > maxSMSSegments || !utf8.ValidString(sms.Body) {
				t.Fatalf("SMS of %d segments, valid UTF-8 %v", sms.Segments, utf8.ValidString(sms.Body))
			}
			return
		}
		m, err := r.Mail("tenant", name, locales, data)
		if err != nil {
			t.Fatalf("Check passed, Mail failed: %v", err)
		}
		if m.Subject == "" || strings.ContainsAny(m.Subject, "\r\n") {
			t.Fatalf("subject %q is empty or more than one line", m.Subject)
		}
		if !utf8.ValidString(m.Text) || !utf8.ValidString(m.HTML) || !utf8.ValidString(m.Subject) {
			t.Fatalf("mail is not valid UTF-8")
		}
		if strings.Contains(m.HTML, "<script>") {
			t.Fatalf("HTML holds an unescaped <script>: %q", m.HTML)
		}
	})
}
